/**
 * One log file from its signed URL into a local spool, surviving what storage does to long
 * downloads: a cut connection resumes with `Range` from the byte reached (skipping bytes itself
 * when the server ignores Range), an expired signed URL is exchanged for a fresh one, and the
 * bytes are checked against the listing's `file_size` and `file_sha256` while they stream.
 *
 * Storage may hold a file gzip-compressed and send it with `Content-Encoding: gzip`. The listing
 * does not say which form its size and hash describe, so both are computed and either may match;
 * what is delivered is always the decoded JSON Lines.
 *
 * Each attempt has three steps: `classify` the response (what to read, or why to try again),
 * `copyBody` into the spool, and `verify` what arrived against the listing. The API client calls
 * this (`client.download(file, spool, hooks)`); it owns the requests, the retry policy and the
 * abort signal, and hands them in through `FileSource` and `DownloadSettings`.
 *
 * This loop is the one retry loop of a download: a request is tried at most `policy.retries` + 1
 * times in all, whether the API's download endpoint or storage failed. A 404 from the API's
 * download endpoint is tried `GONE_TRIES` times, spaced out, and then the file is gone
 * (`GoneFileError`, with why).
 */
import { createHash, type Hash } from "node:crypto";
import process from "node:process";
import { canDecode, contentCoding, decode } from "./coding.ts";
import { CliError, DecodeError, GoneFileError, type GoneReason, TransientError } from "./errors.ts";
import { type Opened, readBody } from "./http.ts";
import type { LogFile } from "./log_file.ts";
import { retryDelay, type RetryNotice, type RetryPolicy, sleep } from "./retry.ts";

/** Where a download's bytes go; `restart` throws away what was written so far. */
export interface SpoolWriter {
  write(chunk: Uint8Array): Promise<void>;
  restart(): Promise<void>;
}

/** What a download needs of the API client: where a file is, and its bytes from an offset. */
export interface FileSource {
  /**
   * Where `file`'s bytes are now (a fresh signed URL each call): one request, never retried
   * inside (the download's loop retries it). A 404 rejects with `FileNotFoundError`.
   */
  resolveDownload(file: LogFile): Promise<URL>;
  /** GETs `url` from byte `offset` on, following redirects by the client's policy. */
  openFile(url: URL, offset: number, what: string): Promise<Opened>;
  /** Whether HTTP `status` from `url` says a signed storage URL expired (never the API's own). */
  isExpiredUrl(url: URL, status: number): boolean;
  /** The error an unexpected HTTP answer becomes (transient for 429/5xx). */
  httpError(opened: Opened, what: string): Promise<CliError>;
}

/** The few settings a download uses. */
export interface DownloadSettings {
  policy: RetryPolicy;
  /** Idle timeout of the body (`--timeout`). */
  timeoutMs: number;
  onRetry: (notice: RetryNotice) => void;
  /** A detail for `-v` output, e.g. which form of an encoded file the listing described. */
  onNote?: (text: string) => void;
  signal?: AbortSignal;
  /** Whole downloads tried before a hash or size mismatch is final. */
  integrityAttempts?: number;
  /** Cap on decoded bytes when the listing does not pin them (default `maxUnlistedBytes()`). */
  maxUnlistedBytes?: number;
  /** Wait between the tries of a 404 from the API (default `goneRetryMs()`). */
  goneRetryMs?: number;
  /** Epoch milliseconds now, to tell an expired file (default `Date.now`). */
  now?: () => number;
}

/**
 * The API's download endpoint answered 404 for a listed file: maybe transient, maybe gone. The
 * download tries again, then decides (`goneReason`).
 */
export class FileNotFoundError extends CliError {
  constructor(message: string, options: { detail?: string } = {}) {
    super("api", message, options);
    this.name = "FileNotFoundError";
  }
}

/** Tries of a download answered 404 by the API before the file counts as gone. */
export const GONE_TRIES = 3;
/** Wait between those tries: the three are spread over 30 s (a 404 may be transient). */
export const DEFAULT_GONE_RETRY_MS = 15_000;
/** For tests only: overrides `DEFAULT_GONE_RETRY_MS` (milliseconds). */
export const GONE_RETRY_ENV = "OAI_COMPLIANCE_GONE_RETRY_MS";
/** The API keeps files 30 days; one older than this may have expired before its download. */
export const NEAR_RETENTION_MS = 29 * 24 * 3_600_000;

