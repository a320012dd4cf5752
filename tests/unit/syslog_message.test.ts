import { test } from "node:test";
import assert from "node:assert/strict";
import {
  codeOf,
  eventIdIn,
  FACILITIES,
  octetFrame,
  OctetFrameReader,
  priorityOf,
  recordFacts,
  recordTimestamp,
  SEVERITIES,
  syslogFrame,
  syslogHeader,
  syslogMessage,
  syslogTimestamp,
} from "../../lib/syslog/message.ts";
import { readRecords } from "../../lib/syslog/records.ts";
import { parseSyslogTarget } from "../../lib/destinations/syslog.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("syslog: an RFC 5424 message has PRI, version, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, no SD and the record as MSG", () => {
  const header = syslogHeader({
    priority: priorityOf(16, 6),
    hostname: "host one",
    procId: "42",
    msgId: "AUTH_LOG",
  });
  const record = encode('{"event_id":"e1","timestamp":"2026-07-01T12:00:00.5Z","x":"é"}');
  const facts = recordFacts(record);
  assert.deepEqual(facts, { timestamp: "2026-07-01T12:00:00.500000Z", eventId: "e1" });
  const message = syslogMessage(header, facts.timestamp, record);
  assert.equal(
    decode(message),
    "<134>1 2026-07-01T12:00:00.500000Z host_one oai-compliance-logs 42 AUTH_LOG - " +
      '{"event_id":"e1","timestamp":"2026-07-01T12:00:00.5Z","x":"é"}',
  );
  // No byte order mark before MSG: the record's bytes follow the header unchanged.
  assert.deepEqual(message.subarray(message.length - record.length), record);
});

test("syslog: octet-counting frames count bytes, not characters, and read back exactly", () => {
  const header = syslogHeader({ priority: 14, hostname: "h", procId: "1", msgId: "X" });
  const record = encode('{"a":"€€"}');
  const frame = syslogFrame(header, "-", record);
  const message = syslogMessage(header, "-", record);
  assert.equal(decode(frame), `${message.length} ${decode(message)}`);
  assert.deepEqual(octetFrame(message), frame);
  const reader = new OctetFrameReader();
  const both = new Uint8Array([...frame, ...frame]);
  assert.deepEqual(reader.push(both.subarray(0, 7)), []);
  const got = reader.push(both.subarray(7));
  assert.deepEqual(got.map(decode), [decode(message), decode(message)]);
});

test("syslog: TIMESTAMP comes from the record's timestamp in UTC with microseconds, or is '-'", () => {
  assert.equal(
    syslogTimestamp("2026-07-01T14:00:00.123456789+02:00"),
    "2026-07-01T12:00:00.123456Z",
  );
  assert.equal(syslogTimestamp("2026-07-01T00:00:00Z"), "2026-07-01T00:00:00.000000Z");
  assert.equal(syslogTimestamp("yesterday"), "-");
  assert.equal(syslogTimestamp(17), "-");
  assert.deepEqual(recordFacts(encode("not json")), { timestamp: "-" });
  assert.deepEqual(recordFacts(encode("[1]")), { timestamp: "-" });
});

test("syslog: the timestamp is read from the record's top level only, without a JSON parse", () => {
  const of = (text: string) => recordTimestamp(encode(text));
  assert.equal(
    of('{"event_id":"e","timestamp":"2026-07-01T00:00:00.25Z"}'),
    "2026-07-01T00:00:00.250000Z",
  );
  assert.equal(of('{ "timestamp" : "2026-07-01T00:00:00Z" }'), "2026-07-01T00:00:00.000000Z");
  // Nested objects, arrays and strings that look like keys are passed over.
  assert.equal(
    of(
      '{"a":{"timestamp":"2020-01-01T00:00:00Z"},"b":["timestamp",{"timestamp":"x"}],' +
        '"c":"\\"timestamp\\":\\"2020\\"","timestamp":"2026-07-01T01:02:03Z"}',
    ),
    "2026-07-01T01:02:03.000000Z",
  );
  assert.equal(of('{"a":{"timestamp":"2020-01-01T00:00:00Z"}}'), "-");
  assert.equal(of('[{"timestamp":"2026-07-01T00:00:00Z"}]'), "-");
  assert.equal(of('{"timestamp":17}'), "-");
  assert.equal(of("plain text"), "-");
  assert.equal(of('{"timestamp":"2026-07-01T00:00:00Z'), "-");
  // It agrees with a real parse.
  const record =
    '{"event_id":"x","type":"AUTH_LOG","timestamp":"2026-07-01T14:00:00.123456+02:00"}';
  assert.equal(of(record), recordFacts(encode(record)).timestamp);
});

