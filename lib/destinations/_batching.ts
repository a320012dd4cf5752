/**
 * What the record-sending SIEM destinations (Splunk HEC in `splunk_hec.ts`, Elasticsearch and
 * OpenSearch `_bulk` in `elasticsearch.ts`) share: one `Destination` over a small
 * `BatchProtocol`, which only encodes a record and makes one attempt at sending a batch.
 *
 * - Records are read line by line from the verified spool (`FileSpool.writeInto`, split here
 *   without a copy per line), so memory is bounded by the batches in flight, whatever the file's
 *   size. A record is a line without its LF or CRLF; blank lines are not records. Each batch is
 *   one buffer its records are encoded into (one small typed array per record would cost the
 *   runtimes' allocators far more memory than the records themselves), reused batch after batch.
 * - Memory stays under 150 MB whatever `--concurrency` says: at most `SPOOLS_AHEAD` downloads run
 *   ahead (lib/delivery.ts enforces it), records are encoded from their bytes where the
 *   protocol can (`encodeBytes`), and `GarbageWatch` has Bun collect what they leave behind.
 * - Batches are bounded by count and bytes and gather records across files; the open batch is
 *   sent when full, `lingerMs` after the last file was taken, or at `finish`. At most `inFlight`
 *   batches are sent at once (the next record waits for room).
 * - A batch the collector finds too large (413) is halved and each half sent again; later
 *   batches are kept under the size that was refused. A single record too large fails the run
 *   naming its `event_id` and size: it never loops.
 * - A transient failure (a reset, 429, 503, an acknowledgement that did not come) sends the batch
 *   again after a backoff with full jitter or the server's `Retry-After` (lib/retry.ts); items
 *   the protocol names as "again" (an Elasticsearch item's 429) are sent again alone.
 * - A file is confirmed once every record of it is confirmed and all of it was read; a record
 *   refused for good rejects its file (the run fails, the checkpoint stays before it).
 *
 * @example
 * ```ts
 * declare const protocol: BatchProtocol;
 * const destination = await BatchingDestination.create(protocol, {
 *   maxCount: 1000,
 *   maxBytes: 1 << 20,
 *   inFlight: 4,
 * });
 * ```
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { CliError, codeOf, reason, registerSecret, TransientError, usage } from "../errors.ts";
import { backoffDelay, retryDelay, type RetryNotice, type RetryPolicy, sleep } from "../retry.ts";
import { isLiteralLoopback } from "../urls.ts";
import { fullCollection } from "../runtime.ts";
import type { Env } from "../settings.ts";
import type { Destination, Parcel, Receipt } from "./contract.ts";
import { type FileSpool, RunSpools } from "./spool.ts";

/** The default retry policy of SIEM requests: 5 retries, 1 s doubling, at most 30 s a wait. */
export const SIEM_RETRY_POLICY: RetryPolicy = { retries: 5, backoffMs: 1_000, maxWaitMs: 30_000 };

/** A record longer than this (64 MiB) is refused before it is held whole in memory. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** For tests only: the first backoff of SIEM retries, in ms (`OAI_COMPLIANCE_SIEM_BACKOFF_MS`). */
export function siemRetryPolicy(env: Env): RetryPolicy {
  const text = env.OAI_COMPLIANCE_SIEM_BACKOFF_MS;
  const backoff = Number(text);
  return text && Number.isFinite(backoff) && backoff >= 0
    ? { ...SIEM_RETRY_POLICY, backoffMs: backoff, maxWaitMs: Math.max(backoff * 4, 1) }
    : SIEM_RETRY_POLICY;
}

/** Where a record came from, for messages. */
export interface RecordOrigin {
  eventType: string;
  fileId: string;
  /** 1-based line number in its file. */
  line: number;
}

/** In an `EncodedRecord`'s parts: the record's own bytes, as read. */
export const RECORD = { record: "as-is" } as const;
/** In an `EncodedRecord`'s parts: the record's bytes escaped as the inside of a JSON string. */
export const RECORD_ESCAPED = { record: "escaped" } as const;
/** A piece of what a record adds to a batch: text, or the record itself (see `RECORD`). */
export type EncodedPart = string | typeof RECORD | typeof RECORD_ESCAPED;

