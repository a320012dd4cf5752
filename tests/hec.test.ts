/**
 * `-o hec+https://...` (issue 19) end to end: the real CLI against the Compliance API emulator
 * and the HEC emulator (tests/siem/hec_emulator.ts; Splunk itself is not what these run against).
 * Events are shaped for the OpenAI Compliance Add-on, sent gzip-compressed on one channel per
 * run, confirmed only once acknowledged (late and out of order), sent again when an
 * acknowledgement never comes; HEC's error codes fail at once or are retried as documented; a
 * 413 halves the batch and a record too large alone fails naming its event_id.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Emulator, FileSpec } from "./emulator/mod.ts";
import { hourlyFiles, idsOf, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { errorLine, recordsOf, runInto, withSiem } from "./helpers/siem.ts";
import { type HecEmulatorOptions, startHecEmulator } from "./siem/hec_emulator.ts";

const TOKEN = "3f0c5a2e-7b1d-4c9e-8a6f-0d2b4e6c8a10";
const FILES = hourlyFiles(6, { sizes: [1500, 0, 40_000, 333] });
type Hec = Awaited<ReturnType<typeof startHecEmulator>>;

/** The HEC emulator with `options`, beside the API emulator serving `files`, for `fn`. */
function withHec<T>(
  options: HecEmulatorOptions,
  files: FileSpec[],
  fn: (hec: Hec, emulator: Emulator) => Promise<T>,
): Promise<T> {
  return withSiem(files, () => startHecEmulator(options), fn);
}

function run(
  emulator: Emulator,
  target: string,
  extra: string[] = [],
  env: Record<string, string | undefined> = {},
) {
  return runInto(emulator, target, extra, { SPLUNK_HEC_TOKEN: TOKEN, ...env });
}

test(
  "README example: every record arrives once, shaped for the add-on, acknowledged late and out of order",
  SLOW,
  async () => {
    await withHec(
      {
        tokens: { [TOKEN]: { ack: true } },
        // Later ackIds come first: acknowledgement out of order.
        ackDelayMs: (ackId) => Math.max(0, 600 - 150 * ackId),
      },
      FILES,
      async (hec, emulator) => {
        const r = await run(emulator, hec.target, [
          "--hec-index",
          "oai",
          "--hec-batch-events",
          "20",
        ]);
        assert.equal(r.code, 0, r.stderr);
        const want = await recordsOf(emulator, idsOf(emulator));
        assert.equal(hec.events.length, want.length);
        // Each event is the record itself (batches in flight at once may land in any order).
        assert.deepEqual(
          hec.events.map((e) => JSON.stringify(e.event.event)).sort(),
          want.map((w) => JSON.stringify(JSON.parse(w))).sort(),
        );
        const record = JSON.parse(want[0]);
        // Batches in flight at once may land in any order: the event of the first record.
        const first =
          hec.events.find((e) =>
            (e.event.event as { event_id?: string }).event_id === record.event_id
          )!.event;
        assert.equal(first.sourcetype, "openai:compliance:auth_log");
        assert.equal(first.source, "oai-compliance-logs");
        assert.equal(first.index, "oai");
        assert.equal(typeof first.host, "string");
        // Epoch seconds with the microseconds of the record's timestamp.
        const seconds = Math.floor(Date.parse(record.timestamp) / 1000);
        assert.equal(first.time, Number(`${seconds}.${record.timestamp.slice(20, 26)}`));
        const events = hec.requests.filter((q) =>
          q.path === "/services/collector/event" && q.events > 0
        );
        assert.ok(events.length > 2, "batches of at most 20 events");
        assert.ok(events.every((q) => q.gzip), "bodies are gzip-compressed");
        const channels = new Set(
          hec.requests.filter((q) => !q.path.endsWith("/health")).map((q) => q.channel),
        );
        assert.equal(channels.size, 1, "one channel for the whole run");
        assert.ok(hec.requests.some((q) => q.path === "/services/collector/ack"));
        // Every ackId was acknowledged, and none had to be sent again.
        assert.equal(events.filter((q) => q.status === 200).length, hec.ackedTrue.size);
      },
    );
  },
);

