// state in a store (Ceph RGW, Azurite): `--state s3://BUCKET/KEY` and `--state az://CONTAINER/KEY`,
// the real CLI against the API emulator and the real servers. The checkpoint object is created
// If-None-Match: *, moved If-Match the ETag last written, and guarded by a lease at KEY.lock:
// a second run on the same --state stops before any request to the API, a checkpoint moved by
// another writer stops the run with nothing moved, and `state show|skip|reset` work on it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { withDir } from "./helpers/mod.ts";
import { CEPH_SKIP, createBucket, startCeph } from "./servers/ceph.ts";
import { azuriteSkip, startAzurite } from "./servers/azurite.ts";
import type { ObjectAccess } from "../lib/destinations/_object_access.ts";
import { s3Store } from "../lib/destinations/s3.ts";
import { AzureBlobStore } from "../lib/destinations/azure_blob.ts";

const AZURITE_SKIP = azuriteSkip();
const TIMEOUT = 240_000;
const FILES = [
  ...hourlyFiles(4, { eventType: "AUTH_LOG" }),
  ...hourlyFiles(3, { eventType: "AUDIT_LOG", start: "2026-07-03T22:00:00Z" }),
];
const TYPES = "AUTH_LOG,AUDIT_LOG";

/** One store under test: its --state URL for a key, its credentials, and a way to read back. */
interface Store {
  url(key: string): string;
  env: Record<string, string>;
  access: ObjectAccess;
}

function unique(what: string): string {
  return `t-${what}-${crypto.randomUUID().slice(0, 8)}`;
}

async function cephStore(): Promise<Store> {
  const ceph = await startCeph();
  const bucket = unique("state");
  await createBucket(ceph, bucket);
  return {
    url: (key) => `s3://${bucket}/${key}`,
    env: { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50" },
    access: s3Store(`s3://${bucket}`, ceph.env),
  };
}

async function azuriteStore(): Promise<Store> {
  const azurite = await startAzurite();
  const container = unique("state");
  await azurite.createContainer(container);
  return {
    url: (key) => `az://${container}/${key}`,
    env: {
      AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
      OAI_COMPLIANCE_STORE_BACKOFF_MS: "50",
    },
    access: new AzureBlobStore(azurite.client, container, ""),
  };
}

function runArgs(state: string, out: string, extra: string[] = []): string[] {
  return [PRINCIPAL, TYPES, "100", AFTER, "--output-dir", out, "--state", state, ...extra];
}

async function checkpointOf(store: Store, key: string) {
  const found = await store.access.get(key);
  assert.ok(found, `the checkpoint ${key} is in the store`);
  return JSON.parse(new TextDecoder().decode(found.bytes));
}

function filesUnder(dir: string): string[] {
  // The delivered logs (an archive's manifest sits beside them, under _manifest/).
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((path) => /^[A-Z_]+\/\d{4}-\d{2}-\d{2}\/[^/]+\.jsonl$/.test(path))
    .sort();
}

/** A run that delivers, resumes, and the state command on the same URL. */
async function deliversAndResumes(store: Store): Promise<void> {
  const key = "jobs/openai/auth.state.json";
  const state = store.url(key);
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir("oai-state-store-", async (out) => {
      const env = envFor(emulator, store.env);
      const first = await runCli(runArgs(state, out), { env, timeoutMs: 120_000 });
      assert.equal(first.code, 0, first.stderr);
      assert.equal(filesUnder(out).length, FILES.length);
      const checkpoint = await checkpointOf(store, key);
      assert.equal(checkpoint.principal, PRINCIPAL);
      assert.deepEqual(Object.keys(checkpoint.cursors).sort(), ["AUDIT_LOG", "AUTH_LOG"]);
      assert.equal(await store.access.get(`${key}.lock`), undefined, "the lease was released");

      // `list` reads the checkpoint unlocked: from its cursors, and leaving no lease behind.
      const listArgs = [PRINCIPAL, TYPES, "100", AFTER];
      const all = await runCli(["list", ...listArgs], { env });
      const fromState = await runCli(["list", ...listArgs, "--state", state], { env });
      assert.equal(fromState.code, 0, fromState.stderr);
      const count = (r: { stdout: Uint8Array }) =>
        new TextDecoder().decode(r.stdout).split("\n").filter(Boolean).length;
      assert.equal(count(all), FILES.length);
      assert.ok(count(fromState) < FILES.length, "listed from the checkpoint's cursors");
      assert.equal(await store.access.get(`${key}.lock`), undefined, "list took no lease");

      const downloads = emulator.downloadRequests().length;
      const second = await runCli(runArgs(state, out), { env, timeoutMs: 120_000 });
      assert.equal(second.code, 0, second.stderr);
      assert.equal(emulator.downloadRequests().length, downloads, "the second run resumed");

      const shown = await runCli(["state", "show", state], { env: store.env });
      assert.equal(shown.code, 0, shown.stderr);
      const text = new TextDecoder().decode(shown.stdout);
      assert.match(text, new RegExp(`state file +${state.replace(/[/.]/g, "\\$&")}`));
      assert.match(text, new RegExp(`principal +${PRINCIPAL}`));
      assert.match(text, /AUTH_LOG +after /);
      assert.match(text, /lock +none/);

      const skip = await runCli(
        ["state", "skip", state, "AUTH_LOG", "eclf_x", "--reason", "ticket 1"],
        { env: store.env },
      );
      assert.equal(skip.code, 0, skip.stderr);
      assert.deepEqual(
        (await checkpointOf(store, key)).skipped.AUTH_LOG.map((s: { id: string }) => s.id),
        ["eclf_x"],
      );
      const resetOne = await runCli(["state", "reset", state, "AUDIT_LOG"], { env: store.env });
      assert.equal(resetOne.code, 0, resetOne.stderr);
      assert.deepEqual(Object.keys((await checkpointOf(store, key)).cursors), ["AUTH_LOG"]);
      const reset = await runCli(["state", "reset", state], { env: store.env });
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(await store.access.get(key), undefined, "reset deleted the object");
      const missing = await runCli(["state", "show", state], { env: store.env });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /does not exist/);
    });
  });
}

