/**
 * A local `--output-dir` as an `ArchiveStore`: manifests in `DIR/_manifest/` written with
 * lib/atomic.ts, a lock file there held with an OS lock (released by the OS when a run dies), and
 * the archive's files found by walking the directory. The tool's temps (`.<name>.<pid>.<random>
 * [.locked].part`, see lib/atomic.ts) are told apart: a live run's are `live`, a dead run's `dead`.
 *
 * @example
 * ```ts
 * const store = new LocalArchiveStore("logs");
 * const lock = await store.lock();
 * try { await store.writeManifest("20260702T100000.000Z-r1.jsonl", "{}\n"); } finally { await lock.release(); }
 * ```
 */
import { existsSync } from "node:fs";
import { lstat, readdir, readFile, rmdir, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  directoryModeFor,
  ensureDir,
  isProcessAlive,
  OWNER_ONLY_FILE_MODE,
  RECENT_TEMP_MS,
  writeFileAtomic,
} from "../atomic.ts";
import { CliError, codeOf, reason } from "../errors.ts";
import { holdExclusiveLock, isLockHeld } from "../runtime.ts";
import { sleep } from "../retry.ts";
import { MANIFEST_DIR } from "./format.ts";
import { fileChunks } from "../file_chunks.ts";
import type { ArchiveStore, ManifestLock, StoredObject } from "./store.ts";

/** The temp names of lib/atomic.ts: `.<name>.<pid>.<random hex>.part` or `.locked.part`. */
const TEMP_NAME = /^\..+\.(\d{1,10})\.([0-9a-f]{12})\.(locked\.)?part$/;
/** How long a run waits for another run's manifest lock (held only while it writes one). */
const LOCK_WAIT_MS = 120_000;
const LOCK_POLL_MS = 100;
const CHUNK_BYTES = 1024 * 1024;
/** `_manifest/.live-<run id>`: held (OS lock) by a run at work. */
const LIVE_PREFIX = ".live-";

export class LocalArchiveStore implements ArchiveStore {
  readonly label: string;

  /** `fileMode`: the mode of the manifests (their folder gets the matching directory mode). */
  constructor(readonly root: string, private readonly fileMode = OWNER_ONLY_FILE_MODE) {
    this.label = root;
  }

