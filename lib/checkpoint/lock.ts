/**
 * The lock beside a state file (`FILE.lock`, holding the owner's pid, host and start time) that
 * keeps overlapping runs (cron) from interleaving their writes. The holder touches it every 30 s.
 * A lock is stale, and taken over, when its pid is gone (same host), when it predates the last
 * boot, or, for a lock of another host sharing the directory, when it has not been touched for 10
 * minutes. Before each write the holder checks the lock is still its own.
 *
 * Every function takes the state file's path twice: `target`, the file itself (symlinks
 * followed), and `shown`, the path as the user gave it, for messages; the lock is `target.lock`.
 *
 * @example
 * ```ts
 * import { stateTarget } from "./format.ts";
 * const target = await stateTarget("s.json");
 * const { lock, tookOver } = await acquireLock(target, "s.json");
 * try {
 *   await assertStillHeld(lock, "s.json");
 *   // ... write s.json
 * } finally {
 *   await releaseLock(lock);
 * }
 * ```
 */
import { hostname, uptime } from "node:os";
import { open, stat, unlink, utimes } from "node:fs/promises";
import { resolve } from "node:path";
import process from "node:process";
import { clearInterval, setInterval } from "node:timers";
import { isProcessAlive, writeFileAtomic } from "../atomic.ts";
import { CliError, codeOf, reason } from "../errors.ts";
import { COMMAND, isRecord, readSmallFile } from "./_common.ts";

/** Far more than the one line of JSON a lock holds. */
const MAX_LOCK_BYTES = 64 * 1024;

/** A lock file that cannot be parsed is only presumed abandoned once it is this old. */
const UNREADABLE_LOCK_GRACE_MS = 60_000;
/** How often the holder touches its lock, so that runs on other hosts can tell it is alive. */
const HEARTBEAT_MS = 30_000;
/** A lock from another host (its pid cannot be checked from here) untouched this long is stale. */
const FOREIGN_LOCK_STALE_MS = 10 * 60_000;

interface LockInfo {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** A lock this process holds: what it wrote, and the timer that keeps touching it. */
export interface HeldLock {
  path: string;
  key: string;
  text: string;
  heartbeat: ReturnType<typeof setInterval>;
}

/** Locks this process holds (by absolute path): a second open of the same file is refused. */
const heldLocks = new Set<string>();

/**
 * Takes the lock of the state file `target`, taking over a stale one (`tookOver` then says why it
 * was judged stale). Refuses, with a `CliError` of kind "state", while a live run holds it, or
 * while this process already does.
 *
 * @example
 * ```ts
 * const { lock, tookOver } = await acquireLock("/data/s.json", "s.json");
 * if (tookOver) console.warn(`took over a stale lock (${tookOver})`);
 * ```
 */
export async function acquireLock(
  target: string,
  shown: string,
): Promise<{ lock: HeldLock; tookOver?: string }> {
  const path = `${target}.lock`;
  const shownLock = `${shown}.lock`;
  const key = resolve(path);
  if (heldLocks.has(key)) {
    throw new CliError("state", `this process already holds ${shownLock}`);
  }
  const mine: LockInfo = {
    pid: process.pid,
    hostname: hostName(),
    startedAt: new Date().toISOString(),
  };
  const text = JSON.stringify(mine) + "\n";
  for (let attempt = 0; attempt < 10; attempt++) {
    if (await createLock(path, shownLock, text)) {
      return { lock: hold(path, key, text) };
    }
    const found = await readLock(path);
    if (found === undefined) continue; // released since: try again
    const verdict = judgeLock(found, shownLock);
    if (verdict.stale === false) {
      // A lock still being written reads as unreadable for a moment: look again before refusing.
      if (found.info === undefined && attempt < 2) {
        await sleep(100);
        continue;
      }
      throw new CliError("state", verdict.message);
    }
    if (await takeOver(path, shownLock, found.raw, text)) {
      return { lock: hold(path, key, text), tookOver: verdict.reason };
    }
  }
  throw new CliError(
    "state",
    `cannot take ${shownLock}: other runs keep taking it over or changing it; try again`,
  );
}

function hold(path: string, key: string, text: string): HeldLock {
  heldLocks.add(key);
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
  }, HEARTBEAT_MS);
  heartbeat.unref(); // never what keeps the process alive
  return { path, key, text, heartbeat };
}

