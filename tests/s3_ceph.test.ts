// s3 (Ceph RGW): `--output-dir s3://BUCKET/PREFIX` end to end against a real Ceph RADOS Gateway
// (tests/servers/ceph.ts, started once per test process), which checks SigV4 for real: every
// file stored once with its metadata, re-runs that upload nothing, kill -9 then a re-run, faults
// from a proxy in front of Ceph, Object Lock read back, `--layout hive`, and the up-front checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import type { Emulator } from "./emulator/mod.ts";
import {
  type Ceph,
  CEPH_SKIP,
  createBucket,
  listKeys as listAllKeys,
  listUploads,
  s3Request,
  startCeph,
  startFaultProxy,
} from "./servers/ceph.ts";

const OPTIONS = { skip: CEPH_SKIP, timeout: 240_000 };

/** The stored files' keys: every key but the archive's manifests (tests/verify_object_store.test.ts). */
async function listKeys(...args: Parameters<typeof listAllKeys>) {
  return (await listAllKeys(...args)).filter((o) => !/(^|\/)_manifest\//.test(o.key));
}

const FILES = [
  ...hourlyFiles(5, { eventType: "AUTH_LOG" }),
  ...hourlyFiles(3, { eventType: "AUDIT_LOG", start: "2026-07-03T22:00:00Z" }),
];

function bucketName(what: string): string {
  return `t-${what}-${crypto.randomUUID().slice(0, 8)}`;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function dayOf(endTime: string): string {
  return endTime.slice(0, 10);
}

/** The keys a run must store for the emulator's files. */
function expectedKeys(emulator: Emulator, prefix: string, hive = false): Map<string, string> {
  const keys = new Map<string, string>();
  for (const type of ["AUTH_LOG", "AUDIT_LOG"]) {
    for (const id of idsOf(emulator, type)) {
      const spec = emulator.files.find((f) => f.id === id)!;
      const key = hive
        ? `${prefix}event_type=${type}/date=${dayOf(spec.endTime)}/${id}.jsonl`
        : `${prefix}${type}/${dayOf(spec.endTime)}/${id}.jsonl`;
      keys.set(key, id);
    }
  }
  return keys;
}

function run(
  emulator: Emulator,
  ceph: Ceph,
  target: string,
  extra: string[] = [],
  env: Record<string, string> = {},
) {
  return runCli(
    [PRINCIPAL, "AUTH_LOG,AUDIT_LOG", "100", AFTER, "--output-dir", target, ...extra],
    {
      env: envFor(emulator, { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50", ...env }),
      timeoutMs: 120_000,
    },
  );
}

/** Every object under the prefix is an expected one, whole, with the listing's sha256 and size. */
async function assertStored(
  ceph: Ceph,
  emulator: Emulator,
  bucket: string,
  expected: Map<string, string>,
  prefix: string,
): Promise<void> {
  const listed = await listKeys(ceph, bucket, prefix);
  assert.deepEqual(listed.map((o) => o.key).sort(), [...expected.keys()].sort());
  for (const [key, id] of expected) {
    const object = await s3Request(ceph, "GET", `/${bucket}/${key}`);
    assert.equal(object.status, 200, key);
    const content = await emulator.contentOf(id);
    assert.equal(sha256(object.bytes), sha256(content), `${key}: bytes`);
    assert.equal(
      object.headers.get("x-amz-meta-sha256"),
      sha256(content),
      `${key}: sha256 metadata`,
    );
    assert.equal(
      object.headers.get("x-amz-meta-size"),
      String(content.length),
      `${key}: size metadata`,
    );
  }
}

test(
  "s3 (Ceph RGW): a run stores every file exactly once with its metadata; a second run uploads nothing",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = bucketName("basic");
    await createBucket(ceph, bucket);
    await withEmulator({ files: FILES }, async (emulator) => {
      const proxy = await startFaultProxy(ceph);
      try {
        const env = { AWS_ENDPOINT_URL_S3: proxy.endpoint };
        const first = await run(emulator, ceph, `s3://${bucket}/archive/openai`, [], env);
        assert.equal(first.code, 0, first.stderr);
        const expected = expectedKeys(emulator, "archive/openai/");
        assert.equal(expected.size, FILES.length);
        await assertStored(ceph, emulator, bucket, expected, "");
        // The manifest's own writes (its lock, the run's live mark, the manifest) aside.
        const files = proxy.seen.filter((r) => !r.url.includes("/_manifest/"));
        const puts = files.filter((r) => r.method === "PUT");
        assert.equal(puts.length, FILES.length, "one PUT per file");
        // A bucket without Object Lock: the signed SHA-256 alone makes Ceph check each body.
        assert.deepEqual(puts.filter((r) => r.md5), [], "no Content-MD5 without Object Lock");
        proxy.seen.length = 0;
        const second = await run(emulator, ceph, `s3://${bucket}/archive/openai`, [], env);
        assert.equal(second.code, 0, second.stderr);
        const writes = proxy.seen.filter((r) => !r.url.includes("/_manifest/")).filter((r) =>
          r.method === "PUT" ||
          (r.method === "POST" && !r.url.includes(".oai-compliance-logs-probe-"))
        );
        assert.deepEqual(writes, [], "the second run uploaded nothing");
        await assertStored(ceph, emulator, bucket, expected, "");
        assert.deepEqual(await listUploads(ceph, bucket), [], "no unfinished upload left");
      } finally {
        await proxy.close();
      }
    });
  },
);

test(
  "s3 (Ceph RGW): --layout hive with --gzip names partitions and keeps the listing's hash as metadata",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = bucketName("hive");
    await createBucket(ceph, bucket);
    await withEmulator({ files: FILES }, async (emulator) => {
      const result = await run(emulator, ceph, `s3://${bucket}/h`, ["--layout", "hive", "--gzip"]);
      assert.equal(result.code, 0, result.stderr);
      const expected = new Map(
        [...expectedKeys(emulator, "h/", true)].map(([key, id]) => [`${key}.gz`, id]),
      );
      const listed = await listKeys(ceph, bucket);
      assert.deepEqual(listed.map((o) => o.key).sort(), [...expected.keys()].sort());
      for (const [key, id] of expected) {
        assert.match(
          key,
          /^h\/event_type=(AUTH|AUDIT)_LOG\/date=\d{4}-\d{2}-\d{2}\/eclf_\w+\.jsonl\.gz$/,
        );
        const object = await s3Request(ceph, "GET", `/${bucket}/${key}`);
        const plain = new Uint8Array(
          await new Response(
            new Blob([object.bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
              new DecompressionStream("gzip"),
            ),
          ).arrayBuffer(),
        );
        const content = await emulator.contentOf(id);
        assert.equal(sha256(plain), sha256(content), key);
        assert.equal(object.headers.get("x-amz-meta-sha256"), sha256(content));
        assert.equal(object.headers.get("content-type"), "application/gzip");
      }
    });
  },
);

test(
  "s3 (Ceph RGW): no such bucket, a wrong secret and clock skew fail up front in one line, exit 1",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = bucketName("auth");
    await createBucket(ceph, bucket);
    await withEmulator({ files: FILES }, async (emulator) => {
      const missing = await run(emulator, ceph, `s3://${bucketName("missing")}/p`);
      assert.equal(missing.code, 1, missing.stderr);
      assert.match(missing.stderr, /does not exist \(NoSuchBucket\)/);
      const wrong = await run(emulator, ceph, `s3://${bucket}/p`, [], {
        AWS_SECRET_ACCESS_KEY: "not-the-secret-4711",
      });
      assert.equal(wrong.code, 1, wrong.stderr);
      assert.match(wrong.stderr, /SignatureDoesNotMatch/);
      assert.doesNotMatch(wrong.stderr, /not-the-secret-4711/);
      const skewed = await run(emulator, ceph, `s3://${bucket}/p`, [], {
        OAI_COMPLIANCE_S3_CLOCK_OFFSET_MS: String(-3_600_000),
      });
      assert.equal(skewed.code, 1, skewed.stderr);
      assert.match(skewed.stderr, /RequestTimeTooSkewed\): this clock is 3[56]\d\d s behind/);
      for (const r of [missing, wrong, skewed]) {
        assert.equal(
          r.stderr.trim().split("\n").filter((l) => l.startsWith("error")).length,
          1,
          r.stderr,
        );
      }
      assert.equal(emulator.downloadRequests().length, 0, "nothing was downloaded");
      assert.deepEqual(await listKeys(ceph, bucket), []);
    });
  },
);

test(
  "s3 (Ceph RGW): --retain-days sets Object Lock retention, read back; a bucket without it is refused up front",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const locked = bucketName("lock");
    await createBucket(ceph, locked, true);
    const plain = bucketName("nolock");
    await createBucket(ceph, plain);
    await withEmulator({ files: FILES.slice(0, 2) }, async (emulator) => {
      const refused = await run(emulator, ceph, `s3://${plain}/p`, ["--retain-days", "1"]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /Object Lock.*put-object-lock-configuration/);
      assert.equal(emulator.downloadRequests().length, 0, "refused before any download");
      const before = Date.now();
      const proxy = await startFaultProxy(ceph);
      const result = await run(emulator, ceph, `s3://${locked}/p`, [
        "--retain-days",
        "2",
        "--retain-mode",
        "governance",
      ], { AWS_ENDPOINT_URL_S3: proxy.endpoint }).finally(() => proxy.close());
      assert.equal(result.code, 0, result.stderr);
      // S3 requires Content-MD5 (or a checksum) of every upload into a bucket with Object Lock.
      const puts = proxy.seen.filter((r) => r.method === "PUT");
      assert.ok(puts.length >= 2 && puts.every((r) => r.md5), "Content-MD5 on every PUT");
      const keys = await listKeys(ceph, locked);
      assert.equal(keys.length, 2);
      for (const { key } of keys) {
        const retention = await s3Request(ceph, "GET", `/${locked}/${key}`, {
          query: "retention=",
        });
        assert.equal(retention.status, 200, retention.text);
        assert.match(retention.text, /<Mode>GOVERNANCE<\/Mode>/);
        const until = Date.parse(
          /<RetainUntilDate>([^<]+)<\/RetainUntilDate>/.exec(retention.text)![1],
        );
        const days = (until - before) / 86_400_000;
        assert.ok(days > 1.99 && days < 2.01, `retained for ${days} days`);
      }
    });
  },
);

