/**
 * The run's budget of download requests on a fake clock: at most N starts in any rolling window,
 * shared by concurrent takers in order, held back by a 429's pause, and never counting a taker
 * that gave up.
 */
import { test } from "node:test";
import process from "node:process";
import assert from "node:assert/strict";
import {
  DEFAULT_PACE_WINDOW_MS,
  DownloadPace,
  PACE_WINDOW_ENV,
  paceMarginMs,
  paceWindowMs,
} from "../../lib/download_pace.ts";

/** A clock whose sleeps pass at once in virtual time. */
function fakeClock(start = 1_000) {
  const clock = {
    t: start,
    sleeps: [] as number[],
    now: () => clock.t,
    sleep: (ms: number, signal?: AbortSignal) => {
      if (signal?.aborted) return Promise.reject(signal.reason);
      clock.sleeps.push(ms);
      clock.t += ms;
      return Promise.resolve();
    },
  };
  return clock;
}

/** The most of `times` inside any window of `windowMs` (a start at exactly +window is outside). */
function busiestWindow(times: number[], windowMs: number): number {
  let most = 0;
  for (const start of times) {
    most = Math.max(most, times.filter((t) => t >= start && t < start + windowMs).length);
  }
  return most;
}

test("at most N requests start in any rolling window, the rest as soon as one slides out", async () => {
  const clock = fakeClock();
  const pace = new DownloadPace(5, { windowMs: 60_000, clock });
  const starts: number[] = [];
  for (let i = 0; i < 17; i++) {
    await pace.take();
    starts.push(clock.now());
    clock.t += 1_000; // each download takes a second
  }
  assert.deepEqual(starts.slice(0, 5), [1_000, 2_000, 3_000, 4_000, 5_000]);
  const margin = paceMarginMs(60_000);
  assert.equal(starts[5], 1_000 + 60_000 + margin, "the sixth waits for the first to slide out");
  assert.ok(busiestWindow(starts, 60_000) <= 5);
  // It does not wait longer than it must: 17 starts fit in three windows and a bit.
  assert.ok(starts[16] - starts[0] < 3 * (60_000 + margin) + 5_000, String(starts[16]));
});

test("concurrent takers share one budget and take their turns in order", async () => {
  const clock = fakeClock();
  const pace = new DownloadPace(3, { windowMs: 10_000, clock });
  const order: number[] = [];
  const times: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      pace.take().then(() => {
        order.push(i);
        times.push(clock.now());
      })),
  );
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok(busiestWindow(times, 10_000) <= 3, times.join(", "));
});

test("a 429's pause holds every request back until it has passed", async () => {
  const clock = fakeClock();
  const pace = new DownloadPace(50, { windowMs: 60_000, clock });
  await pace.take();
  pace.pauseFor(30_000);
  assert.equal(pace.delayMs(), 30_000);
  await pace.take();
  assert.equal(clock.now(), 1_000 + 30_000);
  // A shorter pause never shortens a longer one.
  pace.pauseFor(10_000);
  pace.pauseFor(5_000);
  assert.equal(pace.delayMs(), 10_000);
});

test("a taker whose signal aborts rejects with its reason and uses no slot", async () => {
  const clock = fakeClock();
  const pace = new DownloadPace(1, { windowMs: 60_000, clock });
  await pace.take();
  const controller = new AbortController();
  controller.abort(new Error("run failed"));
  await assert.rejects(pace.take(controller.signal), /run failed/);
  // The next taker waits for the first slot only, as if the aborted one had never asked.
  await pace.take();
  assert.equal(clock.now(), 1_000 + 60_000 + paceMarginMs(60_000));
});

test("the window comes from the test-only variable, else a minute; N must be positive", () => {
  const saved = process.env[PACE_WINDOW_ENV];
  try {
    delete process.env[PACE_WINDOW_ENV];
    assert.equal(paceWindowMs(), DEFAULT_PACE_WINDOW_MS);
    process.env[PACE_WINDOW_ENV] = "1500";
    assert.equal(paceWindowMs(), 1500);
    assert.equal(new DownloadPace(2).windowMs, 1500);
    process.env[PACE_WINDOW_ENV] = "soon";
    assert.equal(paceWindowMs(), DEFAULT_PACE_WINDOW_MS);
  } finally {
    if (saved === undefined) delete process.env[PACE_WINDOW_ENV];
    else process.env[PACE_WINDOW_ENV] = saved;
  }
  assert.equal(new DownloadPace().perWindow, 50);
  for (const bad of [0, -1, 2.5, NaN]) assert.throws(() => new DownloadPace(bad), RangeError);
});
