/**
 * What a destination learns about a file while it stores it, for the manifest: how many lines
 * (events) it holds, the `timestamp` of its first and last line, and, when the stored bytes are
 * not the listed ones (gzip), their size and SHA-256; with `hashPlain` (a plain file the listing
 * gave no SHA-256 for), the size and SHA-256 of the bytes stored as they came, so that the
 * manifest can vouch for every file. Fed chunk by chunk on the way in, in bounded memory (a
 * line's first `LINE_PREFIX_BYTES` are all it keeps).
 *
 * @example
 * ```ts
 * const facts = new StoredFactsTracker("AUTH_LOG/2026-07-02/eclf_1.jsonl");
 * facts.plain(new TextEncoder().encode('{"timestamp":"2026-07-02T10:00:00Z"}\n'));
 * facts.facts(); // { path: ..., lines: 1, first_timestamp: "2026-07-02T10:00:00Z", ... }
 * ```
 */
import { createHash, type Hash } from "node:crypto";
import type { StoredFacts } from "./format.ts";
import { concatBytes } from "../bytes.ts";

/** Enough of a line to find its `timestamp` (events put it near the start). */
const LINE_PREFIX_BYTES = 16 * 1024;
const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const TIMESTAMP = /"timestamp"\s*:\s*"([^"\\]{1,64})"/;
const DECODER = new TextDecoder();

/** Whether `bytes[start..end)` is an empty line (or a lone `\r`, a CRLF file's). */
function isBlank(bytes: Uint8Array, start: number, end: number): boolean {
  return end === start || (end === start + 1 && bytes[start] === CARRIAGE_RETURN);
}

/** The `timestamp` within the first `LINE_PREFIX_BYTES` of the line `bytes[start..end)`. */
function timestampIn(bytes: Uint8Array, start: number, end: number): string | undefined {
  const text = DECODER.decode(bytes.subarray(start, Math.min(end, start + LINE_PREFIX_BYTES)));
  return TIMESTAMP.exec(text)?.[1];
}

export class StoredFactsTracker {
  readonly #path: string;
  #lines = 0;
  #prefix: Uint8Array[] = [];
  #prefixBytes = 0;
  #lineBytes = 0;
  #first: string | undefined;
  #last: string | undefined;
  #stored: { hash: Hash; bytes: number } | undefined;
  /** The file's own bytes, hashed when they are stored as they came and the listing had no hash. */
  #plain: { hash: Hash; bytes: number } | undefined;

  /**
   * `path`: where the file is stored, relative to the archive's root (`/`-separated);
   * `hashPlain`: hash the file's own bytes (ignored once `stored` is fed: those are the ones kept).
   */
  constructor(path: string, options: { hashPlain?: boolean } = {}) {
    this.#path = path;
    if (options.hashPlain) this.#plain = { hash: createHash("sha256"), bytes: 0 };
  }

  /**
   * The file's own bytes (as listed), in order. Lines are counted with `indexOf`; only a few are
   * decoded: those until the first timestamp, a chunk's last lines (read backwards until one has a
   * timestamp) and the line each chunk ends within, so the cost is a scan, not a decode per line.
   */
  plain(chunk: Uint8Array): void {
    if (this.#plain) {
      this.#plain.hash.update(chunk);
      this.#plain.bytes += chunk.length;
    }
    let end = chunk.indexOf(NEWLINE);
    if (end === -1) return this.#keep(chunk);
    // The line earlier chunks began ends here.
    this.#keep(chunk.subarray(0, end));
    this.#endLine();
    const from = end + 1;
    let start = from;
    let lastEnd = -1;
    while ((end = chunk.indexOf(NEWLINE, start)) !== -1) {
      if (!isBlank(chunk, start, end)) {
        this.#lines++;
        if (this.#first === undefined) this.#first = this.#last = timestampIn(chunk, start, end);
      }
      lastEnd = end;
      start = end + 1;
    }
    // Nothing found forwards means no whole line here has one: no need to read them again.
    if (lastEnd !== -1 && this.#first !== undefined) this.#lastWithin(chunk, from, lastEnd);
    if (start < chunk.length) this.#keep(chunk.subarray(start));
  }

  /** The timestamp of the last line of `chunk[from..lastEnd]` that has one, read backwards. */
  #lastWithin(chunk: Uint8Array, from: number, lastEnd: number): void {
    for (let end = lastEnd; end >= from;) {
      const before = chunk.lastIndexOf(NEWLINE, end - 1); // At least `from - 1`, a newline.
      const start = before + 1;
      if (!isBlank(chunk, start, end)) {
        const timestamp = timestampIn(chunk, start, end);
        if (timestamp !== undefined) {
          this.#last = timestamp;
          return;
        }
      }
      end = before;
    }
  }

  /** The bytes as stored, when they differ from the file's own (compressed). */
  stored(chunk: Uint8Array): void {
    this.#stored ??= { hash: createHash("sha256"), bytes: 0 };
    this.#stored.hash.update(chunk);
    this.#stored.bytes += chunk.length;
  }

  /** Everything learnt, once the last chunk is in (a last line without a newline counts). */
  facts(): StoredFacts {
    if (this.#lineBytes > 0) this.#endLine();
    const facts: StoredFacts = { path: this.#path, lines: this.#lines };
    const kept = this.#stored ?? this.#plain;
    if (kept) {
      facts.stored_size = kept.bytes;
      facts.stored_sha256 = kept.hash.digest("hex");
    }
    this.#stored = this.#plain = undefined;
    if (this.#first !== undefined) facts.first_timestamp = this.#first;
    if (this.#last !== undefined) facts.last_timestamp = this.#last;
    return facts;
  }

  #keep(piece: Uint8Array): void {
    this.#lineBytes += piece.length;
    const room = LINE_PREFIX_BYTES - this.#prefixBytes;
    if (room <= 0 || piece.length === 0) return;
    const kept = piece.slice(0, room);
    this.#prefix.push(kept);
    this.#prefixBytes += kept.length;
  }

  /** Ends the line kept by `#keep` (one that spans chunks, or the last without a newline). */
  #endLine(): void {
    const blank = this.#lineBytes === 0 ||
      (this.#lineBytes === 1 && this.#prefix[0]?.[0] === CARRIAGE_RETURN);
    if (!blank) {
      this.#lines++;
      const line = concatBytes(this.#prefix, this.#prefixBytes);
      const timestamp = timestampIn(line, 0, line.length);
      if (timestamp !== undefined) {
        this.#first ??= timestamp;
        this.#last = timestamp;
      }
    }
    this.#prefix = [];
    this.#prefixBytes = 0;
    this.#lineBytes = 0;
  }
}