/**
 * What a protocol makes of one record: `text`, or `parts` written one after another. Parts that
 * name the record are copied (or escaped) from its bytes straight into the batch, so no string
 * of the record is made for the batch; from `encodeBytes`, no string of it at all (under Bun,
 * decoding, parsing and re-encoding every record was garbage collected late, and with it a
 * large delivery's peak memory was 20-30 MB higher).
 */
export type EncodedRecord =
  & {
    /** The record's `event_id`, when it has one (for messages). */
    eventId?: string;
  }
  & ({ text: string; parts?: undefined } | { parts: readonly EncodedPart[]; text?: undefined });

/** What `encoded` adds to a batch, as text, for `record` (the line as text). */
export function encodedText(encoded: EncodedRecord, record: string): string {
  if (encoded.parts === undefined) return encoded.text;
  return encoded.parts.map((part) =>
    part === RECORD ? record : part === RECORD_ESCAPED ? JSON.stringify(record).slice(1, -1) : part
  ).join("");
}

/** One record in a batch. */
export interface BatchItem extends RecordOrigin {
  /** What the record adds to the batch's body: `source` from `start` to `end`. */
  source: Uint8Array;
  start: number;
  end: number;
  eventId?: string;
  /** The record's size as read (without its line ending). */
  recordBytes: number;
}

/**
 * What one attempt at a batch came to: every item confirmed; some confirmed and others to be
 * sent again (`retry`) or refused for good (`failed`, each with its error); or the body was too
 * large for the collector (`limit` says what it accepts, when it said).
 */
export type SendOutcome =
  | { kind: "accepted" }
  | {
    kind: "partial";
    retry: number[];
    failed: Array<{ index: number; error: CliError }>;
    retryAfterMs?: number;
  }
  | { kind: "too-large"; limit?: string };

/**
 * A SIEM's wire protocol: how a record is encoded and one attempt at sending a batch. `send`
 * throws a `TransientError` for what another try may cure and a `CliError` for what it cannot;
 * it resolves only once the collector confirmed (acknowledged) what it reports as accepted.
 */
export interface BatchProtocol {
  /** The collector in messages: "Splunk HEC at splunk.example:8088". */
  readonly name: string;
  /** How to raise the collector's size limit, for the message about a record too large. */
  readonly sizeHint: string;
  /** `record` is the line as text, without its line ending. */
  encode(record: string, origin: RecordOrigin): EncodedRecord;
  /**
   * The same from the line's bytes, without a string of it, when the protocol can
   * (`scanJsonRecord` in lines.ts tells it what it needs, and that the bytes are UTF-8, which
   * parts naming the record need); undefined sends it to `encode`.
   */
  encodeBytes?(record: Uint8Array, origin: RecordOrigin): EncodedRecord | undefined;
  send(items: readonly BatchItem[], signal: AbortSignal): Promise<SendOutcome>;
}

export interface BatchingOptions {
  /** Records per batch at most. */
  maxCount: number;
  /** Body bytes per batch at most (a record larger than this is a batch of its own). */
  maxBytes: number;
  /** Batches sent at once at most. */
  inFlight: number;
  policy?: RetryPolicy;
  /** The open batch is sent this long after the last file was taken (default 1 s). */
  lingerMs?: number;
  maxRecordBytes?: number;
  /** Hears each retry (counted and shown like the API's). */
  onRetry?: (notice: RetryNotice) => void;
}

/**
 * Downloads a record-sending destination lets run ahead of it (in flight, or done and waiting
 * their turn), whatever `--concurrency` says (`Destination.spoolsAhead`; the delivery enforces
 * it). It takes records at tens of MB/s, far below what downloads reach, so more downloads ahead
 * only fill memory: each holds its answer's buffered chunks and its spool's 2 MiB of write
 * buffers. Measured under Bun, 40 files of 4 MiB into `_bulk` at `--concurrency 16` peaked at
 * 280 MB without this bound, 125-130 MiB with it; two keep the next file ready while one is
 * delivered (and at the API's pace of 50 downloads a minute, two in flight keep up with it unless
 * a download takes longer than 2.4 s).
 */
