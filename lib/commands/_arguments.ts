/**
 * The parsing that `run` and `list` share: options tables read strictly (an option a command does
 * not take is a usage error), the principal, event types, page size, times, the API base, the
 * key, and the one check that a run knows where to start. No I/O here except reading the key file
 * named by `COMPLIANCE_API_KEY_FILE`.
 *
 * @example
 * const { values, positionals } = parseOptions(argv, { ...SELECTION_OPTIONS, gzip: { type: "boolean" } });
 * const selection = parseSelection(values, positionals, env);
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { closeSync, openSync, readSync } from "node:fs";
import { CliError, messageOf } from "../errors.ts";
import { parseDuration, parseTimeArg, type TimeArg } from "../time.ts";
import { isLiteralLoopback } from "../urls.ts";
import type { Env } from "./contract.ts";

export const DEFAULT_API_BASE = "https://api.chatgpt.com/v1/compliance";
export const KNOWN_EVENT_TYPES = [
  "AUTH_LOG",
  "AUDIT_LOG",
  "APP_LOG",
  "APP_AUTH_LOG",
  "CODEX_LOG",
  "CODEX_SECURITY_LOG",
  "CONVERSATION_MESSAGE",
  "CUSTOM_AGENTS_LOG",
];
/** The API's maximum page size, used when `<limit>` is omitted. */
export const MAX_LIMIT = 100;

/**
 * A usage error whose one line points at the help.
 *
 * @example
 * throw usage("--gzip needs --output-dir");
 */
export function usage(message: string): CliError {
  return new CliError("usage", `${message} (see --help)`);
}

/**
 * An integer option or argument from `min` to `max`, else a usage error naming it.
 *
 * @example
 * parseInteger("4", "--concurrency", 1, 64) // 4
 */
export function parseInteger(text: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw usage(`${name} must be an integer from ${min} to ${max}; got '${text}'`);
  }
  return Number(text);
}

/**
 * A duration option that must be more than zero (see `parseDuration` for the forms).
 *
 * @example
 * positiveDuration("5m", "--interval") // 300000
 */
export function positiveDuration(text: string, name: string): number {
  const ms = parseDuration(text, name);
  if (ms <= 0) throw usage(`${name} must be greater than zero; got '${text}'`);
  return ms;
}

/**
 * Checks a workspace or organization id is one safe URL path segment: only URL-unreserved
 * characters (which no encoding changes), not `.` or `..` (which URL parsing resolves away), and of
 * a sane length.
 *
 * @example
 * validatePrincipal("org-p13k3klgno5cqxbf0q8hpgrk") // returned as is
 * validatePrincipal("..") // throws a usage error
 */
export function validatePrincipal(id: string): string {
  if (!/^[A-Za-z0-9._~-]{1,200}$/.test(id) || /^\.+$/.test(id) || id.includes("..")) {
    throw usage(
      `workspace_or_org_id must be a workspace id or an org- id: 1 to 200 letters, digits, ` +
        `'-', '_', '.' or '~', without '..'; got '${id}'`,
    );
  }
  return id;
}

/**
 * Splits and checks event types; unknown but well-formed ones produce a warning.
 *
 * @example
 * parseEventTypes("AUTH_LOG,AUDIT_LOG", warnings) // ["AUTH_LOG", "AUDIT_LOG"]
 */
export function parseEventTypes(text: string, warnings: string[]): string[] {
  if (text.toLowerCase() === "all") return [...KNOWN_EVENT_TYPES];
  const types = text.split(",").map((t) => t.trim());
  for (const type of types) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(type)) {
      throw usage(
        `event_type must look like AUTH_LOG (upper case, digits, underscores); got '${type}'`,
      );
    }
    if (!KNOWN_EVENT_TYPES.includes(type)) {
      warnings.push(
        `warning: event type ${type} is not one of the known types (${
          KNOWN_EVENT_TYPES.join(", ")
        }); asking the API anyway`,
      );
    }
  }
  return [...new Set(types)];
}

