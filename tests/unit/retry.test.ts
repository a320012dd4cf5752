import { test } from "node:test";
import assert from "node:assert/strict";
import { TransientError } from "../../lib/errors.ts";
import { backoffDelay, parseRetryAfter, retryDelay, withRetries } from "../../lib/retry.ts";

const policy = { retries: 3, backoffMs: 1000, maxWaitMs: 300_000 };

test("Retry-After is read in seconds and HTTP-date form; garbage and negatives fall back", () => {
  const now = Date.parse("2026-07-09T10:00:00Z");
  assert.equal(parseRetryAfter("7", now), 7000);
  assert.equal(parseRetryAfter("Thu, 09 Jul 2026 10:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Thu, 09 Jul 2026 09:00:00 GMT", now), 0);
  for (const bad of ["-5", "soon", "", "1e3", null]) {
    assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  }
});

test("Retry-After is also read in the obsolete RFC 850 and asctime date forms", () => {
  const now = Date.parse("2026-07-09T10:00:00Z");
  assert.equal(parseRetryAfter("Thursday, 09-Jul-26 10:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Thu Jul  9 10:00:30 2026", now), 30_000);
  assert.equal(parseRetryAfter("Thu Jul 09 10:00:45 2026", now), 45_000);
  // A two-digit year more than 50 years ahead is in the past: no wait.
  assert.equal(parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), 0);
  for (const bad of ["Thu, 31 Apr 2026 10:00:00 GMT", "Thu, 09 Jly 2026 10:00:00 GMT"]) {
    assert.equal(parseRetryAfter(bad, now), undefined, bad);
  }
  for (const bad of ["Thu, 09 Jul 2026 25:00:00 GMT", "Thu Jul  9 10:00:30 2026 GMT"]) {
    assert.equal(parseRetryAfter(bad, now), undefined, bad);
  }
});

test("backoff is full jitter under a doubling ceiling, and every wait is capped", () => {
  assert.equal(backoffDelay(3, policy, () => 1), 8000);
  assert.equal(backoffDelay(3, policy, () => 0), 0);
  assert.equal(backoffDelay(30, policy, () => 1), 300_000);
  const hinted = new TransientError("api", "HTTP error 429", 3_600_000);
  assert.equal(retryDelay(0, hinted, policy), 300_000);
});

test("withRetries retries transient errors only and gives up after the budget", async () => {
  const fast = { ...policy, backoffMs: 1 };
  let calls = 0;
  const notices: number[] = [];
  const value = await withRetries("x", fast, () => {
    calls++;
    if (calls < 3) throw new TransientError("network", "reset");
    return Promise.resolve("ok");
  }, (n) => notices.push(n.attempt));
  assert.equal(value, "ok");
  assert.deepEqual(notices, [2, 3]);

  calls = 0;
  await assert.rejects(
    withRetries("x", fast, () => {
      calls++;
      throw new TransientError("network", "still down");
    }, () => {}),
    /still down/,
  );
  assert.equal(calls, 4);

  calls = 0;
  await assert.rejects(
    withRetries("x", fast, () => {
      calls++;
      throw new Error("fatal");
    }, () => {}),
    /fatal/,
  );
  assert.equal(calls, 1);
});