test("syslog: header fields are printable ASCII without spaces, MSGID at most 32", () => {
  const header = syslogHeader({
    priority: 0,
    hostname: "",
    procId: "1",
    msgId: "A".repeat(40),
  });
  assert.equal(decode(header.tail), ` - oai-compliance-logs 1 ${"A".repeat(32)} - `);
});

test("syslog: facilities and severities by name, alias or number", () => {
  assert.equal(codeOf("local0", FACILITIES), 16);
  assert.equal(codeOf("LOCAL7", FACILITIES), 23);
  assert.equal(codeOf("security", FACILITIES), 4);
  assert.equal(codeOf("23", FACILITIES), 23);
  assert.equal(codeOf("24", FACILITIES), undefined);
  assert.equal(codeOf("info", SEVERITIES), 6);
  assert.equal(codeOf("warn", SEVERITIES), 4);
  assert.equal(codeOf("8", SEVERITIES), undefined);
  assert.equal(codeOf("loud", SEVERITIES), undefined);
  assert.equal(priorityOf(23, 7), 191);
});

test("syslog: the event_id of a record too large is read from its first bytes", () => {
  assert.equal(eventIdIn(encode('{"event_id":"abc-1","text":"')), "abc-1");
  assert.equal(eventIdIn(encode('{"text":"x"')), undefined);
});

test("syslog: syslog+ URLs name host and port, with defaults, and nothing else", () => {
  assert.deepEqual(parseSyslogTarget("syslog+tcp://127.0.0.1:5514"), {
    scheme: "syslog+tcp",
    host: "127.0.0.1",
    port: 5514,
  });
  assert.equal(parseSyslogTarget("syslog+tls://logs.example").port, 6514);
  assert.equal(parseSyslogTarget("syslog+relp://[::1]").host, "::1");
  assert.throws(() => parseSyslogTarget("syslog+tcp://u:p@h:1"), /no path, query or user/);
  assert.throws(() => parseSyslogTarget("syslog+tcp://h:1/x"), /no path/);
  assert.throws(() => parseSyslogTarget("syslog+udp://h:1"), /syslog\+tcp/);
});

async function records(text: string | Uint8Array[], max = 20) {
  const chunks = typeof text === "string" ? [encode(text)] : text;
  const out = [];
  for await (const item of readRecords(ReadableStream.from(chunks), max)) {
    out.push(
      item.kind === "record"
        ? { line: item.line, record: decode(item.bytes) }
        : { line: item.line, size: item.size, head: decode(item.head).slice(0, 5) },
    );
  }
  return out;
}

test("syslog: records are lines without LF or CRLF; blank lines are not records", async () => {
  assert.deepEqual(await records("a\r\n\n  \r\nb\nc"), [
    { line: 1, record: "a" },
    { line: 4, record: "b" },
    { line: 5, record: "c" },
  ]);
  // Split anywhere, even between CR and LF.
  assert.deepEqual(await records([encode("ab\r"), encode("\ncd"), encode("e\n")]), [
    { line: 1, record: "ab" },
    { line: 2, record: "cde" },
  ]);
});

test("syslog: a line over the limit is reported with its size and head, never held whole", async () => {
  const long = "x".repeat(25);
  assert.deepEqual(await records(`ok\n${long}\r\nafter\n`), [
    { line: 1, record: "ok" },
    { line: 2, size: 26, head: "xxxxx" },
    { line: 3, record: "after" },
  ]);
  // Exactly at the limit (a CR aside) is fine.
  assert.deepEqual(await records(`${"y".repeat(20)}\r\n`), [{ line: 1, record: "y".repeat(20) }]);
  const big = Array.from({ length: 100 }, () => encode("z".repeat(100_000)));
  const [item] = await records(big, 1000);
  assert.deepEqual(item, { line: 1, size: 10_000_000, head: "zzzzz" });
});
