/**
 * The checkpoint of one (principal, event types) job: for each event type, the `after` to list
 * from next and the ids already delivered that such a listing may return again, and the files
 * found gone or skipped by the operator. The event types are named ones, or `all` (the route's
 * types, resolved at each run: any type may gain a cursor). The state file (see `format.ts`) is
 * replaced atomically after every delivered file, so a killed run resumes exactly where its last
 * delivered file left off; the lock (see `lock.ts`) is held from open to close and checked before
 * each write.
 *
 * @example
 * ```ts
 * declare const afterArgument: string;
 * declare const file: { id: string };
 * declare const page: { lastEndTime: string };
 * declare const idsAtThatTime: string[];
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
 * ```
 */
import { CliError } from "../errors.ts";
import type { Env } from "../settings.ts";
import { COMMAND, resetCommand, skipCommand } from "./_common.ts";
import {
  checkJob,
  corruptAdvice,
  type Cursor,
  describeTypes,
  emptyState,
  formatState,
  type GoneEntry,
  isVersion1,
  type JobEventTypes,
  looksLikeState,
  MAX_GONE_PER_TYPE,
  MAX_SKIPPED_PER_TYPE,
  parseState,
  type SkipEntry,
  type StateData,
  tracksType,
} from "./format.ts";
import { openStateStore } from "./locate.ts";
import type { StateLock, StateStore, StoredState } from "./store.ts";
import { LEGACY_ALL_EVENT_TYPES } from "../event_types.ts";

export interface OpenOptions {
  /**
   * Hold `FILE.lock` while open (default true). Without the lock a missing file is not created
   * until the first `markDelivered`/`advance`: meant for read-only uses such as `--list`.
   */
  lock?: boolean;
  /** Where credentials come from for a checkpoint in a store (`s3://`, `az://`). */
  env?: Env;
}

/** The listed file a gone record is about (a `LogFile` is one). */
export interface GoneFile {
  id: string;
  end_time: string;
}

export class Checkpoint {
  readonly #store: StateStore;
  #data: StateData;
  /** The version of the checkpoint last read or written (undefined: none stored yet). */
  #version: string | undefined;
  #lock: StateLock | undefined;
  #closed = false;
  #writes: Promise<unknown> = Promise.resolve();

  private constructor(
    /** The path as given (used in messages). */
    readonly path: string,
    store: StateStore,
    data: StateData,
    version: string | undefined,
    lock: StateLock | undefined,
    /** True when a lock left by a dead run was taken over; say so to the user. */
    readonly tookOverStaleLock: boolean,
    /** Why that lock was judged stale (e.g. "pid 123 is no longer running"). */
    readonly staleLockReason: string | undefined,
  ) {
    this.#store = store;
    this.#data = data;
    this.#version = version;
    this.#lock = lock;
  }

  /**
   * Opens (and locks) the checkpoint at `path` for `principal` and `eventTypes` (named types, or
   * `all`), creating it if it does not exist. Refuses, with a `CliError` of kind "state" and
   * without touching the file, a corrupt file, a file of an unknown version, or one kept for
   * another principal or other event types; and refuses while another live run holds the lock.
   * A version 1 file is read as it is (and written as version 2 from then on); one an earlier
   * version wrote for `all` (holding `LEGACY_ALL_EVENT_TYPES`) is accepted by an `all` job.
   *
   * @example
   * ```ts
   * const state = await Checkpoint.open("s.json", "ws-1", ["AUTH_LOG", "AUDIT_LOG"]);
   * const everything = await Checkpoint.open("all.json", "org-1", "all");
   * ```
   */
  static async open(
    path: string,
    principal: string,
    eventTypes: JobEventTypes,
    options: OpenOptions = {},
  ): Promise<Checkpoint> {
    if (principal === "") throw new Error("Checkpoint.open: principal is empty");
    const types = eventTypes === "all" ? "all" : [...new Set(eventTypes)].sort();
    if (types !== "all" && (types.length === 0 || types.includes(""))) {
      throw new Error("Checkpoint.open: event types must be non-empty strings");
    }
    const store = await openStateStore(path, options.env);
    await store.prepare();

    const lock = (options.lock ?? true) ? await store.lock() : undefined;
    try {
      const found = await store.read();
      let data: StateData;
      let version = found?.version;
      if (found === undefined) {
        data = emptyState(principal, types);
        // A locking run creates it now rather than on its first delivery: an unwritable location
        // fails before anything is downloaded, and the file pins the job's principal and event
        // types at once. An unlocked (read-only) open, such as `--list`, leaves no trace.
        if (lock) version = await store.write(formatState(data), undefined);
      } else {
        data = parseState(found.text, path);
        // An old `all` file: kept as `all` from its next write on.
        if (checkJob(data, path, principal, types, isVersion1(found.text))) {
          data.eventTypes = "all";
        }
      }
      const tookOver = lock?.tookOver;
      const checkpoint = new Checkpoint(
        path,
        store,
        data,
        version,
        lock,
        tookOver !== undefined,
        tookOver,
      );
      checkpoint.existed = found !== undefined;
      return checkpoint;
    } catch (error) {
      if (lock) await lock.release();
      throw error;
    }
  }

