/**
 * Errors as values with a kind; `main.ts` maps the kind to an exit code and prints one line.
 *
 * @example
 * throw new CliError("usage", "limit must be an integer from 1 to 100, got '500'");
 */
export type ErrorKind =
  | "usage"
  | "auth"
  | "api"
  | "network"
  | "integrity"
  | "io"
  | "state"
  | "interrupted";

export class CliError extends Error {
  /** Extra lines printed after the message (e.g. a pretty-printed JSON error body). */
  readonly detail?: string;
  /** For "interrupted": the signal that stopped the run. */
  readonly signal?: "SIGINT" | "SIGTERM";
  /** Already shown to the user (as a `--log-format json` event): main.ts adds no line. */
  reported = false;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    options: { cause?: unknown; detail?: string; signal?: "SIGINT" | "SIGTERM" } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "CliError";
    this.detail = options.detail;
    this.signal = options.signal;
  }
}

/** Exit codes: 2 for usage errors (as the scripts), 130/143 for signals, 1 for everything else. */
export function exitCodeFor(error: CliError): number {
  if (error.kind === "usage") return 2;
  if (error.kind === "interrupted") return error.signal === "SIGTERM" ? 143 : 130;
  return 1;
}

/** The message of any thrown value, without a stack trace. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

const secrets = new Set<string>();

/** Registers a value (the API key) that must never appear in anything the tool prints. */
export function registerSecret(secret: string): void {
  if (secret) secrets.add(secret);
}

/** `text` with every registered secret replaced by `***`: a last guard on all output paths. */
export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join("***");
  return out;
}
