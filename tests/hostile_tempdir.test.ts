/**
 * Hostile neighbours (issue #10): the temp directory and output directories may hold links and
 * files planted by other local users, and other runs of the tool may share them. The CLI runs as
 * root from cron, so a clean-up that follows a link deletes whatever it points to.
 */
import assert from "node:assert/strict";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { runCli, RUNS_WINDOWS } from "./helpers/cli.ts";
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
import { deadPid, SLOW, withLockHeldElsewhere } from "./helpers/mod.ts";
import type { Emulator } from "./emulator/mod.ts";

const FILES = hourlyFiles(6, { sizes: [1500, 0, 30_000, 333] });
const DAY = "2026-07-02"; // of every file in FILES
const POSIX_ONLY = RUNS_WINDOWS && "symlinks, uids and modes mean nothing to a Windows binary";
const HELD_LOCK = RUNS_WINDOWS &&
  "a Linux process cannot hold a lock that a Windows binary under Wine can see";
const DAY_MS = 24 * 3600_000;
const UID = process.getuid?.() ?? 0;
const NOBODY = 65534;

/** A fresh directory with `tmp/` (the CLI's TMPDIR, sticky and world-writable like /tmp). */
async function withBase(fn: (base: string, tmp: string) => Promise<void>): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), "oai-hostile-"));
  try {
    const tmp = join(base, "tmp");
    await mkdir(tmp);
    if (!RUNS_WINDOWS) await chmod(tmp, 0o1777);
    await fn(base, tmp);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

/**
 * The temp directory the CLI will use: TMPDIR on POSIX; under Wine, whose TEMP always wins, the
 * prefix's own Temp folder.
 */
function cliTempDir(tmp: string): string {
  if (!RUNS_WINDOWS) return tmp;
  const user = process.env.USER ?? "root";
  return join(process.env.WINEPREFIX ?? "", "drive_c", "users", user, "Temp");
}

/** Where the CLI keeps its spools when XDG_RUNTIME_DIR is unset. */
function rootIn(tmp: string): string {
  return join(cliTempDir(tmp), RUNS_WINDOWS ? "oai-compliance-logs" : `oai-compliance-logs-${UID}`);
}

function run(emulator: Emulator, tmp: string, extra: string[] = [], xdg?: string) {
  return runCli([PRINCIPAL, "AUTH_LOG", "5", AFTER, ...extra], {
    env: { ...envFor(emulator), TMPDIR: tmp, XDG_RUNTIME_DIR: xdg },
    timeoutMs: 60_000,
  });
}

/** A directory of files a neighbour wants us to delete. */
async function makeVictim(dir: string, names = ["a.txt", "b.txt", "lock", "locked"]) {
  await mkdir(dir, { recursive: true });
  for (const name of names) await writeFile(join(dir, name), `victim ${name}\n`);
  return names;
}

async function assertVictimIntact(dir: string, names: string[]) {
  assert.deepEqual((await readdir(dir)).sort(), [...names].sort(), `files left in ${dir}`);
  for (const name of names) {
    assert.equal(await readFile(join(dir, name), "utf8"), `victim ${name}\n`);
  }
}

/** A spool as a run leaves it: owner-only, its lock file and marker, a partial download. */
async function makeSpool(path: string, { lock = true, ageMs = 0 } = {}) {
  await mkdir(path);
  await chmod(path, 0o700);
  if (lock) {
    await writeFile(join(path, "lock"), "");
    await writeFile(join(path, "locked"), "");
  }
  await writeFile(join(path, "0.part"), "partial compliance data\n");
  if (ageMs) {
    const then = new Date(Date.now() - ageMs);
    await utimes(path, then, then);
  }
}

async function exists(path: string): Promise<boolean> {
  return await lstat(path).then(() => true, () => false);
}

async function assertStdoutRunOk(emulator: Emulator, r: Awaited<ReturnType<typeof run>>) {
  assert.equal(r.code, 0, r.stderr);
  assertSameBytes(r.stdout, await expectedStream(emulator, idsOf(emulator)), "stdout");
}

test(
  "a symlink planted under a spool name in the temp dir is never followed",
  { ...SLOW, skip: POSIX_ONLY },
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (base, tmp) => {
        const victim = join(base, "victim");
        const names = await makeVictim(victim);
        const dead = await deadPid();
        // The old layout's name, with a dead pid, straight in the shared temp dir.
        await symlink(victim, join(tmp, `oai-compliance-logs-${dead}-x`));
        // A link among the spools of a root that is really ours.
        await mkdir(rootIn(tmp), { mode: 0o700 });
        await symlink(victim, join(rootIn(tmp), "spool-AbC123"));
        const r = await run(emulator, tmp);
        await assertStdoutRunOk(emulator, r);
        await assertVictimIntact(victim, names);
      });
    });
  },
);

