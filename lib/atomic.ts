/**
 * Files that appear only whole: data goes to a temp file beside the destination, is fsynced, then
 * renamed over it, so a reader (or a run after a crash) sees the old file or the new one, never
 * half of one.
 *
 * A temp is created as `.<basename>.<pid>.<random>.part`, then, once this process holds an
 * exclusive OS lock on it, renamed to `.<basename>.<pid>.<random>.locked.part`. The OS drops the
 * lock when the process dies, however it dies, so a later run removes a `.locked.part` temp whose
 * lock is free at once, and never one whose lock is held (whatever its pid says: two containers
 * may both run us as pid 1). A temp without the `locked` mark (the moment before the lock, a
 * runtime or OS without locks, an older version) is judged by its pid and its age, as before.
 *
 * @example
 * ```ts
 * declare const body: AsyncIterable<Uint8Array>;
 * const temp = await createTempBeside("out/2026-01-01.jsonl");
 * try {
 *   for await (const chunk of body) await temp.write(chunk);
 *   await temp.commit();
 * } finally {
 *   await temp.discard(); // no-op after a commit
 * }
 * ```
 */
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { ownedByUs, retryWhileBusy } from "./cleanup.ts";
import { CliError, codeOf, reason } from "./errors.ts";
import { type HeldLock, holdExclusiveLock, isLockHeld } from "./runtime.ts";

/** A temp file that becomes `finalPath` on `commit()`, or disappears on `discard()`. */
export interface TempFile {
  /** Where the bytes are being written. */
  readonly path: string;
  /** What the temp file becomes on commit. */
  readonly finalPath: string;
  /** Bytes written so far. */
  readonly bytesWritten: number;
  /** Appends `chunk` whole (partial writes are retried until every byte is written). */
  write(chunk: Uint8Array): Promise<void>;
  /** fsync, close, rename over `finalPath`, fsync the directory. The temp is gone on failure too. */
  commit(): Promise<void>;
  /** Close and delete the temp; never throws, and does nothing after a commit. */
  discard(): Promise<void>;
}

/** The mode of the files a run creates unless told otherwise: owner-only. */
export const OWNER_ONLY_FILE_MODE = 0o600;

/**
 * The mode of a directory holding files of `fileMode`: the same bits plus search (x) wherever
 * read (r) is given, and always rwx for the owner (the tool must create files in it).
 *
 * @example
 * ```ts
 * directoryModeFor(0o640); // 0o750
 * directoryModeFor(0o600); // 0o700
 * ```
 */
export function directoryModeFor(fileMode: number): number {
  return (fileMode | ((fileMode & 0o444) >> 2) | 0o700) & 0o777;
}

const POSIX = process.platform !== "win32";

// Temps this process created and has not yet committed or discarded. A temp carrying our own pid
// that is not in here was left by an earlier process that had the same pid (containers restart
// with the same small pids), so it is stale even though "our" pid is alive.
const openTemps = new Set<string>();

/** `.<name>.<pid>.<random>.part`, or `.locked.part` once its owner holds the lock on it. */
const TEMP_NAME = /^\..+\.(\d{1,10})\.([0-9a-f]{12})\.(locked\.)?part$/;
const TEMP_TAIL = /^\d{1,10}\.[0-9a-f]{12}\.(locked\.)?part$/;
const LOCKED_SUFFIX = ".locked.part";
/** Unlocked temps modified more recently than this may belong to a live run a pid cannot see. */
export const RECENT_TEMP_MS = 10 * 60_000;
// Most file systems limit a name to 255 bytes; the temp adds a dot, the pid, the random part and
// `.locked.part`.
const MAX_TEMP_BASE_BYTES = 200;

/**
 * Opens a new, empty temp file in the directory of `finalPath` (so the rename is atomic), created
 * exclusively with exactly `mode` (owner-only by default; the umask does not narrow it; Windows
 * ignores modes), and locked as the module doc says where the OS and runtime allow.
 *
 * @example
 * ```ts
 * const temp = await createTempBeside("/var/lib/oai/state.json");
 * const shared = await createTempBeside("/srv/siem/out.jsonl", 0o640); // group-readable
 * ```
 */
export async function createTempBeside(
  finalPath: string,
  mode = OWNER_ONLY_FILE_MODE,
): Promise<TempFile> {
  // A sweeper may take a new temp for a killed run's leftover in the moment before its lock (see
  // `lockTemp`): then this starts again with another name.
  const dir = resolve(dirname(finalPath));
  if (POSIX && !locklessDirs.has(dir)) {
    for (let attempt = 1; attempt <= 5; attempt++) {
      const temp = await tryCreateTemp(finalPath, mode & 0o777, true);
      if (temp) return temp;
    }
    // Five times over: a file system whose locks fail (or a sweeper gone mad). Unlocked temps,
    // judged by pid and age, are still better than none.
    locklessDirs.add(dir);
  }
  return (await tryCreateTemp(finalPath, mode & 0o777, false))!;
}

