/**
 * `ObjectArchiveStore` over an in-memory `ObjectAccess` with real conditional semantics:
 * manifests listed and never overwritten, live marks that expire, the archive's objects outside
 * `_manifest/` with their listed sizes, ranged reads in bounded chunks, transient failures
 * retried, and a whole manifest chain written then verified by `checkArchive`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readlinkSync } from "node:fs";
import { hostname } from "node:os";
import { deadPid, withLivePid } from "../helpers/mod.ts";
import { MemoryObjectAccess } from "../fixtures/memory_object_access.ts";
import {
  type ObjectArchiveOptions,
  ObjectArchiveStore,
  READ_CHUNK_BYTES,
  type TakeLease,
} from "../../lib/manifest/object_store.ts";
import { ManifestWriter } from "../../lib/manifest/writer.ts";
import { checkArchive } from "../../lib/verify/check.ts";
import type { ObjectAccess } from "../../lib/destinations/_object_access.ts";

const FAST = { retries: 3, backoffMs: 1, maxWaitMs: 1 };

/** A lease of the test's own: create-if-absent, polled until `waitMs`; release deletes it. */
const testLease: TakeLease = async (access: ObjectAccess, key, options) => {
  const deadline = Date.now() + (options.waitMs ?? 0);
  while (true) {
    const tag = await access.putSmall(key, new TextEncoder().encode(options.owner), {
      condition: { ifNoneMatch: "*" },
      contentType: "text/plain",
    });
    if (tag !== "conflict") {
      return {
        assertHeld: () => Promise.resolve(),
        release: async () => void await access.deleteKey(key, { ifMatch: tag }),
      };
    }
    if (Date.now() > deadline) throw new Error(`${options.what} is held`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

function storeOf(
  access: MemoryObjectAccess,
  prefix = "logs/",
  extra: Partial<ObjectArchiveOptions> = {},
) {
  return new ObjectArchiveStore(access, prefix, {
    label: `mem://bucket/${prefix}`,
    policy: FAST,
    takeLease: testLease,
    ...extra,
  });
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

test("manifests: listed sorted from _manifest/, read back, never overwritten", async () => {
  const access = new MemoryObjectAccess("mem://bucket/", 2);
  const store = storeOf(access);
  await store.writeManifest("20260702T100000.000Z-b.jsonl", "b\n");
  await store.writeManifest("20260702T090000.000Z-a.jsonl", "a\n");
  access.set("logs/_manifest/.live-x", "{}");
  access.set("logs/_manifest/sub/20260702T080000.000Z-c.jsonl", "not one");
  access.set("other/_manifest/20260702T070000.000Z-d.jsonl", "another prefix");
  assert.deepEqual(await store.manifests(), [
    "20260702T090000.000Z-a.jsonl",
    "20260702T100000.000Z-b.jsonl",
  ]);
  assert.equal(await store.readManifest("20260702T100000.000Z-b.jsonl"), "b\n");
  assert.equal(
    access.objects.get("logs/_manifest/20260702T090000.000Z-a.jsonl")?.contentType,
    "application/x-ndjson",
  );
  await assert.rejects(
    store.writeManifest("20260702T100000.000Z-b.jsonl", "changed\n"),
    /already exists with other contents; a manifest is never overwritten/,
  );
  assert.equal(access.text("logs/_manifest/20260702T100000.000Z-b.jsonl"), "b\n");
});

test("a retried manifest write that had landed finds its own bytes: success", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access);
  // The first put lands, but its answer is lost: simulated by writing it before the put.
  access.set("logs/_manifest/m.jsonl", "same\n");
  await store.writeManifest("m.jsonl", "same\n");
  access.failNext.listPage = 2;
  assert.deepEqual(await store.manifests(), ["m.jsonl"], "transient listing failures retried");
});

test("objects: keys under the prefix outside _manifest/, sizes listed, folders exact", async () => {
  const access = new MemoryObjectAccess("mem://bucket/", 3);
  const store = storeOf(access);
  access.set("logs/AUTH_LOG/2026-07-02/a.jsonl", "12345");
  access.set("logs/AUTH_LOG/2026-07-02/b.jsonl", "1");
  access.set("logs/AUTH_LOG_X/2026-07-02/c.jsonl", "12");
  access.set("logs/notes.txt", "stray");
  access.set("logs/folder/", "");
  access.set("logs/_manifest/m.jsonl", "{}");
  access.set("elsewhere/AUTH_LOG/2026-07-02/d.jsonl", "x");
  assert.deepEqual(await collect(store.objects()), [
    { path: "AUTH_LOG/2026-07-02/a.jsonl", size: 5 },
    { path: "AUTH_LOG/2026-07-02/b.jsonl", size: 1 },
    { path: "AUTH_LOG_X/2026-07-02/c.jsonl", size: 2 },
    { path: "notes.txt", size: 5 },
  ]);
  assert.deepEqual((await collect(store.objects(["AUTH_LOG"]))).map((o) => o.path), [
    "AUTH_LOG/2026-07-02/a.jsonl",
    "AUTH_LOG/2026-07-02/b.jsonl",
  ]);
  // No prefix: the bucket's root is the archive.
  const root = storeOf(access, "");
  assert.ok(
    (await collect(root.objects())).some((o) => o.path === "elsewhere/AUTH_LOG/2026-07-02/d.jsonl"),
  );
});

test("read: an object in ranges of at most 8 MiB, whole, also at an exact multiple", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access);
  const big = new Uint8Array(READ_CHUNK_BYTES * 2 + 17).map((_, i) => i % 251);
  access.set("logs/big.jsonl", big);
  access.set("logs/exact.jsonl", big.subarray(0, READ_CHUNK_BYTES * 2));
  access.set("logs/empty.jsonl", "");
  const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
  for (
    const [path, expected] of [["big.jsonl", big], [
      "exact.jsonl",
      big.subarray(0, READ_CHUNK_BYTES * 2),
    ]] as const
  ) {
    const before = access.calls.getRange;
    const chunks = await collect(store.read(path));
    assert.ok(chunks.every((c) => c.length <= READ_CHUNK_BYTES));
    const hash = createHash("sha256");
    for (const chunk of chunks) hash.update(chunk);
    assert.equal(hash.digest("hex"), sha(expected), path);
    assert.equal(access.calls.getRange - before, Math.ceil(expected.length / READ_CHUNK_BYTES));
  }
  assert.deepEqual(await collect(store.read("empty.jsonl")), []);
  access.failNext.getRange = 1;
  assert.equal((await collect(store.read("big.jsonl"))).length, 3, "a failed range is retried");
  await assert.rejects(collect(store.read("none.jsonl")), /no such object/);
});