test(
  "a spool root planted as a symlink, or pre-created with mode 0777, is not used or swept",
  { ...SLOW, skip: POSIX_ONLY },
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (base, tmp) => {
        // What the neighbour hopes we take for an abandoned spool of ours, a day old.
        const victim = join(base, "victim");
        await mkdir(victim, { mode: 0o700 });
        await makeSpool(join(victim, "spool-Old001"), { ageMs: 2 * DAY_MS });
        await symlink(victim, rootIn(tmp));
        const linked = await run(emulator, tmp);
        await assertStdoutRunOk(emulator, linked);
        assert.deepEqual(await readdir(victim), ["spool-Old001"]);
        assert.deepEqual((await readdir(join(victim, "spool-Old001"))).sort(), [
          "0.part",
          "lock",
          "locked",
        ]);

        // The same through a real directory that anyone may write to.
        await rm(rootIn(tmp));
        await mkdir(rootIn(tmp));
        await chmod(rootIn(tmp), 0o777);
        await makeSpool(join(rootIn(tmp), "spool-Old002"), { ageMs: 2 * DAY_MS });
        const open = await run(emulator, tmp);
        await assertStdoutRunOk(emulator, open);
        assert.deepEqual(await readdir(rootIn(tmp)), ["spool-Old002"]);
        assert.equal((await readdir(join(rootIn(tmp), "spool-Old002"))).length, 3);

        // An XDG_RUNTIME_DIR that is not private is ignored for the private root in TMPDIR.
        const xdg = join(base, "xdg");
        await mkdir(xdg);
        await chmod(xdg, 0o755);
        const publicXdg = await run(emulator, tmp, [], xdg);
        await assertStdoutRunOk(emulator, publicXdg);
        assert.deepEqual(await readdir(xdg), []);
      });
    });
  },
);

test(
  "spools go under a private XDG_RUNTIME_DIR when there is one",
  { ...SLOW, skip: POSIX_ONLY },
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (base, tmp) => {
        const xdg = join(base, "xdg");
        await mkdir(xdg);
        await chmod(xdg, 0o700);
        await mkdir(join(xdg, "oai-compliance-logs"), { mode: 0o700 });
        const dead = join(xdg, "oai-compliance-logs", "spool-Dead01");
        await makeSpool(dead);
        const r = await run(emulator, tmp, [], xdg);
        await assertStdoutRunOk(emulator, r);
        assert.equal(await exists(dead), false, "the dead run's spool was left");
        assert.deepEqual(await readdir(tmp), [], "the shared temp dir was used");
      });
    });
  },
);

test(
  "temp-named links and other users' temps beside -o and --output-dir outputs are left alone",
  { ...SLOW, skip: POSIX_ONLY },
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (base, tmp) => {
        const victimFile = join(base, "victim.txt");
        await writeFile(victimFile, "victim\n");
        const dead = await deadPid();
        const hourAgo = new Date(Date.now() - 3600_000);
        const plant = async (dir: string, final: string) => {
          await mkdir(dir, { recursive: true });
          await symlink(victimFile, join(dir, `.${final}.${dead}.0123456789ab.part`));
          // A neighbour's "temp" (in a sticky dir only its owner or root could delete it).
          const theirs = join(dir, `.${final}.${dead}.ba9876543210.part`);
          await writeFile(theirs, "theirs\n");
          await chown(theirs, NOBODY, NOBODY);
          await utimes(theirs, hourAgo, hourAgo);
          // A temp of ours whose owner may be alive in another PID namespace: too recent.
          await writeFile(join(dir, `.${final}.${dead}.00000000000a.part`), "recent\n");
          // A temp of ours, dead for an hour: the one thing to remove.
          const stale = join(dir, `.${final}.${dead}.00000000000b.part`);
          await writeFile(stale, "stale\n");
          await utimes(stale, hourAgo, hourAgo);
          return [
            `.${final}.${dead}.0123456789ab.part`,
            `.${final}.${dead}.ba9876543210.part`,
            `.${final}.${dead}.00000000000a.part`,
          ];
        };
        const outDir = join(base, "o");
        const keptO = await plant(outDir, "out.jsonl");
        const single = await run(emulator, tmp, ["-o", join(outDir, "out.jsonl")]);
        assert.equal(single.code, 0, single.stderr);
        assert.deepEqual((await readdir(outDir)).sort(), [...keptO, "out.jsonl"].sort());

        const tree = join(base, "tree");
        const dayDir = join(tree, "AUTH_LOG", DAY);
        const keptTree = await plant(dayDir, `${idsOf(emulator)[0]}.jsonl`);
        const many = await run(emulator, tmp, ["--output-dir", tree]);
        assert.equal(many.code, 0, many.stderr);
        const left = (await readdir(dayDir)).filter((name) => name.endsWith(".part"));
        assert.deepEqual(left.sort(), keptTree.sort());
        assert.equal(await readFile(victimFile, "utf8"), "victim\n");
      });
    });
  },
);

