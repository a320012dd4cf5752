/**
 * A run into Splunk HEC (with indexer acknowledgement) killed with SIGKILL mid-delivery, then run
 * again with the same checkpoint (issue 19): the re-run sends again only files the checkpoint had
 * not passed; HEC then holds every event at least once, and only events of those files twice
 * (which is why searches de-duplicate on event_id).
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
  runKilledWhen,
  withSiem,
} from "./helpers/siem.ts";
import { startHecEmulator } from "./siem/hec_emulator.ts";

const TOKEN = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
const FILES = hourlyFiles(12, { sizes: [40_000] });

test(
  "kill -9 mid-run, run again: only unconfirmed files are re-sent; every event arrives",
  SLOW,
  async () => {
    await withDir("oai-hec-kill-", async (dir) => {
      const start = () =>
        startHecEmulator({ tokens: { [TOKEN]: { ack: true } }, latencyMs: 30, ackDelayMs: 100 });
      await withSiem(FILES, start, async (hec, emulator) => {
        const state = join(dir, "state.json");
        const args = checkpointedArgs(hec.target, state, ["--hec-batch-events", "20"]);
        const env = envFor(emulator, { SPLUNK_HEC_TOKEN: TOKEN });
        await runKilledWhen(args, env, () => hec.ackedTrue.size >= 12);
        const firstRun = hec.events.length;

        const ids = idsOf(emulator);
        const { passed } = await passedFiles(emulator, state, ids);
        assert.ok(
          passed.length > 0 && passed.length < ids.length,
          `${passed.length} files passed`,
        );
        const passedEvents = new Set(await eventIdsOf(emulator, passed));

        const again = await runCli(args, { env });
        assert.equal(again.code, 0, again.stderr);
        const idOf = (e: { event: Record<string, unknown> }) =>
          (e.event.event as { event_id: string }).event_id;
        const resent = hec.events.slice(firstRun).map(idOf);
        assert.ok(resent.length > 0, "the unconfirmed files were sent again");
        for (const id of resent) {
          assert.ok(!passedEvents.has(id), `${id} was confirmed before the kill`);
        }
        const all = await eventIdsOf(emulator, ids);
        assert.deepEqual(
          new Set(hec.events.map(idOf)),
          new Set(all),
          "every event at least once",
        );
        const channels = new Set(
          hec.requests.filter((q) => q.events > 0).map((q) => q.channel),
        );
        assert.equal(channels.size, 2, "each run has its own channel");
      });
    });
  },
);
