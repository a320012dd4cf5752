import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDuration, parseTimeArg, toLocalHuman, toMicros } from "../../lib/time.ts";

const NOW = new Date("2026-07-10T12:00:00Z");

test("ISO times with a zone are kept verbatim and compared at microsecond precision", () => {
  const t = parseTimeArg("2026-07-09T12:24:53.814285+02:00", "after", NOW);
  assert.equal(t.iso, "2026-07-09T12:24:53.814285+02:00");
  assert.equal(t.micros, toMicros("2026-07-09T10:24:53.814285Z"));
  assert.ok(toMicros("2026-07-09T10:24:53.814286Z")! > toMicros("2026-07-09T10:24:53.814285Z")!);
});

test("a date alone is UTC midnight and relative times count back from now", () => {
  assert.equal(parseTimeArg("2026-07-09", "after", NOW).iso, "2026-07-09T00:00:00Z");
  assert.equal(parseTimeArg("90m", "after", NOW).iso, "2026-07-10T10:30:00Z");
  assert.equal(parseTimeArg("24h", "after", NOW).iso, "2026-07-09T12:00:00Z");
  assert.equal(parseTimeArg("7d", "after", NOW).iso, "2026-07-03T12:00:00Z");
});

test("times without a zone, impossible dates and words are refused naming the argument", () => {
  for (
    const bad of ["2026-07-09T00:00:00", "2026-02-30T00:00:00Z", "2026-07-09T25:00:00Z", "now", ""]
  ) {
    assert.throws(() => parseTimeArg(bad, "--before", NOW), (e: Error) => {
      assert.match(e.message, /^--before must be an ISO 8601 time with a zone/);
      return true;
    });
  }
});

test("local rendering uses the machine's zone and leaves unparsable cursors alone", () => {
  assert.match(
    toLocalHuman("2026-07-09T10:24:53.814285Z"),
    /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:53 \S+$/,
  );
  assert.equal(toLocalHuman(null), "");
  assert.equal(toLocalHuman("null"), "");
  assert.equal(toLocalHuman("garbage"), "garbage");
});

test("durations accept units and bare seconds", () => {
  assert.equal(parseDuration("5m", "--interval"), 300_000);
  assert.equal(parseDuration("0.25", "--timeout"), 250);
  assert.throws(() => parseDuration("5 minutes", "--interval"), /--interval must be a duration/);
});

test("durations are whole milliseconds and at most what timers hold (2^31-1 ms)", () => {
  assert.equal(parseDuration("1.0005", "--settle"), 1001);
  assert.equal(parseDuration("2147483", "--timeout"), 2_147_483_000);
  assert.equal(parseDuration("24d", "--interval"), 24 * 86_400_000);
  for (const bad of ["25d", "2147484", "99999999w", "9".repeat(400)]) {
    assert.throws(
      () => parseDuration(bad, "--interval"),
      /--interval must be (at most|a duration)/,
    );
  }
});

test("a relative time that lands before 1970 is refused, not an invalid date", () => {
  assert.throws(
    () => parseTimeArg("99999999w", "--before", NOW),
    /--before must be a relative time/,
  );
  assert.equal(parseTimeArg("0s", "after", NOW).iso, "2026-07-10T12:00:00Z");
});
