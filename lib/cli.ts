/**
 * The command behind `main.ts`: turns a parsed command into a run and a run into an exit code.
 */
import { existsSync } from "node:fs";
import { type Command, type Config, parseCommand, USAGE } from "./args.ts";
import { Checkpoint, resetState, showState } from "./checkpoint.ts";
import { CliError, exitCodeFor, registerSecret } from "./errors.ts";
import { inspectOutputFile, refuseSameFiles } from "./output_checks.ts";
import { runPasses } from "./passes.ts";
import type { CursorStore, Totals } from "./pipeline.ts";
import { colorOnStderr, liveOnStderr, Reporter } from "./reporter.ts";
import {
  BrokenPipeError,
  ignoreFileSizeSignal,
  onStopSignal,
  runtimeName,
  type StopSignal,
  writeStdout,
} from "./runtime.ts";
import { VERSION } from "./version.ts";

const encoder = new TextEncoder();

/** The API keeps about this much history; an older start gets a warning, not a failure. */
const RETENTION_MS = 30 * 86_400_000;

/**
 * Checks, before any request, that every event type has somewhere to start (its checkpoint
 * cursor, else `<after>`), and warns when `<after>` is older than the API's retention.
 */
function checkStarts(config: Config, checkpoint: Checkpoint | undefined, reporter: Reporter) {
  const noCursor = config.eventTypes.filter((type) => !checkpoint?.cursor(type));
  if (!config.after && noCursor.length > 0) {
    throw new CliError(
      "usage",
      `missing <after>: the state file ${config.statePath} has no cursor for ` +
        `${noCursor.join(", ")} yet; give a start time as <after> or --after for the first run ` +
        `(see --help)`,
    );
  }
  // Only a start the user gave: a checkpoint's cursor stays at the newest file it has seen, which
  // for a quiet event type may be old without anything having been missed.
  const oldest = BigInt(Date.now() - RETENTION_MS) * 1000n;
  if (config.after && noCursor.length > 0 && config.after.micros < oldest) {
    reporter.warning(
      `warning: after ${config.after.iso} is more than 30 days ago; the API keeps about 30 days ` +
        `of files, so older ones may be gone`,
    );
  }
}

/** How a run ended, for the summary: status and exit code. */
function outcome(failure: unknown): { status: "ok" | "failed" | "interrupted"; exitCode: number } {
  if (failure === undefined || failure instanceof BrokenPipeError) {
    return { status: "ok", exitCode: 0 };
  }
  if (failure instanceof CliError) {
    const exitCode = exitCodeFor(failure);
    return { status: failure.kind === "interrupted" ? "interrupted" : "failed", exitCode };
  }
  return { status: "failed", exitCode: 1 };
}

/**
 * Checks the paths the run writes, before any request: what `-o` is (a directory is refused, a
 * FIFO or device is streamed into), and that no two of `-o`, `--state`, its lock and the key file
 * are one file. Resolves with the config, `-o`'s kind filled in.
 */
async function checkPaths(config: Config, env: Record<string, string | undefined>) {
  const { output, statePath } = config;
  const outputFile = output.kind === "file" ? output.path : undefined;
  await refuseSameFiles([
    ["-o", outputFile],
    ["--state", statePath],
    ["the lock of --state", statePath === undefined ? undefined : `${statePath}.lock`],
    ["COMPLIANCE_API_KEY_FILE", env.COMPLIANCE_API_KEY ? undefined : env.COMPLIANCE_API_KEY_FILE],
  ]);
  if (output.kind !== "file") return config;
  return { ...config, output: { ...output, stream: await inspectOutputFile(output.path) } };
}

/**
 * A closed stdout ends a pipeline quietly (`| head`), unless a checkpoint is kept: then the reader
 * stopped before the run delivered everything it was asked for, and exit 0 would hide that.
 */
function closedStdout(config: Config): CliError {
  return new CliError(
    "io",
    `stdout was closed by its reader before the run finished; the checkpoint ${config.statePath} ` +
      `stays at the last file written whole, and the next run resumes from there`,
  );
}