/**
 * The wait between tries of a 404: `OAI_COMPLIANCE_GONE_RETRY_MS`, else 15 s.
 *
 * @example
 * ```ts
 * goneRetryMs(); // 15000 unless the test-only variable says otherwise
 * ```
 */
export function goneRetryMs(): number {
  let text: string | undefined;
  try {
    text = process.env[GONE_RETRY_ENV];
  } catch {
    // Not granted (deno compile's narrow --allow-env): the default.
  }
  return text && /^\d+$/.test(text) ? Number(text) : DEFAULT_GONE_RETRY_MS;
}

/**
 * Why a listed file the API answers 404 for is gone: `expired` when its `end_time` is older than
 * the retention less a margin, `unavailable` when the answer says "no longer available",
 * `unexplained` otherwise.
 *
 * @example
 * ```ts
 * const file = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-01T00:00:00Z" };
 * goneReason(file, '{"error":"not found"}', Date.parse("2026-08-15T00:00:00Z")); // "expired"
 * ```
 */
export function goneReason(file: LogFile, answer: string, nowMs: number): GoneReason {
  const end = Date.parse(file.end_time);
  if (Number.isFinite(end) && nowMs - end > NEAR_RETENTION_MS) return "expired";
  if (/no longer available/i.test(answer)) return "unavailable";
  return "unexplained";
}

/** The `GoneFileError` for `file` after its last 404 (`last`). */
function goneError(file: LogFile, last: FileNotFoundError, nowMs: number, spanMs: number) {
  const reason = goneReason(file, last.detail ?? "", nowMs);
  const age = Math.floor((nowMs - Date.parse(file.end_time)) / (24 * 3_600_000));
  const days = age === 1 ? "1 day" : `${age} days`;
  const tries = `the API answered 404 on ${GONE_TRIES} tries over ${Math.round(spanMs / 1000)}s`;
  const named = `log file ${file.id} (${file.event_type}, end_time ${file.end_time})`;
  const message = reason === "expired"
    ? `${named} has expired: ${tries}, and the file is ${days} old (the API keeps files 30 days)`
    : reason === "unavailable"
    ? `${named} is no longer available: ${tries} saying so, though the file is only ${days} ` +
      `old (the API keeps files 30 days)`
    : `${named} was listed but cannot be downloaded: ${tries}, and the file is only ${days} ` +
      `old (the API keeps files 30 days); check --api-base and any proxy, retry later, and ` +
      `report it with --verbose output if it persists`;
  return new GoneFileError(file, reason, message, { detail: last.detail, cause: last });
}

export interface Downloaded {
  bytes: number;
  /** Hex SHA-256, computed only when the listing gave one to check against. */
  sha256?: string;
  /** The last byte of the file, or undefined for an empty file (decides the newline on stdout). */
  lastByte?: number;
  /** For a Content-Encoded body: which form the listing's size and hash matched. */
  matched?: "decoded" | "stored";
}

/** Default cap on a file whose decoded size the listing does not give: 8 GiB. */
export const DEFAULT_MAX_UNLISTED_BYTES = 8 * 1024 ** 3;
/** For tests only: overrides `DEFAULT_MAX_UNLISTED_BYTES` (a byte count). */
export const MAX_UNLISTED_ENV = "OAI_COMPLIANCE_MAX_UNLISTED_BYTES";

/**
 * The cap on decoded bytes of a file whose listing gives no size, or whose body is compressed
 * (its listed size may be the compressed one): a server cannot fill the disk through it.
 *
 * @example
 * ```ts
 * maxUnlistedBytes(); // 8589934592 unless OAI_COMPLIANCE_MAX_UNLISTED_BYTES says otherwise
 * ```
 */
export function maxUnlistedBytes(): number {
  let text: string | undefined;
  try {
    text = process.env[MAX_UNLISTED_ENV];
  } catch {
    // Not granted (deno compile's narrow --allow-env): the default.
  }
  return text && /^\d+$/.test(text) ? Number(text) : DEFAULT_MAX_UNLISTED_BYTES;
}

/** One form of a body (as stored, or decoded): its length, and its hash when one is listed. */
class Tally {
  bytes = 0;
  private readonly hash?: Hash;
  constructor(hashing: boolean) {
    this.hash = hashing ? createHash("sha256") : undefined;
  }
  update(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
  }
  /** Hex SHA-256 (once), or undefined when not hashing. */
  digest(): string | undefined {
    return this.hash?.digest("hex");
  }
}

