/**
 * The `--state` file: a JSON checkpoint for one (principal, set of event types) job, holding for
 * each event type the `after` to list from next and the ids already delivered that such a listing
 * may return again. It is replaced atomically after every delivered file, so a killed run resumes
 * exactly where its last delivered file left off. A lock file beside it (`FILE.lock`, holding the
 * owner's pid and host, touched every 30 s) keeps overlapping runs (cron) from interleaving. A
 * lock is stale, and taken over, when its pid is gone (same host), when it predates the last boot,
 * or, for a lock of another host sharing the directory, when it has not been touched for 10
 * minutes. Before each write the holder checks the lock is still its own.
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
import { hostname, uptime } from "node:os";
import { open, readFile, realpath, stat, unlink, utimes } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import process from "node:process";
import { clearInterval, setInterval } from "node:timers";
import { codeOf, isProcessAlive, reason, removeStaleTemps, writeFileAtomic } from "./atomic.ts";
import { CliError } from "./errors.ts";
import { escapeControls } from "./terminal.ts";
import { toMicros } from "./time.ts";

export interface Cursor {
  /** The `after` value to send on the next listing. */
  after: string;
  /** Ids already delivered that a listing with this `after` may return again (boundary ids). */
  seen: string[];
  /** ISO time of the last advance. */
  updatedAt: string;
}

export interface StateData {
  version: 1;
  principal: string;
  /** The event types this file tracks, sorted; a run must ask for exactly this set. */
  eventTypes: string[];
  /** Keyed by event type; an event type without a cursor has not delivered anything yet. */
  cursors: Record<string, Cursor>;
}

export interface OpenOptions {
  /**
   * Hold `FILE.lock` while open (default true). Without the lock a missing file is not created
   * until the first `markDelivered`/`advance`: meant for read-only uses such as `--list`.
   */
  lock?: boolean;
}

