/**
 * The checkpoint and the outputs, black-box: `--state` refusals that touch nothing, the lock
 * against overlapping runs, resuming with only new files, boundary ids remembered across runs,
 * `-o` never letting the checkpoint get ahead of its commit, `--output-dir` written exactly once
 * (idempotent, gzip, owner-only), and SIGINT/SIGTERM leaving no partial file and a consistent
 * checkpoint.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { gunzipSync } from "node:zlib";
import type { Emulator, FileSpec } from "./emulator/mod.ts";
import { type CliResult, concat, runCli, RUNS_WINDOWS } from "./helpers/cli.ts";
import { assertSameBytes, readTree as readAll } from "./helpers/compare.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";
import { SLOW, withDir as withTempDir } from "./helpers/mod.ts";
import { LEGACY_ALL_EVENT_TYPES, WORKSPACE_EVENT_TYPES } from "../lib/event_types.ts";

/** The tree's log files and temps: the runs' manifests (`_manifest/`) are tests/verify.test.ts's. */
async function readTree(root: string): Promise<Map<string, Uint8Array>> {
  const tree = await readAll(root);
  for (const path of tree.keys()) if (/^_manifest[\\/]/.test(path)) tree.delete(path);
  return tree;
}

async function listTree(root: string): Promise<string[]> {
  return [...(await readTree(root)).keys()];
}

/** Bun's default of 5 s per test is too short on a busy 2-core CI machine or an emulated CPU. */

/**
 * Makes temps look untouched for an hour: a temp with a dead pid is removed only once older than
 * 10 minutes, as its owner may be alive in another PID namespace.
 */
async function backdateTemps(dir: string): Promise<void> {
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const name of await readdir(dir)) {
    if (name.endsWith(".part")) await utimes(join(dir, name), hourAgo, hourAgo);
  }
}

const POSIX = !RUNS_WINDOWS && process.platform !== "win32";
const FILES: FileSpec[] = hourlyFiles(12, { sizes: [1500, 0, 30_000, 333, 8000] });

/** Runs `fn` in a fresh temp directory (tests/helpers/mod.ts). */
const withDir = <T>(fn: (dir: string) => Promise<T>) => withTempDir("oai-state-cli-", fn);

function run(
  emulator: Emulator,
  extra: string[],
  options: { after?: string; onSpawn?: (child: ChildProcess) => void } = {},
): Promise<CliResult> {
  return runCli(
    [PRINCIPAL, "AUTH_LOG", "5", options.after ?? AFTER, "--backoff", "0.01", ...extra],
    { env: envFor(emulator), timeoutMs: 30_000, onSpawn: options.onSpawn },
  );
}

interface StateFile {
  principal: string;
  eventTypes: string[];
  cursors: Record<string, { after: string; seen: string[] }>;
}

async function readState(path: string): Promise<StateFile> {
  return JSON.parse(await readFile(path, "utf8"));
}

/** The ids a checkpoint says were delivered: those at or before its `after`, plus `seen`. */
function claimedIds(emulator: Emulator, state: StateFile): string[] {
  const cursor = state.cursors.AUTH_LOG;
  if (!cursor) return [];
  const at = Date.parse(cursor.after);
  return emulator.files
    .filter((f) => Date.parse(f.endTime) <= at || cursor.seen.includes(f.id!))
    .map((f) => f.id!);
}

/** Where `--output-dir` puts a file of the default fixtures. */
function treePath(emulator: Emulator, id: string, gzip = false): string {
  const file = emulator.files.find((f) => f.id === id)!;
  return join("AUTH_LOG", file.endTime.slice(0, 10), `${id}.jsonl${gzip ? ".gz" : ""}`);
}

/** The exact tree a complete `--output-dir` run must leave. */
async function expectedTree(emulator: Emulator): Promise<Map<string, Uint8Array>> {
  const tree = new Map<string, Uint8Array>();
  for (const id of idsOf(emulator)) tree.set(treePath(emulator, id), await emulator.contentOf(id));
  return tree;
}

