// Manifests read a few at a time (lib/manifest/read_ahead.ts): handed on in the order asked
// whatever order the reads finish in, never more than `ahead` reads at once, and a failed read
// surfaces at its own turn, after the manifests before it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readManifests } from "../../lib/manifest/read_ahead.ts";

/** A store whose reads finish in reverse order of their names' numbers, counting reads at once. */
function slowStore(fails?: string) {
  let reading = 0;
  const seen = { most: 0, started: [] as string[] };
  return {
    seen,
    readManifest: async (name: string) => {
      seen.started.push(name);
      seen.most = Math.max(seen.most, ++reading);
      await new Promise((r) => setTimeout(r, 30 - Number(name.slice(1)) * 2));
      reading--;
      if (name === fails) throw new Error(`cannot read ${name}`);
      return `text of ${name}`;
    },
  };
}

const NAMES = Array.from({ length: 12 }, (_, i) => `m${i}`);

test("readManifests: in the order asked, at most `ahead` at once, every one read once", async () => {
  const store = slowStore();
  const got: string[] = [];
  for await (const { name, text } of readManifests(store, NAMES, 4)) {
    assert.equal(text, `text of ${name}`);
    got.push(name);
  }
  assert.deepEqual(got, NAMES);
  assert.deepEqual(store.seen.started, NAMES, "each read once, in order");
  assert.equal(store.seen.most, 4, "four reads at once, never more");
});

test("readManifests: a failed read surfaces at its turn, after those before it", async () => {
  const store = slowStore("m5");
  const got: string[] = [];
  await assert.rejects(async () => {
    for await (const { name } of readManifests(store, NAMES, 4)) got.push(name);
  }, /cannot read m5/);
  assert.deepEqual(got, NAMES.slice(0, 5));
});

test("readManifests: nothing to read, nothing asked", async () => {
  const store = slowStore();
  for await (const _ of readManifests(store, [])) assert.fail("nothing to yield");
  assert.deepEqual(store.seen.started, []);
});
