/**
 * The manifest's parts: lines that link by hash (a changed line is found), what a destination
 * learns of a stored file, the writer's windows (tiling, never later than the publication delay
 * allows), `--follow`'s one manifest per poll with news and one an hour without, the lock that
 * keeps two writers from forking a chain, and a dead run's temps told from a live run's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { parseManifest } from "../../lib/manifest/chain.ts";
import { StoredFactsTracker } from "../../lib/manifest/facts.ts";
import { headerLine, lineHash } from "../../lib/manifest/format.ts";
import { LocalArchiveStore } from "../../lib/manifest/local_store.ts";
import { ManifestWriter } from "../../lib/manifest/writer.ts";
import type { ArchiveStore, ManifestLock, StoredObject } from "../../lib/manifest/store.ts";
import { checkArchive, merge } from "../../lib/verify/check.ts";
import { deadPid, withDir } from "../helpers/mod.ts";

/** Manifests in memory, for the writer's tests. */
class MemoryStore implements ArchiveStore {
  readonly label = "memory";
  readonly written = new Map<string, string>();
  manifests() {
    return Promise.resolve([...this.written.keys()].sort());
  }
  readManifest(name: string) {
    return Promise.resolve(this.written.get(name)!);
  }
  writeManifest(name: string, text: string) {
    assert.ok(!this.written.has(name), `${name} written twice`);
    this.written.set(name, text);
    return Promise.resolve();
  }
  lock(): Promise<ManifestLock> {
    return Promise.resolve({
      assertHeld: () => Promise.resolve(),
      release: () => Promise.resolve(),
    });
  }
  markLive(): Promise<ManifestLock> {
    return this.lock();
  }
  liveRuns() {
    return Promise.resolve([]);
  }
  async *objects(): AsyncIterable<StoredObject> {}
  async *read(): AsyncIterable<Uint8Array> {}
  lines(name: string) {
    return this.written.get(name)!.trim().split("\n").map((l) => JSON.parse(l));
  }
}

const file = (id: string, end: string) => ({ id, event_type: "AUTH_LOG", end_time: end });
const storedAt = (id: string) => ({ path: `AUTH_LOG/2026-07-03/${id}.jsonl`, lines: 1 });

function writerOptions(store: ArchiveStore, clock: { now: number }, follow = false) {
  return {
    store,
    principal: "ws-1",
    eventTypes: ["AUTH_LOG", "COSTS"],
    all: false,
    apiBase: "https://api.example/v1",
    follow,
    listing: { settleMs: 0 },
    now: () => clock.now,
  };
}

test("a manifest whose line was changed no longer links; its closing line names its head", () => {
  const header = headerLine({
    version: "1",
    runId: "r",
    startedAt: "2026-07-02T00:00:00.000Z",
    apiBase: "x",
    principal: "ws-1",
    eventTypes: ["AUTH_LOG"],
    sequence: 1,
    windows: {},
    prev: null,
  });
  const entry = JSON.stringify({ type: "gone", id: "a", prev: lineHash(header) });
  const close = JSON.stringify({
    type: "close",
    lines: 2,
    head: lineHash(entry),
    prev: lineHash(entry),
  });
  const intact = parseManifest("m", [header, entry, close].join("\n") + "\n");
  assert.deepEqual(intact.damage, []);
  assert.equal(intact.segments[0].lastHash, lineHash(close));
  const changed = entry.replace('"a"', '"b"');
  const broken = parseManifest("m", [header, changed, close].join("\n") + "\n");
  assert.deepEqual(broken.damage.map((d) => d.line), [3, 3]);
});

test("the stored facts: lines and first/last timestamp across chunks, gzip's stored hash", () => {
  const facts = new StoredFactsTracker("T/d/x.jsonl.gz");
  const text =
    '{"timestamp":"2026-07-02T00:00:01Z","a":1}\r\n\n{"b":2,"timestamp":"2026-07-02T00:' +
    '00:09Z"}\n{"timestamp":"2026-07-02T00:00:05Z"}';
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length; at += 7) facts.plain(bytes.subarray(at, at + 7));
  facts.stored(new Uint8Array([1, 2, 3]));
  const got = facts.facts();
  assert.equal(got.lines, 3);
  assert.equal(got.first_timestamp, "2026-07-02T00:00:01Z");
  assert.equal(got.last_timestamp, "2026-07-02T00:00:05Z");
  assert.equal(got.stored_size, 3);
  assert.equal(got.stored_sha256, lineHash("\x01\x02\x03"));
});