/**
 * Refuses to write the state file unless the lock is still ours: if another run took it over (this
 * one was suspended past the stale limit, or someone deleted the lock), two runs now share the
 * file, and the safe move is to stop without writing.
 *
 * @example
 * ```ts
 * declare const lock: HeldLock;
 * await assertStillHeld(lock, "s.json"); // then write s.json
 * ```
 */
export async function assertStillHeld(lock: HeldLock, shown: string): Promise<void> {
  const found = await readLock(lock.path);
  if (found?.raw === lock.text) return;
  const now = found?.info
    ? `it is now held by pid ${found.info.pid} on ${found.info.hostname}`
    : "it was deleted";
  throw new CliError(
    "state",
    `this run no longer holds ${shown}.lock (${now}); stopping without writing ${shown}`,
  );
}

/**
 * Stops the heartbeat and deletes the lock, but only if it is still ours: never one another run
 * took over (e.g. after judging us gone).
 *
 * @example
 * ```ts
 * declare const lock: HeldLock;
 * await releaseLock(lock);
 * ```
 */
export async function releaseLock(lock: HeldLock): Promise<void> {
  clearInterval(lock.heartbeat);
  heldLocks.delete(lock.key);
  try {
    if ((await readLock(lock.path))?.raw === lock.text) await unlink(lock.path);
  } catch {
    // Already gone; or unreadable, in which case it is not ours to delete.
  }
}

/**
 * The lock of the state file `target` in words, for `state show`: "none", who holds it, or why it
 * is stale.
 *
 * @example
 * ```ts
 * await describeLock("/data/s.json", "s.json") // "held by pid 4242 on host-a since 2026-..."
 * ```
 */
export async function describeLock(target: string, shown: string): Promise<string> {
  const found = await readLock(`${target}.lock`);
  if (found === undefined) return "none";
  const verdict = judgeLock(found, `${shown}.lock`);
  if (verdict.stale) return `stale (${verdict.reason}); the next run takes it over`;
  return found.info
    ? `held by pid ${found.info.pid} on ${found.info.hostname} since ${found.info.startedAt}`
    : `unreadable (a run may be starting)`;
}

/** Creates the lock exclusively; false if it already exists. */
async function createLock(path: string, shown: string, text: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    if (codeOf(error) === "EEXIST") return false;
    throw new CliError("state", `cannot create lock file ${shown}: ${reason(error)}`, {
      cause: error,
    });
  }
  try {
    await handle.writeFile(text);
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw new CliError("state", `cannot write lock file ${shown}: ${reason(error)}`, {
      cause: error,
    });
  }
  return true;
}

interface FoundLock {
  raw: string;
  info: LockInfo | undefined;
  mtimeMs: number;
}

async function readLock(path: string): Promise<FoundLock | undefined> {
  try {
    // A lock is one short line of JSON; anything bigger, or not a file, was never one of ours.
    const raw = await readSmallFile(path, MAX_LOCK_BYTES, `lock file ${path}`);
    if (raw === undefined) return undefined;
    return { raw, info: parseLock(raw), mtimeMs: (await stat(path)).mtimeMs };
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (codeOf(error) === "ENOENT") return undefined;
    throw new CliError("state", `cannot read lock file ${path}: ${reason(error)}`, {
      cause: error,
    });
  }
}

function parseLock(raw: string): LockInfo | undefined {
  try {
    const value = JSON.parse(raw);
    if (
      isRecord(value) && Number.isSafeInteger(value.pid) && (value.pid as number) > 0 &&
      typeof value.hostname === "string" && typeof value.startedAt === "string" &&
      !Number.isNaN(Date.parse(value.startedAt))
    ) {
      return { pid: value.pid as number, hostname: value.hostname, startedAt: value.startedAt };
    }
  } catch {
    // Unreadable: judged by its age instead.
  }
  return undefined;
}