export const SPOOLS_AHEAD = 2;

/** The body of `items`, their bytes one after another (a view when they are already so). */
export function joinItems(items: readonly BatchItem[]): Uint8Array {
  let total = 0;
  let contiguous = true;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    total += item.end - item.start;
    const previous = items[i - 1];
    if (previous && (previous.source !== item.source || previous.end !== item.start)) {
      contiguous = false;
    }
  }
  if (contiguous && items.length > 0) {
    return items[0].source.subarray(items[0].start, items[0].start + total);
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const item of items) {
    body.set(item.source.subarray(item.start, item.end), at);
    at += item.end - item.start;
  }
  return body;
}

/** How an item is named in messages: its event id, line and file. */
export function describeItem(item: RecordOrigin & { eventId?: string }): string {
  const id = item.eventId === undefined ? "a record" : `event ${item.eventId}`;
  return `${id} (line ${item.line} of ${item.eventType} file ${item.fileId})`;
}

/** `line` (without its `\n`) without a `\r` before it. */
export function withoutCarriageReturn(line: Uint8Array): Uint8Array {
  const end = line.length;
  return end > 0 && line[end - 1] === 0x0d ? line.subarray(0, end - 1) : line;
}

/** Whether a record holds only spaces, tabs or carriage returns (a blank line, not an event). */
export function isBlank(record: Uint8Array): boolean {
  for (let i = 0; i < record.length; i++) {
    const byte = record[i];
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0d) return false;
  }
  return true;
}

/** How JSON.stringify escapes each byte inside a string (undefined: copied as it is). */
const ESCAPES: Array<Uint8Array | undefined> = Array.from({ length: 256 }, (_, byte) => {
  if (byte >= 0x20 && byte !== 0x22 && byte !== 0x5c) return undefined;
  return new TextEncoder().encode(JSON.stringify(String.fromCharCode(byte)).slice(1, -1));
});

/**
 * The buffer one batch's records are encoded into, grown by doubling when a record needs more
 * room.
 */
class BatchBuffer {
  #bytes: Uint8Array;
  length = 0;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** The memory it writes into (to reuse once its batch settled). */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** Encodes `text` at the end; where it went. */
  append(text: string): { source: Uint8Array; start: number; end: number } {
    const start = this.length;
    this.#writeText(text);
    return { source: this.#bytes, start, end: this.length };
  }

  /** Writes `parts` at the end, `record` (valid UTF-8) where they name it; where it went. */
  appendParts(
    parts: readonly EncodedPart[],
    record: Uint8Array,
  ): { source: Uint8Array; start: number; end: number } {
    const start = this.length;
    for (const part of parts) {
      if (typeof part === "string") this.#writeText(part);
      else if (part === RECORD) this.#writeBytes(record);
      else this.#writeEscaped(record);
    }
    return { source: this.#bytes, start, end: this.length };
  }

  /**
   * Room for `bytes` more (only a record larger than the batch's bytes makes it grow): grown by
   * doubling. Views handed out earlier point into the old buffer: still valid, not contiguous.
   */
  #ensure(bytes: number): void {
    const needed = this.length + bytes;
    if (needed <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(this.#bytes.length * 2, needed));
    grown.set(this.#bytes.subarray(0, this.length));
    this.#bytes = grown;
  }

  #writeText(text: string): void {
    // ASCII (the envelopes and actions around every record) code unit by code unit: an
    // `encodeInto` on a fresh `subarray` per piece cost more than the copy.
    const out = this.#bytes;
    const n = text.length;
    let at = this.length;
    if (at + n <= out.length) {
      let i = 0;
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c > 0x7f) break;
        out[at++] = c;
      }
      this.length = at;
      if (i === n) return;
      text = text.slice(i);
    }
    let { read, written } = encoder.encodeInto(text, this.#bytes.subarray(this.length));
    this.length += written;
    while (read < text.length) {
      // Grown by what is left at UTF-8's worst case (3 bytes per UTF-16 code unit), only when
      // it did not fit: reserving the worst case up front would grow most full batches.
      this.#ensure((text.length - read) * 3);
      ({ read, written } = encoder.encodeInto(
        text.slice(read),
        this.#bytes.subarray(this.length),
      ));
      this.length += written;
    }
  }

  #writeBytes(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** `bytes` as JSON.stringify writes them inside a string (UTF-8 sequences as they are). */
  #writeEscaped(bytes: Uint8Array): void {
    // Byte by byte: records hold a quote every few bytes, and a `set` per run costs far more.
    this.#ensure(bytes.length);
    let out = this.#bytes;
    let at = this.length;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      if (byte >= 0x20 && byte !== 0x22 && byte !== 0x5c) {
        out[at++] = byte;
        continue;
      }
      const escape = ESCAPES[byte]!;
      // Room for it and for the rest, escaped or not (a control byte takes 6).
      if (at + escape.length + bytes.length - i > out.length) {
        this.length = at;
        this.#ensure(escape.length + bytes.length - i + 64);
        out = this.#bytes;
      }
      // Byte by byte: a `set` (a typed array's call) per quote was a tenth of a delivery's CPU.
      for (let k = 0; k < escape.length; k++) out[at++] = escape[k];
    }
    this.length = at;
  }
}

