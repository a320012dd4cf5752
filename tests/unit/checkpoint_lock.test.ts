/**
 * The lock beside a state file (lib/checkpoint/lock.ts): refused while a live run holds it, taken
 * over when stale (dead pid, before boot, unreadable and old, another host gone quiet), never
 * deleted when no longer ours, and held by exactly one of several runs starting at once.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { deadPid, withLivePid } from "../helpers/mod.ts";
import { acquireLock, describeLock, releaseLock } from "../../lib/checkpoint/lock.ts";
import { Checkpoint } from "../../lib/checkpoint/model.ts";
import { lockText, refused, state, withDir } from "./checkpoint_fixtures.ts";

test("a lock held by a live process is refused, and neither file is touched", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state());
    await writeFile(path, text);
    await withLivePid(async (pid) => {
      const lock = lockText(pid);
      await writeFile(`${path}.lock`, lock);
      await refused(
        Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
        `another run (pid ${pid}`,
        `holds ${path}.lock`,
      );
      assert.equal(await readFile(`${path}.lock`, "utf8"), lock);
      assert.equal(await readFile(path, "utf8"), text);
    });
  });
});
test("a second open of the same state file in one process is refused while the first holds it", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const first = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    await refused(Checkpoint.open(path, "ws-1", ["AUTH_LOG"]), "already holds");
    await first.close();
    const second = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    await second.close();
  });
});
test("a lock left by a dead process is taken over, and released on close", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const dead = await deadPid();
    await writeFile(`${path}.lock`, lockText(dead));
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.equal(cp.tookOverStaleLock, true);
    assert.match(cp.staleLockReason!, new RegExp(`pid ${dead} .*is no longer running`));
    const lock = JSON.parse(await readFile(`${path}.lock`, "utf8"));
    assert.equal(lock.pid, process.pid);
    await cp.close();
    await cp.close(); // idempotent
    assert.deepEqual((await readdir(dir)).sort(), ["s.json"]);
  });
});
test("a lock carrying this process's own pid was left by an earlier process and is taken over", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(`${path}.lock`, lockText(process.pid));
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.equal(cp.tookOverStaleLock, true);
    await cp.close();
  });
});
test("a lock from before the system started is stale even if its pid is in use now", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await withLivePid(async (pid) => {
      await writeFile(`${path}.lock`, lockText(pid, hostname(), "2000-01-01T00:00:00Z"));
      const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
      assert.equal(cp.tookOverStaleLock, true);
      assert.match(cp.staleLockReason!, /before the system restarted/);
      await cp.close();
    });
  });
});
test("an unreadable lock is refused while recent and taken over once a minute old", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(`${path}.lock`, "{");
    await refused(Checkpoint.open(path, "ws-1", ["AUTH_LOG"]), `${path}.lock`, "unreadable");
    assert.equal(await readFile(`${path}.lock`, "utf8"), "{");
    const old = new Date(Date.now() - 120_000);
    await utimes(`${path}.lock`, old, old);
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.equal(cp.tookOverStaleLock, true);
    await cp.close();
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});
test("a lock of another host is refused while refreshed, and taken over after 10 minutes idle", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const lock = lockText(await deadPid(), `not-${hostname()}`);
    await writeFile(`${path}.lock`, lock);
    // Its pid cannot be checked from here: dead here says nothing about there.
    await refused(
      Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
      `on host not-${hostname()}`,
      `holds ${path}.lock`,
    );
    assert.equal(await readFile(`${path}.lock`, "utf8"), lock);
    const idle = new Date(Date.now() - 11 * 60_000);
    await utimes(`${path}.lock`, idle, idle);
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.match(cp.staleLockReason!, /was not refreshed for 11 minutes/);
    await cp.close();
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});
test("a run whose lock was taken over stops without writing the state file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    await cp.advance("AUTH_LOG", "A", []);
    const before = await readFile(path, "utf8");
    await writeFile(`${path}.lock`, lockText(4_000_000, "elsewhere"));
    await refused(
      cp.markDelivered("AUTH_LOG", "A", "f1"),
      `no longer holds ${path}.lock (it is now held by pid 4000000 on elsewhere)`,
    );
    await rm(`${path}.lock`);
    await refused(cp.advance("AUTH_LOG", "B", []), "(it was deleted)");
    assert.equal(await readFile(path, "utf8"), before);
    await cp.close();
  });
});
test("close does not delete a lock that is no longer this run's", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    const other = lockText(process.pid + 1_000_000);
    await writeFile(`${path}.lock`, other);
    await cp.close();
    assert.equal(await readFile(`${path}.lock`, "utf8"), other);
  });
});
/** Starts `n` processes that all open `path` at the same instant; resolves with what each printed. */
async function race(path: string, n: number): Promise<string[]> {
  const module = new URL("../../lib/checkpoint/model.ts", import.meta.url).href;
  const start = Date.now() + 1500; // after every child has started and loaded the module
  const code = `
    const { Checkpoint } = await import(${JSON.stringify(module)});
    await new Promise((done) => setTimeout(done, Math.max(0, ${start} - Date.now())));
    try {
      const cp = await Checkpoint.open(${JSON.stringify(path)}, "ws-1", ["AUTH_LOG"]);
      console.log("held " + cp.tookOverStaleLock);
      await new Promise((done) => setTimeout(done, 1500));
      await cp.close();
    } catch (error) {
      console.log("refused " + error.kind + " " + error.message);
    }`;
  const args = process.versions.deno ? ["eval", code] : ["-e", code];
  const runs = Array.from({ length: n }, () => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout!.on("data", (chunk) => out += chunk);
    return new Promise<string>((done) => child.on("close", () => done(out.trim())));
  });
  return await Promise.all(runs);
}

test("of several runs starting at once, exactly one holds the lock", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const results = await race(path, 6);
    assert.equal(results.filter((r) => r === "held false").length, 1, results.join("\n"));
    for (const r of results.filter((r) => r !== "held false")) {
      assert.match(r, /^refused state another run \(pid \d+/);
    }
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});

test("of several runs finding the same stale lock at once, exactly one takes it over", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(`${path}.lock`, lockText(await deadPid()));
    const results = await race(path, 6);
    assert.equal(results.filter((r) => r === "held true").length, 1, results.join("\n"));
    for (const r of results.filter((r) => r !== "held true")) {
      assert.match(r, /^refused state another run \(pid \d+/);
    }
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});

test("the lock works without a state file: taken, refused twice in one process, released", async () => {
  await withDir(async (dir) => {
    const target = join(dir, "s.json");
    assert.equal(await describeLock(target, "s.json"), "none");
    const { lock, tookOver } = await acquireLock(target, "s.json");
    assert.equal(tookOver, undefined);
    assert.deepEqual(await readdir(dir), ["s.json.lock"]);
    await refused(acquireLock(target, "s.json"), "this process already holds s.json.lock");
    await releaseLock(lock);
    assert.deepEqual(await readdir(dir), []);
    await writeFile(`${target}.lock`, lockText(await deadPid()));
    assert.match(
      await describeLock(target, "s.json"),
      /^stale \(pid \d+ in s\.json\.lock is no longer running\); the next run takes it over$/,
    );
  });
});
