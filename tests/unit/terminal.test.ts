import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeControls, escapeJsonControls } from "../../lib/terminal.ts";

test("C0 controls, DEL and C1 controls become visible \\x escapes; newline and tab stay", () => {
  assert.equal(
    escapeControls("a\x1b[2J\x1b]0;t\x07\r\x7f\x9b1m\n\tz"),
    "a\\x1b[2J\\x1b]0;t\\x07\\x0d\\x7f\\x9b1m\n\tz",
  );
  assert.equal(escapeControls("\x00\x08\x0b\x1f\x80"), "\\x00\\x08\\x0b\\x1f\\x80");
});

test("text without controls is returned unchanged, including non-ASCII", () => {
  const text = "Fetching page 1 with after='2026-07-01' — café 日本 \u00a0";
  assert.equal(escapeControls(text), text);
});

test("with nothing kept, newlines and tabs are escaped too (one value, one line)", () => {
  assert.equal(escapeControls("id\n1\t2", ""), "id\\x0a1\\x092");
});

test("JSON text keeps its value with DEL and C1 escaped as \\u00XX", () => {
  const value = { m: "a\x7f\x9b31m\x1b" };
  const json = escapeJsonControls(JSON.stringify(value));
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(json, /[\x00-\x1f\x7f-\x9f]/);
  assert.deepEqual(JSON.parse(json), value);
});
