/**
 * Checkpoint format version 2 (lib/checkpoint/): a job of `all` is stored as `all` and any type may
 * gain a cursor; version 1 files keep working (an old `all` file is accepted by an `all` job and
 * becomes `all` when next written); gone and skipped files are recorded per event type, bounded,
 * and checked on read; `skipFile` records a skip under the lock.
 */
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { withLivePid } from "../helpers/mod.ts";
import {
  MAX_GONE_PER_TYPE,
  MAX_SKIPPED_PER_TYPE,
  parseState,
} from "../../lib/checkpoint/format.ts";
import { Checkpoint, skipFile } from "../../lib/checkpoint/model.ts";
import { LEGACY_ALL_EVENT_TYPES } from "../../lib/event_types.ts";
import { CliError } from "../../lib/errors.ts";
import { lockText, refused, state, stateV2, withDir } from "./checkpoint_fixtures.ts";

const readJson = async (path: string) => JSON.parse(await readFile(path, "utf8"));
const AFTER = "2026-01-01T00:00:00Z";

test("an all job is stored as all and any event type may gain a cursor", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "org-1", "all");
    assert.equal(cp.eventTypes, "all");
    assert.equal((await readJson(path)).eventTypes, "all");
    assert.equal(cp.cursor("COSTS"), undefined);
    await cp.advance("COSTS", AFTER, ["c1"]);
    await cp.markDelivered("SOME_NEW_TYPE", AFTER, "n1");
    assert.throws(() => cp.cursor("not a type"), /does not track event type/);
    await cp.close();

    const again = await Checkpoint.open(path, "org-1", "all");
    assert.deepEqual(again.cursor("COSTS")?.seen, ["c1"]);
    assert.deepEqual(again.cursor("SOME_NEW_TYPE")?.seen, ["n1"]);
    await again.close();
    // Named types are another job, and the reverse.
    await refused(Checkpoint.open(path, "org-1", ["COSTS"]), "tracks event types all, not COSTS");
  });
});

test("a version 1 file of named types opens as before and is written as version 2", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state(), null, 2);
    await writeFile(path, text);
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    assert.deepEqual(cp.cursor("AUTH_LOG"), state().cursors.AUTH_LOG);
    assert.deepEqual(cp.eventTypes, ["AUTH_LOG"]);
    assert.equal(await readFile(path, "utf8"), text, "opening does not rewrite it");
    await cp.markDelivered("AUTH_LOG", AFTER, "f2");
    await cp.close();
    const data = await readJson(path);
    assert.equal(data.version, 2);
    assert.deepEqual(data.eventTypes, ["AUTH_LOG"]);
    assert.deepEqual(data.cursors.AUTH_LOG.seen, ["f1", "f2"]);
    assert.deepEqual([data.gone, data.skipped], [{}, {}]);
    // A v1 file of named types is not an `all` job's.
    await writeFile(path, text);
    await refused(Checkpoint.open(path, "ws-1", "all"), "tracks event types AUTH_LOG, not all");
  });
});

test("a version 1 file an earlier version wrote for all is accepted by all and becomes all", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const old = state({ eventTypes: [...LEGACY_ALL_EVENT_TYPES] });
    await writeFile(path, JSON.stringify(old, null, 2));
    const cp = await Checkpoint.open(path, "ws-1", "all");
    assert.equal(cp.eventTypes, "all");
    assert.deepEqual(cp.cursor("AUTH_LOG"), old.cursors.AUTH_LOG, "its cursors keep working");
    await cp.advance("CHATGPT_PLUGIN_SPREADSHEET", AFTER, []); // not one of the eight
    await cp.close();
    const data = await readJson(path);
    assert.equal(data.version, 2);
    assert.equal(data.eventTypes, "all");
    assert.deepEqual(data.cursors.AUTH_LOG, old.cursors.AUTH_LOG);
    // The same eight names asked for by name are still that named job.
    await writeFile(path, JSON.stringify(old));
    const named = await Checkpoint.open(path, "ws-1", [...LEGACY_ALL_EVENT_TYPES]);
    assert.equal(named.eventTypes.length, 8);
    await named.close();
  });
});

