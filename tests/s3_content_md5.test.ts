// S3 uploads carry Content-MD5 only where the bucket needs it: S3 requires it (or a checksum) of
// every upload into a bucket with Object Lock; elsewhere the signed SHA-256 already makes the
// store check each body, and an MD5 of every byte is CPU spent for nothing. The up-front check
// asks the bucket (GetObjectLockConfiguration), and an answer that says neither (403, 501) keeps
// Content-MD5: against the S3 stand-in, which requires it unless told the bucket has no lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { s3Store } from "../lib/destinations/s3.ts";
import { payloadOf } from "../lib/destinations/_object_store.ts";
import { TransientError } from "../lib/errors.ts";
import { standinEnv, startS3Standin } from "./servers/s3_conditional_standin.ts";

const OPTIONS = { metadata: { sha256: "0".repeat(64) }, contentType: "application/x-ndjson" };
const bytes = new TextEncoder().encode('{"event_id":"e1"}\n');

for (
  const [lock, sent] of [
    ["disabled", false],
    ["enabled", true],
    [403, true],
    [501, true],
  ] as const
) {
  test(`s3: a bucket whose Object Lock answers ${lock}: Content-MD5 ${sent ? "sent" : "left out"}`, async () => {
    const standin = await startS3Standin("bucket", 2, { objectLock: lock });
    try {
      const store = s3Store("s3://bucket/p", standinEnv(standin.endpoint));
      await store.check({ retention: false });
      await store.put("p/a.jsonl", payloadOf(bytes), OPTIONS);
      assert.deepEqual(standin.objects.get("p/a.jsonl")?.bytes, bytes);
      assert.equal(standin.md5Sent.includes("p/a.jsonl"), sent);
    } finally {
      await standin.close();
    }
  });
}

test("s3: before the check has asked the bucket, Content-MD5 is sent (the strict case)", async () => {
  const standin = await startS3Standin("bucket", 2, { objectLock: "disabled" });
  try {
    const store = s3Store("s3://bucket/p", standinEnv(standin.endpoint));
    await store.put("p/a.jsonl", payloadOf(bytes), OPTIONS);
    assert.deepEqual(standin.md5Sent, ["p/a.jsonl"]);
  } finally {
    await standin.close();
  }
});

test("s3: --retain-days on a bucket whose Object Lock cannot be read fails the check", async () => {
  const standin = await startS3Standin("bucket", 2, { objectLock: 403 });
  try {
    const store = s3Store("s3://bucket/p", standinEnv(standin.endpoint));
    await assert.rejects(store.check({ retention: true }), /HTTP 403 AccessDenied/);
    assert.equal(standin.objects.size, 0, "nothing written");
  } finally {
    await standin.close();
  }
});

test("s3: Object Lock enabled after the check: the refused upload says so, and the next try sends Content-MD5", async () => {
  const options: { objectLock: "enabled" | "disabled" } = { objectLock: "disabled" };
  const standin = await startS3Standin("bucket", 2, options);
  try {
    const store = s3Store("s3://bucket/p", standinEnv(standin.endpoint));
    await store.check({ retention: false });
    options.objectLock = "enabled"; // As a long --follow may see it.
    await assert.rejects(
      store.put("p/a.jsonl", payloadOf(bytes), OPTIONS),
      (error: Error) => {
        assert.ok(error instanceof TransientError, "retried by the core, not fatal");
        assert.match(error.message, /HTTP 400 InvalidRequest.*sending Content-MD5 from now on/);
        return true;
      },
    );
    await store.put("p/a.jsonl", payloadOf(bytes), OPTIONS);
    assert.deepEqual(standin.md5Sent, ["p/a.jsonl"]);
    assert.deepEqual(standin.objects.get("p/a.jsonl")?.bytes, bytes);
  } finally {
    await standin.close();
  }
});
