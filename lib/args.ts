/**
 * The command line: parsed and validated into a `Config` before any request is made. No I/O here
 * except reading the key file named by `COMPLIANCE_API_KEY_FILE`.
 */
import { parseArgs } from "node:util";
import { closeSync, openSync, readSync } from "node:fs";
import { CliError, messageOf } from "./errors.ts";
import { parseDuration, parseTimeArg, type TimeArg } from "./time.ts";
import { isLiteralLoopback } from "./urls.ts";

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

export type Output =
  | { kind: "stdout" }
  /** `stream`: the path is a FIFO or character device, written in place (see output_checks.ts). */
  | { kind: "file"; path: string; stream?: boolean }
  | { kind: "dir"; path: string; gzip: boolean };

export interface Config {
  principal: string;
  scope: "workspaces" | "organizations";
  eventTypes: string[];
  limit: number;
  /** Undefined only when a checkpoint is expected to supply the cursor. */
  after?: TimeArg;
  before?: TimeArg;
  apiBase: URL;
  /** The Compliance API key. Never print a Config. */
  key: string;
  output: Output;
  statePath?: string;
  concurrency: number;
  retries: number;
  timeoutMs: number;
  backoffMs: number;
  maxRetryWaitMs: number;
  list: boolean;
  follow: boolean;
  intervalMs: number;
  settleMs: number;
  verbosity: "quiet" | "normal" | "verbose";
  logFormat: "plain" | "json";
  warnings: string[];
}

export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "state"; action: "show" | "reset"; path: string; eventType?: string }
  | { kind: "run"; config: Config };

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  "api-base": { type: "string" },
  output: { type: "string", short: "o" },
  "output-dir": { type: "string" },
  gzip: { type: "boolean" },
  state: { type: "string" },
  concurrency: { type: "string" },
  retries: { type: "string" },
  timeout: { type: "string" },
  backoff: { type: "string" },
  "max-retry-wait": { type: "string" },
  after: { type: "string" },
  before: { type: "string" },
  "event-type": { type: "string" },
  limit: { type: "string" },
  list: { type: "boolean" },
  follow: { type: "boolean" },
  interval: { type: "string" },
  settle: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
  "log-format": { type: "string" },
} as const;

export const USAGE =
  `Usage: oai-compliance-logs [options] <workspace_or_org_id> <event_type> <limit> <after>
       oai-compliance-logs [options] --after <time> <workspace_or_org_id> <event_type> [limit]
       oai-compliance-logs [options] --state <file> <workspace_or_org_id> <event_type> [limit]
       oai-compliance-logs state show|reset <state_file> [event_type]

Downloads OpenAI Compliance Logs Platform files and writes their JSON Lines to stdout (or files).
The key is read from COMPLIANCE_API_KEY, or from the file named by COMPLIANCE_API_KEY_FILE.
A key has 20 or more letters, digits and - _ . ~; anything else is refused as truncated or mangled.

Arguments:
  workspace_or_org_id  ChatGPT workspace id, or API Platform organization id (org-...)
  event_type           AUTH_LOG, AUDIT_LOG, ...; several as AUTH_LOG,AUDIT_LOG; or 'all'
  limit                files per page, 1..100 (default 100 when omitted)
  after                ISO 8601 time with zone, a date (UTC midnight), or relative: 90m, 24h, 7d;
                       optional once --state holds a cursor; older than ~30 days only warns

Options:
  --after TIME           start time (replaces the <after> positional)
  --before TIME          only files whose end_time is earlier than TIME (sent to the API)
  --limit N              files per page (replaces the <limit> positional; default 100)
  --event-type LIST      event types (replaces the <event_type> positional)
  -o, --output FILE      write to FILE (appears only complete) instead of stdout
  --output-dir DIR       one file per log: DIR/<event_type>/<YYYY-MM-DD>/<id>.jsonl, exactly once
  --gzip                 with --output-dir, write .jsonl.gz
  --state FILE           durable checkpoint, one cursor per event type: resume where the last
                         run stopped (read or reset it with 'state show|reset FILE')
  --concurrency N        parallel downloads, output stays in order (default 4)
  --retries N            retries for rate limits, 5xx and network errors (default 5)
  --timeout SECONDS      connect and idle-body timeout (default 30)
  --backoff SECONDS      first retry delay, doubled each retry, with jitter (default 1)
  --max-retry-wait SECS  cap on any single wait, including Retry-After (default 300)
  --list                 print one JSON line per log file instead of downloading
  --follow               keep polling for new files (needs --state), until SIGINT/SIGTERM
  --interval DURATION    time between polls with --follow (default 5m)
  --settle DURATION      skip files whose end_time is more recent, until a later poll
                         (default 2m with --follow, else 0)
                         Durations: 30s, 5m, 2h, 7d or seconds (fractions round to whole ms);
                         each at most 2147483 s (~24.8 days, what timers hold), else refused
  --api-base URL         API base (default ${DEFAULT_API_BASE}, or COMPLIANCE_API_BASE)
  --log-format FORMAT    plain (default) or json: one JSON object per event on stderr (page,
                         file, retry, warning, error, summary); a live line when stderr is a tty
  -q, --quiet            no progress on stderr, only errors
  -v, --verbose          more detail on stderr
  -h, --help             this help
  -V, --version          print the version

Examples:
  export COMPLIANCE_API_KEY=<KEY>
  oai-compliance-logs f7f33107-5fb9-4ee1-8922-3eae76b5b5a0 AUTH_LOG 100 "$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)" > output.jsonl
  oai-compliance-logs org-p13k3klgno5cqxbf0q8hpgrk AUTH_LOG 100 2026-07-01 -o output.jsonl
  oai-compliance-logs --after 24h --state state.json --output-dir logs/ org-p13k3klgno5cqxbf0q8hpgrk AUTH_LOG,AUDIT_LOG
  oai-compliance-logs --follow --after 7d --state s.json --output-dir logs/ --log-format json org-p13k3klgno5cqxbf0q8hpgrk all

Environment:
  COMPLIANCE_API_KEY, COMPLIANCE_API_KEY_FILE  the key, or a file holding it (trimmed)
  COMPLIANCE_API_BASE    same as --api-base
  HTTPS_PROXY, NO_PROXY  proxy for HTTPS (http://user:password@host:port) and hosts to reach direct
  NODE_EXTRA_CA_CERTS    PEM file of extra CAs to trust (DENO_CERT also works under Deno)
  NO_COLOR               no colour on stderr

Exit codes: 0 done, 1 API/network/integrity/file error, 2 usage error, 130/143 interrupted.`;