test("markLive: a mark with the run's event types, renewed, gone when released; expired ones are not live", async () => {
  const access = new MemoryObjectAccess();
  let now = Date.parse("2026-07-02T10:00:00Z");
  const store = storeOf(access, "logs/", { now: () => now, liveTtlMs: 60_000 });
  const live = await store.markLive("r1", ["AUTH_LOG", "AUDIT_LOG"]);
  const mark = JSON.parse(access.text("logs/_manifest/.live-r1")!);
  assert.deepEqual(mark.eventTypes, ["AUTH_LOG", "AUDIT_LOG"]);
  assert.deepEqual(await store.liveRuns(), [["AUTH_LOG", "AUDIT_LOG"]]);
  assert.deepEqual(await collect(store.objects()), [], "a mark is no archived file");
  assert.deepEqual(await store.manifests(), []);
  now += 61_000; // Not renewed in time (the timer runs every 20 s of real time): expired.
  assert.deepEqual(await store.liveRuns(), []);
  // The next run sweeps it; this one's mark is live.
  const other = await store.markLive("r2", ["COSTS"]);
  assert.equal(access.objects.has("logs/_manifest/.live-r1"), false, "the expired mark swept");
  assert.deepEqual(await store.liveRuns(), [["COSTS"]]);
  await other.release();
  await live.release();
  assert.deepEqual([...access.objects.keys()], []);
});

test("markLive renews the mark while the run works", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access, "logs/", { liveTtlMs: 60 });
  const live = await store.markLive("r1", ["AUTH_LOG"]);
  const first = access.objects.get("logs/_manifest/.live-r1")!.etag;
  const deadline = Date.now() + 5_000;
  while (access.objects.get("logs/_manifest/.live-r1")!.etag === first && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.notEqual(access.objects.get("logs/_manifest/.live-r1")!.etag, first);
  assert.deepEqual(await store.liveRuns(), [["AUTH_LOG"]]);
  await live.release();
  assert.equal(access.objects.has("logs/_manifest/.live-r1"), false);
});

test("lock: a lease on _manifest/.lock, waited for while another run holds it", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access);
  const first = await store.lock();
  assert.ok(access.objects.has("logs/_manifest/.lock"));
  let second: { release(): Promise<void> } | undefined;
  const waiting = store.lock().then((lock) => second = lock);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(second, undefined, "held: the second waits");
  await first.release();
  await waiting;
  await second!.release();
  assert.equal(access.objects.has("logs/_manifest/.lock"), false);
});