/**
 * Two runs on one --state: the first is slowed (every download stalls) and holds the lease;
 * the second, against its own emulator, must stop with the lease error before any request.
 */
async function secondRunStops(store: Store): Promise<void> {
  const key = "jobs/lease.state.json";
  const state = store.url(key);
  await withEmulator({ files: FILES }, async (slow) => {
    slow.inject({ target: "storage", stallBeforeHeadersMs: 1_500, times: Infinity });
    await withEmulator({ files: FILES }, async (other) => {
      await withDir("oai-state-lease-", async (out) => {
        let child: ChildProcess | undefined;
        const first = runCli(runArgs(state, `${out}/a`, ["--concurrency", "1"]), {
          env: envFor(slow, store.env),
          timeoutMs: 120_000,
          onSpawn: (c) => child = c,
        });
        // Bounded wait for the first run to hold the lease and start downloading.
        const deadline = Date.now() + 60_000;
        while (slow.downloadRequests().length === 0) {
          assert.ok(Date.now() < deadline, "the first run started downloading");
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(await store.access.get(`${key}.lock`), "the first run holds the lease");
        const second = await runCli(runArgs(state, `${out}/b`), {
          env: envFor(other, store.env),
          timeoutMs: 60_000,
        });
        assert.equal(second.code, 1, second.stderr);
        assert.match(
          second.stderr,
          /another run \(run [0-9a-f]{8}, pid \d+ on .*\) holds the lease jobs\/lease\.state\.json\.lock/,
        );
        assert.equal(other.requests.length, 0, "the second run made no request to the API");
        const reset = await runCli(["state", "reset", state], { env: store.env });
        assert.equal(reset.code, 1, "a reset is refused while a run holds the lease");
        assert.match(reset.stderr, /holds the lease/);
        const done = await first;
        assert.ok(child);
        assert.equal(done.code, 0, done.stderr);
        assert.equal(filesUnder(`${out}/a`).length, FILES.length);
        assert.equal(await store.access.get(`${key}.lock`), undefined, "released at the end");
      });
    });
  });
}

/** A checkpoint moved by another writer mid-run: the run stops, and does not move it. */
async function movedByAnotherWriterStops(store: Store): Promise<void> {
  const key = "jobs/moved.state.json";
  const state = store.url(key);
  await withEmulator({ files: FILES }, async (emulator) => {
    emulator.inject({ target: "storage", stallBeforeHeadersMs: 1_000, times: Infinity });
    await withDir("oai-state-moved-", async (out) => {
      const run = runCli(runArgs(state, out, ["--concurrency", "1"]), {
        env: envFor(emulator, store.env),
        timeoutMs: 120_000,
      });
      const deadline = Date.now() + 60_000;
      while ((await store.access.get(key)) === undefined) {
        assert.ok(Date.now() < deadline, "the run created its checkpoint");
        await new Promise((r) => setTimeout(r, 100));
      }
      // Another writer replaces it (by hand, or a run that ignored the lease).
      const tampered = JSON.stringify({
        version: 2,
        principal: PRINCIPAL,
        eventTypes: ["AUDIT_LOG", "AUTH_LOG"],
        cursors: {},
        gone: {},
        skipped: {
          AUTH_LOG: [{ id: "x", reason: "by hand", skipped_at: new Date().toISOString() }],
        },
      });
      await store.access.putSmall(key, new TextEncoder().encode(tampered), {
        contentType: "application/json",
      });
      const result = await run;
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /was changed by another writer since this run read it/);
      assert.equal(
        new TextDecoder().decode((await store.access.get(key))!.bytes),
        tampered,
        "the run did not move the checkpoint past the other writer's",
      );
      assert.equal(await store.access.get(`${key}.lock`), undefined, "the lease was released");
    });
  });
}