function usage(message: string): CliError {
  return new CliError("usage", `${message} (see --help)`);
}

function parseInteger(text: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw usage(`${name} must be an integer from ${min} to ${max}; got '${text}'`);
  }
  return Number(text);
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

/** Splits and checks event types; unknown but well-formed ones produce a warning. */
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

/** Parses argv (without the program name) and the environment into a command. */
export function parseCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  now: Date = new Date(),
): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw usage(messageOf(error).split("\n")[0]);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return { kind: "help" };
  if (v.version) return { kind: "version" };
  if (positionals[0] === "state") return parseStateCommand(positionals.slice(1));
  if (positionals.length === 0) throw new CliError("usage", USAGE);

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
  if (afterText === undefined && v.state === undefined) {
    throw usage("missing <after>: give a start time as <after> or --after (or use --state)");
  }
  if (v.output !== undefined && v["output-dir"] !== undefined) {
    throw usage("-o/--output and --output-dir cannot be used together");
  }
  if (v.gzip && v["output-dir"] === undefined) throw usage("--gzip needs --output-dir");
  if (v.follow && v.output !== undefined) {
    // The -o file appears only when a run ends, and a follow run does not end.
    throw usage("--follow cannot write to -o FILE; use stdout or --output-dir");
  }
  if (v.follow && v.state === undefined) {
    throw usage("--follow needs --state FILE to remember where it is between polls");
  }
  if (v.list && (v["output-dir"] !== undefined || v.follow)) {
    throw usage(
      "--list only prints the listing; it cannot be combined with --output-dir or --follow",
    );
  }
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
  const output: Output = v["output-dir"] !== undefined
    ? { kind: "dir", path: v["output-dir"], gzip: Boolean(v.gzip) }
    : v.output !== undefined
    ? { kind: "file", path: v.output }
    : { kind: "stdout" };
  for (
    const [name, value] of [["-o/--output", v.output], ["--output-dir", v["output-dir"]], [
      "--state",
      v.state,
    ]] as const
  ) {
    if (value === "") throw usage(`${name} needs a path`);
  }
  const seconds = (text: string | undefined, name: string, fallback: number) =>
    text === undefined ? fallback : positiveDuration(text, name);

  return {
    kind: "run",
    config: {
      principal,
      scope: principal.startsWith("org-") ? "organizations" : "workspaces",
      eventTypes,
      limit,
      after,
      before,
      apiBase,
      key: readKey(env),
      output,
      statePath: v.state,
      concurrency: v.concurrency === undefined
        ? 4
        : parseInteger(v.concurrency, "--concurrency", 1, 64),
      retries: v.retries === undefined ? 5 : parseInteger(v.retries, "--retries", 0, 100),
      timeoutMs: seconds(v.timeout, "--timeout", 30_000),
      backoffMs: seconds(v.backoff, "--backoff", 1_000),
      maxRetryWaitMs: seconds(v["max-retry-wait"], "--max-retry-wait", 300_000),
      list: Boolean(v.list),
      follow: Boolean(v.follow),
      intervalMs: seconds(v.interval, "--interval", 300_000),
      settleMs: v.settle !== undefined
        ? parseDuration(v.settle, "--settle")
        : (v.follow ? 120_000 : 0),
      verbosity: v.quiet ? "quiet" : v.verbose ? "verbose" : "normal",
      logFormat,
      warnings,
    },
  };
}

function positiveDuration(text: string, name: string): number {
  const ms = parseDuration(text, name);
  if (ms <= 0) throw usage(`${name} must be greater than zero; got '${text}'`);
  return ms;
}

function parseStateCommand(rest: string[]): Command {
  const [action, path, eventType, ...extra] = rest;
  if ((action !== "show" && action !== "reset") || !path || extra.length > 0) {
    throw usage("state commands are: state show FILE, state reset FILE [event_type]");
  }
  return { kind: "state", action, path, eventType };
}
