import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { deadPid, withDir as withTempDir, withLivePid } from "../helpers/processes.ts";
import { Checkpoint, resetState, showState, type StateData } from "../../lib/checkpoint.ts";
import { CliError } from "../../lib/errors.ts";

const POSIX = process.platform !== "win32";
const withDir = (fn: (dir: string) => Promise<void>) => withTempDir("oai-checkpoint-", fn);

function lockText(pid: number, host = hostname(), startedAt = new Date().toISOString()): string {
  return JSON.stringify({ pid, hostname: host, startedAt }) + "\n";
}

/** Asserts `promise` rejects with a one-line CliError of kind "state" whose message matches. */
async function refused(promise: Promise<unknown>, ...patterns: (RegExp | string)[]) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof CliError, String(error));
    assert.equal(error.kind, "state");
    assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
    for (const p of patterns) {
      if (typeof p === "string") assert.ok(error.message.includes(p), error.message);
      else assert.match(error.message, p);
    }
    return true;
  });
}

const state = (overrides: Partial<StateData> = {}): StateData => ({
  version: 1,
  principal: "ws-1",
  eventTypes: ["AUTH_LOG"],
  cursors: {
    AUTH_LOG: { after: "2026-01-01T00:00:00Z", seen: ["f1"], updatedAt: "2026-01-02T03:04:05Z" },
  },
  ...overrides,
});

test("a missing state file is created at open, empty, owner-only, with the lock held", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.equal(cp.cursor("AUTH_LOG"), undefined);
    assert.equal(cp.tookOverStaleLock, false);
    const data = JSON.parse(await readFile(path, "utf8"));
    assert.deepEqual(data, {
      version: 1,
      principal: "ws-1",
      eventTypes: ["AUTH_LOG"],
      cursors: {},
    });
    if (POSIX) assert.equal((await stat(path)).mode & 0o777, 0o600);
    const lock = JSON.parse(await readFile(`${path}.lock`, "utf8"));
    assert.equal(lock.pid, process.pid);
    assert.equal(lock.hostname, hostname());
    assert.ok(!Number.isNaN(Date.parse(lock.startedAt)));
    await cp.close();
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});

test("cursors survive a close and a reopen", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    await cp.markDelivered("AUTH_LOG", "2026-01-01T00:00:00Z", "f1");
    await cp.markDelivered("AUTH_LOG", "2026-01-01T00:00:00Z", "f2");
    await cp.close();

    const again = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    const cursor = again.cursor("AUTH_LOG")!;
    assert.equal(cursor.after, "2026-01-01T00:00:00Z");
    assert.deepEqual(cursor.seen, ["f1", "f2"]);
    assert.ok(Date.now() - Date.parse(cursor.updatedAt) < 60_000);
    await again.advance("AUTH_LOG", "2026-01-03T00:00:00Z", ["f9"]);
    await again.close();

    const third = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.deepEqual(
      { ...third.cursor("AUTH_LOG"), updatedAt: "" },
      { after: "2026-01-03T00:00:00Z", seen: ["f9"], updatedAt: "" },
    );
    await third.close();
    if (POSIX) assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["s.json"], "no temp or lock left");
  });
});

test("markDelivered keeps the ids of the current page and forgets them when the page changes", async () => {
  await withDir(async (dir) => {
    const cp = await Checkpoint.open(join(dir, "s.json"), "ws-1", ["AUTH_LOG"]);
    await cp.advance("AUTH_LOG", "A", ["b1", "b1", "b2"]);
    assert.deepEqual(cp.cursor("AUTH_LOG")!.seen, ["b1", "b2"], "duplicates dropped");
    await cp.markDelivered("AUTH_LOG", "A", "f1");
    await cp.markDelivered("AUTH_LOG", "A", "f1");
    assert.deepEqual(cp.cursor("AUTH_LOG")!.seen, ["b1", "b2", "f1"]);
    await cp.markDelivered("AUTH_LOG", "B", "g1");
    assert.deepEqual(cp.cursor("AUTH_LOG"), {
      ...cp.cursor("AUTH_LOG")!,
      after: "B",
      seen: ["g1"],
    });
    // What cursor() returns is a copy: changing it changes nothing.
    cp.cursor("AUTH_LOG")!.seen.push("x");
    assert.deepEqual(cp.cursor("AUTH_LOG")!.seen, ["g1"]);
    await cp.close();
  });
});

