// The store's lock (lib/destinations/_lease.ts) on an in-memory ObjectAccess with a real store's
// conditional semantics: taken once, refused to a second run, renewed, taken over when expired,
// lost when another run takes it, waited for, and released only when still ours.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  describeLease,
  keyUrl,
  type LeaseRecord,
  takeLease,
} from "../../lib/destinations/_lease.ts";
import { CliError, TransientError } from "../../lib/errors.ts";
import { recordConditionalWrites } from "../../lib/destinations/_conditional_probe.ts";
import { MemoryObjectAccess } from "../fixtures/memory_object_access.ts";

const FAST = { retries: 3, backoffMs: 1, maxWaitMs: 5 };
const KEY = "jobs/s.json.lock";
const A = {
  owner: "run a, pid 1 on host-a",
  what: "the checkpoint mem://jobs/s.json",
  policy: FAST,
};
const B = { ...A, owner: "run b, pid 2 on host-b" };

function record(access: MemoryObjectAccess): LeaseRecord {
  return JSON.parse(access.text(KEY)!);
}

function isState(pattern: RegExp) {
  return (error: unknown) =>
    error instanceof CliError && error.kind === "state" && pattern.test(error.message);
}

test("lease: taken once; a second run is refused naming the holder; released, taken again", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, A);
  assert.equal(lease.key, KEY);
  assert.equal(lease.tookOver, undefined);
  assert.equal(record(access).owner, A.owner);
  assert.ok(Date.parse(record(access).expiresAt) > Date.now() + 4 * 60_000, "5 min by default");
  await assert.rejects(takeLease(access, KEY, B), isState(/another run \(run a, pid 1/));
  await lease.assertHeld();
  assert.match(await describeLease(access, KEY, FAST), /^held by run a/);
  await lease.release();
  await lease.release(); // idempotent
  assert.equal(access.text(KEY), undefined, "released: deleted");
  assert.equal(await describeLease(access, KEY, FAST), "none");
  const again = await takeLease(access, KEY, B);
  assert.equal(record(access).owner, B.owner);
  await again.release();
});

test("lease: of two runs taking it at once, exactly one gets it", async () => {
  const access = new MemoryObjectAccess();
  const results = await Promise.allSettled([takeLease(access, KEY, A), takeLease(access, KEY, B)]);
  const held = results.filter((r) => r.status === "fulfilled");
  assert.equal(held.length, 1);
  const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
  assert.ok(isState(/holds the lease/)(refused.reason));
  await (held[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
});

test("lease: renewed every ttl/3 with If-Match, its expiry pushed on", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 300 });
  const first = record(access);
  const firstTag = access.objects.get(KEY)!.etag;
  await new Promise((r) => setTimeout(r, 700));
  const later = record(access);
  assert.notEqual(access.objects.get(KEY)!.etag, firstTag, "rewritten");
  assert.equal(later.takenAt, first.takenAt);
  assert.ok(Date.parse(later.expiresAt) > Date.parse(first.expiresAt));
  await lease.assertHeld();
  await lease.release();
  assert.equal(access.text(KEY), undefined);
});

test("lease: an expired one is taken over, tookOver says whose and since when", async () => {
  const access = new MemoryObjectAccess();
  const dead: LeaseRecord = {
    owner: "run z, pid 9 on host-z",
    what: A.what,
    takenAt: "2026-01-01T00:00:00.000Z",
    renewedAt: "2026-01-01T00:10:00.000Z",
    expiresAt: "2026-01-01T00:15:00.000Z",
  };
  access.set(KEY, JSON.stringify(dead));
  assert.match(await describeLease(access, KEY, FAST), /^expired at 2026-01-01T00:15/);
  const lease = await takeLease(access, KEY, A);
  assert.match(lease.tookOver!, /run z, pid 9 on host-z held it since 2026-01-01T00:00:00/);
  assert.match(lease.tookOver!, /expired at 2026-01-01T00:15:00/);
  assert.equal(record(access).owner, A.owner);
  await lease.release();
});

test("lease: lost when another run takes it over; assertHeld throws; release leaves theirs", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 150 });
  // Another writer replaces it (as a run that judged ours expired would).
  access.set(KEY, JSON.stringify({ ...record(access), owner: B.owner }));
  await new Promise((r) => setTimeout(r, 400));
  await assert.rejects(lease.assertHeld(), isState(/no longer holds the lease .*took it over/));
  await lease.release();
  assert.equal(record(access).owner, B.owner, "not deleted: it is theirs");
});

test("lease: with waitMs, a held lease is waited for until released", async () => {
  const access = new MemoryObjectAccess();
  const first = await takeLease(access, KEY, A);
  setTimeout(() => first.release(), 300);
  const started = Date.now();
  const second = await takeLease(access, KEY, { ...B, waitMs: 10_000 });
  assert.ok(Date.now() - started >= 250, "it waited");
  assert.equal(record(access).owner, B.owner);
  await second.release();
  // A wait that runs out is refused.
  const third = await takeLease(access, KEY, A);
  await assert.rejects(takeLease(access, KEY, { ...B, waitMs: 300 }), isState(/holds the lease/));
  await third.release();
});