test("a run's manifest written to the store verifies; an altered object is found", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access);
  const body = '{"timestamp":"2026-07-02T09:00:00Z","event_id":"e1"}\n';
  const sha = createHash("sha256").update(body).digest("hex");
  access.set("logs/AUTH_LOG/2026-07-02/f1.jsonl", body);
  const writer = await ManifestWriter.open({
    store,
    principal: "ws-1",
    eventTypes: ["AUTH_LOG"],
    all: false,
    apiBase: "http://127.0.0.1:1/v1",
    follow: false,
    listing: { settleMs: 0 },
    recover: false,
  });
  writer.startEventType("AUTH_LOG", "2026-07-02T00:00:00Z");
  const listener = writer.listener("AUTH_LOG");
  listener.released({
    how: "delivered",
    file: { id: "f1", end_time: "2026-07-02T10:00:00Z", file_size: body.length, file_sha256: sha },
    stored: { path: "AUTH_LOG/2026-07-02/f1.jsonl", lines: 1 },
  } as never);
  writer.listed("AUTH_LOG");
  await writer.endPass({ final: true });
  const [name] = await store.manifests();
  assert.match(name, /\.jsonl$/);
  assert.equal(access.objects.has(`logs/_manifest/.live-${writer.runId}`), false, "mark released");
  const clean = await checkArchive(store, {});
  assert.deepEqual(clean.findings.filter((f) => f.severity === "problem"), []);
  access.set("logs/AUTH_LOG/2026-07-02/f1.jsonl", body.replace("e1", "e2"));
  const damaged = await checkArchive(store, {});
  assert.deepEqual(
    damaged.findings.filter((f) => f.severity === "problem").map((f) => f.kind),
    ["altered"],
  );
});

test("lock with the store's lease (lib/destinations/_lease.ts): taken, then released", async () => {
  const access = new MemoryObjectAccess();
  const store = new ObjectArchiveStore(access, "logs/", {
    label: "mem://bucket/logs/",
    policy: FAST,
  });
  const lock = await store.lock();
  const record = JSON.parse(access.text("logs/_manifest/.lock")!);
  assert.match(record.what, /the manifest lock mem:\/\/bucket\/logs\/_manifest\/\.lock/);
  await lock.release();
  assert.equal(access.objects.has("logs/_manifest/.lock"), false);
});

test("a live mark whose process is gone (this host, this pid namespace) is dead at once", {
  skip: existsSync("/proc/self/ns/pid") ? false : "no pid namespaces here",
}, async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access);
  const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
  const mark = (pid: number, host: string) =>
    JSON.stringify({
      run: `r${pid}`,
      owner: "a test",
      eventTypes: [host],
      expiresAt,
      host,
      pid,
      pidNamespace: readlinkSync("/proc/self/ns/pid"),
    });
  const dead = await deadPid();
  access.set("logs/_manifest/.live-dead", mark(dead, hostname()));
  access.set("logs/_manifest/.live-elsewhere", mark(dead, `not-${hostname()}`));
  await withLivePid(async (alive) => {
    access.set("logs/_manifest/.live-alive", mark(alive, hostname()));
    // A pid of another host cannot be checked from here: live until it expires.
    assert.deepEqual(
      (await store.liveRuns()).flat().sort(),
      [hostname(), `not-${hostname()}`].sort(),
    );
    const live = await store.markLive("r1", ["AUTH_LOG"]);
    assert.equal(access.objects.has("logs/_manifest/.live-dead"), false, "the dead one swept");
    assert.ok(access.objects.has("logs/_manifest/.live-alive"));
    await live.release();
  });
});

test("credentials that cannot delete: the lock and the live mark are let go by expiring them", async () => {
  const access = new MemoryObjectAccess();
  const store = new ObjectArchiveStore(access, "logs/", {
    label: "mem://bucket/logs/",
    policy: FAST,
    lockWaitMs: 0,
  });
  access.failNext.deleteKey = Infinity; // As an Azure SAS without `d` would answer.
  const live = await store.markLive("r1", ["AUTH_LOG"]);
  const lock = await store.lock();
  await lock.release();
  await live.release();
  assert.ok(access.objects.has("logs/_manifest/.lock"), "not deleted");
  assert.deepEqual(await store.liveRuns(), [], "the mark expired in place");
  // Taken again at once, no wait (lockWaitMs 0 would refuse a live holder).
  const again = await store.lock();
  access.failNext.deleteKey = 0;
  await again.release();
  assert.equal(access.objects.has("logs/_manifest/.lock"), false);
});