/** Directories where temps could not be locked: their temps are not tried again. */
const locklessDirs = new Set<string>();

/** A new temp, or undefined when a sweeper took it before it was locked (only when `lock`). */
async function tryCreateTemp(
  finalPath: string,
  mode: number,
  lock: boolean,
): Promise<Temp | undefined> {
  const dir = dirname(finalPath);
  const path = join(dir, `.${shortenName(basename(finalPath))}.${process.pid}.${randomHex()}.part`);
  // Registered before the file exists: a removeStaleTemps running meanwhile in this process (for
  // another file of the same directory) must never take it for the leftover of a dead run.
  openTemps.add(resolve(path));
  let handle: FileHandle;
  try {
    handle = await open(path, "wx", mode);
  } catch (error) {
    openTemps.delete(resolve(path));
    throw new CliError("io", `cannot create a file in ${dir}: ${reason(error)}`, { cause: error });
  }
  // Locked first: the moment a sweeper may take the new temp for an empty leftover is short.
  const locked = lock ? await lockTemp(path, handle) : { path };
  if (!locked) {
    openTemps.delete(resolve(path));
    await handle.close().catch(() => {});
    return undefined;
  }
  // Exactly the mode asked for, whatever the umask; a file system without modes keeps its own.
  if (POSIX) await handle.chmod(mode).catch(() => {});
  return new Temp(locked.path, finalPath, handle, locked.lock);
}

/**
 * Takes the OS lock on the temp just created at `path` (open as `handle`), then gives it its
 * `.locked.part` name: a temp so named is judged by its lock alone. Undefined when a sweeper got
 * there first (it holds the lock of what it takes for an empty leftover, or already removed it:
 * the lock then landed on another file). Without locks (a runtime or OS that has none) the temp
 * keeps its name and is judged by pid and age.
 */
async function lockTemp(
  path: string,
  handle: FileHandle,
): Promise<{ path: string; lock?: HeldLock } | undefined> {
  const lock = await holdExclusiveLock(path);
  if (!lock) {
    const ours = await sameFile(path, handle).catch(() => false);
    // No locks here at all: the temp stays unlocked, judged by pid and age.
    if (await isLockHeld(path) === undefined) return ours ? { path } : undefined;
    // A sweeper holds it (and removes it), or locks fail on this file system: start again.
    if (ours) await unlink(path).catch(() => {});
    return undefined;
  }
  const locked = path.slice(0, -".part".length) + LOCKED_SUFFIX;
  openTemps.add(resolve(locked));
  try {
    if (!(await sameFile(path, handle))) throw new Error("taken by a sweeper");
    await rename(path, locked);
  } catch {
    openTemps.delete(resolve(locked));
    await unlink(path).catch(() => {}); // Whatever is at our random name now is ours.
    lock.release();
    return undefined;
  }
  openTemps.delete(resolve(path));
  return { path: locked, lock };
}

/** Whether `path` names the file open as `handle` (and not a link or another file). */
async function sameFile(path: string, handle: FileHandle): Promise<boolean> {
  const [named, opened] = await Promise.all([lstat(path), handle.stat()]);
  return named.isFile() && named.ino === opened.ino && named.dev === opened.dev;
}

class Temp implements TempFile {
  bytesWritten = 0;
  #handle: FileHandle | undefined;
  #state: "open" | "committed" | "discarded" = "open";
  #failed: unknown = undefined;
  // Writes run one after another even if a caller does not await each one.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    readonly finalPath: string,
    handle: FileHandle,
    private readonly lock: HeldLock | undefined,
  ) {
    this.#handle = handle;
  }

  write(chunk: Uint8Array): Promise<void> {
    const run = this.#queue.then(() => this.#writeAll(chunk));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    const handle = this.#open("write to");
    let offset = 0;
    try {
      while (offset < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
        if (bytesWritten <= 0) throw new Error("the file system accepted no bytes");
        offset += bytesWritten;
      }
    } catch (error) {
      this.#failed = error;
      throw new CliError("io", `cannot write ${this.finalPath}: ${reason(error)}`, {
        cause: error,
      });
    } finally {
      this.bytesWritten += offset;
    }
  }

  async commit(): Promise<void> {
    await this.#queue;
    const handle = this.#open("commit");
    try {
      // A failed write left a hole or a short file: it must never replace the destination.
      if (this.#failed !== undefined) throw this.#failed;
      await handle.sync();
      this.#handle = undefined;
      await handle.close();
      await renameOver(this.path, this.finalPath);
      this.#state = "committed";
      // Only now: until the rename, a sweeper must see the lock held.
      this.lock?.release();
      openTemps.delete(resolve(this.path));
    } catch (error) {
      await this.discard();
      throw new CliError("io", `cannot write ${this.finalPath}: ${reason(error)}`, {
        cause: error,
      });
    }
    await syncDir(dirname(this.finalPath));
  }

  async discard(): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "discarded";
    await this.#queue;
    const handle = this.#handle;
    this.#handle = undefined;
    try {
      await handle?.close();
    } catch {
      // Closing can only fail for a handle that is already unusable; the unlink still matters.
    }
    try {
      await unlink(this.path);
    } catch {
      // Already gone, or not ours to remove any more: nothing useful to report.
    }
    this.lock?.release();
    openTemps.delete(resolve(this.path));
  }

  #open(action: string): FileHandle {
    if (this.#state !== "open" || !this.#handle) {
      throw new Error(`cannot ${action} ${this.path}: the temp file was already ${this.#state}`);
    }
    return this.#handle;
  }
}

