/**
 * An archive and a SIEM named together (issue 19, "One download, several destinations"): each file
 * is downloaded once and handed to both; the checkpoint moves past a file only once both hold it;
 * a SIEM that refuses a file stops the run for both, with the checkpoint before that file, and the
 * next run sends it to the SIEM without storing it twice.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FileSpec } from "./emulator/mod.ts";
import { runCli } from "./helpers/cli.ts";
import { listTree } from "./helpers/compare.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { recordsOf, withSiem } from "./helpers/siem.ts";
import { startHecEmulator } from "./siem/hec_emulator.ts";

const TOKEN = "3f0c5a2e-7b1d-4c9e-8a6f-0d2b4e6c8a10";
const stored = async (root: string) =>
  (await listTree(root)).filter((p) => p.endsWith(".jsonl") && !p.startsWith("_manifest"));

test("--output-dir and -o hec+http:// are fed by one download per file", SLOW, async () => {
  const start = () => startHecEmulator({ tokens: { [TOKEN]: { ack: true } } });
  await withSiem(hourlyFiles(5), start, async (hec, emulator) => {
    await withDir("oai-archive-siem-", async (dir) => {
      const archive = join(dir, "logs");
      const r = await runCli(
        [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", archive, "-o", hec.target],
        { env: envFor(emulator, { SPLUNK_HEC_TOKEN: TOKEN }), timeoutMs: 90_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const ids = idsOf(emulator);
      for (const id of ids) assert.equal(emulator.downloadRequests(id).length, 1, id);
      assert.equal((await stored(archive)).length, ids.length);
      const records = await recordsOf(emulator, ids);
      assert.equal(hec.events.length, records.length, "every record reached the SIEM");
    });
  });
});

test(
  "a file the SIEM refuses stops both; the next run sends it without storing it twice",
  SLOW,
  async () => {
    const big = JSON.stringify({
      event_id: "evt-big",
      timestamp: "2026-07-02T05:30:00Z",
      blob: "x".repeat(20_000),
    });
    const files: FileSpec[] = [
      ...hourlyFiles(3, { sizes: [1500, 2000, 700] }),
      {
        id: "eclf_big",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T06:00:00Z",
        content: `${big}\n`,
      },
    ];
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-archive-siem-refused-", async (dir) => {
        const archive = join(dir, "logs");
        const state = join(dir, "s.json");
        const args = (target: string) => [
          PRINCIPAL,
          "AUTH_LOG",
          "10",
          AFTER,
          "--output-dir",
          archive,
          "-o",
          target,
          "--state",
          state,
        ];
        const env = envFor(emulator, {
          SPLUNK_HEC_TOKEN: TOKEN,
          OAI_COMPLIANCE_SIEM_BACKOFF_MS: "10",
        });
        const strict = await startHecEmulator({ tokens: { [TOKEN]: {} }, maxContentLength: 8_000 });
        try {
          const r = await runCli(args(strict.target), { env, timeoutMs: 90_000 });
          assert.equal(r.code, 1, r.stderr);
          assert.match(r.stderr, /evt-big/);
        } finally {
          await strict.close();
        }
        const cursor = JSON.parse(await readFile(state, "utf8")).cursors.AUTH_LOG;
        assert.ok(
          !cursor.seen.includes("eclf_big"),
          "the checkpoint stays before the refused file",
        );
        assert.ok(Date.parse(cursor.after) < Date.parse("2026-07-02T06:00:00Z"), cursor.after);

        const roomy = await startHecEmulator({ tokens: { [TOKEN]: {} } });
        try {
          const again = await runCli(args(roomy.target), { env, timeoutMs: 90_000 });
          assert.equal(again.code, 0, again.stderr);
          // The refused file is downloaded again for the SIEM; the archive keeps its one copy.
          const bigEvents = roomy.events.filter((e) =>
            (e.event.event as { event_id?: string }).event_id === "evt-big"
          );
          assert.equal(bigEvents.length, 1);
          assert.equal((await stored(archive)).filter((p) => p.includes("eclf_big")).length, 1);
          for (const id of idsOf(emulator).slice(0, 3)) {
            assert.equal(emulator.downloadRequests(id).length, 1, `${id} was not fetched again`);
          }
        } finally {
          await roomy.close();
        }
      });
    });
  },
);
