/**
 * azure (Azurite): `--output-dir az://CONTAINER/PREFIX` end to end, the real CLI against the API
 * emulator and Azurite (started once for this process, tests/servers/azurite.ts), through a
 * fault-injecting proxy where a test needs to see or break the requests. Azurite checks Shared
 * Key signatures and transactional Content-MD5 for real.
 *
 * Retention is tested against a stand-in (tests/servers/azure_immutability_standin.ts): Azurite
 * implements neither blob versions nor immutability policies.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import type { LogFile } from "../lib/log_file.ts";
import { DEVELOPMENT_ACCOUNT } from "../lib/azure/credentials.ts";
import { type KeyLayout, relativeKey } from "../lib/destinations/layout.ts";
import type { Emulator } from "./emulator/mod.ts";
import { type CliResult, runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import {
  accountSas,
  type Azurite,
  azuriteSkip,
  connectionStringFor,
  startAzurite,
} from "./servers/azurite.ts";
import { type FaultProxy, startFaultProxy } from "./servers/azure_fault_proxy.ts";
import { startImmutabilityStandin } from "./servers/azure_immutability_standin.ts";

const SKIP = azuriteSkip();
const AZURITE = { ...SLOW, skip: SKIP };

/** Small blocks, so that files of a few tens of KB go up as Put Block / Put Block List. */
const PART_BYTES = 16 * 1024;
const FILES = [
  ...hourlyFiles(6, { sizes: [3000, 0, 40_000] }),
  ...hourlyFiles(4, { eventType: "AUDIT_LOG", sizes: [50_000, 700] }),
];
const TYPES = "AUTH_LOG,AUDIT_LOG";

function newContainer(): string {
  return `t${randomBytes(6).toString("hex")}`;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The environment of a run to `blobEndpoint` with the development account. */
function azureEnv(emulator: Emulator, blobEndpoint: string, extra: Record<string, string> = {}) {
  return envFor(emulator, {
    AZURE_STORAGE_CONNECTION_STRING: connectionStringFor(blobEndpoint),
    OAI_COMPLIANCE_STORE_PART_BYTES: String(PART_BYTES),
    OAI_COMPLIANCE_STORE_BACKOFF_MS: "10",
    ...extra,
  });
}

/** Azurite, a container, and a proxy in front of Azurite for `fn`. */
async function withAzure(
  fn: (azurite: Azurite, container: string, proxy: FaultProxy) => Promise<void>,
): Promise<void> {
  const azurite = await startAzurite();
  const container = newContainer();
  await azurite.createContainer(container);
  const proxy = await startFaultProxy(`http://127.0.0.1:${azurite.port}`);
  try {
    await fn(azurite, container, proxy);
  } finally {
    await proxy.close();
  }
}

function via(proxy: FaultProxy): string {
  return `${proxy.origin}/${DEVELOPMENT_ACCOUNT}`;
}

function run(
  args: string[],
  env: Record<string, string>,
  onSpawn?: (child: ChildProcess) => void,
): Promise<CliResult> {
  return runCli([PRINCIPAL, TYPES, "100", AFTER, ...args], { env, timeoutMs: 90_000, onSpawn });
}

/** The key of every listed file under `prefix`, and the file's id. */
function expectedKeys(emulator: Emulator, prefix: string, naming: KeyLayout): Map<string, string> {
  const keys = new Map<string, string>();
  for (const eventType of TYPES.split(",")) {
    for (const id of idsOf(emulator, eventType)) {
      const spec = emulator.files.find((f) => f.id === id)!;
      const file: LogFile = { id, event_type: eventType, end_time: spec.endTime };
      keys.set(prefix + relativeKey(file, eventType, naming), id);
    }
  }
  return keys;
}

/**
 * Every listed file is stored exactly once under `prefix`, whole (its bytes, decompressed with
 * gzip, are the served ones), with the listing's SHA-256 and size as metadata; nothing else.
 */
async function assertStoredOnce(
  azurite: Azurite,
  emulator: Emulator,
  container: string,
  prefix: string,
  naming: KeyLayout = { gzip: false, layout: "plain" },
): Promise<void> {
  const expected = expectedKeys(emulator, prefix, naming);
  const blobs = (await azurite.listBlobs(container)).filter(notManifest);
  assert.deepEqual(blobs.map((b) => b.name).sort(), [...expected.keys()].sort());
  for (const blob of blobs) {
    const id = expected.get(blob.name)!;
    const content = await emulator.contentOf(id);
    let stored = await azurite.blobBytes(container, blob.name);
    if (naming.gzip) stored = gunzipSync(stored);
    assert.equal(sha256(stored), sha256(content), `${blob.name} is whole`);
    assert.equal(blob.metadata.sha256, await emulator.sha256Of(id), `${blob.name} sha256`);
    assert.equal(blob.metadata.size, String(content.length), `${blob.name} size`);
  }
}

/** The stored files, not the archive's manifests (tests/verify_object_store.test.ts covers those). */
const notManifest = (blob: { name: string }) => !/(^|\/)_manifest\//.test(blob.name);

const writes = (proxy: FaultProxy) =>
  proxy.requests.filter((r) => r.method === "PUT" && !r.url.includes("/_manifest/"));

test(
  "azure (Azurite): a run stores every file once with its SHA-256 and size as metadata, and a second run uploads nothing",
  AZURITE,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withAzure(async (azurite, container, proxy) => {
        const env = azureEnv(emulator, via(proxy));
        const target = `az://${container}/archive/openai`;
        const first = await run(["--output-dir", target], env);
        assert.equal(first.code, 0, first.stderr);
        await assertStoredOnce(azurite, emulator, container, "archive/openai/");
        // Both ways of writing were used: Put Blob, and Put Block with Put Block List.
        const puts = writes(proxy);
        assert.ok(puts.some((r) => r.url.includes("comp=blocklist")), "a block list");
        assert.ok(puts.some((r) => !r.url.includes("comp=")), "a Put Blob");
        for (const put of puts) {
          assert.match(put.headers["content-md5"] ?? "", /^[A-Za-z0-9+/]{22}==$/);
        }

        proxy.requests.length = 0;
        const downloadsBefore = emulator.downloadRequests().length;
        const second = await run(["--output-dir", target], env);
        assert.equal(second.code, 0, second.stderr);
        assert.deepEqual(writes(proxy), [], "the second run uploads nothing");
        assert.equal(emulator.downloadRequests().length, downloadsBefore, "nor downloads anything");
        await assertStoredOnce(azurite, emulator, container, "archive/openai/");
      });
    });
  },
);