test("several event types each keep their own cursor, whatever order the run names them in", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG", "AUDIT_LOG"]);
    await cp.advance("AUTH_LOG", "2026-01-01T01:00:00Z", []);
    await cp.markDelivered("AUDIT_LOG", "2026-01-01T02:00:00Z", "x");
    await cp.close();
    const data = JSON.parse(await readFile(path, "utf8"));
    assert.deepEqual(data.eventTypes, ["AUDIT_LOG", "AUTH_LOG"]);

    const again = await Checkpoint.open(path, "ws-1", ["AUDIT_LOG", "AUTH_LOG", "AUDIT_LOG"]);
    assert.equal(again.cursor("AUTH_LOG")!.after, "2026-01-01T01:00:00Z");
    assert.deepEqual(again.cursor("AUDIT_LOG")!.seen, ["x"]);
    assert.throws(() => again.cursor("OTHER_LOG"), /does not track event type OTHER_LOG/);
    await again.close();
  });
});

test("writes issued without awaiting each one end with the last state on disk", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    const writes = [];
    for (let i = 0; i < 20; i++) writes.push(cp.markDelivered("AUTH_LOG", "A", `f${i}`));
    writes.push(cp.advance("AUTH_LOG", "B", ["f19"]));
    await Promise.all(writes);
    await cp.close();
    const data = JSON.parse(await readFile(path, "utf8"));
    assert.equal(data.cursors.AUTH_LOG.after, "B");
    assert.deepEqual(data.cursors.AUTH_LOG.seen, ["f19"]);
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});

test("a state file of another principal is refused and left byte-identical", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state(), null, 2);
    await writeFile(path, text);
    await refused(
      Checkpoint.open(path, "ws-2", ["AUTH_LOG"]),
      path,
      "principal ws-1, not ws-2",
      "use another --state file",
      `oai-compliance-logs state reset ${path}`,
    );
    assert.equal(await readFile(path, "utf8"), text);
    assert.deepEqual(await readdir(dir), ["s.json"], "lock released");
  });
});

test("a state file kept for another set of event types is refused and left byte-identical", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state(), null, 2);
    await writeFile(path, text);
    for (const types of [["AUDIT_LOG"], ["AUTH_LOG", "AUDIT_LOG"]]) {
      await refused(
        Checkpoint.open(path, "ws-1", types),
        path,
        `tracks event types AUTH_LOG, not ${[...types].sort().join(",")}`,
        "use one --state file per set of event types",
      );
    }
    assert.equal(await readFile(path, "utf8"), text);
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});

test("corrupt, truncated, empty and wrongly shaped state files are refused and left byte-identical", async () => {
  const valid = JSON.stringify(state(), null, 2);
  const edit = (fn: (d: Record<string, unknown>) => void) => {
    const d = JSON.parse(valid);
    fn(d);
    return JSON.stringify(d);
  };
  const cases: [string, string, RegExp][] = [
    ["not json", "hello", /is not valid JSON .*it may be truncated/],
    ["truncated", valid.slice(0, valid.length / 2), /is not valid JSON/],
    ["empty", "", /it is empty/],
    ["zeroed by a crash", "\0".repeat(64), /is not valid JSON/],
    ["an array", "[]", /it is not a JSON object/],
    ["no version", edit((d) => delete d.version), /"version" must be 1/],
    ["version as text", edit((d) => d.version = "1"), /"version" must be 1/],
    ["empty principal", edit((d) => d.principal = ""), /"principal" must be a non-empty string/],
    ["principal a number", edit((d) => d.principal = 7), /"principal"/],
    ["no event types", edit((d) => d.eventTypes = []), /"eventTypes" must be a non-empty array/],
    ["event type twice", edit((d) => d.eventTypes = ["A", "A"]), /lists A twice/],
    ["event type not text", edit((d) => d.eventTypes = [1]), /"eventTypes\[0\]"/],
    ["cursors an array", edit((d) => d.cursors = []), /"cursors" must be an object/],
    [
      "cursor of an untracked type",
      edit((d) => (d.cursors as Record<string, unknown>).X = {}),
      /"cursors.X" is not one of "eventTypes"/,
    ],
    [
      "after empty",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.after = ""),
      /"cursors.AUTH_LOG.after" must be a non-empty string/,
    ],
    [
      "seen holding a number",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.seen = ["a", 2]),
      /"cursors.AUTH_LOG.seen\[1\]" must be a non-empty string/,
    ],
    [
      "seen not an array",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.seen = "a"),
      /"cursors.AUTH_LOG.seen" must be an array/,
    ],
    [
      "updatedAt not a time",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.updatedAt = "x"),
      /"cursors.AUTH_LOG.updatedAt" must be an ISO 8601 time/,
    ],
    [
      "a misspelt cursor field",
      edit((d) => {
        const c = (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG;
        c.sen = c.seen;
        delete c.seen;
      }),
      /unknown field "cursors.AUTH_LOG.sen"/,
    ],
    ["an unknown field", edit((d) => d.extra = true), /unknown field "extra"/],
  ];
  await withDir(async (dir) => {
    for (const [name, text, pattern] of cases) {
      const path = join(dir, "s.json");
      await writeFile(path, text);
      await refused(
        Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
        path,
        pattern,
        "oai-compliance-logs state reset",
      ).catch((error) => {
        throw new Error(`${name}: ${error.message}`);
      });
      assert.equal(await readFile(path, "utf8"), text, name);
      assert.deepEqual(await readdir(dir), ["s.json"], name);
    }
  });
});

