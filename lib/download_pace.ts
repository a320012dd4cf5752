/**
 * The run's budget of requests to the API's download endpoint (`.../logs/{id}`): the API allows
 * 50 a minute per endpoint per key, so one `DownloadPace` per run, shared by every concurrent
 * download and every event type, lets at most N requests start in any rolling window. A 429
 * pauses the whole budget until its `Retry-After` has passed. The GETs of signed storage URLs do
 * not count: they go to another host, under no such limit.
 *
 * @example
 * ```ts
 * declare const signal: AbortSignal;
 * const pace = new DownloadPace(50);
 * await pace.take(signal); // resolves at once for the first 50 requests of any minute
 * pace.pauseFor(30_000); // after a 429 with Retry-After: 30
 * ```
 */
import process from "node:process";
import { sleep } from "./retry.ts";

/** What the API documents: 50 download requests a minute per endpoint per key. */
export const DEFAULT_DOWNLOADS_PER_MINUTE = 50;
/** The rolling window the budget counts in. */
export const DEFAULT_PACE_WINDOW_MS = 60_000;
/** For tests only: overrides `DEFAULT_PACE_WINDOW_MS` (milliseconds), so a test stays fast. */
export const PACE_WINDOW_ENV = "OAI_COMPLIANCE_PACE_WINDOW_MS";

/**
 * Slack added to the window: a request counts from when it starts here, but the API counts it when
 * it arrives, and a busy machine or network can bring two requests a window apart closer together.
 */
export function paceMarginMs(windowMs: number): number {
  return Math.min(2_000, Math.round(windowMs * 0.05));
}

/** Time as the pace sees it; tests pass a fake one. */
export interface PaceClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const realClock: PaceClock = { now: () => performance.now(), sleep };

/**
 * The window from `OAI_COMPLIANCE_PACE_WINDOW_MS`, else 60 s.
 *
 * @example
 * ```ts
 * paceWindowMs(); // 60000 unless the test-only variable says otherwise
 * ```
 */
export function paceWindowMs(): number {
  let text: string | undefined;
  try {
    text = process.env[PACE_WINDOW_ENV];
  } catch {
    // Not granted (deno compile's narrow --allow-env): the default.
  }
  return text && /^\d+$/.test(text) && Number(text) > 0 ? Number(text) : DEFAULT_PACE_WINDOW_MS;
}

export class DownloadPace {
  readonly windowMs: number;
  readonly #marginMs: number;
  readonly #clock: PaceClock;
  /** When each of the last (at most `perWindow`) requests started, oldest first. */
  readonly #starts: number[] = [];
  /** Nobody starts before this (a 429's `Retry-After`). */
  #pausedUntil = 0;
  /** Waiters take their turns in order, so that none starves. */
  #queue: Promise<void> = Promise.resolve();

  /**
   * @param perWindow the most requests started in any window (`--max-downloads-per-minute`).
   */
  constructor(
    readonly perWindow: number = DEFAULT_DOWNLOADS_PER_MINUTE,
    options: { windowMs?: number; clock?: PaceClock } = {},
  ) {
    if (!Number.isSafeInteger(perWindow) || perWindow < 1) {
      throw new RangeError(`downloads per minute must be a positive integer, got ${perWindow}`);
    }
    this.windowMs = options.windowMs ?? paceWindowMs();
    this.#marginMs = paceMarginMs(this.windowMs);
    this.#clock = options.clock ?? realClock;
  }

  /**
   * Resolves when one more request may start, and counts it; rejects with `signal`'s reason
   * when it aborts first (the request then does not count).
   */
  take(signal?: AbortSignal): Promise<void> {
    const turn = this.#queue.then(() => this.#wait(signal));
    this.#queue = turn.catch(() => {});
    return turn;
  }

  /** Holds every request back for `ms` from now (a 429's `Retry-After`, or a backoff). */
  pauseFor(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + ms);
  }

  /** How long a request asked for now would wait (0: it may start at once). */
  delayMs(): number {
    const now = this.#clock.now();
    const full = this.#starts.length >= this.perWindow
      ? this.#starts[this.#starts.length - this.perWindow] + this.windowMs + this.#marginMs - now
      : 0;
    return Math.max(0, full, this.#pausedUntil - now);
  }

  async #wait(signal?: AbortSignal): Promise<void> {
    while (true) {
      if (signal?.aborted) throw signal.reason;
      const delay = this.delayMs();
      if (delay <= 0) break;
      await this.#clock.sleep(delay, signal);
    }
    this.#starts.push(this.#clock.now());
    if (this.#starts.length > this.perWindow) this.#starts.shift();
  }
}
