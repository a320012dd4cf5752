/**
 * The `state` command: `state show FILE` prints what a `--state` checkpoint holds and who holds
 * its lock; `state reset FILE [event_type]` clears it (or one event type's cursor) under the lock;
 * `state skip FILE event_type id --reason TEXT` passes a poison file on purpose, under the lock.
 * It takes no option but `--help` (and `--reason` for `skip`): anything else is a usage error,
 * never silently ignored.
 *
 * @example
 * ```ts
 * await command.main(["show", "auth.state.json"], {});
 * await command.main(["reset", "auth.state.json", "AUDIT_LOG"], {});
 * await command.main(["skip", "auth.state.json", "AUTH_LOG", "eclf_1", "--reason", "ticket 12"], {});
 * ```
 */
import { parseArgs } from "node:util";
import { MAX_GONE_PER_TYPE, MAX_SKIPPED_PER_TYPE, parseState } from "../checkpoint/format.ts";
import { openStateStore } from "../checkpoint/locate.ts";
import { MAX_SKIP_REASON, resetState, skipFile } from "../checkpoint/model.ts";
import { CliError } from "../errors.ts";
import type { Env } from "../settings.ts";
import { writeStdout } from "../runtime.ts";
import { escapeControls } from "../terminal.ts";
import type { Command } from "./contract.ts";

// The reset and the skip are the checkpoint's (model, format and lock); re-exported so that a
// caller of this command's actions needs one import.
export { resetState, skipFile };

const HELP = `Usage: oai-compliance-logs state show <state_file>
       oai-compliance-logs state reset <state_file> [event_type]
       oai-compliance-logs state skip <state_file> <event_type> <id> --reason TEXT

Reads or changes a --state checkpoint, without contacting the API. <state_file> is a local
file, or a checkpoint in a store (s3://BUCKET/KEY, az://CONTAINER/KEY), with the credentials
a run takes.

Commands:
  show <state_file>     print the principal, the event types (\`all\`: the route's, resolved at
                        each run), each event type's cursor (the time the next run lists from,
                        and the ids already delivered at it), the files found gone and skipped,
                        and who holds the lock
  reset <state_file>    delete the state file: every event type starts again from <after>; also
                        clears a corrupt file, but never deletes a file that is not a state file
  reset <state_file> <event_type>
                        forget only that event type's cursor
  skip <state_file> <event_type> <id> --reason TEXT
                        pass file <id> on purpose (one no destination can take, such as one whose
                        SHA-256 never matches): later runs do not download it and move the
                        checkpoint past it as if delivered; \`show\` lists it with TEXT
                        A reset or skip is refused while another live run holds <state_file>.lock.

The checkpoint keeps the most recent ${MAX_GONE_PER_TYPE} gone and ${MAX_SKIPPED_PER_TYPE} skipped files per event type.

Options:
  --reason TEXT         why the file is skipped (required by skip; one line)
  -h, --help            this help

Exit codes: 0 done, 1 missing, invalid or locked state file, 2 usage error.`;

const ACTIONS = "state show FILE, state reset FILE [event_type], " +
  "state skip FILE EVENT_TYPE ID --reason TEXT";

/** What `state`'s arguments ask for. */
export type StateRequest =
  | { action: "help" }
  | { action: "show"; path: string }
  | { action: "reset"; path: string; eventType?: string }
  | { action: "skip"; path: string; eventType: string; id: string; reason: string };

function usage(message: string): CliError {
  return new CliError("usage", `${message} (see 'oai-compliance-logs state --help')`);
}

/**
 * Parses the words after `state`. Any option but `-h`/`--help` (and `--reason` for `skip`) is a
 * usage error, as are a missing or unknown action, a missing file and extra arguments; `--` ends
 * the options (for a file whose name starts with `-`).
 *
 * @example
 * ```ts
 * parseStateArgs(["reset", "s.json", "AUTH_LOG"]); // { action: "reset", path: "s.json", eventType: "AUTH_LOG" }
 * parseStateArgs(["show", "s.json", "--gzip"]); // throws a usage error
 * ```
 */
