/**
 * The checkpoint of one (principal, set of event types) job: for each event type, the `after` to
 * list from next and the ids already delivered that such a listing may return again. The state
 * file (see `format.ts`) is replaced atomically after every delivered file, so a killed run
 * resumes exactly where its last delivered file left off; the lock (see `lock.ts`) is held from
 * open to close and checked before each write.
 *
 * @example
 * const state = await Checkpoint.open("auth.state.json", "ws-1", ["AUTH_LOG"]);
 * try {
 *   const after = state.cursor("AUTH_LOG")?.after ?? afterArgument;
 *   // ... deliver a file from the page listed with `after`, then:
 *   await state.markDelivered("AUTH_LOG", after, file.id);
 *   // ... page done:
 *   await state.advance("AUTH_LOG", page.lastEndTime, idsAtThatTime);
 * } finally {
 *   await state.close();
 * }
 */
import { unlink } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { removeStaleTemps } from "../atomic.ts";
import { CliError, codeOf, reason } from "../errors.ts";
import { COMMAND, resetCommand } from "./_common.ts";
import {
  checkJob,
  type Cursor,
  looksLikeState,
  parseState,
  readStateText,
  requireDirectory,
  type StateData,
  stateTarget,
  writeState,
} from "./format.ts";
import { acquireLock, assertStillHeld, type HeldLock, releaseLock } from "./lock.ts";

export interface OpenOptions {
  /**
   * Hold `FILE.lock` while open (default true). Without the lock a missing file is not created
   * until the first `markDelivered`/`advance`: meant for read-only uses such as `--list`.
   */
  lock?: boolean;
}

export class Checkpoint {
  readonly #target: string;
  #data: StateData;
  #lock: HeldLock | undefined;
  #closed = false;
  #writes: Promise<unknown> = Promise.resolve();

  private constructor(
    /** The path as given (used in messages). */
    readonly path: string,
    target: string,
    data: StateData,
    lock: HeldLock | undefined,
    /** True when a lock left by a dead run was taken over; say so to the user. */
    readonly tookOverStaleLock: boolean,
    /** Why that lock was judged stale (e.g. "pid 123 is no longer running"). */
    readonly staleLockReason: string | undefined,
  ) {
    this.#target = target;
    this.#data = data;
    this.#lock = lock;
  }

  /**
   * Opens (and locks) the checkpoint at `path` for `principal` and `eventTypes`, creating it if
   * it does not exist. Refuses, with a `CliError` of kind "state" and without touching the file,
   * a corrupt file, a file of an unknown version, or one kept for another principal or another
   * set of event types; and refuses while another live run holds the lock.
   *
   * @example
   * const state = await Checkpoint.open("s.json", "ws-1", ["AUTH_LOG", "AUDIT_LOG"]);
   */
  static async open(
    path: string,
    principal: string,
    eventTypes: string[],
    options: OpenOptions = {},
  ): Promise<Checkpoint> {
    if (principal === "") throw new Error("Checkpoint.open: principal is empty");
    const types = [...new Set(eventTypes)].sort();
    if (types.length === 0 || types.includes("")) {
      throw new Error("Checkpoint.open: event types must be non-empty strings");
    }
    await requireDirectory(path);
    const target = await stateTarget(path);
    // Checked before the lock too: a state path leading to a device, a FIFO or some other odd
    // file must not make us create `<that>.lock` beside it (in /dev, say) before refusing it.
    await readStateText(target, path);

    let lock: HeldLock | undefined;
    let tookOver: string | undefined;
    if (options.lock ?? true) {
      ({ lock, tookOver } = await acquireLock(target, path));
    }
    try {
      const text = await readStateText(target, path);
      let data: StateData;
      if (text === undefined) {
        data = { version: 1, principal, eventTypes: types, cursors: {} };
        // A locking run creates it now rather than on its first delivery: an unwritable location
        // fails before anything is downloaded, and the file pins the job's principal and event
        // types at once. An unlocked (read-only) open, such as `--list`, leaves no trace.
        if (lock) await writeState(target, path, data);
      } else {
        data = parseState(text, path);
        checkJob(data, path, principal, types);
      }
      if (lock) {
        // Temps of the state file and of the lock left by a run killed while writing them.
        const dir = dirname(target);
        await removeStaleTemps(dir, { finalName: basename(target) });
        await removeStaleTemps(dir, { finalName: `${basename(target)}.lock` });
      }
      return new Checkpoint(path, target, data, lock, tookOver !== undefined, tookOver);
    } catch (error) {
      if (lock) await releaseLock(lock);
      throw error;
    }
  }

  /** The principal this checkpoint belongs to. */
  get principal(): string {
    return this.#data.principal;
  }