/** How often (in record bytes taken) the resident size is looked at (~11 µs a look). */
const WATCH_EVERY_BYTES = 1 << 20;
/**
 * Growth of the resident size since the last collection that asks for the next one: the peak
 * is about what stays resident after a collection (95-110 MiB in a delivery under Bun) plus
 * this. Measured under Bun, one 384 MiB file: 16 MiB peaked at 111-124 MiB, 24 MiB at 114-136
 * MiB, for no CPU time to tell apart (records are read without parsing them into objects, see
 * `encodeBytes`, so there is little garbage; before that, 16 MiB cost a fifth more CPU).
 */
const GROWTH_BYTES = 16 << 20;
/**
 * Below this resident size no collection is asked for: a delivery's resident size after a
 * collection settles at 92-102 MiB under Bun, so the collections its first records made on the
 * way there (at 80 and 93 MiB, about 35 ms each under load, a quarter of them) lowered no peak.
 */
const FLOOR_BYTES = 100 << 20;

/**
 * Keeps the garbage of a fast record loop from piling up. Under Bun (JavaScriptCore) what a
 * delivery leaves behind (decoded and parsed records, the chunks of the downloads beside it) is
 * collected late: a 384 MiB file into `_bulk` peaked at 135-149 MiB with about 20 MB of heap
 * live, four overlapping downloads took a run to 170-220 MiB, and neither eden collections nor
 * asynchronous ones lowered it; a full collection does (15-30 ms here, under load). So every MiB
 * of records, when the resident size grew by `GROWTH_BYTES` since the last collection, one is
 * made. Deno offers none (V8 without --expose-gc): there nothing happens.
 */
export class GarbageWatch {
  #taken = 0;
  #after = 0;
  readonly #collect: (() => void) | undefined;

  constructor(collect = fullCollection()) {
    this.#collect = collect;
  }

