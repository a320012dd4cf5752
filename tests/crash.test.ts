/**
 * The crash test: a multi-page, multi-file, two-event-type run with `--state` and `--output-dir`
 * is killed with SIGKILL at random points and restarted until it completes. After every kill no
 * output file may be partial and every file the checkpoint counts as delivered must be on disk;
 * at the end the tree must equal the fault-free run's exactly (nothing missing, nothing twice,
 * no temp left) and so must the checkpoint's cursors.
 *
 * The randomness is seeded; the seed is in every assertion message. Re-run one with
 * `CRASH_SEED=<seed>`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import process from "node:process";
import type { Emulator } from "./emulator/mod.ts";
import { type CliResult, runCli } from "./helpers/cli.ts";
import { assertSameBytes, readTree } from "./helpers/compare.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW } from "./helpers/mod.ts";

/** Bun's default of 5 s per test is too short on a busy 2-core CI machine or an emulated CPU. */

const KILLS = 8;
const FILES = [
  ...hourlyFiles(24, { sizes: [30_000, 2000, 0, 90_000, 500] }),
  ...hourlyFiles(12, { eventType: "AUDIT_LOG", sizes: [12_000, 45_000, 700] }),
];

/** mulberry32: a small seeded generator, so a failing sequence of kills can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function start(
  emulator: Emulator,
  dir: string,
  onSpawn?: (child: ChildProcess) => void,
): Promise<CliResult> {
  return runCli(
    [
      PRINCIPAL,
      "AUTH_LOG,AUDIT_LOG",
      "5",
      AFTER,
      "--state",
      join(dir, "state.json"),
      "--output-dir",
      join(dir, "out"),
      "--concurrency",
      "3",
      "--backoff",
      "0.01",
    ],
    { env: envFor(emulator), timeoutMs: 60_000, onSpawn },
  );
}

interface Cursors {
  [eventType: string]: { after: string; seen: string[] };
}

async function cursorsOf(dir: string): Promise<Cursors | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, "state.json"), "utf8");
  } catch {
    return undefined; // killed before the state file was created
  }
  const cursors: Cursors = {};
  for (const [type, c] of Object.entries(JSON.parse(text).cursors as Cursors)) {
    cursors[type] = { after: c.after, seen: [...c.seen].sort() };
  }
  return cursors;
}

/** The output paths a checkpoint counts as delivered: at or before its `after`, or in `seen`. */
function claimed(emulator: Emulator, cursors: Cursors): string[] {
  const paths: string[] = [];
  for (const f of emulator.files) {
    const cursor = cursors[f.eventType];
    if (!cursor) continue;
    if (Date.parse(f.endTime) <= Date.parse(cursor.after) || cursor.seen.includes(f.id!)) {
      paths.push(join(f.eventType, f.endTime.slice(0, 10), `${f.id}.jsonl`));
    }
  }
  return paths;
}

