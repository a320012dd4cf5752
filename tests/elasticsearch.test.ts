/**
 * `-o elasticsearch+https://...` and `opensearch+https://...` (issue 19) end to end: the real CLI
 * against the Compliance API emulator and the `_bulk` emulator (tests/siem/elastic_emulator.ts;
 * not the products). Create actions with `_id` = event_id into the integration's data streams
 * (the raw record in `message`) or one TARGET (`--elastic-document parsed`); 409 confirms, 429
 * items are retried alone, any other item error fails naming the event id with the checkpoint
 * before its file; 413 halves the batch; the product header and credentials are checked first.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Emulator, FileSpec } from "./emulator/mod.ts";
import { hourlyFiles, idsOf, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { errorLine, eventIdsOf, recordsOf, runInto, withSiem } from "./helpers/siem.ts";
import {
  type ElasticEmulator,
  type ElasticEmulatorOptions,
  startElasticEmulator,
} from "./siem/elastic_emulator.ts";

const API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
const FILES = hourlyFiles(6, { sizes: [1500, 0, 40_000, 333] });
const STREAM = "logs-openai_chatgpt_enterprise.auth_log-default";
/** The `_bulk` emulator (with the test's API key) beside the API emulator serving `files`. */
function withElastic<T>(
  options: ElasticEmulatorOptions,
  files: FileSpec[],
  fn: (es: ElasticEmulator, emulator: Emulator) => Promise<T>,
): Promise<T> {
  return withSiem(files, () => startElasticEmulator({ apiKeys: [API_KEY], ...options }), fn);
}

function run(
  emulator: Emulator,
  target: string,
  extra: string[] = [],
  env: Record<string, string | undefined> = {},
) {
  return runInto(emulator, target, extra, { ELASTIC_API_KEY: API_KEY, ...env });
}

test(
  "README example: each record once in the integration's data stream, raw in message",
  SLOW,
  async () => {
    await withElastic({}, FILES, async (es, emulator) => {
      const r = await run(emulator, es.target, ["--elastic-batch-docs", "25"]);
      assert.equal(r.code, 0, r.stderr);
      const want = await recordsOf(emulator, idsOf(emulator));
      const stream = es.indices.get(STREAM)!;
      assert.equal(stream.size, want.length);
      for (const record of want) {
        const { event_id, timestamp } = JSON.parse(record);
        assert.deepEqual(stream.get(event_id), { message: record, "@timestamp": timestamp });
      }
      assert.ok(es.bulks.length >= Math.ceil(want.length / 25), "batches of at most 25 documents");
      assert.ok(es.bulks.every((b) => b.authorization === `ApiKey ${API_KEY}`));
      assert.ok(es.bulks.every((b) => b.contentType === "application/x-ndjson"));
      assert.ok(es.bulks.every((b) => b.items.length <= 25));
      assert.doesNotMatch(r.stderr, new RegExp(API_KEY.slice(0, 20)));

      // A second run without a checkpoint sends everything again: every item is a 409, all confirmed.
      const again = await run(emulator, es.target);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(stream.size, want.length, "each event once by _id");
      assert.ok(es.bulks.at(-1)!.items.every((i) => i.status === 409));
    });
  },
);

