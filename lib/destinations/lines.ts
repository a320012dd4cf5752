/**
 * Record-level stages for destinations that send lines rather than files (a SIEM's batches): a
 * byte-exact line splitter and bounded batches, both web `TransformStream`s that compose with
 * `pipeThrough`, and `scanJsonRecord`, which checks a record is JSON and reads its `event_id`
 * and `timestamp` from its bytes.
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

/**
 * What `scanJsonRecord` found in a record: whether it is a JSON object, and its top-level
 * `event_id` and `timestamp` when they are strings written without escapes. `unusual`: one of
 * them is there in another form (an escape in it or in its key, not a string), which only a
 * full parse reads right.
 */
export interface JsonRecordFacts {
  object: boolean;
  eventId?: string;
  timestamp?: string;
  unusual: boolean;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const IS_HEX = new Uint8Array(256);
for (const c of "0123456789abcdefABCDEF") IS_HEX[c.charCodeAt(0)] = 1;
/** The bytes after a backslash that make a JSON escape (`u` is checked apart). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;
/** The bytes a JSON string holds as they are: printable ASCII but the quote and the backslash. */
const PLAIN = new Uint8Array(256);
for (let c = 0x20; c < 0x80; c++) if (c !== QUOTE && c !== BACKSLASH) PLAIN[c] = 1;
const EVENT_ID_KEY = new TextEncoder().encode("event_id");
const TIMESTAMP_KEY = new TextEncoder().encode("timestamp");
const LITERALS = ["true", "false", "null"].map((word) => new TextEncoder().encode(word));
const factDecoder = new TextDecoder();

/**
 * Whether `record` is one JSON text in UTF-8 exactly as `JSON.parse` of its strict decoding
 * would take it, and its facts, without making a string of it or parsing it into objects (the
 * garbage of parsing every record kept a large delivery's memory high under Bun). Undefined
 * when it is not JSON. Nothing is unescaped: a fact in an unusual form is left to a full parse.
 *
 * @example
 * ```ts
 * const record = new TextEncoder().encode('{"event_id":"e1","timestamp":"2026-07-01T00:00:00Z"}');
 * scanJsonRecord(record); // { object: true, unusual: false, eventId: "e1", timestamp: "2026-..." }
 * ```
 */
export function scanJsonRecord(record: Uint8Array): JsonRecordFacts | undefined {
  // The scanner's state is the module's (it never runs twice at once): closures and a stack
  // made per record were garbage a delivery made for every record.
  b = record;
  n = record.length;
  i = 0;
  escaped = false;
  if (open.length > 1024) open = []; // Not kept as large as the deepest record ever scanned.
  open.length = 0;
  facts = { object: false, unusual: false };
  try {
    return scanValues() ? facts : undefined;
  } finally {
    b = EMPTY;
  }
}

const EMPTY = new Uint8Array(0);
/** The record being scanned, its length, and where the scan is. */
let b: Uint8Array = EMPTY;
let n = 0;
let i = 0;
/** Whether the last string scanned held an escape. */
let escaped = false;
let facts: JsonRecordFacts = { object: false, unusual: false };
/** The containers open: true for an object, false for an array (emptied for each record). */
let open: boolean[] = [];

/** The index after the string whose quote is at `at`; -1 when it is not a valid string. */
function string(at: number): number {
  escaped = false;
  for (let k = at + 1; k < n;) {
    // The run of printable ASCII first, one table look a byte (most of a record).
    while (k < n && PLAIN[b[k]] === 1) k++;
    if (k >= n) break;
    const c = b[k];
    if (c === QUOTE) return k + 1;
    if (c < 0x20) return -1;
    if (c === BACKSLASH) {
      escaped = true;
      const e = b[k + 1];
      if (e === 0x75) {
        if (!(IS_HEX[b[k + 2]] && IS_HEX[b[k + 3]] && IS_HEX[b[k + 4]] && IS_HEX[b[k + 5]])) {
          return -1;
        }
        k += 6;
      } else if (k + 1 < n && SIMPLE_ESCAPE[e]) k += 2;
      else return -1;
      continue;
    }
    if (c < 0x80) {
      k++;
      continue;
    }
    // UTF-8 as a fatal TextDecoder takes it: no overlong forms, surrogates or > U+10FFFF.
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) length = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c === 0xe0) low = 0xa0;
      else if (c === 0xed) high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c === 0xf0) low = 0x90;
      else if (c === 0xf4) high = 0x8f;
    } else return -1;
    if (k + length > n || b[k + 1] < low || b[k + 1] > high) return -1;
    for (let j = 2; j < length; j++) {
      if (b[k + j] < 0x80 || b[k + j] > 0xbf) return -1;
    }
    k += length;
  }
  return -1;
}

