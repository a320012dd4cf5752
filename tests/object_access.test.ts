// object access (Ceph RGW, Azurite): `ObjectAccess` (lib/destinations/_object_access.ts) as
// S3Store and AzureBlobStore implement it, against the real servers: small objects read whole
// (binary-safe), ranges, listings, and conditional writes (If-None-Match: *, If-Match) that
// resolve to "conflict". Also records what Debian's Ceph 16 RGW does with conditional requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CEPH_SKIP, createBucket, s3Request, startCeph } from "./servers/ceph.ts";
import { azuriteSkip, connectionStringFor, startAzurite } from "./servers/azurite.ts";
import { s3Store } from "../lib/destinations/s3.ts";
import { AzureBlobStore } from "../lib/destinations/azure_blob.ts";
import type { ObjectAccess } from "../lib/destinations/_object_access.ts";
import { takeLease } from "../lib/destinations/_lease.ts";
import { conditionalWrites } from "../lib/destinations/_conditional_probe.ts";
import { standinEnv, startS3Standin } from "./servers/s3_conditional_standin.ts";
import { createServer } from "node:http";
import { objectStateStore } from "../lib/checkpoint/object_state.ts";
import { CliError } from "../lib/errors.ts";
import { BlobClient } from "../lib/azure/blob_client.ts";
import { azureAccountFrom } from "../lib/azure/credentials.ts";

const AZURITE_SKIP = azuriteSkip();
const JSON_TYPE = "application/json";
const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function name(what: string): string {
  return `t-${what}-${crypto.randomUUID().slice(0, 8)}`;
}

/** What every ObjectAccess must do, whatever the store. */
async function conforms(access: ObjectAccess): Promise<void> {
  assert.equal(await access.get("jobs/none.json"), undefined, "a missing key is undefined");

  const created = await access.putSmall("jobs/a.json", encode("one"), {
    contentType: JSON_TYPE,
    condition: { ifNoneMatch: "*" },
    metadata: { owner: "test" },
  });
  assert.notEqual(created, "conflict");
  assert.equal(
    await access.putSmall("jobs/a.json", encode("two"), {
      contentType: JSON_TYPE,
      condition: { ifNoneMatch: "*" },
    }),
    "conflict",
    "a second create of the same key",
  );
  const read = await access.get("jobs/a.json");
  assert.ok(read);
  assert.equal(decode(read.bytes), "one", "the failed create changed nothing");
  assert.equal(read.etag, created, "get gives the ETag the write gave");

  assert.equal(
    await access.putSmall("jobs/a.json", encode("three"), {
      contentType: JSON_TYPE,
      condition: { ifMatch: '"0123456789abcdef0123456789abcdef"' },
    }),
    "conflict",
    "If-Match another version",
  );
  const moved = await access.putSmall("jobs/a.json", encode("four"), {
    contentType: JSON_TYPE,
    condition: { ifMatch: read.etag },
  });
  assert.notEqual(moved, "conflict", "If-Match the version read");
  assert.notEqual(moved, read.etag);
  assert.equal(decode((await access.get("jobs/a.json"))!.bytes), "four");
  assert.equal(
    await access.putSmall("jobs/a.json", encode("five"), {
      contentType: JSON_TYPE,
      condition: { ifMatch: read.etag },
    }),
    "conflict",
    "If-Match a version since replaced",
  );
  assert.equal(
    await access.putSmall("jobs/gone.json", encode("x"), {
      contentType: JSON_TYPE,
      condition: { ifMatch: read.etag },
    }),
    "conflict",
    "If-Match a key that does not exist",
  );

  // Binary-safe: every byte value, read whole and by ranges.
  const binary = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
  await access.putSmall("data/bin", binary, { contentType: "application/octet-stream" });
  assert.deepEqual((await access.get("data/bin"))!.bytes, binary);
  assert.deepEqual(await access.getRange("data/bin", 250, 260), binary.subarray(250, 260));
  assert.deepEqual(await access.getRange("data/bin", 0, 512), binary);
  assert.deepEqual(await access.getRange("data/bin", 5, 5), new Uint8Array(0));
  await assert.rejects(access.get("data/bin", { maxBytes: 100 }), /larger|more than/);

  const listed = await access.listPage("jobs/");
  assert.deepEqual(listed.objects.map((o) => o.key), ["jobs/a.json"]);
  assert.equal(listed.objects[0].size, 4);
  assert.equal(listed.next, undefined);
  assert.deepEqual(
    (await access.listPage("")).objects.map((o) => o.key),
    ["data/bin", "jobs/a.json"],
    "in key order",
  );

  // A key with what URLs, XML and form encodings treat specially, listed and read as it is.
  const odd = "odd/a b&c+d%25e%ü€'\"<x>.json";
  await access.putSmall(odd, encode("odd"), { contentType: JSON_TYPE });
  assert.deepEqual((await access.listPage("odd/")).objects.map((o) => o.key), [odd]);
  assert.deepEqual((await access.listPage("odd/a b&c+")).objects.map((o) => o.key), [odd]);
  assert.equal(decode((await access.get(odd))!.bytes), "odd");
  await access.deleteKey(odd);
  assert.equal(await access.get(odd), undefined);

  await access.deleteKey("jobs/a.json", { ifMatch: moved as string });
  assert.equal(await access.get("jobs/a.json"), undefined, "deleted If-Match its ETag");
  assert.equal(await access.deleteKey("data/none"), undefined, "deleting a missing key is fine");
}