type Verdict = { stale: true; reason: string } | { stale: false; message: string };

function judgeLock(found: FoundLock, shown: string): Verdict {
  const bootedAt = bootTime();
  const info = found.info;
  if (!info) {
    const age = Date.now() - found.mtimeMs;
    if (age > UNREADABLE_LOCK_GRACE_MS || found.mtimeMs < bootedAt) {
      return { stale: true, reason: `${shown} was unreadable and left over from an earlier run` };
    }
    return {
      stale: false,
      message: `${shown} exists but is unreadable (a run may be starting); try again in a ` +
        `minute, or delete ${shown} if no other run is active`,
    };
  }
  const here = hostName();
  if (info.hostname !== "" && here !== "" && info.hostname !== here) {
    // Its pid means nothing here; its holder touches it every HEARTBEAT_MS while running.
    const idle = Date.now() - found.mtimeMs;
    if (idle > FOREIGN_LOCK_STALE_MS) {
      return {
        stale: true,
        reason: `${shown} (pid ${info.pid} on host ${info.hostname}) was not refreshed for ` +
          `${Math.round(idle / 60_000)} minutes`,
      };
    }
    return {
      stale: false,
      message: `another run (pid ${info.pid} on host ${info.hostname}, since ${info.startedAt}) ` +
        `holds ${shown}; wait for it to finish (a lock left by a run that died is taken over ` +
        `once unrefreshed for ${FOREIGN_LOCK_STALE_MS / 60_000} minutes)`,
    };
  }
  // Our own pid, in a lock we do not hold: an earlier process had it (containers reuse pids).
  if (info.pid === process.pid) {
    return {
      stale: true,
      reason: `pid ${info.pid} in ${shown} is this process's, so its run ended`,
    };
  }
  if (Date.parse(info.startedAt) < bootedAt) {
    return { stale: true, reason: `pid ${info.pid} in ${shown} ran before the system restarted` };
  }
  if (isProcessAlive(info.pid)) {
    return {
      stale: false,
      message: `another run (pid ${info.pid}, since ${info.startedAt}) holds ${shown}; wait for ` +
        `it to finish (if pid ${info.pid} is not an ${COMMAND} run, delete ${shown})`,
    };
  }
  return { stale: true, reason: `pid ${info.pid} in ${shown} is no longer running` };
}

/**
 * Replaces a stale lock with ours. Two runs may judge the same lock stale at once: a guard file
 * created exclusively lets only one of them re-check and replace it, and replacing by rename keeps
 * the lock file in place throughout, so no third run can create one meanwhile. False means we
 * lost a race and should look again.
 */
async function takeOver(
  path: string,
  shown: string,
  seen: string,
  text: string,
): Promise<boolean> {
  const guard = `${path}.takeover`;
  if (!(await createLock(guard, `${shown}.takeover`, text))) {
    const age = await stat(guard).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > UNREADABLE_LOCK_GRACE_MS) {
      await unlink(guard).catch(() => {}); // left by a run killed mid-takeover
    } else {
      // Another run is taking it over right now: once done, its lock reads as held by a live pid.
      await sleep(50);
    }
    return false;
  }
  try {
    const now = await readLock(path);
    if (now === undefined || now.raw !== seen) return false;
    await writeFileAtomic(path, text, 0o600);
    return true;
  } finally {
    await unlink(guard).catch(() => {});
  }
}

function hostName(): string {
  try {
    return hostname();
  } catch {
    return ""; // e.g. Deno without --allow-sys: the pid check alone has to do
  }
}

/** When the system booted (ms since the epoch), or 0 if unknown. */
function bootTime(): number {
  try {
    // A minute of slack for clock adjustments since boot.
    return Date.now() - uptime() * 1000 - 60_000;
  } catch {
    return 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