test(
  "s3 (Ceph RGW): 503 SlowDown with Retry-After, 500 and a connection cut mid-body are retried",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = bucketName("faults");
    await createBucket(ceph, bucket);
    const files = [
      ...hourlyFiles(4, { eventType: "AUTH_LOG" }),
      // Multipart (8 MiB parts): faults hit its parts and its completion too.
      { ...hourlyFiles(1, { eventType: "AUDIT_LOG" })[0], size: 18 * 1024 * 1024 },
    ];
    await withEmulator({ files }, async (emulator) => {
      const proxy = await startFaultProxy(ceph);
      const tries = new Map<string, number>();
      const kinds = ["slowdown", "500", "reset"] as const;
      const used: Record<string, number> = { slowdown: 0, "500": 0, reset: 0 };
      proxy.fault = (request) => {
        const writes = request.method === "PUT" ||
          (request.method === "POST" && request.url.includes("uploadId="));
        if (!writes) return "pass";
        const n = (tries.get(request.url) ?? 0) + 1;
        tries.set(request.url, n);
        if (n > 1) return "pass";
        const kind = kinds[tries.size % 3];
        used[kind]++;
        if (kind === "slowdown") return { status: 503, code: "SlowDown", retryAfter: "1" };
        if (kind === "500") return { status: 500, code: "InternalError" };
        return "reset";
      };
      try {
        const result = await run(emulator, ceph, `s3://${bucket}/f`, [], {
          AWS_ENDPOINT_URL_S3: proxy.endpoint,
        });
        assert.equal(result.code, 0, result.stderr);
        assert.ok(used.slowdown > 0 && used["500"] > 0 && used.reset > 0, JSON.stringify(used));
        await assertStored(ceph, emulator, bucket, expectedKeys(emulator, "f/"), "");
        assert.deepEqual(await listUploads(ceph, bucket), []);
        // Retry-After: 1 is honoured (the test backoff is 50 ms).
        const slowed = [...tries.keys()].filter((_, i) => kinds[(i + 1) % 3] === "slowdown");
        for (const url of slowed) {
          // Its writes only (the key's HEAD has the same URL).
          const times = proxy.seen.filter((r) => r.url === url && r.method !== "HEAD")
            .map((r) => r.at);
          assert.ok(times.length >= 2, `${url} was not retried`);
          assert.ok(times[1] - times[0] >= 900, `${url} retried after ${times[1] - times[0]} ms`);
        }
      } finally {
        await proxy.close();
      }
    });
  },
);

