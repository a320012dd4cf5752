/**
 * Helpers shared by the checkpoint's modules (format, lock, model) and by nothing else.
 */

/** The program's name as messages show it, in advice such as "run `... state reset FILE`". */
export const COMMAND = "oai-compliance-logs";

/**
 * The command that discards the state file at `path`, quoted for a POSIX shell, as messages
 * suggest it.
 *
 * @example
 * resetCommand("my state.json") // "oai-compliance-logs state reset 'my state.json'"
 */
export function resetCommand(path: string): string {
  return `${COMMAND} state reset ${shellQuote(path)}`;
}

/** `path` as a POSIX shell word, for commands suggested in messages. */
function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * Whether a parsed JSON value is an object (not null, not an array).
 *
 * @example
 * isRecord(JSON.parse('{"pid":1}')) // true
 * isRecord(JSON.parse("[]"))        // false
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
