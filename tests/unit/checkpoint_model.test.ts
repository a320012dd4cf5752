/**
 * The checkpoint model (lib/checkpoint/model.ts): open creates and locks, cursors move with
 * markDelivered and advance, close releases; resetState clears a file or one event type's cursor.
 */
import assert from "node:assert/strict";
import { readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { withLivePid } from "../helpers/mod.ts";
import { Checkpoint, resetState } from "../../lib/checkpoint/model.ts";
import { lockText, POSIX, refused, state, withDir } from "./checkpoint_fixtures.ts";

test("a missing state file is created at open, empty, owner-only, with the lock held", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.equal(cp.cursor("AUTH_LOG"), undefined);
    assert.equal(cp.tookOverStaleLock, false);
    const data = JSON.parse(await readFile(path, "utf8"));
    assert.deepEqual(data, {
      version: 2,
      principal: "ws-1",
      eventTypes: ["AUTH_LOG"],
      cursors: {},
      gone: {},
      skipped: {},
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
