/**
 * `verify`'s `duplicate_event` findings: an `event_id` that appears in two stored files, or twice
 * in one. The platform delivers at least once, so this is information (consumers de-duplicate on
 * `event_id`), never a problem.
 *
 * Memory is bounded by the number of distinct event ids, never by their text: the first pass
 * (fed the plain bytes `verify` reads anyway) keeps, per event type, an open-addressing table of
 * 8-byte slots, each a 44-bit fingerprint of an id and the 20-bit number of the first file that
 * held it; the table is kept at most 70% full, so it costs 11-23 bytes per distinct id of a type
 * (10 million ids in one type: a 128 MiB table; 1 million: 16 MiB), plus, while it doubles, the
 * old half. A fingerprint seen again is a candidate; only the files of candidates are read a
 * second time, and there the exact ids are compared, so a fingerprint collision is never
 * reported. Candidates are capped at `CANDIDATE_LIMIT` (beyond it, only counted).
 *
 * An id is taken from the first `"event_id"` key of each line (the API writes it first), a JSON
 * string of at most 200 bytes; a line without one (or not JSON) is not an event and is skipped.
 *
 * @example
 * ```ts
 * const duplicates = new DuplicateEvents();
 * const scan = duplicates.file("AUTH_LOG", "AUTH_LOG/2026-07-02/eclf_1.jsonl");
 * scan.push(new TextEncoder().encode('{"event_id":"evt_1"}\n{"event_id":"evt_1"}\n'));
 * scan.end();
 * const findings = await duplicates.findings(async function* () {});
 * ```
 */
import { Buffer } from "node:buffer";
import type { ArchiveStore } from "../manifest/store.ts";
import type { Finding } from "./model.ts";

const PATTERN = Buffer.from('"event_id"');
/** The longest id taken (longer ones are not ids the platform issues). */
const MAX_ID_BYTES = 200;
/** What may lie between the key and the end of its value: `"event_id" : "<200 bytes>"`. */
const TAIL_BYTES = PATTERN.length + 32 + MAX_ID_BYTES + 2;
/** Candidate fingerprints kept for the second pass; more are counted, not confirmed. */
export const CANDIDATE_LIMIT = 100_000;
/** Ids listed in one finding's message (the JSON report holds them all). */
const IDS_IN_MESSAGE = 10;
const FILE_BITS = 20;
/** A file number too large for its 20 bits: the second pass reads every file of the type. */
const FILE_UNKNOWN = (1 << FILE_BITS) - 1;
const MAX_LOAD = 0.7;

/** Reads the plain bytes of one file: where each line's event id starts and ends. */
export class EventIdScanner {
  /** The current line's id has been taken (or its line cannot hold one any more). */
  #done = false;
  /** The current line's last bytes, while its id may span the chunk boundary. */
  #tail = new Uint8Array(0);
  readonly #onId: (bytes: Uint8Array, start: number, end: number) => void;