  /** `bytes` of records were taken. */
  taken(bytes: number): void {
    if (this.#collect === undefined) return;
    this.#taken += bytes;
    if (this.#taken < WATCH_EVERY_BYTES) return;
    this.#taken = 0;
    if (process.memoryUsage.rss() < Math.max(this.#after + GROWTH_BYTES, FLOOR_BYTES)) return;
    this.#collect();
    this.#after = process.memoryUsage.rss();
  }
}

/** One for the process: the records of every destination make the same garbage. */
export const garbageWatch: GarbageWatch = new GarbageWatch();

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** One file's records in flight: its receipt is confirmed once all are, and it was read whole. */
class FileTracker {
  #outstanding = 0;
  #sealed = false;
  #rejected = false;
  constructor(private readonly receipt: Receipt) {}

  add(): void {
    this.#outstanding++;
  }

  done(): void {
    this.#outstanding--;
    this.#settle();
  }

  /** Every record of the file has been read and handed on. */
  seal(): void {
    this.#sealed = true;
    this.#settle();
  }

  reject(error: unknown): void {
    this.#rejected = true;
    this.receipt.reject(error);
  }

  #settle(): void {
    if (this.#sealed && this.#outstanding === 0 && !this.#rejected) this.receipt.confirm();
  }
}

type TrackedItem = BatchItem & { tracker: FileTracker };

export class BatchingDestination implements Destination<FileSpool> {
  readonly guarantee = "confirmed";
  readonly #folder: RunSpools;
  readonly #protocol: BatchProtocol;
  readonly #options: Required<BatchingOptions>;
  /** The batch records are added to; sent when full, on linger or at `finish`. */
  #open: TrackedItem[] = [];
  /** What the open batch's records are encoded into. */
  #buffer: BatchBuffer;
  /**
   * Buffers of settled batches, for the next ones (nothing reads a settled batch's bytes): the
   * open batch and those in flight take at most `inFlight + 1`, so no buffer is made again
   * after the first batches (a new megabyte per batch was garbage the runtimes collect late).
   */
  #pool: Uint8Array[] = [];
  /** Lowered when the collector refused a batch as too large. */
  #maxBytes: number;
  #inFlight = new Set<Promise<void>>();
  #linger: ReturnType<typeof setTimeout> | undefined;
  #failure: { error: unknown } | undefined;
  readonly #controller = new AbortController();
  readonly spoolsAhead = SPOOLS_AHEAD;

  private constructor(folder: RunSpools, protocol: BatchProtocol, options: BatchingOptions) {
    this.#folder = folder;
    this.#protocol = protocol;
    this.#options = {
      policy: SIEM_RETRY_POLICY,
      lingerMs: 1_000,
      maxRecordBytes: MAX_RECORD_BYTES,
      onRetry: () => {},
      ...options,
    };
    this.#maxBytes = options.maxBytes;
    this.#buffer = this.#newBuffer();
  }

  /**
   * A buffer for the next batch: a settled batch's (grown to what batches need), or a new one.
   */
  #newBuffer(): BatchBuffer {
    return new BatchBuffer(this.#pool.pop() ?? new Uint8Array(this.#bufferBytes()));
  }

  /**
   * A batch's bytes and a record's slack, at most 8 MiB (a larger batch grows its own buffer;
   * pages a batch never reaches are never touched, so they take no memory).
   */
  #bufferBytes(): number {
    return Math.min(this.#options.maxBytes + 64 * 1024, 8 << 20);
  }

  static async create(
    protocol: BatchProtocol,
    options: BatchingOptions,
  ): Promise<BatchingDestination> {
    return new BatchingDestination(await RunSpools.create(), protocol, options);
  }

  alreadyStored(): Promise<boolean> {
    // Re-sending is cheap to make harmless: Elasticsearch drops a repeated _id, and Splunk
    // searches de-duplicate on event_id; nothing here can tell what the collector holds.
    return Promise.resolve(false);
  }

  spool(): Promise<FileSpool> {
    return this.#folder.next();
  }

  async deliver({ file, eventType, spool, downloaded, receipt }: Parcel<FileSpool>): Promise<void> {
    this.#throwIfFailed();
    clearTimeout(this.#linger);
    const tracker = new FileTracker(receipt);
    const maxRecordBytes = this.#options.maxRecordBytes;
    let line = 0;
    /** The start of a line that continues in the next chunk. */
    let carry: Uint8Array[] = [];
    let carryBytes = 0;
    const tooLong = () =>
      new CliError(
        "integrity",
        `line ${line + 1} of ${eventType} file ${file.id} is longer than ` +
          `${maxRecordBytes / (1024 * 1024)} MiB; it is not sent to ${this.#protocol.name}. ` +
          `Skip the file with 'state skip' if it is expected`,
      );
    /** Takes one line (without its `\n`); resolves when there is room for the next. */
    const take = (piece: Uint8Array): Promise<void> | undefined => {
      line++;
      if (carryBytes > 0) {
        const whole = new Uint8Array(carryBytes + piece.length);
        let at = 0;
        for (const part of [...carry, piece]) {
          whole.set(part, at);
          at += part.length;
        }
        carry = [];
        carryBytes = 0;
        piece = whole;
      }
      if (piece.length > maxRecordBytes) throw tooLong();
      garbageWatch.taken(piece.length + 1);
      const record = withoutCarriageReturn(piece);
      if (isBlank(record)) return undefined;
      const origin = { eventType, fileId: file.id, line };
      const fromBytes = this.#protocol.encodeBytes?.(record, origin);
      if (fromBytes) {
        tracker.add();
        return this.#add(fromBytes, { bytes: record, size: record.length }, origin, tracker);
      }
      // A line that is not UTF-8 is sent as its decoded text (with U+FFFD), never as its bytes.
      let text: string;
      let bytes: Uint8Array | undefined = record;
      try {
        text = strictDecoder.decode(record);
      } catch {
        text = decoder.decode(record);
        bytes = undefined;
      }
      const encoded = this.#protocol.encode(text, origin);
      tracker.add();
      return this.#add(encoded, { text, bytes, size: record.length }, origin, tracker);
    };
    try {
      // Through writeInto: one read buffer, reused (a fresh 1 MiB buffer per chunk costs the
      // allocators more than the records), with a `\n` after a last line that lacks one.
      await spool.writeInto({
        write: async (chunk) => {
          let start = 0;
          for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
            const waiting = take(chunk.subarray(start, end));
            start = end + 1;
            if (waiting) await waiting;
          }
          if (start < chunk.length) {
            // Copied: the buffer is reused once this returns.
            carry.push(chunk.slice(start));
            carryBytes += chunk.length - start;
            if (carryBytes > maxRecordBytes) throw tooLong();
          }
        },
      }, downloaded.lastByte);
      if (carryBytes > 0) await take(new Uint8Array(0));
    } catch (error) {
      tracker.reject(error);
      this.#fail(error);
      throw error;
    } finally {
      await spool.discard();
    }
    tracker.seal();
    if (this.#open.length > 0) {
      // A failure is kept in #failure and reported by the next deliver or the receipts.
      this.#linger = setTimeout(() => this.#dispatch().catch(() => {}), this.#options.lingerMs);
    }
  }

  async finish(): Promise<void> {
    clearTimeout(this.#linger);
    try {
      if (this.#open.length > 0 && !this.#failure) await this.#dispatch();
      await this.#drain();
    } finally {
      await this.#folder.remove();
    }
  }

  async abort(): Promise<void> {
    clearTimeout(this.#linger);
    this.#controller.abort(new CliError("interrupted", "the delivery was stopped"));
    await this.#drain();
    for (const item of this.#open) item.tracker.reject(this.#controller.signal.reason);
    this.#open = [];
    await this.#folder.remove();
  }

  async #drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }

  #fail(error: unknown): void {
    this.#failure ??= { error };
  }

  /**
   * Adds a record to the open batch, sending the batch first when the record would take it over
   * its bytes, and after when it is full; resolves once there is room again (undefined: now).
   */
  #add(
    encoded: EncodedRecord,
    /** Its bytes when they are UTF-8, else its text (decoded with U+FFFD); its size as read. */
    record: { text?: string; bytes?: Uint8Array; size: number },
    origin: RecordOrigin,
    tracker: FileTracker,
  ): Promise<void> | undefined {
    const write = () =>
      encoded.parts === undefined
        ? this.#buffer.append(encoded.text)
        : record.bytes === undefined
        ? this.#buffer.append(encodedText(encoded, record.text!))
        : this.#buffer.appendParts(encoded.parts, record.bytes);
    let at = write();
    let waiting: Promise<void> | undefined;
    if (this.#open.length > 0 && this.#buffer.length > this.#maxBytes) {
      // Over the limit with it: the batch goes without it, and it starts the next one.
      this.#buffer.length = at.start;
      waiting = this.#dispatch();
      at = write();
    }
    this.#open.push({
      eventType: origin.eventType,
      fileId: origin.fileId,
      line: origin.line,
      eventId: encoded.eventId,
      recordBytes: record.size,
      source: at.source,
      start: at.start,
      end: at.end,
      tracker,
    });
    if (this.#open.length >= this.#options.maxCount || this.#buffer.length >= this.#maxBytes) {
      const next = this.#dispatch();
      waiting = waiting ? waiting.then(() => next) : next;
    }
    return waiting;
  }

  /** Sends the open batch once there is room in the window (its outcome settles its files). */
  async #dispatch(): Promise<void> {
    clearTimeout(this.#linger);
    if (this.#open.length === 0) return;
    const batch = this.#open;
    const buffer = this.#buffer;
    this.#open = [];
    this.#buffer = this.#newBuffer();
    while (this.#inFlight.size >= this.#options.inFlight) await Promise.race(this.#inFlight);
    if (this.#failure || this.#controller.signal.aborted) {
      const error = this.#failure?.error ?? this.#controller.signal.reason;
      for (const item of batch) item.tracker.reject(error);
      this.#throwIfFailed();
      return;
    }
    const sending: Promise<void> = this.#send(batch)
      .catch((error) => {
        for (const item of batch) item.tracker.reject(error);
        this.#fail(error);
      })
      .finally(() => {
        this.#inFlight.delete(sending);
        // A buffer grown for one large record is let go: it would hold its size for the run.
        const bytes = buffer.bytes;
        if (this.#pool.length <= this.#options.inFlight && bytes.length <= this.#bufferBytes()) {
          this.#pool.push(bytes);
        }
      });
    this.#inFlight.add(sending);
  }

  /** Sends `batch` until every item is confirmed; throws what fails it for good. */
  async #send(batch: TrackedItem[]): Promise<void> {
    const { policy } = this.#options;
    const signal = this.#controller.signal;
    let items = batch;
    for (let attempt = 0;;) {
      let outcome: SendOutcome;
      try {
        outcome = await this.#protocol.send(items, signal);
      } catch (error) {
        if (!(error instanceof TransientError) || attempt >= policy.retries || signal.aborted) {
          throw error;
        }
        const waitMs = retryDelay(attempt++, error, policy);
        this.#options.onRetry({
          what: `sending ${items.length} records to ${this.#protocol.name}`,
          attempt: attempt + 1,
          of: policy.retries + 1,
          waitMs,
          reason: error.message,
        });
        await sleep(waitMs, signal);
        continue;
      }
      if (outcome.kind === "too-large") return await this.#halve(items, outcome.limit);
      const retry = new Set(outcome.kind === "partial" ? outcome.retry : []);
      const failed = new Map(
        outcome.kind === "partial" ? outcome.failed.map((f) => [f.index, f.error]) : [],
      );
      items.forEach((item, index) => {
        const error = failed.get(index);
        if (error) {
          item.tracker.reject(error);
          this.#fail(error);
        } else if (!retry.has(index)) item.tracker.done();
      });
      if (retry.size === 0 || outcome.kind !== "partial") return;
      items = items.filter((_, index) => retry.has(index));
      if (attempt >= policy.retries) {
        throw new CliError(
          "api",
          `${this.#protocol.name} still refused ${items.length} record(s) as too many requests ` +
            `after ${policy.retries + 1} tries, the first ${describeItem(items[0])}; retry later`,
        );
      }
      const waitMs = outcome.retryAfterMs === undefined
        ? backoffDelay(attempt, policy)
        : Math.min(outcome.retryAfterMs, policy.maxWaitMs);
      attempt++;
      this.#options.onRetry({
        what: `sending ${items.length} records to ${this.#protocol.name} again`,
        attempt: attempt + 1,
        of: policy.retries + 1,
        waitMs,
        reason: `${this.#protocol.name} answered too many requests for them`,
      });
      await sleep(waitMs, signal);
    }
  }