/** The chunks of `raw`, each counted into `tally` on the way through. */
async function* tallied(raw: AsyncIterable<Uint8Array>, tally: Tally): AsyncGenerator<Uint8Array> {
  for await (const chunk of raw) {
    tally.update(chunk);
    yield chunk;
  }
}

/** How `bytes`/`sha256` differ from what `file` lists, or undefined when they match. */
function mismatch(file: LogFile, bytes: number, sha256: string | undefined): string | undefined {
  if (file.file_size !== undefined && bytes !== file.file_size) {
    return bytes < file.file_size
      ? `${bytes} bytes instead of the listed ${file.file_size}`
      : `more than the listed ${file.file_size} bytes`;
  }
  if (file.file_sha256 !== undefined && sha256 !== file.file_sha256) {
    return `sha256 ${sha256} instead of ${file.file_sha256}`;
  }
  return undefined;
}

/** The file's whole length as the server states it: Content-Range's total, or a 200's length. */
function statedSize(status: number, headers: Headers): number | undefined {
  const total = /\/(\d+)\s*$/.exec(headers.get("content-range") ?? "")?.[1];
  if (total !== undefined) return Number(total);
  const length = headers.get("content-length");
  if (
    status === 200 && length !== null && /^\d+$/.test(length) && !headers.has("content-encoding")
  ) {
    return Number(length);
  }
  return undefined;
}

/** What a storage response means for the download (the result of `classify`). */
export type Answer =
  /** Read the body, dropping its first `skip` bytes (already written). */
  | { kind: "body"; skip: number; coding?: string; stated?: number }
  /** 416 to a resume at the end: every byte had arrived before the connection broke. */
  | { kind: "whole"; stated?: number }
  /** What was written is useless (a bad range, an encoded body resumed): start over, then retry. */
  | { kind: "startOver"; why: string; waitMs?: number }
  /** The signed URL expired: ask the API for a fresh one, at once. */
  | { kind: "expired"; status: number }
  /** An answer no retry here can use (the client makes it an error). */
  | { kind: "refused" };

/**
 * What the response to a request from byte `written` on means. Pure: reads only the status and
 * headers.
 *
 * @example
 * ```ts
 * import type { LogFile } from "./log_file.ts";
 * const file: LogFile = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-01T00:00:00Z" };
 * classify(206, new Headers({ "content-range": "bytes 100-199/200" }), 100, file, false);
 * // { kind: "body", skip: 0, coding: undefined, stated: 200 }
 * ```
 */
export function classify(
  status: number,
  headers: Headers,
  written: number,
  file: LogFile,
  expired: boolean,
): Answer {
  const stated = statedSize(status, headers);
  const coding = contentCoding(headers);
  if (status === 206) {
    const start = Number(/^bytes (\d+)-/.exec(headers.get("content-range") ?? "")?.[1]);
    if (!Number.isSafeInteger(start) || start > written) {
      return { kind: "startOver", why: "bad Content-Range from storage" };
    }
    // Ranges of an encoded body count encoded bytes, which cannot resume a decoder whose state
    // is gone with the last connection.
    if (coding && canDecode(coding)) {
      return { kind: "startOver", why: `storage resumed a ${coding} body`, waitMs: 0 };
    }
    return { kind: "body", skip: written - start, coding, stated };
  }
  if (status === 416 && written > 0 && (written === file.file_size || written === stated)) {
    return { kind: "whole", stated };
  }
  if (status === 416) return { kind: "startOver", why: "storage refused the resume range" };
  if (expired) return { kind: "expired", status };
  if (status < 200 || status > 299) return { kind: "refused" };
  return { kind: "body", skip: written, coding, stated };
}

/** How an attempt ended: verified bytes, or a body that did not match the listing. */
export type Verdict =
  | { kind: "verified"; downloaded: Downloaded; note?: string }
  | { kind: "mismatch"; why: string };

/** One download: the bytes held so far and their hash, kept across attempts to resume. */
class FileDownload {
  readonly what: string;
  written = 0;
  lastByte: number | undefined;
  // Hashing is a third of the CPU a large download costs: skipped when there is nothing to check.
  hash: Hash | undefined;
  /** Whether the last response was Content-Encoded: its next attempt starts over from byte 0. */
  encoded = false;

  constructor(
    readonly file: LogFile,
    private readonly spool: SpoolWriter,
    private readonly settings: DownloadSettings,
    private readonly cap: number,
  ) {
    this.what = `downloading log id=${file.id}`;
    this.hash = this.newHash();
  }

