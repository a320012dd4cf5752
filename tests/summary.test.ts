/**
 * The run summary tells what the run delivered and where the data stands: the checkpoint's cursor
 * when nothing new came, the last delivered file when `--settle` holds the rest back, and the
 * files skipped as already delivered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, summaryOf } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

test("a run with nothing new reports the checkpoint's cursor, not none", SLOW, async () => {
  await withDir("oai-summary-", async (dir) => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--state", join(dir, "s.json")];
      const first = await runCli([...args, "--log-format", "json"], { env: envFor(emulator) });
      assert.equal(first.code, 0, first.stderr);
      const reached = (summaryOf(first).cursors as Record<string, string>).AUTH_LOG;
      assert.ok(reached, first.stderr);

      const again = await runCli([...args, "--log-format", "json"], { env: envFor(emulator) });
      assert.equal(again.code, 0, again.stderr);
      const summary = summaryOf(again);
      assert.equal(summary.files, 0);
      assert.deepEqual(summary.cursors, { AUTH_LOG: reached });

      const plain = await runCli(args, { env: envFor(emulator) });
      assert.match(plain.stderr, new RegExp(`cursor AUTH_LOG=${reached.replace(/\./g, "\\.")}`));
      assert.doesNotMatch(plain.stderr, /=none/);
    });
  });
});

test("--settle holding files back reports the last delivered file, never null", SLOW, async () => {
  // Six files an hour apart ending now: a settle of 150 minutes holds the last three back.
  const start = new Date(Date.now() - 5 * 3_600_000 - 60_000).toISOString();
  const files = hourlyFiles(6, { start });
  await withEmulator({ files }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", "1d", "--settle", "150m"], {
      env: envFor(emulator),
    });
    assert.equal(r.code, 0, r.stderr);
    const ids = idsOf(emulator);
    const last = emulator.files.find((f) => f.id === ids[2])!;
    assert.match(r.stderr, /^Completed downloading 3 log files up to \S+ \(local: .+\)$/m);
    assert.doesNotMatch(r.stderr, /up to null/);
    const cursor = /cursor AUTH_LOG=(\S+)/.exec(r.stderr)?.[1] ?? "";
    assert.equal(Date.parse(cursor), Date.parse(last.endTime), r.stderr);
  });
});

test(
  "files skipped as returned again at a page boundary are counted as skipped",
  SLOW,
  async () => {
    await withDir("oai-summary-", async (dir) => {
      // The API returns the files at `after` again: the second run skips what the first delivered.
      await withEmulator({ files: hourlyFiles(4), inclusiveAfter: true }, async (emulator) => {
        const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--state", join(dir, "s.json")];
        const first = await runCli(args, { env: envFor(emulator) });
        assert.equal(first.code, 0, first.stderr);
        const again = await runCli([...args, "--log-format", "json"], { env: envFor(emulator) });
        assert.equal(again.code, 0, again.stderr);
        const summary = summaryOf(again);
        assert.equal(summary.files, 0);
        assert.ok((summary.skipped as number) >= 1, again.stderr);
      });
    });
  },
);

test("list and --list say Listed, never Completed downloading", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
    for (
      const args of [["list", PRINCIPAL, "AUTH_LOG", "10", AFTER], [
        PRINCIPAL,
        "AUTH_LOG",
        "10",
        AFTER,
        "--list",
      ]]
    ) {
      const r = await runCli(args, { env: envFor(emulator) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^Listed 5 log files up to \S+ \(local: .+\)$/m);
      assert.doesNotMatch(r.stderr, /Completed downloading/);
      assert.match(r.stderr, /^Summary: 5 files, /m);
    }
  });
});