  constructor(onId: (bytes: Uint8Array, start: number, end: number) => void) {
    this.#onId = onId;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let at = 0;
    if (this.#tail.length > 0 && !this.#done) {
      // A key or value cut by the boundary: look at the tail and the first bytes ahead.
      const newline = chunk.indexOf(0x0a);
      const head = chunk.subarray(0, Math.min(newline === -1 ? chunk.length : newline, TAIL_BYTES));
      const joined = Buffer.alloc(this.#tail.length + head.length);
      joined.set(this.#tail);
      joined.set(head, this.#tail.length);
      // Open: all of this chunk is in `joined` and the line goes on past it.
      const open = newline === -1 && head.length === chunk.length;
      const found = this.#scanLine(joined, 0, joined.length, open);
      this.#tail = new Uint8Array(0);
      if (found === -2) {
        const key = joined.indexOf(PATTERN);
        this.#tail = joined.subarray(
          key === -1 ? Math.max(0, joined.length - PATTERN.length + 1) : key,
        );
        return;
      }
      // Taken in the joint, or a key whose value was no id: that line is settled either way.
      if (found !== -1) this.#done = true;
    }
    let nextKey = -2; // the next key at or after `at`, -1 none in this chunk, -2 not searched
    while (at < chunk.length) {
      const newline = chunk.indexOf(0x0a, at);
      const lineEnd = newline === -1 ? chunk.length : newline;
      if (!this.#done) {
        // The API writes the id first: `{"event_id"` at the line's start needs no search.
        if (chunk[at] === 0x7b && startsWith(chunk, at + 1, lineEnd)) nextKey = at + 1;
        else if (nextKey === -2 || (nextKey !== -1 && nextKey < at)) {
          nextKey = buffer.indexOf(PATTERN, at);
        }
        if (nextKey !== -1 && nextKey < lineEnd) {
          const found = this.#scanLine(buffer, nextKey, lineEnd, newline === -1);
          if (found === -2) {
            // The value runs past the chunk: keep it for the next one.
            this.#tail = chunk.slice(nextKey, Math.min(chunk.length, nextKey + TAIL_BYTES));
          } else this.#done = found !== -1 || newline !== -1;
          nextKey = -2;
        } else if (newline === -1) {
          // The line goes on in the next chunk: its key may start in these last bytes.
          this.#tail = chunk.slice(Math.max(at, chunk.length - PATTERN.length + 1));
        }
      }
      if (newline === -1) break;
      this.#done = false;
      at = newline + 1;
    }
  }

  end(): void {
    this.#tail = new Uint8Array(0);
    this.#done = false;
  }

  /**
   * Takes the id whose key is at `key`: 1 when taken, 0 when it is no id (not a short string;
   * the line is settled), -2 when the value may go on past `end` (`open`), -1 when no key.
   */
  #scanLine(buffer: Buffer, key: number, end: number, open: boolean): number {
    const at = startsWith(buffer, key, end) ? key : buffer.indexOf(PATTERN, key);
    if (at === -1 || at >= end) return open ? -2 : -1;
    let i = at + PATTERN.length;
    while (i < end && (buffer[i] === 0x20 || buffer[i] === 0x09)) i++;
    if (i >= end) return open ? -2 : 0;
    if (buffer[i] !== 0x3a) return 0; // not `:`: the text "event_id" inside a value
    i++;
    while (i < end && (buffer[i] === 0x20 || buffer[i] === 0x09)) i++;
    if (i >= end) return open ? -2 : 0;
    if (buffer[i] !== 0x22) return 0; // not a string
    const start = ++i;
    let escaped = false;
    while (i < end && buffer[i] !== 0x22) {
      if (buffer[i] === 0x5c) {
        escaped = true;
        i++;
      }
      i++;
      if (i - start > MAX_ID_BYTES) return 0;
    }
    if (i >= end) return open ? -2 : 0;
    if (!escaped) {
      this.#onId(buffer, start, i);
      return 1;
    }
    try {
      const text = JSON.parse(buffer.toString("utf8", start - 1, i + 1)) as string;
      const bytes = new TextEncoder().encode(text);
      this.#onId(bytes, 0, bytes.length);
      return 1;
    } catch {
      return 0;
    }
  }
}

/** Whether `bytes` hold the key `"event_id"` at `at` (before `end`). */
function startsWith(bytes: Uint8Array, at: number, end: number): boolean {
  if (at + PATTERN.length > end) return false;
  for (let i = 0; i < PATTERN.length; i++) if (bytes[at + i] !== PATTERN[i]) return false;
  return true;
}

/** Two 32-bit hashes of `bytes[start, end)` (murmur-style mixing, two seeds). */
function fingerprint(bytes: Uint8Array, start: number, end: number): [number, number] {
  let a = 0x9747b28c;
  let b = 0x1b873593 ^ (end - start);
  for (let i = start; i < end; i++) {
    a = Math.imul(a ^ bytes[i], 0x5bd1e995);
    a ^= a >>> 15;
    b = Math.imul(b ^ bytes[i], 0xcc9e2d51);
    b = (b << 13) | (b >>> 19);
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  a ^= a >>> 16;
  b = Math.imul(b ^ (b >>> 16), 0x85ebca6b);
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  b ^= b >>> 16;
  return [a >>> 0, b >>> 0];
}

/** Fingerprints of one event type: 8 bytes a slot (see the module comment). */
class FingerprintTable {
  #slots = new Uint32Array(2 * (1 << 12));
  #mask = (1 << 12) - 1;
  #size = 0;

  /**
   * Adds `high` (32 bits) and `low` (its top 12 bits kept) first seen in file `file`; the file
   * number stored earlier when the fingerprint was already there, else -1.
   */
  add(high: number, low: number, file: number): number {
    if (this.#size + 1 > MAX_LOAD * (this.#mask + 1)) this.#grow();
    const word = ((low >>> FILE_BITS) << FILE_BITS | (Math.min(file, FILE_UNKNOWN - 1) + 1)) >>> 0;
    return this.#insert(high, word);
  }

  #insert(high: number, word: number): number {
    const slots = this.#slots;
    const key = word >>> FILE_BITS;
    for (let i = high & this.#mask;; i = (i + 1) & this.#mask) {
      const stored = slots[2 * i + 1];
      if (stored === 0) {
        slots[2 * i] = high;
        slots[2 * i + 1] = word;
        this.#size++;
        return -1;
      }
      if (slots[2 * i] === high && stored >>> FILE_BITS === key) {
        return (stored & FILE_UNKNOWN) - 1;
      }
    }
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    this.#mask = this.#mask * 2 + 1;
    this.#size = 0;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i + 1] !== 0) this.#insert(old[i], old[i + 1]);
    }
  }
}

interface TypeState {
  table: FingerprintTable;
  paths: string[];
  /** Candidate fingerprints (`high:low12`). */
  candidates: Set<string>;
  /** Files to read again; `all` when a first holder's number did not fit. */
  files: Set<number>;
  all: boolean;
}

/** One file's scanner, fed its plain bytes. */
export interface FileScan {
  push(chunk: Uint8Array): void;
  end(): void;
}

export class DuplicateEvents {
  readonly #types = new Map<string, TypeState>();
  #candidates = 0;
  #overflow = 0;