  /** The event types this checkpoint tracks, sorted. */
  get eventTypes(): string[] {
    return [...this.#data.eventTypes];
  }

  /** The cursor of `eventType` (a copy), or undefined when the run should start from `<after>`. */
  cursor(eventType: string): Cursor | undefined {
    this.#check(eventType);
    const cursor = this.#data.cursors[eventType];
    return cursor && { ...cursor, seen: [...cursor.seen] };
  }

  /**
   * Records that file `id` from the page listed with `pageAfter` has reached its destination:
   * the cursor moves to `pageAfter` (forgetting the ids of an earlier page) and `id` joins `seen`.
   *
   * @example
   * await state.markDelivered("AUTH_LOG", "2026-01-01T00:00:00Z", "file-7");
   */
  markDelivered(eventType: string, pageAfter: string, id: string): Promise<void> {
    this.#check(eventType);
    requireText("pageAfter", pageAfter);
    requireText("id", id);
    const current = this.#data.cursors[eventType];
    const seen = current?.after === pageAfter ? current.seen.filter((s) => s !== id) : [];
    seen.push(id);
    return this.#set(eventType, { after: pageAfter, seen, updatedAt: new Date().toISOString() });
  }

  /**
   * Records that a whole page has been delivered: the next listing starts at `newAfter` and may
   * return `boundaryIds` again (already delivered, to skip).
   *
   * @example
   * await state.advance("AUTH_LOG", "2026-01-02T00:00:00Z", ["file-9"]);
   */
  advance(eventType: string, newAfter: string, boundaryIds: string[]): Promise<void> {
    this.#check(eventType);
    requireText("newAfter", newAfter);
    for (const id of boundaryIds) requireText("boundary id", id);
    const seen = [...new Set(boundaryIds)];
    return this.#set(eventType, { after: newAfter, seen, updatedAt: new Date().toISOString() });
  }

  /** Waits for pending writes and releases the lock (if this checkpoint holds it); idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes;
    const lock = this.#lock;
    this.#lock = undefined;
    if (lock) await releaseLock(lock);
  }

  #set(eventType: string, cursor: Cursor): Promise<void> {
    this.#data.cursors[eventType] = cursor;
    // Each write is a full snapshot taken now; writes run in call order so the last one wins even
    // when a caller does not await each call.
    const snapshot = structuredClone(this.#data);
    const lock = this.#lock;
    const write = this.#writes.then(async () => {
      if (lock) await assertStillHeld(lock, this.path);
      await writeState(this.#target, this.path, snapshot);
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  #check(eventType: string): void {
    if (this.#closed) throw new Error(`checkpoint ${this.path} is closed`);
    if (!this.#data.eventTypes.includes(eventType)) {
      throw new Error(`checkpoint ${this.path} does not track event type ${eventType}`);
    }
  }
}

/**
 * Deletes the state file (or, given `eventType`, only that event type's cursor, so that it starts
 * again from `<after>`), holding the lock while doing so: refused while another live run holds it.
 * A whole-file reset also clears a corrupt file, but refuses a file that does not look like a state
 * file at all (e.g. a downloaded log named by mistake).
 *
 * @example
 * await resetState("s.json", "AUTH_LOG");
 */
export async function resetState(path: string, eventType?: string): Promise<void> {
  if ((await readStateText(path, path)) === undefined) {
    throw new CliError("state", `state file ${path} does not exist; nothing to reset`);
  }
  const target = await stateTarget(path);
  const { lock } = await acquireLock(target, path);
  try {
    const text = await readStateText(target, path);
    if (text === undefined) return; // removed meanwhile: the reset is done
    if (eventType === undefined) {
      if (!looksLikeState(text)) {
        throw new CliError(
          "state",
          `${path} does not look like an ${COMMAND} state file; not deleting it (delete it by hand if you are sure)`,
        );
      }
      await unlink(target).catch((error) => {
        if (codeOf(error) === "ENOENT") return;
        throw new CliError("io", `cannot delete ${path}: ${reason(error)}`, { cause: error });
      });
      return;
    }
    let data: StateData;
    try {
      data = parseState(text, path);
    } catch (error) {
      throw new CliError(
        "state",
        `cannot reset only ${eventType}: ${withoutAdvice((error as Error).message)}; ` +
          `run \`${resetCommand(path)}\` to discard the whole file`,
        { cause: error },
      );
    }
    if (!data.eventTypes.includes(eventType)) {
      throw new CliError(
        "state",
        `state file ${path} does not track event type ${eventType} (it tracks ${
          data.eventTypes.join(", ")
        })`,
      );
    }
    if (!(eventType in data.cursors)) return;
    delete data.cursors[eventType];
    await writeState(target, path, data);
  } finally {
    await releaseLock(lock);
  }
}

function requireText(name: string, value: unknown): void {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`checkpoint: ${name} must be a non-empty string`);
  }
}

/** A refusal's message without its trailing "; what to do" part. */
function withoutAdvice(message: string): string {
  const cut = message.lastIndexOf("; ");
  return cut > 0 ? message.slice(0, cut) : message;
}
