/**
 * The reporter's two output paths are safe for a terminal and never carry a secret: plain lines
 * have control characters made visible, JSON lines stay valid JSON after redaction.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Reporter, type ReporterOptions } from "../../lib/reporter/mod.ts";
import { registerSecret } from "../../lib/errors.ts";
import { stderrOf } from "../helpers/mod.ts";

/** What `fn` made a reporter write to stderr. */
function captured(options: ReporterOptions, fn: (reporter: Reporter) => void): Promise<string> {
  return stderrOf(() =>
    fn(new Reporter({ now: () => new Date("2026-07-09T10:00:00Z"), ...options }))
  );
}

test("plain lines show control characters as \\x escapes, before the colour goes on", async () => {
  const out = await captured(
    { verbosity: "normal", format: "plain", live: false, color: true },
    (r) =>
      r.emit({
        event: "error",
        message: "boom \x1b[2J\x1b]0;t\x07\x9b",
        detail: '{\n  "m": "\r"\n}',
      }),
  );
  assert.equal(
    out,
    '\x1b[31merror:\x1b[39m boom \\x1b[2J\\x1b]0;t\\x07\\x9b\n{\n  "m": "\\x0d"\n}\n',
  );
});

test("JSON lines redact secrets with quotes and backslashes and still parse", async () => {
  const password = 'pw"with\\quotes"and\\slashes-0123';
  registerSecret(password);
  const out = await captured({ verbosity: "normal", format: "json" }, (r) => {
    r.emit({
      event: "error",
      message: `proxy refused ${password}`,
      detail: JSON.stringify({ echo: password }),
    });
    r.emit({ event: "warning", message: `\x9b2J ${JSON.stringify(JSON.stringify(password))}` });
  });
  for (const line of out.trimEnd().split("\n")) {
    const event = JSON.parse(line);
    assert.ok(!JSON.stringify(event).includes(password.slice(0, 16)), line);
  }
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(out, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
});
