/**
 * Unit tests of where a long run stands (lib/reporter/progress.ts, human.ts and the live and JSON
 * renderers): files done of files listed, bytes, rate and time left, every figure rounded for a
 * person; periodic `progress` events in JSON; gone files and the exit-4 ending. A fake clock
 * drives every figure, so nothing depends on how fast the test runs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Reporter, type ReporterOptions } from "../../lib/reporter/mod.ts";
import {
  formatByteRate,
  formatBytes,
  formatCount,
  formatDuration,
  formatFileRate,
} from "../../lib/reporter/human.ts";
import { LiveRenderer } from "../../lib/reporter/live.ts";
import { Progress } from "../../lib/reporter/progress.ts";
import type { Ticker } from "../../lib/reporter/ticker.ts";
import { CliError } from "../../lib/errors.ts";
import { stderrOf } from "../helpers/mod.ts";

const T0 = Date.UTC(2026, 6, 9, 10, 0, 0);

/** A clock that only moves when the test says so. */
function fakeClock() {
  let ms = 0;
  return {
    now: () => new Date(T0 + ms),
    ms: () => T0 + ms,
    advance: (by: number) => (ms += by),
  };
}

type Clock = ReturnType<typeof fakeClock>;

/** A timer that ticks only when the test says so. */
function manualTicker() {
  const running = new Set<() => void>();
  const ticker: Ticker = (tick) => {
    running.add(tick);
    return () => running.delete(tick);
  };
  return { ticker, tick: () => [...running].forEach((t) => t()), running: () => running.size };
}

function captured(
  options: ReporterOptions,
  fn: (reporter: Reporter, clock: Clock, timer: ReturnType<typeof manualTicker>) => void,
): Promise<string> {
  const clock = fakeClock();
  const timer = manualTicker();
  return stderrOf(() =>
    fn(new Reporter({ now: clock.now, ticker: timer.ticker, ...options }), clock, timer)
  );
}

const AFTER = "2026-07-09T00:00:00Z";

/** A page of `files`, then `count` files of `bytes` each, one every `everyMs`. */
function backfill(r: Reporter, clock: Clock, count: number, everyMs: number, bytes = 40_000) {
  r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: AFTER });
  r.emit({
    event: "page",
    eventType: "AUTH_LOG",
    page: 1,
    after: AFTER,
    files: 100,
    hasMore: true,
  });
  for (let i = 0; i < count; i++) {
    clock.advance(everyMs);
    r.emit({ event: "fileStart", id: `eclf_${i}` });
    r.emit({ event: "file", id: `eclf_${i}`, bytes, durationMs: 300 });
  }
}

/** The live lines drawn, last one last (each redraw starts with `\r` and erase-line). */
function liveLines(out: string): string[] {
  return out.split("\r\x1b[K").filter(Boolean).map((l) => l.replace(/\n$/, ""));
}

test("figures are rounded for a person: bytes, rates, durations and counts", () => {
  assert.equal(formatByteRate(885.4718981972429), "885 B/s");
  assert.equal(formatBytes(12_345), "12.3 KB");
  assert.equal(formatBytes(999_960), "1.0 MB");
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatByteRate(1_234_567), "1.2 MB/s");
  assert.equal(formatFileRate(48.46), "48 files/min");
  assert.equal(formatFileRate(3), "3 files/min");
  assert.equal(formatFileRate(1_498.4), "1,498 files/min");
  assert.equal(formatFileRate(2.25), "2.3 files/min");
  assert.equal(formatFileRate(0.05), "3 files/h");
  assert.equal(formatDuration(45.4), "45s");
  assert.equal(formatDuration(270), "4m 30s");
  assert.equal(formatDuration(1_500), "25m");
  assert.equal(formatDuration(7_980), "2h 13m");
  assert.equal(formatDuration(13 * 3600), "13h 0m");
  assert.equal(formatDuration(3 * 86_400 + 4 * 3600), "3d 4h");
  assert.equal(formatCount(39_000), "39,000");
});

test("the live line shows files done of files listed, bytes, the rate and the time left", async () => {
  const out = await captured({ verbosity: "normal", format: "plain", live: true }, (r, clock) => {
    // 30 files of 40 KB at the documented 50 a minute: one every 1.2 s.
    backfill(r, clock, 30, 1_200);
  });
  const lines = liveLines(out);
  assert.equal(lines[0], "AUTH_LOG page 1 | 0 files listed | 0 B");
  assert.equal(lines[1], "AUTH_LOG page 1 | 100+ files listed | 0 B");
  assert.equal(
    lines.at(-1),
    "AUTH_LOG page 1 | 30 of 100+ files | 1.2 MB | 33.3 KB/s, 50 files/min | 1m 24s+ left",
  );
  // No figure with a float's tail, anywhere (issue 20: `885.4718981972429 B/s`).
  assert.doesNotMatch(out, /\d\.\d{2,}/);
});

