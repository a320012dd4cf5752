import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chown,
  mkdir,
  readdir,
  readFile,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { deadPid, withDir as withTempDir, withLivePid } from "../helpers/mod.ts";
import {
  createTempBeside,
  ensureDir,
  isProcessAlive,
  RECENT_TEMP_MS,
  removeStaleTemps,
  writeFileAtomic,
} from "../../lib/atomic.ts";
import { CliError } from "../../lib/errors.ts";

const POSIX = process.platform !== "win32";
const withDir = (fn: (dir: string) => Promise<void>) => withTempDir("oai-atomic-", fn);

const bytes = (text: string) => new TextEncoder().encode(text);

/** Makes `paths` look untouched for `ms` (stale temps must be older than RECENT_TEMP_MS). */
async function backdate(paths: string[], ms = RECENT_TEMP_MS + 60_000): Promise<void> {
  const then = new Date(Date.now() - ms);
  for (const path of paths) await utimes(path, then, then);
}

test("a committed temp file replaces the destination and leaves no temp behind", async () => {
  await withDir(async (dir) => {
    const final = join(dir, "out.jsonl");
    await writeFile(final, "old\n");
    const temp = await createTempBeside(final);
    await temp.write(bytes("new "));
    await temp.write(bytes("content\n"));
    assert.equal(temp.bytesWritten, 12);
    assert.equal(await readFile(final, "utf8"), "old\n", "unchanged until commit");
    await temp.commit();
    assert.equal(await readFile(final, "utf8"), "new content\n");
    assert.deepEqual(await readdir(dir), ["out.jsonl"]);
  });
});

test("a temp file is named .<basename>.<pid>.<random>.part beside the destination", async () => {
  await withDir(async (dir) => {
    const temp = await createTempBeside(join(dir, "a.jsonl"));
    const name = temp.path.slice(dir.length + 1);
    assert.match(name, new RegExp(`^\\.a\\.jsonl\\.${process.pid}\\.[0-9a-f]{12}\\.part$`));
    const other = await createTempBeside(join(dir, "a.jsonl"));
    assert.notEqual(other.path, temp.path);
    await temp.discard();
    await other.discard();
  });
});

test("a very long file name still gives a temp name the file system accepts", async () => {
  await withDir(async (dir) => {
    const final = join(dir, "é".repeat(120)); // 240 bytes: at the usual 255-byte limit
    await writeFileAtomic(final, "x");
    assert.equal(await readFile(final, "utf8"), "x");
    assert.equal((await readdir(dir)).length, 1);
  });
});

test("a discarded temp file leaves nothing, and discard never throws", async () => {
  await withDir(async (dir) => {
    const temp = await createTempBeside(join(dir, "out.jsonl"));
    await temp.write(bytes("partial"));
    await temp.discard();
    await temp.discard();
    assert.deepEqual(await readdir(dir), []);

    const committed = await createTempBeside(join(dir, "kept"));
    await committed.commit();
    await committed.discard(); // after a commit: does nothing
    assert.deepEqual(await readdir(dir), ["kept"]);
    await assert.rejects(committed.write(bytes("late")), /already committed/);
  });
});

test("files are created owner-only (0600), also when replacing a more open file", async () => {
  if (!POSIX) return; // Windows has no permission bits
  await withDir(async (dir) => {
    const fresh = join(dir, "fresh");
    await writeFileAtomic(fresh, "x");
    assert.equal((await stat(fresh)).mode & 0o777, 0o600);

    const existing = join(dir, "existing");
    await writeFile(existing, "old", { mode: 0o644 });
    await writeFileAtomic(existing, "new");
    assert.equal((await stat(existing)).mode & 0o777, 0o600);

    const temp = await createTempBeside(join(dir, "other"));
    assert.equal((await stat(temp.path)).mode & 0o777, 0o600, "the temp too, while written");
    await temp.discard();
  });
});

test("a crash before commit leaves the previous file intact", async () => {
  await withDir(async (dir) => {
    const final = join(dir, "state.json");
    await writeFileAtomic(final, '{"old":true}\n');
    // Simulate a kill mid-write: data written to the temp, neither commit nor discard.
    const temp = await createTempBeside(final);
    await temp.write(bytes('{"new":tr'));
    assert.equal(await readFile(final, "utf8"), '{"old":true}\n');
    assert.equal((await readdir(dir)).length, 2);
    await temp.discard();
  });
});