test(
  "--elastic-document parsed into one TARGET, with basic auth from _FILE variants",
  SLOW,
  async () => {
    const files: FileSpec[] = [{
      id: "eclf_parsed",
      eventType: "AUTH_LOG",
      endTime: "2026-07-02T00:00:00Z",
      content: '{"event_id":"e1","timestamp":"2026-07-01T23:00:00Z","n":1}\r\n\n' +
        '{"event_id":"e2","@timestamp":"2026-07-01T23:30:00Z","timestamp":"x"}\n{"event_id":"e3"}',
    }];
    await withDir("oai-es-", async (dir) => {
      await withElastic({ users: { ingest: "pa:ss w0rd" } }, files, async (es, emulator) => {
        await writeFile(join(dir, "user"), "ingest\n");
        await writeFile(join(dir, "password"), "pa:ss w0rd\n");
        const r = await run(emulator, `${es.target}/compliance-logs`, [
          "--elastic-document",
          "parsed",
        ], {
          ELASTIC_API_KEY: undefined,
          ELASTIC_USERNAME_FILE: join(dir, "user"),
          ELASTIC_PASSWORD_FILE: join(dir, "password"),
        });
        assert.equal(r.code, 0, r.stderr);
        const index = es.indices.get("compliance-logs")!;
        assert.deepEqual(index.get("e1"), {
          "@timestamp": "2026-07-01T23:00:00Z",
          event_id: "e1",
          timestamp: "2026-07-01T23:00:00Z",
          n: 1,
        });
        assert.deepEqual(index.get("e2"), {
          event_id: "e2",
          "@timestamp": "2026-07-01T23:30:00Z",
          timestamp: "x",
        });
        assert.deepEqual(index.get("e3"), { event_id: "e3" });
        assert.match(es.bulks[0].authorization!, /^Basic /);

        const wrong = await run(emulator, es.target, [], {
          ELASTIC_API_KEY: "bm90LXRoZS1rZXktMDEyMzQ1Njc4OQ==",
        });
        assert.equal(wrong.code, 1, wrong.stderr);
        assert.match(
          errorLine(wrong.stderr),
          /refused the credentials \(HTTP 401 "security_exception/,
        );
        assert.equal(
          emulator.downloadRequests().length,
          1,
          "no download after refused credentials",
        );
      });
    });
  },
);

test(
  "partial bulk failure: 429 items retried alone; a refused item fails naming it, checkpoint before its file",
  SLOW,
  async () => {
    await withDir("oai-es-", async (dir) => {
      await withElastic({}, FILES, async (es, emulator) => {
        const ids = idsOf(emulator);
        const records = await eventIdsOf(emulator, [ids[2]]);
        const early = await eventIdsOf(emulator, [ids[0]]);
        es.failItem(early[1], {
          status: 429,
          type: "es_rejected_execution_exception",
          reason: "rejected",
          times: 2,
        });
        es.failItem(records[3], {
          status: 400,
          type: "document_parsing_exception",
          reason: "[1:30] failed to parse field [actor]",
          times: 1,
        });
        const state = join(dir, "state.json");
        const r = await run(emulator, es.target, ["--state", state]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(
          errorLine(r.stderr),
          new RegExp(
            `refused event ${records[3]} \\(line 4 of AUTH_LOG file ${
              ids[2]
            }\\): document_parsing_exception: \\[1:30\\] failed to parse field \\[actor\\]`,
          ),
        );
        assert.deepEqual(es.attempts(early[1]), [429, 429, 201], "a 429 item is sent again alone");
        // Run again: the checkpoint stayed before the refused file, so it and later ones go again.
        const before = es.bulks.length;
        const again = await run(emulator, es.target, ["--state", state]);
        assert.equal(again.code, 0, again.stderr);
        const resent = new Set(es.bulks.slice(before).flatMap((b) => b.items.map((i) => i.id)));
        assert.ok(resent.has(records[3]));
        assert.ok(!resent.has(early[0]), "files before the refused one are not sent again");
        const want = await recordsOf(emulator, ids);
        assert.equal(es.indices.get(STREAM)!.size, want.length);
      });
    });
  },
);

test(
  "503, 429 and a reset mid-batch are retried; a 413 halves the batch; a record too large fails",
  SLOW,
  async () => {
    const big = JSON.stringify({
      event_id: "evt-huge",
      timestamp: "2026-07-02T05:30:00Z",
      blob: "y".repeat(30_000),
    });
    const files: FileSpec[] = [
      ...FILES.slice(0, 4),
      {
        id: "eclf_huge",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T06:00:00Z",
        content: `${big}\n`,
      },
    ];
    await withElastic({ maxContentLength: 12_000 }, files, async (es, emulator) => {
      es.reset(1);
      es.busy(1, 503);
      const r = await run(emulator, es.target);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        errorLine(r.stderr),
        /event evt-huge \(line 1 of AUTH_LOG file eclf_huge\) is 300\d\d bytes, larger than Elasticsearch at 127\.0\.0\.1:\d+ accepts; raise http\.max_content_length/,
      );
      assert.deepEqual(es.bulks.slice(0, 3).map((b) => b.status), [-1, 503, 413]);
      const want = await recordsOf(emulator, idsOf(emulator).slice(0, 4));
      assert.equal(es.indices.get(STREAM)!.size, want.length, "everything before it arrived");
      assert.ok(es.bulks.length < 60, `no loop: ${es.bulks.length} requests`);
    });
  },
);

test(
  "a line that is not JSON fails the run clearly; nothing of its file is confirmed",
  SLOW,
  async () => {
    const files: FileSpec[] = [
      {
        id: "eclf_bad",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T00:00:00Z",
        content: '{"event_id":"a1"}\n<html>oops</html>\n',
      },
    ];
    await withElastic({}, files, async (es, emulator) => {
      const r = await run(emulator, es.target);
      assert.equal(r.code, 1, r.stderr);
      assert.match(errorLine(r.stderr), /line 2 of AUTH_LOG file eclf_bad is not JSON/);
    });
  },
);

test(
  "OpenSearch: opensearch+http:// works without the product header; elasticsearch+ to it is refused",
  SLOW,
  async () => {
    await withElastic({ flavor: "opensearch" }, FILES.slice(0, 2), async (es, emulator) => {
      const r = await run(emulator, es.target);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(es.documentCount() > 0);
      const wrong = await run(emulator, es.target.replace("opensearch+", "elasticsearch+"));
      assert.equal(wrong.code, 2, wrong.stderr);
      assert.match(errorLine(wrong.stderr), /is OpenSearch; use -o opensearch\+https:\/\//);
    });
  },
);

test(
  "a refused connection, missing credentials or plain http off loopback fail before any download",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const es = await startElasticEmulator({ apiKeys: [API_KEY] });
      await es.close();
      const refused = await run(emulator, es.target);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(errorLine(refused.stderr), /cannot reach Elasticsearch at 127\.0\.0\.1:\d+/);
      const none = await run(emulator, es.target, [], { ELASTIC_API_KEY: undefined });
      assert.equal(none.code, 2);
      assert.match(
        errorLine(none.stderr),
        /needs credentials: ELASTIC_API_KEY, or ELASTIC_USERNAME/,
      );
      const plain = await run(emulator, "elasticsearch+http://es.example:9200");
      assert.equal(plain.code, 2);
      assert.match(errorLine(plain.stderr), /only allowed to a loopback address/);
      assert.equal(emulator.downloadRequests().length, 0);
    });
  },
);