/** The API base URL; plain http only to loopback, where the key cannot leave the machine. */
export function parseApiBase(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--api-base must be a URL like ${DEFAULT_API_BASE}; got '${text}'`);
  }
  // Plain http only where no network sits in between: a name such as 127.evil.com is not.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLiteralLoopback(url))) {
    throw usage(
      `--api-base must use https (plain http only to a literal loopback address: ` +
        `127.x.x.x, [::1] or localhost); got '${text}'`,
    );
  }
  if (url.search || url.hash || url.username || url.password) {
    throw usage(`--api-base must not carry a query, fragment or credentials; got '${text}'`);
  }
  url.pathname = url.pathname.replace(/\/+$/, "");
  return url;
}

/**
 * A key file's text: UTF-8, or UTF-16 with a byte order mark (what Windows PowerShell 5.1's
 * `Out-File` and `>` write), without the BOM.
 */
export function decodeKeyFile(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder("utf-16le").decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder("utf-16be").decode(bytes);
  return new TextDecoder().decode(bytes); // drops a UTF-8 BOM
}

/** A key file is read only this far: a key is short, and `/dev/zero` is endless. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;
/** Real keys are far longer; a shorter one is truncated, and would make redaction garble output. */
export const MIN_KEY_LENGTH = 20;
/** Far above any real key: keeps the redaction tables (see `registerSecret`) small. */
export const MAX_KEY_LENGTH = 4096;
/**
 * What a key is made of. JSON-escaping and percent-encoding leave these characters unchanged, so
 * redaction of the key as it is covers every form in which output could carry it.
 */
const KEY_CHARS = /^[A-Za-z0-9._~-]+$/;

/**
 * Reads at most `MAX_KEY_FILE_BYTES` (+1, to tell a full file from a longer one) through a handle.
 * Too large or NUL bytes (`/dev/zero`, a binary picked by mistake) is a usage error.
 */
function readKeyFile(path: string): string {
  const buffer = new Uint8Array(MAX_KEY_FILE_BYTES + 1);
  let length = 0;
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      length += n;
      if (n === 0 || length === buffer.length) break;
    }
  } catch (error) {
    throw new CliError(
      "usage",
      `cannot read COMPLIANCE_API_KEY_FILE '${path}': ${
        // The error names the path and the reason, never the contents.
        (error as NodeJS.ErrnoException).code ?? messageOf(error)}`,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const text = length > MAX_KEY_FILE_BYTES ? undefined : decodeKeyFile(buffer.subarray(0, length));
  if (text === undefined || text.includes("\0")) {
    throw new CliError(
      "usage",
      `COMPLIANCE_API_KEY_FILE '${path}' is not a key file: too large or binary`,
    );
  }
  return text;
}

/**
 * Refuses a key that cannot be real, without echoing it: too short (truncated), too long, or
 * holding a character no key has. `source` says where it was read from.
 */
function checkKey(key: string, source: string): string {
  if (key.length < MIN_KEY_LENGTH) {
    throw new CliError(
      "usage",
      `the Compliance API key from ${source} is shorter than ${MIN_KEY_LENGTH} characters and ` +
        `looks truncated; check how it was set`,
    );
  }
  if (key.length > MAX_KEY_LENGTH) {
    throw new CliError(
      "usage",
      `the Compliance API key from ${source} is longer than ${MAX_KEY_LENGTH} characters; ` +
        `check how it was set`,
    );
  }
  if (!KEY_CHARS.test(key)) {
    throw new CliError(
      "usage",
      `the Compliance API key from ${source} contains spaces, quotes or other characters a key ` +
        `cannot hold (only letters, digits, '-', '_', '.', '~'); check how it was set`,
    );
  }
  return key;
}

/**
 * The key from COMPLIANCE_API_KEY or the file COMPLIANCE_API_KEY_FILE names, trimmed and checked
 * to look like a real key (see `checkKey`).
 */
export function readKey(env: Record<string, string | undefined>): string {
  const fromEnv = env.COMPLIANCE_API_KEY?.trim();
  if (fromEnv) return checkKey(fromEnv, "COMPLIANCE_API_KEY");
  const path = env.COMPLIANCE_API_KEY_FILE;
  if (!path) {
    throw new CliError(
      "usage",
      "COMPLIANCE_API_KEY environment variable is required (or COMPLIANCE_API_KEY_FILE naming " +
        "a file that holds it), e.g. COMPLIANCE_API_KEY=<KEY> oai-compliance-logs " +
        "<workspace_or_org_id> <event_type> <limit> <after>",
    );
  }
  const key = readKeyFile(path).trim();
  if (!key) {
    throw new CliError("usage", `COMPLIANCE_API_KEY_FILE '${path}' is empty; put the key in it`);
  }
  return checkKey(key, `COMPLIANCE_API_KEY_FILE '${path}'`);
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The options both `run` and `list` take: what to list, from where, and how to report. */
export const SELECTION_OPTIONS = {
  help: { type: "boolean", short: "h" },
  "api-base": { type: "string" },
  state: { type: "string" },
  retries: { type: "string" },
  timeout: { type: "string" },
  backoff: { type: "string" },
  "max-retry-wait": { type: "string" },
  after: { type: "string" },
  before: { type: "string" },
  "event-type": { type: "string" },
  limit: { type: "string" },
  settle: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
  "log-format": { type: "string" },
} as const satisfies Options;

/**
 * `argv` read against one command's options table, strictly: an unknown option, or a value
 * missing, is a one-line usage error.
 *
 * @example
 * const { values, positionals } = parseOptions(["--quiet", "ws-1"], SELECTION_OPTIONS);
 */
export function parseOptions<T extends Options>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usage(messageOf(error).split("\n")[0]);
  }
}

/** What `run` and `list` both select and how: the listing, the client, the reporting. */
export interface Selection {
  principal: string;
  scope: "workspaces" | "organizations";
  eventTypes: string[];
  limit: number;
  /** Undefined only when a checkpoint is expected to supply the cursor. */
  after?: TimeArg;
  before?: TimeArg;
  apiBase: URL;
  /** The Compliance API key. Never print a Selection. */
  key: string;
  statePath?: string;
  retries: number;
  timeoutMs: number;
  backoffMs: number;
  maxRetryWaitMs: number;
  /** Files whose end_time is more recent are left for a later poll (0: none). */
  settleMs: number;
  verbosity: "quiet" | "normal" | "verbose";
  logFormat: "plain" | "json";
  /** Warnings found while parsing (e.g. an unknown event type), shown once the run reports. */
  warnings: string[];
}

type SelectionValues = {
  [K in keyof typeof SELECTION_OPTIONS]?: (typeof SELECTION_OPTIONS)[K]["type"] extends "boolean"
    ? boolean
    : string;
};

/**
 * The shared part of a `run` or `list` command line: the scripts' positionals
 * `<workspace_or_org_id> <event_type> <limit> <after>` (or their options), the times, the API
 * base and the key. `defaultSettleMs` is the command's default for `--settle`.
 *
 * @example
 * const { values, positionals } = parseOptions(argv, SELECTION_OPTIONS);
 * const selection = parseSelection(values, positionals, env, { defaultSettleMs: 0 });
 */
export function parseSelection(
  v: SelectionValues,
  positionals: string[],
  env: Env,
  options: { defaultSettleMs: number; now?: Date },
): Selection {
  const now = options.now ?? new Date();
  const warnings: string[] = [];
  const [principalArg, eventTypeArg, limitArg, afterArg, ...extra] = v["event-type"] !== undefined
    ? [positionals[0], v["event-type"], ...positionals.slice(1)]
    : positionals;
  if (extra.length > 0) throw usage(`too many arguments: '${extra.join(" ")}'`);
  if (eventTypeArg === undefined) throw usage("missing <event_type>");
  if (afterArg !== undefined && v.after !== undefined) {
    throw usage("give the start time either as <after> or as --after, not both");
  }
  if (v.limit !== undefined && limitArg !== undefined) {
    throw usage("give the page size either as <limit> or as --limit, not both");
  }
  const afterText = afterArg ?? v.after;
  if (v.state === undefined) requireStart(afterText, undefined, []);
  if (v.state === "") throw usage("--state needs a path");
  const logFormat = v["log-format"] ?? "plain";
  if (logFormat !== "plain" && logFormat !== "json") {
    throw usage(`--log-format must be plain or json; got '${logFormat}'`);
  }

  const principal = validatePrincipal(principalArg);
  const eventTypes = parseEventTypes(eventTypeArg, warnings);
  const limitText = limitArg ?? v.limit;
  const limit = limitText === undefined
    ? MAX_LIMIT
    : parseInteger(limitText, "limit", 1, MAX_LIMIT);
  const after = afterText === undefined ? undefined : parseTimeArg(afterText, "after", now);
  const before = v.before === undefined ? undefined : parseTimeArg(v.before, "--before", now);
  if (after && before && before.micros <= after.micros) {
    throw usage(`--before (${before.iso}) must be later than after (${after.iso})`);
  }
  const apiBase = parseApiBase(v["api-base"] ?? env.COMPLIANCE_API_BASE ?? DEFAULT_API_BASE);
  const seconds = (text: string | undefined, name: string, fallback: number) =>
    text === undefined ? fallback : positiveDuration(text, name);
  return {
    principal,
    scope: principal.startsWith("org-") ? "organizations" : "workspaces",
    eventTypes,
    limit,
    after,
    before,
    apiBase,
    key: readKey(env),
    statePath: v.state,
    retries: v.retries === undefined ? 5 : parseInteger(v.retries, "--retries", 0, 100),
    timeoutMs: seconds(v.timeout, "--timeout", 30_000),
    backoffMs: seconds(v.backoff, "--backoff", 1_000),
    maxRetryWaitMs: seconds(v["max-retry-wait"], "--max-retry-wait", 300_000),
    settleMs: v.settle !== undefined
      ? parseDuration(v.settle, "--settle")
      : options.defaultSettleMs,
    verbosity: v.quiet ? "quiet" : v.verbose ? "verbose" : "normal",
    logFormat,
    warnings,
  };
}

/**
 * The one check that every event type has somewhere to start: `<after>`, or else a checkpoint
 * cursor. `statePath` undefined: no `--state` at all; `cursorless` undefined: its file does not
 * exist yet; else the event types the checkpoint has no cursor for. A usage error otherwise.
 *
 * @example
 * requireStart(undefined, "s.json", ["AUDIT_LOG"]); // throws: no cursor for AUDIT_LOG yet
 */
export function requireStart(
  after: string | TimeArg | undefined,
  statePath: string | undefined,
  cursorless: string[] | undefined,
): void {
  if (after !== undefined) return;
  if (statePath === undefined) {
    throw usage("missing <after>: give a start time as <after> or --after (or use --state)");
  }
  if (cursorless !== undefined && cursorless.length === 0) return;
  const why = cursorless === undefined
    ? "does not exist yet"
    : `has no cursor for ${cursorless.join(", ")} yet`;
  throw usage(
    `missing <after>: the state file ${statePath} ${why}; give a start time as <after> or ` +
      `--after for the first run`,
  );
}
