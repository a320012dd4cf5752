/**
 * One download, several destinations: `-o FILE` and `--output-dir DIR` named together get every
 * file from a single download each, and the checkpoint moves past a file only once both hold it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { listTree } from "./helpers/compare.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

test("an output file and an output directory are fed by one download per file", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(6) }, async (emulator) => {
    await withDir("oai-fanout-", async (dir) => {
      const out = join(dir, "all.jsonl");
      const tree = join(dir, "logs");
      const state = join(dir, "state.json");
      const args = [PRINCIPAL, "AUTH_LOG", "2", AFTER, "-o", out, "--output-dir", tree];
      const r = await runCli([...args, "--state", state], { env: envFor(emulator) });
      assert.equal(r.code, 0, r.stderr);
      const ids = idsOf(emulator);
      for (const id of ids) {
        assert.equal(emulator.downloadRequests(id).length, 1, `${id} was downloaded once`);
      }
      assert.deepEqual(new Uint8Array(await readFile(out)), await expectedStream(emulator, ids));
      const stored = (await listTree(tree)).filter((p) =>
        p.endsWith(".jsonl") && !p.startsWith("_manifest/")
      );
      assert.equal(stored.length, ids.length);
      const saved = JSON.parse(await readFile(state, "utf8"));
      assert.ok(saved.cursors.AUTH_LOG, "the checkpoint moved once both held every file");
      // Nothing new: nothing downloaded, the appended file unchanged.
      const before = await readFile(out);
      const again = await runCli([
        PRINCIPAL,
        "AUTH_LOG",
        "-o",
        out,
        "--output-dir",
        tree,
        "--state",
        state,
      ], {
        env: envFor(emulator),
      });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await readFile(out), before);
      for (const id of ids) assert.equal(emulator.downloadRequests(id).length, 1);
    });
  });
});
