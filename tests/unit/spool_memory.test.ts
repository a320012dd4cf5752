/**
 * Small files' spools in memory (lib/destinations/_spool_memory.ts, `ObjectSpool`): a file whose
 * listed size fits is held in a reused buffer and never touches the disk; all buffers together
 * stay within the limit; a file that outgrows its buffer (a listing that understated its size)
 * moves to a temporary file with every byte, and the buffer goes back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { SpoolMemory } from "../../lib/destinations/_spool_memory.ts";
import { ObjectSpool } from "../../lib/destinations/_object_store.ts";

const MiB = 1024 * 1024;

test("buffers are views of the size asked, reused once given back, never more than the limit", () => {
  const memory = new SpoolMemory(4 * MiB, 2 * MiB);
  const a = memory.take(MiB)!;
  const b = memory.take(MiB + 1)!;
  assert.equal(a.length, MiB);
  assert.equal(b.length, MiB + 1);
  assert.equal(memory.take(3 * MiB), undefined, "larger than the largest file held");
  const c = memory.take(1500 * 1024)!;
  assert.ok(c, "room for a third");
  assert.equal(memory.take(MiB), undefined, "no room left: that file goes to disk");
  assert.ok(memory.bytes <= memory.limit, `${memory.bytes} bytes made`);
  memory.give(a);
  const again = memory.take(1000)!;
  assert.equal(again.buffer, a.buffer, "the buffer given back is taken again");
  assert.equal(memory.take(0)?.length, 0, "an empty file needs no room");
});

test("a free buffer too small for the next file makes room for it", () => {
  const memory = new SpoolMemory(2 * MiB, 2 * MiB);
  memory.give(memory.take(MiB)!);
  memory.give(memory.take(MiB)!); // The same buffer again: one of 1 MiB is free.
  const big = memory.take(2 * MiB);
  assert.ok(big, "the free 1 MiB buffer was dropped to make room for 2 MiB");
  assert.equal(memory.bytes, 2 * MiB);
});

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "spool-memory-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const text = (n: number) => new TextEncoder().encode(`{"n":${n}}\n`.repeat(200));

test("a file that fits is held in memory: no temporary file, its bytes as written", async () => {
  await withDir(async (dir) => {
    const memory = new SpoolMemory(MiB, MiB);
    const bytes = text(1);
    let made = 0;
    const path = () => Promise.resolve(join(dir, `${made++}.part`));
    const spool = await new ObjectSpool(path, false, "k", false, {
      pool: memory,
      size: bytes.length,
    })
      .start();
    await spool.write(bytes.subarray(0, 100));
    await spool.write(bytes.subarray(100));
    await spool.finalize();
    assert.deepEqual(spool.inMemory(), bytes);
    assert.equal(spool.length, bytes.length);
    const part = new Uint8Array(10);
    assert.equal(await spool.readAt(part, bytes.length - 4), 4, "short at the end");
    assert.deepEqual(part.subarray(0, 4), bytes.subarray(bytes.length - 4));
    assert.equal(spool.facts().lines, 200);
    await spool.discard();
    assert.equal(made, 0, "no file path was ever asked for");
    assert.equal(memory.take(bytes.length)?.buffer.byteLength, 256 * 1024, "its buffer is free");
  });
});

test("a file that outgrows its buffer moves to a temporary file with every byte", async () => {
  await withDir(async (dir) => {
    const memory = new SpoolMemory(MiB, MiB);
    const bytes = text(2);
    const path = join(dir, "0.part");
    const spool = await new ObjectSpool(() => Promise.resolve(path), false, "k", false, {
      pool: memory,
      size: 300, // The listing understated it.
    }).start();
    for (let at = 0; at < bytes.length; at += 97) {
      await spool.write(bytes.subarray(at, Math.min(at + 97, bytes.length)));
    }
    await spool.finalize();
    assert.equal(spool.inMemory(), undefined, "no longer in memory");
    assert.ok(existsSync(path), "the temporary file took over");
    const back = new Uint8Array(bytes.length);
    assert.equal(await spool.readAt(back, 0), bytes.length);
    assert.deepEqual(back, bytes);
    await spool.discard();
    assert.ok(!existsSync(path), "removed with the spool");
    assert.ok(memory.take(MiB) !== undefined, "the buffer was given back");
  });
});

test("with --gzip the compressed bytes are held, and restart starts from nothing", async () => {
  await withDir(async (dir) => {
    const memory = new SpoolMemory(MiB, MiB);
    const bytes = text(3);
    const spool = await new ObjectSpool(
      () => Promise.resolve(join(dir, "0.part")),
      true,
      "k",
      false,
      { pool: memory, size: bytes.length },
    ).start();
    await spool.write(text(9));
    await spool.restart(); // A download that starts over.
    await spool.write(bytes);
    await spool.finalize();
    const held = spool.inMemory()!;
    assert.ok(held.length < bytes.length, "compressed");
    assert.deepEqual(new Uint8Array(gunzipSync(held)), bytes);
    assert.equal(spool.facts().stored_size, held.length);
    await spool.discard();
  });
});

test("a file of unknown size, or one the memory has no room for, is spooled to disk", async () => {
  await withDir(async (dir) => {
    const memory = new SpoolMemory(256 * 1024, 256 * 1024);
    const taken = memory.take(200 * 1024)!; // Another spool holds the room.
    for (const size of [undefined, 1000]) {
      const path = join(dir, `${size}.part`);
      const spool = await new ObjectSpool(
        () => Promise.resolve(path),
        false,
        "k",
        false,
        size === undefined ? undefined : { pool: memory, size },
      ).start();
      await spool.write(text(4));
      await spool.finalize();
      assert.equal(spool.inMemory(), undefined);
      assert.ok(existsSync(path), `size ${size}: on disk`);
      await spool.discard();
    }
    memory.give(taken);
  });
});