  private newHash(): Hash | undefined {
    return this.file.file_sha256 === undefined ? undefined : createHash("sha256");
  }

  async startOver(): Promise<void> {
    await this.spool.restart();
    this.written = 0;
    this.lastByte = undefined;
    this.hash = this.newHash();
  }

  /**
   * Copies the body into the spool from `skip` bytes in, decoding `coding`, under the size caps.
   * Resolves with why the encoding is broken, if it is.
   */
  async copyBody(
    opened: Opened,
    skip: number,
    coding: string | undefined,
    stored: Tally | undefined,
  ): Promise<string | undefined> {
    const { file, settings, cap } = this;
    // Decoded bytes are pinned by the listing only for a body sent as stored.
    const pinned = file.file_size !== undefined && !coding;
    const limit = pinned ? file.file_size! : cap;
    const raw = readBody(opened, {
      idleMs: settings.timeoutMs,
      what: this.what,
      signal: settings.signal,
    });
    try {
      for await (let chunk of decode(stored ? tallied(raw, stored) : raw, coding)) {
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.length);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.length === 0) continue;
        }
        if (this.written + chunk.length > limit) {
          this.written += chunk.length;
          if (!pinned) {
            throw new CliError(
              "integrity",
              `log file ${file.id} is larger than ${cap} bytes${coding ? " decoded" : ""}, ` +
                `the most read of a file whose listing does not pin its size; nothing was ` +
                `written for it and the checkpoint stays before it`,
            );
          }
          return undefined; // Longer than listed: reported as a size mismatch by `verify`.
        }
        // Neither form can match any more: stop reading a body that may inflate without end.
        const size = file.file_size;
        if (
          stored && size !== undefined && stored.bytes > size && this.written + chunk.length > size
        ) {
          this.written += chunk.length;
          return undefined;
        }
        this.hash?.update(chunk);
        await this.spool.write(chunk);
        this.written += chunk.length;
        this.lastByte = chunk[chunk.length - 1];
      }
      return undefined;
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      return `its ${coding} encoding is broken (${error.message})`;
    } finally {
      opened.abort();
    }
  }

  /**
   * Checks what arrived against the listing: the decoded bytes, else (for an encoded body) the
   * stored ones. A plain body short of its listed size is a connection that ended early (a
   * `TransientError`), unless the server says this is its whole file (`whole`).
   */
  verify(
    coding: string | undefined,
    stored: Tally | undefined,
    decodeFailure: string | undefined,
    whole: boolean,
  ): Verdict {
    const { file, written, lastByte } = this;
    if (!coding && file.file_size !== undefined && written < file.file_size && !whole) {
      throw new TransientError(
        "network",
        `connection ended at byte ${written} of ${file.file_size} while ${this.what}`,
      );
    }
    const sha256 = this.hash?.digest("hex");
    const why = decodeFailure ?? mismatch(file, written, sha256);
    if (why === undefined) {
      return {
        kind: "verified",
        downloaded: { bytes: written, sha256, lastByte, matched: coding ? "decoded" : undefined },
        note: coding &&
          `log file ${file.id} came ${coding}-encoded; verified its decoded bytes against the listing`,
      };
    }
    if (!stored || decodeFailure !== undefined) return { kind: "mismatch", why };
    const storedWhy = mismatch(file, stored.bytes, stored.digest());
    if (storedWhy === undefined) {
      return {
        kind: "verified",
        downloaded: { bytes: written, sha256, lastByte, matched: "stored" },
        note: `log file ${file.id} came ${coding}-encoded; verified its stored (compressed) ` +
          `bytes against the listing`,
      };
    }
    return {
      kind: "mismatch",
      why: `neither its decoded bytes (${why}) nor its stored ${coding} bytes (${storedWhy}) match`,
    };
  }
}

/**
 * Downloads `file` into `spool` from `source`; resolves only with complete, verified bytes.
 * Transient failures are retried by `settings.policy` (a connection that keeps breaking but keeps
 * making progress is not out of retries); a mismatch downloads the file again, up to
 * `integrityAttempts` times.
 *
 * @example
 * ```ts
 * import type { LogFile } from "./log_file.ts";
 * declare const client: FileSource; // the API client
 * declare const file: LogFile;
 * declare const spool: SpoolWriter;
 * declare const settings: DownloadSettings; // policy, timeoutMs, onRetry...
 * const downloaded = await downloadFile(client, file, spool, settings);
 * ```
 */
