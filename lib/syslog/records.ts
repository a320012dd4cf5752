/**
 * The records of a spool, read line by line in bounded memory: a record is a line without its LF
 * or CRLF, blank lines are not records, and a line longer than the limit is never held whole:
 * only its first bytes (to name its `event_id`) and its size are kept.
 *
 * @example
 * ```ts
 * declare const bytes: ReadableStream<Uint8Array>;
 * for await (const item of readRecords(bytes, 65536)) {
 *   if (item.kind === "record") console.log(item.line, item.bytes.length);
 *   else console.log(`line ${item.line} is ${item.size} bytes`);
 * }
 * ```
 */
import { isBlank } from "../destinations/_batching.ts";
import { concatBytes } from "../bytes.ts";

/** How much of a line too long is kept, to find its `event_id` in. */
const HEAD_BYTES = 4096;

export type RecordItem =
  | { kind: "record"; line: number; bytes: Uint8Array }
  | { kind: "too-large"; line: number; size: number; head: Uint8Array };

/**
 * Every record of `chunks` (fresh buffers, never reused by their producer) in order with its
 * 1-based line number; a line of more than
 * `maxBytes` (its line ending aside) comes as `too-large` with its size and first bytes.
 */
export async function* readRecords(
  chunks: AsyncIterable<Uint8Array>,
  maxBytes: number,
): AsyncGenerator<RecordItem> {
  let pieces: Uint8Array[] = [];
  let size = 0;
  let head: Uint8Array | undefined; // Set once the line went past maxBytes.
  let line = 0;
  const end = (): RecordItem | undefined => {
    line++;
    let item: RecordItem | undefined;
    if (head) {
      item = { kind: "too-large", line, size, head };
    } else {
      let bytes = concatBytes(pieces, size);
      // A CR before the LF is part of the line ending, not of the record.
      if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
      if (!isBlank(bytes)) item = { kind: "record", line, bytes };
    }
    pieces = [];
    size = 0;
    head = undefined;
    return item;
  };
  const add = (piece: Uint8Array) => {
    if (piece.length === 0) return;
    if (head) {
      size += piece.length;
      return;
    }
    // Not copied: the spool's stream hands out a fresh buffer per chunk (a line's bytes are
    // copied once, into its message).
    pieces.push(piece);
    size += piece.length;
    // One byte over: the CR of a CRLF is not counted against the limit.
    if (size > maxBytes + 1) {
      head = concatBytes(pieces, size).slice(0, HEAD_BYTES);
      pieces = [];
    }
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (let lf = chunk.indexOf(0x0a); lf !== -1; lf = chunk.indexOf(0x0a, start)) {
      add(chunk.subarray(start, lf));
      const item = end();
      if (item) yield tooLargeAfterCr(item, maxBytes);
      start = lf + 1;
    }
    add(chunk.subarray(start));
  }
  if (size > 0 || head) {
    const item = end();
    if (item) yield tooLargeAfterCr(item, maxBytes);
  }
}

/** A record of exactly maxBytes + 1 bytes is too large unless that byte was a CR (removed). */
function tooLargeAfterCr(item: RecordItem, maxBytes: number): RecordItem {
  if (item.kind === "record" && item.bytes.length > maxBytes) {
    return { kind: "too-large", line: item.line, size: item.bytes.length, head: item.bytes };
  }
  return item;
}