  /** Whether the checkpoint existed when opened (a locking open creates a missing one). */
  existed = false;

  /** The principal this checkpoint belongs to. */
  get principal(): string {
    return this.#data.principal;
  }

  /** The event types this checkpoint tracks, sorted, or `all`. */
  get eventTypes(): JobEventTypes {
    const types = this.#data.eventTypes;
    return types === "all" ? "all" : [...types];
  }

  /** The cursor of `eventType` (a copy), or undefined when the run should start from `<after>`. */
  cursor(eventType: string): Cursor | undefined {
    this.#check(eventType);
    const cursor = this.#data.cursors[eventType];
    return cursor && { ...cursor, seen: [...cursor.seen] };
  }

  /** The files of `eventType` found gone, oldest first (the most recent `MAX_GONE_PER_TYPE`). */
  gone(eventType: string): GoneEntry[] {
    this.#check(eventType);
    return (this.#data.gone[eventType] ?? []).map((entry) => ({ ...entry }));
  }

  /** The files of `eventType` the operator skipped, oldest first. */
  skipped(eventType: string): SkipEntry[] {
    this.#check(eventType);
    return (this.#data.skipped[eventType] ?? []).map((entry) => ({ ...entry }));
  }

  /** The operator's reason for skipping file `id` (`state skip`), or undefined. */
  skipReason(eventType: string, id: string): string | undefined {
    this.#check(eventType);
    return this.#data.skipped[eventType]?.find((entry) => entry.id === id)?.reason;
  }

  /**
   * The command that passes file `id` on purpose, for the error that stops a run on it.
   *
   * @example
   * ```ts
   * declare const state: Checkpoint;
   * state.skipCommand("AUTH_LOG", "eclf_1"); // "oai-compliance-logs state skip s.json AUTH_LOG eclf_1 --reason TEXT"
   * ```
   */
  skipCommand(eventType: string, id: string): string {
    return skipCommand(this.path, eventType, id);
  }

  /**
   * Records that file `id` from the page listed with `pageAfter` has reached its destination:
   * the cursor moves to `pageAfter` (forgetting the ids of an earlier page) and `id` joins `seen`.
   *
   * @example
   * ```ts
   * declare const state: Checkpoint;
   * await state.markDelivered("AUTH_LOG", "2026-01-01T00:00:00Z", "file-7");
   * ```
   */
  markDelivered(eventType: string, pageAfter: string, id: string): Promise<void> {
    this.#check(eventType);
    requireText("pageAfter", pageAfter);
    requireText("id", id);
    this.#data.cursors[eventType] = this.#passed(eventType, pageAfter, id);
    return this.#save();
  }

  /**
   * Records that listed file `file` from the page listed with `pageAfter` is gone (the API no
   * longer has it, for `reason`): the cursor passes it exactly as `markDelivered` does, and the
   * file joins the event type's gone files (the most recent `MAX_GONE_PER_TYPE` are kept).
   *
   * @example
   * ```ts
   * declare const state: Checkpoint;
   * const file = { id: "file-8", end_time: "2026-01-01T01:00:00Z" };
   * await state.markGone("AUTH_LOG", "2026-01-01T00:00:00Z", file, "expired");
   * ```
   */
  markGone(
    eventType: string,
    pageAfter: string,
    file: GoneFile,
    why: GoneEntry["reason"],
  ): Promise<void> {
    this.#check(eventType);
    requireText("pageAfter", pageAfter);
    requireText("id", file.id);
    requireText("end_time", file.end_time);
    this.#data.cursors[eventType] = this.#passed(eventType, pageAfter, file.id);
    const entry: GoneEntry = {
      id: file.id,
      event_type: eventType,
      end_time: file.end_time,
      found_at: new Date().toISOString(),
      reason: why,
    };
    this.#data.gone[eventType] = appendBounded(
      this.#data.gone[eventType],
      entry,
      MAX_GONE_PER_TYPE,
    );
    return this.#save();
  }

  /**
   * Records that a whole page has been delivered: the next listing starts at `newAfter` and may
   * return `boundaryIds` again (already delivered, to skip).
   *
   * @example
   * ```ts
   * declare const state: Checkpoint;
   * await state.advance("AUTH_LOG", "2026-01-02T00:00:00Z", ["file-9"]);
   * ```
   */
  advance(eventType: string, newAfter: string, boundaryIds: string[]): Promise<void> {
    this.#check(eventType);
    requireText("newAfter", newAfter);
    for (const id of boundaryIds) requireText("boundary id", id);
    const seen = [...new Set(boundaryIds)];
    this.#data.cursors[eventType] = {
      after: newAfter,
      seen,
      updatedAt: new Date().toISOString(),
    };
    return this.#save();
  }

