import { test } from "node:test";
import assert from "node:assert/strict";
import { WriteCoalescer } from "../../lib/destinations/coalescer.ts";

/**
 * A sink that records what it was given; once `hold()` is called, its writes finish only when the
 * test says so (before that, at once).
 */
function manualSink() {
  const writes: { bytes: number[]; finish: (error?: Error) => void }[] = [];
  let holding = false;
  let inFlight = 0;
  let maxInFlight = 0;
  const sink = (bytes: Uint8Array) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // Copied now: the coalescer may reuse its buffer only after this write settles.
    const record = { bytes: [...bytes], finish: (_error?: Error) => {} };
    const done = new Promise<void>((resolve, reject) => {
      record.finish = (error) => {
        inFlight--;
        error ? reject(error) : resolve();
      };
    });
    writes.push(record);
    if (!holding) record.finish();
    return done;
  };
  return { sink, writes, maxInFlight: () => maxInFlight, hold: () => (holding = true) };
}

/** A sink that finishes every write at once, after a turn of the event loop. */
function recordingSink() {
  const writes: number[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const sink = async (bytes: Uint8Array) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 0));
    writes.push([...bytes]);
    inFlight--;
  };
  return { sink, writes, maxInFlight: () => maxInFlight };
}

const bytes = (from: number, count: number) =>
  Uint8Array.from({ length: count }, (_, i) => (from + i) % 251);

test("the sink gets every byte in order: small files as they come, large ones in full buffers", async () => {
  const { sink, writes, maxInFlight } = recordingSink();
  const coalescer = new WriteCoalescer(sink, 16);
  const sizes = [3, 5, 7, 2, 9, 16, 1, 30, 4, 4, 4, 4, 4, 11];
  let offset = 0;
  for (const size of sizes) {
    await coalescer.write(bytes(offset, size));
    offset += size;
  }
  await coalescer.flush();

  assert.deepEqual(writes.flat(), [...bytes(0, offset)]);
  // Below 16 bytes seen, chunks pass through one by one (3 + 5 + 7 = 15).
  assert.deepEqual(writes.slice(0, 3).map((w) => w.length), [3, 5, 7]);
  // After that no write is larger than the buffer, except a chunk that is larger by itself.
  assert.ok(writes.slice(3).every((w) => w.length <= 16 || w.length === 30), String(writes));
  assert.ok(writes.length < sizes.length, `${writes.length} writes for ${sizes.length} chunks`);
  assert.equal(maxInFlight(), 1);
});

test("a full buffer is written behind: the next chunks are taken while that write runs", async () => {
  const { sink, writes, maxInFlight, hold } = manualSink();
  const coalescer = new WriteCoalescer(sink, 8);
  await coalescer.write(bytes(0, 8)); // Proves the file large (passed through: a whole buffer).
  hold();
  await coalescer.write(bytes(8, 5)); // Gathered.
  await coalescer.write(bytes(13, 5)); // The buffer would overflow: its write starts, not awaited.
  assert.equal(writes.length, 2);
  assert.deepEqual(writes[1].bytes, [...bytes(8, 5)]);
  // Still in flight, yet the chunk went into the other buffer, and more are accepted.
  await coalescer.write(bytes(18, 2));

  // The next full buffer must wait for the write in flight: never two at once.
  let accepted = false;
  const next = coalescer.write(bytes(20, 4)).then(() => (accepted = true));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(accepted, false);
  assert.equal(writes.length, 2);
  writes[1].finish();
  await next;
  assert.equal(writes.length, 3);
  assert.deepEqual(writes[2].bytes, [...bytes(13, 7)]);

  const flushed = coalescer.flush();
  writes[2].finish();
  await new Promise((resolve) => setTimeout(resolve, 0));
  writes[3].finish();
  await flushed;
  assert.deepEqual(writes.flatMap((w) => w.bytes), [...bytes(0, 24)]);
  assert.equal(maxInFlight(), 1);
});

