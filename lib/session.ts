/**
 * One run, from checked settings to its summary: the paths checked before any request, the stop
 * signals, the checkpoint opened and locked, the run's statistics, one pass (lib/pass.ts) or with
 * `--follow` one per poll, and the summary rendered from those statistics, also when the run
 * fails or is interrupted.
 *
 * @example
 * await runSession(parseRunArgs(argv, env)!, env);
 */
import { existsSync } from "node:fs";
import type { Env } from "./commands/contract.ts";
import type { RunSettings } from "./commands/run.ts";
import { requireStart } from "./commands/_arguments.ts";
import { Checkpoint } from "./checkpoint/model.ts";
import { BrokenPipeError, CliError, outcomeOf, registerSecret, TransientError } from "./errors.ts";
import { inspectOutputFile, refuseSameFiles } from "./output_checks.ts";
import { type PassContext, type PassSettings, runPass } from "./pass.ts";
import { colorOnStderr, liveOnStderr, Reporter } from "./reporter/mod.ts";
import { sleep } from "./retry.ts";
import { RunStats } from "./run_stats.ts";
import { ignoreFileSizeSignal, onStopSignal, type StopSignal } from "./runtime.ts";

/** The API keeps about this much history; an older start gets a warning, not a failure. */
const RETENTION_MS = 30 * 86_400_000;
/** Proxy passwords shorter than this are not redacted: replacing them would garble the output. */
const MIN_REDACTED_PASSWORD = 6;

/**
 * Runs `settings` to the end, then shows the summary and, when the run failed, the error in the
 * chosen log format; throws that failure (already shown) for main.ts's exit code.
 *
 * @example
 * await runSession(parseRunArgs(argv, env)!, env);
 */
export async function runSession(settings: RunSettings, env: Env): Promise<void> {
  registerSecret(settings.key);
  registerProxySecrets(env);
  ignoreFileSizeSignal();
  const reporter = new Reporter({
    verbosity: settings.verbosity,
    format: settings.logFormat,
    live: liveOnStderr(env),
    color: colorOnStderr(env),
  });
  for (const warning of settings.warnings) warn(reporter, warning);
  const stats = new RunStats();

  const controller = new AbortController();
  const removeSignals = onStopSignal((signal: StopSignal) => {
    if (controller.signal.aborted) return;
    reporter.emit({
      event: "warning",
      message: `Received ${signal}: stopping downloads; files already delivered stay, nothing ` +
        `partial is left`,
      unlabelled: true,
    });
    controller.abort(new CliError("interrupted", `interrupted by ${signal}`, { signal }));
  });

  let checkpoint: Checkpoint | undefined;
  let started = false;
  let failure: unknown;
  try {
    const checked = await checkPaths(settings, env);
    checkpoint = await openCheckpoint(checked, reporter);
    started = true;
    await passes(checked, { reporter, signal: controller.signal, store: checkpoint, stats });
  } catch (error) {
    failure = error instanceof BrokenPipeError && settings.statePath
      ? closedStdout(settings.statePath)
      : error;
  } finally {
    removeSignals();
    await checkpoint?.close();
  }
  // The summary, and the error in the chosen format (shown once: main.ts adds nothing for it).
  const { status, exitCode } = outcomeOf(failure);
  reporter.end(stats.snapshot(status, exitCode), failure, { beforeStart: !started });
  if (failure !== undefined) throw failure;
}

/**
 * One pass, or with `--follow` a pass every interval until the signal aborts; an outage that
 * outlasted the retries waits for the next poll.
 */
async function passes(
  settings: RunSettings,
  context: PassContext & { reporter: Reporter },
): Promise<void> {
  const { reporter, signal } = context;
  const pass = passSettings(settings);
  while (true) {
    try {
      await runPass(pass, context);
    } catch (error) {
      if (!settings.follow || !(error instanceof TransientError) || signal.aborted) throw error;
      reporter.emit({
        event: "error",
        message: error.message,
        detail: error.detail || undefined,
        kind: error.kind,
        willRetry: true,
      });
    }
    if (!settings.follow) return;
    reporter.emit({ event: "sleep", waitMs: settings.intervalMs });
    await sleep(settings.intervalMs, signal);
  }
}

/**
 * What one pass needs of the run's settings: the event types and where they start, the
 * destination, the API client's settings and the delivery's.
 */