export function parseStateArgs(argv: string[]): StateRequest {
  const { tokens, positionals } = parseArgs({
    args: argv,
    options: { help: { type: "boolean", short: "h" }, reason: { type: "string" } },
    allowPositionals: true,
    // Not strict: the runtimes word their own refusals differently; this command words its own.
    strict: false,
    tokens: true,
  });
  let help = false;
  let reason: string | undefined;
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (token.name === "reason") {
      if (typeof token.value !== "string") throw usage("--reason needs a value");
      reason = token.value;
      continue;
    }
    if (token.name !== "help") throw usage(`state does not take ${token.rawName}`);
    if (token.inlineValue) throw usage(`${token.rawName} takes no value`);
    help = true;
  }
  if (help) return { action: "help" };
  const [action, path, ...rest] = positionals;
  if (action !== "show" && action !== "reset" && action !== "skip") {
    throw usage(
      action === undefined
        ? `missing what to do: ${ACTIONS}`
        : `unknown state command '${action}': ${ACTIONS}`,
    );
  }
  if (path === undefined || path === "") throw usage(`state ${action} needs a state file`);
  if (action !== "skip" && reason !== undefined) {
    throw usage(`state ${action} does not take --reason`);
  }
  const extra = rest.slice({ show: 0, reset: 1, skip: 2 }[action]);
  if (extra.length > 0) {
    throw usage(`too many arguments for state ${action}: '${extra.join(" ")}'`);
  }
  if (action === "show") return { action, path };
  if (action === "reset") return { action, path, eventType: rest[0] };
  const [eventType, id] = rest;
  if (eventType === undefined || eventType === "" || id === undefined || id === "") {
    throw usage("state skip needs <state_file> <event_type> <id> --reason TEXT");
  }
  return { action, path, eventType, id, reason: checkReason(reason) };
}

/** The skip's reason: required, one line, short enough to keep the state file small. */
function checkReason(reason: string | undefined): string {
  if (reason === undefined) {
    throw usage("state skip needs --reason TEXT: say why the file is passed (it is recorded)");
  }
  if (reason.trim() === "") throw usage("--reason must not be empty");
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(reason)) throw usage("--reason must be one line of text");
  if (reason.length > MAX_SKIP_REASON) {
    throw usage(`--reason is longer than ${MAX_SKIP_REASON} characters`);
  }
  return reason;
}

/**
 * A human-readable description of the state file at `path` and of its lock, for `state show`.
 * The file's contents reach a terminal: control characters (newlines too) are shown escaped.
 *
 * @example
 * ```ts
 * console.log(await showState("s.json"));
 * // state file  s.json
 * // principal   ws-1
 * // event types AUTH_LOG
 * // AUTH_LOG    after 2026-07-01T00:00:00Z (1 id already delivered at it)
 * // ...
 * ```
 */
export async function showState(path: string, env: Env = {}): Promise<string> {
  const store = await openStateStore(path, env);
  const found = await store.read();
  if (found === undefined) throw new CliError("state", `state file ${path} does not exist`);
  const data = parseState(found.text, path);
  // With `all`, the types that have anything recorded (the route's list may grow).
  const types = data.eventTypes === "all"
    ? [...new Set([data.cursors, data.gone, data.skipped].flatMap(Object.keys))].sort()
    : data.eventTypes;
  const width = Math.max("event types".length, ...types.map((t) => t.length)) + 2;
  const row = (label: string, value: string) =>
    escapeControls(label, "").padEnd(width) + escapeControls(value, "");
  const out = [
    row("state file", path),
    row("principal", data.principal),
    row(
      "event types",
      data.eventTypes === "all"
        ? "all (the route's types, resolved at each run)"
        : data.eventTypes.join(", "),
    ),
  ];
  if (data.eventTypes === "all" && types.length === 0) {
    out.push(row("", "no event type started: the next run lists each from its <after> argument"));
  }
  for (const type of types) {
    const cursor = data.cursors[type];
    if (!cursor) {
      out.push(row(type, "not started: the next run lists from its <after> argument"));
    } else {
      const ids = cursor.seen.length === 1 ? "1 id" : `${cursor.seen.length} ids`;
      out.push(row(type, `after ${cursor.after} (${ids} already delivered at it)`));
      out.push(row("", `updated ${cursor.updatedAt}`));
      if (cursor.seen.length > 0) out.push(row("", `delivered: ${cursor.seen.join(", ")}`));
    }
    for (const gone of data.gone[type] ?? []) {
      out.push(row(
        "",
        `gone: ${gone.id} (end_time ${gone.end_time}, ${gone.reason}, found ${gone.found_at})`,
      ));
    }
    for (const skip of data.skipped[type] ?? []) {
      out.push(row("", `skipped: ${skip.id} (${skip.skipped_at}: ${skip.reason})`));
    }
  }
  out.push(row("lock", await store.describeLock()));
  return out.join("\n");
}

const encoder = new TextEncoder();

export const command: Command = {
  name: "state",
  summary: "show, reset or skip a file in a --state checkpoint",
  help: HELP,
  async main(argv, env) {
    const request = parseStateArgs(argv);
    switch (request.action) {
      case "help":
        return writeStdout(encoder.encode(HELP + "\n"));
      case "show":
        return writeStdout(encoder.encode((await showState(request.path, env)) + "\n"));
      case "reset":
        return resetState(request.path, request.eventType, env);
      case "skip": {
        const { path, eventType, id, reason } = request;
        await skipFile(path, eventType, id, reason, env);
        const line = `recorded in ${path}: later runs pass ${eventType} file ${id} without ` +
          `downloading it`;
        return writeStdout(encoder.encode(escapeControls(line, "") + "\n"));
      }
    }
  },
};
