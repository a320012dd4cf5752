// object access (Ceph RGW, Azurite): `ObjectAccess` (lib/destinations/_object_access.ts) as
// S3Store and AzureBlobStore implement it, against the real servers: small objects read whole
// (binary-safe), ranges, listings, and conditional writes (If-None-Match: *, If-Match) that
// resolve to "conflict". Also records what Debian's Ceph 16 RGW does with conditional requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CEPH_SKIP, createBucket, s3Request, startCeph } from "./servers/ceph.ts";
import { azuriteSkip, startAzurite } from "./servers/azurite.ts";
import { s3Store } from "../lib/destinations/s3.ts";
import { AzureBlobStore } from "../lib/destinations/azure_blob.ts";
import type { ObjectAccess } from "../lib/destinations/_object_access.ts";
import { takeLease } from "../lib/destinations/_lease.ts";
import { startS3Standin } from "./servers/s3_conditional_standin.ts";

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

/** The S3 environment of the stand-in at `endpoint`. */
function standinEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: "AKIASTANDIN",
    AWS_SECRET_ACCESS_KEY: "standin-secret-0123456789",
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  };
}

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
