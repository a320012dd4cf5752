/**
 * The parsing that `run` and `list` share: their common options table (with its help), the
 * principal, event types (`all` resolved for the principal's route), page size, times, the API
 * base and the key, read into `CommandSettings` (lib/settings.ts). No I/O here except reading the
 * key file named by `COMPLIANCE_API_KEY_FILE`.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const { values, positionals } = parseOptions(["ws-1", "AUTH_LOG", "--after", "24h"], SHARED_OPTIONS);
 * const settings = parseCommandSettings(values, positionals, env, { defaultSettleMs: 0 });
 * ```
 */
import { closeSync, openSync, readSync } from "node:fs";
import { CliError, messageOf, usage } from "../errors.ts";
import {
  eventTypesOf,
  isKnownEventType,
  routeTypesLine,
  type Scope,
  scopeOf,
} from "../event_types.ts";
import { parseLocation, stateLocation } from "../locations.ts";
import { parseStateUrl } from "../checkpoint/object_state.ts";
import type { OptionTable, OptionValues } from "../options.ts";
import type { CommandSettings, Env } from "../settings.ts";
import { parseDuration, parseTimeArg } from "../time.ts";
import { isLiteralLoopback } from "../urls.ts";
import { startsOf } from "../start.ts";

export { parseOptions } from "../options.ts";
export { usage };

export const DEFAULT_API_BASE = "https://api.chatgpt.com/v1/compliance";
/** The API's maximum page size, used when `<limit>` is omitted. */
export const MAX_LIMIT = 100;
/** Retries beyond this only delay a failure that is not going away. */
export const MAX_RETRIES = 100;

/**
 * An integer option or argument from `min` to `max`, else a usage error naming it.
 *
 * @example
 * ```ts
 * parseInteger("4", "--concurrency", 1, 64) // 4
 * ```
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
 * ```ts
 * positiveDuration("5m", "--interval") // 300000
 * ```
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
 * ```ts
 * validatePrincipal("org-p13k3klgno5cqxbf0q8hpgrk") // returned as is
 * validatePrincipal("..") // throws a usage error
 * ```
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
 * Splits and checks event types; `all` is the route's own types. Unknown but well-formed ones
 * produce a warning (the reference's lists end in "etc."); they are still asked for.
 *
 * @example
 * ```ts
 * parseEventTypes("AUTH_LOG,AUDIT_LOG", "workspaces", []); // { all: false, eventTypes: [...] }
 * parseEventTypes("all", "organizations", []).eventTypes; // ["APP_LOG", "APP_AUTH_LOG", "COSTS"]
 * ```
 */
export function parseEventTypes(
  text: string,
  scope: Scope,
  warnings: string[],
): { all: boolean; eventTypes: string[] } {
  if (text.toLowerCase() === "all") return { all: true, eventTypes: [...eventTypesOf(scope)] };
  const types = text.split(",").map((t) => t.trim());
  for (const type of types) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(type)) {
      throw usage(
        `event_type must look like AUTH_LOG (upper case, digits, underscores); got '${type}'`,
      );
    }
    if (!isKnownEventType(type)) {
      warnings.push(
        `warning: event type ${type} is not one of the known types (${
          routeTypesLine(scope)
        }); asking the API anyway`,
      );
    }
  }
  return { all: false, eventTypes: [...new Set(types)] };
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
 * to look like a real key (see `checkKey`), with where it came from (for the hints of a refused
 * key). Both set: the variable wins, with a warning, so a 401 is never a guess between the two.
 */
export function readKey(env: Env, warnings: string[] = []): { key: string; source: string } {
  const fromEnv = env.COMPLIANCE_API_KEY?.trim();
  const path = env.COMPLIANCE_API_KEY_FILE;
  if (fromEnv) {
    if (path) {
      warnings.push(
        `warning: both COMPLIANCE_API_KEY and COMPLIANCE_API_KEY_FILE are set; using ` +
          `COMPLIANCE_API_KEY (unset one of them)`,
      );
    }
    return { key: checkKey(fromEnv, "COMPLIANCE_API_KEY"), source: "COMPLIANCE_API_KEY" };
  }
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
  const source = `COMPLIANCE_API_KEY_FILE '${path}'`;
  return { key: checkKey(key, source), source };
}

/**
 * The options both `run` and `list` take, with their help: what to list, from where, and how to
 * report. A command may reword an entry's help (`list` reads `--state` only).
 */