async function run(given: Config, env: Record<string, string | undefined>): Promise<void> {
  registerSecret(given.key);
  let config = given;
  const started = Date.now();
  const reporter = new Reporter({
    verbosity: config.verbosity,
    format: config.logFormat,
    live: liveOnStderr(env),
    color: colorOnStderr(env),
  });
  for (const warning of config.warnings) reporter.warning(warning);
  const all: Totals = { files: 0, bytes: 0, pages: 0, skipped: 0, cursors: {} };
  /** With --log-format json every line on stderr is JSON: the final error too, then a summary. */
  const reportEnd = (failure: unknown, summary: boolean) => {
    const { status, exitCode } = outcome(failure);
    if (config.logFormat === "json" && failure instanceof CliError) {
      reporter.error(`error: ${failure.message}`, failure.detail, {
        kind: failure.kind,
        exit_code: exitCode,
      });
      failure.reported = true;
    }
    if (!summary && config.logFormat !== "json") return;
    reporter.summary({
      ...all,
      retries: reporter.retries,
      durationMs: Date.now() - started,
      status,
      exitCode,
    });
  };

  const controller = new AbortController();
  const removeSignals = onStopSignal((signal: StopSignal) => {
    if (controller.signal.aborted) return;
    reporter.warning(
      `Received ${signal}: stopping downloads; files already delivered stay, nothing partial is left`,
    );
    controller.abort(new CliError("interrupted", `interrupted by ${signal}`, { signal }));
  });

  // --list reads the checkpoint's cursor but never moves it, so it needs no lock.
  let checkpoint: Checkpoint | undefined;
  try {
    config = await checkPaths(config, env);
    if (!config.after && config.statePath && !existsSync(config.statePath)) {
      throw new CliError(
        "usage",
        `missing <after>: the state file ${config.statePath} does not exist yet; give a start ` +
          `time as <after> or --after for the first run (see --help)`,
      );
    }
    checkpoint = config.statePath
      ? await Checkpoint.open(config.statePath, config.principal, config.eventTypes, {
        lock: !config.list,
      })
      : undefined;
    checkStarts(config, checkpoint, reporter);
  } catch (error) {
    removeSignals();
    await checkpoint?.close();
    reportEnd(error, false);
    throw error;
  }
  if (checkpoint?.tookOverStaleLock) {
    reporter.warning(
      `warning: took over a stale lock on ${config.statePath} (${checkpoint.staleLockReason})`,
    );
  }
  const opened = checkpoint;
  const store: CursorStore | undefined = opened && !config.list ? opened : opened && {
    cursor: (t) => opened.cursor(t),
    markDelivered: () => Promise.resolve(),
    advance: () => Promise.resolve(),
  };

  let failure: unknown;
  try {
    await runPasses(config, reporter, controller.signal, store, all);
  } catch (error) {
    failure = error instanceof BrokenPipeError && config.statePath ? closedStdout(config) : error;
    throw failure;
  } finally {
    removeSignals();
    await checkpoint?.close();
    reportEnd(failure, true);
  }
}

const MIN_REDACTED_PASSWORD = 6;

/**
 * Registers the passwords of proxy URLs (`HTTPS_PROXY=http://user:password@host`) as secrets, so
 * that no message can print them, whatever the runtime puts in its errors.
 */
function registerProxySecrets(env: Record<string, string | undefined>): void {
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"]) {
    for (const value of [env[name], env[name.toLowerCase()]]) {
      if (!value) continue;
      try {
        const { password } = new URL(value);
        // Redaction replaces every occurrence: a very short password would garble the output
        // (times, counts) more than it could protect.
        for (const secret of new Set([password, decodeURIComponent(password)])) {
          if (secret.length >= MIN_REDACTED_PASSWORD) registerSecret(secret);
        }
      } catch {
        // Not a URL: the runtime will refuse it; there is nothing to hide.
      }
    }
  }
}

/** Runs the CLI; resolves when done, throws a `CliError` for main.ts to report. */
export async function cli(argv: string[], env: Record<string, string | undefined>): Promise<void> {
  const command: Command = parseCommand(argv, env);
  switch (command.kind) {
    case "help":
      return writeStdout(encoder.encode(USAGE + "\n"));
    case "version":
      return writeStdout(encoder.encode(`oai-compliance-logs ${VERSION} (${runtimeName()})\n`));
    case "state":
      if (command.action === "show") {
        return writeStdout(encoder.encode((await showState(command.path)) + "\n"));
      }
      return resetState(command.path, command.eventType);
    case "run":
      registerProxySecrets(env);
      ignoreFileSizeSignal();
      return run(command.config, env);
  }
}
