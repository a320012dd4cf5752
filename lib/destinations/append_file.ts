/**
 * The file `-o FILE` appends to (with `--state`): opened only at the first byte to write, never
 * through another user's symlink, created with the output mode, cut back to its last complete
 * line before the first append (what a crash mid-append left), and fsynced on `sync()`. An
 * exclusive OS lock on it, held while open, keeps two runs from interleaving their lines.
 *
 * @example
 * ```ts
 * const file = await openForAppend("out.jsonl", 0o600);
 * await file.write(new TextEncoder().encode('{"a":1}\n'));
 * await file.sync(); // only now may the checkpoint move past what was written
 * await file.close();
 * ```
 */
import { constants } from "node:fs";
import { lstat, open, realpath } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import process from "node:process";
import { syncDir } from "../atomic.ts";
import { ownedByUs } from "../cleanup.ts";
import { CliError, codeOf, reason, usage } from "../errors.ts";
import { type HeldLock, holdExclusiveLock, isLockHeld } from "../runtime.ts";

const POSIX = process.platform !== "win32";
const NEWLINE = 0x0a;
const TAIL_CHUNK_BYTES = 64 * 1024;

export interface AppendFile {
  /** Appends `chunk` whole at the end of the file (opening it first if need be). */
  write(chunk: Uint8Array): Promise<void>;
  /** fsync what was appended (and the directory, if the file was created); no-op if unopened. */
  sync(): Promise<void>;
  /** After a failed pass: cuts an incomplete last line it left. Never throws. */
  cutIncompleteLine(): Promise<void>;
  /** Closes the file and releases its lock; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Prepares appending to `path` (a regular file, or none yet: then created with exactly `mode`).
 * A symlink there is followed only when it is ours or root's; another user's is refused (a usage
 * error, before any request): it could send the logs into a file of that user's choosing.
 *
 * @example
 * ```ts
 * const file = await openForAppend("out.jsonl", 0o640);
 * ```
 */
export async function openForAppend(path: string, mode: number): Promise<AppendFile> {
  return new Appender(path, await appendTarget(path), mode & 0o777);
}

/** The file appending to `path` writes: `path`, or the file an allowed symlink there names. */
async function appendTarget(path: string): Promise<string> {
  let info;
  try {
    info = await lstat(path);
  } catch (error) {
    if (codeOf(error) === "ENOENT") return path;
    throw usage(`cannot use -o ${path}: ${reason(error)}`);
  }
  if (!info.isSymbolicLink()) return path;
  if (info.uid !== 0 && !ownedByUs(info)) {
    throw usage(
      `-o ${path} is a symbolic link of another user (uid ${info.uid}); not appending ` +
        `through it: name the file itself`,
    );
  }
  try {
    return await realpath(path);
  } catch (error) {
    throw usage(`cannot use -o ${path}: the symbolic link leads nowhere (${reason(error)})`);
  }
}

class Appender implements AppendFile {
  #opening: Promise<FileHandle> | undefined;
  #handle: FileHandle | undefined;
  #lock: HeldLock | undefined;
  #created = false;
  #dirSynced = false;
  // The write in progress: a cut after a failed pass waits for it, and no write follows the cut.
  #writing: Promise<void> = Promise.resolve();
  #ended = false;

  constructor(
    private readonly shown: string,
    private readonly target: string,
    private readonly mode: number,
  ) {}

  write(chunk: Uint8Array): Promise<void> {
    const run = this.#writing.then(() => this.#append(chunk));
    this.#writing = run.catch(() => {});
    return run;
  }

  async #append(chunk: Uint8Array): Promise<void> {
    if (this.#ended) {
      throw new CliError("io", `cannot append to -o ${this.shown}: the pass has ended`);
    }
    const handle = await this.#open();
    let offset = 0;
    try {
      while (offset < chunk.length) {
        // O_APPEND: every write lands at the end, whatever a cut before it did to the size.
        const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
        if (bytesWritten <= 0) throw new Error("the file system accepted no bytes");
        offset += bytesWritten;
      }
    } catch (error) {
      throw this.#error("append to", error);
    }
  }

