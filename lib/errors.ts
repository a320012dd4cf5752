/**
 * Every error type of the tool, and what each means for the process: errors are values with a
 * kind (usage, auth, API, network, data integrity, I/O, state, interrupted), which `exitCodeOf`
 * maps to an exit code; the reporter renders one of them as the run's one fatal line.
 *
 * @example
 * ```ts
 * throw new CliError("usage", "limit must be an integer from 1 to 100, got '500'");
 * ```
 */
export type ErrorKind =
  | "usage"
  | "auth"
  | "api"
  | "network"
  | "integrity"
  | "io"
  | "state"
  | "interrupted"
  /** The run finished, but some listed files were no longer available (exit 4). */
  | "incomplete";

export type StopSignal = "SIGINT" | "SIGTERM";

export interface CliErrorOptions {
  cause?: unknown;
  /** Extra lines printed after the message (e.g. a pretty-printed JSON error body). */
  detail?: string;
  /** For "interrupted": the signal that stopped the run. */
  signal?: StopSignal;
  /**
   * A help text shown instead of the `error:` line, e.g. a command's help when it was given no
   * arguments at all (the message is then only for logs).
   */
  help?: string;
}

export class CliError extends Error {
  /** Extra lines printed after the message (e.g. a pretty-printed JSON error body). */
  readonly detail?: string;
  /** For "interrupted": the signal that stopped the run. */
  readonly signal?: StopSignal;
  /** Shown instead of the `error:` line when set (see `CliErrorOptions.help`). */
  readonly help?: string;

  constructor(readonly kind: ErrorKind, message: string, options: CliErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "CliError";
    this.detail = options.detail;
    this.signal = options.signal;
    this.help = options.help;
  }
}

/**
 * A failure that another attempt may cure (a reset connection, a 503, a stall); carries the
 * server's `Retry-After` when it sent one. Retried by `lib/retry.ts`; final once retries run out.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./retry.ts";
 * declare const response: Response;
 * const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
 * throw new TransientError("api", "HTTP error 429 while listing logs:", retryAfterMs);
 * ```
 */
export class TransientError extends CliError {
  constructor(
    kind: ErrorKind,
    message: string,
    readonly retryAfterMs?: number,
    options: { cause?: unknown; detail?: string } = {},
  ) {
    super(kind, message, options);
  }
}

/**
 * Why a listed file is gone: `expired` (its `end_time` is near the API's retention), `unavailable`
 * (the API said it is no longer available, though it is not near retention) or `unexplained`
 * (a plain 404: not recorded as gone, the run fails).
 */
export type GoneReason = "expired" | "unavailable" | "unexplained";

/**
 * A listed file the API no longer has: its download answered 404 on every try.
 *
 * @example
 * ```ts
 * const endTime = "2026-07-01T00:00:00Z";
 * throw new GoneFileError({ id: "eclf_1", event_type: "AUTH_LOG", end_time: endTime }, "expired",
 *   "HTTP error 404 while downloading log id=eclf_1:");
 * ```
 */
export class GoneFileError extends CliError {
  constructor(
    readonly file: { id: string; event_type: string; end_time: string },
    readonly reason: GoneReason,
    message: string,
    options: { detail?: string; cause?: unknown } = {},
  ) {
    super("api", message, options);
    this.name = "GoneFileError";
  }
}

/** Raised when stdout's reader has gone away (e.g. `| head`): the run ends quietly with exit 0. */
export class BrokenPipeError extends Error {
  constructor() {
    super("stdout closed by its reader");
    this.name = "BrokenPipeError";
  }
}

/** A body's decoder failed on the bytes themselves (not gzip, cut short, bad checksum). */
export class DecodeError extends Error {
  constructor(coding: string, cause: unknown) {
    super(`the body is not valid ${coding} (${cause instanceof Error ? cause.message : cause})`, {
      cause,
    });
    this.name = "DecodeError";
  }
}