  /** Waits for pending writes and releases the lock (if this checkpoint holds it); idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes;
    const lock = this.#lock;
    this.#lock = undefined;
    if (lock) await lock.release();
  }

  /** The cursor of `eventType` once file `id` of the page listed with `pageAfter` is passed. */
  #passed(eventType: string, pageAfter: string, id: string): Cursor {
    const current = this.#data.cursors[eventType];
    const seen = current?.after === pageAfter ? current.seen.filter((s) => s !== id) : [];
    seen.push(id);
    return { after: pageAfter, seen, updatedAt: new Date().toISOString() };
  }

  #save(): Promise<void> {
    // Each write is a full snapshot taken now; writes run in call order so the last one wins even
    // when a caller does not await each call.
    const snapshot = structuredClone(this.#data);
    const lock = this.#lock;
    const write = this.#writes.then(async () => {
      if (lock) await lock.assertHeld();
      this.#version = await this.#store.write(formatState(snapshot), this.#version);
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  #check(eventType: string): void {
    if (this.#closed) throw new Error(`checkpoint ${this.path} is closed`);
    if (!tracksType(this.#data.eventTypes, eventType)) {
      throw new Error(`checkpoint ${this.path} does not track event type ${eventType}`);
    }
  }
}

/**
 * Deletes the state file (or, given `eventType`, only that event type's cursor, so that it starts
 * again from `<after>`), holding the lock while doing so: refused while another live run holds it.
 * A whole-file reset also clears a corrupt file, but refuses a file that does not look like a state
 * file at all (e.g. a downloaded log named by mistake). A one-type reset keeps the type's gone and
 * skipped files (the operator's skips still hold).
 *
 * @example
 * ```ts
 * await resetState("s.json", "AUTH_LOG");
 * ```
 */
export async function resetState(path: string, eventType?: string, env?: Env): Promise<void> {
  await underLock(path, "reset", env, async (store, found) => {
    if (found === undefined) return; // removed meanwhile: the reset is done
    const { text, version } = found;
    if (eventType === undefined) {
      if (!looksLikeState(text)) {
        throw new CliError(
          "state",
          `${path} does not look like an ${COMMAND} state file; not deleting it (delete it by hand if you are sure)`,
        );
      }
      await store.remove(version);
      return;
    }
    const data = parseForEdit(text, path, `cannot reset only ${eventType}`);
    requireTracked(data, path, eventType);
    if (!(eventType in data.cursors)) return;
    delete data.cursors[eventType];
    await store.write(formatState(data), version);
  });
}

/** The most a skip's reason may hold: it is for a person to read in `state show`. */
export const MAX_SKIP_REASON = 500;

/**
 * Records, under the lock, that the operator passes file `id` of `eventType` on purpose (a poison
 * file no destination can take): a later run does not download it and moves the cursor past it as
 * if delivered. Skipping an id again replaces its reason. The file must exist and track
 * `eventType`; refused while another live run holds the lock.
 *
 * @example
 * ```ts
 * await skipFile("s.json", "AUTH_LOG", "eclf_1", "hash mismatch on every try, ticket 1234");
 * ```
 */
export async function skipFile(
  path: string,
  eventType: string,
  id: string,
  why: string,
  env?: Env,
): Promise<void> {
  requireText("id", id);
  if (why.trim() === "") throw new CliError("usage", "--reason must not be empty");
  await underLock(path, "skip", env, async (store, found) => {
    if (found === undefined) {
      throw new CliError("state", `state file ${path} was removed meanwhile; nothing recorded`);
    }
    const data = parseForEdit(found.text, path, `cannot skip ${id}`);
    requireTracked(data, path, eventType);
    const entry: SkipEntry = { id, reason: why, skipped_at: new Date().toISOString() };
    const others = (data.skipped[eventType] ?? []).filter((s) => s.id !== id);
    data.skipped[eventType] = appendBounded(others, entry, MAX_SKIPPED_PER_TYPE);
    await store.write(formatState(data), found.version);
  });
}

/**
 * Runs `edit` with the existing checkpoint at `path` (undefined if it was removed while the lock
 * was taken), holding its lock.
 */
async function underLock(
  path: string,
  verb: string,
  env: Env | undefined,
  edit: (store: StateStore, found: StoredState | undefined) => Promise<void>,
): Promise<void> {
  const store = await openStateStore(path, env);
  if ((await store.read()) === undefined) {
    throw new CliError("state", `state file ${path} does not exist; nothing to ${verb}`);
  }
  const lock = await store.lock();
  try {
    await edit(store, await store.read());
  } finally {
    await lock.release();
  }
}

/** The parsed state for an edit of one event type; a refusal says what a whole reset would do. */
function parseForEdit(text: string, path: string, what: string): StateData {
  try {
    const data = parseState(text, path);
    // A version 1 file of the eight legacy names is what `all` was stored as: rewritten as such,
    // so that the `all` job still opens it after `state skip` or `state reset TYPE`.
    const legacyAll = [...LEGACY_ALL_EVENT_TYPES].sort().join(",");
    if (isVersion1(text) && describeTypes(data.eventTypes) === legacyAll) data.eventTypes = "all";
    return data;
  } catch (error) {
    const advice = looksLikeState(text)
      ? `run \`${resetCommand(path)}\` to discard the whole file`
      : corruptAdvice(text, path);
    throw new CliError(
      "state",
      `${what}: ${withoutAdvice((error as Error).message)}; ${advice}`,
      { cause: error },
    );
  }
}

function requireTracked(data: StateData, path: string, eventType: string): void {
  if (tracksType(data.eventTypes, eventType)) return;
  throw new CliError(
    "state",
    data.eventTypes === "all"
      ? `${JSON.stringify(eventType)} is not an event type name (such as AUTH_LOG)`
      : `state file ${path} does not track event type ${eventType} (it tracks ${
        describeTypes(data.eventTypes).replaceAll(",", ", ")
      })`,
  );
}

/** `list` with `entry` appended, keeping only the last `max`. */
function appendBounded<T>(list: T[] | undefined, entry: T, max: number): T[] {
  return [...(list ?? []), entry].slice(-max);
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