/**
 * Replaces the file at `path` with `data`, whole: readers see the old content or the new one.
 * The new file has exactly `mode` (owner-only by default).
 *
 * @example
 * ```ts
 * await writeFileAtomic("state.json", JSON.stringify({ version: 1 }));
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = OWNER_ONLY_FILE_MODE,
): Promise<void> {
  const temp = await createTempBeside(path, mode);
  try {
    await temp.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
    await temp.commit();
  } finally {
    await temp.discard();
  }
}

/**
 * Deletes the temps in `dir` whose writers are gone, and returns how many it deleted. Only
 * regular files owned by our uid are touched (never a symlink, nor what it points to). A
 * `.locked.part` temp goes at once when its OS lock is free and stays while it is held. Any other
 * temp (or a locked one whose lock cannot be checked) goes only when its pid is not running here
 * (or is ours but not one of this process's temps) and it is untouched for `RECENT_TEMP_MS`: its
 * owner may live in another PID namespace. `olderThanMs` spares temps modified more recently than
 * that too. `finalName` limits it to the temps of that one file (for a directory the tool shares
 * with other files, such as the one holding `-o FILE`).
 *
 * @example
 * ```ts
 * import { basename, dirname } from "node:path";
 * const path = "out/state.json";
 * const removed = await removeStaleTemps("out");
 * await removeStaleTemps(dirname(path), { finalName: basename(path) });
 * ```
 */
export async function removeStaleTemps(
  dir: string,
  options: { olderThanMs?: number; finalName?: string } = {},
): Promise<number> {
  let names: string[];
  try {
    // Absolute: Bun's readdir on Windows misses a relative path with backslashes (seen under Wine).
    names = await readdir(resolve(dir));
  } catch (error) {
    if (codeOf(error) === "ENOENT") return 0;
    throw new CliError("io", `cannot list ${dir}: ${reason(error)}`, { cause: error });
  }
  const olderThanMs = options.olderThanMs ?? 0;
  const prefix = options.finalName === undefined
    ? undefined
    : `.${shortenName(options.finalName)}.`;
  let removed = 0;
  for (const name of names) {
    const match = TEMP_NAME.exec(name);
    if (!match) continue;
    if (prefix !== undefined && !isTempOf(name, prefix)) continue;
    const path = join(dir, name);
    if (openTemps.has(resolve(path))) continue;
    try {
      // lstat, never stat: a link planted under a temp's name is not ours, nor is its target.
      const info = await lstat(path);
      if (!info.isFile() || !ownedByUs(info)) continue;
      const age = Date.now() - info.mtimeMs;
      if (olderThanMs > 0 && age < olderThanMs) continue;
      const locked = match[3] !== undefined;
      const held = locked ? await isLockHeld(path) : undefined;
      if (held === true) continue;
      // A `.locked.part` temp was locked before it was so named: a free lock means its owner is
      // gone. An empty unlocked one whose pid is not running here is most likely a run killed
      // between creating and locking it (a live one elsewhere then fails to lock it, and retries).
      const pid = Number(match[1]);
      const emptyOfDeadPid = !locked && info.size === 0 &&
        (pid === process.pid || !isProcessAlive(pid));
      if (held === false || (emptyOfDeadPid && await removeIfEmptyAndFree(path))) {
        if (held === false) await unlink(path); // unlink removes a name, never a link's target.
        removed++;
        continue;
      }
      if (!unprovableTempIsStale(pid, age, olderThanMs)) continue;
      await unlink(path);
      removed++;
    } catch (error) {
      // Gone already: its owner committed or discarded it between readdir and now.
      if (codeOf(error) === "ENOENT") continue;
      throw new CliError("io", `cannot remove stale temp file ${path}: ${reason(error)}`, {
        cause: error,
      });
    }
  }
  return removed;
}

/**
 * Removes the empty unlocked temp at `path` while holding its lock, so that a live owner in the
 * moment between creating and locking it fails to lock it and starts again with a new temp
 * (`lockTemp`); false, leaving it, when the lock is held or there are no locks here.
 */
