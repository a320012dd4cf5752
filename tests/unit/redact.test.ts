import { test } from "node:test";
import assert from "node:assert/strict";
import { redact, REDACT_WINDOW, registerSecret } from "../../lib/errors.ts";

// Secrets registered here stay registered for this process: each test uses its own.

test("every run of 16 or more characters of a secret becomes one ***", () => {
  const key = "sk-unit-redact-Hx7Qm2Lw9Rt4Vb8Nc3Kd6F";
  registerSecret(key);
  assert.equal(redact(`key ${key}.`), "key ***.");
  assert.equal(redact(`${key}${key}`), "***");
  assert.equal(redact(`a ${key.slice(0, 16)} b ${key.slice(-16)} c`), "a *** b *** c");
  assert.equal(redact(`x${key.slice(3, 30)}y`), "x***y");
  // Shorter runs are left alone: ordinary text must not turn into stars.
  const short = key.slice(0, REDACT_WINDOW - 1);
  assert.equal(redact(`a ${short} b`), `a ${short} b`);
  assert.equal(redact("0 skipped, checkpoint"), "0 skipped, checkpoint");
});

test("a secret's JSON-escaped and percent-encoded forms are redacted too", () => {
  const password = 'p@ss"w\\ord/with spaces-and-more';
  registerSecret(password);
  for (
    const form of [
      password,
      JSON.stringify(password),
      JSON.stringify(JSON.stringify(password)),
      encodeURIComponent(password),
      encodeURIComponent(password).toLowerCase(),
    ]
  ) {
    const out = redact(`proxy said: ${form}!`);
    for (let i = 0; i + REDACT_WINDOW <= password.length; i++) {
      assert.ok(!out.includes(password.slice(i, i + REDACT_WINDOW)), out);
    }
    assert.match(out, /\*\*\*/);
  }
});

test("a secret shorter than the window is replaced where it appears whole", () => {
  registerSecret("hunter2x");
  assert.equal(redact("pw=hunter2x;"), "pw=***;");
  assert.equal(redact("hunter"), "hunter");
});

test("redaction is fast enough to run on every stderr line", () => {
  registerSecret("sk-unit-speed-0123456789abcdefghijklmnopqrstuvwxyz");
  const line = "Fetching logs for ID: eclf_auth_log_0001 (local: 2026-07-01 00:00:00 UTC)";
  const started = performance.now();
  for (let i = 0; i < 20_000; i++) redact(line);
  assert.ok(performance.now() - started < 2_000);
});