test("a state file of an unknown version is refused with advice to upgrade", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify({ ...state(), version: 2, somethingNew: [] });
    await writeFile(path, text);
    await refused(
      Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
      path,
      "has version 2",
      "use a newer oai-compliance-logs",
    );
    assert.equal(await readFile(path, "utf8"), text);
  });
});

test("a state file in a missing directory, or that is a directory, is refused clearly", async () => {
  await withDir(async (dir) => {
    const missing = join(dir, "nope", "s.json");
    await refused(
      Checkpoint.open(missing, "ws-1", ["AUTH_LOG"]),
      missing,
      `directory ${join(dir, "nope")} does not exist`,
    );
    await refused(Checkpoint.open(dir, "ws-1", ["AUTH_LOG"]), "is a directory");
    assert.deepEqual(await readdir(dir), []);
  });
});

test("an open without the lock reads the cursor and creates nothing", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"], { lock: false });
    assert.equal(cp.cursor("AUTH_LOG"), undefined);
    await cp.close();
    assert.deepEqual(await readdir(dir), []);

    await writeFile(path, JSON.stringify(state()));
    await writeFile(`${path}.lock`, lockText(process.pid + 1_000_000));
    const reader = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"], { lock: false });
    assert.equal(reader.cursor("AUTH_LOG")!.after, "2026-01-01T00:00:00Z");
    await reader.close();
    assert.ok((await readdir(dir)).includes("s.json.lock"), "someone else's lock left alone");
  });
});

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

test("a closed checkpoint refuses further writes", async () => {
  await withDir(async (dir) => {
    const cp = await Checkpoint.open(join(dir, "s.json"), "ws-1", ["AUTH_LOG"]);
    await cp.close();
    assert.throws(() => cp.advance("AUTH_LOG", "a", []), /is closed/);
  });
});

test("a symlinked state file is updated through the link", async () => {
  if (!POSIX) return; // symlinks need privileges on Windows
  await withDir(async (dir) => {
    const real = join(dir, "real.json");
    const link = join(dir, "link.json");
    await writeFile(real, JSON.stringify(state()));
    await symlink(real, link);
    const cp = await Checkpoint.open(link, "ws-1", ["AUTH_LOG"]);
    await cp.advance("AUTH_LOG", "new", []);
    await cp.close();
    assert.equal(JSON.parse(await readFile(real, "utf8")).cursors.AUTH_LOG.after, "new");
    assert.deepEqual((await readdir(dir)).sort(), ["link.json", "real.json"]);
  });
});

