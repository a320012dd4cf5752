// The probe that a store honours conditional writes (lib/destinations/_conditional_probe.ts):
// tells apart a store that honours If-None-Match: * and If-Match ("both"), one that honours only
// If-Match ("if-match-only", Ceph 16 on a versioned bucket), and one that honours neither
// (refused in one line naming the store), and leaves no probe behind either way.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkConditionalWrites,
  conditionalWrites,
  createCondition,
  probeName,
} from "../../lib/destinations/_conditional_probe.ts";
import type { PutSmallOptions } from "../../lib/destinations/_object_access.ts";
import { CliError } from "../../lib/errors.ts";
import { MemoryObjectAccess } from "../fixtures/memory_object_access.ts";

/** A store (or a proxy before it) that drops the conditions of writes. */
class IgnoresConditions extends MemoryObjectAccess {
  override putSmall(key: string, bytes: Uint8Array, options: PutSmallOptions) {
    return super.putSmall(key, bytes, { ...options, condition: undefined });
  }
}

test('probe: a store that honours both conditions passes as "both", the probe deleted', async () => {
  const access = new MemoryObjectAccess("s3://b/logs/");
  const key = `logs/_manifest/${probeName()}`;
  assert.equal(conditionalWrites(access), "both", "unprobed: both assumed");
  assert.equal(await checkConditionalWrites(access, key, "s3://b/logs/"), "both");
  assert.equal(conditionalWrites(access), "both");
  assert.deepEqual(createCondition(access), { ifNoneMatch: "*" });
  assert.equal(access.calls.putSmall, 4, "created twice, replaced If-Match current and stale");
  assert.deepEqual([...access.objects.keys()], [], "no probe left");
});

test('probe: a store that ignores only If-None-Match is "if-match-only", recorded', async () => {
  const access = new MemoryObjectAccess("s3://b/logs/");
  access.ignoreIfNoneMatch = true;
  const key = `logs/_manifest/${probeName()}`;
  assert.equal(await checkConditionalWrites(access, key, "s3://b/logs/"), "if-match-only");
  assert.equal(conditionalWrites(access), "if-match-only");
  assert.equal(createCondition(access), undefined, "creates made without If-None-Match");
  assert.deepEqual([...access.objects.keys()], [], "no probe left");
});

/** A store that honours If-None-Match but drops If-Match. */
class IgnoresIfMatch extends MemoryObjectAccess {
  override putSmall(key: string, bytes: Uint8Array, options: PutSmallOptions) {
    const ifMatch = options.condition && "ifMatch" in options.condition;
    return super.putSmall(key, bytes, ifMatch ? { ...options, condition: undefined } : options);
  }
}

test("probe: a store that ignores If-Match is refused, even if it honours If-None-Match", async () => {
  const access = new IgnoresIfMatch("s3://b/logs/");
  await assert.rejects(
    checkConditionalWrites(access, `logs/_manifest/${probeName()}`, "s3://b/logs/"),
    (error: unknown) =>
      error instanceof CliError && error.kind === "usage" &&
      /^s3:\/\/b\/logs\/: the store ignores conditional writes \(probing .*: a write If-Match a replaced ETag was not refused\)/
        .test(error.message) &&
      !error.message.includes("\n"),
  );
  assert.deepEqual([...access.objects.keys()], [], "no probe left");
});

test("probe: a store that ignores conditional writes is refused in one line naming it", async () => {
  const access = new IgnoresConditions("s3://b/logs/");
  await assert.rejects(
    checkConditionalWrites(access, `logs/_manifest/${probeName()}`, "s3://b/logs/"),
    (error: unknown) =>
      error instanceof CliError && error.kind === "usage" &&
      /^s3:\/\/b\/logs\/: the store ignores conditional writes/.test(error.message) &&
      !error.message.includes("\n"),
  );
  assert.deepEqual([...access.objects.keys()], [], "no probe left");
});

test("probe: credentials that may not delete leave the probe, the check still passes", async () => {
  const access = new MemoryObjectAccess("az://c/logs");
  access.refuseDeletes = true;
  await checkConditionalWrites(access, `logs/_manifest/${probeName()}`, "az://c/logs");
  assert.equal(access.objects.size, 1);
});

test("probe names are distinct and hidden in _manifest/ (a dot first)", () => {
  assert.notEqual(probeName(), probeName());
  assert.match(probeName(), /^\.conditional-probe-[0-9a-f-]{36}$/);
});

/** Ceph 16 on a versioned bucket: creates overwrite, and every PUT If-Match answers 412. */
class VersionedCeph16 extends MemoryObjectAccess {
  override ignoreIfNoneMatch = true;
  override putSmall(key: string, bytes: Uint8Array, options: PutSmallOptions) {
    if (options.condition && "ifMatch" in options.condition) return Promise.resolve("conflict");
    return super.putSmall(key, bytes, options);
  }
}

test("probe: a store that refuses If-Match even on the current ETag is refused (Ceph 16, versioned)", async () => {
  const access = new VersionedCeph16("s3://b/logs/");
  await assert.rejects(
    checkConditionalWrites(access, `logs/_manifest/${probeName()}`, "s3://b/logs/"),
    (error: unknown) =>
      error instanceof CliError && error.kind === "usage" &&
      /a write If-Match its current ETag was refused, and a second create with If-None-Match: \* was not refused/
        .test(error.message) &&
      !error.message.includes("\n"),
  );
  assert.equal(conditionalWrites(access), "both", "nothing recorded for a refused store");
  assert.deepEqual([...access.objects.keys()], [], "no probe left");
});
