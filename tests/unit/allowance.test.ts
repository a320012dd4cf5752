// The allowance of the object-store core (lib/destinations/_allowance.ts): never more than its
// limit at once, first come first served (a large amount is not passed over by small ones that
// came after it), and an amount over the limit let through alone rather than never.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Allowance } from "../../lib/destinations/_allowance.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

test("Allowance: within the limit; waiters go in the order they came, a large one first", async () => {
  const allowance = new Allowance(10);
  const order: string[] = [];
  await allowance.acquire(6);
  const large = allowance.acquire(8).then(() => order.push("large"));
  const small = allowance.acquire(1).then(() => order.push("small")); // Would fit, but came later.
  await tick();
  assert.deepEqual(order, [], "both wait: the large one does not fit, the small one is behind it");
  allowance.release(6);
  await tick();
  assert.deepEqual(order, ["large", "small"], "8 + 1 fit once the 6 are given back");
  await Promise.all([large, small]);
});

test("Allowance: an amount over the limit goes alone, once nothing else is held", async () => {
  const allowance = new Allowance(4);
  await allowance.acquire(3);
  let huge = false;
  const waiting = allowance.acquire(9).then(() => (huge = true));
  await tick();
  assert.equal(huge, false, "waits while 3 are held");
  allowance.release(3);
  await waiting;
  assert.equal(huge, true);
  let next = false;
  const after = allowance.acquire(1).then(() => (next = true));
  await tick();
  assert.equal(next, false, "nothing more while the huge one is held");
  allowance.release(9);
  await after;
});