test("a process killed mid-write leaves the previous file intact and a temp that is then stale", async () => {
  if (!POSIX) return; // SIGKILL
  await withDir(async (dir) => {
    const final = join(dir, "state.json");
    await writeFileAtomic(final, '{"old":true}\n');
    const atomic = new URL("../../lib/atomic.ts", import.meta.url).href;
    const code = `
      const { createTempBeside } = await import(${JSON.stringify(atomic)});
      const temp = await createTempBeside(${JSON.stringify(final)});
      await temp.write(new TextEncoder().encode('{"new":tr'));
      console.log("written");
      setTimeout(() => {}, 60000);`;
    const args = process.versions.deno ? ["eval", code] : ["-e", code];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((done) => child.on("exit", done));
    await new Promise((done) => child.stdout!.once("data", done));
    child.kill("SIGKILL");
    await exited;

    assert.equal(await readFile(final, "utf8"), '{"old":true}\n');
    const temps = (await readdir(dir)).filter((name) => name !== "state.json");
    assert.equal(temps.length, 1);
    assert.ok(temps[0].includes(`.${child.pid}.`), temps[0]);
    assert.equal(await readFile(join(dir, temps[0]), "utf8"), '{"new":tr');
    // Its pid is dead, but in another PID namespace it might not be: spared while recent.
    assert.equal(await removeStaleTemps(dir), 0);
    await backdate([join(dir, temps[0])]);
    assert.equal(await removeStaleTemps(dir), 1);
    assert.deepEqual(await readdir(dir), ["state.json"]);
  });
});

test("writeFileAtomic writes strings and bytes whole, including large data", async () => {
  await withDir(async (dir) => {
    const final = join(dir, "f");
    await writeFileAtomic(final, "héllo");
    assert.equal(await readFile(final, "utf8"), "héllo");
    const big = new Uint8Array(5 * 1024 * 1024 + 7).map((_, i) => i % 251);
    await writeFileAtomic(final, big);
    assert.deepEqual(new Uint8Array(await readFile(final)), big);
    assert.deepEqual(await readdir(dir), ["f"]);
  });
});

test("writes issued without awaiting each one land in order", async () => {
  await withDir(async (dir) => {
    const final = join(dir, "f");
    const temp = await createTempBeside(final);
    await Promise.all(["a", "b", "c", "d"].map((s) => temp.write(bytes(s.repeat(100_000)))));
    await temp.commit();
    const text = await readFile(final, "utf8");
    assert.equal(text, ["a", "b", "c", "d"].map((s) => s.repeat(100_000)).join(""));
  });
});

test("creating a temp file in a missing directory fails with an io error naming it", async () => {
  await withDir(async (dir) => {
    const missing = join(dir, "missing");
    await assert.rejects(createTempBeside(join(missing, "f")), (error) => {
      assert.ok(error instanceof CliError);
      assert.equal(error.kind, "io");
      assert.ok(error.message.includes(missing), error.message);
      assert.match(error.message, /ENOENT/);
      return true;
    });
  });
});

test("removeStaleTemps deletes temps of dead pids and spares live pids and other files", async () => {
  await withDir(async (dir) => {
    const dead = await deadPid();
    await withLivePid(async (live) => {
      const staleA = `.a.jsonl.${dead}.0123456789ab.part`;
      const staleB = `.b.${dead}.ba9876543210.part`;
      const livePart = `.a.jsonl.${live}.0123456789ab.part`;
      const others = [
        "a.jsonl",
        `a.${dead}.0123456789ab.part`, // not hidden
        `.a.${dead}.0123456789ab.partial`,
        `.a.${dead}.xyz.part`, // random part not hex
        `.a.${dead}.0123456789abcd.part`, // random part of another length
        ".part",
        `.${dead}.0123456789ab.part`, // no name
      ];
      for (const name of [staleA, staleB, livePart, ...others]) {
        await writeFile(join(dir, name), "x");
      }
      await backdate([staleA, staleB, livePart, ...others].map((name) => join(dir, name)));
      const dirLike = `.d.${dead}.0123456789ab.part`;
      await mkdir(join(dir, dirLike));
      const mine = await createTempBeside(join(dir, "c.jsonl"));

      assert.equal(await removeStaleTemps(dir), 2);
      const left = (await readdir(dir)).sort();
      const expected = [livePart, ...others, dirLike, mine.path.slice(dir.length + 1)].sort();
      assert.deepEqual(left, expected);
      await mine.discard();
    });
  });
});

test("removeStaleTemps deletes an old temp with this process's pid that this process did not create", async () => {
  // Containers restart with the same small pids: such a temp is a previous process's leftover,
  // once old enough (a fresh one may be another container's, also running as this pid).
  await withDir(async (dir) => {
    const leftover = `.a.${process.pid}.0123456789ab.part`;
    await writeFile(join(dir, leftover), "x");
    const fresh = `.b.${process.pid}.0123456789ab.part`;
    await writeFile(join(dir, fresh), "x");
    const old = new Date(Date.now() - RECENT_TEMP_MS - 60_000);
    await utimes(join(dir, leftover), old, old);
    const mine = await createTempBeside(join(dir, "a"));
    assert.equal(await removeStaleTemps(dir), 1);
    assert.deepEqual((await readdir(dir)).sort(), [fresh, mine.path.slice(dir.length + 1)].sort());
    await mine.commit();
    assert.equal(await removeStaleTemps(dir), 0);
    assert.deepEqual((await readdir(dir)).sort(), [fresh, "a"].sort());
  });
});

