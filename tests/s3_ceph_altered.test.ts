// s3 (Ceph RGW): an object altered out of band in a bucket with Object Lock, on a real Ceph RADOS
// Gateway (tests/servers/ceph.ts). Nothing can be renamed or deleted there, so a re-run that finds
// the object altered writes the listing's bytes as a new version and reports the altered one as
// kept aside (the version that holds it); the versions (ListObjectVersions) show all of them, the
// tool's retained under Object Lock and refused deletion without a governance bypass. In a bucket
// without versions the altered object is first copied within the store (CopyObject) to
// `<key>.altered-<UTC time>` beside it, as a local directory renames it; one larger than a
// CopyObject copies (5 GiB, lowered here by OAI_COMPLIANCE_S3_MAX_COPY_BYTES) by a multipart copy
// (UploadPartCopy), which a change of the object between the HEAD and the copy stops.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { LogFile } from "../lib/log_file.ts";
import type { KeptAside } from "../lib/destinations/kind.ts";
import { ObjectStoreDestination } from "../lib/destinations/_object_store.ts";
import { s3Store } from "../lib/destinations/s3.ts";
import { relativeKey } from "../lib/destinations/layout.ts";
import { type CliResult, lines, runCli, summaryOf } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import type { Emulator } from "./emulator/mod.ts";
import {
  type Ceph,
  CEPH_SKIP,
  createBucket,
  listKeys,
  listUploads,
  s3Request,
  startCeph,
  startFaultProxy,
} from "./servers/ceph.ts";

const OPTIONS = { skip: CEPH_SKIP, timeout: 240_000 };
const NAMING = { gzip: false, layout: "plain" as const };
const FORGED = new TextEncoder().encode('{"event_id":"forged","type":"not what the API served"}\n');

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

interface Version {
  versionId: string;
  latest: boolean;
  size: number;
}

/** The versions of `key`, newest first (ListObjectVersions). */
async function versionsOf(
  ceph: Awaited<ReturnType<typeof startCeph>>,
  bucket: string,
  key: string,
): Promise<Version[]> {
  const answer = await s3Request(ceph, "GET", `/${bucket}`, {
    query: `prefix=${encodeURIComponent(key)}&versions=`,
  });
  assert.equal(answer.status, 200, answer.text);
  return [...answer.text.matchAll(/<Version>([\s\S]*?)<\/Version>/g)]
    .map((m) => m[1])
    .filter((v) => /<Key>([^<]*)<\/Key>/.exec(v)![1] === key)
    .map((v) => ({
      versionId: /<VersionId>([^<]*)<\/VersionId>/.exec(v)![1],
      latest: /<IsLatest>true<\/IsLatest>/.test(v),
      size: Number(/<Size>(\d+)<\/Size>/.exec(v)![1]),
    }));
}

