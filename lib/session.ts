/**
 * The `run` command's body on the harness (lib/harness.ts): the destination's checks and the
 * same-file check before any request, the checkpoint opened and locked, one pass (lib/pass.ts)
 * or with `--follow` one per poll, and the outcome: a run that passed files the API no longer
 * had ends with exit 4, after everything else was delivered.
 *
 * @example
 * ```ts
 * declare const settings: import("./settings.ts").RunSettings; // checked by the `run` command
 * declare const env: Record<string, string | undefined>;
 * await runSession(settings, env);
 * ```
 */
import { Checkpoint } from "./checkpoint/model.ts";
import { stateExists } from "./checkpoint/locate.ts";
import { parseLocation } from "./locations.ts";
import { destinationSecrets } from "./destinations/mod.ts";
import { BrokenPipeError, CliError, TransientError } from "./errors.ts";
import { type CommandContext, runCommand } from "./harness.ts";
import { refuseSameFiles } from "./output_checks.ts";
import { type PassContext, type PassPlan, runPass } from "./pass.ts";
import { ArchiveSource } from "./archive_source.ts";
import { openRunManifest } from "./manifest/open.ts";
import type { ManifestWriter } from "./manifest/writer.ts";
import { sleep } from "./retry.ts";
import type { RunStats } from "./run_stats.ts";
import type { Env, RunSettings } from "./settings.ts";
import { startsOf } from "./start.ts";

/**
 * Runs `settings` to the end on the harness, which shows the summary and, when the run failed,
 * the error; throws that failure (already shown) for main.ts's exit code.
 */
export function runSession(settings: RunSettings, env: Env): Promise<void> {
  const { statePath } = settings;
  return runCommand(settings, env, async (context) => {
    await checkBeforeRequests(settings, env);
    const checkpoint = await openCheckpoint(settings, context, env);
    let manifest: ManifestWriter | undefined;
    let failure: unknown;
    try {
      context.started();
      manifest = await openRunManifest({ ...settings, apiBase: settings.client.apiBase });
      await passes(settings, { ...context, ...sourceOf(settings, context), checkpoint, manifest });
    } catch (error) {
      failure = error;
    }
    try {
      await manifest?.endPass({ final: true, failed: failure !== undefined });
    } catch (error) {
      // The run's own failure says more; a manifest that cannot be written fails a good run.
      failure ??= error;
    } finally {
      await checkpoint?.close();
    }
    if (failure !== undefined) throw failure;
    // A signal that came after the last file (during the finish) still ends the run as one.
    if (context.signal.aborted) throw context.signal.reason;
    const gone = goneFailure(context.stats);
    if (gone) throw gone;
  }, {
    secrets: destinationSecrets(env),
    // What the delivered files are worth: a best-effort destination (a FIFO, syslog over TCP or
    // TLS) never says what its reader kept. Stdout's is the scripts' contract, said in the README.
    summarize: (summary) => ({
      ...summary,
      ...(settings.destination.label === "stdout"
        ? {}
        : { guarantee: settings.destination.guarantee }),
      ...(settings.fromArchive ? { source: `archive ${settings.fromArchive.label}` } : {}),
    }),
    mapFailure: (error) =>
      error instanceof BrokenPipeError && statePath ? closedStdout(statePath) : error,
  });
}

/**
 * One pass, or with `--follow` a pass every interval until the signal aborts; an outage that
 * outlasted the retries waits for the next poll.
 */
async function passes(
  settings: RunSettings,
  context: PassContext & { checkpoint?: Checkpoint; manifest?: ManifestWriter },
): Promise<void> {
  const { reporter, signal } = context;
  const plan: PassPlan = {
    selection: settings.selection,
    listing: settings.listing,
    concurrency: settings.concurrency,
    destination: settings.destination,
  };
  while (true) {
    try {
      context.manifest?.startPass();
      await runPass(plan, context);
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
    await context.manifest?.endPass();
    reporter.emit({ event: "sleep", waitMs: settings.intervalMs });
    await sleep(settings.intervalMs, signal);
  }
}

/**
 * Where the files come from: the API client, or with `--from-archive` the archive in the client's
 * shape (lib/archive_source.ts), whose listed pages say so in their events.
 */
function sourceOf(
  settings: RunSettings,
  context: CommandContext,
): Pick<PassContext, "client" | "reporter"> {
  const archive = settings.fromArchive;
  if (!archive) return { client: context.client, reporter: context.reporter };
  const source = `archive ${archive.label}`;
  return {
    client: new ArchiveSource(archive, settings.selection, context.signal),
    reporter: {
      emit: (event) => context.reporter.emit(event.event === "page" ? { ...event, source } : event),
    },
  };
}

/**
 * What can be refused before any request: the destination's own checks (what `-o` is, whether
 * `--output-dir` is a directory, later credentials and reachability), and that no two of the
 * destination's files, `--state`, its lock and the key file are one file.
 */
async function checkBeforeRequests(settings: RunSettings, env: Env): Promise<void> {
  const { destination } = settings;
  // A checkpoint in a store (`--state s3://...`) is no local file to compare.
  const statePath = settings.statePath !== undefined &&
      parseLocation(settings.statePath).kind === "path"
    ? settings.statePath
    : undefined;
  await refuseSameFiles([
    ...destination.localFiles.map(([label, path]) => [label, path] as [string, string]),
    ["--state", statePath],
    ["the lock of --state", statePath === undefined ? undefined : `${statePath}.lock`],
    [
      "COMPLIANCE_API_KEY_FILE",
      env.COMPLIANCE_API_KEY || settings.fromArchive ? undefined : env.COMPLIANCE_API_KEY_FILE,
    ],
  ]);
  await destination.check();
  await settings.fromArchive?.check();
}

/**
 * Opens and locks the checkpoint (none without `--state`), after checking that every event type
 * has somewhere to start; warns about a stale lock taken over.
 */
async function openCheckpoint(
  settings: RunSettings,
  context: CommandContext,
  env: Env,
): Promise<Checkpoint | undefined> {
  const { statePath, selection } = settings;
  if (statePath === undefined) return undefined;
  const startRule = (checkpoint?: Checkpoint) =>
    startsOf(
      selection.eventTypes,
      selection.after?.iso,
      checkpoint ? { path: statePath, cursor: (type) => checkpoint.cursor(type) } : {
        path: statePath,
      },
      { all: selection.all },
    );
  // Checked before the open, which would create the file: a refused run leaves nothing behind.
  if (!(await stateExists(statePath, env))) startRule();
  const checkpoint = await Checkpoint.open(
    statePath,
    selection.principal,
    selection.all ? "all" : selection.eventTypes,
    { env },
  );
  try {
    startRule(checkpoint);
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
  if (checkpoint.tookOverStaleLock) {
    context.reporter.emit({
      event: "warning",
      message: `took over a stale lock on ${statePath} (${checkpoint.staleLockReason})`,
    });
  }
  return checkpoint;
}

/**
 * Exit 4 for a run that delivered everything it could but passed files the API no longer had
 * (each already named by a `gone` event); undefined when there were none.
 */
function goneFailure(stats: RunStats): CliError | undefined {
  const { gone } = stats.snapshot("ok", 0);
  if (gone === 0) return undefined;
  return new CliError(
    "incomplete",
    `done, but ${gone} listed file${gone === 1 ? " was" : "s were"} no longer available from ` +
      `the API (named above); the checkpoint moved past ${gone === 1 ? "it" : "them"}`,
  );
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
