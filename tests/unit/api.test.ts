import { test } from "node:test";
import assert from "node:assert/strict";
import { ComplianceClient, parseListPage } from "../../lib/api.ts";

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
