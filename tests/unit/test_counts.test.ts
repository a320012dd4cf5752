import assert from "node:assert/strict";
import { test } from "node:test";
import { bunCounts, denoCounts } from "../../scripts/test.ts";

test("deno test's closing line counts passed, failed and ignored (skipped) tests", () => {
  assert.deepEqual(denoCounts("ok | 347 passed | 0 failed | 17 ignored (2m19s)"), {
    passed: 347,
    failed: 0,
    skipped: 17,
  });
  assert.deepEqual(denoCounts("\x1b[31mFAILED\x1b[0m | 3 passed (2 steps) | 1 failed (1s)"), {
    passed: 3,
    failed: 1,
    skipped: 0,
  });
  assert.equal(denoCounts("no tests ran"), undefined);
});

test("bun test's closing lines count pass, fail and skip", () => {
  assert.deepEqual(bunCounts(" 346 pass\n 5 skip\n 1 fail\n 2000 expect() calls"), {
    passed: 346,
    failed: 1,
    skipped: 5,
  });
  assert.deepEqual(bunCounts(" 12 pass\n 0 fail"), { passed: 12, failed: 0, skipped: 0 });
  assert.equal(bunCounts("error: no tests found"), undefined);
});
