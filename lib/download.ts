/**
 * One log file from its signed URL into a local spool, surviving what storage does to long
 * downloads: a cut connection resumes with `Range` from the byte reached (skipping bytes itself
 * when the server ignores Range), an expired signed URL is exchanged for a fresh one, and the
 * bytes are checked against the listing's `file_size` and `file_sha256` while they stream.
 *
 * Storage may hold a file gzip-compressed and send it with `Content-Encoding: gzip`. The listing
 * does not say which form its size and hash describe, so both are computed and either may match;
 * what is delivered is always the decoded JSON Lines.
 */
import { createHash, type Hash } from "node:crypto";
import process from "node:process";
import { type ComplianceClient, httpError, type LogFile } from "./api.ts";
import { canDecode, contentCoding, decode, DecodeError } from "./coding.ts";
import { CliError } from "./errors.ts";
import { readBody } from "./http.ts";
import { retryDelay, type RetryNotice, type RetryPolicy, sleep, TransientError } from "./retry.ts";

/** Where a download's bytes go; `restart` throws away what was written so far. */
export interface SpoolWriter {
  write(chunk: Uint8Array): Promise<void>;
  restart(): Promise<void>;
}

export interface DownloadOptions {
  policy: RetryPolicy;
  timeoutMs: number;
  onRetry: (notice: RetryNotice) => void;
  signal?: AbortSignal;
  /** Whole downloads tried before a hash or size mismatch is final. */
  integrityAttempts?: number;
  /** Cap on decoded bytes when the listing does not pin them (default `maxUnlistedBytes()`). */
  maxUnlistedBytes?: number;
  /** A detail for `-v` output, e.g. which form of an encoded file the listing described. */
  onNote?: (text: string) => void;
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
 * maxUnlistedBytes(); // 8589934592 unless OAI_COMPLIANCE_MAX_UNLISTED_BYTES says otherwise
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

/** Signed-URL answers that mean "this URL is no longer good": ask the API for a new one. */
const EXPIRED_URL_STATUSES = new Set([403, 404, 410]);

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

/** Downloads `file` into `spool`; resolves only with complete, verified bytes. */
export async function downloadFile(
  client: ComplianceClient,
  file: LogFile,
  spool: SpoolWriter,
  options: DownloadOptions,
): Promise<Downloaded> {
  const what = `downloading log id=${file.id}`;
  const integrityAttempts = options.integrityAttempts ?? 3;
  const cap = options.maxUnlistedBytes ?? maxUnlistedBytes();
  let url: URL | undefined;
  let written = 0;
  // Hashing is a third of the CPU a large download costs: skipped when there is nothing to check.
  const newHash = () => file.file_sha256 === undefined ? undefined : createHash("sha256");
  let hash: Hash | undefined = newHash();
  let lastByte: number | undefined;
  let failures = 0;
  let mismatches = 0;
  // Whether the last response was Content-Encoded: its next attempt starts over from byte 0.
  let encoded = false;
  // The most bytes ever held: only getting past it counts as progress that earns back retries,
  // so a file that is re-downloaded from scratch again and again cannot loop forever.
  let reached = 0;

  const startOver = async () => {
    await spool.restart();
    written = 0;
    lastByte = undefined;
    hash = newHash();
  };

  while (true) {
    try {
      url ??= await client.resolveDownload(file.id);
      const opened = await client.openFile(url, written, what);
      const { status, headers } = opened.response;
      const stated = statedSize(status, headers);
      let skip = written;
      if (status === 206) {
        const start = Number(/^bytes (\d+)-/.exec(headers.get("content-range") ?? "")?.[1]);
        if (!Number.isSafeInteger(start) || start > written) {
          opened.abort();
          await startOver();
          throw new TransientError("network", `bad Content-Range from storage while ${what}`);
        }
        skip = written - start;
      } else if (
        status === 416 && written > 0 && (written === file.file_size || written === stated)
      ) {
        opened.abort();
        skip = -1; // Everything had arrived before the connection broke.
      } else if (status === 416) {
        opened.abort();
        await startOver();
        throw new TransientError("network", `storage refused the resume range while ${what}`);
      } else if (EXPIRED_URL_STATUSES.has(status) && url.origin !== client.logsUrl().origin) {
        opened.abort();
        url = undefined;
        throw new TransientError(
          "network",
          `signed URL answered HTTP ${status} (expired?); asking the API for a fresh one`,
          0,
        );
      } else if (status < 200 || status > 299) {
        throw await httpError(opened, what, options.timeoutMs);
      }

      const coding = contentCoding(headers);
      if (!canDecode(coding)) {
        opened.abort();
        throw new CliError(
          "api",
          `storage sent log file ${file.id} with Content-Encoding: ${coding}, which this tool ` +
            `cannot decode; nothing was written for it and the checkpoint stays before it`,
        );
      }
      // The stored (still encoded) bytes: always from byte 0, since ranges of an encoded body
      // count encoded bytes, which cannot resume a decoder whose state is gone with the last
      // connection. So an encoded body is fetched whole on every attempt (see the catch below).
      const stored = coding ? new Tally(file.file_sha256 !== undefined) : undefined;
      if (coding && status === 206) {
        opened.abort();
        await startOver();
        throw new TransientError("network", `storage resumed a ${coding} body while ${what}`, 0);
      }
      if (coding && written > 0) await startOver(); // A whole 200: decoded again from byte 0.
      encoded = coding !== undefined;
      // Decoded bytes are pinned by the listing only for a body sent as stored.
      const pinned = file.file_size !== undefined && !coding;
      const limit = pinned ? file.file_size! : cap;

      let decodeFailure: string | undefined;
      if (skip >= 0) {
        const raw = readBody(opened, { idleMs: options.timeoutMs, what, signal: options.signal });
        try {
          for await (let chunk of decode(stored ? tallied(raw, stored) : raw, coding)) {
            if (skip > 0) {
              const dropped = Math.min(skip, chunk.length);
              skip -= dropped;
              chunk = chunk.subarray(dropped);
              if (chunk.length === 0) continue;
            }
            if (written + chunk.length > limit) {
              written += chunk.length;
              if (!pinned) {
                throw new CliError(
                  "integrity",
                  `log file ${file.id} is larger than ${cap} bytes${coding ? " decoded" : ""}, ` +
                    `the most read of a file whose listing does not pin its size; nothing was ` +
                    `written for it and the checkpoint stays before it`,
                );
              }
              break; // Longer than listed: reported as a size mismatch below.
            }
            // Neither form can match any more: stop reading a body that may inflate without end.
            const size = file.file_size;
            if (
              stored && size !== undefined && stored.bytes > size && written + chunk.length > size
            ) {
              written += chunk.length;
              break;
            }
            hash?.update(chunk);
            await spool.write(chunk);
            written += chunk.length;
            lastByte = chunk[chunk.length - 1];
          }
        } catch (error) {
          if (!(error instanceof DecodeError)) throw error;
          decodeFailure = `its ${coding} encoding is broken (${error.message})`;
        } finally {
          opened.abort();
        }
      }
      // Short of the listed size: a connection that ended early, unless the server says this is
      // its whole file (then it is a size mismatch, verified below like a wrong hash). An encoded
      // body proves it is whole by its gzip trailer instead.
      const whole = skip < 0 || (stated !== undefined && written === stated);
      if (!coding && file.file_size !== undefined && written < file.file_size && !whole) {
        throw new TransientError(
          "network",
          `connection ended at byte ${written} of ${file.file_size} while ${what}`,
        );
      }
      const sha256 = hash?.digest("hex");
      let why = decodeFailure ?? mismatch(file, written, sha256);
      if (why === undefined) {
        if (coding) {
          options.onNote?.(
            `log file ${file.id} came ${coding}-encoded; verified its decoded bytes against the listing`,
          );
        }
        return { bytes: written, sha256, lastByte, matched: coding ? "decoded" : undefined };
      }
      if (stored && decodeFailure === undefined) {
        const storedWhy = mismatch(file, stored.bytes, stored.digest());
        if (storedWhy === undefined) {
          options.onNote?.(
            `log file ${file.id} came ${coding}-encoded; verified its stored (compressed) bytes ` +
              `against the listing`,
          );
          return { bytes: written, sha256, lastByte, matched: "stored" };
        }
        why =
          `neither its decoded bytes (${why}) nor its stored ${coding} bytes (${storedWhy}) match`;
      }

      mismatches++;
      if (mismatches >= integrityAttempts) {
        throw new CliError(
          "integrity",
          `log file ${file.id} failed verification ${mismatches} times: ${why}; nothing was ` +
            `written for it and the checkpoint stays before it`,
        );
      }
      options.onRetry({
        what,
        attempt: mismatches + 1,
        of: integrityAttempts,
        waitMs: 0,
        reason: `verification failed (${why}), downloading it again`,
      });
      await startOver();
    } catch (error) {
      if (!(error instanceof TransientError) || options.signal?.aborted) throw error;
      // A connection that keeps breaking but keeps making progress is not out of retries.
      if (written > reached) {
        reached = written;
        failures = 0;
      }
      if (failures >= options.policy.retries) throw error;
      if (encoded) await startOver();
      const waitMs = retryDelay(failures, error, options.policy);
      failures++;
      options.onRetry({
        what,
        attempt: failures + 1,
        of: options.policy.retries + 1,
        waitMs,
        reason: error.message,
      });
      await sleep(waitMs, options.signal);
    }
  }
}