test(
  "azure (Azurite): --gzip with --layout hive stores event_type=/date= keys of gzip bodies",
  AZURITE,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withAzure(async (azurite, container, proxy) => {
        const env = azureEnv(emulator, via(proxy));
        const r = await run(
          ["--output-dir", `az://${container}`, "--gzip", "--layout", "hive"],
          env,
        );
        assert.equal(r.code, 0, r.stderr);
        await assertStoredOnce(azurite, emulator, container, "", { gzip: true, layout: "hive" });
        const blobs = (await azurite.listBlobs(container)).filter(notManifest);
        assert.ok(blobs.every((b) => /^event_type=[A-Z_]+\/date=\d{4}-\d{2}-\d{2}\//.test(b.name)));
        assert.ok(blobs.every((b) => b.contentType === "application/gzip"));
      });
    });
  },
);

test(
  "azure (Azurite): killed with SIGKILL mid-upload, then run again, every blob is there exactly once and whole",
  AZURITE,
  async () => {
    // Kill points: during a block upload, just before a Put Blob, just before a block list.
    const killAt = [
      (url: string) => url.includes("comp=block&") || url.endsWith("comp=block"),
      (url: string) => !url.includes("comp=") && !url.includes("restype="),
      (url: string) => url.includes("comp=blocklist"),
    ];
    for (const [n, point] of killAt.entries()) {
      await withEmulator({ files: FILES }, async (emulator) => {
        await withAzure(async (azurite, container, proxy) => {
          await withDir("oai-azure-kill-", async (dir) => {
            const env = azureEnv(emulator, via(proxy));
            const args = ["--output-dir", `az://${container}/k`, "--state", join(dir, "s.json")];
            let child: ChildProcess | undefined;
            let seen = 0;
            proxy.faults.push({
              when: (r) => {
                if (r.method !== "PUT" || !point(r.url.replace(/blockid=[^&]*&?/, ""))) {
                  return false;
                }
                // The second such request: some files are stored, one is on its way.
                if (++seen === 2) child?.kill("SIGKILL");
                return false;
              },
            });
            const killed = await run(args, env, (c) => (child = c));
            assert.equal(killed.signal, "SIGKILL", `kill point ${n}: ${killed.stderr}`);
            proxy.faults.length = 0;
            const again = await run(args, env);
            assert.equal(again.code, 0, `kill point ${n}: ${again.stderr}`);
            await assertStoredOnce(azurite, emulator, container, "k/");
          });
        });
      });
    }
  },
);

