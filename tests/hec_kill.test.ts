/**
 * A run into Splunk HEC (with indexer acknowledgement) killed with SIGKILL mid-delivery, then run
 * again with the same checkpoint (issue 19): the re-run sends again only files the checkpoint had
 * not passed; HEC then holds every event at least once, and only events of those files twice
 * (which is why searches de-duplicate on event_id).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { startHecEmulator } from "./siem/hec_emulator.ts";

const TOKEN = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
const FILES = hourlyFiles(12, { sizes: [40_000] });
const decoder = new TextDecoder();

test(
  "kill -9 mid-run, run again: only unconfirmed files are re-sent; every event arrives",
  SLOW,
  async () => {
    await withDir("oai-hec-kill-", async (dir) => {
      await withEmulator({ files: FILES }, async (emulator) => {
        const hec = await startHecEmulator({
          tokens: { [TOKEN]: { ack: true } },
          latencyMs: 30,
          ackDelayMs: 100,
        });
        try {
          const state = join(dir, "state.json");
          const args = [
            PRINCIPAL,
            "AUTH_LOG",
            "5",
            AFTER,
            "-o",
            hec.target,
            "--state",
            state,
            "--hec-batch-events",
            "20",
          ];
          const env = envFor(emulator, { SPLUNK_HEC_TOKEN: TOKEN });
          let timer: ReturnType<typeof setInterval> | undefined;
          const killed = await runCli(args, {
            env,
            onSpawn: (child) => {
              timer = setInterval(() => {
                if (hec.ackedTrue.size >= 12) child.kill("SIGKILL");
              }, 5);
            },
          });
          clearInterval(timer);
          assert.equal(
            killed.signal,
            "SIGKILL",
            `the run was killed mid-delivery: ${killed.stderr}`,
          );
          const firstRun = hec.events.length;

          const ids = idsOf(emulator);
          const cursor = JSON.parse(await readFile(state, "utf8").catch(() => "{}")).cursors
            ?.AUTH_LOG;
          const passed = ids.filter((id) => {
            if (!cursor) return false;
            const end = Date.parse(emulator.files.find((f) => f.id === id)!.endTime);
            return end < Date.parse(cursor.after) || cursor.seen.includes(id);
          });
          assert.ok(
            passed.length > 0 && passed.length < ids.length,
            `${passed.length} files passed`,
          );
          const eventsOf = async (id: string) =>
            decoder.decode(await emulator.contentOf(id)).split("\n").filter((l) => l.trim())
              .map((l) => JSON.parse(l).event_id as string);
          const passedEvents = new Set((await Promise.all(passed.map(eventsOf))).flat());

          const again = await runCli(args, { env });
          assert.equal(again.code, 0, again.stderr);
          const idOf = (e: { event: Record<string, unknown> }) =>
            (e.event.event as { event_id: string }).event_id;
          const resent = hec.events.slice(firstRun).map(idOf);
          assert.ok(resent.length > 0, "the unconfirmed files were sent again");
          for (const id of resent) {
            assert.ok(!passedEvents.has(id), `${id} was confirmed before the kill`);
          }
          const all = (await Promise.all(ids.map(eventsOf))).flat();
          assert.deepEqual(
            new Set(hec.events.map(idOf)),
            new Set(all),
            "every event at least once",
          );
          const channels = new Set(
            hec.requests.filter((q) => q.events > 0).map((q) => q.channel),
          );
          assert.equal(channels.size, 2, "each run has its own channel");
        } finally {
          await hec.close();
        }
      });
    });
  },
);
