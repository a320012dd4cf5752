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
const TIMESTAMP = /"timestamp"\s*:\s*"([^"\\]{1,64})"/;

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

  /** The file's own bytes (as listed), in order. */
  plain(chunk: Uint8Array): void {
    if (this.#plain) {
      this.#plain.hash.update(chunk);
      this.#plain.bytes += chunk.length;
    }
    let start = 0;
    for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
      this.#keep(chunk.subarray(start, end));
      this.#endLine();
      start = end + 1;
    }
    if (start < chunk.length) this.#keep(chunk.subarray(start));
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

  #endLine(): void {
    const blank = this.#lineBytes === 0 ||
      (this.#lineBytes === 1 && this.#prefix[0]?.[0] === 0x0d);
    if (!blank) {
      this.#lines++;
      const text = new TextDecoder().decode(concatBytes(this.#prefix, this.#prefixBytes));
      const timestamp = TIMESTAMP.exec(text)?.[1];
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
