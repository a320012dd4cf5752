/**
 * One log file from its signed URL into a local spool, surviving what storage does to long
 * downloads: a cut connection resumes with `Range` from the byte reached (skipping bytes itself
 * when the server ignores Range), an expired signed URL is exchanged for a fresh one, and the
 * bytes are checked against the listing's `file_size` and `file_sha256` while they stream.
 */
import { createHash, type Hash } from "node:crypto";
import { type ComplianceClient, httpError, type LogFile } from "./api.ts";
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
}

export interface Downloaded {
  bytes: number;
  /** Hex SHA-256, computed only when the listing gave one to check against. */
  sha256?: string;
  /** The last byte of the file, or undefined for an empty file (decides the newline on stdout). */
  lastByte?: number;
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
  let url: URL | undefined;
  let written = 0;
  // Hashing is a third of the CPU a large download costs: skipped when there is nothing to check.
  const newHash = () => file.file_sha256 === undefined ? undefined : createHash("sha256");
  let hash: Hash | undefined = newHash();
  let lastByte: number | undefined;
  let failures = 0;
  let mismatches = 0;
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

      if (skip >= 0) {
        for await (
          let chunk of readBody(opened, { idleMs: options.timeoutMs, what, signal: options.signal })
        ) {
          if (skip > 0) {
            const dropped = Math.min(skip, chunk.length);
            skip -= dropped;
            chunk = chunk.subarray(dropped);
            if (chunk.length === 0) continue;
          }
          if (file.file_size !== undefined && written + chunk.length > file.file_size) {
            written += chunk.length;
            break; // Longer than listed: reported as a size mismatch below.
          }
          hash?.update(chunk);
          await spool.write(chunk);
          written += chunk.length;
          lastByte = chunk[chunk.length - 1];
        }
      }
      // Short of the listed size: a connection that ended early, unless the server says this is
      // its whole file (then it is a size mismatch, verified below like a wrong hash).
      const whole = skip < 0 || (stated !== undefined && written === stated);
      if (file.file_size !== undefined && written < file.file_size && !whole) {
        throw new TransientError(
          "network",
          `connection ended at byte ${written} of ${file.file_size} while ${what}`,
        );
      }
      const sha256 = hash?.digest("hex");
      const sizeOk = file.file_size === undefined || written === file.file_size;
      const hashOk = file.file_sha256 === undefined || sha256 === file.file_sha256;
      if (sizeOk && hashOk) return { bytes: written, sha256, lastByte };

      mismatches++;
      const why = sizeOk
        ? `sha256 ${sha256} instead of ${file.file_sha256}`
        : written < file.file_size!
        ? `${written} bytes instead of the listed ${file.file_size}`
        : `more than the listed ${file.file_size} bytes`;
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