test(
  "s3 (Ceph RGW): with Object Lock, an object altered out of band is kept as its version, reported, and the listed file written as a new retained version",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = `t-altered-${crypto.randomUUID().slice(0, 8)}`;
    await createBucket(ceph, bucket, true); // Object Lock, which makes the bucket versioned.
    await withEmulator({ files: hourlyFiles(2, { sizes: [1500, 900] }) }, async (emulator) => {
      const target = `s3://${bucket}/p`;
      const args = [
        PRINCIPAL,
        "AUTH_LOG",
        "100",
        AFTER,
        "--output-dir",
        target,
        "--retain-days",
        "1",
        "--log-format",
        "json",
      ];
      const env = envFor(emulator, { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50" });
      const first = await runCli(args, { env, timeoutMs: 120_000 });
      assert.equal(first.code, 0, first.stderr);

      const [id, other] = idsOf(emulator);
      const spec = emulator.files.find((f) => f.id === id)!;
      const content = await emulator.contentOf(id);
      const file: LogFile = {
        id,
        event_type: "AUTH_LOG",
        end_time: spec.endTime,
        file_size: content.length,
        file_sha256: sha256(content),
      };
      const relative = relativeKey(file, "AUTH_LOG", NAMING);
      const key = `p/${relative}`;
      const [original] = await versionsOf(ceph, bucket, key);
      assert.ok(original, `${key} was stored`);

      // Altered out of band: another PUT to the key, of other bytes (a new version under Lock).
      const put = await s3Request(ceph, "PUT", `/${bucket}/${key}`, { body: FORGED });
      assert.equal(put.status, 200, put.text);
      const forgedVersion = put.headers.get("x-amz-version-id")!;
      assert.ok(forgedVersion && forgedVersion !== original.versionId, "a new version");

      // The shared core on Ceph itself: the altered object is not whole, and is reported with
      // the version that keeps it and what that version holds (read back from Ceph).
      const kept: KeptAside[] = [];
      const core = new ObjectStoreDestination(s3Store(target, ceph.env), {
        prefix: "p/",
        naming: NAMING,
        onKeptAside: (k) => kept.push(k),
        onNote: (text) => assert.fail(`a note instead of kept aside: ${text}`),
      });
      assert.equal(await core.alreadyStored(file, "AUTH_LOG"), false);
      assert.equal(kept.length, 1);
      assert.equal(kept[0].key, relative);
      assert.equal(kept[0].asideKey, `${relative}?versionId=${forgedVersion}`);
      assert.equal(kept[0].path, `${target}/${relative}`);
      assert.equal(kept[0].size, FORGED.length);
      assert.equal(kept[0].sha256, sha256(FORGED));
      await core.finish();

      // The re-run: written again as a new version, reported once, counted in the summary.
      const downloads = emulator.downloadRequests(id).length;
      const again = await runCli(args, { env, timeoutMs: 120_000 });
      assert.equal(again.code, 0, again.stderr);
      const warnings = lines(again.stderr).map((l) => JSON.parse(l))
        .filter((e) => e.event === "warning").map((e) => e.message as string);
      const aside = warnings.filter((m) => m.includes("kept aside"));
      assert.equal(aside.length, 1, again.stderr);
      assert.ok(aside[0].includes(`${target}/${relative}?versionId=${forgedVersion}`), aside[0]);
      assert.equal(summaryOf(again).kept_aside, 1);
      assert.equal(emulator.downloadRequests(id).length, downloads + 1, "downloaded again");
      assert.equal(emulator.downloadRequests(other).length, 1, "the whole one is not");

      // The run's manifest records it (both names, what the altered version holds), and verify
      // takes it for an explained alteration, not a problem.
      const manifests = (await listKeys(ceph, bucket, "p/_manifest/"))
        .filter((o) => o.key.endsWith(".jsonl"));
      const recorded = [];
      for (const { key: name } of manifests) {
        const text = (await s3Request(ceph, "GET", `/${bucket}/${name}`)).text;
        recorded.push(
          ...text.trim().split("\n").map((l) => JSON.parse(l)).filter((l) =>
            l.type === "kept_aside"
          ),
        );
      }
      assert.equal(recorded.length, 1, JSON.stringify(manifests));
      assert.equal(recorded[0].id, id);
      assert.equal(recorded[0].path, relative);
      assert.equal(recorded[0].aside, `${relative}?versionId=${forgedVersion}`);
      assert.equal(recorded[0].aside_size, FORGED.length);
      assert.equal(recorded[0].aside_sha256, sha256(FORGED));
      const verified = await runCli(["verify", target, "--json"], { env, timeoutMs: 120_000 });
      assert.equal(verified.code, 0, verified.stderr);
      const report = JSON.parse(new TextDecoder().decode(verified.stdout)) as {
        findings: Array<{ kind: string; severity: string; id?: string }>;
      };
      assert.ok(
        report.findings.some((f) => f.kind === "kept_aside" && f.id === id),
        JSON.stringify(report.findings),
      );
      assert.ok(
        !report.findings.some((f) => f.severity === "problem"),
        JSON.stringify(report.findings),
      );

      // Every version is there: the tool's first, the forged one, the tool's new latest.
      const versions = await versionsOf(ceph, bucket, key);
      assert.equal(versions.length, 3, JSON.stringify(versions));
      const latest = versions.find((v) => v.latest)!;
      assert.ok(![original.versionId, forgedVersion].includes(latest.versionId));
      const bytesOf = async (versionId: string) => {
        const got = await s3Request(ceph, "GET", `/${bucket}/${key}`, {
          query: `versionId=${encodeURIComponent(versionId)}`,
        });
        assert.equal(got.status, 200, got.text);
        return got;
      };
      const now = await bytesOf(latest.versionId);
      assert.equal(sha256(now.bytes), sha256(content), "the latest is the listed file");
      assert.equal(now.headers.get("x-amz-meta-sha256"), sha256(content));
      assert.equal(sha256((await bytesOf(forgedVersion)).bytes), sha256(FORGED), "evidence kept");
      assert.equal(sha256((await bytesOf(original.versionId)).bytes), sha256(content));

      // The tool's versions are retained (GOVERNANCE, a day), and cannot be deleted without a
      // governance bypass.
      for (const versionId of [original.versionId, latest.versionId]) {
        const query = `retention=&versionId=${encodeURIComponent(versionId)}`;
        const retention = await s3Request(ceph, "GET", `/${bucket}/${key}`, { query });
        assert.equal(retention.status, 200, retention.text);
        assert.match(retention.text, /<Mode>GOVERNANCE<\/Mode>/);
        const until = Date.parse(/<RetainUntilDate>([^<]+)</.exec(retention.text)![1]);
        assert.ok(until > Date.now() + 23 * 3_600_000, `retained until ${new Date(until)}`);
        const deleted = await s3Request(ceph, "DELETE", `/${bucket}/${key}`, {
          query: `versionId=${encodeURIComponent(versionId)}`,
        });
        assert.equal(deleted.status, 403, `deleting a retained version: ${deleted.text}`);
      }
      assert.equal((await versionsOf(ceph, bucket, key)).length, 3, "nothing was deleted");

      // A third run finds the latest whole: nothing more is written.
      const third = await runCli(args, { env, timeoutMs: 120_000 });
      assert.equal(third.code, 0, third.stderr);
      assert.equal(summaryOf(third).kept_aside ?? 0, 0);
      assert.equal((await versionsOf(ceph, bucket, key)).length, 3);
    });
  },
);

test(
  "s3 (Ceph RGW): in a bucket without versioning, an altered object is copied aside to <key>.altered-<time> (CopyObject), reported, and the listed file written over it",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = `t-unversioned-${crypto.randomUUID().slice(0, 8)}`;
    await createBucket(ceph, bucket);
    await withEmulator({ files: hourlyFiles(2, { sizes: [1500, 900] }) }, async (emulator) => {
      const target = `s3://${bucket}/p`;
      const args = [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--output-dir", target, "--log-format"];
      const env = envFor(emulator, { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50" });
      assert.equal((await runCli([...args, "json"], { env, timeoutMs: 120_000 })).code, 0);
      const [id, other] = idsOf(emulator);
      const spec = emulator.files.find((f) => f.id === id)!;
      const content = await emulator.contentOf(id);
      const file: LogFile = { id, event_type: "AUTH_LOG", end_time: spec.endTime };
      const relative = relativeKey(file, "AUTH_LOG", NAMING);
      const key = `p/${relative}`;
      // Altered out of band, its metadata too (as a careless re-upload would leave it).
      const put = await s3Request(ceph, "PUT", `/${bucket}/${key}`, {
        body: FORGED,
        headers: { "x-amz-meta-size": "1", "x-amz-meta-note": "forged" },
      });
      assert.equal(put.status, 200, put.text);
      assert.equal(put.headers.get("x-amz-version-id") ?? "null", "null", "not versioned");

      const before = Date.now();
      const downloads = emulator.downloadRequests(id).length;
      const again = await runCli([...args, "json"], { env, timeoutMs: 120_000 });
      assert.equal(again.code, 0, again.stderr);
      const warnings = lines(again.stderr).map((l) => JSON.parse(l))
        .filter((e) => e.event === "warning").map((e) => e.message as string);
      const aside = warnings.filter((m) => m.includes("kept aside"));
      assert.equal(aside.length, 1, again.stderr);
      assert.equal(summaryOf(again).kept_aside, 1);
      assert.equal(emulator.downloadRequests(id).length, downloads + 1, "downloaded again");
      assert.equal(emulator.downloadRequests(other).length, 1, "the whole one is not");

      // The copy beside it: <key>.altered-<UTC time, ISO basic>, holding the altered bytes (and
      // their metadata); the key holds the listing's bytes again.
      const keys = (await listKeys(ceph, bucket, "p/")).map((o) => o.key)
        .filter((k) => k.startsWith(`${key}.altered-`));
      assert.equal(keys.length, 1, JSON.stringify(keys));
      const asideKey = keys[0];
      const stamp = /\.altered-(\d{8}T\d{6}\.\d{3}Z)$/.exec(asideKey)?.[1];
      assert.ok(stamp, asideKey);
      const at = Date.parse(
        stamp.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)/, "$1-$2-$3T$4:$5:$6"),
      );
      assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `${stamp} is the re-run's time`);
      assert.ok(aside[0].includes(`${target}/${relative}`), aside[0]);
      assert.ok(aside[0].includes(`s3://${bucket}/${asideKey}`), aside[0]);
      const kept = await s3Request(ceph, "GET", `/${bucket}/${asideKey}`);
      assert.equal(kept.status, 200, kept.text);
      assert.equal(sha256(kept.bytes), sha256(FORGED), "the evidence is kept");
      assert.equal(kept.headers.get("x-amz-meta-note"), "forged", "with its metadata");
      const now = await s3Request(ceph, "GET", `/${bucket}/${key}`);
      assert.equal(sha256(now.bytes), sha256(content), "the listed file");
      assert.equal(now.headers.get("x-amz-meta-sha256"), sha256(content));

      // The manifest records both names and what the copy holds; verify explains it.
      const manifests = (await listKeys(ceph, bucket, "p/_manifest/"))
        .filter((o) => o.key.endsWith(".jsonl"));
      const recorded = [];
      for (const { key: name } of manifests) {
        const text = (await s3Request(ceph, "GET", `/${bucket}/${name}`)).text;
        recorded.push(
          ...text.trim().split("\n").map((l) => JSON.parse(l)).filter((l) =>
            l.type === "kept_aside"
          ),
        );
      }
      assert.equal(recorded.length, 1, JSON.stringify(manifests));
      assert.equal(recorded[0].id, id);
      assert.equal(recorded[0].path, relative);
      assert.equal(recorded[0].aside, asideKey.slice("p/".length));
      assert.equal(recorded[0].aside_size, FORGED.length);
      assert.equal(recorded[0].aside_sha256, sha256(FORGED));
      const verified = await runCli(["verify", target, "--json"], { env, timeoutMs: 120_000 });
      assert.equal(verified.code, 0, verified.stderr);
      const report = JSON.parse(new TextDecoder().decode(verified.stdout)) as {
        findings: Array<{ kind: string; severity: string; id?: string }>;
      };
      assert.ok(
        report.findings.some((f) => f.kind === "kept_aside" && f.id === id),
        JSON.stringify(report.findings),
      );
      assert.ok(
        !report.findings.some((f) => f.severity === "problem"),
        JSON.stringify(report.findings),
      );

      // A third run finds the key whole: nothing more is copied or written.
      const third = await runCli([...args, "json"], { env, timeoutMs: 120_000 });
      assert.equal(third.code, 0, third.stderr);
      assert.equal(summaryOf(third).kept_aside ?? 0, 0);
      const after = (await listKeys(ceph, bucket, "p/")).map((o) => o.key)
        .filter((k) => k.startsWith(`${key}.altered-`));
      assert.deepEqual(after, [asideKey]);

      // The copy is checked against what the HEAD saw: an object changed since (a stale ETag) is
      // refused, by the store where it honours x-amz-copy-source-if-match (AWS: 412), else by the
      // copy's own ETag (Ceph 16 ignores the condition).
      const store = s3Store(target, ceph.env);
      const seen = (await store.head(key))!;
      await assert.rejects(
        store.copyAside(key, `${key}.check`, { ...seen, etag: '"0123456789abcdef"' }),
        /changed again while it was being kept aside|not the altered object's \d+ bytes/,
      );
      await store.copyAside(key, `${key}.check`, seen);
    });
  },
);

