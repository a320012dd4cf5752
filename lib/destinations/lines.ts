/**
 * Record-level stages for destinations that send lines rather than files (a SIEM's batches): a
 * byte-exact line splitter and bounded batches, both web `TransformStream`s that compose with
 * `pipeThrough`.
 *
 * @example
 * ```ts
 * import type { FileSpool } from "./spool.ts";
 * declare const spool: FileSpool;
 * declare function send(lines: Uint8Array[]): Promise<void>;
 * const batches = spool.stream()
 *   .pipeThrough(new LineSplitStream())
 *   .pipeThrough(new BatchStream({ count: 500, bytes: 1 << 20, waitMs: 1000 }));
 * for await (const lines of batches) await send(lines);
 * ```
 */

const NEWLINE = 0x0a;

/**
 * Splits bytes into lines, byte-exact: each line keeps its `\n` (and a `\r` before it), a last
 * line without a newline is emitted as it is, and the lines joined again are exactly the input.
 * Unlike std's `TextLineStream` nothing is decoded, trimmed or merged. `maxLineBytes` bounds the
 * memory a line without a newline may take (an error beyond it).
 *
 * @example
 * ```ts
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * const chunks = ReadableStream.from([bytes("a\r\nb"), bytes("c\n")]);
 * const lines = chunks.pipeThrough(new LineSplitStream());
 * // "a\r\n", "bc\n"
 * ```
 */
export class LineSplitStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor(options: { maxLineBytes?: number } = {}) {
    const maxLineBytes = options.maxLineBytes ?? Infinity;
    /** The start of a line that continues in the next chunk. */
    let partial: Uint8Array[] = [];
    let partialBytes = 0;
    const join = (tail: Uint8Array): Uint8Array => {
      if (partialBytes + tail.length > maxLineBytes) {
        throw new RangeError(`a line is longer than ${maxLineBytes} bytes`);
      }
      const line = new Uint8Array(partialBytes + tail.length);
      let at = 0;
      for (const piece of partial) {
        line.set(piece, at);
        at += piece.length;
      }
      line.set(tail, at);
      partial = [];
      partialBytes = 0;
      return line;
    };
    super({
      transform(chunk, controller) {
        let start = 0;
        for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
          // Copied: the caller may reuse its chunk once this returns.
          controller.enqueue(join(chunk.subarray(start, end + 1)));
          start = end + 1;
        }
        if (start < chunk.length) {
          partial.push(chunk.slice(start));
          partialBytes += chunk.length - start;
          if (partialBytes > maxLineBytes) join(new Uint8Array()); // Throws: too long already.
        }
      },
      flush(controller) {
        if (partialBytes > 0) controller.enqueue(join(new Uint8Array()));
      },
    });
  }
}

/** Bounds of one batch: at most `count` items, at most `bytes` (unless one item alone is larger), and at most `waitMs` after its first item. */
export interface BatchLimits {
  count?: number;
  bytes?: number;
  waitMs?: number;
}

/**
 * Gathers items into batches, each emitted as soon as it reaches `count` items or `bytes`, or
 * `waitMs` after its first item arrived, whichever comes first; the rest at the end. An item that
 * would take a batch over `bytes` starts the next one; an item larger than `bytes` is a batch of
 * its own. `sizeOf` measures an item (default: its `byteLength`).
 *
 * @example
 * ```ts
 * declare const lines: ReadableStream<Uint8Array>; // from a LineSplitStream
 * const batches = lines.pipeThrough(new BatchStream({ count: 500, bytes: 1 << 20, waitMs: 1000 }));
 * ```
 */
export class BatchStream<T> extends TransformStream<T, T[]> {
  constructor(
    limits: BatchLimits,
    sizeOf: (item: T) => number = (item) => (item as { byteLength?: number }).byteLength ?? 0,
  ) {
    const maxCount = limits.count ?? Infinity;
    const maxBytes = limits.bytes ?? Infinity;
    let batch: T[] = [];
    let bytes = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const emit = (controller: TransformStreamDefaultController<T[]>) => {
      clearTimeout(timer);
      timer = undefined;
      if (batch.length === 0) return;
      controller.enqueue(batch);
      batch = [];
      bytes = 0;
    };
    super({
      transform(item, controller) {
        const size = sizeOf(item);
        if (batch.length > 0 && bytes + size > maxBytes) emit(controller);
        batch.push(item);
        bytes += size;
        if (batch.length >= maxCount || bytes >= maxBytes) return emit(controller);
        if (batch.length === 1 && limits.waitMs !== undefined) {
          timer = setTimeout(() => {
            try {
              emit(controller);
            } catch {
              // The pipeline was cancelled meanwhile: nobody is left to take the batch.
            }
          }, limits.waitMs);
        }
      },
      flush(controller) {
        emit(controller);
      },
    });
  }
}
