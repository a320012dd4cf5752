import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { holdExclusiveLock, isLockHeld } from "../../lib/runtime.ts";
import { withDir, withLockHeldElsewhere } from "../helpers/mod.ts";

test("a lock this process holds reads as held until it is released", async () => {
  await withDir("oai-lock-", async (dir) => {
    const path = join(dir, "lock");
    const lock = await holdExclusiveLock(path);
    assert.ok(lock, "no lock on this runtime and OS");
    assert.equal(await isLockHeld(path), true);
    lock.release();
    lock.release(); // idempotent
    assert.equal(await isLockHeld(path), false);
    // Checking must not leave a lock behind: the file can be locked again.
    const again = await holdExclusiveLock(path);
    assert.ok(again);
    again.release();
  });
});

test("a second exclusive lock on the same file is refused while the first is held", async () => {
  await withDir("oai-lock-", async (dir) => {
    const path = join(dir, "lock");
    const first = await holdExclusiveLock(path);
    assert.ok(first);
    assert.equal(await holdExclusiveLock(path), undefined);
    first.release();
  });
});

test("a lock held by another live process reads as held, and as free once it has died", async () => {
  await withDir("oai-lock-", async (dir) => {
    const path = join(dir, "lock");
    await writeFile(path, "");
    await withLockHeldElsewhere(path, async () => {
      assert.equal(await isLockHeld(path), true);
      assert.equal(await holdExclusiveLock(path), undefined);
    });
    // The OS released it when the holder was killed (SIGKILL: no clean-up ran).
    assert.equal(await isLockHeld(path), false);
  });
});

test("whether a missing lock file is held cannot be told", async () => {
  await withDir("oai-lock-", async (dir) => {
    assert.equal(await isLockHeld(join(dir, "missing")), undefined);
  });
});
