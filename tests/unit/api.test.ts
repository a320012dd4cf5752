import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  ComplianceClient,
  type ComplianceClientSettings,
  httpError,
  LEGACY_COMPLIANCE_SCOPE,
  otherRouteLine,
  parseListPage,
} from "../../lib/api.ts";
import { FileNotFoundError } from "../../lib/download.ts";
import { DownloadPace } from "../../lib/download_pace.ts";
import { TransientError } from "../../lib/errors.ts";
import { COMPLIANCE_READ_SCOPE, scopeForType } from "../../lib/event_types.ts";
import type { Opened } from "../../lib/http.ts";
import type { LogFile } from "../../lib/log_file.ts";

function client(principal: string, scope: "workspaces" | "organizations") {
  return new ComplianceClient({
    apiBase: new URL("https://api.chatgpt.com/v1/compliance"),
    key: "sk-test",
    principal,
    scope,
    policy: { retries: 0, backoffMs: 1, maxWaitMs: 1 },
    timeoutMs: 1000,
    onRetry: () => {},
  });
}

test("list URLs carry limit, event_type, after and before, encoded", () => {
  const url = client("org-abc", "organizations").listUrl({
    eventType: "AUTH_LOG",
    limit: 100,
    after: "2026-07-09T00:00:00+02:00",
    before: "2026-07-10T00:00:00Z",
  });
  assert.equal(
    url.origin + url.pathname,
    "https://api.chatgpt.com/v1/compliance/organizations/org-abc/logs",
  );
  assert.equal(url.searchParams.get("after"), "2026-07-09T00:00:00+02:00");
  assert.match(url.search, /after=2026-07-09T00%3A00%3A00%2B02%3A00/);
  assert.equal(url.searchParams.get("before"), "2026-07-10T00:00:00Z");
  assert.equal(url.searchParams.get("limit"), "100");
});

test("the key is attached only for the API's own origin", () => {
  const c = client("ws-1", "workspaces");
  assert.equal(c.headersFor(c.logsUrl("eclf_1")).authorization, "Bearer sk-test");
  assert.equal(c.headersFor(new URL("https://files.example.net/x?sig=1")).authorization, undefined);
  assert.equal(c.headersFor(new URL("http://api.chatgpt.com/v1/x")).authorization, undefined);
});

test("list answers are parsed defensively, including several JSON documents", () => {
  const doc = JSON.stringify({
    data: [{
      id: "eclf_1",
      event_type: "AUTH_LOG",
      end_time: "2026-07-09T13:00:00Z",
      file_size: 3,
      file_sha256: "A".repeat(64),
    }],
    has_more: false,
    last_end_time: "2026-07-09T13:00:00.000000Z",
  });
  const page = parseListPage(doc + "\n" + doc, "listing");
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].file_sha256, "a".repeat(64));
  assert.equal(
    parseListPage('{"data":[],"has_more":false,"last_end_time":null}', "l").last_end_time,
    null,
  );
});

test("malformed list answers and unsafe ids are refused with a clear message", () => {
  const bad = [
    ["<html>", /not JSON/],
    ['{"items":[]}', /no 'data' array/],
    ['{"data":[],"has_more":"yes"}', /'has_more' is not a boolean/],
    ['{"data":[{"id":"../etc/passwd","end_time":"2026-07-09T13:00:00Z"}]}', /not a safe file id/],
    ['{"data":[{"id":"eclf_1","end_time":"yesterday"}]}', /end_time of eclf_1/],
    ['{"data":[{"id":"eclf_1","end_time":"2026-07-09T13:00:00Z","file_size":-1}]}', /file_size/],
    ['{"data":[],"last_end_time":"soon"}', /last_end_time/],
  ] as const;
  for (const [text, message] of bad) {
    assert.throws(() => parseListPage(text, "listing logs"), message, text);
  }
});

/** An answer as `openRequest` would hand it over, from the API's origin unless `url` says. */
function answer(status: number, body: string, url = "https://api.chatgpt.com/v1/compliance/x") {
  const opened: Opened = {
    response: new Response(body, { status }),
    url: new URL(url),
    startedAt: performance.now(),
    abort: () => {},
  };
  return opened;
}

const TYPE_CONTEXT = {
  eventType: "AUTH_LOG",
  keySource: "COMPLIANCE_API_KEY_FILE /run/secrets/key",
};

test("a 401 hint names where the key came from and the scopes it needs, per type", async () => {
  const error = await httpError(
    answer(401, '{"error":"bad key"}'),
    "listing logs",
    1000,
    TYPE_CONTEXT,
  );
  assert.equal(error.kind, "auth");
  const hint = error.detail!.split("\n").at(-1)!;
  assert.match(hint, /^hint: .*key from COMPLIANCE_API_KEY_FILE \/run\/secrets\/key;/);
  assert.ok(hint.includes(scopeForType("AUTH_LOG")), hint);
  assert.ok(hint.includes(COMPLIANCE_READ_SCOPE), hint);
  assert.ok(hint.includes(LEGACY_COMPLIANCE_SCOPE), hint);
  assert.match(hint, /Admin API key/);
  assert.doesNotMatch(hint, /is not one|not a Compliance/);
  const unnamed = await httpError(answer(401, ""), "listing logs", 1000, {});
  assert.match(unnamed.detail!, /COMPLIANCE_API_KEY or COMPLIANCE_API_KEY_FILE/);
  assert.ok(!unnamed.detail!.includes(".auth_log."), "no per-type scope without a type");
});

