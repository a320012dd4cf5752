/**
 * The requests the shared object-store core makes per file (lib/destinations/_object_store.ts),
 * against an in-memory store: the idempotent re-run lists each day's prefix once instead of a
 * HEAD before every upload, HEADs only the keys the listing holds, and falls back to a HEAD per
 * key where the store cannot list; an upload is signed with its bytes' real SHA-256 and MD5 and
 * confirmed only after the store's success.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { LogFile } from "../../lib/log_file.ts";
import {
  META_SHA256,
  META_SIZE,
  type ObjectStore,
  ObjectStoreDestination,
  type Payload,
  type PutOptions,
  type StoredObject,
} from "../../lib/destinations/_object_store.ts";

const NAMING = { gzip: false, layout: "plain" as const };

interface Calls {
  list: string[];
  head: string[];
  put: Array<{ key: string; sha256: string; md5: string }>;
}

/** An in-memory bucket that records its requests; `lists: false` drops `listPage`. */
function memoryStore(
  objects: Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>,
  options: { lists?: boolean; listFails?: boolean; mangles?: boolean } = {},
): { store: ObjectStore; calls: Calls } {
  const calls: Calls = { list: [], head: [], put: [] };
  const store: ObjectStore = {
    label: "mem://bucket/",
    maxParts: 10_000,
    check: () => Promise.resolve(),
    head(key: string): Promise<StoredObject | undefined> {
      calls.head.push(key);
      const object = objects.get(key);
      return Promise.resolve(
        object && { size: object.bytes.length, metadata: { ...object.metadata } },
      );
    },
    async put(key: string, payload: Payload, options: PutOptions) {
      await new Promise((r) => setTimeout(r, 5)); // The store answers later.
      calls.put.push({ key, sha256: payload.sha256, md5: payload.md5 });
      objects.set(key, { bytes: payload.bytes.slice(), metadata: options.metadata });
    },
    startUpload: () => Promise.reject(new Error("no multipart here")),
    putPart: () => Promise.reject(new Error("no multipart here")),
    completeUpload: () => Promise.reject(new Error("no multipart here")),
    abortUpload: () => Promise.resolve(),
    staleUploads: () => Promise.resolve([]),
  };
  if (options.lists !== false) {
    store.listPage = (prefix: string) => {
      calls.list.push(prefix);
      if (options.listFails) return Promise.reject(new Error("AccessDenied (no s3:ListBucket)"));
      const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
      // A store that mangles keys (encodes them without saying so): none matches the prefix.
      const shown = options.mangles ? keys.map(encodeURIComponent) : keys;
      return Promise.resolve({ objects: shown.map((key) => ({ key })) });
    };
  }
  return { store, calls };
}