  /**
   * The root as an absolute path for the file system calls: Bun's `readdir` on Windows (seen
   * under Wine) does not find a relative path with backslashes that every other call finds.
   */
  get #base(): string {
    return resolve(this.root);
  }

  get #dir(): string {
    return join(this.#base, MANIFEST_DIR);
  }

  async manifests(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (error) {
      if (codeOf(error) === "ENOENT") return [];
      throw new CliError("io", `cannot list ${this.#dir}: ${reason(error)}`, { cause: error });
    }
    return names.filter((name) => name.endsWith(".jsonl") && !name.startsWith(".")).sort();
  }

  async readManifest(name: string): Promise<string> {
    const path = join(this.#dir, name);
    try {
      return await readFile(path, "utf8");
    } catch (error) {
      throw new CliError("io", `cannot read ${path}: ${reason(error)}`, { cause: error });
    }
  }

  async writeManifest(name: string, text: string): Promise<void> {
    await ensureDir(this.#dir, directoryModeFor(this.fileMode));
    await writeFileAtomic(join(this.#dir, name), text, this.fileMode);
  }

  async lock(): Promise<ManifestLock> {
    await ensureDir(this.#dir, directoryModeFor(this.fileMode));
    return await lockFile(join(this.#dir, ".lock"));
  }

  async markLive(runId: string, eventTypes: readonly string[]): Promise<ManifestLock> {
    // A run that stores nothing (refused by the API, say) leaves no trace: the folders this mark
    // made are removed again with it when they are still empty.
    const made = [dirname(this.#dir), this.#dir].filter((dir) => !existsSync(dir));
    await ensureDir(this.#dir, directoryModeFor(this.fileMode));
    await this.#sweepDeadMarks();
    const path = join(this.#dir, `${LIVE_PREFIX}${runId}`);
    await writeFileAtomic(path, JSON.stringify({ eventTypes }) + "\n", this.fileMode);
    const held = await holdExclusiveLock(path);
    return {
      assertHeld: resolved,
      release: async () => {
        held?.release();
        await unlink(path).catch(() => {});
        for (const dir of made.reverse()) await rmdir(dir).catch(() => {});
      },
    };
  }

  /** Marks of runs that died (lock free, untouched for a minute: not one being made now). */
  async #sweepDeadMarks(): Promise<void> {
    for (const name of await readdir(this.#dir)) {
      if (!name.startsWith(LIVE_PREFIX)) continue;
      const path = join(this.#dir, name);
      try {
        if (Date.now() - (await lstat(path)).mtimeMs < 60_000) continue;
        if (await isLockHeld(path) === false) await unlink(path);
      } catch {
        // Removed meanwhile by its run or another sweeper.
      }
    }
  }

  async liveRuns(): Promise<string[][]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch {
      return [];
    }
    const live: string[][] = [];
    for (const name of names.filter((n) => n.startsWith(LIVE_PREFIX))) {
      const path = join(this.#dir, name);
      // Held: a run at work; free: one that died (the next run records its files).
      if (await isLockHeld(path) !== true) continue;
      try {
        live.push(JSON.parse(await readFile(path, "utf8")).eventTypes ?? []);
      } catch {
        // Released and removed meanwhile.
      }
    }
    return live;
  }

  async *objects(prefixes?: readonly string[]): AsyncIterable<StoredObject> {
    const roots = prefixes ?? [""];
    for (const prefix of roots) yield* this.#walk(prefix);
  }

  read(path: string): AsyncIterable<Uint8Array> {
    return fileChunks(join(this.#base, path), CHUNK_BYTES);
  }

  async *#walk(relative: string): AsyncGenerator<StoredObject> {
    const dir = relative === "" ? this.#base : join(this.#base, relative);
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (error) {
      if (codeOf(error) === "ENOENT") return;
      throw new CliError("io", `cannot list ${dir}: ${reason(error)}`, { cause: error });
    }
    for (const name of names) {
      const path = relative === "" ? name : `${relative}/${name}`;
      if (path === MANIFEST_DIR) continue;
      const full = join(dir, name);
      let info;
      try {
        info = await lstat(full);
      } catch (error) {
        if (codeOf(error) === "ENOENT") continue; // A temp committed meanwhile.
        throw new CliError("io", `cannot read ${full}: ${reason(error)}`, { cause: error });
      }
      if (info.isDirectory()) {
        yield* this.#walk(path);
        continue;
      }
      const temp = TEMP_NAME.exec(name);
      const object: StoredObject = { path, size: info.size };
      if (temp) object.temp = await tempState(full, Number(temp[1]), temp[3] !== undefined, info);
      yield object;
    }
  }
}

const resolved = (): Promise<void> => Promise.resolve();

/** Holds an OS lock on `path`, waiting up to `LOCK_WAIT_MS` for another run to let it go. */
async function lockFile(path: string): Promise<ManifestLock> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (true) {
    const held = await holdExclusiveLock(path);
    // An OS lock is held until released or the process ends: it cannot be lost meanwhile.
    if (held) return { assertHeld: resolved, release: () => Promise.resolve(held.release()) };
    // No lock to be had on this system at all: writers are not serialized here.
    if (await isLockHeld(path) === undefined) {
      return { assertHeld: resolved, release: () => Promise.resolve() };
    }
    if (Date.now() > deadline) {
      throw new CliError(
        "io",
        `another run has held the manifest lock ${path} for over ${LOCK_WAIT_MS / 1000} s; ` +
          "wait for it to finish, then run again",
      );
    }
    await sleep(LOCK_POLL_MS);
  }
}

/** Whether a temp's writer still runs: its OS lock, else its pid and how recently it was written. */
async function tempState(
  path: string,
  pid: number,
  locked: boolean,
  info: { mtimeMs: number },
): Promise<"live" | "dead"> {
  if (locked) {
    const held = await isLockHeld(path);
    if (held !== undefined) return held ? "live" : "dead";
  }
  return isProcessAlive(pid) || Date.now() - info.mtimeMs < RECENT_TEMP_MS ? "live" : "dead";
}

/**
 * `--manifest FILE` for a run without an archive (`-o`, stdout): each run's manifest is appended
 * to FILE, which is rewritten whole (atomically) each time, so FILE holds the job's whole chain.
 * It stores no files: nothing to recover or to walk.
 */
export class ManifestFileStore implements ArchiveStore {
  readonly label: string;

  constructor(readonly path: string, private readonly fileMode = OWNER_ONLY_FILE_MODE) {
    this.label = path;
  }

  async manifests(): Promise<string[]> {
    try {
      await lstat(this.path);
      return [basename(this.path)];
    } catch (error) {
      if (codeOf(error) === "ENOENT") return [];
      throw new CliError("io", `cannot read --manifest ${this.path}: ${reason(error)}`, {
        cause: error,
      });
    }
  }

  async readManifest(): Promise<string> {
    try {
      return await readFile(this.path, "utf8");
    } catch (error) {
      if (codeOf(error) === "ENOENT") return "";
      throw new CliError("io", `cannot read --manifest ${this.path}: ${reason(error)}`, {
        cause: error,
      });
    }
  }

  async writeManifest(_name: string, text: string): Promise<void> {
    await writeFileAtomic(this.path, (await this.readManifest()) + text, this.fileMode);
  }

  lock(): Promise<ManifestLock> {
    return lockFile(`${this.path}.lock`);
  }

  /** Nothing to mark: no files are stored beside FILE. */
  markLive(): Promise<ManifestLock> {
    return Promise.resolve({ assertHeld: resolved, release: () => Promise.resolve() });
  }

  liveRuns(): Promise<string[][]> {
    return Promise.resolve([]);
  }

  async *objects(): AsyncIterable<StoredObject> {}

  read(path: string): AsyncIterable<Uint8Array> {
    throw new CliError("io", `--manifest ${this.path} stores no files (asked for ${path})`);
  }
}