test("the live line drops the + and the time left once the listing is done and the files too", async () => {
  const out = await captured({ verbosity: "normal", format: "plain", live: true }, (r, clock) => {
    r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: AFTER });
    r.emit({
      event: "page",
      eventType: "AUTH_LOG",
      page: 1,
      after: AFTER,
      files: 3,
      hasMore: false,
    });
    clock.advance(1_000);
    r.emit({ event: "file", id: "eclf_1", bytes: 1_000_000, durationMs: 900 });
    clock.advance(1_000);
    r.emit({ event: "skip", id: "eclf_2", reason: "already stored with the right size and hash" });
    clock.advance(1_000);
    r.emit({ event: "file", id: "eclf_3", bytes: 500_000, durationMs: 900 });
  });
  assert.equal(
    liveLines(out).at(-1),
    "AUTH_LOG page 1 | 3 of 3 files | 1.5 MB | 500.0 KB/s, 60 files/min",
  );
});

test("while the downloads wait (the download limit, a 429), the live line still shows the rate and time left", async () => {
  let running = -1;
  const out = await captured(
    { verbosity: "normal", format: "plain", live: true },
    (r, clock, timer) => {
      // A burst of 10 files in a second, then the pacer holds the next ones: no event for 10 s.
      backfill(r, clock, 10, 100);
      clock.advance(10_000);
      timer.tick();
      r.emit({
        event: "completed",
        eventType: "AUTH_LOG",
        files: 10,
        cursor: null,
        initialAfter: AFTER,
      });
      running = timer.running();
    },
  );
  const lines = liveLines(out);
  assert.equal(lines.at(-3), "AUTH_LOG page 1 | 10 of 100+ files | 400.0 KB");
  assert.equal(
    lines.at(-2),
    "AUTH_LOG page 1 | 10 of 100+ files | 400.0 KB | 36.4 KB/s, 55 files/min | 1m 39s+ left",
  );
  assert.equal(running, 0, "the redraw timer stops when the pass is over");
});

test("--log-format json: a wait with no events still gets its progress events, and none after the summary", async () => {
  let running = -1;
  const out = await captured({ verbosity: "normal", format: "json" }, (r, clock, timer) => {
    backfill(r, clock, 10, 100);
    for (let s = 0; s < 25; s++) {
      clock.advance(1_000);
      timer.tick();
    }
    r.emit({
      event: "summary",
      files: 10,
      bytes: 400_000,
      pages: 1,
      retries: 0,
      skipped: 0,
      durationMs: 26_000,
      cursors: {},
    });
    running = timer.running();
    clock.advance(60_000);
    timer.tick();
  });
  const events = out.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(
    events.filter((e) => e.event === "progress").map((
      e,
    ) => [e.time, e.files_done, e.files_per_minute]),
    [["2026-07-09T10:00:10.000Z", 10, 60], ["2026-07-09T10:00:20.000Z", 10, 30]],
  );
  assert.equal(events.at(-1).event, "summary");
  assert.equal(running, 0);
});

test("the live line is cut to the terminal's width, since a wrapped line cannot be redrawn", async () => {
  const clock = fakeClock();
  const out = await stderrOf(() => {
    const live = new LiveRenderer({ color: false, now: clock.ms, columns: () => 20 });
    live.render({ event: "pageStart", eventType: "CUSTOM_AGENTS_LOG", page: 12, after: AFTER });
  });
  assert.equal(out, "\r\x1b[KCUSTOM_AGENTS_LOG p");
});

test("the rate is the last minute's: after a stall it falls to zero and the time left is unknown", () => {
  let now = T0;
  const progress = new Progress(() => now);
  progress.observe({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: AFTER });
  progress.observe({
    event: "page",
    eventType: "AUTH_LOG",
    page: 1,
    after: AFTER,
    files: 200,
    hasMore: false,
  });
  for (let i = 0; i < 60; i++) {
    now += 1_000;
    progress.observe({ event: "file", id: `eclf_${i}`, bytes: 1_000, durationMs: 10 });
  }
  const moving = progress.figures();
  assert.deepEqual(moving, {
    filesDone: 60,
    filesListed: 200,
    listingComplete: true,
    bytes: 60_000,
    bytesPerSecond: 1_000,
    filesPerMinute: 60,
    etaSeconds: 140,
  });
  // Half a minute at twice the pace: the rate follows the recent past, not the run's average.
  for (let i = 60; i < 120; i++) {
    now += 500;
    progress.observe({ event: "file", id: `eclf_${i}`, bytes: 1_000, durationMs: 10 });
  }
  assert.equal(progress.figures().filesPerMinute, 90);
  now += 120_000; // a 429 backoff, or a --follow sleep
  const stalled = progress.figures();
  assert.equal(stalled.bytesPerSecond, 0);
  assert.equal(stalled.filesPerMinute, 0);
  assert.equal(stalled.etaSeconds, null);
});