test("the stored facts are the same however the bytes are cut into chunks", () => {
  // The line-by-line reading the tracker must agree with, on the whole text at once.
  const reference = (text: string) => {
    const lines = text.split("\n").filter((line) => line !== "" && line !== "\r");
    const stamps = lines.map((line) => {
      const prefix = new TextDecoder().decode(new TextEncoder().encode(line).subarray(0, 16384));
      return /"timestamp"\s*:\s*"([^"\\]{1,64})"/.exec(prefix)?.[1];
    }).filter((t) => t !== undefined);
    return { lines: lines.length, first: stamps[0], last: stamps.at(-1) };
  };
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const kinds = [
    (i: number) => `{"timestamp":"2026-07-02T00:00:${String(i % 60).padStart(2, "0")}Z","é":"ü"}`,
    () => '{"no":"stamp"}',
    () => "",
    () => "\r",
    (i: number) => `{"pad":"${"x".repeat(17000)}","timestamp":"late-${i}"}`, // Past the prefix.
    (i: number) => `{"a":1,"timestamp" : "spaced-${i}"}\r`,
  ];
  for (let round = 0; round < 40; round++) {
    const count = 1 + random(30);
    const text = Array.from({ length: count }, (_, i) =>
      kinds[random(kinds.length)](i)).join("\n") +
      (random(2) ? "\n" : "");
    const bytes = new TextEncoder().encode(text);
    const facts = new StoredFactsTracker("T/d/x.jsonl");
    for (let at = 0; at < bytes.length;) {
      const size = 1 + random(random(2) ? 40 : 30000);
      facts.plain(bytes.subarray(at, at + size));
      at += size;
    }
    const got = facts.facts();
    const want = reference(text);
    assert.deepEqual(
      { lines: got.lines, first: got.first_timestamp, last: got.last_timestamp },
      want,
      `round ${round}`,
    );
  }
});

test("windows tile, and an empty one ends no later than the publication delay allows", async () => {
  const store = new MemoryStore();
  const clock = { now: Date.parse("2026-07-03T12:00:00Z") };
  const writer = await ManifestWriter.open(writerOptions(store, clock));
  writer.startEventType("AUTH_LOG", "2026-07-01T00:00:00Z");
  writer.listener("AUTH_LOG").released({
    how: "delivered",
    file: file("a", "2026-07-02T10:00:00Z"),
    stored: storedAt("a"),
  });
  writer.listed("AUTH_LOG");
  writer.startEventType("COSTS", "2026-07-01T00:00:00Z");
  writer.listed("COSTS");
  await writer.endPass();
  const [first] = store.written.keys();
  const header = store.lines(first)[0];
  // AUTH_LOG was listed to its end: nothing can appear before the listing time less 30 min.
  assert.deepEqual(header.windows.AUTH_LOG.to, "2026-07-03T11:30:00.000Z");
  // COSTS arrive up to 5 hours late.
  assert.deepEqual(header.windows.COSTS.to, "2026-07-03T07:00:00.000Z");

  const next = await ManifestWriter.open(writerOptions(store, clock));
  next.startEventType("AUTH_LOG", "2026-07-02T10:00:00Z");
  next.listed("AUTH_LOG");
  await next.endPass();
  const second = [...store.written.keys()].find((name) => name !== first)!;
  const again = store.lines(second)[0];
  assert.equal(again.sequence, 2);
  assert.equal(again.prev, lineHash(store.written.get(first)!.trim().split("\n").at(-1)!));
  assert.deepEqual(
    merge([header.windows.AUTH_LOG, again.windows.AUTH_LOG]).length,
    1,
    "the second run starts inside the first one's window",
  );
});