function assertSameTree(
  actual: Map<string, Uint8Array>,
  expected: Map<string, Uint8Array>,
  what: string,
) {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: file names`);
  for (const [path, bytes] of expected) {
    assertSameBytes(actual.get(path)!, bytes, `${what}: ${path}`);
  }
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const code = "0";
  const args = process.versions.deno ? ["eval", code] : ["-e", code];
  const child = spawn(process.execPath, args, { stdio: "ignore" });
  await new Promise((done) => child.on("exit", done));
  return child.pid!;
}

function lockText(pid: number): string {
  return JSON.stringify({ pid, hostname: hostname(), startedAt: new Date().toISOString() }) + "\n";
}

/**
 * Sends `signal` to the CLI. Not `child.kill()`: under Deno, a child killed that way is reported
 * as ended by the signal even when it handled it and exited with its own code.
 */
function signalCli(child: ChildProcess | undefined, signal: NodeJS.Signals): void {
  assert.ok(child?.pid, "the CLI was spawned");
  process.kill(child.pid, signal);
}

/** Output files in place under `root` (temps excluded). */
async function delivered(root: string): Promise<string[]> {
  return (await listTree(root)).filter((path) => !path.endsWith(".part"));
}

/** Resolves once `check` holds, polling every 10 ms (fails after `ms`). */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

/** Waits until the emulator's storage host has been asked for `count` downloads. */
function untilDownloads(emulator: Emulator, count: number): Promise<void> {
  const started = () => emulator.requests.filter((q) => q.server === "storage").length;
  return until(() => Promise.resolve(started() >= count), 20_000, `${count} downloads`);
}

test(
  "a state file of another principal, another event type, corrupt or of another version is refused and left byte-identical",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const valid = (principal: string, types: string[]) =>
          JSON.stringify({ version: 1, principal, eventTypes: types, cursors: {} }, null, 2) + "\n";
        const cases: Array<[string, RegExp]> = [
          [
            valid("ws-another", ["AUTH_LOG"]),
            /belongs to principal ws-another, not ws-0f0e0d0c-demo/,
          ],
          [valid(PRINCIPAL, ["AUDIT_LOG"]), /tracks event types AUDIT_LOG, not AUTH_LOG/],
          ['{"version": 1, "principal": "ws-0f0e', /is not valid JSON/],
          ["", /is not a valid checkpoint: it is empty/],
          ["[]", /is not a valid checkpoint/],
          [valid(PRINCIPAL, ["AUTH_LOG"]).replace('"version": 1', '"version": 7'), /has version 7/],
        ];
        // An earlier run's -o output must survive a refused run too.
        const out = join(dir, "out.jsonl");
        await writeFile(out, "earlier output\n");
        for (const [text, message] of cases) {
          await writeFile(state, text);
          const r = await run(emulator, ["--state", state, "-o", out]);
          assert.equal(r.code, 1, `${text}: ${r.stderr}`);
          assert.match(r.stderr, message);
          assert.match(r.stderr, /^error: state file /m);
          assert.equal(r.stdout.length, 0);
          assert.equal(await readFile(state, "utf8"), text, "the state file was not touched");
          assert.equal(
            await readFile(out, "utf8"),
            "earlier output\n",
            "the output was not touched",
          );
          assert.deepEqual(
            (await readdir(dir)).sort(),
            ["out.jsonl", "state.json"],
            "no lock or temp",
          );
        }
        assert.equal(emulator.requests.length, 0, "nothing was requested");
      });
    });
  },
);

test("a lock held by a live process is refused and neither file is touched", SLOW, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir(async (dir) => {
      const state = join(dir, "state.json");
      const first = await run(emulator, ["--state", state]);
      assert.equal(first.code, 0, first.stderr);
      const before = await readFile(state, "utf8");
      // The test runner itself is the live holder.
      const lock = lockText(process.pid);
      await writeFile(`${state}.lock`, lock);
      emulator.requests.length = 0;
      const r = await run(emulator, ["--state", state]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`error: another run \\(pid ${process.pid}, since .*\\) holds`),
      );
      assert.equal(await readFile(state, "utf8"), before);
      assert.equal(await readFile(`${state}.lock`, "utf8"), lock);
      assert.equal(emulator.requests.length, 0);
    });
  });
});

test(
  "two overlapping runs on one state file: the second is refused while the first goes on",
  SLOW,
  async () => {
    // The first run must outlast the second one's start-up (slow under an emulated CPU).
    const startup = (await runCli(["--version"])).ms;
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out");
        emulator.inject({ target: "storage", stallBeforeHeadersMs: Math.max(1000, 3 * startup) });
        let child: ChildProcess | undefined;
        const first = run(emulator, ["--state", state, "--output-dir", out, "--concurrency", "1"], {
          onSpawn: (c) => (child = c),
        });
        // The lock is created, then written: wait until it reads whole.
        let held: { pid?: number } = {};
        await until(
          async () => {
            try {
              held = JSON.parse(await readFile(`${state}.lock`, "utf8"));
            } catch {
              held = {}; // not created yet, or created but not written yet
            }
            return held.pid !== undefined;
          },
          10_000,
          "the lock",
        );
        assert.equal(held.pid, child!.pid);
        if (POSIX) assert.equal((await stat(`${state}.lock`)).mode & 0o777, 0o600);
        const second = await run(emulator, ["--state", state, "--output-dir", out]);
        assert.equal(second.code, 1, second.stderr);
        assert.match(
          second.stderr,
          new RegExp(`another run \\(pid ${child!.pid}, since .*\\) holds`),
        );
        const r = await first;
        assert.equal(r.code, 0, r.stderr);
        assertSameTree(await readTree(out), await expectedTree(emulator), "output");
        assert.deepEqual(
          (await readdir(dir)).sort(),
          ["out", "state.json"],
          "the lock is released",
        );
      });
    });
  },
);

test(
  "a stale lock left by a dead process is taken over with a warning and released",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const pid = await deadPid();
        await writeFile(`${state}.lock`, lockText(pid));
        const r = await run(emulator, ["--state", state]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`took over a stale lock .*pid ${pid} .*no longer running`),
        );
        assertSameBytes(r.stdout, await expectedStream(emulator, idsOf(emulator)));
        assert.deepEqual(await readdir(dir), ["state.json"]);
      });
    });
  },
);

test("a run resuming from the checkpoint delivers only the files that are new", SLOW, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir(async (dir) => {
      const state = join(dir, "state.json");
      const first = await run(emulator, ["--state", state]);
      assert.equal(first.code, 0, first.stderr);
      const oldIds = idsOf(emulator);
      const cursor = (await readState(state)).cursors.AUTH_LOG;
      assert.equal(Date.parse(cursor.after), Date.parse(FILES[FILES.length - 1].endTime));

      emulator.addFiles(
        hourlyFiles(7, { start: "2026-07-03T00:00:00Z" }).map((f, i) => ({
          ...f,
          id: `eclf_new_${i}`,
        })),
      );
      emulator.requests.length = 0;
      const second = await run(emulator, ["--state", state]);
      assert.equal(second.code, 0, second.stderr);
      const newIds = idsOf(emulator).filter((id) => !oldIds.includes(id));
      assert.equal(newIds.length, 7);
      assertSameBytes(second.stdout, await expectedStream(emulator, newIds), "second run");
      const lists = emulator.requests.filter((q) => q.path.endsWith("/logs"));
      assert.equal(lists[0].query.after, cursor.after, "listing starts at the checkpoint");
      const fetched = emulator.requests.filter((q) => q.server === "storage").map((q) => q.path);
      assert.deepEqual(fetched.sort(), newIds.map((id) => `/files/${id}`).sort());

      // Nothing new: nothing printed, nothing downloaded.
      emulator.requests.length = 0;
      const third = await run(emulator, ["--state", state]);
      assert.equal(third.code, 0, third.stderr);
      assert.equal(third.stdout.length, 0);
      assert.equal(emulator.requests.filter((q) => q.server === "storage").length, 0);
    });
  });
});

test(
  "with an inclusive after, the boundary file a later run is given again is not delivered twice",
  SLOW,
  async () => {
    await withEmulator({ files: FILES, inclusiveAfter: true }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const first = await run(emulator, ["--state", state]);
        assert.equal(first.code, 0, first.stderr);
        assertSameBytes(first.stdout, await expectedStream(emulator, idsOf(emulator)));
        const last = idsOf(emulator).at(-1)!;
        assert.deepEqual((await readState(state)).cursors.AUTH_LOG.seen, [last]);

        emulator.requests.length = 0;
        const again = await run(emulator, ["--state", state, "-v"]);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.stdout.length, 0, "the boundary file was printed again");
        assert.match(again.stderr, new RegExp(`Skipping ${last}: already delivered`));
        assert.equal(emulator.requests.filter((q) => q.server === "storage").length, 0);

        // Files sharing the boundary's end time and later ones still come through, once.
        const boundary = FILES[FILES.length - 1].endTime;
        emulator.addFiles([
          { id: "eclf_same_time", eventType: "AUTH_LOG", endTime: boundary, size: 900 },
          { id: "eclf_later", eventType: "AUTH_LOG", endTime: "2026-07-05T00:00:00Z", size: 700 },
        ]);
        const third = await run(emulator, ["--state", state]);
        assert.equal(third.code, 0, third.stderr);
        assertSameBytes(
          third.stdout,
          await expectedStream(emulator, ["eclf_same_time", "eclf_later"]),
          "third run",
        );
        const fourth = await run(emulator, ["--state", state]);
        assert.equal(fourth.code, 0, fourth.stderr);
        assert.equal(fourth.stdout.length, 0);
      });
    });
  },
);

test(
  "with -o and --state, a failing run's appended files are appended again after it",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out.jsonl");
        const ids = idsOf(emulator);
        emulator.inject({ target: "download", id: ids[7], status: 400 });
        const failed = await run(emulator, ["--state", state, "-o", out, "--concurrency", "1"]);
        assert.equal(failed.code, 1, failed.stderr);
        // -o appends with --state (issue 20): seven files went in whole; the checkpoint moved past
        // those synced (every few seconds), never past the failed one.
        const claimed = claimedIds(emulator, await readState(state));
        assert.ok(!claimed.includes(ids[7]));
        const before = await readFile(out, "utf8").catch(() => "");
        assert.deepEqual((await readdir(dir)).sort(), ["out.jsonl", "state.json"]);

        const ok = await run(emulator, ["--state", state, "-o", out]);
        assert.equal(ok.code, 0, ok.stderr);
        const rest = ids.filter((id) => !claimed.includes(id));
        assertSameBytes(
          new Uint8Array(await readFile(out)),
          concat([new TextEncoder().encode(before), await expectedStream(emulator, rest)]),
        );
        assert.deepEqual(claimedIds(emulator, await readState(state)).sort(), [...ids].sort());
        if (POSIX) assert.equal((await stat(out)).mode & 0o777, 0o600);
      });
    });
  },
);

test(
  "with -o and --state, a run killed mid-append leaves whole lines, appended again after it",
  SLOW,
  async () => {
    await withEmulator({ files: FILES, latencyMs: 30 }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out.jsonl");
        let child: ChildProcess | undefined;
        const running = run(emulator, ["--state", state, "-o", out, "--concurrency", "1"], {
          onSpawn: (c) => (child = c),
        });
        // Kill once most files have been fetched (so several were appended).
        await untilDownloads(emulator, 8);
        signalCli(child, "SIGKILL");
        const killed = await running;
        assert.equal(killed.signal, "SIGKILL");
        const claimed = claimedIds(emulator, await readState(state));
        const text = await readFile(out, "utf8").catch(() => "");
        const whole = text.slice(0, text.lastIndexOf("\n") + 1);

        const ok = await run(emulator, ["--state", state, "-o", out]);
        assert.equal(ok.code, 0, ok.stderr);
        // The complete lines stay (a shipper may have read them), an incomplete last one goes,
        // and every file past the checkpoint follows: at least once.
        const rest = idsOf(emulator).filter((id) => !claimed.includes(id));
        assertSameBytes(
          new Uint8Array(await readFile(out)),
          concat([new TextEncoder().encode(whole), await expectedStream(emulator, rest)]),
        );
        // Appending leaves no temp beside the output.
        assert.deepEqual((await readdir(dir)).sort(), ["out.jsonl", "state.json"]);
      });
    });
  },
);
test(
  "temps left beside the state file and the -o file by a killed run are removed by the next",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out.jsonl");
        const dead = await deadPid();
        const stale = [
          `.state.json.${dead}.0123456789ab.part`,
          `.state.json.lock.${dead}.0123456789ab.part`,
          `.out.jsonl.${dead}.0123456789ab.part`,
        ];
        // Not this run's to remove: a temp of a live process, and one of another file.
        const kept = [
          `.out.jsonl.${process.pid}.0123456789ab.part`,
          `.notes.txt.${dead}.0a0a0a0a0a0a.part`,
        ];
        for (const name of [...stale, ...kept]) await writeFile(join(dir, name), "partial");
        await backdateTemps(dir);
        const r = await run(emulator, ["--state", state, "-o", out]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual((await readdir(dir)).sort(), [...kept, "out.jsonl", "state.json"].sort());
      });
    });
  },
);

test(
  "re-running into the same --output-dir makes no storage request and rewrites nothing",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const out = join(dir, "out");
        const first = await run(emulator, ["--output-dir", out]);
        assert.equal(first.code, 0, first.stderr);
        assert.equal(first.stdout.length, 0);
        assertSameTree(await readTree(out), await expectedTree(emulator), "first run");
        const mtimes = new Map<string, number>();
        for (const path of await listTree(out)) {
          mtimes.set(path, (await stat(join(out, path))).mtimeMs);
        }

        emulator.requests.length = 0;
        const second = await run(emulator, ["--output-dir", out]);
        assert.equal(second.code, 0, second.stderr);
        assert.equal(emulator.requests.filter((q) => q.server === "storage").length, 0);
        assert.equal(emulator.requests.filter((q) => /\/logs\/[^/]+$/.test(q.path)).length, 0);
        assert.match(second.stderr, /Summary: 0 files, .* 12 skipped/);
        assertSameTree(await readTree(out), await expectedTree(emulator), "second run");
        for (const [path, mtime] of mtimes) {
          assert.equal((await stat(join(out, path))).mtimeMs, mtime, `${path} was rewritten`);
        }

        // A damaged file is not "already there": it is kept aside as evidence and downloaded
        // again; the others are not.
        const victim = treePath(emulator, idsOf(emulator)[2]);
        await writeFile(join(out, victim), "damaged\n");
        emulator.requests.length = 0;
        const third = await run(emulator, ["--output-dir", out]);
        assert.equal(third.code, 0, third.stderr);
        assert.deepEqual(
          emulator.requests.filter((q) => q.server === "storage").map((q) => q.path),
          [`/files/${idsOf(emulator)[2]}`],
        );
        const tree = await readTree(out);
        const aside = [...tree.keys()].filter((p) => p.startsWith(`${victim}.altered-`));
        assert.equal(aside.length, 1, [...tree.keys()].join(" "));
        assert.equal(new TextDecoder().decode(tree.get(aside[0])), "damaged\n");
        tree.delete(aside[0]);
        assertSameTree(tree, await expectedTree(emulator), "third run");
      });
    });
  },
);

test(
  "--gzip writes .jsonl.gz files that decompress to the served bytes, idempotently",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const out = join(dir, "out");
        // Also through a resumed download and one started again after a hash mismatch.
        const [, , big, , other] = idsOf(emulator);
        emulator.inject({ target: "storage", id: big, cutAfterBytes: 10_000 });
        emulator.inject({ target: "storage", id: other, corruptBytes: true });
        const first = await run(emulator, ["--output-dir", out, "--gzip"]);
        assert.equal(first.code, 0, first.stderr);
        const tree = await readTree(out);
        const ids = idsOf(emulator);
        assert.deepEqual(
          [...tree.keys()].sort(),
          ids.map((id) => treePath(emulator, id, true)).sort(),
        );
        assert.equal(emulator.faultsRemaining(), 0);
        for (const id of ids) {
          const gz = tree.get(treePath(emulator, id, true))!;
          assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b], `${id} is gzip`);
          assertSameBytes(new Uint8Array(gunzipSync(gz)), await emulator.contentOf(id), id);
        }
        emulator.requests.length = 0;
        const second = await run(emulator, ["--output-dir", out, "--gzip"]);
        assert.equal(second.code, 0, second.stderr);
        assert.equal(emulator.requests.filter((q) => q.server === "storage").length, 0);
      });
    });
  },
);

test("outputs, the state file and the lock are readable by the owner only", {
  ...SLOW,
  skip: !POSIX,
}, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir(async (dir) => {
      const state = join(dir, "state.json");
      const out = join(dir, "out");
      const r = await run(emulator, ["--state", state, "--output-dir", out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await stat(state)).mode & 0o777, 0o600, "state file");
      const paths = await listTree(out);
      assert.equal(paths.length, FILES.length);
      for (const path of paths) {
        assert.equal((await stat(join(out, path))).mode & 0o777, 0o600, path);
      }
      const gz = join(dir, "gz");
      const g = await run(emulator, ["--output-dir", gz, "--gzip"]);
      assert.equal(g.code, 0, g.stderr);
      for (const path of await listTree(gz)) {
        assert.equal((await stat(join(gz, path))).mode & 0o777, 0o600, path);
      }
    });
  });
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  test(
    `${signal} stops the run with exit ${code}, no partial file and a consistent checkpoint`,
    SLOW,
    async () => {
      const files = hourlyFiles(30, { sizes: [20_000, 3000, 50_000] });
      await withEmulator({ files, latencyMs: 25 }, async (emulator) => {
        await withDir(async (dir) => {
          const state = join(dir, "state.json");
          const out = join(dir, "out");
          let child: ChildProcess | undefined;
          const running = run(emulator, ["--state", state, "--output-dir", out], {
            onSpawn: (c) => (child = c),
          });
          await until(async () => (await delivered(out)).length >= 4, 20_000, "four files");
          signalCli(child, signal);
          const r = await running;
          assert.equal(r.code, code, r.stderr);
          assert.match(r.stderr, new RegExp(`Received ${signal}`));

          const tree = await readTree(out);
          const all = await expectedTree(emulator);
          assert.ok(tree.size < all.size, "the run was stopped before the end");
          for (const [path, bytes] of tree) {
            assert.ok(all.has(path), `unexpected file ${path} (a temp left behind?)`);
            assertSameBytes(bytes, all.get(path)!, path);
          }
          assert.deepEqual((await readdir(dir)).sort(), ["out", "state.json"], "lock released");
          // Every file the checkpoint counts as delivered is on disk.
          const claimed = claimedIds(emulator, await readState(state));
          assert.ok(claimed.length > 0, "the checkpoint moved");
          for (const id of claimed) assert.ok(tree.has(treePath(emulator, id)), `${id} missing`);

          const rest = await run(emulator, ["--state", state, "--output-dir", out]);
          assert.equal(rest.code, 0, rest.stderr);
          assertSameTree(await readTree(out), all, "after the resumed run");
        });
      });
    },
  );
}

test(
  "SIGTERM on a stdout run: the two runs' outputs add up to one fault-free run",
  SLOW,
  async () => {
    const files = hourlyFiles(30, { sizes: [20_000, 3000, 50_000] });
    await withEmulator({ files, latencyMs: 25 }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        let child: ChildProcess | undefined;
        const running = run(emulator, ["--state", state], { onSpawn: (c) => (child = c) });
        await untilDownloads(emulator, 6);
        signalCli(child, "SIGTERM");
        const first = await running;
        assert.equal(first.code, 143, first.stderr);
        const second = await run(emulator, ["--state", state]);
        assert.equal(second.code, 0, second.stderr);
        assert.ok(first.stdout.length > 0 && second.stdout.length > 0);
        assertSameBytes(
          concat([first.stdout, second.stdout]),
          await expectedStream(emulator, idsOf(emulator)),
          "stdout of both runs",
        );
      });
    });
  },
);

test(
  "SIGINT on a -o --state run leaves whole files, no temp, and the checkpoint behind them",
  SLOW,
  async () => {
    const files = hourlyFiles(30, { sizes: [20_000, 3000, 50_000] });
    await withEmulator({ files, latencyMs: 25 }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out.jsonl");
        let child: ChildProcess | undefined;
        const running = run(emulator, ["--state", state, "-o", out], {
          onSpawn: (c) => (child = c),
        });
        await untilDownloads(emulator, 6);
        signalCli(child, "SIGINT");
        const r = await running;
        assert.equal(r.code, 130, r.stderr);
        const names = await readdir(dir);
        assert.ok(names.every((name) => ["out.jsonl", "state.json"].includes(name)), `${names}`);
        // Appended in listing order (issue 20); the checkpoint is never past what is in it.
        const text = await readFile(out, "utf8").catch(() => "");
        const want = new TextDecoder().decode(await expectedStream(emulator, idsOf(emulator)));
        assert.ok(want.startsWith(text.slice(0, text.lastIndexOf("\n") + 1)));
        const claimed = claimedIds(emulator, await readState(state));
        const claimedBytes = await expectedStream(emulator, claimed);
        assert.ok(text.startsWith(new TextDecoder().decode(claimedBytes)));
      });
    });
  },
);

for (
  const [what, fault] of [
    ["a long Retry-After wait", { target: "list", status: 429, headers: { "retry-after": "60" } }],
    // The first file (1500 bytes) is the one stalled: a stall that happened to hit the empty
    // file would let the run finish before the signal is sent.
    ["a stalled download", { target: "storage", id: FILES[0].id, stallAfterBytes: 10 }],
  ] as const
) {
  test(`SIGTERM during ${what} ends the run at once`, SLOW, async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        emulator.inject(fault);
        let child: ChildProcess | undefined;
        const running = run(emulator, ["--state", state, "--timeout", "60"], {
          onSpawn: (c) => (child = c),
        });
        await until(() => Promise.resolve(emulator.faultsUsed() === 1), 20_000, "the fault");
        await new Promise((done) => setTimeout(done, 200));
        const sent = Date.now();
        signalCli(child, "SIGTERM");
        const r = await running;
        assert.equal(r.code, 143, r.stderr);
        assert.ok(Date.now() - sent < 5000, `exited ${Date.now() - sent} ms after SIGTERM`);
        assert.deepEqual(await readdir(dir), ["state.json"]);
      });
    });
  });
}

test(
  "spool files a killed stdout run left in the temp directory are removed by the next run",
  SLOW,
  async () => {
    const files = hourlyFiles(30, { sizes: [60_000, 3000, 90_000] });
    await withEmulator({ files, latencyMs: 20 }, async (emulator) => {
      await withDir(async (dir) => {
        const temp = join(dir, "tmp");
        await mkdir(temp);
        // Not the next run's to remove: another live process's spool directory, and a stranger.
        const kept = [`oai-compliance-logs-${process.pid}-keep01`, "oai-compliance-logs-unrelated"];
        for (const name of kept) await mkdir(join(temp, name));
        const env = { ...envFor(emulator), TMPDIR: temp };
        const args = [PRINCIPAL, "AUTH_LOG", "5", AFTER, "--state", join(dir, "state.json")];
        let child: ChildProcess | undefined;
        const running = runCli(args, { env, timeoutMs: 30_000, onSpawn: (c) => (child = c) });
        await untilDownloads(emulator, 8);
        signalCli(child, "SIGKILL");
        assert.equal((await running).signal, "SIGKILL");
        // Spools live in a private root in the temp dir (lib/destinations/spool_dir.ts).
        const rootName = process.getuid
          ? `oai-compliance-logs-${process.getuid()}`
          : "oai-compliance-logs";
        const root = join(temp, rootName);
        assert.deepEqual((await readdir(temp)).filter((name) => !kept.includes(name)), [rootName]);
        const left = await readdir(root);
        assert.equal(left.length, 1, `spool directories after the kill: ${left.join(", ")}`);

        const r = await runCli(args, { env, timeoutMs: 30_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual((await readdir(temp)).sort(), [...kept, rootName].sort());
        assert.deepEqual(await readdir(root), [], "the killed run's spool was left");
      });
    });
  },
);

// ---------------------------------------------------------------------------------------------
// state show | reset: the command's own arguments

const STATE_TEXT = JSON.stringify({
  version: 1,
  principal: PRINCIPAL,
  eventTypes: ["AUTH_LOG"],
  cursors: {
    AUTH_LOG: { after: "2026-07-01T00:00:00Z", seen: ["f1"], updatedAt: "2026-07-01T00:00:01Z" },
  },
});

test(
  "state refuses any option it does not take with one usage line, and touches nothing",
  SLOW,
  async () => {
    await withDir(async (dir) => {
      const state = join(dir, "state.json");
      await writeFile(state, STATE_TEXT);
      const out = join(dir, "x");
      const cases: [string[], string][] = [
        [["show", state, "--gzip"], "--gzip"],
        [
          ["show", state, "--gzip", "--follow", "--concurrency", "9", "--output-dir", out],
          "--gzip",
        ],
        [["--concurrency", "9", "show", state], "--concurrency"],
        [["reset", state, "--output-dir", out], "--output-dir"],
        [["reset", state, "AUTH_LOG", "--follow"], "--follow"],
      ];
      for (const [args, option] of cases) {
        const r = await runCli(["state", ...args], { timeoutMs: 30_000 });
        const what = `state ${args.join(" ")}: ${r.stderr}`;
        assert.equal(r.code, 2, what);
        assert.equal(r.stdout.length, 0, what);
        assert.equal(r.stderr.trimEnd().split("\n").length, 1, what);
        assert.ok(r.stderr.includes(`does not take ${option}`), what);
        assert.equal(await readFile(state, "utf8"), STATE_TEXT, what);
        assert.deepEqual(await readdir(dir), ["state.json"], what);
      }
    });
  },
);

test("state --help describes only state's usage, none of a run's options", SLOW, async () => {
  for (const args of [["state", "--help"], ["state", "show", "state.json", "-h"]]) {
    const r = await runCli(args, { timeoutMs: 30_000 });
    const help = new TextDecoder().decode(r.stdout);
    assert.equal(r.code, 0, r.stderr);
    assert.match(help, /^Usage: oai-compliance-logs state show <state_file>$/m);
    assert.match(help, /state reset <state_file> \[event_type\]$/m);
    for (const other of ["--concurrency", "--gzip", "--follow", "--output-dir", "<limit>"]) {
      assert.ok(!help.includes(other), `${args.join(" ")} mentions ${other}:\n${help}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// state skip, state show, and state files of version 1

test(
  "a poison file stops the run naming state skip; after the skip a run passes it and show lists it",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "s.json");
        const out = join(dir, "out");
        const ids = idsOf(emulator);
        // A file (of 40 kB) whose bytes never match its listed SHA-256, on every try.
        emulator.inject({ target: "storage", id: ids[2], corruptBytes: true, times: Infinity });
        const first = await run(emulator, ["--state", state, "--output-dir", out]);
        assert.equal(first.code, 1, first.stderr);
        const command = `oai-compliance-logs state skip ${state} AUTH_LOG ${ids[2]} --reason TEXT`;
        assert.ok(first.stderr.includes(command), first.stderr);

        const noReason = await runCli(["state", "skip", state, "AUTH_LOG", ids[2]]);
        assert.equal(noReason.code, 2, noReason.stderr);
        assert.match(noReason.stderr, /needs --reason TEXT/);
        const skip = await runCli([
          "state",
          "skip",
          state,
          "AUTH_LOG",
          ids[2],
          "--reason",
          "upstream copy corrupt, ticket 42",
        ]);
        assert.equal(skip.code, 0, skip.stderr);
        assert.match(new TextDecoder().decode(skip.stdout), /later runs pass AUTH_LOG file/);

        emulator.requests.length = 0;
        const again = await run(emulator, ["--state", state, "--output-dir", out]);
        assert.equal(again.code, 0, again.stderr);
        const asked = emulator.requests.filter((q) => q.path.endsWith(`/${ids[2]}`));
        assert.deepEqual(asked, [], "the skipped file is not downloaded");
        const stored = [...(await readTree(out)).keys()].sort();
        assert.deepEqual(stored, [ids[0], ids[1], ids[3]].map((id) => treePath(emulator, id)));
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.equal(saved.version, 2);
        assert.equal(
          Date.parse(saved.cursors.AUTH_LOG.after),
          Date.parse(emulator.files.at(-1)!.endTime),
        );

        const show = await runCli(["state", "show", state]);
        assert.equal(show.code, 0, show.stderr);
        assert.match(
          new TextDecoder().decode(show.stdout),
          new RegExp(`^ +skipped: ${ids[2]} \\(\\S+: upstream copy corrupt, ticket 42\\)$`, "m"),
        );
      });
    });
  },
);

