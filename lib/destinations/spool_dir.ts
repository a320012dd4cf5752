/**
 * Private spool directories: where downloads wait, whole and verified, before a sink delivers
 * them. The temp directory is shared with every local user, and this tool runs as root, so:
 *
 * - spools live under a private root, `$XDG_RUNTIME_DIR/oai-compliance-logs` or
 *   `<tmpdir>/oai-compliance-logs-<uid>`, used only once lstat shows a real directory (not a
 *   symlink) owned by us with mode 0700; otherwise each run takes a fresh `mkdtemp` directory in
 *   tmpdir and sweeps nothing;
 * - each run's spool is a `mkdtemp` directory in the root holding `lock`, on which the run keeps
 *   an exclusive OS lock, then an empty `locked` file saying the lock is in place. The OS drops the
 *   lock when the process dies, however it dies: that, not a pid, proves a spool abandoned;
 * - the sweep of abandoned spools never follows a link and never recurses: it unlinks the files
 *   and symlinks directly in a spool it owns (real directory, our uid, mode 0700), then rmdir.
 *
 * @example
 * ```ts
 * import { writeFile } from "node:fs/promises";
 * import { join } from "node:path";
 * const bytes = new TextEncoder().encode('{"id":"e1"}\n');
 * const spool = await createSpoolDir();
 * try {
 *   await writeFile(join(spool.path, "0.part"), bytes);
 * } finally {
 *   await spool.remove();
 * }
 * ```
 */
import { lstat, mkdir, mkdtemp, readdir, rmdir, unlink, writeFile } from "node:fs/promises";
import type { Stats } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  currentUid,
  ignoreMissing,
  lstatOrUndefined,
  ownedByUs,
  retryWhileBusy,
} from "../cleanup.ts";
import { CliError, codeOf, reason } from "../errors.ts";
import { type HeldLock, holdExclusiveLock, isLockHeld } from "../runtime.ts";

/** The file each live run holds an exclusive lock on. */
export const LOCK_NAME = "lock";
/** Created once the lock is held: a spool with `lock` but without it may be mid-creation. */
export const LOCKED_NAME = "locked";
/** A spool whose owner cannot be proved dead is swept only when older than this. */
export const UNPROVABLE_MAX_AGE_MS = 24 * 3600_000;

const SPOOL_PREFIX = "spool-";
const SPOOL_NAME = /^spool-[A-Za-z0-9]{6}$/;
const POSIX = process.platform !== "win32";

/** One run's spool directory; `remove()` deletes it and releases its lock. */
export interface SpoolDir {
  readonly path: string;
  /** Deletes the spool's files (never recursing) and the directory; safe to call twice. */
  remove(): Promise<void>;
}

/** Spools this process created: never anyone's leftovers, whatever a lock check says. */
const ownSpools = new Set<string>();

/**
 * Creates this run's spool directory (see the module doc for where), first sweeping the spools
 * of dead runs from the private root when the root is verified as ours.
 *
 * @example
 * ```ts
 * const spool = await createSpoolDir({ tmp: "/tmp", xdgRuntimeDir: undefined });
 * ```
 */
export async function createSpoolDir(
  where: { tmp?: string; xdgRuntimeDir?: string } = {},
): Promise<SpoolDir> {
  const tmp = where.tmp ?? tmpdir();
  const root = await privateRoot(tmp, where.xdgRuntimeDir ?? xdgRuntimeDir());
  if (root) await sweepAbandonedSpools(root);
  const parent = root ?? tmp;
  const prefix = root ? SPOOL_PREFIX : "oai-compliance-logs-spool-";
  let path: string;
  try {
    path = await mkdtemp(join(parent, prefix));
  } catch (error) {
    throw new CliError(
      "io",
      `cannot create a spool directory in ${parent}: ${reason(error)}; set TMPDIR to a ` +
        "writable directory",
      { cause: error },
    );
  }
  ownSpools.add(path);
  const lock = await holdExclusiveLock(join(path, LOCK_NAME));
  // Only now may a sweeper take a free lock for a dead owner (see `spoolIsAbandoned`).
  if (lock) {
    await writeFile(join(path, LOCKED_NAME), "", { flag: "wx", mode: 0o600 }).catch(() => {});
  }
  return { path, remove: () => removeOwnSpool(path, lock) };
}

/**
 * The private spool root, created if missing and then verified; undefined when it cannot be
 * trusted (a neighbour made it first, or planted a symlink there).
 */
