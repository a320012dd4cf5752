/**
 * Manifests and `verify` for bucket archives, black-box: the real CLI against the emulator into a
 * real Ceph RADOS Gateway (`s3://`) and Azurite (`az://`). A run writes its manifest to
 * `PREFIX/_manifest/` and `verify s3://...` exits 0; a run with nothing new writes an empty one;
 * one changed, one deleted and one stray object and a deleted middle manifest are exactly four
 * findings, each consequence under its cause, as for a local directory.
 */
import { test } from "node:test";
import type { ChildProcess } from "node:child_process";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { runCli, RUNS_WITH_COMPILE_PERMISSIONS } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { withDir } from "./helpers/mod.ts";
import type { Emulator } from "./emulator/mod.ts";
import {
  type Ceph,
  CEPH_SKIP,
  createBucket,
  listKeys,
  s3Request,
  SECRET_KEY,
  startCeph,
} from "./servers/ceph.ts";
import { accountSas, azuriteSkip, connectionStringFor, startAzurite } from "./servers/azurite.ts";
import { DEVELOPMENT_KEY } from "../lib/azure/credentials.ts";
import type { Finding, VerifyReport } from "../lib/verify/model.ts";

const S3 = { skip: CEPH_SKIP, timeout: 240_000 };
const AZURE = { skip: azuriteSkip() ?? false, timeout: 240_000 };
/**
 * A killed run's live mark is judged dead at once only where the CLI can read its pid namespace
 * (/proc/self/ns/pid): Deno refuses that without --allow-all, so under `deno compile`'s grants a
 * mark expires by time (5 minutes) and the re-run right after leaves the files to a later run.
 */
const NAMESPACE_SKIP = RUNS_WITH_COMPILE_PERMISSIONS
  ? "Deno without --allow-all cannot read /proc/self/ns/pid: live marks expire by time only"
  : false;
const PREFIX = "archive/openai/";
const BEFORES = [["--before", "2026-07-02T02:30:00Z"], ["--before", "2026-07-02T05:30:00Z"], []];

const problemsOf = (report: VerifyReport): Finding[] =>
  report.findings.filter((f) => f.severity === "problem");

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** What a test needs of a store: the CLI's environment, and reads and writes behind its back. */
interface Bucket {
  /** `s3://BUCKET/PREFIX` or `az://CONTAINER/PREFIX`. */
  target: string;
  env: Record<string, string>;
  keys(prefix: string): Promise<string[]>;
  get(key: string): Promise<Uint8Array>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** The secret a run or verify must never print. */
  secret: string;
  /** Credentials that may only read and list, where the store makes them easily. */
  readOnlyEnv?: Record<string, string>;
}

