import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmod,
  chown,
  mkdir,
  readdir,
  readFile,
  rename,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { basename, join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import {
  deadPid,
  withDir as withTempDir,
  withLivePid,
  withLockHeldElsewhere,
} from "../helpers/mod.ts";
import {
  createTempBeside,
  directoryModeFor,
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

test("a temp file is named .<basename>.<pid>.<random>[.locked].part beside the destination", async () => {
  await withDir(async (dir) => {
    const temp = await createTempBeside(join(dir, "a.jsonl"));
    const name = temp.path.slice(dir.length + 1);
    // Locked (and so named) where the OS has locks the temp's own writes can live with.
    const locked = POSIX ? "\\.locked" : "";
    assert.match(
      name,
      new RegExp(`^\\.a\\.jsonl\\.${process.pid}\\.[0-9a-f]{12}${locked}\\.part$`),
    );
    assert.deepEqual(await readdir(dir), [name]);
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

test("files get exactly the mode asked for, whatever the umask, and temps have it while written", async () => {
  if (!POSIX) return; // Windows has no permission bits
  await withDir(async (dir) => {
    // 0660: a umask of 022 (or 027) would narrow it if the mode were only passed to open().
    for (const mode of [0o640, 0o660, 0o600]) {
      const final = join(dir, `f${mode.toString(8)}`);
      await writeFileAtomic(final, "x", mode);
      assert.equal((await stat(final)).mode & 0o777, mode, `writeFileAtomic ${mode.toString(8)}`);
      const temp = await createTempBeside(join(dir, `t${mode.toString(8)}`), mode);
      assert.equal((await stat(temp.path)).mode & 0o777, mode, `temp ${mode.toString(8)}`);
      await temp.commit();
      assert.equal((await stat(temp.finalPath)).mode & 0o777, mode);
    }
  });
});

test("a directory for files of mode M gets M plus x wherever r is given, owner always rwx", () => {
  assert.equal(directoryModeFor(0o600), 0o700);
  assert.equal(directoryModeFor(0o640), 0o750);
  assert.equal(directoryModeFor(0o644), 0o755);
  assert.equal(directoryModeFor(0o660), 0o770);
  assert.equal(directoryModeFor(0o400), 0o700);
  assert.equal(directoryModeFor(0o4640), 0o750, "no setuid, setgid or sticky bit");
});

test("ensureDir gives every directory it creates the mode, and leaves existing ones alone", async () => {
  if (!POSIX) return;
  await withDir(async (dir) => {
    const existing = join(dir, "kept");
    await mkdir(existing, { mode: 0o711 });
    await chmod(existing, 0o711);
    await ensureDir(join(existing, "a", "b"), directoryModeFor(0o640));
    assert.equal((await stat(existing)).mode & 0o777, 0o711, "an existing parent");
    for (const path of [join(existing, "a"), join(existing, "a", "b")]) {
      assert.equal((await stat(path)).mode & 0o777, 0o750, path);
    }
    await ensureDir(join(dir, "own"));
    assert.equal((await stat(join(dir, "own"))).mode & 0o777, 0o700, "the default");
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

test("a process killed mid-write leaves the previous file intact and a temp removed at once", async () => {
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
    // The OS released its lock when the process died: provably gone, however recent.
    assert.match(temps[0], /\.locked\.part$/);
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

test(
  "removeStaleTemps spares a temp whose lock a live process holds, even with our pid and old",
  { skip: !POSIX && "temps are not locked on Windows" },
  async () => {
    // Two containers sharing an output directory may both run us as pid 1: the lock, not the
    // pid or the age, tells a live neighbour's temp from a dead run's.
    await withDir(async (dir) => {
      const dead = await deadPid();
      const ourPid = join(dir, `.a.${process.pid}.0123456789ab.locked.part`);
      const deadPidName = join(dir, `.b.${dead}.0123456789ab.locked.part`);
      const free = join(dir, `.c.${process.pid}.0123456789ab.locked.part`);
      for (const path of [ourPid, deadPidName, free]) await writeFile(path, "partial");
      await backdate([ourPid, deadPidName]);
      await withLockHeldElsewhere(ourPid, async () => {
        await withLockHeldElsewhere(deadPidName, async () => {
          assert.equal(await removeStaleTemps(dir), 1, "only the temp whose lock is free");
          assert.deepEqual(
            (await readdir(dir)).sort(),
            [basename(ourPid), basename(deadPidName)].sort(),
          );
        });
      });
      // Their owner died: now they go, at once.
      assert.equal(await removeStaleTemps(dir), 2);
      assert.deepEqual(await readdir(dir), []);
    });
  },
);

test(
  "a live run's temp survives another process's clean-up of the directory",
  { skip: !POSIX && "temps are not locked on Windows" },
  async () => {
    await withDir(async (dir) => {
      const final = join(dir, "out.jsonl");
      const atomic = new URL("../../lib/atomic.ts", import.meta.url).href;
      const code = `
        const { createTempBeside, removeStaleTemps } = await import(${JSON.stringify(atomic)});
        const [what, dir, final] = process.argv.slice(-3);
        if (what === "write") {
          const temp = await createTempBeside(final);
          await temp.write(new TextEncoder().encode("live\\n"));
          console.log("written");
          setTimeout(() => temp.discard(), 60000); // keeps it referenced (Bun collects handles)
        } else {
          console.log(String(await removeStaleTemps(dir)));
        }`;
      const child = (what: string) => {
        const args = process.versions.deno
          ? ["eval", code, what, dir, final]
          : ["-e", code, what, dir, final];
        return spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
      };
      const writer = child("write");
      const exited = new Promise((done) => writer.on("exit", done));
      try {
        await new Promise((done) => writer.stdout!.once("data", done));
        // Under a dead pid (as another PID namespace's would look) and old: only its lock is left
        // to tell it is live. The lock belongs to the file, not its name.
        const [written] = await readdir(dir);
        const temp = written.replace(`.${writer.pid}.`, `.${await deadPid()}.`);
        await rename(join(dir, written), join(dir, temp));
        await backdate([join(dir, temp)]);
        const sweeper = child("sweep");
        let out = "";
        sweeper.stdout!.on("data", (chunk) => out += chunk);
        await new Promise((done) => sweeper.on("exit", done));
        assert.equal(out.trim(), "0");
        assert.deepEqual(await readdir(dir), [temp]);
        assert.equal(await readFile(join(dir, temp), "utf8"), "live\n");
      } finally {
        writer.kill("SIGKILL");
        await exited;
      }
      assert.equal(await removeStaleTemps(dir), 1, "gone once its writer is");
    });
  },
);

test(
  "an empty unlocked temp (a run killed before it locked its temp) is removed at once",
  { skip: !POSIX && "temps are not locked on Windows" },
  async () => {
    await withDir(async (dir) => {
      const dead = await deadPid();
      const empty = `.a.${dead}.0123456789ab.part`;
      const written = `.b.${dead}.0123456789ab.part`; // an owner without locks may be writing it
      await writeFile(join(dir, empty), "");
      await writeFile(join(dir, written), "x");
      assert.equal(await removeStaleTemps(dir), 1);
      assert.deepEqual(await readdir(dir), [written]);
    });
  },
);

test(
  "temps created and committed in one process while another sweeps the directory all land",
  { skip: !POSIX && "temps are not locked on Windows", timeout: 120_000 },
  async () => {
    // The moment between creating a temp and locking it: a sweeper must never take it for a
    // killed run's empty leftover (or, where it cannot tell, the writer starts again).
    await withDir(async (dir) => {
      const atomic = new URL("../../lib/atomic.ts", import.meta.url).href;
      const code = `
        const { writeFileAtomic, removeStaleTemps } = await import(${JSON.stringify(atomic)});
        const [what, dir] = process.argv.slice(-2);
        let removed = 0;
        for (let i = 0; i < 150; i++) {
          if (what === "write") await writeFileAtomic(dir + "/f" + i, "content " + i);
          else removed += await removeStaleTemps(dir);
        }
        console.log(String(removed));`;
      const child = (what: string) => {
        const args = process.versions.deno ? ["eval", code, what, dir] : ["-e", code, what, dir];
        const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        proc.stdout!.on("data", (chunk) => out += chunk);
        return new Promise<{ code: number | null; out: string }>((done) =>
          proc.on("exit", (code) => done({ code, out }))
        );
      };
      const [writer, sweeper] = await Promise.all([child("write"), child("sweep")]);
      assert.equal(writer.code, 0, "every write committed");
      assert.equal(sweeper.code, 0);
      const names = (await readdir(dir)).sort();
      assert.equal(names.length, 150, names.filter((n) => n.startsWith(".")).join(" "));
      for (let i = 0; i < 150; i++) {
        assert.equal(await readFile(join(dir, `f${i}`), "utf8"), `content ${i}`);
      }
    });
  },
);

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
