/**
 * The HTTP retry policy: which failures are worth another try, and how long to wait before it.
 */
import { TransientError } from "./errors.ts";

/** Statuses that mean "try again later": timeouts, rate limits and server trouble. */
export const RETRYABLE_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff delay; doubled on each retry, then fully jittered. */
  backoffMs: number;
  /** Cap on any single wait, `Retry-After` included. */
  maxWaitMs: number;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const TIME = String.raw`(?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2})`;
const HTTP_DATES = [
  // `Sun, 06 Nov 1994 08:49:37 GMT`: what servers send.
  new RegExp(
    String.raw`^[A-Za-z]{3}, (?<day>\d{2}) (?<month>[A-Za-z]{3}) (?<year>\d{4}) ${TIME} GMT$`,
  ),
  // `Sunday, 06-Nov-94 08:49:37 GMT` and `Sun Nov  6 08:49:37 1994` (asctime): obsolete, but
  // RFC 9110 section 5.6.7 says recipients must accept them too.
  new RegExp(
    String.raw`^[A-Za-z]+, (?<day>\d{2})-(?<month>[A-Za-z]{3})-(?<year>\d{2}) ${TIME} GMT$`,
  ),
  new RegExp(
    String.raw`^[A-Za-z]{3} (?<month>[A-Za-z]{3}) {1,2}(?<day>\d{1,2}) ${TIME} (?<year>\d{4})$`,
  ),
];

/**
 * An HTTP date in any of its three forms as epoch milliseconds, or undefined. Parsed by hand:
 * `Date.parse` reads asctime as local time and differs between runtimes on the others.
 */
function parseHttpDate(text: string, nowMs: number): number | undefined {
  const fields = HTTP_DATES.map((form) => form.exec(text)?.groups).find(Boolean);
  if (!fields) return undefined;
  const [day, hour, minute, second] = [fields.day, fields.hour, fields.minute, fields.second]
    .map(Number);
  const month = MONTHS.indexOf(fields.month.toLowerCase());
  let year = Number(fields.year);
  if (fields.year.length === 2) {
    // A two-digit year more than 50 years ahead is the most recent such year in the past.
    year += 2000;
    if (year > new Date(nowMs).getUTCFullYear() + 50) year -= 100;
  }
  if (month < 0 || hour > 23 || minute > 59 || second > 60) return undefined;
  const at = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  // Reject days a month does not have (Date.UTC would roll 31 Apr over to 1 May).
  return new Date(at).getUTCDate() === day ? at : undefined;
}

/**
 * Milliseconds to wait from a `Retry-After` header (delta seconds or an HTTP date), or undefined
 * for an absent, negative or unparsable value, which falls back to backoff.
 */
export function parseRetryAfter(
  value: string | null,
  nowMs: number = Date.now(),
): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = parseHttpDate(text, nowMs);
  if (at === undefined) return undefined;
  return Math.max(0, at - nowMs);
}

/** Exponential backoff with full jitter: uniform in [0, base * 2^attempt], capped. */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxWaitMs, policy.backoffMs * 2 ** attempt);
  return Math.round(random() * ceiling);
}

/** How long to wait before retry number `attempt` (0-based) after `error`. */
export function retryDelay(attempt: number, error: TransientError, policy: RetryPolicy): number {
  if (error.retryAfterMs !== undefined) return Math.min(error.retryAfterMs, policy.maxWaitMs);
  return backoffDelay(attempt, policy);
}

export interface RetryNotice {
  what: string;
  attempt: number;
  of: number;
  waitMs: number;
  reason: string;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `attempt` until it succeeds, throws a non-transient error, or the retries run out (then
 * the last transient error is thrown).
 */
export async function withRetries<T>(
  what: string,
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  onRetry: (notice: RetryNotice) => void,
  signal?: AbortSignal,
): Promise<T> {
  for (let n = 0;; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (!(error instanceof TransientError) || n >= policy.retries || signal?.aborted) throw error;
      const waitMs = retryDelay(n, error, policy);
      onRetry({ what, attempt: n + 2, of: policy.retries + 1, waitMs, reason: error.message });
      await sleep(waitMs, signal);
    }
  }
}
