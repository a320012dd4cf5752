/**
 * Where a checkpoint is kept: the seam between the checkpoint's model (model.ts) and its storage.
 * A `StateStore` reads the checkpoint's text with a version tag, writes it only over the version
 * last read or written, and locks it. Two implementations:
 *
 * - a local file (`--state FILE`): written atomically (format.ts), locked by `FILE.lock` with its
 *   dead-owner rule (lock.ts); the lock alone keeps writers apart, so its version tag is empty;
 * - an object in a bucket or container (`--state s3://BUCKET/KEY`, `az://CONTAINER/KEY`),
 *   object_state.ts: a lease at `KEY.lock`, and every write conditional on the ETag last read or
 *   written (creation only if absent), so two writers can never both move it.
 *
 * `openStateStore` (locate.ts) picks one by what `--state` names.
 *
 * @example
 * ```ts
 * const store = new LocalStateStore("auth.state.json", "/data/auth.state.json");
 * const lock = await store.lock();
 * try {
 *   const found = await store.read();
 *   await store.write("{...}", found?.version);
 * } finally {
 *   await lock.release();
 * }
 * ```
 */
import { unlink } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { removeStaleTemps } from "../atomic.ts";
import { CliError, codeOf, reason } from "../errors.ts";
import { readStateText, requireDirectory, writeStateText } from "./format.ts";
import { acquireLock, assertStillHeld, describeLock, releaseLock } from "./lock.ts";

/** The checkpoint's text as read, and the version tag a write over it must name. */
export interface StoredState {
  text: string;
  version: string;
}

/** A checkpoint's lock, held from open to close. */
export interface StateLock {
  /** Why a dead run's lock was taken over, if it was. */
  readonly tookOver?: string;
  /** Throws a CliError (kind "state") when the lock is no longer this run's. */
  assertHeld(): Promise<void>;
  /** Releases it (never another run's); idempotent. */
  release(): Promise<void>;
}

export interface StateStore {
  /** The checkpoint as the user named it (`--state`), for messages. */
  readonly shown: string;
  /** What can be refused before anything is created (local: the directory, the file's kind). */
  prepare(): Promise<void>;
  /** The text and its version, or undefined when there is no checkpoint yet. */
  read(): Promise<StoredState | undefined>;
  /**
   * Replaces the checkpoint with `text`, only over version `expected` (undefined: only if there
   * is none); the new version. A failed condition is a CliError of kind "state": another writer
   * moved it, and this run must stop without moving it further.
   */
  write(text: string, expected: string | undefined): Promise<string>;
  /** Deletes the checkpoint (version `expected`); no error when it is already gone. */
  remove(expected: string | undefined): Promise<void>;
  /** Takes the lock (refused with a CliError of kind "state" while another live run holds it). */
  lock(): Promise<StateLock>;
  /** The lock in words, for `state show`. */
  describeLock(): Promise<string>;
}

/** `--state FILE`: see the module doc. `target` is the file itself (symlinks followed). */
export class LocalStateStore implements StateStore {
  constructor(readonly shown: string, private readonly target: string) {}

  async prepare(): Promise<void> {
    await requireDirectory(this.shown);
    // Checked before the lock too: a state path leading to a device, a FIFO or some other odd
    // file must not make us create `<that>.lock` beside it (in /dev, say) before refusing it.
    await readStateText(this.target, this.shown);
  }

  async read(): Promise<StoredState | undefined> {
    const text = await readStateText(this.target, this.shown);
    return text === undefined ? undefined : { text, version: "" };
  }

  async write(text: string, _expected: string | undefined): Promise<string> {
    await writeStateText(this.target, this.shown, text);
    return "";
  }

  async remove(_expected: string | undefined): Promise<void> {
    await unlink(this.target).catch((error) => {
      if (codeOf(error) === "ENOENT") return;
      throw new CliError("io", `cannot delete ${this.shown}: ${reason(error)}`, { cause: error });
    });
  }

  async lock(): Promise<StateLock> {
    const { lock, tookOver } = await acquireLock(this.target, this.shown);
    try {
      // Temps of the state file and of the lock left by a run killed while writing them.
      const dir = dirname(this.target);
      await removeStaleTemps(dir, { finalName: basename(this.target) });
      await removeStaleTemps(dir, { finalName: `${basename(this.target)}.lock` });
    } catch (error) {
      await releaseLock(lock);
      throw error;
    }
    const shown = this.shown;
    return {
      tookOver,
      assertHeld: () => assertStillHeld(lock, shown),
      release: () => releaseLock(lock),
    };
  }

  describeLock(): Promise<string> {
    return describeLock(this.target, this.shown);
  }
}
