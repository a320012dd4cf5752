/**
 * Records sent from their bytes (lib/destinations/lines.ts `scanJsonRecord`, the batch buffer of
 * lib/destinations/_batching.ts): the scanner takes exactly what `JSON.parse` of a strict UTF-8
 * decoding takes, and reads `event_id` and `timestamp` as it does; and the batches HEC and
 * `_bulk` send from a record's bytes are byte for byte what their text path makes of the same
 * record (escapes, tabs, non-ASCII, a line that is not UTF-8 or not JSON, a record larger than
 * the batch).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  BatchingDestination,
  type BatchItem,
  type BatchProtocol,
  encodedText,
  joinItems,
  type RecordOrigin,
  type SendOutcome,
} from "../../lib/destinations/_batching.ts";
import { BulkProtocol } from "../../lib/destinations/elasticsearch.ts";
import { scanJsonRecord } from "../../lib/destinations/lines.ts";
import { HecProtocol } from "../../lib/destinations/splunk_hec.ts";
import type { FileSpool } from "../../lib/destinations/spool.ts";

const encoder = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder();

/** What JSON.parse makes of the bytes: undefined when it refuses them. */
function parsed(bytes: Uint8Array) {
  let value: unknown;
  try {
    value = JSON.parse(strict.decode(bytes));
  } catch {
    return undefined;
  }
  const object = value !== null && typeof value === "object" && !Array.isArray(value);
  const fields = (object ? value : {}) as Record<string, unknown>;
  const text = (v: unknown) => typeof v === "string" ? v : undefined;
  return { object, eventId: text(fields.event_id), timestamp: text(fields.timestamp) };
}

const SEEDS = [
  '{"event_id":"e1","timestamp":"2026-07-01T00:00:00Z","a":[1,2.5,-3e10,{"b":null}],"c":true}',
  '{"event_id":"\u00e9\\u00e9","n":-0.0e+1,"s":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
  '[1,{"event_id":"x"}]',
  '"a string"',
  "12",
  " { } ",
  '{"timestamp":1,"event_id":{"x":1}}',
  '{"a":"\u{1F600}\u20ac","event_id":"x","event_id":"y"}',
  '{"\\u0065vent_id":"z"}',
  "null",
  '{"a":[[],{},[{}]],\t"event_id" : "t"}',
];
const ALPHABET = encoder.encode('{}[]":,\\ \t-+.0123456789eEtrufalsn\u00e9x\r');

test("scanJsonRecord takes what JSON.parse takes and reads event_id and timestamp as it does", () => {
  let seed = 0x2545f491;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let accepted = 0;
  for (let round = 0; round < 40_000; round++) {
    const bytes = Array.from(encoder.encode(SEEDS[round % SEEDS.length]));
    // Each case a few mutations: a byte dropped, inserted, replaced (any value), a run repeated.
    for (let m = round < SEEDS.length ? 0 : 1 + random(3); m > 0; m--) {
      const at = random(bytes.length + 1);
      const op = random(4);
      if (op === 0) bytes.splice(at, 1);
      else if (op === 1) bytes.splice(at, 0, ALPHABET[random(ALPHABET.length)]);
      else if (op === 2) bytes[Math.min(at, bytes.length - 1)] = random(256);
      else bytes.splice(at, 0, ...bytes.slice(random(bytes.length), random(bytes.length)));
    }
    const record = Uint8Array.from(bytes);
    const want = parsed(record);
    const facts = scanJsonRecord(record);
    const shown = JSON.stringify(lenient.decode(record));
    assert.equal(facts !== undefined, want !== undefined, `valid JSON or not: ${shown}`);
    if (!facts || !want) continue;
    accepted++;
    assert.equal(facts.object, want.object, shown);
    if (!facts.unusual) {
      assert.equal(facts.eventId, want.object ? want.eventId : undefined, shown);
      assert.equal(facts.timestamp, want.object ? want.timestamp : undefined, shown);
    }
  }
  assert.ok(accepted > 1_000, `only ${accepted} valid cases`);
});

