/**
 * The command behind `main.ts`: turns a parsed command into a run and a run into an exit code.
 */
import { ComplianceClient, type LogFile } from "./api.ts";
import { type Command, type Config, parseCommand, USAGE } from "./args.ts";
import { Checkpoint, resetState, showState } from "./checkpoint.ts";
import { CliError, registerSecret } from "./errors.ts";
import { type CursorStore, runPipeline, type Totals } from "./pipeline.ts";
import { Reporter } from "./reporter.ts";
import { onStopSignal, runtimeName, type StopSignal, writeStdout } from "./runtime.ts";
import { sleep, TransientError } from "./retry.ts";
import { DirectorySink, SingleFileSink, type Sink, StdoutSink } from "./sinks.ts";
import { VERSION } from "./version.ts";

const encoder = new TextEncoder();

/**
 * Checkpoint writes queued until the `-o` file is committed, so a crash can never leave the
 * cursor past data that was only in a temp file.
 */
class DeferredStore implements CursorStore {
  private queued: Array<() => Promise<void>> = [];
  constructor(private readonly inner: CursorStore) {}

  cursor(eventType: string) {
    return this.inner.cursor(eventType);
  }

  markDelivered(eventType: string, pageAfter: string, id: string): Promise<void> {
    this.queued.push(() => this.inner.markDelivered(eventType, pageAfter, id));
    return Promise.resolve();
  }

  advance(eventType: string, newAfter: string, boundaryIds: string[]): Promise<void> {
    this.queued.push(() => this.inner.advance(eventType, newAfter, boundaryIds));
    return Promise.resolve();
  }

  async flush(): Promise<void> {
    for (const write of this.queued) await write();
    this.queued = [];
  }
}

async function createSink(config: Config): Promise<Sink> {
  const { output } = config;
  if (output.kind === "file") return await SingleFileSink.create(output.path);
  if (output.kind === "dir") return new DirectorySink(output.path, output.gzip);
  return await StdoutSink.create();
}

/** One JSON line per listed file, for `--list`. */
function printListed(file: LogFile): Promise<void> {
  const { id, event_type, end_time, file_name, file_size, file_sha256 } = file;
  const line = JSON.stringify({ id, event_type, end_time, file_name, file_size, file_sha256 });
  return writeStdout(encoder.encode(line + "\n"));
}

/** One pass over every event type: list, download, deliver, checkpoint. */
async function runOnce(
  config: Config,
  reporter: Reporter,
  signal: AbortSignal,
  store: CursorStore | undefined,
): Promise<Totals> {
  const client = new ComplianceClient({
    apiBase: config.apiBase,
    key: config.key,
    principal: config.principal,
    scope: config.scope,
    policy: {
      retries: config.retries,
      backoffMs: config.backoffMs,
      maxWaitMs: config.maxRetryWaitMs,
    },
    timeoutMs: config.timeoutMs,
    onRetry: (notice) => reporter.retry(notice),
    signal,
  });
  const sink = await createSink(config);
  const deferred = store && !sink.durableOnDeliver ? new DeferredStore(store) : undefined;
  try {
    const totals = await runPipeline({
      config,
      client,
      sink,
      store: deferred ?? store,
      reporter,
      signal,
      onListed: config.list ? printListed : undefined,
    });
    await sink.finish();
    await deferred?.flush();
    return totals;
  } catch (error) {
    await sink.abort();
    throw error;
  }
}

async function run(config: Config): Promise<void> {
  registerSecret(config.key);
  const started = Date.now();
  const reporter = new Reporter({ verbosity: config.verbosity, format: config.logFormat });
  for (const warning of config.warnings) reporter.warning(warning);

  const controller = new AbortController();
  const removeSignals = onStopSignal((signal: StopSignal) => {
    if (controller.signal.aborted) return;
    reporter.warning(`Received ${signal}: finishing the file being written, then stopping`);
    controller.abort(new CliError("interrupted", `interrupted by ${signal}`, { signal }));
  });

  // --list reads the checkpoint's cursor but never moves it, so it needs no lock.
  const checkpoint = config.statePath
    ? await Checkpoint.open(config.statePath, config.principal, config.eventTypes, {
      lock: !config.list,
    })
    : undefined;
  if (checkpoint?.tookOverStaleLock) {
    reporter.warning(
      `warning: took over a stale lock on ${config.statePath} (${checkpoint.staleLockReason})`,
    );
  }
  const store: CursorStore | undefined = checkpoint && !config.list ? checkpoint : checkpoint && {
    cursor: (t) => checkpoint.cursor(t),
    markDelivered: () => Promise.resolve(),
    advance: () => Promise.resolve(),
  };

  const all: Totals = { files: 0, bytes: 0, pages: 0, skipped: 0, cursors: {} };
  try {
    while (true) {
      try {
        const totals = await runOnce(config, reporter, controller.signal, store);
        all.files += totals.files;
        all.bytes += totals.bytes;
        all.pages += totals.pages;
        all.skipped += totals.skipped;
        Object.assign(all.cursors, totals.cursors);
      } catch (error) {
        // In --follow, an outage that outlasted the retries waits for the next poll.
        if (!config.follow || !(error instanceof TransientError) || controller.signal.aborted) {
          throw error;
        }
        reporter.error(`error: ${error.message}`, error.detail);
      }
      if (!config.follow) break;
      reporter.polling(config.intervalMs);
      await sleep(config.intervalMs, controller.signal);
    }
  } finally {
    removeSignals();
    await checkpoint?.close();
    reporter.summary({ ...all, retries: reporter.retries, durationMs: Date.now() - started });
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
      return run(command.config);
  }
}