test(
  "azure (Azurite): 503 with Retry-After, 500 ServerBusy and a connection reset mid-upload are retried; every blob is whole",
  AZURITE,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withAzure(async (azurite, container, proxy) => {
        const isBlock = (u: string) => /[?&]comp=block(&|$)/.test(u);
        const isPutBlob = (u: string) => !u.includes("?");
        proxy.faults.push(
          { when: (r) => r.method === "HEAD", status: 503, code: "ServerBusy", retryAfter: "0" },
          { when: (r) => r.method === "PUT" && isPutBlob(r.url), status: 503, retryAfter: "0" },
          { when: (r) => r.method === "PUT" && isBlock(r.url), status: 500, code: "ServerBusy" },
          { when: (r) => r.method === "PUT" && isBlock(r.url), reset: true },
          { when: (r) => r.method === "PUT" && isPutBlob(r.url), reset: true },
          { when: (r) => r.method === "PUT" && r.url.includes("comp=blocklist"), status: 500 },
        );
        const env = azureEnv(emulator, via(proxy));
        const r = await run(["--output-dir", `az://${container}/f`], env);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(proxy.faults, [], "every fault was met");
        assert.ok(proxy.requests.some((q) => q.outcome === "reset" && q.bodyBytes > 0));
        await assertStoredOnce(azurite, emulator, container, "f/");
      });
    });
  },
);

test(
  "azure (Azurite): a wrong key (403), a missing container (404) and a skewed clock fail at once, before any download",
  AZURITE,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withAzure(async (_azurite, container, proxy) => {
        const wrongKey = `DefaultEndpointsProtocol=http;AccountName=${DEVELOPMENT_ACCOUNT};` +
          `AccountKey=${Buffer.from("x".repeat(64)).toString("base64")};BlobEndpoint=${
            via(proxy)
          };`;
        const cases: Array<[string, Record<string, string>, string, RegExp]> = [
          [
            "403",
            { AZURE_STORAGE_CONNECTION_STRING: wrongKey },
            container,
            /answered 403 .*check AZURE_STORAGE_CONNECTION_STRING/,
          ],
          [
            "404",
            {},
            "no-such-container",
            /container no-such-container does not exist in storage account .*az storage container create/,
          ],
        ];
        for (const [name, extra, target, message] of cases) {
          const r = await run(
            ["--output-dir", `az://${target}/p`],
            azureEnv(emulator, via(proxy), extra),
          );
          assert.equal(r.code, 1, `${name}: ${r.stderr}`);
          assert.match(r.stderr, message, name);
          assert.equal(
            r.stderr.trim().split("\n").filter((l) => /error/i.test(l)).length,
            1,
            r.stderr,
          );
          assert.ok(!r.stderr.includes(wrongKey.slice(70, 100)), "no key in the output");
        }
        proxy.dateShiftMs = 20 * 60_000;
        const skewed = await run(
          ["--output-dir", `az://${container}/p`],
          azureEnv(emulator, via(proxy)),
        );
        assert.equal(skewed.code, 1, skewed.stderr);
        assert.match(
          skewed.stderr,
          /clock is 1[12]\d\d s behind the clock of storage account .*set the clock right/,
        );
        assert.equal(emulator.downloadRequests().length, 0, "nothing was downloaded");
        assert.deepEqual(writes(proxy), [], "nothing was written");
      });
    });
  },
);