test("sweeping an expired mark deletes it If-Match the version read: one renewed since stays", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access, "logs/", { now: () => Date.parse("2026-07-02T10:00:00Z") });
  const mark = (expiresAt: string) =>
    JSON.stringify({
      run: "old",
      owner: "a test",
      eventTypes: ["X"],
      expiresAt,
      host: "b",
      pid: 1,
    });
  access.set("logs/_manifest/.live-old", mark("2026-07-02T09:00:00Z"));
  // In the moment between the sweeper's read and its delete, the mark's run renews it.
  const deleteKey = access.deleteKey.bind(access);
  const conditions: Array<{ ifMatch: string } | undefined> = [];
  access.deleteKey = (key, condition, signal) => {
    conditions.push(condition);
    access.set(key, mark("2026-07-02T11:00:00Z"));
    return deleteKey(key, condition, signal);
  };
  const live = await store.markLive("r1", ["AUTH_LOG"]);
  assert.equal(conditions.length, 1);
  assert.ok(conditions[0]?.ifMatch, "deleted If-Match the version read");
  assert.ok(access.objects.has("logs/_manifest/.live-old"), "the renewed mark is left");
  assert.deepEqual((await store.liveRuns()).sort(), [["AUTH_LOG"], ["X"]]);
  access.deleteKey = deleteKey;
  await live.release();
});

test("a renewal that finds its mark gone (swept) makes it again", async () => {
  const access = new MemoryObjectAccess();
  const store = storeOf(access, "logs/", { liveTtlMs: 60 });
  const live = await store.markLive("r1", ["AUTH_LOG"]);
  access.objects.delete("logs/_manifest/.live-r1"); // Swept by a run that judged it expired.
  const deadline = Date.now() + 5_000;
  while (!access.objects.has("logs/_manifest/.live-r1") && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(access.objects.has("logs/_manifest/.live-r1"), "made again");
  assert.equal(JSON.parse(access.text("logs/_manifest/.live-r1")!).run, "r1");
  // And renewed from then on, If-Match the new version.
  const made = access.objects.get("logs/_manifest/.live-r1")!.etag;
  while (access.objects.get("logs/_manifest/.live-r1")?.etag === made && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.notEqual(access.objects.get("logs/_manifest/.live-r1")?.etag, made, "renewed again");
  await live.release();
  assert.equal(access.objects.has("logs/_manifest/.live-r1"), false);
});

test("the writer checks the manifest lock is still held just before it writes the manifest", async () => {
  const access = new MemoryObjectAccess();
  let lost = false;
  const store = storeOf(access, "logs/", {
    takeLease: async (a, key, options) => {
      const lease = await testLease(a, key, options);
      return {
        assertHeld: () =>
          lost
            ? Promise.reject(new Error("this run no longer holds the lease"))
            : Promise.resolve(),
        release: () => lease.release(),
      };
    },
  });
  const writer = await ManifestWriter.open({
    store,
    principal: "ws-1",
    eventTypes: ["AUTH_LOG"],
    all: false,
    apiBase: "http://127.0.0.1:1/v1",
    follow: false,
    listing: { settleMs: 0 },
    recover: false,
  });
  writer.startEventType("AUTH_LOG", "2026-07-02T00:00:00Z");
  writer.listed("AUTH_LOG");
  lost = true; // Taken over while the run worked.
  await assert.rejects(writer.endPass({ final: true }), /no longer holds the lease/);
  assert.deepEqual(await store.manifests(), [], "no manifest written");
  assert.equal(access.objects.has("logs/_manifest/.lock"), false, "the lock let go");
});

test("the manifest lock's lease names a random run part as its owner, and is checked held", async () => {
  const access = new MemoryObjectAccess();
  const store = new ObjectArchiveStore(access, "logs/", {
    label: "mem://bucket/logs/",
    policy: FAST,
  });
  const lock = await store.lock();
  const record = JSON.parse(access.text("logs/_manifest/.lock")!);
  assert.match(record.owner, /^run [0-9a-f]{8}, pid \d+ on /);
  await lock.assertHeld();
  await lock.release();
  const again = await store.lock();
  assert.notEqual(JSON.parse(access.text("logs/_manifest/.lock")!).owner, record.owner);
  await again.release();
});