/** `size` bytes of JSON lines that differ with `tag` (an altered object too large for one copy). */
function alteredBytes(size: number, tag: string): Uint8Array {
  const line = new TextEncoder().encode(
    `{"event_id":"forged-${tag}","padding":"${"x".repeat(80)}"}\n`,
  );
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += line.length) bytes.set(line.subarray(0, size - at), at);
  return bytes;
}

/** The kept_aside lines of every manifest under `p/_manifest/`. */
async function keptAsideLines(
  ceph: Awaited<ReturnType<typeof startCeph>>,
  bucket: string,
): Promise<Array<Record<string, unknown>>> {
  const manifests = (await listKeys(ceph, bucket, "p/_manifest/"))
    .filter((o) => o.key.endsWith(".jsonl"));
  const recorded = [];
  for (const { key: name } of manifests) {
    const text = (await s3Request(ceph, "GET", `/${bucket}/${name}`)).text;
    recorded.push(
      ...text.trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.type === "kept_aside"),
    );
  }
  return recorded;
}

/** The largest single CopyObject in these tests: 1 MiB (parts are still S3's 5 MiB minimum). */
const SMALL_MAX_COPY = { OAI_COMPLIANCE_S3_MAX_COPY_BYTES: String(1024 * 1024) };
/** An altered object of 11 MiB: 3 parts of 5, 5 and 1 MiB. */
const LARGE_ALTERED_BYTES = 11 * 1024 * 1024 + 4321;