test("lease: transient store errors are retried", async () => {
  const access = new MemoryObjectAccess();
  access.failNext.putSmall = 2;
  const lease = await takeLease(access, KEY, A);
  assert.equal(access.calls.putSmall, 3);
  access.failNext.get = 1;
  access.failNext.deleteKey = 1;
  await lease.release();
  assert.equal(access.text(KEY), undefined);
});

test("lease: an object that is not a lease is refused, not taken over", async () => {
  const access = new MemoryObjectAccess();
  access.set(KEY, "hello");
  await assert.rejects(takeLease(access, KEY, A), isState(/not a lease this tool writes/));
  assert.equal(access.text(KEY), "hello");
});

/** A store whose next writes land but whose answers are lost (a connection cut after the PUT). */
class LostAnswers extends MemoryObjectAccess {
  lose = 0;
  override async putSmall(
    ...args: Parameters<MemoryObjectAccess["putSmall"]>
  ): Promise<string | "conflict"> {
    const tag = await super.putSmall(...args);
    if (this.lose > 0 && tag !== "conflict") {
      this.lose--;
      throw new TransientError("network", "connection reset after the write (injected)");
    }
    return tag;
  }
}

test("lease: a write that landed but whose answer was lost is not taken for another run's", async () => {
  const access = new LostAnswers();
  access.lose = 1;
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 300 });
  assert.equal(record(access).owner, A.owner);
  access.lose = 1; // the next renewal's answer is lost too
  const before = record(access).expiresAt;
  await new Promise((r) => setTimeout(r, 500));
  await lease.assertHeld();
  assert.ok(record(access).expiresAt > before, "renewed");
  await lease.release();
  assert.equal(access.text(KEY), undefined);
});

test("lease: credentials that may not delete: release expires it in place, the next run takes it at once", async () => {
  const access = new MemoryObjectAccess();
  access.refuseDeletes = true; // As an Azure SAS without `d` answers (403).
  const lease = await takeLease(access, KEY, A);
  const before = record(access);
  const tag = access.objects.get(KEY)!.etag;
  await lease.release();
  await lease.release(); // idempotent
  assert.ok(access.objects.has(KEY), "not deleted: it could not be");
  assert.notEqual(access.objects.get(KEY)!.etag, tag, "rewritten, If-Match its own version");
  const expired = record(access);
  assert.equal(expired.owner, A.owner);
  assert.equal(expired.takenAt, before.takenAt);
  assert.ok(Date.parse(expired.expiresAt) <= Date.now(), `expired: ${expired.expiresAt}`);
  assert.match(await describeLease(access, KEY, FAST), /^expired at /);
  // The next run takes it over straight away (waitMs 0 would refuse a live holder).
  const next = await takeLease(access, KEY, B);
  assert.match(next.tookOver!, /run a, pid 1 on host-a held it since/);
  assert.equal(record(access).owner, B.owner);
  access.refuseDeletes = false;
  await next.release();
  assert.equal(access.text(KEY), undefined, "deleted where deletes are allowed");
});

test("lease: a release that can neither delete nor rewrite fails with the delete's error", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, A);
  access.refuseDeletes = true;
  access.failNext.putSmall = Infinity;
  await assert.rejects(
    lease.release(),
    (error: unknown) => error instanceof CliError && /not allowed to delete/.test(error.message),
  );
  assert.equal(record(access).owner, A.owner);
  assert.ok(Date.parse(record(access).expiresAt) > Date.now(), "left as it was");
});

test("lease: not deletable and taken over meanwhile: release leaves the other run's lease alone", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 60_000 });
  access.refuseDeletes = true;
  access.set(KEY, JSON.stringify({ ...record(access), owner: B.owner }));
  const theirs = access.objects.get(KEY)!.etag;
  await lease.release();
  assert.equal(access.objects.get(KEY)!.etag, theirs, "neither deleted nor rewritten");
  assert.ok(Date.parse(record(access).expiresAt) > Date.now());
});

test("lease: a renewal that landed but whose answer never came is still ours at the next one", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 300 });
  const mine = record(access);
  // A renewal's write landed, but every try of it failed as far as the lease knows: the object
  // is ours (our owner and takenAt) under an ETag the lease never saw.
  const renewedAt = new Date().toISOString();
  const unseen = access.set(KEY, JSON.stringify({ ...mine, renewedAt }) + "\n");
  const deadline = Date.now() + 5_000;
  while (access.objects.get(KEY)!.etag === unseen && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await lease.assertHeld();
  assert.notEqual(access.objects.get(KEY)!.etag, unseen, "renewed over the unseen version");
  assert.equal(record(access).takenAt, mine.takenAt);
  assert.ok(record(access).renewedAt > renewedAt);
  await lease.release();
  assert.equal(access.text(KEY), undefined, "released: deleted");
});

test("lease: a renewal that finds another owner's record under the same takenAt loses it", async () => {
  const access = new MemoryObjectAccess();
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 150 });
  access.set(KEY, JSON.stringify({ ...record(access), owner: B.owner }));
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && await lease.assertHeld().then(() => true, () => false)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await assert.rejects(lease.assertHeld(), isState(/took it over or it was deleted/));
  assert.equal(record(access).owner, B.owner, "theirs is not renewed");
  await lease.release();
});