test(
  "a version 1 state file keeps working: the run resumes from its cursor and writes version 2",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "s.json");
        const ids = idsOf(emulator);
        const at = emulator.files.find((f) => f.id === ids[1])!.endTime;
        const v1 = JSON.stringify({
          version: 1,
          principal: PRINCIPAL,
          eventTypes: ["AUTH_LOG"],
          cursors: { AUTH_LOG: { after: at, seen: [ids[1]], updatedAt: at } },
        });
        await writeFile(state, v1);
        const show = await runCli(["state", "show", state]);
        assert.equal(show.code, 0, show.stderr);
        assert.match(
          new TextDecoder().decode(show.stdout),
          new RegExp(`^AUTH_LOG +after ${at}`, "m"),
        );

        const r = await run(emulator, ["--state", state]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout, await expectedStream(emulator, ids.slice(2)));
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.equal(saved.version, 2);
        assert.deepEqual(saved.eventTypes, ["AUTH_LOG"]);
        assert.equal(
          Date.parse(saved.cursors.AUTH_LOG.after),
          Date.parse(emulator.files.at(-1)!.endTime),
        );
        assert.deepEqual([saved.gone, saved.skipped], [{}, {}]);
      });
    });
  },
);

test(
  "a state file the tool cannot use gets advice that state reset then agrees with",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "s.json");
        // A log named as the state file by mistake: no reset advice, and reset will not delete it.
        const log = '{"id":"e1"}\n{"id":"e2"}\n';
        await writeFile(state, log);
        const refused = await run(emulator, ["--state", state]);
        assert.equal(refused.code, 1, refused.stderr);
        assert.match(refused.stderr, /does not look like an oai-compliance-logs state file/);
        assert.doesNotMatch(refused.stderr, /state reset/);
        const reset = await runCli(["state", "reset", state]);
        assert.equal(reset.code, 1, reset.stderr);
        assert.equal(await readFile(state, "utf8"), log);

        // A truncated checkpoint: the advice is reset, and reset does it.
        await writeFile(state, STATE_TEXT.slice(0, 40));
        const corrupt = await run(emulator, ["--state", state]);
        assert.equal(corrupt.code, 1, corrupt.stderr);
        assert.ok(corrupt.stderr.includes(`run \`oai-compliance-logs state reset ${state}\``));
        const advised = await runCli(["state", "reset", state]);
        assert.equal(advised.code, 0, advised.stderr);
        assert.deepEqual(await readdir(dir), []);
      });
    });
  },
);

