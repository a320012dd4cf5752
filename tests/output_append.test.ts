/**
 * A scheduled `-o FILE --state S` (issue 20, "Data a scheduled run can lose"): each run appends
 * its files to FILE, fsynced before the checkpoint moves; a run that finds nothing leaves FILE
 * untouched (bytes and mtime); a crash mid-append never shrinks FILE below its complete lines,
 * and the next run cuts at most the incomplete last line, then appends (at least once).
 * Without `--state`, `-o` still replaces the file whole.
 */
import { test } from "node:test";
import type { ChildProcess } from "node:child_process";
import assert from "node:assert/strict";
import { appendFile, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { Emulator } from "./emulator/mod.ts";
import { type CliOptions, concat, runCli, RUNS_WINDOWS } from "./helpers/cli.ts";
import { assertSameBytes } from "./helpers/compare.ts";
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

const FIRST = hourlyFiles(6, { sizes: [1500, 0, 30_000, 333] });
/**
 * Files published after the first run, ending minutes ago: a run that found nothing moved the
 * cursor to its listing time less the publication delay (30 minutes), not past these.
 */
const LATER = hourlyFiles(4, { sizes: [700, 20_000] }).map((f, i) => ({
  ...f,
  id: `eclf_auth_log_later_${i}`,
  endTime: new Date(Date.now() - (20 - 4 * i) * 60_000).toISOString(),
}));
const decoder = new TextDecoder();

function run(
  emulator: Emulator,
  dir: string,
  extra: string[] = [],
  onSpawn?: CliOptions["onSpawn"],
) {
  return runCli(
    [
      PRINCIPAL,
      "AUTH_LOG",
      "3",
      AFTER,
      "-o",
      join(dir, "out.jsonl"),
      "--state",
      join(dir, "state.json"),
      "--backoff",
      "0.01",
      ...extra,
    ],
    { env: envFor(emulator), timeoutMs: 60_000, onSpawn },
  );
}

test(
  "with --state, each run appends its files; a run that finds nothing leaves -o untouched",
  SLOW,
  async () => {
    await withEmulator({ files: FIRST }, async (emulator) => {
      await withDir("oai-append-", async (dir) => {
        const out = join(dir, "out.jsonl");
        const first = await run(emulator, dir);
        assert.equal(first.code, 0, first.stderr);
        const firstBytes = await expectedStream(emulator, idsOf(emulator));
        assertSameBytes(new Uint8Array(await readFile(out)), firstBytes, "after the first run");

        // Nothing new: not a byte, not even the mtime.
        const then = new Date(Date.now() - 3600_000);
        await utimes(out, then, then);
        const { mtimeMs } = await stat(out);
        const empty = await run(emulator, dir);
        assert.equal(empty.code, 0, empty.stderr);
        assertSameBytes(new Uint8Array(await readFile(out)), firstBytes, "after a run with none");
        assert.equal((await stat(out)).mtimeMs, mtimeMs, "mtime of a run that found nothing");

        emulator.addFiles(LATER);
        const later = await run(emulator, dir);
        assert.equal(later.code, 0, later.stderr);
        const laterIds = LATER.map((f) => f.id);
        assertSameBytes(
          new Uint8Array(await readFile(out)),
          concat([firstBytes, await expectedStream(emulator, laterIds)]),
          "the later files appended after the first run's",
        );
      });
    });
  },
);

test("--follow -o FILE appends on each poll", SLOW, async () => {
  await withEmulator({ files: FIRST }, async (emulator) => {
    await withDir("oai-append-", async (dir) => {
      const out = join(dir, "out.jsonl");
      let child: ChildProcess | undefined;
      const done = run(emulator, dir, ["--follow", "--interval", "0.3"], (c) => child = c);
      const firstBytes = await expectedStream(emulator, idsOf(emulator));
      await waitFor("the first poll", () => sizeOf(out) === firstBytes.length);
      emulator.addFiles(LATER);
      const all = concat([firstBytes, await expectedStream(emulator, LATER.map((f) => f.id))]);
      await waitFor("a later poll", () => sizeOf(out) === all.length);
      child!.kill("SIGTERM");
      const r = await done;
      assert.ok(r.code === 143 || r.signal === "SIGTERM", `${r.code} ${r.signal}\n${r.stderr}`);
      assertSameBytes(new Uint8Array(await readFile(out)), all, "each poll appended");
    });
  });
});

/** Resolves once `ready()` holds; fails after 30 s. */
async function waitFor(what: string, ready: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

test("without --state, -o still replaces the whole file", SLOW, async () => {
  await withEmulator({ files: FIRST }, async (emulator) => {
    await withDir("oai-append-", async (dir) => {
      const out = join(dir, "out.jsonl");
      await writeFile(out, '{"old":true}\n');
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "3", AFTER, "-o", out], {
        env: envFor(emulator),
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assertSameBytes(
        new Uint8Array(await readFile(out)),
        await expectedStream(emulator, idsOf(emulator)),
        "replaced",
      );
    });
  });
});

test(
  "a file ending in an incomplete line is cut back to its last newline, then appended",
  SLOW,
  async () => {
    await withEmulator({ files: FIRST }, async (emulator) => {
      await withDir("oai-append-", async (dir) => {
        const out = join(dir, "out.jsonl");
        const first = await run(emulator, dir);
        assert.equal(first.code, 0, first.stderr);
        const firstBytes = new Uint8Array(await readFile(out));
        await appendFile(out, '{"cut":"by a cra');
        emulator.addFiles(LATER);
        const next = await run(emulator, dir);
        assert.equal(next.code, 0, next.stderr);
        assertSameBytes(
          new Uint8Array(await readFile(out)),
          concat([firstBytes, await expectedStream(emulator, LATER.map((f) => f.id))]),
          "cut back, then appended",
        );
      });
    });
  },
);

test(
  "killed with SIGKILL mid-append, then run again: every line whole, none lost, none shrunk",
  { ...SLOW, skip: (RUNS_WINDOWS || process.platform === "win32") && "SIGKILL" },
  async () => {
    // Files of several MiB are appended in 1 MiB writes: a kill while the file grows mostly
    // lands between two of them, leaving an incomplete last line.
    const files = hourlyFiles(4, { sizes: [6_000_000, 40_000, 5_000_000, 3_000_000] });
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-append-", async (dir) => {
        const out = join(dir, "out.jsonl");
        const want = decoder.decode(await expectedStream(emulator, idsOf(emulator)));
        const wantLines = want.split("\n").slice(0, -1);
        let kept = "";
        let partial = 0;
        for (let kill = 0; kill < 3; kill++) {
          const from = sizeOf(out);
          let poll: ReturnType<typeof setInterval> | undefined;
          const r = await run(emulator, dir, [], (child) => {
            poll = setInterval(() => {
              // Killed once this run has appended something, most likely mid-file.
              if (sizeOf(out) <= from) return;
              clearInterval(poll);
              try {
                process.kill(child.pid!, "SIGKILL");
              } catch {
                // Already exited.
              }
            }, 1);
          });
          clearInterval(poll);
          if (r.code === 0) break;
          assert.equal(r.signal, "SIGKILL", r.stderr);
          const text = await readFile(out, "utf8");
          if (!text.endsWith("\n")) partial++;
          const complete = text.slice(0, text.lastIndexOf("\n") + 1);
          assert.ok(complete.startsWith(kept), "the complete lines of earlier runs are all there");
          kept = complete;
        }
        const last = await run(emulator, dir);
        assert.equal(last.code, 0, last.stderr);
        const text = await readFile(out, "utf8");
        assert.ok(text.startsWith(kept), "never shrunk below the complete lines a shipper read");
        assert.ok(text.endsWith("\n"));
        const got = text.split("\n").slice(0, -1);
        const known = new Set(wantLines);
        for (const line of got) assert.ok(known.has(line), `not whole: ${line.slice(0, 80)}`);
        const present = new Set(got);
        for (const line of wantLines) assert.ok(present.has(line), `lost: ${line.slice(0, 80)}`);
        assert.ok(partial >= 1, "no kill left an incomplete line: the test proved nothing");
      });
    });
  },
);

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