test(
  "azure (Azurite): a SAS token that allows writing stores every file; one that cannot write or is forged fails before any download",
  AZURITE,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withAzure(async (azurite, container, proxy) => {
        const sasEnv = (token: string) =>
          azureEnv(emulator, via(proxy), {
            AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${
              via(proxy)
            };SharedAccessSignature=${token}`,
          });
        const expiry = new Date(Date.now() + 3_600_000);
        const good = accountSas("rcwl", expiry);
        const ok = await run(["--output-dir", `az://${container}/sas`], sasEnv(good));
        assert.equal(ok.code, 0, ok.stderr);
        assert.ok(proxy.requests.every((q) => !q.headers.authorization), "no Shared Key sent");
        await assertStoredOnce(azurite, emulator, container, "sas/");

        const downloads = emulator.downloadRequests().length;
        const readOnly = await run(
          ["--output-dir", `az://${container}/ro`],
          sasEnv(accountSas("rl", expiry)),
        );
        assert.equal(readOnly.code, 1, readOnly.stderr);
        assert.match(readOnly.stderr, /does not allow write \(w\).*sp=rcw/);
        const forged = accountSas("rcwl", expiry, Buffer.from("y".repeat(64)).toString("base64"));
        const refused = await run(["--output-dir", `az://${container}/ro`], sasEnv(forged));
        assert.equal(refused.code, 1, refused.stderr);
        assert.match(refused.stderr, /answered 403/);
        assert.equal(emulator.downloadRequests().length, downloads, "nothing more downloaded");
        for (const r of [ok, readOnly, refused]) {
          const sig = new URLSearchParams(good).get("sig")!;
          assert.ok(!r.stderr.includes(sig) && !r.stderr.includes(encodeURIComponent(sig)));
        }
      });
    });
  },
);

test(
  "azure (stand-in): --retain-days sets a version-level immutability policy on every blob, Locked for compliance",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const standin = await startImmutabilityStandin({ container: "worm", versionLevelWorm: true });
      try {
        const env = envFor(emulator, {
          AZURE_STORAGE_CONNECTION_STRING: standin.connectionString,
          OAI_COMPLIANCE_STORE_PART_BYTES: String(PART_BYTES),
        });
        const started = Date.now();
        const r = await run(
          ["--output-dir", "az://worm/sec", "--retain-days", "7", "--retain-mode", "compliance"],
          env,
        );
        assert.equal(r.code, 0, r.stderr);
        const expected = expectedKeys(emulator, "sec/", { gzip: false, layout: "plain" });
        // The stored files' blobs (the archive's manifests aside).
        const files = () => [...standin.versions].filter(([name]) => notManifest({ name }));
        assert.deepEqual(files().map(([name]) => name).sort(), [...expected.keys()].sort());
        for (const [name, versions] of files()) {
          assert.equal(versions.length, 1, name);
          const policy = versions[0].policy!;
          assert.equal(policy.mode, "Locked", name);
          const until = Date.parse(policy.until);
          assert.ok(until >= started + 7 * 86_400_000 - 1000, `${name} until ${policy.until}`);
          assert.ok(until <= Date.now() + 7 * 86_400_000 + 1000, `${name} until ${policy.until}`);
          assert.equal(sha256(versions[0].bytes), await emulator.sha256Of(expected.get(name)!));
        }
        // The policy went with the commit of a block blob, not only with Put Blob.
        const lists = standin.requests.filter((q) => q.query.comp === "blocklist");
        assert.ok(lists.length > 0);
        for (const q of lists) assert.equal(q.headers["x-ms-immutability-policy-mode"], "Locked");

        // Governance is Unlocked; an altered blob is written again as a new version.
        const altered = files()[0][1];
        altered[0].metadata.sha256 = "0".repeat(64);
        const again = await run(
          ["--output-dir", "az://worm/sec", "--retain-days", "1"],
          env,
        );
        assert.equal(again.code, 0, again.stderr);
        assert.equal(altered.length, 2, "a new version, the old one kept");
        assert.equal(altered[1].policy?.mode, "Unlocked");
      } finally {
        await standin.close();
      }
    });
  },
);

test(
  "azure (stand-in): --retain-days on a container without version-level immutability is refused before any download",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const standin = await startImmutabilityStandin({
        container: "plain",
        versionLevelWorm: false,
      });
      try {
        const env = envFor(emulator, { AZURE_STORAGE_CONNECTION_STRING: standin.connectionString });
        const r = await run(["--output-dir", "az://plain/x", "--retain-days", "30"], env);
        assert.equal(r.code, 2, r.stderr); // As S3's bucket without Object Lock: a setting to fix.
        assert.match(
          r.stderr,
          /--retain-days needs version-level immutability support on container plain.*enable/,
        );
        assert.equal(emulator.downloadRequests().length, 0);
        assert.equal(standin.versions.size, 0);
      } finally {
        await standin.close();
      }
    });
  },
);
