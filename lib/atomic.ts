/**
 * Files that appear only whole: data goes to a temp file beside the destination, is fsynced, then
 * renamed over it, so a reader (or a run after a crash) sees the old file or the new one, never
 * half of one. Temps are named `.<basename>.<pid>.<random>.part` so that a later run can tell the
 * leftovers of a killed process from the temps of a live one.
 *
 * @example
 * const temp = await createTempBeside("out/2026-01-01.jsonl");
 * try {
 *   for await (const chunk of body) await temp.write(chunk);
 *   await temp.commit();
 * } finally {
 *   await temp.discard(); // no-op after a commit
 * }
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, rename, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import { ownedByUs, retryWhileBusy } from "./cleanup.ts";
import { CliError, codeOf, reason } from "./errors.ts";

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

// Temps this process created and has not yet committed or discarded. A temp carrying our own pid
// that is not in here was left by an earlier process that had the same pid (containers restart
// with the same small pids), so it is stale even though "our" pid is alive.
const openTemps = new Set<string>();

const TEMP_NAME = /^\..+\.(\d{1,10})\.([0-9a-f]{12})\.part$/;
/** Temps modified more recently than this may belong to a live run the pid check cannot see. */
export const RECENT_TEMP_MS = 10 * 60_000;
// Most file systems limit a name to 255 bytes; the temp adds a dot, the pid and the random part.
const MAX_TEMP_BASE_BYTES = 200;

/**
 * Opens a new, empty temp file in the directory of `finalPath` (so the rename is atomic), created
 * exclusively with `mode` (owner-only by default; Windows ignores modes).
 *
 * @example
 * const temp = await createTempBeside("/var/lib/oai/state.json");
 */
export async function createTempBeside(finalPath: string, mode = 0o600): Promise<TempFile> {
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
  return new Temp(path, finalPath, handle);
}

class Temp implements TempFile {
  bytesWritten = 0;
  #handle: FileHandle | undefined;
  #state: "open" | "committed" | "discarded" = "open";
  #failed: unknown = undefined;
  // Writes run one after another even if a caller does not await each one.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string, readonly finalPath: string, handle: FileHandle) {
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
 *
 * @example
 * await writeFileAtomic("state.json", JSON.stringify(state));
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
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
 * Deletes the temps (`.<name>.<pid>.<random>.part`) in `dir` left by processes that are no longer
 * running, and returns how many it deleted. Only regular files owned by our uid are touched (never
 * a symlink, nor what it points to); other files, temps of live processes, and temps modified in
 * the last `RECENT_TEMP_MS` (their owner may live in another PID namespace) are left alone.
 * `olderThanMs` spares temps modified more recently than that too. `finalName` limits it to the temps of that one
 * file (for a directory the tool shares with other files, such as the one holding `-o FILE`).
 *
 * @example
 * const removed = await removeStaleTemps("out");
 * await removeStaleTemps(dirname(path), { finalName: basename(path) });
 */
export async function removeStaleTemps(
  dir: string,
  options: { olderThanMs?: number; finalName?: string } = {},
): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
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
    const pid = Number(match[1]);
    const ourPid = pid === process.pid;
    if (ourPid ? openTemps.has(resolve(path)) : isProcessAlive(pid)) continue;
    try {
      // lstat, never stat: a link planted under a temp's name is not ours, nor is its target.
      const info = await lstat(path);
      if (!info.isFile() || !ownedByUs(info)) continue;
      // A dead pid proves nothing for a temp written from another PID namespace (a container
      // sharing the directory), host (NFS) or Wine: its owner may be alive and about to rename
      // it. A live owner keeps writing, so a temp untouched for RECENT_TEMP_MS is taken for
      // abandoned. That holds for our own pid too: two containers sharing an output directory
      // may both run us as pid 1.
      const minAgeMs = Math.max(olderThanMs, RECENT_TEMP_MS);
      if (minAgeMs > 0 && Date.now() - info.mtimeMs < minAgeMs) continue;
      await unlink(path); // unlink removes a name, never what a link points to.
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
 * True while a process with this pid exists (on this host). Signal 0 checks without signalling;
 * both Deno and Bun report `code` "ESRCH" for no such process and "EPERM" for a process of
 * another user, which is alive. Any other failure (e.g. Deno without `--allow-run`) also counts as
 * alive: mistaking a live process for a dead one would delete its files or break its lock.
 *
 * @example
 * if (!isProcessAlive(lock.pid)) takeOver();
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
 * Creates `path` and any missing parents (mode applies to the ones created; umask still applies).
 *
 * @example
 * await ensureDir("logs/AUTH_LOG");
 */
export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode });
  } catch (error) {
    const why = codeOf(error) === "EEXIST" ? "a file is in the way" : reason(error);
    throw new CliError("io", `cannot create directory ${path}: ${why}`, { cause: error });
  }
}

/** fsync a directory so a rename in it survives a power loss; a no-op where that is unsupported. */
async function syncDir(dir: string): Promise<void> {
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

/** Whether temp `name` is `<prefix><pid>.<random>.part`, the temp of one final file. */
function isTempOf(name: string, prefix: string): boolean {
  return name.startsWith(prefix) &&
    /^\d{1,10}\.[0-9a-f]{12}\.part$/.test(name.slice(prefix.length));
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
