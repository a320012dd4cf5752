/**
 * The one line (or JSON event) an error that ends the process gets, rendered once: the run's
 * reporter renders it in the chosen log format where the run ends, and `main.ts` renders whatever
 * no reporter has shown (errors before a run's reporter exists, unexpected failures).
 *
 * @example
 * ```ts
 * // main.ts, in outline:
 * import process from "node:process";
 * import { exitCodeOf } from "../errors.ts";
 * declare function cli(argv: string[]): Promise<void>;
 * try {
 *   await cli(process.argv.slice(2));
 * } catch (error) {
 *   reportFatal(error, process.env);
 *   process.exit(exitCodeOf(error));
 * }
 * ```
 */
import { BrokenPipeError, CliError, exitCodeFor, messageOf, redact } from "../errors.ts";
import { stderrIsTerminal, writeStderr } from "../runtime.ts";
import { escapeControls } from "../terminal.ts";
import type { ErrorEvent } from "./events.ts";
import { PlainRenderer } from "./plain.ts";

/** Errors already shown: each is shown once, whichever reporter got it first. */
const shown = new WeakSet<object>();

/**
 * Marks `error` as shown; false when it already was (then it must not be shown again).
 *
 * @example
 * ```ts
 * import { CliError } from "../errors.ts";
 * import type { ErrorEvent } from "./events.ts";
 * declare function render(event: ErrorEvent): void;
 * const error = new CliError("auth", "HTTP error 401 while listing logs:");
 * if (firstShowing(error)) render(errorEvent(error)); // shown
 * if (firstShowing(error)) render(errorEvent(error)); // not again
 * ```
 */
export function firstShowing(error: unknown): boolean {
  if (typeof error !== "object" || error === null || shown.has(error)) return false;
  shown.add(error);
  return true;
}

/**
 * The `error` event of a `CliError`, with its kind and the exit code it ends the process with.
 *
 * @example
 * ```ts
 * import { CliError } from "../errors.ts";
 * import type { Reporter } from "./mod.ts";
 * declare const reporter: Reporter;
 * reporter.emit(errorEvent(new CliError("auth", "HTTP error 401 while listing logs:")));
 * ```
 */
export function errorEvent(error: CliError): ErrorEvent {
  return {
    event: "error",
    message: error.message,
    detail: error.detail || undefined,
    kind: error.kind,
    exitCode: exitCodeFor(error),
  };
}

/**
 * Whether stderr gets colour: a terminal that is not `TERM=dumb`, and no `NO_COLOR` (any
 * non-empty value, see no-color.org).
 */
export function colorOnStderr(env: Record<string, string | undefined>): boolean {
  return stderrIsTerminal() && !env.NO_COLOR && env.TERM !== "dumb";
}

/**
 * Shows `error` on stderr as plain text unless a reporter already has: a usage text as it is, a
 * `CliError` as its `error:` line and detail, anything else as an unexpected failure (with its
 * stack when `OAI_COMPLIANCE_DEBUG` is set). A closed stdout shows nothing.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { CliError } from "../errors.ts";
 * // stderr: "error: unknown option --gzip"
 * reportFatal(new CliError("usage", "unknown option --gzip"), process.env);
 * ```
 */
export function reportFatal(error: unknown, env: Record<string, string | undefined>): void {
  if (error instanceof BrokenPipeError || !firstShowing(error)) return;
  if (error instanceof CliError && error.help !== undefined) {
    return writeStderr(error.help + "\n");
  }
  if (error instanceof CliError) {
    // Messages quote server bodies and user input: the renderer makes control characters visible.
    return new PlainRenderer({ verbose: false, color: colorOnStderr(env) }).render(
      errorEvent(error),
    );
  }
  writeStderr(redact(escapeControls(`error: unexpected failure: ${messageOf(error)}\n`)));
  if (env.OAI_COMPLIANCE_DEBUG) {
    writeStderr(redact(escapeControls(String((error as Error)?.stack))) + "\n");
  }
}