async function removeIfEmptyAndFree(path: string): Promise<boolean> {
  if (!POSIX) return false;
  const lock = await holdExclusiveLock(path);
  if (!lock) return false;
  try {
    const info = await lstat(path);
    // Written to meanwhile: an owner without locks (or an older version) is at work.
    if (!info.isFile() || !ownedByUs(info) || info.size !== 0) return false;
    await unlink(path);
    return true;
  } catch (error) {
    if (codeOf(error) === "ENOENT") return false;
    throw error;
  } finally {
    lock.release();
  }
}

/**
 * A temp whose owner no lock can tell about: stale when its pid is not running here (our own pid
 * counts as not running: it is not one of this process's temps) and it is untouched for
 * `RECENT_TEMP_MS`. A dead pid proves nothing for a temp written from another PID namespace (a
 * container sharing the directory), host (NFS) or Wine; a live owner keeps writing.
 */
function unprovableTempIsStale(pid: number, ageMs: number, olderThanMs: number): boolean {
  if (pid !== process.pid && isProcessAlive(pid)) return false;
  return ageMs >= Math.max(olderThanMs, RECENT_TEMP_MS);
}

/**
 * True while a process with this pid exists (on this host). Signal 0 checks without signalling;
 * both Deno and Bun report `code` "ESRCH" for no such process and "EPERM" for a process of
 * another user, which is alive. Any other failure (e.g. Deno without `--allow-run`) also counts as
 * alive: mistaking a live process for a dead one would delete its files or break its lock.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * isProcessAlive(process.pid); // true
 * isProcessAlive(0); // false: 0 addresses a process group
 * ```
 */
export function isProcessAlive(pid: number): boolean {
  // 0 and negative pids address process groups, and kill() accepts them: never a single process.
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x7fffffff) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return codeOf(error) !== "ESRCH";
  }
}

/**
 * Creates `path` and any missing parents, each created one with exactly `mode` (owner-only by
 * default; the umask does not narrow it). Directories that already exist keep their mode. For
 * the directories of files of mode M, pass `directoryModeFor(M)`.
 *
 * @example
 * ```ts
 * await ensureDir("logs/AUTH_LOG");
 * await ensureDir("logs/AUTH_LOG", directoryModeFor(0o640)); // 0750
 * ```
 */
export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  try {
    const first = await mkdir(path, { recursive: true, mode: mode & 0o777 });
    if (POSIX && first !== undefined) await chmodCreated(first, path, mode & 0o777);
  } catch (error) {
    const why = codeOf(error) === "EEXIST" ? "a file is in the way" : reason(error);
    throw new CliError("io", `cannot create directory ${path}: ${why}`, { cause: error });
  }
}

/** Sets `mode` on `first` (the first directory mkdir created) and each level below it to `path`. */
async function chmodCreated(first: string, path: string, mode: number): Promise<void> {
  // A file system without modes keeps its own: the directories are there, which is what counts.
  const set = (dir: string) => chmod(dir, mode).catch(() => {});
  let current = resolve(first);
  await set(current);
  const rest = relative(current, resolve(path));
  if (rest === "" || rest.startsWith("..")) return;
  for (const part of rest.split(sep)) {
    current = join(current, part);
    await set(current);
  }
}

/** fsync a directory so a rename in it survives a power loss; a no-op where that is unsupported. */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (error) {
    // Windows cannot open or flush a directory (EISDIR, EPERM, EACCES); some Unix file systems
    // refuse to fsync one (EINVAL, ENOTSUP). The rename is done either way.
    const code = codeOf(error);
    const unsupported = ["EISDIR", "EPERM", "EACCES", "EINVAL", "ENOTSUP", "EBADF"];
    if (!unsupported.includes(code ?? "")) {
      throw new CliError("io", `cannot sync directory ${dir}: ${reason(error)}`, { cause: error });
    }
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** rename(), retried briefly on Windows where an antivirus or indexer may hold the target open. */
function renameOver(from: string, to: string): Promise<void> {
  return retryWhileBusy(() => rename(from, to));
}

/** Whether temp `name` is `<prefix><pid>.<random>.[locked.]part`, the temp of one final file. */
function isTempOf(name: string, prefix: string): boolean {
  return name.startsWith(prefix) && TEMP_TAIL.test(name.slice(prefix.length));
}

function shortenName(name: string): string {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length <= MAX_TEMP_BASE_BYTES) return name;
  // Cut on a character boundary: decoding a cut multi-byte character yields U+FFFD, dropped here.
  return new TextDecoder().decode(bytes.subarray(0, MAX_TEMP_BASE_BYTES)).replace(/\uFFFD+$/, "");
}

function randomHex(): string {
  return randomBytes(6).toString("hex");
}