  /** A batch refused as too large: each half is sent on its own; one record alone fails. */
  async #halve(items: TrackedItem[], limit: string | undefined): Promise<void> {
    if (items.length === 1) {
      const [item] = items;
      throw new CliError(
        "api",
        `${describeItem(item)} is ${item.recordBytes} bytes, larger than ${this.#protocol.name} ` +
          `accepts${limit ? ` (${limit})` : ""}; ${this.#protocol.sizeHint}, or skip the file ` +
          `with 'state skip'`,
      );
    }
    const bytes = items.reduce((n, item) => n + item.end - item.start, 0);
    this.#maxBytes = Math.max(1, Math.min(this.#maxBytes, Math.floor(bytes / 2)));
    const half = Math.ceil(items.length / 2);
    await this.#send(items.slice(0, half));
    await this.#send(items.slice(half));
  }
}

// --- What configuring a SIEM destination shares -------------------------------------------------

/** A secret file is read only this far: tokens and passwords are short. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * The secret in `env[name]`, or else the trimmed contents of the file `env[name + "_FILE"]`
 * (registered for redaction: it is not in the environment), or undefined when neither is set.
 *
 * @example
 * ```ts
 * const token = readSecret({ SPLUNK_HEC_TOKEN: "0000-1111" }, "SPLUNK_HEC_TOKEN"); // "0000-1111"
 * ```
 */