/**
 * The usage error of a command given no arguments at all: its help text instead of an error line.
 *
 * @example
 * ```ts
 * declare const argv: string[];
 * if (argv.length === 0) throw helpInstead("Usage: oai-compliance-logs list ...");
 * ```
 */
export function helpInstead(help: string): CliError {
  return new CliError("usage", "no arguments given", { help });
}

/**
 * A usage error whose one line points at the help (exit 2).
 *
 * @example
 * ```ts
 * throw usage("--gzip is an option of --output-dir");
 * ```
 */
export function usage(message: string): CliError {
  return new CliError("usage", `${message} (see --help)`);
}

/**
 * Exit codes: 2 for usage errors (as the scripts), 130/143 for signals, 4 for a run that finished
 * without some listed files the API no longer had, 1 for everything else.
 */
export function exitCodeFor(error: CliError): number {
  if (error.kind === "usage") return 2;
  if (error.kind === "incomplete") return 4;
  if (error.kind === "interrupted") return error.signal === "SIGTERM" ? 143 : 130;
  return 1;
}

/** How a run ended, for its summary. */
export type RunStatus = "ok" | "failed" | "interrupted" | "incomplete";

/**
 * The status and exit code a run ends with after `failure` (undefined when it succeeded). A closed
 * stdout (`| head`) is how pipelines end: status ok, exit 0. Anything not a `CliError` is 1.
 *
 * @example
 * ```ts
 * const { status, exitCode } = outcomeOf(new CliError("usage", "no event type")); // "failed", 2
 * ```
 */
export function outcomeOf(failure: unknown): { status: RunStatus; exitCode: number } {
  if (failure === undefined || failure instanceof BrokenPipeError) {
    return { status: "ok", exitCode: 0 };
  }
  if (failure instanceof CliError) {
    const status = failure.kind === "interrupted" || failure.kind === "incomplete"
      ? failure.kind
      : "failed";
    return { status, exitCode: exitCodeFor(failure) };
  }
  return { status: "failed", exitCode: 1 };
}

/**
 * The exit code of a process that stops with `error` (see `outcomeOf`).
 *
 * @example
 * ```ts
 * import process from "node:process";
 * declare const error: unknown;
 * process.exit(exitCodeOf(error));
 * ```
 */
export function exitCodeOf(error: unknown): number {
  return outcomeOf(error).exitCode;
}

/** The message of any thrown value, without a stack trace. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * Linux errno numbers of the file system errors worth naming. Deno reports some I/O errors only
 * as `File too large (os error 27)`, without a `code`.
 */
const ERRNO_CODES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  5: "EIO",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  27: "EFBIG",
  28: "ENOSPC",
  30: "EROFS",
  122: "EDQUOT",
};

/**
 * The `code` of a Node-style system error ("ENOENT", ...), if it has one.
 *
 * @example
 * ```ts
 * codeOf(Object.assign(new Error("no such file"), { code: "ENOENT" })); // "ENOENT"
 * codeOf(new Error("No such file or directory (os error 2)")); // "ENOENT"
 * ```
 */
export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  const errno = /\(os error (\d+)\)/.exec(messageOf(error))?.[1];
  return errno === undefined ? undefined : ERRNO_CODES[Number(errno)];
}

/** Each error's plain words, and for those a user can cure, what to do. */
const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on device (ENOSPC); free some space or write elsewhere",
  EDQUOT: "disk quota exceeded (EDQUOT); free some space or raise the quota",
  EROFS: "read-only file system (EROFS); choose a writable destination",
  EFBIG: "file too large (EFBIG); raise the file size limit (ulimit -f)",
  ENOTDIR: "a path component is not a directory",
  EISDIR: "is a directory",
  EEXIST: "already exists",
  EIO: "input/output error",
};

/**
 * A short, runtime-independent description of a file system error.
 *
 * @example
 * ```ts
 * declare const error: unknown;
 * const path = "out/AUTH_LOG.jsonl";
 * throw new CliError("io", `cannot write ${path}: ${reason(error)}`);
 * ```
 */