  /** A scanner for the stored file `path` of `eventType` (first pass). */
  file(eventType: string, path: string): FileScan {
    let state = this.#types.get(eventType);
    if (!state) {
      state = {
        table: new FingerprintTable(),
        paths: [],
        candidates: new Set(),
        files: new Set(),
        all: false,
      };
      this.#types.set(eventType, state);
    }
    const type = state;
    const number = type.paths.push(path) - 1;
    return new EventIdScanner((bytes, start, end) => {
      const [high, low] = fingerprint(bytes, start, end);
      const first = type.table.add(high, low, number);
      if (first === -1) return;
      const key = `${high}:${low >>> FILE_BITS}`;
      if (!type.candidates.has(key)) {
        if (this.#candidates >= CANDIDATE_LIMIT) {
          this.#overflow++;
          return;
        }
        this.#candidates++;
        type.candidates.add(key);
      }
      type.files.add(number);
      if (first >= FILE_UNKNOWN - 1) type.all = true;
      else type.files.add(first);
    });
  }

  /**
   * The second pass: reads the candidates' files again (`read` yields a file's plain bytes) and
   * reports each id found more than once, grouped by the files that hold it.
   */
  async findings(read: (path: string) => AsyncIterable<Uint8Array>): Promise<Finding[]> {
    const findings: Finding[] = [];
    const decoder = new TextDecoder();
    for (const [eventType, type] of this.#types) {
      if (type.candidates.size === 0) continue;
      /** Exact id -> the files holding it, with how many times each. */
      const seen = new Map<string, Map<string, number>>();
      const numbers = type.all
        ? type.paths.map((_, n) => n)
        : [...type.files].sort((a, b) => a - b);
      for (const number of numbers) {
        const path = type.paths[number];
        const scanner = new EventIdScanner((bytes, start, end) => {
          const [high, low] = fingerprint(bytes, start, end);
          if (!type.candidates.has(`${high}:${low >>> FILE_BITS}`)) return;
          const id = decoder.decode(bytes.subarray(start, end));
          const files = seen.get(id) ?? new Map<string, number>();
          files.set(path, (files.get(path) ?? 0) + 1);
          seen.set(id, files);
        });
        for await (const chunk of read(path)) scanner.push(chunk);
        scanner.end();
      }
      // Ids held by the same files (and as often) make one finding.
      const groups = new Map<string, { files: Map<string, number>; ids: string[] }>();
      for (const [id, files] of seen) {
        const total = [...files.values()].reduce((n, c) => n + c, 0);
        if (total < 2) continue; // a fingerprint collision, not a duplicate
        const key = [...files].map(([p, c]) => `${p}\0${c}`).sort().join("\n");
        const group = groups.get(key) ?? { files, ids: [] };
        group.ids.push(id);
        groups.set(key, group);
      }
      for (const { files, ids } of groups.values()) {
        findings.push(finding(eventType, files, ids.sort()));
      }
    }
    if (this.#overflow > 0) {
      findings.push({
        kind: "duplicate_event",
        severity: "info",
        message: `${this.#overflow} more event ids may appear more than once: past the first ` +
          `${CANDIDATE_LIMIT} candidates they were counted, not confirmed`,
      });
    }
    return findings;
  }
}

function finding(eventType: string, files: Map<string, number>, ids: string[]): Finding {
  const paths = [...files.keys()].sort();
  const where = paths.length === 1
    ? `${files.get(paths[0])} times in ${paths[0]}`
    : `in ${paths.length} files: ${paths.join(", ")}`;
  const listed = ids.slice(0, IDS_IN_MESSAGE).join(", ") +
    (ids.length > IDS_IN_MESSAGE ? ` and ${ids.length - IDS_IN_MESSAGE} more` : "");
  const subject = ids.length === 1 ? `event_id ${listed} appears` : `${ids.length} event_ids ` +
    `appear each (${listed})`;
  return {
    kind: "duplicate_event",
    severity: "info",
    message: `${eventType}: ${subject} ${where} (the platform delivers at least once: ` +
      "de-duplicate on event_id)",
    eventType,
    path: paths[0],
    id: ids[0],
    paths,
    eventIds: ids,
  };
}

/**
 * An object's plain bytes (decompressed when `.gz`), for the second pass; a stream that is not
 * valid gzip just ends (the first pass reported it altered).
 */
export function plainReader(store: ArchiveStore): (path: string) => AsyncIterable<Uint8Array> {
  return async function* (path: string) {
    if (!path.endsWith(".gz")) {
      yield* store.read(path);
      return;
    }
    const inflated = ReadableStream.from(store.read(path)).pipeThrough(
      new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
    try {
      yield* inflated;
    } catch {
      // Reported by the first pass.
    }
  };
}
