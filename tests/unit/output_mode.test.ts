/**
 * `--output-mode` (issue 20): the files `--output-dir` creates get the mode asked for, and the
 * directories it creates the same plus x wherever r is given (0640: files 0640, directories
 * 0750); owner-only (0600, 0700) by default. POSIX only: Windows has no permission bits.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { DirectoryDestination } from "../../lib/destinations/directory.ts";
import type { LogFile } from "../../lib/log_file.ts";
import { withDir } from "../helpers/mod.ts";

const SKIP = process.platform === "win32" && "Windows has no permission bits";

async function store(destination: DirectoryDestination, file: LogFile): Promise<void> {
  const spool = await destination.spool(file, "AUTH_LOG");
  await spool.write(new TextEncoder().encode('{"a":1}\n'));
  let confirmed = false;
  await destination.deliver({
    file,
    eventType: "AUTH_LOG",
    spool,
    downloaded: { bytes: 8, lastByte: 0x0a },
    receipt: { confirm: () => confirmed = true, reject: (error) => assert.fail(`${error}`) },
  });
  await destination.finish();
  assert.ok(confirmed);
}

/** Every directory and file under `root` (itself included), with its permission bits. */
async function modesUnder(root: string): Promise<Map<string, number>> {
  const modes = new Map<string, number>([[".", (await stat(root)).mode & 0o777]]);
  const walk = async (dir: string, prefix: string) => {
    for (const name of await readdir(dir)) {
      const info = await stat(join(dir, name));
      modes.set(prefix + name, info.mode & 0o777);
      if (info.isDirectory()) await walk(join(dir, name), `${prefix}${name}/`);
    }
  };
  await walk(root, "");
  return modes;
}

const FILE: LogFile = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-02T10:00:00Z" };

test(
  "--output-dir creates files and directories with the output mode",
  { skip: SKIP },
  async () => {
    await withDir("oai-mode-", async (base) => {
      const root = join(base, "logs");
      await store(new DirectoryDestination(root, false, 0o640), FILE);
      assert.deepEqual(
        await modesUnder(root),
        new Map([
          [".", 0o750],
          ["AUTH_LOG", 0o750],
          ["AUTH_LOG/2026-07-02", 0o750],
          ["AUTH_LOG/2026-07-02/eclf_1.jsonl", 0o640],
        ]),
      );
    });
  },
);

test(
  "by default --output-dir is owner-only; an existing root keeps its mode",
  { skip: SKIP },
  async () => {
    await withDir("oai-mode-", async (base) => {
      const root = join(base, "logs");
      await mkdir(root, { mode: 0o755 });
      await store(new DirectoryDestination(root, false), FILE);
      assert.deepEqual(
        await modesUnder(root),
        new Map([
          [".", 0o755],
          ["AUTH_LOG", 0o700],
          ["AUTH_LOG/2026-07-02", 0o700],
          ["AUTH_LOG/2026-07-02/eclf_1.jsonl", 0o600],
        ]),
      );
    });
  },
);

test("--output-mode is parsed strictly: octal, owner rw, no write or execute for others", async () => {
  const { parseOutputMode } = await import("../../lib/destinations/output_mode.ts");
  assert.equal(parseOutputMode(undefined), 0o600);
  assert.equal(parseOutputMode("0640"), 0o640);
  assert.equal(parseOutputMode("644"), 0o644);
  for (
    const [text, why] of [
      ["rw-r-----", /octal mode/],
      ["0400", /owner read and write/],
      ["0660", /group or others write/],
      ["0602", /group or others write/],
      ["0750", /executable/],
      ["01640", /octal mode/],
    ] as const
  ) {
    assert.throws(() => parseOutputMode(text), why, text);
  }
});

test("a run with --output-dir and --output-mode 0640 writes files 0640 in directories 0750", {
  skip: SKIP,
  timeout: 60_000,
}, async () => {
  const { runCli } = await import("../helpers/cli.ts");
  const { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } = await import(
    "../helpers/fixtures.ts"
  );
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    await withDir("oai-mode-cli-", async (dir) => {
      const out = join(dir, "logs");
      const r = await runCli(
        [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out, "--output-mode", "0640"],
        { env: envFor(emulator) },
      );
      assert.equal(r.code, 0, r.stderr);
      const typeDir = join(out, "AUTH_LOG");
      assert.equal((await stat(typeDir)).mode & 0o777, 0o750);
      for (const day of await readdir(typeDir)) {
        assert.equal((await stat(join(typeDir, day))).mode & 0o777, 0o750);
        for (const name of await readdir(join(typeDir, day))) {
          assert.equal((await stat(join(typeDir, day, name))).mode & 0o777, 0o640, name);
        }
      }
      const refused = await runCli(
        [PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", join(dir, "x"), "--output-mode", "0666"],
        { env: envFor(emulator) },
      );
      assert.equal(refused.code, 2, refused.stderr);
    });
  });
});