test(
  "every asked event type gets a cursor once listed to the end, so the next run needs no <after>",
  SLOW,
  async () => {
    // AUDIT_LOG has no file at all: before, the second run failed with exit 2.
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "s.json");
        const args = [PRINCIPAL, "AUTH_LOG,AUDIT_LOG", "5"];
        const env = envFor(emulator);
        const started = Date.now();
        const first = await runCli([...args, AFTER, "--state", state], { env });
        assert.equal(first.code, 0, first.stderr);
        const { cursors } = JSON.parse(await readFile(state, "utf8"));
        // Listed at `started` or later, less AUDIT_LOG's publication delay of 30 minutes.
        const audit = Date.parse(cursors.AUDIT_LOG.after);
        assert.ok(audit >= started - 30 * 60_000 - 1000, cursors.AUDIT_LOG.after);
        assert.ok(audit <= Date.now() - 30 * 60_000, cursors.AUDIT_LOG.after);
        assert.deepEqual(cursors.AUDIT_LOG.seen, []);

        const second = await runCli([...args, "--state", state], { env });
        assert.equal(second.code, 0, second.stderr);
        assert.equal(second.stdout.length, 0, "nothing new");
      });
    });
  },
);

test(
  "a state file an earlier version wrote for all keeps working with all and becomes version 2 all",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "s.json");
        const ids = idsOf(emulator);
        const at = emulator.files.find((f) => f.id === ids[0])!.endTime;
        await writeFile(
          state,
          JSON.stringify({
            version: 1,
            principal: PRINCIPAL,
            eventTypes: [...LEGACY_ALL_EVENT_TYPES],
            cursors: { AUTH_LOG: { after: at, seen: [ids[0]], updatedAt: at } },
          }),
        );
        const r = await runCli([PRINCIPAL, "all", "5", AFTER, "--state", state], {
          env: envFor(emulator),
          timeoutMs: 60_000,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout, await expectedStream(emulator, ids.slice(1)));
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.equal(saved.version, 2);
        assert.equal(saved.eventTypes, "all");
        // Every type of the route was listed to the end: each has a cursor now, files or not.
        assert.deepEqual(Object.keys(saved.cursors).sort(), [...WORKSPACE_EVENT_TYPES].sort());

        const again = await runCli([PRINCIPAL, "all", "5", "--state", state], {
          env: envFor(emulator),
          timeoutMs: 60_000,
        });
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.stdout.length, 0);
        const show = await runCli(["state", "show", state]);
        assert.match(new TextDecoder().decode(show.stdout), /^event types +all \(/m);
        // Named types are another job.
        const named = await runCli([PRINCIPAL, "AUTH_LOG", "5", "--state", state], {
          env: envFor(emulator),
        });
        assert.equal(named.code, 1, named.stderr);
        assert.match(named.stderr, /tracks event types all, not AUTH_LOG/);
      });
    });
  },
);