test("state show describes each cursor and the lock", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(path, JSON.stringify(state({ eventTypes: ["AUDIT_LOG", "AUTH_LOG"] })));
    const text = await showState(path);
    assert.match(text, /^state file +.*s\.json$/m);
    assert.match(text, /^principal +ws-1$/m);
    assert.match(text, /^event types +AUDIT_LOG, AUTH_LOG$/m);
    assert.match(text, /^AUTH_LOG +after 2026-01-01T00:00:00Z \(1 id already delivered at it\)$/m);
    assert.match(text, /^ +delivered: f1$/m);
    assert.match(text, /^AUDIT_LOG +not started/m);
    assert.match(text, /^lock +none$/m);

    await withLivePid(async (pid) => {
      await writeFile(`${path}.lock`, lockText(pid));
      assert.match(await showState(path), new RegExp(`^lock +held by pid ${pid} `, "m"));
    });
    await writeFile(`${path}.lock`, lockText(await deadPid()));
    assert.match(await showState(path), /^lock +stale \(.*no longer running\)/m);
  });
});

test("state show refuses a missing or corrupt file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await refused(showState(path), `${path} does not exist`);
    await writeFile(path, "{");
    await refused(showState(path), "is not valid JSON");
  });
});

test("state reset deletes the whole file, also a corrupt one", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(path, JSON.stringify(state()));
    await resetState(path);
    assert.deepEqual(await readdir(dir), []);

    await writeFile(path, JSON.stringify(state(), null, 2).slice(0, 40));
    await resetState(path);
    assert.deepEqual(await readdir(dir), []);

    await refused(resetState(path), "does not exist; nothing to reset");
  });
});

test("state reset of one event type removes only its cursor", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cursor = { after: "2026-01-01T00:00:00Z", seen: [], updatedAt: "2026-01-02T00:00:00Z" };
    const data = state({ eventTypes: ["AUDIT_LOG", "AUTH_LOG"] });
    data.cursors.AUDIT_LOG = cursor;
    await writeFile(path, JSON.stringify(data));
    await resetState(path, "AUTH_LOG");
    const after = JSON.parse(await readFile(path, "utf8"));
    assert.deepEqual(after.eventTypes, ["AUDIT_LOG", "AUTH_LOG"]);
    assert.deepEqual(after.cursors, { AUDIT_LOG: cursor });
    assert.deepEqual(await readdir(dir), ["s.json"]);

    await refused(resetState(path, "OTHER_LOG"), "does not track event type OTHER_LOG");
    await writeFile(path, "{");
    await refused(resetState(path, "AUTH_LOG"), "cannot reset only AUTH_LOG", "state reset");
    assert.equal(await readFile(path, "utf8"), "{");
  });
});

test("state reset is refused while a live run holds the lock", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state());
    await writeFile(path, text);
    await withLivePid(async (pid) => {
      await writeFile(`${path}.lock`, lockText(pid));
      await refused(resetState(path), `another run (pid ${pid}`);
      await refused(resetState(path, "AUTH_LOG"), `another run (pid ${pid}`);
    });
    assert.equal(await readFile(path, "utf8"), text);

    // This process's own open checkpoint counts too.
    await rm(`${path}.lock`);
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    await refused(resetState(path), "already holds");
    await cp.close();
    await resetState(path);
    assert.deepEqual(await readdir(dir), []);
  });
});

test("state reset will not delete a file that is not a state file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "logs.jsonl");
    const text = '{"id":"e1","type":"AUTH_LOG"}\n{"id":"e2","type":"AUTH_LOG"}\n';
    await writeFile(path, text);
    await refused(resetState(path), "does not look like an oai-compliance-logs state file");
    await writeFile(path, '{"some":"other json"}');
    await refused(resetState(path), "does not look like");
    assert.deepEqual(await readdir(dir), ["logs.jsonl"]);
  });
});

/** Starts `n` processes that all open `path` at the same instant; resolves with what each printed. */
async function race(path: string, n: number): Promise<string[]> {
  const module = new URL("../../lib/checkpoint.ts", import.meta.url).href;
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

test("a cursor that is not an RFC 3339 time makes the state file invalid", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const data = state({ eventTypes: ["AUTH_LOG"] });
    const updatedAt = "2026-01-02T00:00:00Z";
    data.cursors.AUTH_LOG = { after: "yesterday&limit=1", seen: [], updatedAt };
    await writeFile(path, JSON.stringify(data));
    await assert.rejects(
      Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
      (e: unknown) =>
        e instanceof CliError && e.kind === "state" &&
        /cursors\.AUTH_LOG\.after.*RFC 3339.*state reset/.test(e.message),
    );
  });
});
