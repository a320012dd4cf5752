import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRunArgs } from "../../lib/commands/run.ts";
import { parseListArgs } from "../../lib/commands/list.ts";
import { ORGANIZATION_EVENT_TYPES, WORKSPACE_EVENT_TYPES } from "../../lib/event_types.ts";

const env = { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" };
const NOW = new Date("2026-07-10T00:00:00Z");

function run(argv: string[], e: Record<string, string> = env) {
  const settings = parseRunArgs(argv, e, NOW);
  assert.ok(settings, "a run, not --help");
  return settings;
}

test("the four positionals map as in the scripts, with org- ids to organizations", () => {
  const c = run(["org-abc", "APP_LOG", "50", "2026-07-09T00:00:00Z"]);
  assert.equal(c.selection.scope, "organizations");
  assert.deepEqual(c.selection.eventTypes, ["APP_LOG"]);
  assert.equal(c.listing.limit, 50);
  assert.equal(c.selection.after?.iso, "2026-07-09T00:00:00Z");
  assert.equal(run(["f7f33107-5fb9", "AUTH_LOG", "1", "2026-07-09"]).selection.scope, "workspaces");
  assert.equal(c.client.apiBase.href, "https://api.chatgpt.com/v1/compliance");
});

test("--after makes limit and after optional; limit defaults to the API maximum", () => {
  const c = run(["--after", "24h", "ws-1", "AUTH_LOG"]);
  assert.equal(c.listing.limit, 100);
  assert.equal(c.selection.after?.iso, "2026-07-09T00:00:00Z");
  assert.throws(() => parseRunArgs(["ws-1", "AUTH_LOG"], env, NOW), /missing <after>/);
});

test("several event types; 'all' is the principal's own route's types", () => {
  assert.deepEqual(run(["ws-1", "AUTH_LOG,AUDIT_LOG", "5", "1h"]).selection.eventTypes, [
    "AUTH_LOG",
    "AUDIT_LOG",
  ]);
  const workspace = run(["ws-1", "all", "5", "1h"]).selection;
  assert.equal(workspace.all, true);
  assert.deepEqual(workspace.eventTypes, WORKSPACE_EVENT_TYPES);
  const organization = run(["org-abc", "ALL", "5", "1h"]).selection;
  assert.deepEqual(organization.eventTypes, ORGANIZATION_EVENT_TYPES);
  assert.deepEqual(organization.eventTypes, ["APP_LOG", "APP_AUTH_LOG", "COSTS"]);
});

test("an unknown but well-formed event type is asked for, with a warning naming the route's types", () => {
  const c = run(["org-abc", "NEW_LOG", "5", "1h"]);
  assert.deepEqual(c.selection.eventTypes, ["NEW_LOG"]);
  assert.match(c.warnings.join("\n"), /NEW_LOG .*organizations \(org-\.\.\.\) carry APP_LOG/);
});

test("the API base must be https except on loopback", () => {
  assert.equal(
    run(["ws-1", "AUTH_LOG", "5", "1h", "--api-base", "http://127.0.0.1:8080/v1/compliance/"])
      .client.apiBase.href,
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
    const c = run(["ws-1", "AUTH_LOG", "5", "1h"], { COMPLIANCE_API_KEY_FILE: join(dir, "key") });
    assert.equal(c.client.key, "sk-from-file-0123456789abcdef");
    assert.match(c.client.keySource, /COMPLIANCE_API_KEY_FILE '.*key'/);
    assert.throws(
      () => run(["ws-1", "AUTH_LOG", "5", "1h"], { COMPLIANCE_API_KEY_FILE: join(dir, "missing") }),
      /cannot read COMPLIANCE_API_KEY_FILE/,
    );
    const both = run(["ws-1", "AUTH_LOG", "5", "1h"], {
      ...env,
      COMPLIANCE_API_KEY_FILE: join(dir, "key"),
    });
    assert.equal(both.client.keySource, "COMPLIANCE_API_KEY");
    assert.match(both.warnings.join("\n"), /both COMPLIANCE_API_KEY and COMPLIANCE_API_KEY_FILE/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("conflicting or incomplete options are usage errors", () => {
  const cases: Array<[string[], RegExp]> = [
    [["ws-1", "AUTH_LOG", "5", "1h", "--gzip"], /--gzip needs --output-dir/],
    [["ws-1", "AUTH_LOG", "5", "1h", "-o", "x", "--gzip"], /--gzip needs --output-dir/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--follow"], /--follow needs --state/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--interval", "1m"], /--interval needs --follow/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--concurrency", "0"], /--concurrency must be an integer/],
    [["ws-1", "AUTH_LOG", "5", "2026-07-09", "--before", "2026-07-08"], /must be later/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--log-format", "xml"], /plain or json/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--retries", "-1"], /--retries must not be negative/],
    [["ws-1", "AUTH_LOG", "5", "1h", "--retries", "1000"], /--retries must be .*0 to 100/],
    [
      ["ws-1", "AUTH_LOG", "-5", "1h"],
      /-5 is not valid here: arguments that are numbers must not be negative/,
    ],
    [
      ["ws-1", "AUTH_LOG", "5", "1h", "--outptu", "x"],
      /unknown option --outptu; did you mean --output\?/,
    ],
    [["ws-1", "AUTH_LOG", "5", "1h", "--max-downloads-per-minute", "0"], /must be an integer/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseRunArgs(argv, env, NOW), message, argv.join(" "));
  }
});

test("a URL of a scheme no destination registered is a usage error listing what is supported", () => {
  for (const flag of ["--output-dir", "-o"]) {
    assert.throws(
      () => run(["ws-1", "AUTH_LOG", "5", "1h", flag, "nosuch+scheme://bucket/prefix"]),
      (error: Error & { kind?: string }) => {
        assert.equal(error.kind, "usage");
        assert.match(error.message, /no destination takes nosuch\+scheme:\/\/ URLs/);
        assert.match(error.message, /takes a local path/);
        return true;
      },
    );
  }
  // The message lists the schemes that are registered.
  assert.throws(
    () => run(["ws-1", "AUTH_LOG", "5", "1h", "--output-dir", "nosuch://b/p"]),
    /a URL of s3:\/\/, az:\/\//,
  );
});

test("Windows paths are paths, not URLs", () => {
  for (const path of ["C:\\logs", "C:/logs", "c:\\Users\\me\\logs"]) {
    const c = run(["ws-1", "AUTH_LOG", "5", "1h", "--output-dir", path]);
    assert.equal(c.destination.label, `--output-dir ${path}`);
    assert.equal(c.destination.guarantee, "confirmed");
    assert.equal(run(["ws-1", "AUTH_LOG", "5", "1h", "--state", path]).statePath, path);
  }
});

test("--state takes a local file, s3:// or az://: another URL is a usage error, for run and list alike", () => {
  const argv = ["ws-1", "AUTH_LOG", "5", "1h", "--state", "ftp://host/state.json"];
  assert.throws(
    () => run(argv),
    /--state takes a local file path, s3:\/\/BUCKET\/KEY.*ftp:\/\/ URLs are not supported/,
  );
  assert.throws(() => parseListArgs(argv, env, NOW), /--state takes a local file path/);
  const inStore = ["ws-1", "AUTH_LOG", "5", "1h", "--state", "s3://bucket/state.json"];
  assert.equal(parseListArgs(inStore, env, NOW)?.statePath, "s3://bucket/state.json");
});

test("--help of run and list shows each route's event types and the exit codes", async () => {
  const { HELP: runHelp } = await import("../../lib/commands/run.ts");
  const { HELP: listHelp } = await import("../../lib/commands/list.ts");
  for (const help of [runHelp, listHelp]) {
    assert.match(help, /workspaces carry CONVERSATION_MESSAGE, AUDIT_LOG, .*CUSTOM_AGENTS_LOG/);
    assert.match(help, /organizations \(org-\.\.\.\) carry APP_LOG, APP_AUTH_LOG, COSTS/);
  }
  assert.match(runHelp, /4 done but some listed/);
  assert.match(runHelp, /--max-downloads-per-minute N/);
});