export async function downloadFile(
  source: FileSource,
  file: LogFile,
  spool: SpoolWriter,
  settings: DownloadSettings,
): Promise<Downloaded> {
  const integrityAttempts = settings.integrityAttempts ?? 3;
  const download = new FileDownload(
    file,
    spool,
    settings,
    settings.maxUnlistedBytes ?? maxUnlistedBytes(),
  );
  const { what } = download;
  let url: URL | undefined;
  let failures = 0;
  let notFound = 0;
  let firstNotFoundAt = 0;
  let mismatches = 0;
  // The most bytes ever held: only getting past it counts as progress that earns back retries,
  // so a file that is re-downloaded from scratch again and again cannot loop forever.
  let reached = 0;

  while (true) {
    try {
      url ??= await source.resolveDownload(file);
      const opened = await source.openFile(url, download.written, what);
      const { status, headers } = opened.response;
      const answer = classify(
        status,
        headers,
        download.written,
        file,
        source.isExpiredUrl(url, status),
      );
      if (answer.kind === "refused") throw await source.httpError(opened, what);
      if (answer.kind !== "body") opened.abort();
      if (answer.kind === "startOver") {
        await download.startOver();
        throw new TransientError("network", `${answer.why} while ${what}`, answer.waitMs);
      }
      if (answer.kind === "expired") {
        url = undefined;
        throw new TransientError(
          "network",
          `signed URL answered HTTP ${answer.status} (expired?); asking the API for a fresh one`,
          0,
        );
      }
      const coding = answer.kind === "body" ? answer.coding : undefined;
      if (!canDecode(coding)) {
        opened.abort();
        throw new CliError(
          "api",
          `storage sent log file ${file.id} with Content-Encoding: ${coding}, which this tool ` +
            `cannot decode; nothing was written for it and the checkpoint stays before it`,
        );
      }
      // An encoded body is fetched whole on every attempt, decoded again from byte 0.
      if (coding && download.written > 0) await download.startOver();
      download.encoded = coding !== undefined;
      // The stored (still encoded) bytes, counted as they arrive.
      const stored = coding ? new Tally(file.file_sha256 !== undefined) : undefined;
      let decodeFailure: string | undefined;
      if (answer.kind === "body") {
        const skip = coding ? 0 : answer.skip;
        decodeFailure = await download.copyBody(opened, skip, coding, stored);
      }
      const whole = answer.kind === "whole" ||
        (answer.stated !== undefined && download.written === answer.stated);
      const verdict = download.verify(coding, stored, decodeFailure, whole);
      if (verdict.kind === "verified") {
        if (verdict.note) settings.onNote?.(verdict.note);
        return verdict.downloaded;
      }
      mismatches++;
      if (mismatches >= integrityAttempts) {
        throw new CliError(
          "integrity",
          `log file ${file.id} failed verification ${mismatches} times: ${verdict.why}; nothing ` +
            `was written for it and the checkpoint stays before it`,
        );
      }
      settings.onRetry({
        what,
        attempt: mismatches + 1,
        of: integrityAttempts,
        waitMs: 0,
        reason: `verification failed (${verdict.why}), downloading it again`,
      });
      await download.startOver();
    } catch (error) {
      if (error instanceof FileNotFoundError && !settings.signal?.aborted) {
        const now = settings.now ?? Date.now;
        if (notFound === 0) firstNotFoundAt = now();
        notFound++;
        if (notFound >= GONE_TRIES) {
          throw goneError(file, error, now(), now() - firstNotFoundAt);
        }
        const waitMs = settings.goneRetryMs ?? goneRetryMs();
        settings.onRetry({
          what,
          attempt: notFound + 1,
          of: GONE_TRIES,
          waitMs,
          reason: `${error.message} the file may be gone, asking again`,
        });
        await sleep(waitMs, settings.signal);
        continue;
      }
      if (!(error instanceof TransientError) || settings.signal?.aborted) throw error;
      if (download.written > reached) {
        reached = download.written;
        failures = 0;
      }
      if (failures >= settings.policy.retries) throw error;
      if (download.encoded) await download.startOver();
      const waitMs = retryDelay(failures, error, settings.policy);
      failures++;
      settings.onRetry({
        what,
        attempt: failures + 1,
        of: settings.policy.retries + 1,
        waitMs,
        reason: error.message,
      });
      await sleep(waitMs, settings.signal);
    }
  }
}