test("markGone passes the file as markDelivered does and records it, the most recent kept", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]);
    await cp.markDelivered("AUTH_LOG", AFTER, "a");
    const gone = { id: "b", end_time: "2026-01-01T01:00:00Z" };
    await cp.markGone("AUTH_LOG", AFTER, gone, "expired");
    assert.deepEqual(cp.cursor("AUTH_LOG")?.seen, ["a", "b"], "passed like a delivered file");
    const [entry] = cp.gone("AUTH_LOG");
    assert.deepEqual({ ...entry, found_at: "" }, {
      id: "b",
      event_type: "AUTH_LOG",
      end_time: gone.end_time,
      found_at: "",
      reason: "expired",
    });
    assert.ok(!Number.isNaN(Date.parse(entry.found_at)));
    for (let i = 0; i < MAX_GONE_PER_TYPE + 5; i++) {
      await cp.markGone("AUTH_LOG", AFTER, { id: `g${i}`, end_time: gone.end_time }, "unavailable");
    }
    await cp.close();
    const data = await readJson(path);
    assert.equal(data.gone.AUTH_LOG.length, MAX_GONE_PER_TYPE, "bounded");
    assert.equal(data.gone.AUTH_LOG.at(-1).id, `g${MAX_GONE_PER_TYPE + 4}`, "the most recent kept");
    assert.equal(data.gone.AUTH_LOG[0].id, "g5");
  });
});

test("skipFile records the operator's skip under the lock; a run sees it", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(path, JSON.stringify(state()));
    await skipFile(path, "AUTH_LOG", "bad-1", "hash never matches, ticket 7");
    await skipFile(path, "AUTH_LOG", "bad-2", "second");
    await skipFile(path, "AUTH_LOG", "bad-1", "hash never matches, ticket 8"); // replaces
    const data = await readJson(path);
    assert.equal(data.version, 2);
    assert.deepEqual(data.skipped.AUTH_LOG.map((s: { id: string }) => s.id), ["bad-2", "bad-1"]);
    assert.deepEqual(data.cursors, state().cursors, "the cursor is untouched");

    const cp = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"], { lock: false });
    assert.equal(cp.skipReason("AUTH_LOG", "bad-1"), "hash never matches, ticket 8");
    assert.equal(cp.skipReason("AUTH_LOG", "f1"), undefined);
    assert.equal(cp.skipped("AUTH_LOG").length, 2);
    assert.equal(
      cp.skipCommand("AUTH_LOG", "bad 3"),
      `oai-compliance-logs state skip ${path} AUTH_LOG 'bad 3' --reason TEXT`,
    );
    await cp.close();

    await refused(skipFile(path, "AUDIT_LOG", "x", "r"), "does not track event type AUDIT_LOG");
    await refused(skipFile(join(dir, "none.json"), "AUTH_LOG", "x", "r"), "does not exist");
    await assert.rejects(
      skipFile(path, "AUTH_LOG", "x", "  "),
      (e) => e instanceof CliError && e.kind === "usage",
    );
    const before = await readFile(path, "utf8");
    await withLivePid(async (pid) => {
      await writeFile(`${path}.lock`, lockText(pid));
      await refused(skipFile(path, "AUTH_LOG", "x", "r"), `another run (pid ${pid}`);
    });
    assert.equal(await readFile(path, "utf8"), before, "nothing recorded while locked");
  });
});

test("skips are bounded per event type; an all file takes any well-formed type", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await (await Checkpoint.open(path, "ws-1", "all")).close();
    for (let i = 0; i < MAX_SKIPPED_PER_TYPE + 2; i++) await skipFile(path, "COSTS", `s${i}`, "r");
    const data = await readJson(path);
    assert.equal(data.skipped.COSTS.length, MAX_SKIPPED_PER_TYPE);
    assert.equal(data.skipped.COSTS[0].id, "s2");
    await refused(skipFile(path, "costs; rm", "x", "r"), "is not an event type name");
    assert.deepEqual((await readdir(dir)).sort(), ["s.json"]);
  });
});

