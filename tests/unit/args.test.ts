import { test } from "node:test";
import assert from "node:assert/strict";
import { KNOWN_EVENT_TYPES } from "../../lib/commands/_arguments.ts";
import { parseRunArgs } from "../../lib/commands/run.ts";

const env = { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" };
const NOW = new Date("2026-07-10T00:00:00Z");

function run(argv: string[], e: Record<string, string> = env) {
  const settings = parseRunArgs(argv, e, NOW);
  assert.ok(settings, "a run, not --help");
  return settings;
}

test("the four positionals map as in the scripts, with org- ids to organizations", () => {
  const c = run(["org-abc", "AUTH_LOG", "50", "2026-07-09T00:00:00Z"]);
  assert.equal(c.scope, "organizations");
  assert.deepEqual(c.eventTypes, ["AUTH_LOG"]);
  assert.equal(c.limit, 50);
  assert.equal(c.after?.iso, "2026-07-09T00:00:00Z");
  assert.equal(run(["f7f33107-5fb9", "AUTH_LOG", "1", "2026-07-09"]).scope, "workspaces");
  assert.equal(c.apiBase.href, "https://api.chatgpt.com/v1/compliance");
});

test("--after makes limit and after optional; limit defaults to the API maximum", () => {
  const c = run(["--after", "24h", "ws-1", "AUTH_LOG"]);
  assert.equal(c.limit, 100);
  assert.equal(c.after?.iso, "2026-07-09T00:00:00Z");
  assert.throws(() => parseRunArgs(["ws-1", "AUTH_LOG"], env, NOW), /missing <after>/);
});

test("several event types and 'all' are accepted", () => {
  assert.deepEqual(run(["ws-1", "AUTH_LOG,AUDIT_LOG", "5", "1h"]).eventTypes, [
    "AUTH_LOG",
    "AUDIT_LOG",
  ]);
  assert.deepEqual(run(["ws-1", "all", "5", "1h"]).eventTypes, KNOWN_EVENT_TYPES);
});

test("the API base must be https except on loopback", () => {
  assert.equal(
    run(["ws-1", "AUTH_LOG", "5", "1h", "--api-base", "http://127.0.0.1:8080/v1/compliance/"])
      .apiBase.href,
    "http://127.0.0.1:8080/v1/compliance",
  );
  assert.throws(
    () => run(["ws-1", "AUTH_LOG", "5", "1h", "--api-base", "http://example.com/v1"]),
    /must use https/,
  );
});

test("the key comes from COMPLIANCE_API_KEY_FILE when the variable is unset, trimmed", async () => {
  const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = await mkdtemp(join(tmpdir(), "oai-key-"));
  try {
    await writeFile(join(dir, "key"), "  sk-from-file-0123456789abcdef\n");
    assert.equal(
      run(["ws-1", "AUTH_LOG", "5", "1h"], { COMPLIANCE_API_KEY_FILE: join(dir, "key") }).key,
      "sk-from-file-0123456789abcdef",
    );
    assert.throws(
      () => run(["ws-1", "AUTH_LOG", "5", "1h"], { COMPLIANCE_API_KEY_FILE: join(dir, "missing") }),
      /cannot read COMPLIANCE_API_KEY_FILE/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("conflicting or incomplete options are usage errors", () => {
  const cases: Array<[string[], RegExp]> = [
    [["ws-1", "AUTH_LOG", "5", "1h", "-o", "a", "--output-dir", "b"], /cannot be used together/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--gzip"], /--gzip needs --output-dir/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--follow"], /--follow needs --state/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--concurrency", "0"], /--concurrency must be an integer/],
    [["ws-1", "AUTH_LOG", "5", "2026-07-09", "--before", "2026-07-08"], /must be later/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--log-format", "xml"], /plain or json/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseRunArgs(argv, env, NOW), message, argv.join(" "));
  }
});
