/**
 * The work of a run: one pass over every event type (list, download, deliver, checkpoint), and
 * with `--follow` the same pass again every interval, riding out outages between polls.
 */
import { ComplianceClient, type LogFile } from "./api.ts";
import type { Config } from "./args.ts";
import { type CursorStore, emptyTotals, runPipeline, type Totals } from "./pipeline.ts";
import type { Reporter } from "./reporter.ts";
import { writeStdout } from "./runtime.ts";
import { redact } from "./errors.ts";
import { sleep, TransientError } from "./retry.ts";
import { DirectorySink, SingleFileSink, type Sink, StdoutSink, StreamFileSink } from "./sinks.ts";

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
  if (output.kind === "file" && output.stream) return await StreamFileSink.create(output.path);
  if (output.kind === "file") return await SingleFileSink.create(output.path);
  if (output.kind === "dir") return new DirectorySink(output.path, output.gzip);
  return await StdoutSink.create();
}

/** One JSON line per listed file, for `--list`. */
function printListed(file: LogFile): Promise<void> {
  const { id, event_type, end_time, file_name, file_size, file_sha256 } = file;
  const line = JSON.stringify({ id, event_type, end_time, file_name, file_size, file_sha256 });
  // file_name is free text from the server: it could echo the key.
  return writeStdout(encoder.encode(redact(line) + "\n"));
}

/**
 * One pass over every event type: list, download, deliver, checkpoint. What it delivered is added
 * to `all` also when it fails: files already on their destination stay there (only an `-o` file,
 * which appears at the end or not at all, then counts nothing).
 */
async function runOnce(
  config: Config,
  reporter: Reporter,
  signal: AbortSignal,
  store: CursorStore | undefined,
  all: Totals,
): Promise<void> {
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
  const pass = emptyTotals();
  let committed = sink.durableOnDeliver;
  try {
    await runPipeline({
      config,
      client,
      sink,
      store: deferred ?? store,
      reporter,
      signal,
      onListed: config.list ? printListed : undefined,
      totals: pass,
    });
    await sink.finish();
    committed = true;
    await deferred?.flush();
  } catch (error) {
    await sink.abort();
    throw error;
  } finally {
    addTotals(all, committed ? pass : { ...emptyTotals(), pages: pass.pages });
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
      await runOnce(config, reporter, signal, store, totals);
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
