// deno-lint-ignore-file no-control-regex -- the live line is made of escape sequences
/**
 * Unit tests of lib/reporter/: the three shapes of progress (script lines, JSON events, the
 * live terminal line), colour, and the summary. Stderr is captured with
 * `stderrOf` (tests/helpers/mod.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Reporter, type ReporterOptions } from "../../lib/reporter/mod.ts";
import { colorize } from "../../lib/reporter/plain.ts";
import { registerSecret } from "../../lib/errors.ts";
import { stderrOf } from "../helpers/mod.ts";

/** Runs `fn` with a reporter made from `options`; returns what it wrote to stderr. */
function captured(
  options: ReporterOptions,
  fn: (reporter: Reporter) => void | Promise<void>,
): Promise<string> {
  // No real timer: the live line's and JSON progress's redraw timer never ticks here.
  const ticker = () => () => {};
  return stderrOf(() =>
    fn(new Reporter({ now: () => new Date("2026-07-09T10:00:00Z"), ticker, ...options }))
  );
}

const SUMMARY = {
  files: 3,
  bytes: 12_345,
  pages: 2,
  retries: 1,
  skipped: 0,
  durationMs: 1500,
  cursors: { AUTH_LOG: "2026-07-09T09:00:00.000000Z", AUDIT_LOG: null },
};

test("the live line redraws in place with page, files, bytes and rate, and clears before a line", async () => {
  const out = await captured({ verbosity: "normal", format: "plain", live: true }, (r) => {
    r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: "2026-07-09T00:00:00Z" });
    r.emit({ event: "fileStart", id: "eclf_1" });
    r.emit({ event: "file", id: "eclf_1", bytes: 2048, durationMs: 5 });
    r.emit({ event: "warning", message: "something to say" });
    r.emit({ event: "summary", ...SUMMARY });
  });
  assert.match(out, /^\r\x1b\[KAUTH_LOG page 1 \| 0 files listed \| 0 B/);
  assert.doesNotMatch(out, /Fetching logs for ID/);
  // A plain line first erases the live one, so the two never share a row.
  assert.match(out, /\r\x1b\[Kwarning: something to say\n/);
  assert.match(out, /Summary: 3 files, 12\.3 KB, 2 pages, 1 retries, 0 skipped in 1\.5s; /);
  assert.match(out, /cursor AUTH_LOG=2026-07-09T09:00:00\.000000Z AUDIT_LOG=none\n$/);
});

test("the live line is redrawn at most every 100 ms however many files finish", async () => {
  const out = await captured({ verbosity: "normal", format: "plain", live: true }, (r) => {
    r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: "2026-07-09T00:00:00Z" });
    for (let i = 0; i < 1000; i++) {
      r.emit({ event: "file", id: `eclf_${i}`, bytes: 10, durationMs: 1 });
    }
  });
  assert.ok(out.split("\r\x1b[K").length - 1 <= 3, out);
});

test("the live line is off for --verbose, --quiet and JSON; without it, the scripts' lines", async () => {
  for (
    const options of [
      { verbosity: "verbose", format: "plain", live: true },
      { verbosity: "quiet", format: "plain", live: true },
      { verbosity: "normal", format: "json", live: true },
    ] as ReporterOptions[]
  ) {
    const out = await captured(options, (r) => {
      r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: "2026-07-09T00:00:00Z" });
      r.emit({ event: "file", id: "eclf_1", bytes: 10, durationMs: 1 });
    });
    assert.doesNotMatch(out, /\x1b/, JSON.stringify(options));
  }
  const plain = await captured({ verbosity: "normal", format: "plain", live: false }, (r) => {
    r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: "2026-07-09T00:00:00Z" });
    r.emit({ event: "fileStart", id: "eclf_1" });
  });
  assert.equal(
    plain,
    "Fetching page 1 with after='2026-07-09T00:00:00Z' (local: 2026-07-09 00:00:00 UTC)\n" +
      "Fetching logs for ID: eclf_1\n",
  );
});

test("colour marks only the error: and warning: prefixes, and only when asked", async () => {
  assert.equal(colorize("error: boom"), "\x1b[31merror:\x1b[39m boom");
  assert.equal(colorize("warning: hm"), "\x1b[33mwarning:\x1b[39m hm");
  assert.equal(colorize("Fetching page 1"), "Fetching page 1");
  const colored = await captured(
    { verbosity: "normal", format: "plain", live: false, color: true },
    (r) => r.emit({ event: "warning", message: "x" }),
  );
  assert.equal(colored, "\x1b[33mwarning:\x1b[39m x\n");
  const uncolored = await captured(
    { verbosity: "normal", format: "plain", live: false, color: false },
    (r) => r.emit({ event: "error", message: "y" }),
  );
  assert.equal(uncolored, "error: y\n");
});

test("JSON events carry their fields, without prefixes, and secrets are redacted", async () => {
  registerSecret("sk-reporter-secret-77");
  const out = await captured({ verbosity: "normal", format: "json" }, (r) => {
    r.emit({ event: "warning", message: "careful" });
    r.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after: "2026-07-09T00:00:00Z" });
    r.emit({
      event: "page",
      eventType: "AUTH_LOG",
      page: 1,
      after: "2026-07-09T00:00:00Z",
      files: 2,
      hasMore: true,
    });
    r.emit({ event: "file", id: "eclf_1", bytes: 100, durationMs: 7 });
    r.emit({
      event: "retry",
      what: "listing logs",
      attempt: 2,
      of: 6,
      waitMs: 250,
      reason: "HTTP error 429",
    });
    r.emit({ event: "error", message: "bad key sk-reporter-secret-77", kind: "auth", exitCode: 1 });
    r.emit({ event: "summary", ...SUMMARY, status: "failed", exitCode: 1 });
  });
  const events = out.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.ok(events.every((e) => e.time === "2026-07-09T10:00:00.000Z"));
  assert.deepEqual(events.map((e) => e.event), [
    "warning",
    "page",
    "file",
    "retry",
    "error",
    "summary",
  ]);
  assert.equal(events[0].message, "careful");
  assert.deepEqual(
    [events[1].event_type, events[1].page, events[1].files, events[1].has_more],
    ["AUTH_LOG", 1, 2, true],
  );
  assert.deepEqual([events[2].id, events[2].bytes, events[2].duration_ms], ["eclf_1", 100, 7]);
  assert.deepEqual([events[3].reason, events[3].wait_ms, events[3].attempt], [
    "HTTP error 429",
    250,
    2,
  ]);
  assert.equal(events[4].message, "bad key ***");
  assert.equal(events[4].kind, "auth");
  assert.deepEqual(
    [events[5].files, events[5].bytes, events[5].status, events[5].exit_code],
    [3, 12_345, "failed", 1],
  );
  assert.deepEqual(events[5].cursors, SUMMARY.cursors);
});

test("--quiet keeps errors only; the poll wait shows tenths below ten seconds", async () => {
  const quiet = await captured({ verbosity: "quiet", format: "plain" }, (r) => {
    r.emit({ event: "warning", message: "hidden" });
    r.emit({ event: "sleep", waitMs: 300 });
    r.emit({ event: "summary", ...SUMMARY });
    r.emit({ event: "error", message: "shown" });
  });
  assert.equal(quiet, "error: shown\n");
  const waits = await captured({ verbosity: "normal", format: "plain", live: false }, (r) => {
    r.emit({ event: "sleep", waitMs: 300 });
    r.emit({ event: "sleep", waitMs: 300_000 });
  });
  assert.equal(waits, "Waiting 0.3s before the next poll\nWaiting 300s before the next poll\n");
});
