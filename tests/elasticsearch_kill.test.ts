/**
 * A run into Elasticsearch killed with SIGKILL mid-delivery, then run again with the same
 * checkpoint (issue 19): the re-run sends again only files the checkpoint had not passed, and the
 * index then holds every event exactly once (by `_id`; a repeat is a 409, confirmed).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { envFor, hourlyFiles, idsOf } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import {
  checkpointedArgs,
  eventIdsOf,
  passedFiles,
  passedFilesNow,
  runKilledWhen,
  withSiem,
} from "./helpers/siem.ts";
import { startElasticEmulator } from "./siem/elastic_emulator.ts";

const API_KEY = "a2lsbC10ZXN0LWtleTpzZWNyZXQtMDEyMzQ1Njc4OQ==";
const FILES = hourlyFiles(12, { sizes: [40_000] });

test(
  "kill -9 mid-run, run again: only unconfirmed files are re-sent, each event held once",
  SLOW,
  async () => {
    await withDir("oai-es-kill-", async (dir) => {
      const start = () => startElasticEmulator({ apiKeys: [API_KEY], latencyMs: 40 });
      await withSiem(FILES, start, async (es, emulator) => {
        const state = join(dir, "state.json");
        const args = checkpointedArgs(es.target, state, ["--elastic-batch-docs", "20"]);
        const env = envFor(emulator, { ELASTIC_API_KEY: API_KEY });
        // Killed once the checkpoint has passed a file (the bulks alone can outrun its write).
        const ids = idsOf(emulator);
        await runKilledWhen(
          args,
          env,
          () => es.bulks.length >= 14 && passedFilesNow(emulator, state, ids).passed.length > 0,
        );
        const firstRun = es.bulks.length;

        // What the checkpoint passed before the kill.
        const { passed, cursor } = await passedFiles(emulator, state, ids);
        assert.ok(
          passed.length > 0 && passed.length < ids.length,
          `${passed.length} files passed: ${JSON.stringify(cursor)}`,
        );
        const passedEvents = new Set(await eventIdsOf(emulator, passed));

        const again = await runCli(args, { env });
        assert.equal(again.code, 0, again.stderr);
        const resent = es.bulks.slice(firstRun).flatMap((b) => b.items.map((i) => i.id));
        assert.ok(resent.length > 0, "the unconfirmed files were sent again");
        for (const id of resent) {
          assert.ok(!passedEvents.has(id), `${id} was confirmed before the kill`);
        }
        const all = await eventIdsOf(emulator, ids);
        const stream = es.indices.get("logs-openai_chatgpt_enterprise.auth_log-default")!;
        assert.equal(stream.size, all.length, "every event, each once by _id");
        for (const id of all) {
          assert.equal(es.attempts(id).filter((s) => s === 201).length, 1);
        }
      });
    });
  },
);
