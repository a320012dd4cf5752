/**
 * HEC's documented answers, as the HEC destination names them (lib/destinations/splunk_hec.ts):
 * what fails at once (tokens, data format naming the record, index, acknowledgement off), what is
 * retried (server busy, 429, 5xx), and the exact epoch seconds of `time`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { TransientError } from "../lib/errors.ts";
import type { BatchItem } from "../lib/destinations/_batching.ts";
import { epochSeconds, type HecAnswer, HecProtocol } from "../lib/destinations/splunk_hec.ts";

const protocol = new HecProtocol({
  url: new URL("https://splunk.example:8088/"),
  token: "t",
  channel: "c",
  index: "oai",
  host: "h",
  requireAck: false,
  ackTimeoutMs: 1000,
});

function answer(status: number, body: HecAnswer) {
  const text = JSON.stringify(body);
  return [
    { status, text, headers: new Headers(), url: new URL("https://splunk.example:8088/") },
    body,
  ] as const;
}

const items = ["e0", "e1", "e2"].map((eventId, i) => ({
  eventId,
  eventType: "AUDIT_LOG",
  fileId: "eclf_9",
  line: i + 1,
  recordBytes: 10,
  source: new Uint8Array(),
  start: 0,
  end: 0,
})) as BatchItem[];

test("invalid data format names the record by invalid-event-number", () => {
  const error = protocol.failure(
    ...answer(400, { text: "Invalid data format", code: 6, "invalid-event-number": 1 }),
    items,
  );
  assert.equal(error.kind, "api");
  assert.match(
    error.message,
    /refused event e1 \(line 2 of AUDIT_LOG file eclf_9\) as an invalid data format/,
  );
});

test("token, index and acknowledgement errors fail at once; busy answers are retried", () => {
  const cases: Array<[number, HecAnswer, RegExp, boolean]> = [
    [403, { text: "Token disabled", code: 1 }, /it is disabled/, false],
    [403, { text: "Invalid token", code: 4 }, /refused the token/, false],
    [401, { text: "Token is required", code: 2 }, /refused the token/, false],
    [400, { text: "Incorrect index", code: 7 }, /refused the index "oai"/, false],
    [400, { text: "ACK is disabled", code: 14 }, /run without --hec-ack/, false],
    [503, { text: "Server is busy", code: 9 }, /is busy/, true],
    [429, { text: "Too many requests" }, /is busy/, true],
    [500, { text: "Internal server error", code: 8 }, /is busy/, true],
  ];
  for (const [status, body, pattern, transient] of cases) {
    const error = protocol.failure(...answer(status, body), items);
    assert.match(error.message, pattern, JSON.stringify(body));
    assert.equal(error instanceof TransientError, transient, JSON.stringify(body));
    if (status === 403 || status === 401) assert.equal(error.kind, "auth");
  }
});

test("time is the timestamp's epoch seconds with its microseconds, exactly", () => {
  assert.equal(epochSeconds("2026-07-01T23:07:44.028687Z"), "1782947264.028687");
  assert.equal(epochSeconds("2026-07-01T23:00:00Z"), "1782946800.000000");
  assert.equal(epochSeconds("2026-07-02T01:00:00.5+02:00"), "1782946800.500000");
  assert.equal(epochSeconds("yesterday"), undefined);
  assert.equal(epochSeconds(17), undefined);
});