test("object access (Ceph RGW): reads, ranges, listing, conditional writes", {
  skip: CEPH_SKIP,
  timeout: 180_000,
}, async () => {
  const ceph = await startCeph();
  const bucket = name("access");
  await createBucket(ceph, bucket);
  await conforms(s3Store(`s3://${bucket}/`, ceph.env));
});

test("object access (Ceph RGW): a prefix-scoped label, keys are full keys", {
  skip: CEPH_SKIP,
  timeout: 180_000,
}, async () => {
  const ceph = await startCeph();
  const bucket = name("keys");
  await createBucket(ceph, bucket);
  const access = s3Store(`s3://${bucket}/some/prefix`, ceph.env);
  await access.putSmall("top.json", encode("{}"), { contentType: JSON_TYPE });
  const answer = await s3Request(ceph, "GET", `/${bucket}/top.json`);
  assert.equal(answer.status, 200, "the key is not put under the store's prefix");
});

test("Ceph 16 RGW finding: If-Match on PUT matches only an unquoted ETag; DELETE ignores it", {
  skip: CEPH_SKIP,
  timeout: 180_000,
}, async () => {
  const ceph = await startCeph();
  const bucket = name("finding");
  await createBucket(ceph, bucket);
  const first = await s3Request(ceph, "PUT", `/${bucket}/k`, { body: encode("one") });
  const etag = first.headers.get("etag")!;
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  const quoted = await s3Request(ceph, "PUT", `/${bucket}/k`, {
    body: encode("two"),
    headers: { "if-match": etag },
  });
  assert.equal(quoted.status, 412, "the RFC's quoted form never matches on Ceph 16");
  const bare = await s3Request(ceph, "PUT", `/${bucket}/k`, {
    body: encode("two"),
    headers: { "if-match": etag.replace(/"/g, "") },
  });
  assert.equal(bare.status, 200, "the bare ETag matches (S3Store sends it so)");
  const created = await s3Request(ceph, "PUT", `/${bucket}/k`, {
    body: encode("three"),
    headers: { "if-none-match": "*" },
  });
  assert.equal(created.status, 412, "If-None-Match: * is honoured");
  const deleted = await s3Request(ceph, "DELETE", `/${bucket}/k`, {
    headers: { "if-match": '"0123456789abcdef0123456789abcdef"' },
  });
  assert.equal(deleted.status, 204, "Ceph 16 deletes whatever If-Match says");
  assert.equal((await s3Request(ceph, "GET", `/${bucket}/k`)).status, 404);
});

test(
  "Ceph 16 RGW finding: on a versioned (Object Lock) bucket If-None-Match: * is ignored and If-Match always fails; the archive takes it, its lease by read-before-and-after",
  {
    skip: CEPH_SKIP,
    timeout: 180_000,
  },
  async () => {
    const ceph = await startCeph();
    const bucket = name("versioned");
    await createBucket(ceph, bucket, true);
    const first = await s3Request(ceph, "PUT", `/${bucket}/k`, {
      body: encode("one"),
      headers: { "if-none-match": "*" },
    });
    assert.equal(first.status, 200);
    const second = await s3Request(ceph, "PUT", `/${bucket}/k`, {
      body: encode("two"),
      headers: { "if-none-match": "*" },
    });
    assert.equal(second.status, 200, "Ceph 16 overwrites an existing key despite If-None-Match: *");
    assert.equal((await s3Request(ceph, "GET", `/${bucket}/k`)).text, "two");
    // If-Match is no way out there: refused even with the current ETag (bare, as Ceph takes it
    // on an unversioned bucket), so a lease by If-Match alone cannot be taken or renewed.
    const current = (await s3Request(ceph, "HEAD", `/${bucket}/k`)).headers.get("etag")!;
    const replaced = await s3Request(ceph, "PUT", `/${bucket}/k`, {
      body: encode("three"),
      headers: { "if-match": current.replace(/"/g, "") },
    });
    assert.equal(replaced.status, 412, "Ceph 16 refuses If-Match the current ETag (versioned)");
    const store = s3Store(`s3://${bucket}/p`, ceph.env);
    await store.check({ retention: true });
    assert.equal(conditionalWrites(store), "none", "taken, as a store that honours no condition");
    // Its conditions are then checked by reading before and after: a second run is still kept
    // out of a lease the first holds (when they do not write in the same moment).
    const what = `the archive s3://${bucket}/p/`;
    const policy = { retries: 2, backoffMs: 10, maxWaitMs: 50 };
    const lease = await takeLease(store, "p/_manifest/.lock", { owner: "run a", what, policy });
    await assert.rejects(
      takeLease(store, "p/_manifest/.lock", { owner: "run b", what, policy }),
      (error: Error) => error instanceof CliError && /another run \(run a/.test(error.message),
    );
    await lease.release();
    const next = await takeLease(store, "p/_manifest/.lock", { owner: "run b", what, policy });
    await next.release();
  },
);

test("object access (Azurite): reads, ranges, listing, conditional writes", {
  skip: AZURITE_SKIP,
  timeout: 120_000,
}, async () => {
  const azurite = await startAzurite();
  const container = name("access");
  await azurite.createContainer(container);
  const access = new AzureBlobStore(azurite.client, container, "");
  await conforms(access);
  // Azure honours If-Match on Delete Blob.
  const tag = await access.putSmall("k", encode("x"), { contentType: JSON_TYPE });
  assert.equal(await access.deleteKey("k", { ifMatch: '"0x0123"' }), "conflict");
  assert.ok(await access.get("k"), "a conflicting delete deleted nothing");
  assert.equal(await access.deleteKey("k", { ifMatch: tag as string }), undefined);
});

/** The lease on a real store: taken once, refused to a second run, renewed, released. */
async function leaseWorks(access: ObjectAccess): Promise<void> {
  const what = `the checkpoint ${access.label}s.json`;
  const policy = { retries: 2, backoffMs: 10, maxWaitMs: 50 };
  const lease = await takeLease(access, "s.json.lock", {
    owner: "run a, pid 1 on host-a",
    what,
    ttlMs: 900,
    policy,
  });
  await assert.rejects(
    takeLease(access, "s.json.lock", { owner: "run b", what, policy }),
    /another run \(run a, pid 1 on host-a, since .*\) holds the lease s\.json\.lock/,
  );
  const before = (await access.get("s.json.lock"))!.etag;
  await new Promise((r) => setTimeout(r, 1_300));
  assert.notEqual((await access.get("s.json.lock"))!.etag, before, "renewed If-Match");
  await lease.assertHeld();
  await lease.release();
  assert.equal(await access.get("s.json.lock"), undefined, "released");
}

test("lease (Ceph RGW): taken once, renewed, released", {
  skip: CEPH_SKIP,
  timeout: 180_000,
}, async () => {
  const ceph = await startCeph();
  const bucket = name("lease");
  await createBucket(ceph, bucket);
  await leaseWorks(s3Store(`s3://${bucket}/`, ceph.env));
});

test("lease (Azurite): taken once, renewed, released", {
  skip: AZURITE_SKIP,
  timeout: 120_000,
}, async () => {
  const azurite = await startAzurite();
  const container = name("lease");
  await azurite.createContainer(container);
  await leaseWorks(new AzureBlobStore(azurite.client, container, ""));
});

test("object access (S3 stand-in for the conditional path): as the S3 reference says", async () => {
  const standin = await startS3Standin("bucket");
  try {
    const access = s3Store("s3://bucket/", standinEnv(standin.endpoint));
    await conforms(access);
    // DeleteObject If-Match, which Ceph 16 ignores.
    const tag = await access.putSmall("k", encode("x"), { contentType: JSON_TYPE });
    assert.equal(
      await access.deleteKey("k", { ifMatch: '"0123456789abcdef0123456789abcdef"' }),
      "conflict",
    );
    assert.ok(await access.get("k"), "a conflicting delete deleted nothing");
    assert.equal(await access.deleteKey("k", { ifMatch: tag as string }), undefined);
    assert.ok(
      standin.seen.some((line) => /^PUT \/bucket\/jobs\/a\.json$/.test(line)),
      "path-style requests reached the stand-in",
    );
  } finally {
    await standin.close();
  }
});

test("object access (S3 stand-in): ListObjectsV2 is followed page by page with continuation-token", async () => {
  const standin = await startS3Standin("bucket", 2);
  try {
    const access = s3Store("s3://bucket/", standinEnv(standin.endpoint));
    for (const key of ["p/a", "p/b", "p/c", "p/d", "p/e", "q/z"]) {
      await access.putSmall(key, encode(key), { contentType: JSON_TYPE });
    }
    const keys: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await access.listPage("p/", next);
      keys.push(...page.objects.map((o) => o.key));
      next = page.next;
      pages++;
    } while (next !== undefined);
    assert.deepEqual(keys, ["p/a", "p/b", "p/c", "p/d", "p/e"]);
    assert.equal(pages, 3);
    assert.ok(standin.seen.some((line) => line.includes("continuation-token=")));
  } finally {
    await standin.close();
  }
});

test("lease (S3 stand-in): taken, renewed, released; one another run took over is left", async () => {
  const standin = await startS3Standin("bucket");
  try {
    const access = s3Store("s3://bucket/", standinEnv(standin.endpoint));
    await leaseWorks(access);
    const lease = await takeLease(access, "t.lock", { owner: "run a", what: "t" });
    const theirs = {
      bytes: encode('{"owner":"run b"}'),
      etag: '"0000000000000000000000000000000b"',
    };
    standin.objects.set("t.lock", theirs);
    await lease.release();
    assert.equal(standin.objects.get("t.lock"), theirs, "their lease is not deleted");
  } finally {
    await standin.close();
  }
});

/**
 * A loopback store that answers as a misbehaving one (or a proxy before it) does: GETs that
 * ignore Range (200, the whole object), answers without an ETag, and listings whose keys are
 * encoded (S3's `encoding-type=url`, form-style; Azure's `<Name Encoded="true">`).
 */
async function startOddStore(): Promise<{ endpoint: string; close(): Promise<void> }> {
  const big = new Uint8Array(4096).fill(7);
  const server = createServer((req, res) => {
    req.resume();
    const url = new URL(req.url ?? "/", "http://odd");
    const name = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    if (req.method === "GET" && url.searchParams.get("list-type") === "2") {
      res.writeHead(200, { "content-type": "application/xml" });
      return res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><EncodingType>url` +
          `</EncodingType><IsTruncated>false</IsTruncated><Contents><Key>odd/a+b%2Bc%26d%25e` +
          `%C3%BC</Key><Size>1</Size></Contents></ListBucketResult>`,
      );
    }
    if (req.method === "GET" && url.searchParams.get("comp") === "list") {
      res.writeHead(200, { "content-type": "application/xml" });
      return res.end(
        `<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs><Blob>` +
          `<Name Encoded="true">odd/a%01b%20c</Name><Properties><Content-Length>1` +
          `</Content-Length></Properties></Blob><Blob><Name>odd/plain &amp; simple</Name>` +
          `<Properties><Content-Length>2</Content-Length></Properties></Blob></Blobs>` +
          `<NextMarker /></EnumerationResults>`,
      );
    }
    if (req.method === "GET" && name === "big") {
      res.writeHead(200, { etag: '"big"', "content-length": big.length });
      return res.end(big);
    }
    if (req.method === "GET" && name === "small") {
      res.writeHead(200, { etag: '"small"', "content-length": 3 });
      return res.end("abc");
    }
    if (name === "noetag") {
      res.writeHead(req.method === "PUT" ? 201 : 200, { "content-length": 1 });
      return res.end("x");
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

test("a store that ignores Range, or sends no ETag, is refused in one line (S3 and Azure)", async () => {
  const odd = await startOddStore();
  try {
    const s3 = s3Store("s3://bucket/", standinEnv(odd.endpoint));
    const azure = new AzureBlobStore(
      new BlobClient(azureAccountFrom({
        AZURE_STORAGE_CONNECTION_STRING: connectionStringFor(`${odd.endpoint}/devstoreaccount1`),
      }, undefined)),
      "container",
      "",
    );
    for (const access of [s3, azure]) {
      await assert.rejects(
        access.getRange("big", 0, 100),
        /ignored the Range header and sent the whole object \(4096 bytes, not 100\)/,
        `${access.label}: a whole object where a range was asked`,
      );
      // A whole object no larger than the range is the range.
      assert.equal(decode(await access.getRange("small", 0, 10)), "abc");
      await assert.rejects(access.get("noetag"), /answer has no ETag/, access.label);
    }
    await assert.rejects(
      azure.putSmall("noetag", encode("x"), {
        contentType: JSON_TYPE,
        condition: { ifNoneMatch: "*" },
      }),
      /answer has no ETag/,
    );
    assert.deepEqual((await s3.listPage("odd/")).objects.map((o) => o.key), ["odd/a b+c&d%eü"]);
    assert.deepEqual((await azure.listPage("odd/")).objects.map((o) => o.key), [
      "odd/a\u0001b c",
      "odd/plain & simple",
    ]);
  } finally {
    await odd.close();
  }
});

test("--state in a store that ignores conditional writes: refused before the lease, nothing left", async () => {
  const ignoring = await startS3Standin("bucket", 2, { ignoreConditions: true });
  const honouring = await startS3Standin("bucket");
  try {
    const env = standinEnv(ignoring.endpoint);
    await assert.rejects(
      objectStateStore("s3://bucket/jobs/s.json", env).lock(),
      (error: Error) =>
        error instanceof CliError && error.kind === "usage" &&
        /^--state s3:\/\/bucket\/jobs\/s\.json: the store ignores conditional writes/.test(
          error.message,
        ),
    );
    assert.deepEqual([...ignoring.objects.keys()], [], "no probe, no lease");
    // Read-only use (`--list`, `state show`) writes nothing, even to probe.
    ignoring.seen.length = 0;
    const reader = objectStateStore("s3://bucket/jobs/s.json", env);
    assert.equal(await reader.read(), undefined);
    assert.deepEqual(ignoring.seen, ["GET /bucket/jobs/s.json"], "only a read");

    const store = objectStateStore("s3://bucket/jobs/s.json", standinEnv(honouring.endpoint));
    const lock = await store.lock();
    assert.deepEqual([...honouring.objects.keys()], ["jobs/s.json.lock"], "the probe deleted");
    await lock.release();
  } finally {
    await ignoring.close();
    await honouring.close();
  }
});

/**
 * `check()` probes conditional writes under `_manifest/` and leaves nothing there; with the
 * store's writes made to drop their conditions (as a store or proxy that ignores them would),
 * it refuses naming the store.
 */
async function checkProbes(
  store: ObjectAccess & { check(needs: { retention: boolean }): Promise<void> },
  prefix: string,
  whenIgnored: "refused" | "taken, with a warning",
): Promise<void> {
  const putSmall = store.putSmall.bind(store);
  const probed: string[] = [];
  let ignore = false;
  store.putSmall = (key, bytes, options, signal) => {
    probed.push(key);
    return putSmall(key, bytes, ignore ? { ...options, condition: undefined } : options, signal);
  };
  await store.check({ retention: false });
  assert.equal(probed.length, 4, "created twice, replaced If-Match current and stale");
  assert.match(probed[0], new RegExp(`^${prefix}_manifest/\\.conditional-probe-`));
  assert.deepEqual((await store.listPage(prefix)).objects, [], "no probe left");
  ignore = true;
  if (whenIgnored === "refused") {
    await assert.rejects(
      store.check({ retention: false }),
      (error: Error) =>
        error instanceof CliError &&
        error.message.startsWith(`${store.label}: the store ignores conditional writes`),
    );
  } else {
    await store.check({ retention: false });
    assert.equal(conditionalWrites(store), "none");
  }
  assert.deepEqual((await store.listPage(prefix)).objects, [], "no probe left either way");
}

test(
  "check (Ceph RGW): conditional writes probed, no probe left; taken as best effort when ignored",
  {
    skip: CEPH_SKIP,
    timeout: 180_000,
  },
  async () => {
    const ceph = await startCeph();
    const bucket = name("check");
    await createBucket(ceph, bucket);
    await checkProbes(
      s3Store(`s3://${bucket}/archive`, ceph.env),
      "archive/",
      "taken, with a warning",
    );
  },
);

test("check (Azurite): conditional writes probed, no probe left; refused when ignored", {
  skip: AZURITE_SKIP,
  timeout: 120_000,
}, async () => {
  const azurite = await startAzurite();
  const container = name("check");
  await azurite.createContainer(container);
  await checkProbes(
    new AzureBlobStore(azurite.client, container, "archive/"),
    "archive/",
    "refused",
  );
});
