/**
 * lib/destinations/lines.ts: the line splitter is byte-exact across chunk boundaries, and batches
 * are bounded by count, bytes and time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchStream, isoInstant, LineSplitStream } from "../../lib/destinations/lines.ts";
import { toMicros } from "../../lib/time.ts";
import { allCreated } from "../../lib/destinations/elasticsearch.ts";

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

test("isoInstant reads the usual RFC 3339 forms exactly as toMicros and Date.parse do", () => {
  const pad = (n: number, width: number) => String(n).padStart(width, "0");
  let seed = 7;
  const next = (k: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % k;
  };
  const zones = ["Z", "z", "+00:00", "-05:30", "+14:00", "+23:59", "-24:00", "+0530", "+05:60"];
  let fast = 0;
  for (let i = 0; i < 50_000; i++) {
    // Out-of-range months, days, hours... and years before 1970 on purpose.
    const year = next(10) < 8 ? 1960 + next(120) : next(10000);
    const fraction = next(4) === 0
      ? ""
      : "." + String(next(1e9)).padStart(9, "0").slice(0, 1 + next(9));
    const text = `${pad(year, 4)}-${pad(next(14), 2)}-${pad(next(33), 2)}` +
      `${next(20) === 0 ? "t" : "T"}${pad(next(26), 2)}:${pad(next(62), 2)}:${pad(next(62), 2)}` +
      `${fraction}${zones[next(zones.length)]}`;
    const instant = isoInstant(text);
    const micros = toMicros(text);
    if (instant === undefined) {
      // Left to toMicros only when it is not of the usual form, or before 1970.
      const usual = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(text);
      assert.ok(!usual || micros === undefined || micros < 0n, text);
      continue;
    }
    fast++;
    const got = BigInt(instant.seconds) * 1_000_000n + BigInt(instant.micros);
    assert.equal(got, micros, text);
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) assert.equal(Number(got / 1000n), ms, text);
  }
  assert.ok(fast > 10_000, `only ${fast} values took the fast path`);
  assert.deepEqual(isoInstant("2026-07-01T14:00:00.5+02:00"), {
    seconds: 1782907200,
    micros: 500000,
  });
  assert.deepEqual(isoInstant("2024-02-29T23:59:59.9999999Z"), {
    seconds: 1709251199,
    micros: 999999,
  });
  for (
    const odd of [
      "2026-07-01T12:00Z",
      "2026-07-01T12:00:00.Z",
      "2026-07-01 12:00:00Z",
      "2026-07-01T12:00:00",
      "2026-07-01T12:00:00.1234567890Z",
      "1969-12-31T23:59:59Z",
      "2100-02-29T00:00:00Z",
    ]
  ) {
    assert.equal(isoInstant(odd), undefined, odd);
  }
});

test("allCreated takes only an error-free _bulk answer with exactly one create item per action", () => {
  const item = (id: string) => ({ create: { _index: "i", _id: id, status: 201 } });
  const answer = (body: unknown) => JSON.stringify(body);
  assert.equal(
    allCreated(answer({ took: 3, errors: false, items: [item("a"), item("b")] }), 2),
    true,
  );
  assert.equal(
    allCreated(answer({ errors: false, took: 3, items: [item("a"), item("b")] }), 2),
    true,
  );
  assert.equal(allCreated(answer({ took: 3, errors: false, items: [item("a")] }), 2), false);
  assert.equal(
    allCreated(answer({ took: 3, errors: true, items: [item("a"), item("b")] }), 2),
    false,
  );
  // An id that spells an item's opening is inside a string, its quotes escaped: not counted.
  assert.equal(
    allCreated(answer({ took: 3, errors: false, items: [item('{"create":{')] }), 1),
    true,
  );
  assert.equal(
    allCreated(answer({ took: 3, errors: false, items: [{ index: { status: 201 } }] }), 1),
    false,
  );
  assert.equal(allCreated(" " + answer({ took: 3, errors: false, items: [item("a")] }), 1), false);
});
