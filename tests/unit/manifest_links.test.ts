/**
 * Two parts `--from-archive` leans on: the walk of a job's chain across its manifests
 * (`chainBreaks`: a gap, a fork, a manifest that does not link), and the stored facts of a plain
 * file the listing gave no SHA-256 for (`hashPlain`: the downloaded bytes' own size and hash).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chainBreaks } from "../../lib/manifest/chain.ts";
import { StoredFactsTracker } from "../../lib/manifest/facts.ts";
import { chainLinks } from "../helpers/chain_links.ts";

test("chainBreaks: whole chains hold, in any order given, several jobs apart", () => {
  const links = [...chainLinks("ws-1/AUTH_LOG", 3), ...chainLinks("ws-1/all", 2)];
  assert.deepEqual(chainBreaks(links.reverse()), []);
});

test("chainBreaks: a manifest removed from the middle, or the first, is a gap", () => {
  const [a, , c] = chainLinks("ws-1/AUTH_LOG", 3);
  const [middle] = chainBreaks([a, c]);
  assert.equal(middle.job, "ws-1/AUTH_LOG");
  assert.equal(
    middle.why,
    `1 manifest is missing after ${a.manifest} and before ${c.manifest} (sequence 2)`,
  );
  const [first] = chainBreaks([c]);
  assert.match(first.why, /^2 manifests are missing before it and before .* \(sequence 1-2\)$/);
});

test("chainBreaks: a fork and a replaced manifest are named; one break per job", () => {
  const [a, b, c] = chainLinks("ws-1/AUTH_LOG", 3);
  const fork = { ...b, manifest: "20260702T000001Z-other.jsonl" };
  const forked = chainBreaks([a, b, fork, c]);
  assert.equal(forked.length, 1);
  assert.match(forked[0].why, /has sequence 2, already taken by .*: the chain forks/);
  const replaced = chainBreaks([a, { ...b, prev: "forged" }, c]);
  assert.deepEqual(replaced.map((x) => x.why), [
    `${b.manifest} does not link to ${a.manifest} (one of them was changed or replaced)`,
  ]);
  assert.match(chainBreaks([{ ...a, prev: "h0" }])[0].why, /is the first manifest but links/);
});

test("StoredFactsTracker hashPlain: a plain file's own size and SHA-256; none without it", () => {
  const bytes = new TextEncoder().encode('{"timestamp":"2026-07-02T10:00:00Z"}\n{"a":1}\n');
  const hashed = new StoredFactsTracker("AUTH_LOG/2026-07-02/eclf_1.jsonl", { hashPlain: true });
  hashed.plain(bytes.subarray(0, 7));
  hashed.plain(bytes.subarray(7));
  const facts = hashed.facts();
  assert.equal(facts.stored_size, bytes.length);
  assert.equal(facts.stored_sha256, createHash("sha256").update(bytes).digest("hex"));
  assert.equal(facts.lines, 2);

  const listed = new StoredFactsTracker("AUTH_LOG/2026-07-02/eclf_1.jsonl");
  listed.plain(bytes);
  assert.equal(listed.facts().stored_sha256, undefined, "the listing's hash vouches");
});

test("StoredFactsTracker hashPlain: a compressed file keeps the stored bytes' facts", () => {
  const tracker = new StoredFactsTracker("AUTH_LOG/2026-07-02/eclf_1.jsonl.gz", {
    hashPlain: true,
  });
  tracker.plain(new TextEncoder().encode("plain\n"));
  tracker.stored(new Uint8Array([1, 2, 3]));
  const facts = tracker.facts();
  assert.equal(facts.stored_size, 3);
  assert.equal(
    facts.stored_sha256,
    createHash("sha256").update(new Uint8Array([1, 2, 3])).digest("hex"),
  );
});
