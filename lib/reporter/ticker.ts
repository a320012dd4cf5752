/**
 * A repeating timer for the progress figures, so that a run waiting out the download limit or a
 * 429 still shows its rate and time left moving: `start` calls `tick` every `ms` until the returned
 * function stops it. The timer never keeps the process alive. Tests pass a manual one.
 *
 * @example
 * ```ts
 * const stop = realTicker(() => console.log("tick"), 1000);
 * stop();
 * ```
 */
import { clearInterval, setInterval } from "node:timers";

/** Starts calling `tick` every `ms`; returns what stops it. */
export type Ticker = (tick: () => void, ms: number) => () => void;

export const realTicker: Ticker = (tick, ms) => {
  const timer = setInterval(tick, ms);
  timer.unref?.();
  return () => clearInterval(timer);
};