test("--follow: a manifest per poll with news, and one an hour when nothing is new", async () => {
  const store = new MemoryStore();
  const clock = { now: Date.parse("2026-07-03T12:00:00Z") };
  const writer = await ManifestWriter.open(writerOptions(store, clock, true));
  const poll = async (files: string[]) => {
    writer.startPass();
    writer.startEventType("AUTH_LOG", "2026-07-01T00:00:00Z");
    for (const id of files) {
      writer.listener("AUTH_LOG").released({
        how: "delivered",
        file: file(id, "2026-07-03T11:00:00Z"),
        stored: storedAt(id),
      });
    }
    writer.listed("AUTH_LOG");
    await writer.endPass();
    clock.now += 5 * 60_000;
  };
  await poll(["a"]);
  assert.equal(store.written.size, 1);
  for (let i = 0; i < 11; i++) await poll([]);
  assert.equal(store.written.size, 1, "quiet polls within the hour write nothing");
  await poll([]);
  assert.equal(store.written.size, 2, "an hour without news still writes one");
  await poll(["b"]);
  assert.equal(store.written.size, 3);
  const names = [...store.written.keys()].sort();
  const windows = names.map((n) => store.lines(n)[0].windows.AUTH_LOG);
  for (let i = 1; i < windows.length; i++) {
    assert.equal(windows[i].from, windows[i - 1].to, "each manifest starts where the last ended");
  }
  await writer.endPass({ final: true });
  assert.equal(store.written.size, 3, "nothing new at the end: no extra manifest");
});

test("two writers of one job in one directory never fork its chain", async () => {
  await withDir("oai-manifest-", async (dir) => {
    const store = new LocalArchiveStore(dir);
    const clock = { now: Date.parse("2026-07-03T12:00:00Z") };
    const writers = await Promise.all(
      [1, 2, 3].map(() => ManifestWriter.open(writerOptions(store, clock))),
    );
    await Promise.all(writers.map((w) => w.endPass()));
    const names = await store.manifests();
    const sequences = await Promise.all(
      names.map(async (n) => JSON.parse((await store.readManifest(n)).split("\n")[0]).sequence),
    );
    assert.deepEqual(sequences.sort(), [1, 2, 3]);
    const result = await checkArchive(store, {});
    assert.deepEqual(result.findings, []);
  });
});

test("a dead run's temp is unexpected; a live run's is not", async () => {
  await withDir("oai-manifest-", async (dir) => {
    const folder = join(dir, "AUTH_LOG", "2026-07-02");
    await mkdir(folder, { recursive: true });
    const dead = join(folder, `.x.jsonl.${await deadPid()}.0123456789ab.part`);
    const live = join(folder, `.y.jsonl.${process.pid}.0123456789ab.part`);
    await writeFile(dead, "partial");
    await writeFile(live, "partial");
    const old = new Date(Date.now() - 3_600_000);
    await utimes(dead, old, old);
    const store = new LocalArchiveStore(dir);
    const temps: Record<string, string | undefined> = {};
    for await (const object of store.objects()) temps[object.path] = object.temp;
    assert.deepEqual(Object.values(temps).sort(), ["dead", "live"]);
    const result = await checkArchive(store, {});
    assert.deepEqual(result.findings.map((f) => f.kind), ["unexpected"]);
    assert.match(result.findings[0].path!, /\.x\.jsonl\.\d+\.0123456789ab\.part$/);
  });
});

test("a run at work: the files it stored since its last manifest are information", async () => {
  await withDir("oai-manifest-", async (dir) => {
    const store = new LocalArchiveStore(dir);
    const clock = { now: Date.now() };
    const writer = await ManifestWriter.open(writerOptions(store, clock));
    const folder = join(dir, "AUTH_LOG", "2026-07-02");
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, "eclf_new.jsonl"), "{}\n");
    const during = await checkArchive(store, {});
    assert.deepEqual(during.findings.map((f) => [f.kind, f.severity]), [["unexpected", "info"]]);
    await writer.endPass({ final: true });
    // Ended without recording it (it never went through the confirmations): now a stray.
    const after = await checkArchive(store, {});
    assert.deepEqual(after.findings.map((f) => [f.kind, f.severity]), [["unexpected", "problem"]]);
  });
});