test("a 403 hint names the refused type's scope and the all-types ones", async () => {
  const error = await httpError(answer(403, "{}"), "downloading log id=f", 1000, TYPE_CONTEXT);
  assert.equal(error.kind, "auth");
  assert.match(error.detail!, /hint: the key may not read AUTH_LOG of this principal/);
  assert.ok(error.detail!.includes(`${scopeForType("AUTH_LOG")} or ${COMPLIANCE_READ_SCOPE}`));
  assert.ok(error.detail!.includes(LEGACY_COMPLIANCE_SCOPE));
});

test("a bare Not Found on the listing names a wrong API base path as well as the id", async () => {
  const bare = await httpError(
    answer(404, '{"detail":"Not Found"}'),
    "listing logs",
    1000,
    TYPE_CONTEXT,
  );
  assert.match(
    bare.detail!,
    /hint: .*either the API base path is wrong .*--api-base.*, or the API knows no such workspace or organization/,
  );
  const known = await httpError(
    answer(404, '{"detail":"Workspace not found"}'),
    "listing logs",
    1000,
    TYPE_CONTEXT,
  );
  assert.match(known.detail!, /hint: the API knows no such workspace or organization/);
  assert.doesNotMatch(known.detail!, /base path/);
});

test("storage's answers get no hint about the API key", async () => {
  const error = await httpError(
    answer(401, "denied", "https://files.example/x"),
    "downloading",
    1000,
  );
  assert.equal(error.detail, "denied");
});

test("a type only the other route carries is named with the types this route has", () => {
  assert.equal(
    otherRouteLine("AUTH_LOG", "organizations"),
    "AUTH_LOG is a workspace event type; organizations (org-...) carry APP_LOG, APP_AUTH_LOG, COSTS",
  );
  assert.match(
    otherRouteLine("COSTS", "workspaces")!,
    /^COSTS is an organization event type; workspaces carry CONVERSATION_MESSAGE, /,
  );
  assert.equal(otherRouteLine("APP_LOG", "organizations"), undefined);
  assert.equal(otherRouteLine("NEW_TYPE_LOG", "workspaces"), undefined);
});

/** A loopback API answering every `logs/{id}` with `status` (a 307 to storage for 307). */
async function withApi(
  status: number,
  fn: (apiBase: URL, hits: () => number) => Promise<void>,
  headers: Record<string, string> = {},
) {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    if (status === 307) res.writeHead(307, { location: "http://127.0.0.1:9/files/f" }).end();
    else res.writeHead(status, headers).end('{"detail":"gone"}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  try {
    await fn(
      new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/compliance`),
      () => hits,
    );
  } finally {
    await new Promise((done) => server.close(done));
  }
}

function localClient(apiBase: URL, extra: Partial<ComplianceClientSettings> = {}) {
  return new ComplianceClient({
    apiBase,
    key: "sk-test",
    principal: "ws-1",
    scope: "workspaces",
    policy: { retries: 5, backoffMs: 1, maxWaitMs: 60_000 },
    timeoutMs: 5_000,
    onRetry: () => {},
    ...extra,
  });
}

const FILE: LogFile = { id: "f", event_type: "AUTH_LOG", end_time: "2026-11-30T00:00:00Z" };

test("resolving a download asks once; 503 and 404 are left to the download's one loop", async () => {
  await withApi(503, async (apiBase, hits) => {
    await assert.rejects(localClient(apiBase).resolveDownload(FILE), TransientError);
    assert.equal(hits(), 1, "no retry loop inside");
  });
  await withApi(404, async (apiBase, hits) => {
    await assert.rejects(localClient(apiBase).resolveDownload(FILE), FileNotFoundError);
    assert.equal(hits(), 1);
  });
});

test("copies made by withSignal share the run's one download pace", async () => {
  await withApi(307, async (apiBase, hits) => {
    const clock = {
      now: () => 0,
      sleep: () => Promise.reject(new Error("would wait for the pace")),
    };
    const pace = new DownloadPace(2, { windowMs: 60_000, clock });
    const client = localClient(apiBase, { downloadPace: pace });
    const copy = client.withSignal(new AbortController().signal);
    assert.equal((await client.resolveDownload(FILE)).pathname, "/files/f");
    await copy.resolveDownload(FILE);
    await assert.rejects(copy.resolveDownload(FILE), /would wait for the pace/);
    await assert.rejects(client.resolveDownload(FILE), /would wait for the pace/);
    assert.equal(hits(), 2, "the third request never left");
  });
});

test("a 429 on a download holds the whole pace back for its Retry-After", async () => {
  await withApi(429, async (apiBase) => {
    const pace = new DownloadPace(50, { windowMs: 60_000 });
    const client = localClient(apiBase, { downloadPace: pace });
    await assert.rejects(client.resolveDownload(FILE), TransientError);
    const delay = pace.delayMs();
    assert.ok(delay > 20_000 && delay <= 30_000, `paused for ${delay} ms`);
  }, { "retry-after": "30" });
});