/** Where a multipart-copy test starts: the tool's first run stored `key`, since altered. */
interface AlteredInBucket {
  ceph: Ceph;
  bucket: string;
  emulator: Emulator;
  /** The altered file's id, and the other file's (left whole). */
  id: string;
  other: string;
  /** The altered file's whole key (below the prefix `p/`). */
  key: string;
  /** Runs the tool again with SMALL_MAX_COPY, adding `args` and `env` to the first run's. */
  rerun(args?: string[], env?: Record<string, string>): Promise<CliResult>;
}

/**
 * Runs `fn` once the tool's first run has stored two files in a new bucket without versioning
 * (named `<bucket>-<random>`) and the first file's object was then overwritten out of band with
 * `altered` (and `headers`).
 */
async function withAlteredInBucket(
  options: { bucket: string; altered: Uint8Array; headers?: Record<string, string> },
  fn: (setup: AlteredInBucket) => Promise<void>,
): Promise<void> {
  const ceph = await startCeph();
  const bucket = `${options.bucket}-${crypto.randomUUID().slice(0, 8)}`;
  await createBucket(ceph, bucket);
  await withEmulator({ files: hourlyFiles(2, { sizes: [1500, 900] }) }, async (emulator) => {
    const target = `s3://${bucket}/p`;
    const args = [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--output-dir", target];
    const env = envFor(emulator, { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50" });
    const first = await runCli(args, { env, timeoutMs: 120_000 });
    assert.equal(first.code, 0, first.stderr);
    const [id, other] = idsOf(emulator);
    const spec = emulator.files.find((f) => f.id === id)!;
    const file: LogFile = { id, event_type: "AUTH_LOG", end_time: spec.endTime };
    const key = `p/${relativeKey(file, "AUTH_LOG", NAMING)}`;
    const put = await s3Request(ceph, "PUT", `/${bucket}/${key}`, {
      body: options.altered,
      headers: options.headers,
    });
    assert.equal(put.status, 200, put.text);
    const rerun = (more: string[] = [], moreEnv: Record<string, string> = {}) =>
      runCli([...args, ...more], {
        env: { ...env, ...SMALL_MAX_COPY, ...moreEnv },
        timeoutMs: 120_000,
      });
    await fn({ ceph, bucket, emulator, id, other, key, rerun });
  });
}

test(
  "s3 (Ceph RGW): in a bucket without versioning, an altered object larger than one CopyObject copies is copied aside in parts (UploadPartCopy), with its bytes and metadata",
  OPTIONS,
  async () => {
    const altered = alteredBytes(LARGE_ALTERED_BYTES, "large");
    const headers = {
      "x-amz-meta-size": "1",
      "x-amz-meta-note": "forged large",
      "content-type": "text/x-forged",
    };
    await withAlteredInBucket({ bucket: "t-partcopy", altered, headers }, async (setup) => {
      const { ceph, bucket, emulator, id, other, key } = setup;
      const content = await emulator.contentOf(id);
      const downloads = emulator.downloadRequests(id).length;
      const again = await setup.rerun(["--log-format", "json"]);
      assert.equal(again.code, 0, again.stderr);
      const warnings = lines(again.stderr).map((l) => JSON.parse(l))
        .filter((e) => e.event === "warning").map((e) => e.message as string);
      const aside = warnings.filter((m) => m.includes("kept aside"));
      assert.equal(aside.length, 1, again.stderr);
      assert.equal(summaryOf(again).kept_aside, 1);
      assert.equal(emulator.downloadRequests(id).length, downloads + 1, "downloaded again");
      assert.equal(emulator.downloadRequests(other).length, 1, "the whole one is not");

      const keys = (await listKeys(ceph, bucket, "p/")).map((o) => o.key)
        .filter((k) => k.startsWith(`${key}.altered-`));
      assert.equal(keys.length, 1, JSON.stringify(keys));
      const asideKey = keys[0];
      assert.ok(aside[0].includes(`s3://${bucket}/${asideKey}`), aside[0]);
      const kept = await s3Request(ceph, "GET", `/${bucket}/${asideKey}`);
      assert.equal(kept.status, 200, kept.text);
      assert.equal(kept.bytes.length, altered.length);
      assert.equal(sha256(kept.bytes), sha256(altered), "the evidence is kept, byte for byte");
      assert.equal(kept.headers.get("x-amz-meta-note"), "forged large", "with its metadata");
      assert.equal(kept.headers.get("x-amz-meta-size"), "1");
      assert.equal(kept.headers.get("content-type"), "text/x-forged", "and its Content-Type");
      // Copied in 3 parts (a multipart object's ETag ends in its part count), not one CopyObject
      // (which keeps the source's plain MD5).
      assert.match(kept.headers.get("etag") ?? "", /-3"?$/, "a multipart copy of 3 parts");
      assert.deepEqual(await listUploads(ceph, bucket, "p/"), [], "no upload left unfinished");

      const now = await s3Request(ceph, "GET", `/${bucket}/${key}`);
      assert.equal(sha256(now.bytes), sha256(content), "the listed file, whole again");
      assert.equal(now.headers.get("x-amz-meta-sha256"), sha256(content));
      const recorded = await keptAsideLines(ceph, bucket);
      assert.equal(recorded.length, 1, JSON.stringify(recorded));
      assert.equal(recorded[0].aside, asideKey.slice("p/".length));
      assert.equal(recorded[0].aside_size, altered.length);
      assert.equal(recorded[0].aside_sha256, sha256(altered));
    });
  },
);

test(
  "s3 (Ceph RGW): an altered object that changes again during its multipart copy stops the run with the state error; nothing is written over it, no copy or upload is left",
  OPTIONS,
  async () => {
    const seenByHead = alteredBytes(LARGE_ALTERED_BYTES, "seen");
    const later = alteredBytes(LARGE_ALTERED_BYTES, "later"); // Same size, other bytes.
    await withAlteredInBucket({ bucket: "t-partchange", altered: seenByHead }, async (setup) => {
      const { ceph, bucket, key } = setup;
      // Changed again (straight at Ceph) as the first UploadPartCopy arrives at the proxy. Ceph 16
      // ignores x-amz-copy-source-if-match (it copies every part of the new bytes): the tool's
      // HEAD of the key after the parts, before CompleteMultipartUpload, is what stops it there
      // (the 412 of a store that honours it: tests/unit/s3_copy_in_parts.test.ts).
      let partCopies = 0;
      const proxy = await startFaultProxy(ceph);
      proxy.before = async ({ method, url }) => {
        if (method === "PUT" && url.includes(".altered-") && url.includes("partNumber=")) {
          if (partCopies++ > 0) return;
          const changed = await s3Request(ceph, "PUT", `/${bucket}/${key}`, { body: later });
          assert.equal(changed.status, 200, changed.text);
        }
      };
      try {
        const again = await setup.rerun([], { AWS_ENDPOINT_URL_S3: proxy.endpoint });
        assert.ok(partCopies >= 1, "the copy went in parts");
        assert.equal(again.code, 1, again.stderr);
        assert.match(again.stderr, /changed again while it was being kept aside/);
      } finally {
        await proxy.close();
      }
      const now = await s3Request(ceph, "GET", `/${bucket}/${key}`);
      assert.equal(sha256(now.bytes), sha256(later), "nothing was written over it");
      const leftovers = (await listKeys(ceph, bucket, "p/")).map((o) => o.key)
        .filter((k) => k.startsWith(`${key}.altered-`));
      assert.deepEqual(leftovers, [], "no copy appears");
      assert.deepEqual(await listUploads(ceph, bucket, "p/"), [], "the upload was aborted");
    });
  },
);