test("removeStaleTemps never removes a temp this process is creating at the same moment", async () => {
  await withDir(async (dir) => {
    // Many sweeps racing many creations, as --output-dir does with concurrent files of one day.
    for (let round = 0; round < 100; round++) {
      const creating = [0, 1, 2].map((k) => createTempBeside(join(dir, `f${round}-${k}.jsonl`)));
      const [temps] = await Promise.all([Promise.all(creating), removeStaleTemps(dir)]);
      for (const temp of temps) await temp.commit(); // ENOENT if the sweep took the temp
    }
    assert.equal((await readdir(dir)).length, 300);
  });
});

test("removeStaleTemps limited to one file's temps leaves other files' temps alone", async () => {
  await withDir(async (dir) => {
    const dead = await deadPid();
    const mine = `.out.jsonl.${dead}.0123456789ab.part`;
    const others = [
      `.other.jsonl.${dead}.0123456789ab.part`,
      `.out.jsonl.x.${dead}.0123456789ab.part`,
    ];
    for (const name of [mine, ...others]) await writeFile(join(dir, name), "partial");
    await backdate([mine, ...others].map((name) => join(dir, name)));
    assert.equal(await removeStaleTemps(dir, { finalName: "out.jsonl" }), 1);
    assert.deepEqual((await readdir(dir)).sort(), [...others].sort());
  });
});

test("removeStaleTemps spares recent temps when asked to, and a missing directory has none", async () => {
  await withDir(async (dir) => {
    const dead = await deadPid();
    const temp = join(dir, `.a.${dead}.0123456789ab.part`);
    await writeFile(temp, "x");
    assert.equal(await removeStaleTemps(dir), 0, "a temp written just now");
    await backdate([temp], 2 * RECENT_TEMP_MS);
    assert.equal(await removeStaleTemps(dir, { olderThanMs: 3 * RECENT_TEMP_MS }), 0);
    assert.equal(await removeStaleTemps(dir), 1);
    assert.equal(await removeStaleTemps(join(dir, "missing")), 0);
  });
});

test("removeStaleTemps never follows a link and leaves temps of other users alone", async () => {
  if (!POSIX) return; // symlinks and uids
  await withDir(async (dir) => {
    const dead = await deadPid();
    const victim = join(dir, "victim.txt");
    await writeFile(victim, "victim\n");
    const link = join(dir, `.a.${dead}.0123456789ab.part`);
    await symlink(victim, link);
    const theirs = join(dir, `.b.${dead}.0123456789ab.part`);
    await writeFile(theirs, "theirs");
    const uid = process.getuid!();
    // As root, hand it to nobody; otherwise it cannot be made someone else's, so skip that part.
    if (uid === 0) await chown(theirs, 65534, 65534);
    await backdate([theirs]);
    assert.equal(await removeStaleTemps(dir), uid === 0 ? 0 : 1);
    assert.equal(await readFile(victim, "utf8"), "victim\n");
    assert.ok((await readdir(dir)).includes(`.a.${dead}.0123456789ab.part`), "the link itself");
  });
});

test("isProcessAlive tells live processes from dead ones and rejects non-pids", async () => {
  assert.equal(isProcessAlive(process.pid), true);
  await withLivePid((pid) => {
    assert.equal(isProcessAlive(pid), true);
    return Promise.resolve();
  });
  assert.equal(isProcessAlive(await deadPid()), false);
  // 0 and -1 address process groups (kill() succeeds on them): never "a live process".
  for (const pid of [0, -1, 1.5, NaN, 2 ** 32]) assert.equal(isProcessAlive(pid), false);
});

test("ensureDir creates missing parents owner-only and accepts an existing directory", async () => {
  await withDir(async (dir) => {
    const deep = join(dir, "a", "b", "c");
    await ensureDir(deep);
    await ensureDir(deep);
    assert.ok((await stat(deep)).isDirectory());
    if (POSIX) assert.equal((await stat(join(dir, "a"))).mode & 0o077, 0);
  });
});

test("ensureDir fails with an io error when a file is in the way", async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, "f"), "x");
    for (const path of [join(dir, "f"), join(dir, "f", "sub")]) {
      await assert.rejects(ensureDir(path), (error) => {
        assert.ok(error instanceof CliError);
        assert.equal(error.kind, "io");
        assert.ok(error.message.includes(path), error.message);
        return true;
      });
    }
  });
});