  async sync(): Promise<void> {
    await this.#writing;
    if (!this.#opening) return;
    const handle = await this.#opening;
    try {
      await handle.sync();
    } catch (error) {
      throw this.#error("sync", error);
    }
    if (this.#created && !this.#dirSynced) {
      await syncDir(dirname(this.target));
      this.#dirSynced = true;
    }
  }

  async cutIncompleteLine(): Promise<void> {
    this.#ended = true;
    await this.#writing;
    if (!this.#opening) return;
    try {
      const handle = await this.#opening;
      await cutToLastLine(handle, (await handle.stat()).size);
      await handle.sync();
    } catch {
      // The next pass cuts it before appending: nothing is lost by failing here.
    }
  }

  async close(): Promise<void> {
    this.#ended = true;
    await this.#writing;
    const handle = this.#handle;
    this.#handle = undefined;
    this.#opening = undefined;
    await handle?.close().catch(() => {});
    this.#lock?.release();
    this.#lock = undefined;
  }

  #open(): Promise<FileHandle> {
    this.#opening ??= this.#openNow();
    return this.#opening;
  }

  async #openNow(): Promise<FileHandle> {
    // Never through a link swapped in since appendTarget looked (O_NOFOLLOW; Windows has none).
    const flags = constants.O_RDWR | constants.O_APPEND | (constants.O_NOFOLLOW ?? 0);
    let handle: FileHandle;
    try {
      handle = await open(this.target, flags | constants.O_CREAT | constants.O_EXCL, this.mode);
      this.#created = true;
    } catch (error) {
      if (codeOf(error) !== "EEXIST") throw this.#error("create", error);
      try {
        handle = await open(this.target, flags);
      } catch (error) {
        throw this.#error("open", error);
      }
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        throw new CliError("io", `cannot append to -o ${this.shown}: not a regular file any more`);
      }
      // Exactly the mode asked for, whatever the umask; a file system without modes keeps its own.
      if (this.#created && POSIX) await handle.chmod(this.mode).catch(() => {});
      await this.#takeLock();
      // The size once the lock is ours: a run that appended meanwhile has its lines kept.
      await cutToLastLine(handle, (await handle.stat()).size);
    } catch (error) {
      await handle.close().catch(() => {});
      this.#lock?.release();
      this.#lock = undefined;
      throw error instanceof CliError ? error : this.#error("open", error);
    }
    this.#handle = handle;
    return handle;
  }

  /** The lock that keeps a second run from appending at the same time (POSIX: Windows' blocks us). */
  async #takeLock(): Promise<void> {
    if (!POSIX) return;
    this.#lock = await holdExclusiveLock(this.target);
    if (!this.#lock && await isLockHeld(this.target) === true) {
      throw new CliError(
        "io",
        `another run is appending to -o ${this.shown}; give each job a file of its own`,
      );
    }
  }

  #error(action: string, error: unknown): CliError {
    return new CliError(
      "io",
      `cannot ${action} -o ${this.shown}: ${reason(error)}; the checkpoint stays before the ` +
        `files of this pass`,
      { cause: error },
    );
  }
}

/**
 * Cuts the file at `handle` (of `size` bytes) back to just after its last newline: an incomplete
 * last line was never consumed by a line-reading shipper, and every complete line stays. Returns
 * the new size.
 *
 * @example
 * ```ts
 * import { open } from "node:fs/promises";
 * const handle = await open("out.jsonl", "r+");
 * await cutToLastLine(handle, (await handle.stat()).size); // '{"a":1}\n{"b":' -> '{"a":1}\n'
 * ```
 */
export async function cutToLastLine(handle: FileHandle, size: number): Promise<number> {
  const buffer = new Uint8Array(Math.min(TAIL_CHUNK_BYTES, Math.max(1, size)));
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - buffer.length);
    const { bytesRead } = await handle.read(buffer, 0, end - start, start);
    const at = buffer.subarray(0, bytesRead).lastIndexOf(NEWLINE);
    if (at >= 0) {
      const keep = start + at + 1;
      if (keep < size) await handle.truncate(keep);
      return keep;
    }
    end = start;
  }
  if (size > 0) await handle.truncate(0);
  return 0;
}
