/**
 * The API's refusals point at the common mistakes: a key without the Compliance scope (401, naming
 * where the key came from), a type the key is not authorized for (403, naming that type's scope),
 * a wrong API base path or an unknown principal (404 on the listing), a type of the other route
 * (400), and a 404 for one file that is not taken for an unknown workspace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { COMPLIANCE_READ_SCOPE, scopeForType } from "../lib/event_types.ts";
import { runCli } from "./helpers/cli.ts";
import { SLOW } from "./helpers/mod.ts";
import { type Handler, json, logFile, page, startHostile } from "./hostile/mod.ts";

const WORKSPACE = "ws-0f0e0d0c-demo";
/** A week ago: recent enough that no retention warning joins the output. */
const AFTER = new Date(Date.now() - 7 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, "Z");
const LEGACY_SCOPE = "chatgpt.enterprise.compliance_export.read";
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Runs the CLI once against a hostile API whose listing answers with `list`. */
async function runAgainst(
  script: { list?: Handler; download?: Handler; storage?: Handler },
  args: string[],
  env: Record<string, string> = {},
) {
  const h = await startHostile(script);
  try {
    const r = await runCli(args, { env: h.env(env), timeoutMs: 60_000 });
    return { r, requests: h.requests };
  } finally {
    await h.close();
  }
}

const CASES = [
  {
    status: 401,
    body: { error: { message: "invalid key" } },
    hint: new RegExp(
      `hint: the API did not accept the key from COMPLIANCE_API_KEY.*Admin API key.*` +
        `${escape(scopeForType("AUTH_LOG"))} or ${escape(COMPLIANCE_READ_SCOPE)}.*` +
        escape(LEGACY_SCOPE),
    ),
  },
  {
    status: 403,
    body: { error: { message: "not authorized for event type" } },
    hint: new RegExp(
      `hint: the key may not read AUTH_LOG of this principal.*` +
        `${escape(scopeForType("AUTH_LOG"))} or ${escape(COMPLIANCE_READ_SCOPE)}.*` +
        `the one the key was created for`,
    ),
  },
  {
    status: 404,
    body: { detail: "Workspace not found" },
    hint: /hint: the API knows no such workspace or organization.*org-/,
  },
];

for (const { status, body, hint } of CASES) {
  test(
    `an HTTP ${status} on the listing says what is usually wrong, in plain and JSON logs`,
    SLOW,
    async () => {
      for (const format of ["plain", "json"]) {
        const { r } = await runAgainst(
          { list: () => json(body, status) },
          [WORKSPACE, "AUTH_LOG", "10", AFTER, "--log-format", format],
        );
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`HTTP error ${status} while listing logs`));
        assert.match(r.stderr, hint);
        // An Admin key with the compliance scope is exactly what a user creates.
        assert.doesNotMatch(r.stderr, /admin key or an ordinary API key is not one/i);
      }
    },
  );
}

test(
  "a bare Not Found on the listing names a wrong API base path and an unknown principal",
  SLOW,
  async () => {
    const { r } = await runAgainst(
      { list: () => json({ detail: "Not Found" }, 404) },
      [WORKSPACE, "AUTH_LOG", "10", AFTER],
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /hint: .*either the API base path is wrong \(check COMPLIANCE_API_BASE or --api-base.*\), or the API knows no such workspace or organization/,
    );
  },
);

test(
  "a 400 for a workspace type on an organization is one line naming the org's types",
  SLOW,
  async () => {
    const { r, requests } = await runAgainst(
      { list: () => json({ detail: "AUTH_LOG is a workspace-scoped event type" }, 400) },
      ["org-demoorg123", "AUTH_LOG", "10", AFTER],
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /AUTH_LOG is a workspace event type; organizations \(org-\.\.\.\) carry APP_LOG, APP_AUTH_LOG, COSTS/,
    );
    assert.doesNotMatch(r.stderr, /HTTP error 400/);
    assert.ok(requests.length <= 1, "asked at most once");
  },
);

test("a 403 on one file's download is an auth error naming that type's scope", SLOW, async () => {
  const { r, requests } = await runAgainst(
    {
      list: () => page([logFile("eclf_1", new Date(Date.now() - 86_400_000).toISOString())]),
      download: () => json({ error: "forbidden" }, 403),
    },
    [WORKSPACE, "AUTH_LOG", "10", AFTER],
  );
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /HTTP error 403 while downloading log id=eclf_1/);
  assert.ok(r.stderr.includes(scopeForType("AUTH_LOG")), r.stderr);
  assert.equal(requests.filter((q) => q.path.endsWith("/logs/eclf_1")).length, 1);
});

test(
  "a 404 for one recent file is asked three times, not taken for an unknown workspace",
  SLOW,
  async () => {
    const { r, requests } = await runAgainst(
      {
        list: () => page([logFile("eclf_1", new Date(Date.now() - 86_400_000).toISOString())]),
        download: () => json({ error: "not found" }, 404),
      },
      [WORKSPACE, "AUTH_LOG", "10", AFTER],
      { OAI_COMPLIANCE_GONE_RETRY_MS: "20" },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /no such workspace/);
    assert.match(r.stderr, /eclf_1 .*listed but cannot be downloaded/);
    assert.equal(requests.filter((q) => q.path.endsWith("/logs/eclf_1")).length, 3);
  },
);