test("--log-format json: a progress event every 10 s while files move, with the same figures", async () => {
  const out = await captured({ verbosity: "normal", format: "json" }, (r, clock) => {
    backfill(r, clock, 30, 1_200); // 36 s of downloads
    clock.advance(60_000);
    r.emit({ event: "sleep", waitMs: 300_000 }); // nothing moved: no progress event
    r.emit({
      event: "summary",
      files: 30,
      bytes: 1_200_000,
      pages: 1,
      retries: 0,
      skipped: 0,
      durationMs: 96_000,
      cursors: {},
    });
  });
  const events = out.trimEnd().split("\n").map((l) => JSON.parse(l));
  const progress = events.filter((e) => e.event === "progress");
  assert.deepEqual(
    progress.map((e) => [e.time, e.files_done]),
    [
      ["2026-07-09T10:00:10.800Z", 9],
      ["2026-07-09T10:00:21.600Z", 18],
      ["2026-07-09T10:00:32.400Z", 27],
    ],
  );
  assert.deepEqual(progress.at(-1), {
    time: "2026-07-09T10:00:32.400Z",
    event: "progress",
    files_done: 27,
    files_listed: 100,
    listing_complete: false,
    bytes: 1_080_000,
    bytes_per_second: 33_333,
    files_per_minute: 50,
    eta_seconds: 88,
  });
  assert.equal(events.at(-1).event, "summary");
});

test("the progress period is injectable, and a short run writes no progress event", async () => {
  const short = await captured({ verbosity: "normal", format: "json" }, (r, clock) => {
    backfill(r, clock, 5, 1_000);
  });
  assert.doesNotMatch(short, /"event":"progress"/);
  const often = await captured(
    { verbosity: "normal", format: "json", progressEveryMs: 2_000 },
    (r, clock) => backfill(r, clock, 5, 1_000),
  );
  assert.equal(often.match(/"event":"progress"/g)?.length, 2);
});

test("a gone file is one warning line naming it in plain output, and the event as is in JSON", async () => {
  const gone = {
    event: "gone",
    eventType: "AUDIT_LOG",
    id: "eclf_gone_1",
    endTime: "2026-06-01T00:00:00Z",
    reason: "expired",
  } as const;
  const plain = await captured(
    { verbosity: "normal", format: "plain", live: false },
    (r) => r.emit(gone),
  );
  assert.equal(
    plain,
    "warning: AUDIT_LOG file eclf_gone_1 (end_time 2026-06-01T00:00:00Z) is no longer available " +
      "(past the API's 30-day retention): recorded as gone, the checkpoint moves past it\n",
  );
  const json = await captured({ verbosity: "normal", format: "json" }, (r) => r.emit(gone));
  assert.deepEqual(JSON.parse(json), {
    time: "2026-07-09T10:00:00.000Z",
    event: "gone",
    event_type: "AUDIT_LOG",
    id: "eclf_gone_1",
    end_time: "2026-06-01T00:00:00Z",
    reason: "expired",
  });
});

test("exit 4: the summary counts gone files, status incomplete, and the last line is a warning", async () => {
  const summary = {
    files: 8,
    bytes: 80_000,
    pages: 1,
    retries: 0,
    skipped: 0,
    gone: 2,
    durationMs: 2_000,
    cursors: { AUTH_LOG: "2026-07-09T09:00:00.000000Z" },
    status: "incomplete",
    exitCode: 4,
  } as const;
  const failure = () =>
    new CliError("incomplete", "done, but 2 listed files were no longer available");
  const plain = await captured(
    { verbosity: "normal", format: "plain", live: false },
    (r) => r.end(summary, failure()),
  );
  assert.equal(
    plain,
    "Summary: 8 files, 80.0 KB, 1 pages, 0 retries, 0 skipped, 2 gone in 2.0s; " +
      "cursor AUTH_LOG=2026-07-09T09:00:00.000000Z\n" +
      "warning: done, but 2 listed files were no longer available\n",
  );
  const json = await captured(
    { verbosity: "normal", format: "json" },
    (r) => r.end(summary, failure()),
  );
  const [error, last] = json.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual([error.event, error.kind, error.exit_code], ["error", "incomplete", 4]);
  assert.deepEqual([last.event, last.status, last.exit_code, last.gone], [
    "summary",
    "incomplete",
    4,
    2,
  ]);
});
