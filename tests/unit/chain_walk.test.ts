// The one walk of a job's chain across manifests (`walkChains`, lib/manifest/chain.ts) that
// `verify` and `--from-archive` share: every run judged against the one before it in sequence
// order, the walk going on past a break, and a caller's own fields kept on each link.
import { test } from "node:test";
import assert from "node:assert/strict";
import { walkChains } from "../../lib/manifest/chain.ts";
import { chainLinks } from "../helpers/chain_links.ts";

test("walkChains: jobs in the order first given, each run in sequence order after the one before", () => {
  const links = [...chainLinks("ws-1/all", 2), ...chainLinks("ws-1/AUTH_LOG", 3)].reverse();
  const walked = walkChains(links);
  assert.deepEqual([...walked.keys()], ["ws-1/AUTH_LOG", "ws-1/all"]);
  const steps = walked.get("ws-1/AUTH_LOG")!;
  assert.deepEqual(steps.map((s) => s.link.sequence), [1, 2, 3]);
  assert.deepEqual(steps.map((s) => s.previous?.sequence), [undefined, 1, 2]);
  assert.ok(steps.every((s) => s.fault === undefined));
});

test("walkChains: every break is found, each judged against the run before it", () => {
  const [a, b, c, d, e] = chainLinks("ws-1/AUTH_LOG", 5);
  const fork = { ...b, manifest: "20260702T000001Z-other.jsonl" };
  const steps = walkChains([a, b, fork, { ...d, prev: "forged" }, e]).get("ws-1/AUTH_LOG")!;
  assert.deepEqual(steps.map((s) => [s.link.manifest, s.previous?.manifest, s.fault]), [
    [a.manifest, undefined, undefined],
    [b.manifest, a.manifest, undefined],
    [fork.manifest, b.manifest, { kind: "fork" }],
    // c is missing: d comes after the fork, whose sequence is 2.
    [d.manifest, fork.manifest, { kind: "gap", expected: 3, missing: 1 }],
    [e.manifest, d.manifest, undefined],
  ]);
  assert.equal(c.sequence, 3);
  const [first] = walkChains([{ ...a, prev: "h0" }]).get("ws-1/AUTH_LOG")!;
  assert.deepEqual(first.fault, { kind: "unlinked" });
  const [gap] = walkChains([c]).get("ws-1/AUTH_LOG")!;
  assert.deepEqual(gap.fault, { kind: "gap", expected: 1, missing: 2 });
});

test("walkChains: a link's own fields (a segment, say) come back with it", () => {
  const links = chainLinks("ws-1/AUTH_LOG", 2).map((link, i) => ({ ...link, segment: `s${i}` }));
  const steps = walkChains(links).get("ws-1/AUTH_LOG")!;
  assert.deepEqual(steps.map((s) => [s.link.segment, s.previous?.segment]), [
    ["s0", undefined],
    ["s1", "s0"],
  ]);
});
