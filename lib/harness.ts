/**
 * What every API command runs inside: the secrets registered for redaction, the reporter, the
 * stop signals (SIGINT/SIGTERM abort the command's signal), the run's statistics, the API client
 * (its retries counted and reported), and the outcome: the summary and, when it failed, the
 * error, each shown once in the chosen log format, then the error thrown for main.ts's exit code.
 * `run`, `list` and the coming `verify --against-api` are bodies run by `runCommand`.
 *
 * @example
 * ```ts
 * declare const settings: import("./settings.ts").CommandSettings;
 * declare const env: Record<string, string | undefined>;
 * await runCommand(settings, env, async ({ client, started }) => {
 *   started();
 *   await client.listPage({ eventType: "AUTH_LOG", limit: 100, after: "2026-07-01T00:00:00Z" });
 * });
 * ```
 */
import { ComplianceClient } from "./api.ts";
import { BrokenPipeError, CliError, outcomeOf, registerSecret } from "./errors.ts";
import { colorOnStderr, liveOnStderr, Reporter, type Summary } from "./reporter/mod.ts";
import { ignoreFileSizeSignal, onStopSignal, type StopSignal } from "./runtime.ts";
import { RunStats } from "./run_stats.ts";
import type { CommandSettings, Env } from "./settings.ts";

/** What a command's body gets from the harness. */
export interface CommandContext {
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM, with an "interrupted" `CliError` as its reason. */
  signal: AbortSignal;
  /** The run's statistics, rendered as the summary. */
  stats: RunStats;
  /** The API client: this command's key, policy, download budget and signal. */
  client: ComplianceClient;
  /** The command's checks passed: from now on a failure is shown after a summary. */
  started(): void;
}

export interface CommandHooks {
  /** Secrets besides the key and proxy passwords (e.g. a destination's credentials). */
  secrets?: string[];
  /** The summary's figures from the statistics (e.g. `list` counts files listed). */
  summarize?: (summary: Summary) => Summary;
  /** Whether a closed stdout ends the command without a summary (a listing read by `| head`). */
  quietOnClosedStdout?: boolean;
  /** The body's failure as the command reports it (e.g. a closed stdout with a checkpoint kept). */
  mapFailure?: (failure: unknown) => unknown;
}

/** Proxy passwords shorter than this are not redacted: replacing them would garble the output. */
const MIN_REDACTED_PASSWORD = 6;

/**
 * Runs `body` inside the harness (see the module doc); resolves when it succeeded, else throws
 * its failure, already shown.
 */
export async function runCommand(
  settings: CommandSettings,
  env: Env,
  body: (context: CommandContext) => Promise<void>,
  options: CommandHooks = {},
): Promise<void> {
  registerSecret(settings.client.key);
  for (const secret of [...proxySecrets(env), ...(options.secrets ?? [])]) registerSecret(secret);
  ignoreFileSizeSignal();
  const reporter = new Reporter({
    verbosity: settings.report.verbosity,
    format: settings.report.logFormat,
    live: liveOnStderr(env),
    color: colorOnStderr(env),
  });
  for (const warning of settings.warnings) {
    reporter.emit({ event: "warning", message: warning.replace(/^warning: /, "") });
  }
  const stats = new RunStats();
  const controller = new AbortController();
  const removeSignals = onStopSignal((signal: StopSignal) => {
    if (controller.signal.aborted) return;
    reporter.emit({
      event: "warning",
      message:
        `Received ${signal}: stopping; files already delivered stay, nothing partial is left`,
      unlabelled: true,
    });
    controller.abort(new CliError("interrupted", `interrupted by ${signal}`, { signal }));
  });
  const { client: clientSettings } = settings;
  const client = new ComplianceClient({
    apiBase: clientSettings.apiBase,
    key: clientSettings.key,
    keySource: clientSettings.keySource,
    principal: settings.selection.principal,
    scope: settings.selection.scope,
    policy: clientSettings.policy,
    timeoutMs: clientSettings.timeoutMs,
    downloadsPerMinute: clientSettings.downloadsPerMinute,
    onRetry: (notice) => {
      stats.retried();
      reporter.emit({ event: "retry", ...notice });
    },
    signal: controller.signal,
  });

  let started = false;
  let failure: unknown;
  try {
    await body({
      reporter,
      signal: controller.signal,
      stats,
      client,
      started: () => started = true,
    });
  } catch (error) {
    failure = options.mapFailure ? options.mapFailure(error) : error;
  } finally {
    removeSignals();
  }
  if (failure instanceof BrokenPipeError && options.quietOnClosedStdout) return;
  const { status, exitCode } = outcomeOf(failure);
  const summary = stats.snapshot(status, exitCode);
  reporter.end(options.summarize ? options.summarize(summary) : summary, failure, {
    beforeStart: !started,
  });
  if (failure !== undefined) throw failure;
}

/**
 * The passwords of proxy URLs (`HTTPS_PROXY=http://user:password@host`), so that no message can
 * print them, whatever the runtime puts in its errors.
 */
function proxySecrets(env: Env): string[] {
  const secrets: string[] = [];
  for (const name of ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"]) {
    for (const value of [env[name], env[name.toLowerCase()]]) {
      if (!value) continue;
      try {
        const { password } = new URL(value);
        for (const secret of new Set([password, decodeURIComponent(password)])) {
          if (secret.length >= MIN_REDACTED_PASSWORD) secrets.push(secret);
        }
      } catch {
        // Not a URL: the runtime will refuse it; there is nothing to hide.
      }
    }
  }
  return secrets;
}