test(
  "without acknowledgement a 200 confirms; a line that is not JSON is sent as a raw string",
  SLOW,
  async () => {
    const files: FileSpec[] = [
      {
        id: "eclf_raw",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T00:00:00Z",
        content:
          '{"event_id":"e1","timestamp":"2026-07-01T23:00:00.5Z"}\r\n\r\nnot json at all\n   \n{"event_id":"e2"}',
      },
    ];
    await withHec({ tokens: { [TOKEN]: {} } }, files, async (hec, emulator) => {
      const r = await run(emulator, hec.target);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(hec.events.map((e) => e.event.event), [
        { event_id: "e1", timestamp: "2026-07-01T23:00:00.5Z" },
        "not json at all",
        { event_id: "e2" },
      ]);
      assert.equal(hec.events[0].event.time, 1782946800.5);
      assert.equal(hec.events[2].event.time, undefined, "no timestamp: Splunk's own time");
      assert.ok(!hec.requests.some((q) => q.path === "/services/collector/ack"));
    });
  },
);

test("an invalid or disabled token fails before any download, naming the cause", SLOW, async () => {
  await withHec({ tokens: { [TOKEN]: { disabled: true } } }, FILES, async (hec, emulator) => {
    const disabled = await run(emulator, hec.target);
    assert.equal(disabled.code, 1, disabled.stderr);
    assert.match(errorLine(disabled.stderr), /refused the token: it is disabled/);
    const invalid = await run(emulator, hec.target, [], {
      SPLUNK_HEC_TOKEN: "wrong-token-0123456789",
    });
    assert.equal(invalid.code, 1, invalid.stderr);
    assert.match(
      errorLine(invalid.stderr),
      /refused the token \(HTTP 403, code 4 "Invalid token"\)/,
    );
    assert.doesNotMatch(invalid.stderr, /wrong-token-0123456789/);
    assert.equal(emulator.downloadRequests().length, 0, "nothing was downloaded");
  });
});