export async function privateRoot(
  tmp: string,
  xdgRuntimeDir: string | undefined,
): Promise<string | undefined> {
  const xdg = xdgRuntimeDir && await isPrivateDir(xdgRuntimeDir) ? xdgRuntimeDir : undefined;
  const uid = currentUid();
  if (POSIX && uid === undefined) return undefined; // Ownership cannot be checked.
  const root = xdg
    ? join(xdg, "oai-compliance-logs")
    : join(tmp, uid === undefined ? "oai-compliance-logs" : `oai-compliance-logs-${uid}`);
  try {
    await mkdir(root, { mode: 0o700 }); // Not recursive: never creates through someone's link.
  } catch (error) {
    if (codeOf(error) !== "EEXIST") return undefined;
  }
  return await isPrivateDir(root) ? root : undefined;
}

/** A real directory (not a link), owned by us, mode exactly 0700 (uid and mode on POSIX only). */
async function isPrivateDir(path: string): Promise<boolean> {
  const info = await lstatOrUndefined(path);
  return info !== undefined && isOwnPrivateDir(info);
}

function isOwnPrivateDir(info: Stats): boolean {
  if (!info.isDirectory() || info.isSymbolicLink()) return false;
  return ownedByUs(info) && (!POSIX || (info.mode & 0o777) === 0o700);
}

/**
 * Removes the spools in `root` whose owners are provably gone: lock file present with the
 * `locked` marker and the lock free; or, where that cannot be told, older than a day. Only
 * spool-named, owner-only directories of ours are touched; failures leave things in place.
 */
export async function sweepAbandonedSpools(root: string, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return 0; // Nothing we can clean; mkdtemp will say what is wrong.
  }
  let removed = 0;
  for (const name of names) {
    const path = join(root, name);
    if (!SPOOL_NAME.test(name) || ownSpools.has(path)) continue;
    try {
      if (await spoolIsAbandoned(path, now) && await removeSpoolEntries(path)) removed++;
    } catch {
      // Removed meanwhile by another sweeper, or not ours: leave it.
    }
  }
  return removed;
}

async function spoolIsAbandoned(path: string, now: number): Promise<boolean> {
  const info = await lstat(path);
  if (!isOwnPrivateDir(info)) return false;
  const lockPath = join(path, LOCK_NAME);
  const lockFile = (await lstatOrUndefined(lockPath))?.isFile() ?? false;
  const held = lockFile ? await isLockHeld(lockPath) : undefined;
  if (held === true) return false;
  // Between mkdtemp and the lock being held, a live run's spool has no `locked` marker yet.
  const marked = await lstatOrUndefined(join(path, LOCKED_NAME)) !== undefined;
  if (held === false && marked) return true;
  return now - info.mtimeMs > UNPROVABLE_MAX_AGE_MS;
}

/**
 * Unlinks every file and symlink directly in `dir` (unlink never follows a link), then removes
 * `dir`. False (leaving the rest) if anything else is there: nothing here ever recurses.
 */
async function removeSpoolEntries(dir: string): Promise<boolean> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const info = await lstatOrUndefined(path);
    if (!info) continue;
    if (!info.isFile() && !info.isSymbolicLink()) return false;
    await ignoreMissing(unlink(path));
  }
  await ignoreMissing(rmdir(dir));
  return true;
}

/**
 * Our own spool at the end of a run: files go (one by one: Bun's recursive `rm` fails with EFAULT
 * under Wine), the marker before the lock is released so that no sweeper races us, then the dir.
 */
async function removeOwnSpool(path: string, lock: HeldLock | undefined): Promise<void> {
  let names: string[];
  try {
    names = await readdir(path);
  } catch (error) {
    if (codeOf(error) === "ENOENT") return;
    throw spoolError(path, error);
  }
  try {
    for (const name of names) {
      if (name !== LOCK_NAME) await ignoreMissing(unlink(join(path, name)));
    }
    lock?.release(); // Windows cannot delete a file this process holds open.
    // On Windows a sweeper's check may hold `lock` open for a moment.
    await retryWhileBusy(() => ignoreMissing(unlink(join(path, LOCK_NAME))));
    await retryWhileBusy(() => ignoreMissing(rmdir(path)));
  } catch (error) {
    throw spoolError(path, error);
  }
  ownSpools.delete(path);
}

function spoolError(path: string, error: unknown): CliError {
  return new CliError(
    "io",
    `cannot remove spool directory ${path}: ${reason(error)}; delete it by hand`,
    { cause: error },
  );
}

/** `$XDG_RUNTIME_DIR`; undefined when unset or not readable (Deno without that env grant). */
function xdgRuntimeDir(): string | undefined {
  try {
    return process.env.XDG_RUNTIME_DIR || undefined;
  } catch {
    return undefined;
  }
}