function passSettings(settings: RunSettings): PassSettings {
  return {
    eventTypes: settings.eventTypes,
    after: settings.after?.iso,
    output: settings.output,
    client: {
      apiBase: settings.apiBase,
      key: settings.key,
      principal: settings.principal,
      scope: settings.scope,
      policy: {
        retries: settings.retries,
        backoffMs: settings.backoffMs,
        maxWaitMs: settings.maxRetryWaitMs,
      },
      timeoutMs: settings.timeoutMs,
    },
    delivery: {
      concurrency: settings.concurrency,
      limit: settings.limit,
      before: settings.before?.iso,
      settleMs: settings.settleMs,
    },
  };
}

/** A `warning: ...` text as the reporter's warning event. */
function warn(reporter: Reporter, text: string): void {
  reporter.emit({ event: "warning", message: text.replace(/^warning: /, "") });
}

/**
 * Checks the paths the run writes, before any request: what `-o` is (a directory is refused, a
 * FIFO or device is streamed into), and that no two of `-o`, `--state`, its lock and the key file
 * are one file. Resolves with the settings, `-o`'s kind filled in.
 */
async function checkPaths(settings: RunSettings, env: Env): Promise<RunSettings> {
  const { output, statePath } = settings;
  const outputFile = output.kind === "file" ? output.path : undefined;
  await refuseSameFiles([
    ["-o", outputFile],
    ["--state", statePath],
    ["the lock of --state", statePath === undefined ? undefined : `${statePath}.lock`],
    ["COMPLIANCE_API_KEY_FILE", env.COMPLIANCE_API_KEY ? undefined : env.COMPLIANCE_API_KEY_FILE],
  ]);
  if (output.kind !== "file") return settings;
  return { ...settings, output: { ...output, stream: await inspectOutputFile(output.path) } };
}

/**
 * Opens and locks the checkpoint (none without `--state`), after checking that every event type
 * has somewhere to start; warns about a stale lock taken over and a start older than retention.
 */
async function openCheckpoint(
  settings: RunSettings,
  reporter: Reporter,
): Promise<Checkpoint | undefined> {
  const { statePath, after } = settings;
  // Checked before the open, which would create the file: a refused run leaves nothing behind.
  if (statePath !== undefined && !existsSync(statePath)) requireStart(after, statePath, undefined);
  const checkpoint = statePath === undefined
    ? undefined
    : await Checkpoint.open(statePath, settings.principal, settings.eventTypes);
  const cursorless = settings.eventTypes.filter((type) => !checkpoint?.cursor(type));
  try {
    requireStart(after, statePath, cursorless);
  } catch (error) {
    await checkpoint?.close();
    throw error;
  }
  if (checkpoint?.tookOverStaleLock) {
    warn(
      reporter,
      `warning: took over a stale lock on ${statePath} (${checkpoint.staleLockReason})`,
    );
  }
  // Only a start the user gave: a checkpoint's cursor stays at the newest file it has seen, which
  // for a quiet event type may be old without anything having been missed.
  const oldest = BigInt(Date.now() - RETENTION_MS) * 1000n;
  if (after && cursorless.length > 0 && after.micros < oldest) {
    warn(
      reporter,
      `warning: after ${after.iso} is more than 30 days ago; the API keeps about 30 days ` +
        `of files, so older ones may be gone`,
    );
  }
  return checkpoint;
}

/**
 * A closed stdout ends a pipeline quietly (`| head`), unless a checkpoint is kept: then the reader
 * stopped before the run delivered everything it was asked for, and exit 0 would hide that.
 */
function closedStdout(statePath: string): CliError {
  return new CliError(
    "io",
    `stdout was closed by its reader before the run finished; the checkpoint ${statePath} ` +
      `stays at the last file written whole, and the next run resumes from there`,
  );
}

/**
 * Registers the passwords of proxy URLs (`HTTPS_PROXY=http://user:password@host`) as secrets, so
 * that no message can print them, whatever the runtime puts in its errors.
 */
function registerProxySecrets(env: Env): void {
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"]) {
    for (const value of [env[name], env[name.toLowerCase()]]) {
      if (!value) continue;
      try {
        const { password } = new URL(value);
        for (const secret of new Set([password, decodeURIComponent(password)])) {
          if (secret.length >= MIN_REDACTED_PASSWORD) registerSecret(secret);
        }
      } catch {
        // Not a URL: the runtime will refuse it; there is nothing to hide.
      }
    }
  }
}
