/**
 * lib/destinations/confirmations.ts: confirmations that arrive late and out of order move the
 * checkpoint strictly in listing order, only past confirmed files; a rejection stops it there.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { LogFile } from "../../lib/log_file.ts";
import { Confirmations, quietCursor } from "../../lib/destinations/confirmations.ts";
import type { DeliveryCheckpoint } from "../../lib/destinations/contract.ts";
import { RunStats } from "../../lib/run_stats.ts";

const P1 = "2026-07-01T00:00:00Z";
const P2 = "2026-07-01T03:00:00Z";

function file(id: string, hour: number): LogFile {
  return { id, event_type: "AUTH_LOG", end_time: `2026-07-01T0${hour}:00:00Z` };
}

/** A DeliveryCheckpoint that records every move, in the order it is made. */
export function recordingStore(
  fail?: (move: string) => boolean,
): DeliveryCheckpoint & { moves: string[] } {
  const moves: string[] = [];
  const record = (move: string) => {
    if (fail?.(move)) return Promise.reject(new Error(`cannot write ${move}`));
    moves.push(move);
    return Promise.resolve();
  };
  return {
    moves,
    cursor: () => undefined,
    markDelivered: (_type, after, id) => record(`file ${id} @${after}`),
    advance: (_type, next, ids) => record(`page ${next} [${ids.join(",")}]`),
    markGone: (_type, after, file, reason) => record(`gone ${file.id} @${after} ${reason}`),
    skipReason: () => undefined,
    skipCommand: (type, id) => `skip ${type} ${id}`,
  };
}

test("files confirmed out of order move the checkpoint only in listing order", async () => {
  const store = recordingStore();
  const stats = new RunStats();
  stats.startEventType("AUTH_LOG", null);
  const c = new Confirmations("AUTH_LOG", store, stats);
  const a = c.expect(file("a", 1), P1, 10);
  const b = c.expect(file("b", 2), P1, 20);
  c.pageEnd(P2, ["b"]);
  const d = c.expect(file("d", 4), P2, 40);
  b.confirm();
  d.confirm();
  await c.settled();
  assert.deepEqual(store.moves, [], "a is not confirmed yet");
  assert.equal(stats.files, 0);
  assert.equal(c.pending, 1);
  a.confirm();
  await c.settled();
  assert.deepEqual(store.moves, [
    `file a @${P1}`,
    `file b @${P1}`,
    `page ${P2} [b]`,
    `file d @${P2}`,
  ]);
  assert.equal(stats.files, 3);
  assert.equal(stats.bytes, 70);
  assert.equal(stats.cursors.AUTH_LOG, "2026-07-01T04:00:00Z");
  assert.equal(c.pending, 0);
});

test("settled() waits for the moves of a confirmation that came while it waited", async () => {
  const moves: string[] = [];
  let late: (() => void) | undefined;
  const slow: DeliveryCheckpoint = {
    ...recordingStore(),
    markDelivered: async (_type, after, id) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      moves.push(`file ${id} @${after}`);
      late?.(); // The next file's acknowledgement arrives while this write is under way.
      late = undefined;
    },
    advance: async (_type, next, ids) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      moves.push(`page ${next} [${ids.join(",")}]`);
    },
  };
  const c = new Confirmations("AUTH_LOG", slow, new RunStats());
  const a = c.expect(file("a", 1), P1, 10);
  const b = c.expect(file("b", 2), P1, 20);
  c.pageEnd(P2, ["b"]);
  late = () => b.confirm();
  a.confirm();
  await c.settled({ complete: true });
  assert.deepEqual(moves, [`file a @${P1}`, `file b @${P1}`, `page ${P2} [b]`]);
});

test("a skipped file moves the checkpoint in its turn without counting as delivered", async () => {
  const store = recordingStore();
  const stats = new RunStats();
  const c = new Confirmations("AUTH_LOG", store, stats);
  const a = c.expect(file("a", 1), P1, 10);
  c.skip(file("b", 2), P1);
  assert.deepEqual(store.moves, []);
  a.confirm();
  await c.settled();
  assert.deepEqual(store.moves, [`file a @${P1}`, `file b @${P1}`]);
  assert.equal(stats.files, 1);
  assert.equal(stats.cursors.AUTH_LOG, "2026-07-01T02:00:00Z");
});