test(
  "s3 (Ceph RGW): kill -9 mid-upload, then a re-run: every object once and whole, nothing else",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = bucketName("kill");
    await createBucket(ceph, bucket);
    const files = [
      ...hourlyFiles(3, { eventType: "AUTH_LOG" }),
      { ...hourlyFiles(4, { eventType: "AUTH_LOG" })[3], size: 26 * 1024 * 1024 },
      ...hourlyFiles(2, { eventType: "AUDIT_LOG" }),
    ];
    await withEmulator({ files }, async (emulator) => {
      const proxy = await startFaultProxy(ceph);
      const dir = await makeTempDir();
      try {
        const env = { AWS_ENDPOINT_URL_S3: proxy.endpoint };
        let killed = false;
        const first = await runCli(
          [
            PRINCIPAL,
            "AUTH_LOG,AUDIT_LOG",
            "100",
            AFTER,
            "--output-dir",
            `s3://${bucket}/k`,
            "--state",
            `${dir}/state.json`,
          ],
          {
            env: envFor(emulator, { ...ceph.env, ...env }),
            timeoutMs: 120_000,
            onSpawn: (child) => {
              const timer = setInterval(() => {
                // Killed once the large file's second part is on its way.
                if (proxy.seen.some((r) => r.url.includes("partNumber=2"))) {
                  clearInterval(timer);
                  killed = true;
                  child.kill("SIGKILL");
                }
              }, 5);
              child.on("exit", () => clearInterval(timer));
            },
          },
        );
        assert.ok(killed, `the run ended before the kill: ${first.code} ${first.stderr}`);
        assert.equal(first.signal, "SIGKILL");
        assert.ok((await listUploads(ceph, bucket)).length >= 1, "the killed run left an upload");
        const second = await runCli(
          [
            PRINCIPAL,
            "AUTH_LOG,AUDIT_LOG",
            "100",
            AFTER,
            "--output-dir",
            `s3://${bucket}/k`,
            "--state",
            `${dir}/state.json`,
          ],
          { env: envFor(emulator, { ...ceph.env, ...env }), timeoutMs: 120_000 },
        );
        assert.equal(second.code, 0, second.stderr);
        await assertStored(ceph, emulator, bucket, expectedKeys(emulator, "k/"), "");
        assert.deepEqual(await listUploads(ceph, bucket), [], "the stale upload was aborted");
      } finally {
        await proxy.close();
      }
    });
  },
);

async function makeTempDir(): Promise<string> {
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  return await mkdtemp(`${tmpdir()}/s3-kill-`);
}

test(
  "s3 (Ceph RGW): a file the API no longer has is recorded, and nothing is written for it",
  OPTIONS,
  async () => {
    const ceph = await startCeph();
    const bucket = bucketName("gone");
    await createBucket(ceph, bucket);
    const files = hourlyFiles(3, { eventType: "AUTH_LOG" });
    await withEmulator({ files }, async (emulator) => {
      const goneId = idsOf(emulator)[1];
      emulator.inject({ target: "download", id: goneId, gone: "unavailable", times: Infinity });
      const result = await runCli(
        [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--output-dir", `s3://${bucket}/g`],
        { env: envFor(emulator, ceph.env), timeoutMs: 120_000 },
      );
      assert.equal(result.code, 4, result.stderr); // Incomplete: a file was gone.
      const keys = (await listKeys(ceph, bucket)).map((o) => o.key);
      assert.equal(keys.length, 2, keys.join(","));
      assert.ok(!keys.some((k) => k.includes(goneId)), `${goneId} was written: ${keys}`);
      assert.deepEqual(await listUploads(ceph, bucket), []);
    });
  },
);