test(
  "a killed run's temps beside outputs go at once; a live neighbour's stay, whatever their pid",
  { ...SLOW, skip: HELD_LOCK },
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (base, tmp) => {
        const dead = await deadPid();
        const hourAgo = new Date(Date.now() - 3600_000);
        /** In `dir`: a dead run's temps (locked and lost, or killed before locking: empty), and a
         * live neighbour's, old and under a dead pid so that only its lock tells it is live. */
        const plant = async (dir: string, final: string) => {
          await mkdir(dir, { recursive: true });
          const killed = join(dir, `.${final}.${dead}.00000000000c.locked.part`);
          await writeFile(killed, "partial compliance data\n");
          const unlocked = join(dir, `.${final}.${dead}.00000000000e.part`);
          await writeFile(unlocked, "");
          const live = join(dir, `.${final}.${dead}.00000000000d.locked.part`);
          await writeFile(live, "a live neighbour's data\n");
          await utimes(live, hourAgo, hourAgo);
          return live;
        };
        const outDir = join(base, "o");
        const liveO = await plant(outDir, "out.jsonl");
        const tree = join(base, "tree");
        const dayDir = join(tree, "AUTH_LOG", DAY);
        const liveTree = await plant(dayDir, `${idsOf(emulator)[0]}.jsonl`);
        await withLockHeldElsewhere(liveO, async () => {
          await withLockHeldElsewhere(liveTree, async () => {
            const single = await run(emulator, tmp, ["-o", join(outDir, "out.jsonl")]);
            assert.equal(single.code, 0, single.stderr);
            const many = await run(emulator, tmp, ["--output-dir", tree]);
            assert.equal(many.code, 0, many.stderr);
          });
        });
        const tempsIn = async (dir: string) =>
          (await readdir(dir)).filter((name) => name.endsWith(".part"));
        assert.deepEqual(await tempsIn(outDir), [`.out.jsonl.${dead}.00000000000d.locked.part`]);
        assert.deepEqual(await tempsIn(dayDir), [liveTree.slice(dayDir.length + 1)]);
        assert.equal(await readFile(liveTree, "utf8"), "a live neighbour's data\n");
      });
    });
  },
);

test(
  "a leftover spool whose lock is free is removed; one without a lock only when a day old",
  SLOW,
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (_base, tmp) => {
        const root = rootIn(tmp);
        await rm(root, { recursive: true, force: true }); // Wine's Temp outlives a test
        await mkdir(root, { recursive: true, mode: 0o700 });
        const dead = join(root, "spool-Dead01");
        const oldUnlocked = join(root, "spool-OldOld");
        const youngUnlocked = join(root, "spool-Young1");
        await makeSpool(dead);
        await makeSpool(oldUnlocked, { lock: false, ageMs: 2 * DAY_MS });
        // Maybe a run between mkdtemp and taking its lock: it must survive.
        await makeSpool(youngUnlocked, { lock: false });
        const r = await run(emulator, tmp);
        await assertStdoutRunOk(emulator, r);
        assert.deepEqual(await readdir(root), ["spool-Young1"]);
        assert.deepEqual(await readdir(youngUnlocked), ["0.part"]);
        await rm(root, { recursive: true, force: true });
      });
    });
  },
);

test(
  "a spool whose lock a live process holds is left alone, whatever its name says",
  { ...SLOW, skip: HELD_LOCK },
  async () => {
    await withEmulator({ files: FILES }, async (emulator) => {
      await withBase(async (_base, tmp) => {
        const root = rootIn(tmp);
        await mkdir(root, { mode: 0o700 });
        const live = join(root, "spool-Live01");
        await makeSpool(live, { ageMs: 2 * DAY_MS });
        // An old-layout name with a dead pid, held by a live process all the same.
        const oldName = join(tmp, `oai-compliance-logs-${await deadPid()}-live01`);
        await makeSpool(oldName);
        await withLockHeldElsewhere(join(live, "lock"), async () => {
          await withLockHeldElsewhere(join(oldName, "lock"), async () => {
            const r = await run(emulator, tmp);
            await assertStdoutRunOk(emulator, r);
            assert.deepEqual((await readdir(live)).sort(), ["0.part", "lock", "locked"]);
            assert.deepEqual((await readdir(oldName)).sort(), ["0.part", "lock", "locked"]);
          });
        });
      });
    });
  },
);

test("two runs sharing one temp dir at the same time both deliver every byte", SLOW, async () => {
  const files = hourlyFiles(16, { sizes: [60_000, 3000, 90_000, 0] });
  await withEmulator({ files, latencyMs: 40 }, async (emulator) => {
    await withBase(async (_base, tmp) => {
      const runs = await Promise.all([0, 150, 300].map(async (delay) => {
        await new Promise((done) => setTimeout(done, delay));
        return run(emulator, tmp);
      }));
      for (const r of runs) await assertStdoutRunOk(emulator, r);
      // Each removed its own spool and nobody else's: the root is left empty.
      if (await exists(rootIn(tmp))) assert.deepEqual(await readdir(rootIn(tmp)), []);
    });
  });
});