test("a rejection stops the checkpoint before the rejected file, whatever comes later", async () => {
  const store = recordingStore();
  const stats = new RunStats();
  const failures: unknown[] = [];
  const c = new Confirmations("AUTH_LOG", store, stats, (e) => failures.push(e));
  const a = c.expect(file("a", 1), P1, 10);
  const b = c.expect(file("b", 2), P1, 20);
  const d = c.expect(file("d", 3), P1, 30);
  d.confirm();
  const refused = new Error("item b refused: mapping conflict");
  b.reject(refused);
  assert.deepEqual(failures, [refused], "told at once, before a is confirmed");
  a.confirm();
  b.confirm(); // A second answer is ignored.
  c.pageEnd(P2, []);
  await assert.rejects(c.settled(), refused);
  assert.deepEqual(store.moves, [`file a @${P1}`]);
  assert.equal(stats.files, 1);
});

test("settled({ complete }) refuses a destination that left a receipt unsettled", async () => {
  const c = new Confirmations("AUTH_LOG", undefined, new RunStats());
  c.expect(file("a", 1), P1, 10);
  await c.settled();
  await assert.rejects(c.settled({ complete: true }), /neither confirmed nor rejected/);
});

test("a failed checkpoint write fails the delivery and nothing moves after it", async () => {
  const store = recordingStore((move) => move.startsWith("file b"));
  const c = new Confirmations("AUTH_LOG", store, new RunStats());
  for (const [id, hour] of [["a", 1], ["b", 2], ["d", 3]] as const) {
    c.expect(file(id, hour), P1, 1).confirm();
  }
  await assert.rejects(c.settled(), /cannot write file b/);
  assert.deepEqual(store.moves, [`file a @${P1}`]);
});

test("a gone file is recorded in its turn, counted as gone and passed like a delivered one", async () => {
  const store = recordingStore();
  const stats = new RunStats();
  stats.startEventType("AUTH_LOG", null);
  const c = new Confirmations("AUTH_LOG", store, stats);
  const a = c.expect(file("a", 1), P1, 10);
  c.gone(file("b", 2), P1, "expired");
  c.pageEnd(P2, ["b"]);
  assert.deepEqual(store.moves, [], "b waits for a");
  assert.deepEqual(stats.goneFiles(), [], "counted only once released");
  a.confirm();
  await c.settled();
  assert.deepEqual(store.moves, [`file a @${P1}`, `gone b @${P1} expired`, `page ${P2} [b]`]);
  assert.equal(stats.files, 1);
  assert.deepEqual(stats.goneFiles(), [
    { eventType: "AUTH_LOG", id: "b", endTime: "2026-07-01T02:00:00Z", reason: "expired" },
  ]);
});

test("the listing's end gives a cursor when there is none, and leaves one that exists", async () => {
  const fresh = recordingStore();
  const stats = new RunStats();
  const c = new Confirmations("AUTH_LOG", fresh, stats);
  c.listingEnd(P1);
  await c.settled();
  assert.deepEqual(fresh.moves, [`page ${P1} []`], "no cursor yet: one at the listing's end");
  assert.equal(stats.cursors.AUTH_LOG, P1);

  // A store with a cursor keeps it, even for a later end.
  const at = { ...recordingStore(), cursor: () => ({ after: P1, seen: ["x"] }) };
  const later = new Confirmations("AUTH_LOG", at, new RunStats());
  later.listingEnd(P2);
  await later.settled();
  assert.deepEqual(at.moves, []);
  // Nor does a listing whose page end gave it a cursor move on.
  const paged = recordingStore();
  const p = new Confirmations("AUTH_LOG", paged, new RunStats());
  p.pageEnd(P1, ["x"]);
  p.listingEnd(P2);
  await p.settled();
  assert.deepEqual(paged.moves, [`page ${P1} [x]`]);
});

test("quietCursor: the listing time less the publication delay or the settle, within <after> and --before", () => {
  const listedAtMs = Date.parse("2026-07-02T12:00:00Z");
  const base = { startAfter: P1, listedAtMs, publicationDelayMs: 30 * 60_000, settleMs: 0 };
  assert.equal(quietCursor(base), "2026-07-02T11:30:00.000Z");
  assert.equal(
    quietCursor({ ...base, publicationDelayMs: 5 * 3_600_000 }),
    "2026-07-02T07:00:00.000Z",
  );
  assert.equal(quietCursor({ ...base, settleMs: 3_600_000 }), "2026-07-02T11:00:00.000Z");
  assert.equal(quietCursor({ ...base, before: "2026-07-02T00:00:00Z" }), "2026-07-02T00:00:00Z");
  assert.equal(
    quietCursor({ ...base, startAfter: "2026-07-02T11:45:00Z" }),
    "2026-07-02T11:45:00Z",
  );
});