/** A lease a killed run left (expired, never released) is taken over, with a warning. */
async function deadRunsLeaseTakenOver(store: Store): Promise<void> {
  const key = "jobs/dead.state.json";
  const dead = {
    owner: "run deadbeef, pid 4242 on host-gone",
    what: `the checkpoint ${store.url(key)}`,
    takenAt: "2026-07-01T00:00:00.000Z",
    renewedAt: "2026-07-01T01:00:00.000Z",
    expiresAt: "2026-07-01T01:05:00.000Z",
  };
  await store.access.putSmall(`${key}.lock`, new TextEncoder().encode(JSON.stringify(dead)), {
    contentType: "application/json",
  });
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir("oai-state-dead-", async (out) => {
      const result = await runCli(runArgs(store.url(key), out), {
        env: envFor(emulator, store.env),
        timeoutMs: 120_000,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stderr,
        /took over a stale lock on .*run deadbeef, pid 4242 on host-gone held it since 2026-07-01T00:00:00.000Z/,
      );
      assert.equal(filesUnder(out).length, FILES.length);
      assert.equal(await store.access.get(`${key}.lock`), undefined, "released at the end");
    });
  });
}

test("state in a store (Ceph RGW): --state s3:// delivers, resumes; state show|skip|reset", {
  skip: CEPH_SKIP,
  timeout: TIMEOUT,
}, async () => {
  await deliversAndResumes(await cephStore());
});

test(
  "state in a store (Ceph RGW): a second run on the same --state s3:// stops before any download",
  {
    skip: CEPH_SKIP,
    timeout: TIMEOUT,
  },
  async () => {
    await secondRunStops(await cephStore());
  },
);

test("state in a store (Ceph RGW): a checkpoint moved by another writer stops the run (If-Match)", {
  skip: CEPH_SKIP,
  timeout: TIMEOUT,
}, async () => {
  await movedByAnotherWriterStops(await cephStore());
});

test("state in a store (Azurite): --state az:// delivers, resumes; state show|skip|reset", {
  skip: AZURITE_SKIP,
  timeout: TIMEOUT,
}, async () => {
  await deliversAndResumes(await azuriteStore());
});

test(
  "state in a store (Azurite): a second run on the same --state az:// stops before any download",
  {
    skip: AZURITE_SKIP,
    timeout: TIMEOUT,
  },
  async () => {
    await secondRunStops(await azuriteStore());
  },
);

test("state in a store (Azurite): a checkpoint moved by another writer stops the run (If-Match)", {
  skip: AZURITE_SKIP,
  timeout: TIMEOUT,
}, async () => {
  await movedByAnotherWriterStops(await azuriteStore());
});

test("state in a store (Ceph RGW): a dead run's expired lease is taken over, with a warning", {
  skip: CEPH_SKIP,
  timeout: TIMEOUT,
}, async () => {
  await deadRunsLeaseTakenOver(await cephStore());
});

test("state in a store (Azurite): a dead run's expired lease is taken over, with a warning", {
  skip: AZURITE_SKIP,
  timeout: TIMEOUT,
}, async () => {
  await deadRunsLeaseTakenOver(await azuriteStore());
});

test("state in a store (Ceph RGW): bad credentials fail in one line, the secret never shown", {
  skip: CEPH_SKIP,
  timeout: TIMEOUT,
}, async () => {
  const store = await cephStore();
  const secret = "wrong-secret-0f1e2d3c4b5a69788796";
  const env = { ...store.env, AWS_SECRET_ACCESS_KEY: secret };
  const shown = await runCli(["state", "show", store.url("jobs/s.json")], { env });
  assert.equal(shown.code, 1, shown.stderr);
  assert.match(shown.stderr, /SignatureDoesNotMatch.*AWS_SECRET_ACCESS_KEY/);
  assert.ok(!shown.stderr.includes(secret.slice(0, 16)), "the secret is not printed");
});

test("state in a store: other URL schemes and keyless URLs are refused before anything runs", async () => {
  for (
    const [state, pattern] of [
      ["ftp://host/s.json", /--state takes a local file path, s3:\/\/BUCKET\/KEY.*ftp:\/\/ URLs/],
      ["https://example.com/s.json", /https:\/\/ URLs are not supported/],
      ["s3://bucket/", /name the checkpoint's object as s3:\/\/BUCKET\/KEY/],
      ["s3://bucket/a//b.json", /no empty, '\.' or '\.\.' segment/],
    ] as const
  ) {
    const result = await runCli(
      [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--state", state],
      {
        env: {
          COMPLIANCE_API_KEY: "sk-unused-0123456789",
          COMPLIANCE_API_BASE: "http://127.0.0.1:9/v1/compliance",
          AWS_ACCESS_KEY_ID: "AKIA0000",
          AWS_SECRET_ACCESS_KEY: "secret0000000000000000",
          AWS_REGION: "us-east-1",
          AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9",
          AWS_EC2_METADATA_DISABLED: "true",
        },
      },
    );
    assert.equal(result.code, 2, `${state}: ${result.stderr}`);
    assert.match(result.stderr, pattern, state);
  }
});