function space(): void {
  while (i < n && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0d || b[i] === 0x0a)) i++;
}

function digits(): boolean {
  if (!(b[i] >= 0x30 && b[i] <= 0x39)) return false;
  while (b[i] >= 0x30 && b[i] <= 0x39) i++;
  return true;
}

function number(): boolean {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (!(b[i] >= 0x31 && b[i] <= 0x39) || !digits()) return false;
  if (b[i] === 0x2e) {
    i++;
    if (!digits()) return false;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!digits()) return false;
  }
  return true;
}

function literal(): boolean {
  for (const word of LITERALS) {
    if (b[i] !== word[0]) continue;
    for (let j = 1; j < word.length; j++) if (b[i + j] !== word[j]) return false;
    i += word.length;
    return true;
  }
  return false;
}

function sameBytes(start: number, end: number, name: Uint8Array): boolean {
  if (end - start !== name.length) return false;
  for (let j = 0; j < name.length; j++) if (b[start + j] !== name[j]) return false;
  return true;
}

/** Scans a member's key and colon at `i`; which fact its value is (0: none); -1 if bad. */
function key(topLevel: boolean): number {
  if (b[i] !== QUOTE) return -1;
  const end = string(i);
  if (end < 0) return -1;
  let fact = 0;
  if (topLevel) {
    // An escaped key may spell one of them: left to a full parse.
    if (escaped) facts.unusual = true;
    else if (sameBytes(i + 1, end - 1, EVENT_ID_KEY)) fact = 1;
    else if (sameBytes(i + 1, end - 1, TIMESTAMP_KEY)) fact = 2;
  }
  i = end;
  space();
  if (b[i] !== 0x3a) return -1;
  i++;
  return fact;
}

/** Scans the record's one JSON text, filling `facts`; false when it is not JSON. */
function scanValues(): boolean {
  space();
  facts.object = b[i] === 0x7b;
  let fact = 0;
  for (;;) {
    // A value at i.
    space();
    const c = b[i];
    if (c === 0x7b || c === 0x5b) {
      if (fact !== 0) facts.unusual = true;
      i++;
      space();
      if (b[i] === (c === 0x7b ? 0x7d : 0x5d)) i++; // Empty.
      else {
        open.push(c === 0x7b);
        if (c === 0x7b) {
          const next = key(open.length === 1);
          if (next < 0) return false;
          fact = next;
        }
        continue;
      }
    } else if (c === QUOTE) {
      const end = string(i);
      if (end < 0) return false;
      if (fact !== 0) {
        const value = escaped ? undefined : factDecoder.decode(b.subarray(i + 1, end - 1));
        if (value === undefined) facts.unusual = true;
        else if (fact === 1) facts.eventId = value;
        else facts.timestamp = value;
      }
      i = end;
    } else {
      if (!literal() && !number()) return false;
      if (fact !== 0) facts.unusual = true;
    }
    fact = 0;
    // After a value: the containers it closes, then a comma and the next member, or the end.
    for (;;) {
      space();
      if (open.length === 0) return i === n;
      const inObject = open[open.length - 1];
      if (b[i] === (inObject ? 0x7d : 0x5d)) {
        open.pop();
        i++;
        continue;
      }
      if (b[i] !== 0x2c) return false;
      i++;
      space();
      if (inObject) {
        const next = key(open.length === 1);
        if (next < 0) return false;
        fact = next;
      }
      break;
    }
  }
}

