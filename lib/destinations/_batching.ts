/**
 * What the record-sending SIEM destinations (Splunk HEC in `splunk_hec.ts`, Elasticsearch and
 * OpenSearch `_bulk` in `elasticsearch.ts`) share: one `Destination` over a small
 * `BatchProtocol`, which only encodes a record and makes one attempt at sending a batch.
 *
 * - Records are read line by line from the verified spool (`FileSpool.stream()`, split here
 *   without a copy per line), so memory is bounded by the batches in flight, whatever the file's
 *   size. A record is a line without its LF or CRLF; blank lines are not records. Each batch is
 *   one buffer its records are encoded into (one small typed array per record would cost the
 *   runtimes' allocators far more memory than the records themselves).
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
import { CliError, codeOf, reason, registerSecret, TransientError, usage } from "../errors.ts";
import { backoffDelay, retryDelay, type RetryNotice, type RetryPolicy, sleep } from "../retry.ts";
import { isLiteralLoopback } from "../urls.ts";
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

/** What a protocol makes of one record. */
export interface EncodedRecord {
  /** What the record adds to a batch's body. */
  text: string;
  /** The record's `event_id`, when it has one (for messages). */
  eventId?: string;
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
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const room = text.length * 3;
    if (this.length + room > this.#bytes.length) {
      const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.length + room));
      grown.set(this.#bytes.subarray(0, this.length));
      this.#bytes = grown;
      // Views handed out earlier point into the old buffer: still valid, just not contiguous.
    }
    const start = this.length;
    const { written } = encoder.encodeInto(text, this.#bytes.subarray(start));
    this.length += written;
    return { source: this.#bytes, start, end: this.length };
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
  /** Buffers of settled batches, for the next ones (nothing reads a settled batch's bytes). */
  #pool: Uint8Array[] = [];
  /** Lowered when the collector refused a batch as too large. */
  #maxBytes: number;
  #inFlight = new Set<Promise<void>>();
  #linger: ReturnType<typeof setTimeout> | undefined;
  #failure: { error: unknown } | undefined;
  readonly #controller = new AbortController();

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
    const free = this.#pool.pop();
    return new BatchBuffer(free ?? new Uint8Array(Math.min(this.#maxBytes + 64 * 1024, 1 << 20)));
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
      const record = withoutCarriageReturn(piece);
      if (isBlank(record)) return undefined;
      const origin = { eventType, fileId: file.id, line };
      const encoded = this.#protocol.encode(decoder.decode(record), origin);
      tracker.add();
      return this.#add(encoded, origin, record.length, tracker);
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
    origin: RecordOrigin,
    recordBytes: number,
    tracker: FileTracker,
  ): Promise<void> | undefined {
    let at = this.#buffer.append(encoded.text);
    let waiting: Promise<void> | undefined;
    if (this.#open.length > 0 && this.#buffer.length > this.#maxBytes) {
      // Over the limit with it: the batch goes without it, and it starts the next one.
      this.#buffer.length = at.start;
      waiting = this.#dispatch();
      at = this.#buffer.append(encoded.text);
    }
    this.#open.push({
      eventType: origin.eventType,
      fileId: origin.fileId,
      line: origin.line,
      eventId: encoded.eventId,
      recordBytes,
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
        // One spare is enough: a batch settles for each one that starts.
        if (this.#pool.length < 1) this.#pool.push(buffer.bytes);
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
