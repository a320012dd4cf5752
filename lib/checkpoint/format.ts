/**
 * The `--state` file on disk: a JSON object naming the principal and the event types of one job,
 * with one cursor per event type (the `after` to list from next and the ids already delivered that
 * such a listing may return again). This module reads it, checks every field (any problem becomes
 * one line naming the file, what is wrong and what to do) and writes it atomically, owner-only.
 *
 * @example
 * const data = await loadState("auth.state.json");
 * data.cursors.AUTH_LOG?.after // "2026-07-01T00:00:00Z"
 */
import { realpath, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { writeFileAtomic } from "../atomic.ts";
import { CliError, codeOf, reason } from "../errors.ts";
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

export interface StateData {
  version: 1;
  principal: string;
  /** The event types this file tracks, sorted; a run must ask for exactly this set. */
  eventTypes: string[];
  /** Keyed by event type; an event type without a cursor has not delivered anything yet. */
  cursors: Record<string, Cursor>;
}

/** A state file is a few kilobytes; anything this large was never one. */
const MAX_STATE_BYTES = 16 * 1024 * 1024;

/**
 * The file that `path` names, following a symlink: writing by rename must replace the link's
 * target, not the link. `path` itself if it cannot be resolved (e.g. it does not exist yet).
 *
 * @example
 * const target = await stateTarget("link.json"); // "/real/dir/state.json"
 */
export function stateTarget(path: string): Promise<string> {
  return realpath(path).catch(() => path);
}

/**
 * Reads and validates the state file at `path`; a missing file is a `CliError` of kind "state".
 *
 * @example
 * const data = await loadState("s.json");
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
 * const text = await readStateText(await stateTarget(path), path);
 */
export function readStateText(target: string, shown: string): Promise<string | undefined> {
  return readSmallFile(target, MAX_STATE_BYTES, `state file ${shown}`);
}

/**
 * Replaces the state file `target` (named `shown` in messages) with `data`, atomically (temp
 * file, fsync, rename) and owner-only.
 *
 * @example
 * await writeState(target, "s.json", { version: 1, principal: "ws-1", eventTypes: ["AUTH_LOG"], cursors: {} });
 */
export async function writeState(target: string, shown: string, data: StateData): Promise<void> {
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

/**
 * Refuses a state file whose directory does not exist: the message says to create it, rather
 * than the write failing later with ENOENT.
 *
 * @example
 * await requireDirectory("state/auth.json"); // throws unless ./state is a directory
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
 * Parses and checks every field of a state file; any problem becomes one line naming the file,
 * what is wrong and what to do.
 *
 * @example
 * parseState('{"version":1,"principal":"ws-1","eventTypes":["AUTH_LOG"],"cursors":{}}', "s.json")
 */
export function parseState(text: string, path: string): StateData {
  const fix = `fix it, or run \`${resetCommand(path)}\` to start again from <after>`;
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

/**
 * Refuses a state file kept for another job: another principal, or another set of event types
 * (`types` sorted, as the file keeps them).
 *
 * @example
 * checkJob(data, "s.json", "ws-1", ["AUDIT_LOG", "AUTH_LOG"]);
 */
export function checkJob(data: StateData, path: string, principal: string, types: string[]): void {
  const discard = `run \`${resetCommand(path)}\` to discard its progress`;
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
 *
 * @example
 * looksLikeState('{\n  "version": 1,')       // true: a truncated checkpoint
 * looksLikeState('{"id":"e1"}\n{"id":"e2"}\n') // false: a downloaded log
 */
export function looksLikeState(text: string): boolean {
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