export const SHARED_OPTIONS = {
  after: { type: "string", arg: "TIME", help: "start time (replaces the <after> positional)" },
  before: {
    type: "string",
    arg: "TIME",
    help: "only files whose end_time is earlier than TIME (sent to the API)",
  },
  limit: {
    type: "string",
    arg: "N",
    help: "files per page (replaces the <limit> positional; default 100)",
  },
  "event-type": {
    type: "string",
    arg: "LIST",
    help: "event types (replaces the <event_type> positional)",
  },
  state: {
    type: "string",
    arg: "FILE",
    help: "durable checkpoint, one cursor per event type: resume where the last\n" +
      "run stopped (read it with 'state show FILE', clear it with 'state reset FILE');\n" +
      "a local file, or s3://BUCKET/KEY or az://CONTAINER/KEY (locked by a lease)",
  },
  settle: {
    type: "string",
    arg: "DURATION",
    help: "leave files whose end_time is more recent for a later run (default 0)",
  },
  retries: {
    type: "string",
    arg: "N",
    help: `retries for rate limits, 5xx and network errors, 0..${MAX_RETRIES} (default 5)`,
  },
  timeout: { type: "string", arg: "SECONDS", help: "connect and idle-body timeout (default 30)" },
  backoff: {
    type: "string",
    arg: "SECONDS",
    help: "first retry delay, doubled each retry, with jitter (default 1)",
  },
  "max-retry-wait": {
    type: "string",
    arg: "SECS",
    help: "cap on any single wait, including Retry-After (default 300)",
  },
  "api-base": {
    type: "string",
    arg: "URL",
    help: `API base (default ${DEFAULT_API_BASE}, or COMPLIANCE_API_BASE)`,
  },
  "log-format": {
    type: "string",
    arg: "FORMAT",
    help: "plain (default) or json: one JSON object per event on stderr",
  },
  quiet: { type: "boolean", short: "q", help: "no progress on stderr, only errors" },
  verbose: { type: "boolean", short: "v", help: "more detail on stderr" },
  help: { type: "boolean", short: "h", help: "this help" },
} as const satisfies OptionTable;

/** The arguments section both commands' help shows (types per route included). */
export const ARGUMENTS_HELP = `Arguments:
  workspace_or_org_id  ChatGPT workspace id (a UUID), or API Platform organization id (org-...)
  event_type           one type, several as AUTH_LOG,AUDIT_LOG, or 'all' (the route's types):
                       ${routeTypesLine("workspaces")};
                       ${routeTypesLine("organizations")}
  limit                files per page, 1..100 (default 100 when omitted)
  after                ISO 8601 time with zone, a date (UTC midnight), or relative to now:
                       30s, 90m, 24h, 7d, 2w; optional once --state holds a cursor`;

/**
 * The shared part of a `run` or `list` command line, as `CommandSettings`: the scripts'
 * positionals `<workspace_or_org_id> <event_type> <limit> <after>` (or their options), the times,
 * the API base and the key. `defaultSettleMs` is the command's default for `--settle`.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const { values, positionals } = parseOptions(["ws-1", "AUTH_LOG", "100", "24h"], SHARED_OPTIONS);
 * const settings = parseCommandSettings(values, positionals, env, { defaultSettleMs: 0 });
 * ```
 */
export function parseCommandSettings(
  v: OptionValues<typeof SHARED_OPTIONS>,
  positionals: string[],
  env: Env,
  options: {
    defaultSettleMs: number;
    now?: Date;
    downloadsPerMinute?: number;
    /** The command asks nothing of the API (`run --from-archive`): no key is read. */
    keyless?: boolean;
  },
): CommandSettings {
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
  if (v.state === "") throw usage("--state needs a path");
  const statePath = v.state === undefined ? undefined : stateLocation(v.state);
  // A checkpoint in a store: its URL's shape is checked here, its store only when opened.
  if (statePath !== undefined && parseLocation(statePath).kind === "url") parseStateUrl(statePath);
  const afterText = afterArg ?? v.after;
  const logFormat = v["log-format"] ?? "plain";
  if (logFormat !== "plain" && logFormat !== "json") {
    throw usage(`--log-format must be plain or json; got '${logFormat}'`);
  }

  const principal = validatePrincipal(principalArg);
  const scope = scopeOf(principal);
  const { all, eventTypes } = parseEventTypes(eventTypeArg, scope, warnings);
  // Without a checkpoint, <after> is the only start there is: refused before the key is read.
  if (statePath === undefined) startsOf(eventTypes, afterText, undefined, { all });
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
  const { key, source } = options.keyless ? { key: "", source: "" } : readKey(env, warnings);
  return {
    selection: { principal, scope, eventTypes, all, after },
    listing: {
      limit,
      before: before?.iso,
      settleMs: v.settle !== undefined
        ? parseDuration(v.settle, "--settle")
        : options.defaultSettleMs,
    },
    client: {
      apiBase,
      key,
      keySource: source,
      policy: {
        retries: v.retries === undefined ? 5 : parseInteger(v.retries, "--retries", 0, MAX_RETRIES),
        backoffMs: seconds(v.backoff, "--backoff", 1_000),
        maxWaitMs: seconds(v["max-retry-wait"], "--max-retry-wait", 300_000),
      },
      timeoutMs: seconds(v.timeout, "--timeout", 30_000),
      downloadsPerMinute: options.downloadsPerMinute ?? 50,
    },
    report: { verbosity: v.quiet ? "quiet" : v.verbose ? "verbose" : "normal", logFormat },
    statePath,
    warnings,
  };
}