test(
  "killed with SIGKILL at random points and restarted, the run ends with the fault-free tree",
  SLOW,
  async () => {
    const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    const root = await mkdtemp(join(tmpdir(), "oai-crash-"));
    try {
      await withEmulator({ files: FILES, latencyMs: 15 }, async (emulator) => {
        // The fault-free run: the reference tree and checkpoint, and how long a whole run takes.
        const reference = join(root, "reference");
        const clean = await start(emulator, await mkdirp(reference));
        assert.equal(clean.code, 0, clean.stderr);
        const want = await logTree(join(reference, "out"));
        assert.equal(want.size, FILES.length, "the reference run wrote every file");
        for (const f of emulator.files) {
          const path = join(f.eventType, f.endTime.slice(0, 10), `${f.id}.jsonl`);
          assertSameBytes(want.get(path)!, await emulator.contentOf(f.id!), `reference ${path}`);
        }
        const wantCursors = await cursorsOf(reference);

        const dir = await mkdirp(join(root, "crashed"));
        const history: string[] = [];
        const context = () => `seed ${seed}; ${history.join(", ")}`;
        let landed = 0;
        for (let i = 0; i < KILLS; i++) {
          // A random point of what is left to do: after k more requests reach the emulator, plus
          // up to 10 ms. A resumed run makes at least 2 requests per file not yet on disk
          // (logs/{id}, then storage) and one listing per event type; drawing k past that minimum
          // could let the run finish first, near the end, and prove nothing.
          const onDisk = (await logTree(join(dir, "out"))).size;
          const left = 2 * (FILES.length - onDisk) + 2;
          const k = Math.floor(random() * left);
          const jitter = Math.round(random() * 10);
          const seen = emulator.requests.length;
          let poll: ReturnType<typeof setInterval> | undefined;
          const r = await start(emulator, dir, (child) => {
            poll = setInterval(() => {
              if (emulator.requests.length - seen < k) return;
              clearInterval(poll);
              setTimeout(() => {
                try {
                  process.kill(child.pid!, "SIGKILL");
                } catch {
                  // Already exited.
                }
              }, jitter);
            }, 1);
          });
          clearInterval(poll);
          const killed = r.signal === "SIGKILL" || r.code === null;
          history.push(
            `kill after ${k} requests + ${jitter} ms: ${killed ? "killed" : `exit ${r.code}`}`,
          );
          if (!killed) {
            assert.equal(r.code, 0, `${context()}\n${r.stderr}`);
            break; // finished before the kill: nothing left to interrupt
          }
          landed++;
          // After a kill: nothing in place is partial, and what the checkpoint claims is there.
          const tree = await logTree(join(dir, "out"));
          for (const [path, bytes] of tree) {
            if (path.endsWith(".part")) continue;
            assert.ok(want.has(path), `unexpected ${path}; ${context()}`);
            assertSameBytes(bytes, want.get(path)!, `${path} after a kill; ${context()}`);
          }
          const cursors = await cursorsOf(dir);
          if (cursors) {
            for (const path of claimed(emulator, cursors)) {
              assert.ok(tree.has(path), `checkpoint claims ${path}, not on disk; ${context()}`);
            }
          }
        }

        // The killed runs' temps are gone with the run after them, at once: the OS released the
        // lock each killed run held on its temps (a pid proves nothing across PID namespaces).
        // Those beside the state file go when the checkpoint opens; those in the tree when a run
        // writes into their directory, which it does for every file a killed run had in flight.
        const last = await start(emulator, dir);
        assert.equal(last.code, 0, `${context()}\n${last.stderr}`);
        const got = await logTree(join(dir, "out"));
        assert.deepEqual(
          [...got.keys()].sort(),
          [...want.keys()].sort(),
          `file names; ${context()}`,
        );
        const temps = [...(await readTree(dir)).keys()].filter((path) => path.endsWith(".part"));
        assert.deepEqual(temps, [], `temps left anywhere under the directory; ${context()}`);
        for (const [path, bytes] of want) {
          assertSameBytes(got.get(path)!, bytes, `${path}; ${context()}`);
        }
        assertCursorsReached(await cursorsOf(dir), wantCursors!, context());
        assert.deepEqual(
          (await readdir(dir)).sort(),
          ["out", "state.json"],
          `leftovers; ${context()}`,
        );
        // Most kills should land mid-run; if none did, the test proved nothing.
        assert.ok(landed >= KILLS / 2, `only ${landed} kills landed mid-run; ${context()}`);
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  },
);

/** The tree's log files and temps; the run manifests (`_manifest/`) are not compared. */
async function logTree(root: string): Promise<Map<string, Uint8Array>> {
  const tree = await readTree(root);
  for (const path of tree.keys()) if (path.startsWith(`_manifest${sep}`)) tree.delete(path);
  return tree;
}

/**
 * The crashed runs' checkpoint reached the fault-free one's: the same cursor, or (when the last
 * run found nothing new for a type, which moves its cursor to the listing time less the
 * publication delay) a later one.
 */
function assertCursorsReached(got: Cursors | undefined, want: Cursors, context: string): void {
  assert.deepEqual(Object.keys(got ?? {}).sort(), Object.keys(want).sort(), `types; ${context}`);
  for (const [type, cursor] of Object.entries(want)) {
    const reached = got![type];
    if (reached.after === cursor.after) {
      assert.deepEqual(reached, cursor, `${type} checkpoint; ${context}`);
    } else {
      assert.ok(
        Date.parse(reached.after) > Date.parse(cursor.after),
        `${type} checkpoint ${reached.after} before ${cursor.after}; ${context}`,
      );
    }
  }
}

async function mkdirp(path: string): Promise<string> {
  await mkdir(path, { recursive: true });
  return path;
}
