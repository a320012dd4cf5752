/**
 * Re-runs into an existing `--output-dir` (issue 20): a stored file that was altered is kept aside
 * as evidence, not silently replaced; a file stored in the other form (`--gzip` or not) counts as
 * stored, so switching `--gzip` stores nothing twice.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { lines, runCli, summaryOf } from "./helpers/cli.ts";
import { listTree } from "./helpers/compare.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

const logFiles = async (root: string) =>
  (await listTree(root)).filter((p) => !p.startsWith("_manifest") && !p.includes("_manifest/"));

test("a stored file found altered is kept aside, reported and stored again", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(3, { sizes: [1500, 2000, 700] }) }, async (emulator) => {
    await withDir("oai-altered-", async (dir) => {
      const out = join(dir, "logs");
      const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out];
      assert.equal((await runCli(args, { env: envFor(emulator) })).code, 0);
      const [id] = idsOf(emulator);
      const day = (await readdir(join(out, "AUTH_LOG")))[0];
      const path = join(out, "AUTH_LOG", day, `${id}.jsonl`);
      await writeFile(path, '{"event_id":"forged"}\n');

      const r = await runCli([...args, "--log-format", "json"], { env: envFor(emulator) });
      assert.equal(r.code, 0, r.stderr);
      const warnings = lines(r.stderr).map((l) => JSON.parse(l)).filter((e) =>
        e.event === "warning"
      )
        .map((e) => e.message as string).filter((m) => m.includes("kept aside"));
      assert.equal(warnings.length, 1, r.stderr);
      const aside = /kept aside as (\S+),/.exec(warnings[0])![1];
      assert.ok(warnings[0].includes(path), "names the stored path");
      assert.equal(
        await readFile(aside, "utf8"),
        '{"event_id":"forged"}\n',
        "the evidence is kept",
      );
      assert.deepEqual(new Uint8Array(await readFile(path)), await emulator.contentOf(id));
      assert.equal(summaryOf(r).kept_aside, 1);
      assert.equal(emulator.downloadRequests(id).length, 2, "downloaded again");

      // The archive still verifies: the alteration is explained, with both names and hashes.
      const verified = await runCli(["verify", out, "--json"], { env: envFor(emulator) });
      assert.equal(verified.code, 0, verified.stderr);
      const report = JSON.parse(new TextDecoder().decode(verified.stdout));
      const found = JSON.stringify(report);
      assert.match(found, /kept_aside/);
      assert.ok(found.includes(`${id}.jsonl.altered-`), found.slice(0, 2000));
      assert.doesNotMatch(found, /"kind":"unexpected"/);
    });
  });
});

test("switching --gzip on an archive stores nothing twice", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
    await withDir("oai-gzip-switch-", async (dir) => {
      const out = join(dir, "logs");
      const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out];
      assert.equal((await runCli(args, { env: envFor(emulator) })).code, 0);
      const plain = await logFiles(out);
      const downloads = emulator.downloadRequests().length;
      for (const extra of [["--gzip"], []]) {
        const r = await runCli([...args, ...extra], { env: envFor(emulator) });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(emulator.downloadRequests().length, downloads, "nothing downloaded again");
        assert.deepEqual(await logFiles(out), plain, "no second copy in the other form");
      }
    });
  });
});