export function readSecret(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value) return value;
  const path = env[`${name}_FILE`];
  if (!path) return undefined;
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_SECRET_FILE_BYTES || bytes.includes(0)) {
      throw usage(`${name}_FILE '${path}' is not a secret file: too large or binary`);
    }
    text = new TextDecoder().decode(bytes).trim();
  } catch (error) {
    if (error instanceof CliError) throw error;
    // The error names the path and the reason, never the contents.
    throw usage(`cannot read ${name}_FILE '${path}': ${codeOf(error) ?? reason(error)}`);
  }
  if (!text) throw usage(`${name}_FILE '${path}' is empty`);
  registerSecret(text);
  return text;
}

/**
 * The http(s) URL a destination's `-o` value names (`hec+https://host:8088` ->
 * `https://host:8088/`): `+http` only to a literal loopback address, and never with credentials
 * in it (they would be in the process list); usage errors.
 *
 * @example
 * ```ts
 * collectorUrl("hec+https://splunk.example:8088", "hec").host; // "splunk.example:8088"
 * ```
 */
export function collectorUrl(target: string, prefix: string): URL {
  const inner = target.slice(prefix.length + 1);
  let url: URL;
  try {
    url = new URL(inner);
  } catch {
    throw usage(`-o ${target} is not a valid URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw usage(`-o ${target}: use ${prefix}+https:// (or ${prefix}+http:// to loopback)`);
  }
  if (url.username || url.password) {
    throw usage(
      `-o ${target}: credentials do not belong in the URL (the process list shows it); set them ` +
        `in the environment instead`,
    );
  }
  if (url.search || url.hash) throw usage(`-o ${target}: the URL takes no query or fragment`);
  if (url.protocol === "http:" && !isLiteralLoopback(url)) {
    throw usage(
      `-o ${target}: plain ${prefix}+http:// is only allowed to a loopback address ` +
        `(127.0.0.1, [::1], localhost); use ${prefix}+https://`,
    );
  }
  return url;
}

/**
 * An integer option of at least 1, or `fallback` when it is not given; a usage error otherwise.
 *
 * @example
 * ```ts
 * countOption({ "hec-batch-events": "200" }, "hec-batch-events", 1000); // 200
 * ```
 */
export function countOption(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
): number {
  const text = values[name];
  if (text === undefined) return fallback;
  const n = Number(text);
  if (typeof text !== "string" || !/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw usage(`--${name} must be a whole number of at least 1, got '${text}'`);
  }
  return n;
}
