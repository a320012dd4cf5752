/**
 * The work of a run: one pass over every event type (list, download, deliver, checkpoint), and
 * with `--follow` the same pass again every interval, riding out outages between polls.
 */
import { ComplianceClient, type LogFile } from "./api.ts";
import type { Config } from "./args.ts";
import { type CursorStore, runPipeline, type Totals } from "./pipeline.ts";
import type { Reporter } from "./reporter.ts";
import { writeStdout } from "./runtime.ts";
import { sleep, TransientError } from "./retry.ts";
import { DirectorySink, SingleFileSink, type Sink, StdoutSink } from "./sinks.ts";

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

/**
 * Runs one pass, or with `--follow` a pass every interval until `signal` aborts, adding each
 * pass's totals to `totals` (kept current for the summary, also when a pass throws).
 */
export async function runPasses(
  config: Config,
  reporter: Reporter,
  signal: AbortSignal,
  store: CursorStore | undefined,
  totals: Totals,
): Promise<void> {
  while (true) {
    try {
      addTotals(totals, await runOnce(config, reporter, signal, store));
    } catch (error) {
      // In --follow, an outage that outlasted the retries waits for the next poll.
      if (!config.follow || !(error instanceof TransientError) || signal.aborted) throw error;
      reporter.error(`error: ${error.message}`, error.detail, {
        kind: error.kind,
        will_retry: true,
      });
    }
    if (!config.follow) return;
    reporter.polling(config.intervalMs);
    await sleep(config.intervalMs, signal);
  }
}

function addTotals(all: Totals, pass: Totals): void {
  all.files += pass.files;
  all.bytes += pass.bytes;
  all.pages += pass.pages;
  all.skipped += pass.skipped;
  // A poll that found nothing new keeps the cursor an earlier poll reached.
  for (const [type, cursor] of Object.entries(pass.cursors)) {
    if (cursor !== null || !(type in all.cursors)) all.cursors[type] = cursor;
  }
}