test("a write that fails behind the download is reported by the next write or by flush", async () => {
  const { sink, writes, hold } = manualSink();
  const coalescer = new WriteCoalescer(sink, 4);
  await coalescer.write(bytes(0, 4));
  hold();
  await coalescer.write(bytes(4, 3));
  await coalescer.write(bytes(7, 2)); // Starts writing bytes 4-6 behind.
  writes[1].finish(new Error("ENOSPC: no space left on device"));
  await assert.rejects(coalescer.write(bytes(9, 3)), /ENOSPC/);

  const other = manualSink();
  const flushing = new WriteCoalescer(other.sink, 4);
  await flushing.write(bytes(0, 4));
  other.hold();
  await flushing.write(bytes(4, 3));
  await flushing.write(bytes(7, 2));
  other.writes[1].finish(new Error("EIO: i/o error"));
  await assert.rejects(flushing.flush(), /EIO/);
});

test("reset waits for the write in flight, then forgets what was gathered", async () => {
  const { sink, writes, hold } = manualSink();
  const coalescer = new WriteCoalescer(sink, 4);
  await coalescer.write(bytes(0, 4));
  hold();
  await coalescer.write(bytes(4, 3));
  await coalescer.write(bytes(7, 2)); // Bytes 4-6 are being written; 7-8 are gathered.
  let reset = false;
  const resetting = coalescer.reset().then(() => (reset = true));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(reset, false, "reset returned while a write was still running");
  writes[1].finish(new Error("the old download's write failed")); // Not the new download's concern.
  await resetting;

  // Starting over: small again, so the first chunk is written as it comes; nothing old remains.
  const writing = coalescer.write(bytes(100, 2));
  await new Promise((resolve) => setTimeout(resolve, 0));
  writes[2].finish();
  await writing;
  await coalescer.flush();
  assert.equal(writes.length, 3);
  assert.deepEqual(writes[2].bytes, [...bytes(100, 2)]);
});

test("a released coalescer's buffers are reused by the next, never while a write holds one", async () => {
  const size = (1 << 20) + 300; // Just over a buffer: gathering starts, then the tail is flushed.
  const seen: Array<{ buffer: ArrayBufferLike; bytes: Uint8Array }> = [];
  const sink = (chunk: Uint8Array) => {
    seen.push({ buffer: chunk.buffer, bytes: chunk.slice() });
    return Promise.resolve();
  };
  const fileOf = async (coalescer: WriteCoalescer, from: number) => {
    for (let at = 0; at < size; at += 65536) {
      await coalescer.write(bytes(from + at, Math.min(65536, size - at)));
    }
    await coalescer.flush();
  };
  const first = new WriteCoalescer(sink);
  await fileOf(first, 0);
  first.release();
  const gatheredByFirst = seen.at(-1)!.buffer;
  seen.length = 0;
  const second = new WriteCoalescer(sink);
  await fileOf(second, 7);
  assert.equal(
    seen.at(-1)!.buffer,
    gatheredByFirst,
    "the second file gathered into the first's buffer",
  );
  // Its bytes are its own, in order.
  const written = seen.flatMap((write) => [...write.bytes]);
  assert.deepEqual(written, [...bytes(7, size)]);

  // Released with a write still in flight: its buffer is not handed to anyone (the sink may
  // still be reading it).
  const pending: Array<{ view: Uint8Array; copy: Uint8Array; finish: () => void }> = [];
  const slowSink = (chunk: Uint8Array) =>
    new Promise<void>((finish) => pending.push({ view: chunk, copy: chunk.slice(), finish }));
  const held = new WriteCoalescer(slowSink);
  const writing = (async () => {
    for (let at = 0; at < size; at += 65536) {
      await held.write(bytes(at, Math.min(65536, size - at)));
    }
    await held.flush();
  })();
  // Finish every write as it comes but the one from a gathering buffer (the file's tail).
  const gathered = (p: { view: Uint8Array }) => p.view.buffer.byteLength === 1 << 20;
  for (let turns = 0;; turns++) {
    assert.ok(turns < 1000, "the gathered write never came");
    await new Promise((r) => setTimeout(r, 0));
    if (pending.some(gathered)) break;
    pending.shift()?.finish();
  }
  held.release();
  seen.length = 0;
  await fileOf(new WriteCoalescer(sink), 3);
  assert.deepEqual(seen.flatMap((write) => [...write.bytes]), [...bytes(3, size)]);
  const tail = pending.find(gathered)!;
  assert.deepEqual(tail.view, tail.copy, "the held write's bytes were not overwritten");
  for (const p of pending) p.finish();
  await writing;
});
