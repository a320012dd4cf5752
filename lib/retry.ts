/**
 * The HTTP retry policy: which failures are worth another try, and how long to wait before it.
 */
import { CliError, type ErrorKind } from "./errors.ts";

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

/** A failure that another attempt may cure; carries the server's `Retry-After` when it sent one. */
export class TransientError extends CliError {
  constructor(
    kind: ErrorKind,
    message: string,
    readonly retryAfterMs?: number,
    options: { cause?: unknown; detail?: string } = {},
  ) {
    super(kind, message, options);
  }
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
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
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
