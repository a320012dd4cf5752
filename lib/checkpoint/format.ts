/**
 * The `--state` file on disk: a JSON object naming the principal and the event types of one job
 * (a list, or `all`: the route's types, resolved at each run), with one cursor per event type (the
 * `after` to list from next and the ids already delivered that such a listing may return again),
 * and per event type the files found gone and the files the operator skipped. This module reads it
 * (version 2, and version 1 as earlier versions wrote it), checks every field (any problem becomes
 * one line naming the file, what is wrong and what to do) and writes it (always version 2)
 * atomically, owner-only.
 *
 * @example
 * ```ts
 * const data = await loadState("auth.state.json");
 * data.cursors.AUTH_LOG?.after; // "2026-07-01T00:00:00Z"
 * ```
 */
import { realpath, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { writeFileAtomic } from "../atomic.ts";
import { CliError, codeOf, reason } from "../errors.ts";
import { LEGACY_ALL_EVENT_TYPES } from "../event_types.ts";
import { toMicros } from "../time.ts";
import { COMMAND, isRecord, readSmallFile, resetCommand } from "./_common.ts";

export interface Cursor {
  /** The `after` value to send on the next listing. */
  after: string;
  /** Ids already delivered that a listing with this `after` may return again (boundary ids). */
  seen: string[];
  /** ISO time of the last advance. */
  updatedAt: string;
}

/** A listed file the API no longer had (its download answered 404): the cursor passed it. */
export interface GoneEntry {
  id: string;
  event_type: string;
  end_time: string;
  /** ISO time it was found gone. */
  found_at: string;
  reason: "expired" | "unavailable";
}

/** A file the operator chose to pass (`state skip`): a run passes it without downloading it. */
export interface SkipEntry {
  id: string;
  /** The operator's reason, as given to `--reason`. */
  reason: string;
  /** ISO time of the skip. */
  skipped_at: string;
}

/** The event types of a job: named ones (sorted), or `all` (the route's, resolved at each run). */
export type JobEventTypes = string[] | "all";

/** The version this tool writes; it also reads version 1. */
export const STATE_VERSION = 2;

/**
 * The gone and skipped files kept per event type: the most recent ones, so that the file stays
 * small after a long backfill of expired files. An older skip dropped this way is one the cursor
 * has long passed (it was recorded before a run that then passed it).
 */
export const MAX_GONE_PER_TYPE = 100;
export const MAX_SKIPPED_PER_TYPE = 100;

export interface StateData {
  version: 2;
  principal: string;
  /** The event types this file tracks (sorted) or `all`; a run must ask for exactly this. */
  eventTypes: JobEventTypes;
  /** Keyed by event type; an event type without a cursor has not delivered anything yet. */
  cursors: Record<string, Cursor>;
  /** Keyed by event type, oldest first. */
  gone: Record<string, GoneEntry[]>;
  /** Keyed by event type, oldest first. */
  skipped: Record<string, SkipEntry[]>;
}

/** A state file is a few kilobytes; anything this large was never one. */
const MAX_STATE_BYTES = 16 * 1024 * 1024;

/** What an event type's name looks like (as `<event_type>` accepts it). */
const EVENT_TYPE = /^[A-Z][A-Z0-9_]*$/;

/**
 * Whether `type` may be tracked by a job of `types`: one of the named ones, or, for `all`, any
 * well-formed event type name (the route's list may grow).
 *
 * @example
 * ```ts
 * tracksType("all", "COSTS"); // true
 * tracksType(["AUTH_LOG"], "COSTS"); // false
 * ```
 */
export function tracksType(types: JobEventTypes, type: string): boolean {
  return types === "all" ? EVENT_TYPE.test(type) : types.includes(type);
}

/**
 * A job's event types as messages show them: `all`, or the names joined by commas.
 *
 * @example
 * ```ts
 * describeTypes(["AUDIT_LOG", "AUTH_LOG"]); // "AUDIT_LOG,AUTH_LOG"
 * ```
 */
export function describeTypes(types: JobEventTypes): string {
  return types === "all" ? "all" : types.join(",");
}

/**
 * An empty state for a new job.
 *
 * @example
 * ```ts
 * emptyState("ws-1", "all");
 * ```
 */
export function emptyState(principal: string, eventTypes: JobEventTypes): StateData {
  return { version: 2, principal, eventTypes, cursors: {}, gone: {}, skipped: {} };
}

/**
 * The file that `path` names, following a symlink: writing by rename must replace the link's
 * target, not the link. `path` itself if it cannot be resolved (e.g. it does not exist yet).
 *
 * @example
 * ```ts
 * const target = await stateTarget("link.json"); // "/real/dir/state.json"
 * ```
 */
export function stateTarget(path: string): Promise<string> {
  return realpath(path).catch(() => path);
}

/**
 * Reads and validates the state file at `path`; a missing file is a `CliError` of kind "state".
 *
 * @example
 * ```ts
 * const data = await loadState("s.json");
 * ```
 */
export async function loadState(path: string): Promise<StateData> {
  const text = await readStateText(path, path);
  if (text === undefined) {
    throw new CliError("state", `state file ${path} does not exist`);
  }
  return parseState(text, path);
}

/**
 * The text of the state file `target` (named `shown` in messages), or undefined if it does not
 * exist. A directory, a file too large to be a state file, or a read error is a `CliError`.
 *
 * @example
 * ```ts
 * declare const path: string;
 * const text = await readStateText(await stateTarget(path), path);
 * ```
 */
export function readStateText(target: string, shown: string): Promise<string | undefined> {
  return readSmallFile(target, MAX_STATE_BYTES, `state file ${shown}`);
}

/**
 * Replaces the state file `target` (named `shown` in messages) with `data`, atomically (temp
 * file, fsync, rename) and owner-only.
 *
 * @example
 * ```ts
 * await writeState("s.json", "s.json", emptyState("ws-1", ["AUTH_LOG"]));
 * ```
 */
export async function writeState(target: string, shown: string, data: StateData): Promise<void> {
  await writeStateText(target, shown, formatState(data));
}

/**
 * A checkpoint as its file holds it: indented JSON and a final newline.
 *
 * @example
 * ```ts
 * formatState(emptyState("ws-1", "all")); // '{\n  "version": 2,\n  "principal": "ws-1", ...'
 * ```
 */
export function formatState(data: StateData): string {
  return JSON.stringify(data, null, 2) + "\n";
}

/**
 * Replaces the state file `target` (named `shown` in messages) with `text`, as `writeState`.
 *
 * @example
 * ```ts
 * await writeStateText("s.json", "s.json", formatState(emptyState("ws-1", ["AUTH_LOG"])));
 * ```
 */
export async function writeStateText(target: string, shown: string, text: string): Promise<void> {
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

/**
 * Refuses a state file whose directory does not exist: the message says to create it, rather
 * than the write failing later with ENOENT.
 *
 * @example
 * ```ts
 * await requireDirectory("state/auth.json"); // throws unless ./state is a directory
 * ```
 */
export async function requireDirectory(path: string): Promise<void> {
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
 * What to do about a state file that cannot be used, agreeing with what `state reset` will do:
 * reset only what it may delete (see `looksLikeState`); anything else is probably not a state file
 * at all (a log named by mistake), which the user must look at.
 *
 * @example
 * ```ts
 * corruptAdvice("hello", "s.json"); // "it does not look like a state file: ..."
 * ```
 */
export function corruptAdvice(text: string, path: string): string {
  if (looksLikeState(text)) {
    return `fix it, or run \`${resetCommand(path)}\` to start again from <after>`;
  }
  return `it does not look like an ${COMMAND} state file (another file named by mistake?): ` +
    `check the --state path, or delete ${path} by hand if you are sure`;
}

/**
 * Whether `text` (a state file `parseState` accepted) is of version 1.
 *
 * @example
 * ```ts
 * isVersion1('{"version":1,"principal":"ws-1","eventTypes":["AUTH_LOG"],"cursors":{}}'); // true
 * ```
 */
export function isVersion1(text: string): boolean {
  return (JSON.parse(text) as { version: unknown }).version === 1;
}

/**
 * Parses and checks every field of a state file (version 1 or 2); any problem becomes one line
 * naming the file, what is wrong and what to do. A version 1 file comes back as version 2 with
 * no gone or skipped files.
 *
 * @example
 * ```ts
 * parseState('{"version":1,"principal":"ws-1","eventTypes":["AUTH_LOG"],"cursors":{}}', "s.json");
 * ```
 */
export function parseState(text: string, path: string): StateData {
  const fix = corruptAdvice(text, path);
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
  const version = value.version;
  if (version !== 1 && version !== 2) {
    if (typeof version === "number") {
      throw new CliError(
        "state",
        `state file ${path} has version ${version}, which this version of ${COMMAND} ` +
          `does not understand; use a newer ${COMMAND}, or another --state file`,
      );
    }
    throw bad(`"version" must be 1 or 2`);
  }
  const base = ["version", "principal", "eventTypes", "cursors"];
  onlyKeys(value, version === 1 ? base : [...base, "gone", "skipped"], "", bad);
  if (typeof value.principal !== "string" || value.principal === "") {
    throw bad(`"principal" must be a non-empty string`);
  }
  const types = parseTypes(value.eventTypes, version, bad);
  const tracked = (field: string, type: string) => {
    if (types === "all") {
      if (!EVENT_TYPE.test(type)) throw bad(`"${field}.${type}" is not an event type name`);
    } else if (!types.includes(type)) {
      throw bad(`"${field}.${type}" is not one of "eventTypes"`);
    }
  };
  if (!isRecord(value.cursors)) throw bad(`"cursors" must be an object`);
  const cursors: Record<string, Cursor> = {};
  for (const [type, cursor] of Object.entries(value.cursors)) {
    tracked("cursors", type);
    cursors[type] = parseCursor(cursor, `cursors.${type}`, bad);
  }
  const data = emptyState(value.principal, types);
  data.cursors = cursors;
  if (version === 2) {
    data.gone = parseLists(value.gone, "gone", tracked, bad, (entry, at) => {
      onlyKeys(entry, ["id", "event_type", "end_time", "found_at", "reason"], `${at}.`, bad);
      const gone = {
        id: text1(entry.id, `${at}.id`, bad),
        event_type: text1(entry.event_type, `${at}.event_type`, bad),
        end_time: rfc3339(entry.end_time, `${at}.end_time`, bad),
        found_at: isoTime(entry.found_at, `${at}.found_at`, bad),
        reason: entry.reason as GoneEntry["reason"],
      };
      if (gone.reason !== "expired" && gone.reason !== "unavailable") {
        throw bad(`"${at}.reason" must be "expired" or "unavailable"`);
      }
      return gone;
    });
    for (const [type, list] of Object.entries(data.gone)) {
      list.forEach((entry, i) => {
        if (entry.event_type !== type) {
          throw bad(`"gone.${type}[${i}].event_type" must be ${type}`);
        }
      });
    }
    data.skipped = parseLists(value.skipped, "skipped", tracked, bad, (entry, at) => {
      onlyKeys(entry, ["id", "reason", "skipped_at"], `${at}.`, bad);
      return {
        id: text1(entry.id, `${at}.id`, bad),
        reason: text1(entry.reason, `${at}.reason`, bad),
        skipped_at: isoTime(entry.skipped_at, `${at}.skipped_at`, bad),
      };
    });
  }
  return data;
}

type Bad = (what: string) => Error;

function parseTypes(value: unknown, version: 1 | 2, bad: Bad): JobEventTypes {
  if (version === 2 && value === "all") return "all";
  const must = version === 1 ? "a non-empty array" : `"all" or a non-empty array`;
  if (!Array.isArray(value) || value.length === 0) throw bad(`"eventTypes" must be ${must}`);
  value.forEach((type, i) => {
    if (typeof type !== "string" || type === "") {
      throw bad(`"eventTypes[${i}]" must be a non-empty string`);
    }
    if (value.indexOf(type) !== i) throw bad(`"eventTypes" lists ${type} twice`);
  });
  return [...(value as string[])].sort();
}

function parseCursor(cursor: unknown, at: string, bad: Bad): Cursor {
  if (!isRecord(cursor)) throw bad(`"${at}" must be an object`);
  onlyKeys(cursor, ["after", "seen", "updatedAt"], `${at}.`, bad);
  if (typeof cursor.after !== "string" || cursor.after === "") {
    throw bad(`"${at}.after" must be a non-empty string`);
  }
  // The cursor goes into every listing's `after`: a hand-edited or tampered value must not.
  rfc3339(cursor.after, `${at}.after`, bad);
  if (!Array.isArray(cursor.seen)) throw bad(`"${at}.seen" must be an array`);
  cursor.seen.forEach((id, i) => {
    if (typeof id !== "string" || id === "") {
      throw bad(`"${at}.seen[${i}]" must be a non-empty string`);
    }
  });
  const updatedAt = isoTime(cursor.updatedAt, `${at}.updatedAt`, bad);
  return { after: cursor.after, seen: [...cursor.seen], updatedAt };
}

/** A `{ TYPE: [entry, ...] }` object, each entry checked by `parse`. */
function parseLists<T>(
  value: unknown,
  field: string,
  tracked: (field: string, type: string) => void,
  bad: Bad,
  parse: (entry: Record<string, unknown>, at: string) => T,
): Record<string, T[]> {
  if (!isRecord(value)) throw bad(`"${field}" must be an object`);
  const lists: Record<string, T[]> = {};
  for (const [type, list] of Object.entries(value)) {
    tracked(field, type);
    if (!Array.isArray(list)) throw bad(`"${field}.${type}" must be an array`);
    lists[type] = list.map((entry, i) => {
      const at = `${field}.${type}[${i}]`;
      if (!isRecord(entry)) throw bad(`"${at}" must be an object`);
      return parse(entry, at);
    });
  }
  return lists;
}

function text1(value: unknown, at: string, bad: Bad): string {
  if (typeof value !== "string" || value === "") throw bad(`"${at}" must be a non-empty string`);
  return value;
}

function rfc3339(value: unknown, at: string, bad: Bad): string {
  if (typeof value !== "string" || toMicros(value) === undefined) {
    throw bad(`"${at}" must be an RFC 3339 time, got ${JSON.stringify(value)}`);
  }
  return value;
}

function isoTime(value: unknown, at: string, bad: Bad): string {
  if (typeof value !== "string" || Number.isNaN(Date.parse(value))) {
    throw bad(`"${at}" must be an ISO 8601 time`);
  }
  return value;
}

/**
 * Refuses a state file kept for another job: another principal, or other event types (`types`
 * sorted, as the file keeps them, or `all`). A file written for `all` before the routes were told
 * apart (`version1`, holding `LEGACY_ALL_EVENT_TYPES`) belongs to an `all` job: returns true then,
 * and the caller keeps it as `all` from now on.
 *
 * @example
 * ```ts
 * declare const data: StateData;
 * checkJob(data, "s.json", "ws-1", ["AUDIT_LOG", "AUTH_LOG"]);
 * ```
 */
export function checkJob(
  data: StateData,
  path: string,
  principal: string,
  types: JobEventTypes,
  version1 = false,
): boolean {
  const discard = `run \`${resetCommand(path)}\` to discard its progress`;
  if (data.principal !== principal) {
    throw new CliError(
      "state",
      `state file ${path} belongs to principal ${data.principal}, not ${principal}; use another ` +
        `--state file for this principal (or ${discard})`,
    );
  }
  const held = describeTypes(data.eventTypes);
  if (held === describeTypes(types)) return false;
  const legacyAll = [...LEGACY_ALL_EVENT_TYPES].sort().join(",");
  if (types === "all" && version1 && held === legacyAll) return true;
  throw new CliError(
    "state",
    `state file ${path} tracks event types ${held}, not ${describeTypes(types)}; use one ` +
      `--state file per set of event types (or ${discard})`,
  );
}

function onlyKeys(
  value: Record<string, unknown>,
  allowed: string[],
  prefix: string,
  bad: Bad,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw bad(`unknown field "${prefix}${key}"`);
  }
  for (const key of allowed) {
    if (!(key in value)) throw bad(`missing field "${prefix}${key}"`);
  }
}

/** The top-level fields of a checkpoint; a JSON object with two of them is taken for one. */
const STATE_FIELDS = ["version", "principal", "eventTypes", "cursors", "gone", "skipped"];

/**
 * Whether a whole-file reset may delete this text: a checkpoint (valid or not: a JSON object with
 * at least two of a checkpoint's fields), an empty file, or one zeroed by a crash. A JSON Lines
 * file (whose first line parses on its own) is not one; a checkpoint's first line is a bare `{`,
 * or, when hand-compacted, the whole (perhaps truncated) object.
 *
 * @example
 * ```ts
 * looksLikeState('{\n  "version": 1,'); // true: a truncated checkpoint
 * looksLikeState('{"id":"e1"}\n{"id":"e2"}\n'); // false: a downloaded log
 * ```
 */
export function looksLikeState(text: string): boolean {
  if (/^[\0\s]*$/.test(text)) return true;
  try {
    const value = JSON.parse(text);
    return isRecord(value) && STATE_FIELDS.filter((field) => field in value).length >= 2;
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