/** Sends nothing: keeps each batch's body, and tells whether records came from their bytes. */
class Recording implements BatchProtocol {
  readonly name = "the test collector";
  readonly sizeHint = "raise its limit";
  readonly bodies: Uint8Array[] = [];
  fromBytes = 0;
  constructor(private readonly inner: BatchProtocol) {}
  encode(record: string, origin: RecordOrigin) {
    return this.inner.encode(record, origin);
  }
  encodeBytes(record: Uint8Array, origin: RecordOrigin) {
    const encoded = this.inner.encodeBytes?.(record, origin);
    if (encoded) this.fromBytes++;
    return encoded;
  }
  send(items: readonly BatchItem[]): Promise<SendOutcome> {
    this.bodies.push(joinItems(items).slice());
    return Promise.resolve({ kind: "accepted" });
  }
}

const RECORDS = [
  '{"event_id":"e1","timestamp":"2026-07-01T00:00:00.123456Z","text":"say \\"hi\\" \\\\ back"}',
  '{"event_id":"e2",\t"timestamp":"2026-07-01T00:00:01Z","name":"Zo\u00eb \u{1F600} \u20ac"}',
  '{"event_id":"e3","nested":{"timestamp":"not this one"},"n":[1,2,{"x":null}]}',
  '{"event_id":"\\u0065\\u0034","timestamp":"2026-07-01T00:00:02Z"}',
  `{"event_id":"e5","big":"${"x".repeat(3000)}"}`,
];

async function bodiesOf(inner: BatchProtocol, lines: Uint8Array[], maxBytes: number) {
  const protocol = new Recording(inner);
  const destination = await BatchingDestination.create(protocol, {
    maxCount: 1000,
    maxBytes,
    inFlight: 2,
  });
  const content = new Uint8Array(lines.reduce((n, line) => n + line.length + 1, 0));
  let at = 0;
  for (const line of lines) {
    content.set(line, at);
    content[at + line.length] = 0x0a;
    at += line.length + 1;
  }
  const spool = await destination.spool();
  await spool.write(content);
  let confirmed = false;
  await destination.deliver({
    file: { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-01T01:00:00Z" },
    eventType: "AUTH_LOG",
    spool: spool as FileSpool,
    downloaded: { bytes: content.length, lastByte: 0x0a } as never,
    receipt: { confirm: () => confirmed = true, reject: (error) => assert.fail(String(error)) },
  });
  await destination.finish();
  assert.ok(confirmed, "the file was confirmed");
  return { protocol, body: lenient.decode(Buffer.concat(protocol.bodies)) };
}

/** What the text path makes of `lines`, one after another. */
function expected(protocol: BatchProtocol, lines: Uint8Array[]): string {
  return lines.map((line, i) => {
    const text = lenient.decode(line);
    const origin = { eventType: "AUTH_LOG", fileId: "eclf_1", line: i + 1 };
    return encodedText(protocol.encode(text, origin), text);
  }).join("");
}

const url = new URL("http://127.0.0.1:9/");
const protocols: Array<[string, () => BatchProtocol]> = [
  ["_bulk, the integration's shape", () =>
    new BulkProtocol({
      url,
      flavor: "elasticsearch",
      document: "message",
      authorization: "ApiKey x",
    })],
  ["_bulk, parsed", () =>
    new BulkProtocol({
      url,
      flavor: "elasticsearch",
      document: "parsed",
      authorization: "ApiKey x",
    })],
  ["HEC", () =>
    new HecProtocol({
      url,
      token: "t",
      channel: "c",
      host: "h",
      requireAck: false,
      ackTimeoutMs: 1000,
    })],
];

for (const [name, make] of protocols) {
  test(`${name}: batches made from a record's bytes are what its text path makes`, async () => {
    const lines = RECORDS.map((record) => encoder.encode(record));
    if (name === "HEC") {
      // HEC takes what is not JSON, as a string: one that is not UTF-8 either.
      lines.push(encoder.encode('not JSON \\ "quoted"'));
      lines.push(
        Uint8Array.from([...encoder.encode('{"event_id":"e9","bad":"'), 0xff, 0x22, 0x7d]),
      );
    }
    // A batch smaller than a record: its buffer grows, and it still is the same bytes.
    for (const maxBytes of [1 << 20, 256]) {
      const { protocol, body } = await bodiesOf(make(), lines, maxBytes);
      assert.equal(body, expected(make(), lines));
      if (name !== "_bulk, parsed") assert.ok(protocol.fromBytes >= 4, `${protocol.fromBytes}`);
    }
  });
}