export function reason(error: unknown): string {
  const code = codeOf(error);
  const text = code ? REASONS[code] : undefined;
  if (text) return text.includes(`(${code})`) ? text : `${text} (${code})`;
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * No run of this many consecutive characters of a secret may appear in output: long enough that
 * ordinary text never matches by chance, short enough that a truncated echo is still caught.
 */
export const REDACT_WINDOW = 16;

/** Every `REDACT_WINDOW`-character substring of every registered secret (and its escaped forms). */
const windows = new Set<string>();
/** Secrets (or escaped forms) shorter than the window: replaced where they appear whole. */
const shortSecrets = new Set<string>();

/**
 * The forms in which output can carry `secret`: as is, JSON-escaped (once, or twice when a JSON
 * body is quoted in a JSON log line), and percent-encoded with either case of hex digit. A key is
 * limited to characters that all of these leave unchanged (see `readKey`); a proxy password is not.
 */
function formsOf(secret: string): Set<string> {
  const json = (s: string) => JSON.stringify(s).slice(1, -1);
  const percent = encodeURIComponent(secret);
  return new Set([
    secret,
    json(secret),
    json(json(secret)),
    percent,
    percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
  ]);
}

/**
 * Registers a value (the API key, a proxy password) that must never appear in anything the tool
 * prints: afterwards `redact` hides any run of `REDACT_WINDOW` or more of its characters.
 *
 * @example
 * ```ts
 * registerSecret("sk-proj-0123456789abcdefghij");
 * redact("got sk-proj-0123456789abcd...") // "got ***..."
 * ```
 */
export function registerSecret(secret: string): void {
  if (!secret) return;
  for (const form of formsOf(secret)) {
    if (form.length < REDACT_WINDOW) shortSecrets.add(form);
    for (let i = 0; i + REDACT_WINDOW <= form.length; i++) {
      windows.add(form.slice(i, i + REDACT_WINDOW));
    }
  }
}

/**
 * `text` with every maximal run covered by windows of a registered secret replaced by `***`, and
 * every short secret replaced whole: a last guard on all output paths, run on each stderr line.
 *
 * @example
 * ```ts
 * registerSecret("sk-abcdefghijklmnopqrstuvwxyz");
 * redact("key=sk-abcdefghijklmnopq!") // "key=***!"
 * ```
 */
export function redact(text: string): string {
  let out = text;
  if (windows.size > 0 && out.length >= REDACT_WINDOW) out = redactWindows(out);
  for (const secret of shortSecrets) {
    if (out.includes(secret)) out = out.split(secret).join("***");
  }
  return out;
}

/** One pass of a sliding window; overlapping or touching matches merge into one `***`. */
function redactWindows(text: string): string {
  let result = "";
  let copied = 0;
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0; i + REDACT_WINDOW <= text.length; i++) {
    if (!windows.has(text.slice(i, i + REDACT_WINDOW))) continue;
    if (runStart >= 0 && i <= runEnd) {
      runEnd = i + REDACT_WINDOW;
      continue;
    }
    if (runStart >= 0) {
      result += text.slice(copied, runStart) + "***";
      copied = runEnd;
    }
    runStart = i;
    runEnd = i + REDACT_WINDOW;
  }
  if (runStart < 0) return text;
  return result + text.slice(copied, runStart) + "***" + text.slice(runEnd);
}

/**
 * `value` with `redact` applied to every string inside it (arrays and plain objects walked):
 * lets a JSON log line be redacted before it is serialized, so `***` never splits an escape.
 *
 * @example
 * ```ts
 * declare const body: string;
 * JSON.stringify(redactValues({ detail: body })); // valid JSON, no secret in `detail`
 * ```
 */
export function redactValues(value: unknown): unknown {
  if (typeof value === "string") return redact(value);
  if (Array.isArray(value)) return value.map(redactValues);
  if (
    value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype
  ) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValues(v)]));
  }
  return value;
}
