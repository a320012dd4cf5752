/**
 * A run into Elasticsearch killed with SIGKILL mid-delivery, then run again with the same
 * checkpoint (issue 19): the re-run sends again only files the checkpoint had not passed, and the
 * index then holds every event exactly once (by `_id`; a repeat is a 409, confirmed).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { startElasticEmulator } from "./siem/elastic_emulator.ts";

const API_KEY = "a2lsbC10ZXN0LWtleTpzZWNyZXQtMDEyMzQ1Njc4OQ==";
const FILES = hourlyFiles(12, { sizes: [40_000] });
const decoder = new TextDecoder();

test(
  "kill -9 mid-run, run again: only unconfirmed files are re-sent, each event held once",
  SLOW,
  async () => {
    await withDir("oai-es-kill-", async (dir) => {
      await withEmulator({ files: FILES }, async (emulator) => {
        const es = await startElasticEmulator({ apiKeys: [API_KEY], latencyMs: 40 });
        try {
          const state = join(dir, "state.json");
          const args = [
            PRINCIPAL,
            "AUTH_LOG",
            "5",
            AFTER,
            "-o",
            es.target,
            "--state",
            state,
            "--elastic-batch-docs",
            "20",
          ];
          const env = envFor(emulator, { ELASTIC_API_KEY: API_KEY });
          let timer: ReturnType<typeof setInterval> | undefined;
          const killed = await runCli(args, {
            env,
            onSpawn: (child) => {
              timer = setInterval(() => {
                if (es.bulks.length >= 14) child.kill("SIGKILL");
              }, 5);
            },
          });
          clearInterval(timer);
          assert.equal(
            killed.signal,
            "SIGKILL",
            `the run was killed mid-delivery: ${killed.stderr}`,
          );
          const firstRun = es.bulks.length;

          // What the checkpoint passed before the kill.
          const ids = idsOf(emulator);
          const cursor = JSON.parse(await readFile(state, "utf8").catch(() => "{}")).cursors
            ?.AUTH_LOG;
          const passed = ids.filter((id) => {
            const end = Date.parse(emulator.files.find((f) => f.id === id)!.endTime);
            if (!cursor) return false;
            const at = Date.parse(cursor.after);
            return end < at || cursor.seen.includes(id);
          });
          const eventsOf = async (id: string) =>
            decoder.decode(await emulator.contentOf(id)).split("\n").filter((l) => l.trim())
              .map((l) => JSON.parse(l).event_id as string);
          assert.ok(
            passed.length > 0 && passed.length < ids.length,
            `${passed.length} files passed: ${JSON.stringify(cursor)}`,
          );
          const passedEvents = new Set((await Promise.all(passed.map(eventsOf))).flat());

          const again = await runCli(args, { env });
          assert.equal(again.code, 0, again.stderr);
          const resent = es.bulks.slice(firstRun).flatMap((b) => b.items.map((i) => i.id));
          assert.ok(resent.length > 0, "the unconfirmed files were sent again");
          for (const id of resent) {
            assert.ok(!passedEvents.has(id), `${id} was confirmed before the kill`);
          }
          const all = (await Promise.all(ids.map(eventsOf))).flat();
          const stream = es.indices.get("logs-openai_chatgpt_enterprise.auth_log-default")!;
          assert.equal(stream.size, all.length, "every event, each once by _id");
          for (const id of all) {
            assert.equal(es.attempts(id).filter((s) => s === 201).length, 1);
          }
        } finally {
          await es.close();
        }
      });
    });
  },
);