/** The days before each month of a common year. */
const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
/** What `isoInstant` found: whole seconds since the epoch and the microseconds after them. */
export interface IsoInstant {
  seconds: number;
  micros: number;
}

/**
 * An RFC 3339 instant of the usual form (`2026-07-01T12:00:00.123456Z`, a fraction of up to 9
 * digits, `Z` or `+HH:MM`, a year from 1970) read from its digits, exactly as `toMicros`
 * (lib/time.ts) reads it; undefined for any other form, which the caller leaves to `toMicros`
 * (a regular expression, a `Date` and `BigInt`s per record were a seventh of a delivery's CPU).
 *
 * @example
 * ```ts
 * isoInstant("2026-07-01T14:00:00.5+02:00"); // { seconds: 1782907200, micros: 500000 }
 * ```
 */
export function isoInstant(text: string): IsoInstant | undefined {
  const n = text.length;
  if (n < 20 || text.charCodeAt(4) !== 0x2d || text.charCodeAt(7) !== 0x2d) return undefined;
  const t = text.charCodeAt(10);
  if (t !== 0x54 && t !== 0x74) return undefined;
  if (text.charCodeAt(13) !== 0x3a || text.charCodeAt(16) !== 0x3a) return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  const hour = digitsAt(text, 11, 2);
  const minute = digitsAt(text, 14, 2);
  const second = digitsAt(text, 17, 2);
  if (
    year < 1970 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
    minute > 59 || second < 0 || second > 59
  ) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 ? (leap ? 29 : 28) : DAYS_IN_MONTH[month - 1];
  if (day > monthDays) return undefined;
  let at = 19;
  let micros = 0;
  const mark = text.charCodeAt(at);
  if (mark === 0x2e || mark === 0x2c) {
    const start = ++at;
    while (at < n && at - start < 9) {
      const c = text.charCodeAt(at);
      if (c < 0x30 || c > 0x39) break;
      if (at - start < 6) micros = micros * 10 + (c - 0x30);
      at++;
    }
    if (at === start) return undefined;
    for (let k = Math.min(at - start, 6); k < 6; k++) micros *= 10;
  }
  let offsetSeconds = 0;
  const zone = text.charCodeAt(at);
  if ((zone === 0x5a || zone === 0x7a) && at + 1 === n) {
    // UTC.
  } else if ((zone === 0x2b || zone === 0x2d) && at + 6 === n && text.charCodeAt(at + 3) === 0x3a) {
    const zh = digitsAt(text, at + 1, 2);
    const zm = digitsAt(text, at + 4, 2);
    if (zh < 0 || zh > 23 || zm < 0 || zm > 59) return undefined;
    offsetSeconds = (zone === 0x2d ? -1 : 1) * (zh * 3600 + zm * 60);
  } else return undefined;
  // Days since 1970-01-01 of the date (a proleptic Gregorian calendar, as Date.UTC counts).
  const y = year - 1;
  const days = (year - 1970) * 365 + (Math.floor(y / 4) - 492) - (Math.floor(y / 100) - 19) +
    (Math.floor(y / 400) - 4) + DAYS_BEFORE_MONTH[month - 1] + (leap && month > 2 ? 1 : 0) +
    day - 1;
  const seconds = days * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  return seconds < 0 ? undefined : { seconds, micros };
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The number written by `count` ASCII digits at `at`, or -1 when one of them is not a digit. */
function digitsAt(text: string, at: number, count: number): number {
  let value = 0;
  for (let k = at; k < at + count; k++) {
    const c = text.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return -1;
    value = value * 10 + (c - 0x30);
  }
  return value;
}
