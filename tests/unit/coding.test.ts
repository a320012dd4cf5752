/** Content codings decoded by the tool itself: gzip as it streams, errors kept apart. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { canDecode, contentCoding, decode } from "../../lib/coding.ts";
import { DecodeError, TransientError } from "../../lib/errors.ts";
import { concat } from "../helpers/cli.ts";

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part;
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return concat(parts);
}

test("contentCoding treats a missing header and identity alike, and lower-cases", () => {
  assert.equal(contentCoding(new Headers()), undefined);
  assert.equal(contentCoding(new Headers({ "content-encoding": " identity " })), undefined);
  assert.equal(contentCoding(new Headers({ "content-encoding": "GZIP" })), "gzip");
  assert.ok(canDecode("x-gzip") && !canDecode("br"));
});

test("decode inflates a gzip body split anywhere, and passes an identity body through", async () => {
  const plain = new TextEncoder().encode('{"a":1}\n'.repeat(50_000));
  const gz = new Uint8Array(gzipSync(plain));
  const mid = Math.floor(gz.length / 2);
  assert.deepEqual(
    await collect(decode(chunks(gz.subarray(0, mid), gz.subarray(mid)), "gzip")),
    plain,
  );
  assert.deepEqual(await collect(decode(chunks(plain), undefined)), plain);
});

test("decode turns bad gzip into a DecodeError but lets the body's own errors through", async () => {
  await assert.rejects(collect(decode(chunks(new Uint8Array([1, 2, 3, 4])), "gzip")), DecodeError);
  const cut = new TransientError("network", "connection broken");
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(gzipSync(new Uint8Array(10))).subarray(0, 5);
    throw cut;
  }
  await assert.rejects(collect(decode(broken(), "gzip")), (e) => e === cut);
});
