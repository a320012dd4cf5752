/**
 * Memory for the spools of small files (`ObjectSpool`, lib/destinations/_object_store.ts): a file
 * that fits is held in a buffer instead of a temporary file, and its upload sends that buffer as
 * it is. A temporary file costs an open, its writes, a read back into an upload buffer and an
 * unlink per file: on a run of many small files into a bucket, CPU that the store's own work on
 * the same cores needs.
 *
 * The buffers are reused from file to file (fresh ones per file are garbage that the collector
 * frees late), and all of them together, held by spools or kept for the next file, never exceed
 * `limit` bytes: a file that finds no room is spooled to disk, so memory stays bounded whatever
 * the run's concurrency and the files' sizes.
 *
 * @example
 * ```ts
 * const memory = new SpoolMemory(32 << 20, 8 << 20);
 * const buffer = memory.take(1 << 20); // a 1 MiB view, or undefined: spool this file to disk
 * if (buffer) memory.give(buffer); // once the file's upload is answered
 * ```
 */

/** Buffers are made in steps of this many bytes, so that files of near sizes share them. */
const STEP_BYTES = 256 * 1024;

export class SpoolMemory {
  private readonly free: Uint8Array[] = [];
  /** Bytes of every buffer made and not dropped: those held by spools and the free ones. */
  private made = 0;

  /**
   * `limit`: the most bytes of buffers at once; `largest`: the largest file held in memory (the
   * destination's part size: what one request uploads).
   */
  constructor(readonly limit: number, readonly largest: number) {}

  /** A view of `size` bytes of a buffer of this memory's, or undefined when it has no room. */
  take(size: number): Uint8Array | undefined {
    if (size === 0) return new Uint8Array(0); // Nothing to hold: not counted.
    if (!(size > 0) || size > this.largest) return undefined;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const length = this.free[i].length;
      if (length >= size && (best === -1 || length < this.free[best].length)) best = i;
    }
    if (best !== -1) return this.free.splice(best, 1)[0].subarray(0, size);
    const capacity = Math.ceil(size / STEP_BYTES) * STEP_BYTES;
    // Free buffers too small for this file make room for it, the smallest first.
    this.free.sort((a, b) => b.length - a.length);
    while (this.made + capacity > this.limit && this.free.length) {
      this.made -= this.free.pop()!.length;
    }
    if (this.made + capacity > this.limit) return undefined;
    this.made += capacity;
    return new Uint8Array(capacity).subarray(0, size);
  }

  /** Gives back a view `take` returned, once nothing reads it any more. */
  give(view: Uint8Array): void {
    if (view.buffer.byteLength === 0) return;
    this.free.push(new Uint8Array(view.buffer)); // Its whole capacity (taken at offset 0).
  }

  /** Bytes of buffers made and not dropped (held and free): never more than `limit`. */
  get bytes(): number {
    return this.made;
  }
}
