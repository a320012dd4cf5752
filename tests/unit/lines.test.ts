/**
 * lib/destinations/lines.ts: the line splitter is byte-exact across chunk boundaries, and batches
 * are bounded by count, bytes and time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchStream, LineSplitStream } from "../../lib/destinations/lines.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function collect<T>(stream: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}

function split(chunks: string[]): Promise<string[]> {
  const stream = ReadableStream.from(chunks.map((c) => encoder.encode(c)));
  return collect(stream.pipeThrough(new LineSplitStream())).then((lines) =>
    lines.map((l) => decoder.decode(l))
  );
}

test("lines split across chunk boundaries come out whole, each with its newline", async () => {
  assert.deepEqual(await split(['{"a":', '1}\n{"b"', ":2}\n"]), ['{"a":1}\n', '{"b":2}\n']);
  assert.deepEqual(await split(["x\ny", "\n", "z\n\n"]), ["x\n", "y\n", "z\n", "\n"]);
});

test("CRLF is kept as it is and a last line without a newline is emitted", async () => {
  assert.deepEqual(await split(["a\r", "\nb\r\n", "c"]), ["a\r\n", "b\r\n", "c"]);
  assert.deepEqual(await split([]), []);
  assert.deepEqual(await split(["", "only"]), ["only"]);
});

test("the lines joined again are exactly the input bytes, whatever the chunking", async () => {
  const bytes = new Uint8Array(5000).map((_, i) => (i % 37 === 0 ? 0x0a : (i * 7) & 0xff));
  for (const size of [1, 3, 64, 4999, 5000]) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.slice(at, at + size));
    const lines = await collect(ReadableStream.from(chunks).pipeThrough(new LineSplitStream()));
    assert.deepEqual(new Uint8Array(lines.flatMap((l) => [...l])), bytes, `chunks of ${size}`);
    assert.ok(
      lines.slice(0, -1).every((l) => l.at(-1) === 0x0a && l.indexOf(0x0a) === l.length - 1),
    );
  }
});

test("a line longer than maxLineBytes is an error, not unbounded memory", async () => {
  const stream = ReadableStream.from([encoder.encode("12345"), encoder.encode("678\n")])
    .pipeThrough(new LineSplitStream({ maxLineBytes: 6 }));
  await assert.rejects(collect(stream), RangeError);
});

test("a chunk reused by its writer after the split does not change the lines", async () => {
  const reused = encoder.encode("ab\ncd");
  const { readable, writable } = new LineSplitStream();
  const lines = collect(readable);
  const writer = writable.getWriter();
  await writer.write(reused);
  reused.fill(0x21);
  await writer.write(encoder.encode("\n"));
  await writer.close();
  assert.deepEqual((await lines).map((l) => decoder.decode(l)), ["ab\n", "cd\n"]);
});

function batch(items: string[], limits: ConstructorParameters<typeof BatchStream>[0]) {
  return collect(
    ReadableStream.from(items.map((i) => encoder.encode(i))).pipeThrough(new BatchStream(limits)),
  ).then((batches) => batches.map((b) => b.map((i) => decoder.decode(i as Uint8Array))));
}

test("batches close at the count, and the rest comes at the end", async () => {
  assert.deepEqual(await batch(["a", "b", "c", "d", "e"], { count: 2 }), [
    ["a", "b"],
    ["c", "d"],
    ["e"],
  ]);
  assert.deepEqual(await batch([], { count: 2 }), []);
});

test("batches stay within the byte bound; a larger item is a batch of its own", async () => {
  assert.deepEqual(await batch(["aaa", "bb", "c", "dddddd", "e"], { bytes: 5 }), [
    ["aaa", "bb"],
    ["c"],
    ["dddddd"],
    ["e"],
  ]);
});

test("a batch is emitted waitMs after its first item even when not full", async () => {
  const { readable, writable } = new BatchStream<string>({ count: 100, waitMs: 30 }, () => 1);
  const reader = readable.getReader();
  const writer = writable.getWriter();
  const started = Date.now();
  const first = reader.read(); // A transform stream takes items only while someone reads.
  await writer.write("a");
  await writer.write("b");
  assert.deepEqual((await first).value, ["a", "b"]);
  assert.ok(Date.now() - started >= 25, "not before the wait");
  const second = reader.read();
  await writer.write("c");
  await writer.close();
  assert.deepEqual((await second).value, ["c"]);
  assert.equal((await reader.read()).done, true);
});
