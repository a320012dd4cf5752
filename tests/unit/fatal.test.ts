/**
 * The fatal line: shown once, in the run's log format where the run ends (JSON: the error event
 * before the summary; plain: after it), and by main.ts in plain text only when no reporter has.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BrokenPipeError, CliError, exitCodeOf, helpInstead, outcomeOf } from "../../lib/errors.ts";
import { Reporter, reportFatal } from "../../lib/reporter/mod.ts";
import { stderrOf } from "../helpers/mod.ts";

const SUMMARY = {
  files: 1,
  bytes: 10,
  pages: 1,
  retries: 0,
  skipped: 0,
  durationMs: 100,
  cursors: { AUTH_LOG: null },
};
const NOW = () => new Date("2026-07-09T10:00:00Z");

test("JSON: the error event with kind and exit code, then the summary; main.ts adds nothing", async () => {
  const error = new CliError("auth", "HTTP error 401 while listing logs:", { detail: "{}" });
  const out = await stderrOf(() => {
    const reporter = new Reporter({ verbosity: "normal", format: "json", now: NOW });
    reporter.end({ ...SUMMARY, status: "failed", exitCode: 1 }, error, { beforeStart: true });
    reportFatal(error, {});
  });
  const events = out.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(events.map((e) => e.event), ["error", "summary"]);
  assert.deepEqual(
    [events[0].message, events[0].detail, events[0].kind, events[0].exit_code],
    ["HTTP error 401 while listing logs:", "{}", "auth", 1],
  );
  assert.deepEqual(Object.keys(events[1]), [
    "time",
    "event",
    "files",
    "bytes",
    "pages",
    "retries",
    "skipped",
    "duration_ms",
    "cursors",
    "status",
    "exit_code",
  ]);
});

test("plain: the summary line, then the error line (none before the run started), once", async () => {
  const error = new CliError("io", "cannot write x");
  const run = (beforeStart: boolean) =>
    stderrOf(() => {
      const reporter = new Reporter({ verbosity: "normal", format: "plain", live: false });
      reporter.end(SUMMARY, error, { beforeStart });
      reportFatal(error, {});
    });
  assert.match(await run(false), /^Summary: 1 files, .*\nerror: cannot write x\n$/);
  const again = new CliError("io", "cannot write y");
  const before = await stderrOf(() => {
    new Reporter({ verbosity: "normal", format: "plain", live: false })
      .end(SUMMARY, again, { beforeStart: true });
    reportFatal(again, {});
  });
  assert.equal(before, "error: cannot write y\n");
});

test("main.ts's line: a usage text as it is, an unexpected failure named so, a closed pipe silent", async () => {
  assert.equal(
    await stderrOf(() => reportFatal(helpInstead("Usage: x <a>"), {})),
    "Usage: x <a>\n",
  );
  assert.equal(
    await stderrOf(() => reportFatal(new TypeError("boom \x1b[2J"), {})),
    "error: unexpected failure: boom \\x1b[2J\n",
  );
  assert.equal(await stderrOf(() => reportFatal(new BrokenPipeError(), {})), "");
});

test("exit codes: usage 2, signals 130/143, a closed pipe 0, anything else 1", () => {
  assert.equal(exitCodeOf(helpInstead("u")), 2);
  assert.equal(exitCodeOf(new CliError("interrupted", "i", { signal: "SIGTERM" })), 143);
  assert.equal(exitCodeOf(new CliError("interrupted", "i", { signal: "SIGINT" })), 130);
  assert.equal(exitCodeOf(new BrokenPipeError()), 0);
  assert.equal(exitCodeOf(new Error("bug")), 1);
  assert.deepEqual(outcomeOf(undefined), { status: "ok", exitCode: 0 });
  assert.deepEqual(outcomeOf(new CliError("interrupted", "i", { signal: "SIGINT" })), {
    status: "interrupted",
    exitCode: 130,
  });
});