test(
  "the token from SPLUNK_HEC_TOKEN_FILE, never in argv; no token is a usage error",
  SLOW,
  async () => {
    await withDir("oai-hec-", async (dir) => {
      await withHec({ tokens: { [TOKEN]: {} } }, FILES.slice(0, 2), async (hec, emulator) => {
        const file = join(dir, "token");
        await writeFile(file, `${TOKEN}\n`);
        const r = await run(emulator, hec.target, [], {
          SPLUNK_HEC_TOKEN: undefined,
          SPLUNK_HEC_TOKEN_FILE: file,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(hec.events.length > 0);
        const none = await run(emulator, hec.target, [], { SPLUNK_HEC_TOKEN: undefined });
        assert.equal(none.code, 2, none.stderr);
        assert.match(errorLine(none.stderr), /needs the HEC token in SPLUNK_HEC_TOKEN/);
        const plain = await run(emulator, "hec+http://splunk.example:8088");
        assert.equal(plain.code, 2);
        assert.match(errorLine(plain.stderr), /only allowed to a loopback address/);
      });
    });
  },
);

test(
  "server busy (503), 429 and a reset mid-batch are retried; every record still arrives",
  SLOW,
  async () => {
    await withHec({ tokens: { [TOKEN]: { ack: true } } }, FILES, async (hec, emulator) => {
      hec.busy(2);
      hec.tooMany(1);
      hec.reset(1);
      const r = await run(emulator, hec.target);
      assert.equal(r.code, 0, r.stderr);
      const want = await recordsOf(emulator, idsOf(emulator));
      assert.equal(hec.events.length, want.length, "a refused or reset request indexed nothing");
      assert.match(
        r.stderr,
        /is busy \(HTTP 503, code 9 "Server is busy"\)/,
        "retries are reported",
      );
      assert.deepEqual(
        hec.requests.filter((q) => q.path.endsWith("/event")).map((q) => q.status).slice(1, 5),
        [-1, 503, 503, 429],
      );
    });
  },
);

test(
  "an acknowledgement that never comes: the batch is sent again, confirmed once",
  SLOW,
  async () => {
    await withHec(
      {
        tokens: { [TOKEN]: { ack: true } },
        neverAck: (ackId) => ackId === 0,
      },
      FILES.slice(0, 3),
      async (hec, emulator) => {
        const r = await run(emulator, hec.target, ["--hec-ack-timeout", "1"]);
        assert.equal(r.code, 0, r.stderr);
        const want = await recordsOf(emulator, idsOf(emulator));
        // The first batch is held twice (HEC indexed it, its acknowledgement never came).
        const ids = hec.events.map((e) => (e.event.event as { event_id: string }).event_id);
        assert.equal(new Set(ids).size, want.length);
        assert.ok(ids.length > want.length, "the unacknowledged batch was sent again");
        for (const [key, times] of hec.ackedTrue) assert.equal(times, 1, `${key} confirmed once`);
        assert.ok(!hec.ackedTrue.has(`${hec.requests[0].channel}:0`));
      },
    );
  },
);

test("--hec-ack with a token without acknowledgement fails clearly", SLOW, async () => {
  await withHec({ tokens: { [TOKEN]: {} } }, FILES.slice(0, 1), async (hec, emulator) => {
    const r = await run(emulator, hec.target, ["--hec-ack"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r.stderr), /answered without an ackId: indexer acknowledgement is off/);
  });
});

test("an index the token may not write to fails naming it", SLOW, async () => {
  await withHec(
    { tokens: { [TOKEN]: { indexes: ["main"] } } },
    FILES.slice(0, 1),
    async (hec, emulator) => {
      const r = await run(emulator, hec.target, ["--hec-index", "secret"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(errorLine(r.stderr), /refused the index "secret".*--hec-index/);
      assert.equal(hec.events.length, 0);
    },
  );
});

test(
  "413 halves the batch; a record larger than the collector takes fails naming its event_id and size",
  SLOW,
  async () => {
    const big = JSON.stringify({
      event_id: "evt-big",
      timestamp: "2026-07-01T23:30:00Z",
      blob: "x".repeat(20_000),
    });
    const files: FileSpec[] = [
      ...FILES.slice(0, 3),
      {
        id: "eclf_big",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T06:00:00Z",
        content: `${big}\n`,
      },
    ];
    await withHec(
      { tokens: { [TOKEN]: {} }, maxContentLength: 8_000 },
      files,
      async (hec, emulator) => {
        const r = await run(emulator, hec.target, ["--hec-batch-bytes", "200000"]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(
          errorLine(r.stderr),
          /event evt-big \(line 1 of AUTH_LOG file eclf_big\) is 20\d\d\d bytes, larger than Splunk HEC at 127\.0\.0\.1:\d+ accepts \(Content-Length of \d+ too large \(maximum is 8000\)\)/,
        );
        const want = await recordsOf(emulator, idsOf(emulator).slice(0, 3));
        const got = hec.events.map((e) => JSON.stringify(e.event.event));
        assert.deepEqual(
          got.sort(),
          want.map((w) => JSON.stringify(JSON.parse(w))).sort(),
          "the files before it arrived whole",
        );
        assert.ok(hec.requests.some((q) => q.status === 413));
        const sent = hec.requests.filter((q) => q.path.endsWith("/event")).length;
        assert.ok(sent < 40, `no loop: ${sent} requests`);
      },
    );
  },
);

test("a refused connection fails before any download", SLOW, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    const hec = await startHecEmulator({ tokens: { [TOKEN]: {} } });
    const target = hec.target;
    await hec.close();
    const r = await run(emulator, target);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLine(r.stderr), /cannot reach Splunk HEC at 127\.0\.0\.1:\d+/);
    assert.equal(emulator.downloadRequests().length, 0);
  });
});
