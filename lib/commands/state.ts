/**
 * The `state` command: `state show FILE` prints what a `--state` checkpoint holds and who holds
 * its lock; `state reset FILE [event_type]` clears it (or one event type's cursor) under the lock.
 * It takes no option but `--help`: anything else is a usage error, never silently ignored.
 *
 * @example
 * await command.main(["show", "auth.state.json"], {});
 * await command.main(["reset", "auth.state.json", "AUDIT_LOG"], {});
 */
import { parseArgs } from "node:util";
import { loadState, stateTarget } from "../checkpoint/format.ts";
import { describeLock } from "../checkpoint/lock.ts";
import { resetState } from "../checkpoint/model.ts";
import { CliError } from "../errors.ts";
import { writeStdout } from "../runtime.ts";
import { escapeControls } from "../terminal.ts";
import type { Command } from "./contract.ts";

// The reset itself is the checkpoint's (model, format and lock); re-exported so that a caller of
// this command's two actions needs one import.
export { resetState };

const HELP = `Usage: oai-compliance-logs state show <state_file>
       oai-compliance-logs state reset <state_file> [event_type]

Reads or clears a --state checkpoint, without contacting the API.

Commands:
  show <state_file>     print the principal, each event type's cursor (the time the next run
                        lists from, and the ids already delivered at it) and who holds the lock
  reset <state_file>    delete the state file: every event type starts again from <after>; also
                        clears a corrupt file, but never deletes a file that is not a state file
  reset <state_file> <event_type>
                        forget only that event type's cursor
                        A reset is refused while another live run holds <state_file>.lock.

Options:
  -h, --help            this help

Exit codes: 0 done, 1 missing, invalid or locked state file, 2 usage error.`;

const ACTIONS = "state show FILE, state reset FILE [event_type]";

/** What `state`'s arguments ask for. */
export type StateRequest =
  | { action: "help" }
  | { action: "show"; path: string }
  | { action: "reset"; path: string; eventType?: string };

function usage(message: string): CliError {
  return new CliError("usage", `${message} (see 'oai-compliance-logs state --help')`);
}

/**
 * Parses the words after `state`. Any option but `-h`/`--help` is a usage error, as are a missing
 * or unknown action, a missing file and extra arguments; `--` ends the options (for a file whose
 * name starts with `-`).
 *
 * @example
 * parseStateArgs(["reset", "s.json", "AUTH_LOG"]) // { action: "reset", path: "s.json", eventType: "AUTH_LOG" }
 * parseStateArgs(["show", "s.json", "--gzip"])    // throws a usage error
 */
export function parseStateArgs(argv: string[]): StateRequest {
  const { tokens, positionals } = parseArgs({
    args: argv,
    options: { help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    // Not strict: the runtimes word their own refusals differently; this command words its own.
    strict: false,
    tokens: true,
  });
  let help = false;
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (token.name !== "help") throw usage(`state does not take ${token.rawName}`);
    if (token.inlineValue) throw usage(`${token.rawName} takes no value`);
    help = true;
  }
  if (help) return { action: "help" };
  const [action, path, ...rest] = positionals;
  if (action !== "show" && action !== "reset") {
    throw usage(
      action === undefined
        ? `missing what to do: ${ACTIONS}`
        : `unknown state command '${action}': ${ACTIONS}`,
    );
  }
  if (path === undefined || path === "") throw usage(`state ${action} needs a state file`);
  const extra = action === "show" ? rest : rest.slice(1);
  if (extra.length > 0) {
    throw usage(`too many arguments for state ${action}: '${extra.join(" ")}'`);
  }
  return action === "show" ? { action, path } : { action, path, eventType: rest[0] };
}

/**
 * A human-readable description of the state file at `path` and of its lock, for `state show`.
 * The file's contents reach a terminal: control characters (newlines too) are shown escaped.
 *
 * @example
 * console.log(await showState("s.json"));
 * // state file  s.json
 * // principal   ws-1
 * // event types AUTH_LOG
 * // AUTH_LOG    after 2026-07-01T00:00:00Z (1 id already delivered at it)
 * // ...
 */
export async function showState(path: string): Promise<string> {
  const data = await loadState(path);
  const width = Math.max("event types".length, ...data.eventTypes.map((t) => t.length)) + 2;
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
  out.push(row("lock", await describeLock(await stateTarget(path), path)));
  return out.join("\n");
}

const encoder = new TextEncoder();

export const command: Command = {
  name: "state",
  summary: "show or reset a --state checkpoint",
  help: HELP,
  async main(argv) {
    const request = parseStateArgs(argv);
    switch (request.action) {
      case "help":
        return writeStdout(encoder.encode(HELP + "\n"));
      case "show":
        return writeStdout(encoder.encode((await showState(request.path)) + "\n"));
      case "reset":
        return resetState(request.path, request.eventType);
    }
  },
};