function fileOf(i: number, bytes: Uint8Array, day = "2026-07-02"): LogFile {
  return {
    id: `eclf_req_${i}`,
    event_type: "AUTH_LOG",
    end_time: `${day}T0${i}:00:00Z`,
    file_size: bytes.length,
    file_sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

/** Lists, spools and delivers `files` as the pipeline does; resolves with what was confirmed. */
async function deliverAll(
  destination: ObjectStoreDestination,
  files: Array<{ file: LogFile; bytes: Uint8Array }>,
): Promise<{ stored: string[]; confirmed: string[] }> {
  const stored: string[] = [];
  const confirmed: string[] = [];
  for (const { file, bytes } of files) {
    if (await destination.alreadyStored(file, "AUTH_LOG")) {
      stored.push(file.id);
      continue;
    }
    const spool = await destination.spool(file, "AUTH_LOG");
    await spool.write(bytes);
    await destination.deliver({
      file,
      eventType: "AUTH_LOG",
      spool,
      downloaded: { bytes: bytes.length, sha256: file.file_sha256 },
      receipt: {
        confirm: () => confirmed.push(file.id),
        reject: (error) => assert.fail(`rejected: ${error}`),
      },
    });
  }
  await destination.finish();
  return { stored, confirmed };
}

const FILES = [0, 1, 2].map((i) => {
  const bytes = new TextEncoder().encode(`{"event_id":"e${i}","n":${"x".repeat(i * 100)}}\n`);
  return { file: fileOf(i, bytes), bytes };
});

test("a first run lists each day's prefix once and HEADs nothing; a re-run HEADs what it lists", async () => {
  const objects = new Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>();
  const first = memoryStore(objects);
  const run = await deliverAll(
    new ObjectStoreDestination(first.store, { prefix: "p/", naming: NAMING }),
    FILES,
  );
  assert.deepEqual(run.confirmed, FILES.map((f) => f.file.id));
  assert.deepEqual(first.calls.list, ["p/AUTH_LOG/2026-07-02/"], "one listing of the day");
  assert.deepEqual(first.calls.head, [], "no HEAD before a key the listing lacks");
  assert.equal(first.calls.put.length, 3, "one PUT per file");
  for (const [i, put] of first.calls.put.entries()) {
    const { bytes, file } = FILES.find((f) => put.key.endsWith(`${f.file.id}.jsonl`))!;
    assert.equal(put.sha256, createHash("sha256").update(bytes).digest("hex"), `put ${i}`);
    assert.equal(put.md5, createHash("md5").update(bytes).digest("base64"), `put ${i}`);
    const object = objects.get(put.key)!;
    assert.deepEqual(object.bytes, bytes);
    assert.equal(object.metadata[META_SHA256], file.file_sha256);
    assert.equal(object.metadata[META_SIZE], String(bytes.length));
  }

  const again = memoryStore(objects);
  const rerun = await deliverAll(
    new ObjectStoreDestination(again.store, { prefix: "p/", naming: NAMING }),
    FILES,
  );
  assert.deepEqual(rerun.stored, FILES.map((f) => f.file.id), "every file skipped");
  assert.deepEqual(again.calls.list, ["p/AUTH_LOG/2026-07-02/"]);
  assert.equal(again.calls.head.length, 3, "each listed key is compared (HEAD)");
  assert.equal(again.calls.put.length, 0);
});

test("a new file among stored ones: only the stored ones are HEADed, the new one uploaded", async () => {
  const objects = new Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>();
  await deliverAll(
    new ObjectStoreDestination(memoryStore(objects).store, { prefix: "", naming: NAMING }),
    FILES.slice(0, 2),
  );
  const { store, calls } = memoryStore(objects);
  const run = await deliverAll(
    new ObjectStoreDestination(store, { prefix: "", naming: NAMING }),
    FILES,
  );
  assert.deepEqual(run.stored, [FILES[0].file.id, FILES[1].file.id]);
  assert.deepEqual(run.confirmed, [FILES[2].file.id]);
  assert.equal(calls.list.length, 1);
  assert.equal(calls.head.length, 2);
  assert.deepEqual(calls.put.map((p) => p.key), [`AUTH_LOG/2026-07-02/${FILES[2].file.id}.jsonl`]);
});

test("a store that cannot list (or refuses to) is asked with a HEAD per key", async () => {
  for (const options of [{ lists: false }, { listFails: true }]) {
    const objects = new Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>();
    const { store, calls } = memoryStore(objects, options);
    const run = await deliverAll(
      new ObjectStoreDestination(store, {
        prefix: "p/",
        naming: NAMING,
        policy: { retries: 0, backoffMs: 0, maxWaitMs: 0 },
      }),
      FILES,
    );
    assert.equal(run.confirmed.length, 3, JSON.stringify(options));
    assert.equal(calls.head.length, 3, JSON.stringify(options));
    assert.equal(calls.list.length, options.lists === false ? 0 : 1, JSON.stringify(options));
  }
});

test("an object altered in the store is still found by the re-run and written again", async () => {
  const objects = new Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>();
  await deliverAll(
    new ObjectStoreDestination(memoryStore(objects).store, { prefix: "", naming: NAMING }),
    FILES,
  );
  const key = `AUTH_LOG/2026-07-02/${FILES[1].file.id}.jsonl`;
  objects.set(key, { bytes: new Uint8Array([1]), metadata: { [META_SIZE]: "1" } });
  const notes: string[] = [];
  const { store, calls } = memoryStore(objects);
  const run = await deliverAll(
    new ObjectStoreDestination(store, { prefix: "", naming: NAMING, onNote: (t) => notes.push(t) }),
    FILES,
  );
  assert.deepEqual(run.confirmed, [FILES[1].file.id]);
  assert.equal(notes.length, 1, "reported as altered");
  assert.deepEqual(objects.get(key)!.bytes, FILES[1].bytes);
  assert.equal(calls.head.length, 3);
});

test("a listing whose keys are not under the prefix is not trusted: a HEAD per key", async () => {
  const objects = new Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>();
  await deliverAll(
    new ObjectStoreDestination(memoryStore(objects).store, { prefix: "p/", naming: NAMING }),
    FILES,
  );
  const mangled = memoryStore(objects, { mangles: true });
  const rerun = await deliverAll(
    new ObjectStoreDestination(mangled.store, { prefix: "p/", naming: NAMING }),
    FILES,
  );
  assert.deepEqual(rerun.stored, FILES.map((f) => f.file.id), "every stored file still found");
  assert.equal(mangled.calls.head.length, 3, "each checked with a HEAD");
  assert.equal(mangled.calls.put.length, 0, "nothing written over what is stored");
});

test("the bodies sent at once stay within the sending allowance; a larger one goes alone", async () => {
  const objects = new Map<string, { bytes: Uint8Array; metadata: Record<string, string> }>();
  const { store, calls } = memoryStore(objects);
  let sending = 0;
  let most = 0;
  const alone: boolean[] = [];
  const put = store.put.bind(store);
  store.put = async (key, payload, options, signal) => {
    sending += payload.bytes.length;
    most = Math.max(most, payload.bytes.length > 2500 ? 0 : sending);
    if (payload.bytes.length > 2500) alone.push(sending === payload.bytes.length);
    try {
      // Answered late enough that the next file's body is sent meanwhile, if allowed.
      await new Promise((r) => setTimeout(r, 40));
      await put(key, payload, options, signal);
    } finally {
      sending -= payload.bytes.length;
    }
  };
  const files = [...Array(8).keys()].map((i) => {
    const bytes = new Uint8Array(i === 5 ? 4000 : 1000).fill(97 + i);
    return { file: fileOf(i, bytes), bytes };
  });
  const run = await deliverAll(
    new ObjectStoreDestination(store, {
      prefix: "p/",
      naming: NAMING,
      inFlight: 4,
      sendingBytes: 2500,
    }),
    files,
  );
  assert.deepEqual(run.confirmed.sort(), files.map((f) => f.file.id).sort());
  assert.equal(calls.put.length, 8);
  assert.equal(most, 2000, "two bodies of 1000 bytes at once, never three");
  assert.deepEqual(alone, [true], "the 4000-byte body was sent alone, not refused");
});