const COMMAND = "oai-compliance-logs";
/** A lock file that cannot be parsed is only presumed abandoned once it is this old. */
const UNREADABLE_LOCK_GRACE_MS = 60_000;
/** How often the holder touches its lock, so that runs on other hosts can tell it is alive. */
const HEARTBEAT_MS = 30_000;
/** A lock from another host (its pid cannot be checked from here) untouched this long is stale. */
const FOREIGN_LOCK_STALE_MS = 10 * 60_000;
/** A state file is a few kilobytes; anything this large was never one. */
const MAX_STATE_BYTES = 16 * 1024 * 1024;

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
    // Follow a symlinked state file so that the rename replaces its target, not the link.
    const target = await realpath(path).catch(() => path);

    let lock: HeldLock | undefined;
    let tookOver: string | undefined;
    if (options.lock ?? true) {
      ({ lock, tookOver } = await acquireLock(target, path));
    }
    try {
      const text = await readState(target, path);
      let data: StateData;
      if (text === undefined) {
        data = { version: 1, principal, eventTypes: types, cursors: {} };
        // A locking run creates it now rather than on its first delivery: an unwritable location
        // fails before anything is downloaded, and the file pins the job's principal and event
        // types at once. An unlocked (read-only) open, such as `--list`, leaves no trace.
        if (lock) await persist(target, path, data);
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
      await persist(this.#target, this.path, snapshot);
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
 * Reads and validates the state file at `path`.
 *
 * @example
 * const data = await loadState("s.json");
 */
export async function loadState(path: string): Promise<StateData> {
  const text = await readState(path, path);
  if (text === undefined) {
    throw new CliError("state", `state file ${path} does not exist`);
  }
  return parseState(text, path);
}

/**
 * A human-readable description of the state file at `path` and of its lock, for `state show`.
 *
 * @example
 * console.log(await showState("s.json"));
 */
export async function showState(path: string): Promise<string> {
  const data = await loadState(path);
  const width = Math.max("event types".length, ...data.eventTypes.map((t) => t.length)) + 2;
  // The file's contents reach a terminal: no control character (nor newline) goes out raw.
  const row = (label: string, value: string) =>
    escapeControls(label, "").padEnd(width) + escapeControls(value, "");
  const out = [
    row("state file", path),
    row("principal", data.principal),
    row("event types", data.eventTypes.join(", ")),
  ];
  for (const type of data.eventTypes) {
    const cursor = data.cursors[type];
    if (!cursor) {
      out.push(row(type, "not started: the next run lists from its <after> argument"));
      continue;
    }
    const ids = cursor.seen.length === 1 ? "1 id" : `${cursor.seen.length} ids`;
    out.push(row(type, `after ${cursor.after} (${ids} already delivered at it)`));
    out.push(row("", `updated ${cursor.updatedAt}`));
    if (cursor.seen.length > 0) out.push(row("", `delivered: ${cursor.seen.join(", ")}`));
  }
  const target = await realpath(path).catch(() => path);
  out.push(row("lock", await describeLock(`${target}.lock`, `${path}.lock`)));
  return out.join("\n");
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
  if ((await readState(path, path)) === undefined) {
    throw new CliError("state", `state file ${path} does not exist; nothing to reset`);
  }
  const target = await realpath(path).catch(() => path);
  const { lock } = await acquireLock(target, path);
  try {
    const text = await readState(target, path);
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
          `run \`${COMMAND} state reset ${shellQuote(path)}\` to discard the whole file`,
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
    await persist(target, path, data);
  } finally {
    await releaseLock(lock);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading, validating and writing the state file

/** The file's text, or undefined if it does not exist. */
async function readState(target: string, shown: string): Promise<string | undefined> {
  try {
    const info = await stat(target);
    if (info.isDirectory()) {
      throw new CliError("state", `state file ${shown} is a directory; name a file for --state`);
    }
    if (info.size > MAX_STATE_BYTES) {
      throw new CliError(
        "state",
        `${shown} is too large (${info.size} bytes) to be a state file; use another --state file`,
      );
    }
    return await readFile(target, "utf8");
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (codeOf(error) === "ENOENT") return undefined;
    throw new CliError("state", `cannot read state file ${shown}: ${reason(error)}`, {
      cause: error,
    });
  }
}

async function persist(target: string, shown: string, data: StateData): Promise<void> {
  const text = JSON.stringify(data, null, 2) + "\n";
  try {
    await writeFileAtomic(target, text, 0o600);
  } catch (error) {
    // writeFileAtomic's own message names the temp's directory; the state file is what matters.
    const cause = error instanceof CliError && error.cause !== undefined ? error.cause : error;
    throw new CliError("state", `cannot write state file ${shown}: ${reason(cause)}`, {
      cause: error,
    });
  }
}

async function requireDirectory(path: string): Promise<void> {
  const dir = dirname(resolve(path));
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch (error) {
    if (codeOf(error) !== "ENOENT" && codeOf(error) !== "ENOTDIR") {
      throw new CliError("state", `cannot use state file ${path}: ${reason(error)}`, {
        cause: error,
      });
    }
  }
  throw new CliError(
    "state",
    `cannot use state file ${path}: directory ${dir} does not exist; create it first`,
  );
}

/**
 * Parses and checks every field of a state file; any problem becomes one line naming the file,
 * what is wrong and what to do.
 */
export function parseState(text: string, path: string): StateData {
  const fix = `fix it, or run \`${COMMAND} state reset ${shellQuote(path)}\` to start again ` +
    `from <after>`;
  const bad = (what: string) =>
    new CliError("state", `state file ${path} is not a valid checkpoint: ${what}; ${fix}`);
  if (text.trim() === "") throw bad("it is empty");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(
      "state",
      `state file ${path} is not valid JSON (${(error as Error).message}); it may be truncated ` +
        `or hand-edited: ${fix}`,
      { cause: error },
    );
  }
  if (!isRecord(value)) throw bad("it is not a JSON object");
  if (value.version !== 1) {
    if (typeof value.version === "number") {
      throw new CliError(
        "state",
        `state file ${path} has version ${value.version}, which this version of ${COMMAND} ` +
          `does not understand; use a newer ${COMMAND}, or another --state file`,
      );
    }
    throw bad(`"version" must be 1`);
  }
  onlyKeys(value, ["version", "principal", "eventTypes", "cursors"], "", bad);
  if (typeof value.principal !== "string" || value.principal === "") {
    throw bad(`"principal" must be a non-empty string`);
  }
  const types = value.eventTypes;
  if (!Array.isArray(types) || types.length === 0) {
    throw bad(`"eventTypes" must be a non-empty array`);
  }
  types.forEach((type, i) => {
    if (typeof type !== "string" || type === "") {
      throw bad(`"eventTypes[${i}]" must be a non-empty string`);
    }
    if (types.indexOf(type) !== i) throw bad(`"eventTypes" lists ${type} twice`);
  });
  if (!isRecord(value.cursors)) throw bad(`"cursors" must be an object`);
  const cursors: Record<string, Cursor> = {};
  for (const [type, cursor] of Object.entries(value.cursors)) {
    const at = `"cursors.${type}`;
    if (!types.includes(type)) throw bad(`${at}" is not one of "eventTypes"`);
    if (!isRecord(cursor)) throw bad(`${at}" must be an object`);
    onlyKeys(cursor, ["after", "seen", "updatedAt"], `cursors.${type}.`, bad);
    if (typeof cursor.after !== "string" || cursor.after === "") {
      throw bad(`${at}.after" must be a non-empty string`);
    }
    // The cursor goes into every listing's `after`: a hand-edited or tampered value must not.
    if (toMicros(cursor.after) === undefined) {
      throw bad(`${at}.after" must be an RFC 3339 time, got ${JSON.stringify(cursor.after)}`);
    }
    if (!Array.isArray(cursor.seen)) throw bad(`${at}.seen" must be an array`);
    cursor.seen.forEach((id, i) => {
      if (typeof id !== "string" || id === "") {
        throw bad(`${at}.seen[${i}]" must be a non-empty string`);
      }
    });
    if (typeof cursor.updatedAt !== "string" || Number.isNaN(Date.parse(cursor.updatedAt))) {
      throw bad(`${at}.updatedAt" must be an ISO 8601 time`);
    }
    cursors[type] = { after: cursor.after, seen: [...cursor.seen], updatedAt: cursor.updatedAt };
  }
  return { version: 1, principal: value.principal, eventTypes: [...types].sort(), cursors };
}

function checkJob(data: StateData, path: string, principal: string, types: string[]): void {
  const discard = `run \`${COMMAND} state reset ${shellQuote(path)}\` to discard its progress`;
  if (data.principal !== principal) {
    throw new CliError(
      "state",
      `state file ${path} belongs to principal ${data.principal}, not ${principal}; use another ` +
        `--state file for this principal (or ${discard})`,
    );
  }
  if (data.eventTypes.join(",") !== types.join(",")) {
    throw new CliError(
      "state",
      `state file ${path} tracks event types ${data.eventTypes.join(",")}, not ` +
        `${types.join(",")}; use one --state file per set of event types (or ${discard})`,
    );
  }
}

function onlyKeys(
  value: Record<string, unknown>,
  allowed: string[],
  prefix: string,
  bad: (what: string) => Error,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw bad(`unknown field "${prefix}${key}"`);
  }
  for (const key of allowed) {
    if (!(key in value)) throw bad(`missing field "${prefix}${key}"`);
  }
}

/**
 * Whether a whole-file reset may delete this text: a checkpoint (valid or not), an empty file, or
 * one zeroed by a crash. A JSON Lines file (whose first line parses on its own) is not one; a
 * checkpoint's first line is a bare `{`, or, when hand-compacted, the whole (perhaps truncated)
 * object.
 */
function looksLikeState(text: string): boolean {
  if (/^[\0\s]*$/.test(text)) return true;
  try {
    const value = JSON.parse(text);
    return isRecord(value) && "version" in value && "principal" in value;
  } catch {
    // Not JSON as a whole: decided by its first line below.
  }
  const start = text.replace(/^\uFEFF/, "").trimStart();
  if (!start.startsWith("{")) return false;
  try {
    JSON.parse(start.split("\n", 1)[0]);
    return false;
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// The lock

interface LockInfo {
  pid: number;
  hostname: string;
  startedAt: string;
}

interface HeldLock {
  path: string;
  key: string;
  text: string;
  heartbeat: ReturnType<typeof setInterval>;
}

/** Locks this process holds (by absolute path): a second open of the same file is refused. */
const heldLocks = new Set<string>();

async function acquireLock(
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
 */
async function assertStillHeld(lock: HeldLock, shown: string): Promise<void> {
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
    const [raw, info] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    return { raw, info: parseLock(raw), mtimeMs: info.mtimeMs };
  } catch (error) {
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

async function releaseLock(lock: HeldLock): Promise<void> {
  clearInterval(lock.heartbeat);
  heldLocks.delete(lock.key);
  try {
    // Only our own lock: never one another run took over (e.g. after judging us gone).
    if ((await readFile(lock.path, "utf8")) === lock.text) await unlink(lock.path);
  } catch {
    // Already gone; or unreadable, in which case it is not ours to delete.
  }
}

async function describeLock(path: string, shown: string): Promise<string> {
  const found = await readLock(path);
  if (found === undefined) return "none";
  const verdict = judgeLock(found, shown);
  if (verdict.stale) return `stale (${verdict.reason}); the next run takes it over`;
  return found.info
    ? `held by pid ${found.info.pid} on ${found.info.hostname} since ${found.info.startedAt}`
    : `unreadable (a run may be starting)`;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
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

/** `path` as a POSIX shell word, for commands suggested in messages. */
function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}