async function cephBucket(): Promise<Bucket> {
  const ceph: Ceph = await startCeph();
  const bucket = `t-verify-${randomBytes(4).toString("hex")}`;
  await createBucket(ceph, bucket);
  const checked = async (method: string, key: string, body?: Uint8Array) => {
    const answer = await s3Request(ceph, method, `/${bucket}/${key}`, body ? { body } : {});
    assert.ok(answer.status < 300, `${method} ${key}: ${answer.status} ${answer.text}`);
    return answer.bytes;
  };
  return {
    target: `s3://${bucket}/${PREFIX}`,
    env: { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50" },
    keys: async (prefix) => (await listKeys(ceph, bucket, prefix)).map((o) => o.key).sort(),
    get: (key) => checked("GET", key),
    put: async (key, bytes) => void await checked("PUT", key, bytes),
    delete: async (key) => void await checked("DELETE", key),
    secret: SECRET_KEY,
  };
}

async function azuriteContainer(): Promise<Bucket> {
  const azurite = await startAzurite();
  const container = `t${randomBytes(6).toString("hex")}`;
  await azurite.createContainer(container);
  const send = async (method: "PUT" | "DELETE", key: string, body?: Uint8Array) => {
    const answer = await azurite.client.send({
      method,
      container,
      blob: key,
      headers: body ? { "x-ms-blob-type": "BlockBlob" } : {},
      body,
      what: `${method} ${key}`,
    });
    assert.ok(answer.status < 300, `${method} ${key}: ${answer.status} ${answer.text}`);
  };
  return {
    target: `az://${container}/${PREFIX}`,
    env: {
      AZURE_STORAGE_CONNECTION_STRING: connectionStringFor(azurite.blobEndpoint),
      OAI_COMPLIANCE_STORE_BACKOFF_MS: "10",
    },
    keys: async (prefix) => (await azurite.listBlobs(container, prefix)).map((b) => b.name).sort(),
    get: (key) => azurite.blobBytes(container, key),
    put: (key, bytes) => send("PUT", key, bytes),
    delete: (key) => send("DELETE", key),
    secret: DEVELOPMENT_KEY,
    readOnlyEnv: {
      AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${azurite.blobEndpoint};` +
        `SharedAccessSignature=${accountSas("rl", new Date(Date.now() + 3_600_000))}`,
    },
  };
}

function runInto(emulator: Emulator, bucket: Bucket, state: string, extra: string[] = []) {
  return runCli(
    [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", bucket.target, "--state", state, ...extra],
    { env: envFor(emulator, bucket.env), timeoutMs: 120_000 },
  );
}

async function verify(
  bucket: Bucket,
  env = bucket.env,
): Promise<{ code: number | null; report: VerifyReport; stderr: string }> {
  const result = await runCli(["verify", bucket.target, "--json"], {
    env,
    timeoutMs: 120_000,
  });
  assert.ok(!result.stderr.includes(bucket.secret), "the store's secret is never printed");
  const text = new TextDecoder().decode(result.stdout);
  assert.ok(text.trim().length > 0, `verify printed no report: ${result.stderr}`);
  return { code: result.code, report: JSON.parse(text), stderr: result.stderr };
}

/** The keys of `_manifest/` (manifests, and anything a run left there). */
function manifestKeys(bucket: Bucket): Promise<string[]> {
  return bucket.keys(`${PREFIX}_manifest/`);
}

async function manifestLines(bucket: Bucket, key: string): Promise<Record<string, unknown>[]> {
  const text = new TextDecoder().decode(await bucket.get(key));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

/** A run then verify exits 0; the manifest is in `_manifest/`; a run with nothing new adds an empty one. */
async function cleanRunThenVerify(bucket: Bucket): Promise<void> {
  await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
    await withDir("oai-verify-store-", async (dir) => {
      const state = join(dir, "s.json");
      const ids = idsOf(emulator);
      const run = await runInto(emulator, bucket, state, ["--gzip"]);
      assert.equal(run.code, 0, run.stderr);
      const keys = await manifestKeys(bucket);
      assert.equal(keys.length, 1, `one manifest and no lease or live mark left: ${keys}`);
      assert.match(
        keys[0],
        /^archive\/openai\/_manifest\/\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{12}\.jsonl$/,
      );
      const lines = await manifestLines(bucket, keys[0]);
      assert.equal(lines[0].type, "header");
      assert.equal(lines[0].sequence, 1);
      const files = lines.filter((l) => l.type === "file");
      assert.deepEqual(files.map((l) => l.id), ids, "one line per file, in confirmation order");
      // Stored where the key says, relative to the prefix, with the stored (gzip) size and hash.
      const first = files[0];
      assert.equal(first.path, `AUTH_LOG/2026-07-02/${ids[0]}.jsonl.gz`);
      assert.equal(first.file_sha256, await emulator.sha256Of(ids[0]));
      const stored = await bucket.get(`${PREFIX}${first.path}`);
      assert.equal(first.stored_size, stored.length);
      assert.equal(first.stored_sha256, sha256(stored));
      assert.equal(typeof first.lines, "number");
      assert.equal(lines.at(-1)!.type, "close");

      const { code, report, stderr } = await verify(bucket);
      assert.equal(code, 0, stderr);
      assert.equal(report.intact, true);
      assert.deepEqual(problemsOf(report), []);
      assert.equal(report.types[0].verified, 5);
      assert.match(stderr, /^AUTH_LOG: 5 files, .* 5 verified, 0 problems$/m);

      // Nothing new: an empty manifest still proves the window was asked about.
      const again = await runInto(emulator, bucket, state, ["--gzip"]);
      assert.equal(again.code, 0, again.stderr);
      const both = await manifestKeys(bucket);
      assert.equal(both.length, 2, `${both}`);
      const empty = await manifestLines(bucket, both[1]);
      assert.deepEqual(empty.map((l) => l.type), ["header", "close"]);
      assert.equal(empty[0].sequence, 2);
      assert.equal((await verify(bucket)).code, 0);
      if (bucket.readOnlyEnv) {
        const readOnly = await verify(bucket, bucket.readOnlyEnv);
        assert.equal(readOnly.code, 0, `verify needs only read and list: ${readOnly.stderr}`);
      }

      // A prefix with nothing under it is a mistyped name, not an intact archive.
      const typo = await runCli(["verify", bucket.target.replace(/openai\/$/, "opneai/")], {
        env: bucket.env,
      });
      assert.equal(typo.code, 1, typo.stderr);
      assert.match(typo.stderr, /cannot verify .*opneai\/: nothing is stored under it/);
    });
  });
}

/**
 * Three runs; then one object changed, one deleted, a stray one added and the middle manifest
 * deleted: exactly four findings, the removed manifest's files and window under its break.
 */
async function fourFindings(bucket: Bucket): Promise<void> {
  await withEmulator({ files: hourlyFiles(9) }, async (emulator) => {
    await withDir("oai-verify-store-", async (dir) => {
      const state = join(dir, "s.json");
      const ids = idsOf(emulator);
      for (const before of BEFORES) {
        const run = await runInto(emulator, bucket, state, before);
        assert.equal(run.code, 0, run.stderr);
      }
      const manifests = await manifestKeys(bucket);
      assert.equal(manifests.length, 3, `${manifests}`);
      assert.equal((await verify(bucket)).code, 0);

      const key = (i: number) => `${PREFIX}AUTH_LOG/2026-07-02/${ids[i]}.jsonl`;
      const changed = await bucket.get(key(0));
      changed[5] ^= 0x01;
      await bucket.put(key(0), changed);
      await bucket.delete(key(7));
      await bucket.put(`${PREFIX}notes.jsonl`, new TextEncoder().encode('{"event_id":"x"}\n'));
      await bucket.delete(manifests[1]);

      const { code, report, stderr } = await verify(bucket);
      assert.equal(code, 3, stderr);
      assert.equal(report.intact, false);
      const problems = problemsOf(report);
      assert.deepEqual(
        problems.map((f) => f.kind).sort(),
        ["altered", "chain_break", "missing", "unexpected"],
        stderr,
      );
      const byKind = Object.fromEntries(problems.map((f) => [f.kind, f]));
      assert.equal(byKind.altered.path, `AUTH_LOG/2026-07-02/${ids[0]}.jsonl`);
      assert.equal(byKind.missing.path, `AUTH_LOG/2026-07-02/${ids[7]}.jsonl`);
      assert.equal(byKind.unexpected.path, "notes.jsonl");
      const under = byKind.chain_break.consequences ?? [];
      assert.deepEqual(
        under.filter((c) => c.kind === "unexpected").map((c) => c.path).sort(),
        [3, 4, 5].map((i) => `AUTH_LOG/2026-07-02/${ids[i]}.jsonl`),
      );
      assert.equal(under.filter((c) => c.kind === "window_hole").length, 1);
      assert.match(stderr, /^NOT intact: 4 problems found/m);
    });
  });
}

/**
 * A run killed with SIGKILL after storing some objects, before its manifest: the re-run right
 * after finds the killed run's live mark dead (its process is gone), records those objects as
 * recovered, and verify exits 0 with every file in a manifest once.
 */
async function killedRunRecovered(bucket: Bucket): Promise<void> {
  await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
    await withDir("oai-verify-store-", async (dir) => {
      const state = join(dir, "s.json");
      const ids = idsOf(emulator);
      emulator.inject({ target: "storage", id: ids[3], stallBeforeHeadersMs: 90_000 });
      let child: ChildProcess | undefined;
      const killed = runCli(
        [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", bucket.target, "--state", state],
        { env: envFor(emulator, bucket.env), timeoutMs: 120_000, onSpawn: (c) => child = c },
      );
      const files = `${PREFIX}AUTH_LOG/`;
      const deadline = Date.now() + 60_000;
      while ((await bucket.keys(files)).length < 3 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const stored = await bucket.keys(files);
      assert.ok(stored.length >= 3, `the first three files stored before the stall: ${stored}`);
      assert.ok(
        (await manifestKeys(bucket)).some((k) => k.includes("/.live-")),
        "the run at work is marked live",
      );
      child!.kill("SIGKILL");
      const first = await killed;
      assert.equal(first.signal, "SIGKILL", first.stderr);
      assert.deepEqual(
        (await manifestKeys(bucket)).filter((k) => k.endsWith(".jsonl")),
        [],
        "killed before its manifest",
      );

      const again = await runInto(emulator, bucket, state);
      assert.equal(again.code, 0, again.stderr);
      const keys = await manifestKeys(bucket);
      assert.equal(keys.length, 1, `one manifest, the dead run's mark swept: ${keys}`);
      const lines = (await manifestLines(bucket, keys[0])).filter((l) => l.type === "file");
      assert.deepEqual(lines.map((l) => l.id).sort(), [...ids].sort(), "every file, once");
      const recovered = lines.filter((l) => l.recovered === true).map((l) => `${PREFIX}${l.path}`);
      assert.deepEqual(recovered.sort(), stored, "what the killed run stored is recovered");
      const { code, stderr } = await verify(bucket);
      assert.equal(code, 0, stderr);
    });
  });
}

test(
  "s3: a run writes its manifest to _manifest/, verify exits 0; nothing new: an empty one",
  S3,
  async () => {
    await cleanRunThenVerify(await cephBucket());
  },
);

test(
  "s3: a changed, a deleted, a stray object and a deleted middle manifest: four findings",
  S3,
  async () => {
    await fourFindings(await cephBucket());
  },
);

test(
  "az: a run writes its manifest to _manifest/, verify exits 0; nothing new: an empty one",
  AZURE,
  async () => {
    await cleanRunThenVerify(await azuriteContainer());
  },
);

test(
  "az: a changed, a deleted, a stray blob and a deleted middle manifest: four findings",
  AZURE,
  async () => {
    await fourFindings(await azuriteContainer());
  },
);

test(
  "s3: after kill -9, the re-run records the killed run's objects as recovered",
  { ...S3, skip: S3.skip || NAMESPACE_SKIP },
  async () => {
    await killedRunRecovered(await cephBucket());
  },
);

test(
  "az: after kill -9, the re-run records the killed run's blobs as recovered",
  { ...AZURE, skip: AZURE.skip || NAMESPACE_SKIP },
  async () => {
    await killedRunRecovered(await azuriteContainer());
  },
);
