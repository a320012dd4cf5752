// What every object store does with a read's answer (lib/destinations/_answer_bytes.ts), on
// answers made in memory: a range taken from a 206 or a small enough 200, a whole object sent
// instead refused unread, a small object refused over its cap, a read back's size and SHA-256.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  digestAnswer,
  readRangeAnswer,
  readSmallObject,
} from "../../lib/destinations/_answer_bytes.ts";
import { CliError } from "../../lib/errors.ts";
import type { Opened } from "../../lib/http.ts";

/** An answer as `openRequest` gives it, with a count of its aborts. */
function answer(
  status: number,
  body: Uint8Array<ArrayBuffer> | string,
  headers: Record<string, string> = {},
): Opened & { aborts: number } {
  const opened = {
    response: new Response(body, { status, headers }),
    url: new URL("http://127.0.0.1/b/k"),
    startedAt: performance.now(),
    aborts: 0,
    abort: () => {
      opened.aborts++;
    },
  };
  return opened;
}

const RANGE = { idleMs: 5_000, what: "mem://b/: reading bytes 0 to 4 of k" };
const refused = (status: number) => () => Promise.resolve(new Error(`answered ${status}`));

test("readRangeAnswer: a 206's bytes; a 200 no larger than a range from 0 is taken", async () => {
  const ranged = await readRangeAnswer(answer(206, "abcd"), { ...RANGE, start: 4, end: 8 }, () => {
    throw new Error("not refused");
  });
  assert.equal(new TextDecoder().decode(ranged), "abcd");
  const whole = answer(200, "abc", { "content-length": "3" });
  const bytes = await readRangeAnswer(whole, { ...RANGE, start: 0, end: 4 }, refused(200));
  assert.equal(new TextDecoder().decode(bytes), "abc");
});

test("readRangeAnswer: a whole object larger than the range is refused unread", async () => {
  const whole = answer(200, "abcdefgh", { "content-length": "8" });
  await assert.rejects(
    readRangeAnswer(whole, { ...RANGE, start: 0, end: 4 }, refused(200)),
    (error) =>
      error instanceof CliError && error.kind === "io" &&
      /ignored the Range header and sent the whole object \(8 bytes, not 4\)/.test(error.message),
  );
  assert.equal(whole.aborts, 1);
  // Without a Content-Length, no more than the range is read.
  const unsized = answer(200, new TextEncoder().encode("abcdefgh"));
  unsized.response.headers.delete("content-length");
  await assert.rejects(
    readRangeAnswer(unsized, { ...RANGE, start: 0, end: 4 }, refused(200)),
    /larger than 4 bytes; stopped reading it/,
  );
});

test("readRangeAnswer: any other answer, or a 200 to a range not from 0, is the store's error", async () => {
  await assert.rejects(
    readRangeAnswer(answer(200, "abcd"), { ...RANGE, start: 4, end: 8 }, refused(200)),
    /^Error: answered 200$/,
  );
  await assert.rejects(
    readRangeAnswer(answer(404, "<Error/>"), { ...RANGE, start: 0, end: 4 }, refused(404)),
    /^Error: answered 404$/,
  );
});

test("readSmallObject: the bytes and ETag; refused over maxBytes, in the store's word", async () => {
  const small = answer(200, "{}\n", { etag: '"e1"', "content-length": "3" });
  const options = { idleMs: 5_000, what: "mem://b/: reading k", maxBytes: 3 };
  const fetched = await readSmallObject(small, { ...options, noun: "object" });
  assert.deepEqual(fetched, { bytes: new TextEncoder().encode("{}\n"), etag: '"e1"' });
  const large = answer(200, "{}\n\n", { etag: '"e2"', "content-length": "4" });
  await assert.rejects(
    readSmallObject(large, { ...options, noun: "blob" }),
    {
      message: "mem://b/: reading k: the blob is 4 bytes, more than the 3 such a blob may have",
    },
  );
  assert.equal(large.aborts, 1);
  await assert.rejects(
    readSmallObject(answer(200, "x", { etag: '"e3"', "content-length": "9" }), {
      ...options,
      noun: "object",
    }),
    {
      message:
        "mem://b/: reading k: the object is 9 bytes, more than the 3 such an object may have",
    },
  );
  await assert.rejects(
    readSmallObject(answer(200, "{}\n"), { ...options, noun: "object" }),
    /has no ETag/,
  );
});

test("digestAnswer: a read back's size and SHA-256 as it streams; the answer let go", async () => {
  const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
  const opened = answer(200, bytes);
  const read = await digestAnswer(opened, { idleMs: 5_000, what: "mem://b/: reading k" });
  assert.deepEqual(read, {
    size: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  });
  assert.ok(opened.aborts >= 1, "the answer is let go once read");
  const empty = await digestAnswer(answer(200, ""), { idleMs: 5_000, what: "reading k" });
  assert.deepEqual(empty, { size: 0, sha256: createHash("sha256").digest("hex") });
});