test("gone and skipped lists are checked on read like every other field", () => {
  const gone = {
    id: "g",
    event_type: "AUTH_LOG",
    end_time: "2026-01-01T00:00:00Z",
    found_at: "2026-02-01T00:00:00Z",
    reason: "expired" as const,
  };
  const skip = { id: "s", reason: "poison", skipped_at: "2026-02-01T00:00:00Z" };
  const good = stateV2({ gone: { AUTH_LOG: [gone] }, skipped: { AUTH_LOG: [skip] } });
  assert.deepEqual(parseState(JSON.stringify(good), "s.json"), good);
  const cases: [unknown, RegExp][] = [
    [{ ...good, gone: [] }, /"gone" must be an object/],
    [{ ...good, gone: { AUDIT_LOG: [] } }, /"gone.AUDIT_LOG" is not one of "eventTypes"/],
    [{ ...good, gone: { AUTH_LOG: [{ ...gone, reason: "lost" }] } }, /gone.AUTH_LOG\[0\].reason/],
    [{ ...good, gone: { AUTH_LOG: [{ ...gone, end_time: "x" }] } }, /end_time" must be an RFC/],
    [{ ...good, gone: { AUTH_LOG: [{ ...gone, event_type: "X" }] } }, /event_type" must be AUTH/],
    [{ ...good, skipped: { AUTH_LOG: [{ ...skip, reason: "" }] } }, /skipped.AUTH_LOG\[0\].reason/],
    [{ ...good, skipped: { AUTH_LOG: [{ id: "s" }] } }, /missing field "skipped.AUTH_LOG\[0\]./],
    [{ ...good, skipped: undefined }, /missing field "skipped"/],
    [{ ...good, eventTypes: "everything" }, /"eventTypes" must be "all" or a non-empty array/],
    [{ ...good, eventTypes: "all", cursors: { "a b": {} } }, /"cursors.a b" is not an event type/],
    [{ ...state(), eventTypes: "all" }, /"eventTypes" must be a non-empty array/], // v1 has no all
    [{ ...state(), gone: {} }, /unknown field "gone"/], // nor gone files
  ];
  for (const [value, pattern] of cases) {
    assert.throws(() => parseState(JSON.stringify(value), "s.json"), (e) => {
      assert.ok(e instanceof CliError && e.kind === "state", String(e));
      assert.match(e.message, pattern);
      assert.match(e.message, /state reset s\.json/);
      return true;
    }, JSON.stringify(value));
  }
});

test("only a version 1 file holding the eight legacy names is taken for all, not a version 2 one", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const named = stateV2({ eventTypes: [...LEGACY_ALL_EVENT_TYPES].sort() });
    await writeFile(path, JSON.stringify(named));
    await refused(Checkpoint.open(path, "ws-1", "all"), "not all");
  });
});

test("state skip on a legacy all file keeps it an all job's file", async () => {
  const { mkdtemp, rm, writeFile } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const { Checkpoint, skipFile } = await import("../../lib/checkpoint/model.ts");
  const { LEGACY_ALL_EVENT_TYPES } = await import("../../lib/event_types.ts");
  const dir = await mkdtemp(join(tmpdir(), "oai-legacy-skip-"));
  try {
    const path = join(dir, "s.json");
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        principal: "ws-1",
        eventTypes: [...LEGACY_ALL_EVENT_TYPES].sort(),
        cursors: {},
      }),
    );
    await skipFile(path, "AUTH_LOG", "eclf_poison", "corrupt at the source");
    const reopened = await Checkpoint.open(path, "ws-1", "all");
    try {
      assert.equal(reopened.skipReason("AUTH_LOG", "eclf_poison"), "corrupt at the source");
    } finally {
      await reopened.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