test("lease: a key is named after the bucket or container, not after the store's prefix", () => {
  const named = (label: string, key: string) => keyUrl(new MemoryObjectAccess(label), key);
  assert.equal(named("s3://b/openai/", "openai/_manifest/.lock"), "s3://b/openai/_manifest/.lock");
  assert.equal(
    named("az://logs/openai", "openai/_manifest/.lock"),
    "az://logs/openai/_manifest/.lock",
  );
  assert.equal(named("s3://b/", "jobs/s.json.lock"), "s3://b/jobs/s.json.lock");
});

/** A store that ignores If-None-Match: * but honours If-Match (Ceph 16 on a versioned bucket). */
function ifMatchOnly(): MemoryObjectAccess {
  const access = new MemoryObjectAccess();
  access.ignoreIfNoneMatch = true;
  recordConditionalWrites(access, "if-match-only");
  return access;
}

test("lease (If-Match only): of two runs taking it at once, exactly one gets it", async () => {
  for (let round = 0; round < 5; round++) {
    const access = ifMatchOnly();
    if (round % 2 === 1) access.set(KEY, JSON.stringify({ ...record0(), free: true }) + "\n");
    const results = await Promise.allSettled([
      takeLease(access, KEY, A),
      takeLease(access, KEY, B),
    ]);
    const held = results.filter((r) => r.status === "fulfilled");
    assert.equal(held.length, 1, `round ${round}: exactly one holds it`);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.ok(isState(/holds the lease/)(refused.reason), String(refused.reason));
    await (held[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
  }
});

test("lease (If-Match only): taken with If-Match, never by a create; release makes it free", async () => {
  const access = ifMatchOnly();
  const lease = await takeLease(access, KEY, A);
  assert.equal(record(access).owner, A.owner);
  assert.equal(lease.tookOver, undefined, "a free lease is not taken over");
  await assert.rejects(takeLease(access, KEY, B), isState(/another run \(run a, pid 1/));
  assert.equal(record(access).owner, A.owner, "the refused run wrote nothing over it");
  await lease.release();
  assert.equal(record(access).free, true, "released: rewritten as free, not deleted");
  assert.equal(access.calls.deleteKey, 0, "never a delete");
  assert.equal(await describeLease(access, KEY, FAST), "none");
  const again = await takeLease(access, KEY, B);
  assert.equal(record(access).owner, B.owner);
  await again.release();
});

test("lease (If-Match only): an expired one is taken over; the old holder loses it", async () => {
  const access = ifMatchOnly();
  const old = await takeLease(access, KEY, { ...A, ttlMs: 60_000 });
  // Its holder died: the record lapsed without a renewal.
  const lapsed = { ...record(access), expiresAt: new Date(Date.now() - 1000).toISOString() };
  access.set(KEY, JSON.stringify(lapsed) + "\n", "application/json");
  const taken = await takeLease(access, KEY, B);
  assert.match(taken.tookOver ?? "", /^run a, pid 1 on host-a held it since .* it expired at/);
  assert.equal(record(access).owner, B.owner);
  await old.release(); // Not ours any more: B's lease left alone.
  assert.equal(record(access).owner, B.owner);
  await taken.release();
  assert.equal(record(access).free, true);
});

test("lease (If-Match only): a release that lost the lease leaves the other run's alone", async () => {
  const access = ifMatchOnly();
  const lease = await takeLease(access, KEY, { ...A, ttlMs: 60_000 });
  access.set(KEY, JSON.stringify({ ...record(access), owner: B.owner }) + "\n");
  await lease.release();
  assert.equal(record(access).owner, B.owner, "If-Match our ETag: not written");
});

test("lease (If-Match only): waited for until released; a wait run out, or no lease, refused", async () => {
  const access = ifMatchOnly();
  const first = await takeLease(access, KEY, A);
  setTimeout(() => first.release(), 300);
  const started = Date.now();
  const second = await takeLease(access, KEY, { ...B, waitMs: 10_000 });
  assert.ok(Date.now() - started >= 250, "it waited");
  assert.equal(record(access).owner, B.owner);
  await assert.rejects(takeLease(access, KEY, { ...A, waitMs: 300 }), isState(/holds the lease/));
  await second.release();
  access.set(KEY, "hello");
  await assert.rejects(takeLease(access, KEY, A), isState(/not a lease this tool writes/));
  assert.equal(access.text(KEY), "hello");
});

test("lease: a free one (left by an If-Match-only store) is taken at once, not taken over", async () => {
  const access = new MemoryObjectAccess();
  access.set(KEY, JSON.stringify({ ...record0(), free: true }) + "\n", "application/json");
  const lease = await takeLease(access, KEY, A);
  assert.equal(lease.tookOver, undefined);
  assert.equal(record(access).owner, A.owner);
  await lease.release();
});

function record0(): LeaseRecord {
  const never = new Date(0).toISOString();
  return { owner: "nobody", what: A.what, takenAt: never, renewedAt: never, expiresAt: never };
}
