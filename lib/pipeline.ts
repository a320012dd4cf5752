/**
 * The run: pages -> concurrent downloads -> in-order delivery -> checkpoint.
 *
 * Listing runs ahead of the downloads, up to `concurrency` downloads run at once into spools,
 * and delivery walks the listing order, so output and checkpoint never get ahead of the data:
 * the cursor moves past a file only after that file has reached its destination.
 */
import type { ComplianceClient, LogFile } from "./api.ts";
import { type Entry, listEntries, startingPoint } from "./listing.ts";
import type { Config } from "./args.ts";
import { type Downloaded, downloadFile } from "./download.ts";
import type { Reporter } from "./reporter.ts";
import type { Sink, Spool } from "./sinks.ts";

/** The part of the checkpoint the pipeline drives (see lib/checkpoint.ts). */
export interface CursorStore {
  cursor(eventType: string): { after: string; seen: string[] } | undefined;
  markDelivered(eventType: string, pageAfter: string, id: string): Promise<void>;
  advance(eventType: string, newAfter: string, boundaryIds: string[]): Promise<void>;
}

/**
 * What a pass has done so far, updated where delivery and the checkpoint happen (so a pass that
 * fails or is interrupted still tells what it delivered): files and bytes delivered, pages
 * listed, files skipped as already delivered, and per event type the cursor the delivered data
 * reaches (the checkpoint's, when nothing new was delivered; null when there is none).
 */
export interface Totals {
  files: number;
  bytes: number;
  pages: number;
  skipped: number;
  cursors: Record<string, string | null>;
}

/** Totals of nothing yet. */
export function emptyTotals(): Totals {
  return { files: 0, bytes: 0, pages: 0, skipped: 0, cursors: {} };
}

export interface PipelineDeps {
  config: Config;
  client: ComplianceClient;
  sink: Sink;
  store?: CursorStore;
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM or on the first fatal error. */
  signal: AbortSignal;
  /** For `--list`: called per listed file instead of downloading it. */
  onListed?: (file: LogFile) => Promise<void>;
  /** Updated as files are delivered and pages completed. */
  totals: Totals;
  now?: () => number;
}

/** A FIFO with a capacity: `push` waits while full, `shift` waits while empty. */
class BoundedQueue<T> {
  private items: T[] = [];
  private closed = false;
  private failure: unknown;
  private wake: Array<() => void> = [];

  constructor(private readonly capacity: number) {}

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    waiting.forEach((resolve) => resolve());
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && !this.closed) await this.wait();
    this.items.push(item);
    this.notify();
  }

  /** The next item, or undefined once closed and drained; rethrows a producer failure. */
  async shift(): Promise<T | undefined> {
    while (this.items.length === 0) {
      if (this.failure !== undefined) throw this.failure;
      if (this.closed) return undefined;
      await this.wait();
    }
    const item = this.items.shift();
    this.notify();
    return item;
  }

  close(failure?: unknown): void {
    this.closed = true;
    this.failure = failure;
    this.notify();
  }

  drain(): T[] {
    const rest = this.items;
    this.items = [];
    this.close();
    return rest;
  }
}

/** Limits how many downloads run at once. */
class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}

  async acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

interface Fetched {
  spool?: Spool;
  result?: Downloaded;
}

/** Downloads (or lists) every file of every event type in the config, counting into `totals`. */
export async function runPipeline(deps: PipelineDeps): Promise<void> {
  const { totals } = deps;
  for (const eventType of deps.config.eventTypes) {
    const start = startingPoint(deps.store?.cursor(eventType), deps.config.after?.iso, eventType);
    // Until this pass delivers something, the data stands where the checkpoint says.
    totals.cursors[eventType] = deps.store?.cursor(eventType)?.after ?? null;
    const before = totals.files;
    const reached = await runEventType(deps, eventType, start, totals);
    deps.reporter.completed(eventType, totals.files - before, reached, start.after);
  }
}

/**
 * Lists, downloads and delivers one event type; resolves with the cursor this pass moved the data
 * to (the last completed page's, else the last delivered file's end_time), or null.
 */
async function runEventType(
  deps: PipelineDeps,
  eventType: string,
  start: { after: string; seen: Set<string> },
  totals: Totals,
): Promise<string | null> {
  const { config, sink, store, reporter } = deps;
  // A private abort for this run's listing and downloads, also pulled by the caller's signal.
  const controller = new AbortController();
  const stop = () => controller.abort(deps.signal.reason);
  deps.signal.addEventListener("abort", stop, { once: true });
  const signal = controller.signal;
  const client = deps.client.withSignal(signal);
  const semaphore = new Semaphore(config.concurrency);
  const queue = new BoundedQueue<{ entry: Entry; fetched?: Promise<Fetched> }>(
    config.concurrency * 2,
  );

  const fetchFile = async (file: LogFile): Promise<Fetched> => {
    await semaphore.acquire(signal);
    let spool: Spool | undefined;
    try {
      if (await sink.alreadyStored(file, eventType)) return {};
      spool = await sink.spool(file, eventType);
      reporter.fileStarted(file.id);
      const started = Date.now();
      const result = await downloadFile(client, file, spool, {
        policy: {
          retries: config.retries,
          backoffMs: config.backoffMs,
          maxWaitMs: config.maxRetryWaitMs,
        },
        timeoutMs: config.timeoutMs,
        onRetry: (n) => reporter.retry(n),
        onNote: (text) => reporter.note(text),
        signal,
      });
      reporter.fileDone(file.id, result.bytes, Date.now() - started);
      return { spool, result };
    } catch (error) {
      await spool?.discard();
      throw error;
    } finally {
      semaphore.release();
    }
  };

  const producer = (async () => {
    try {
      const settings = {
        limit: config.limit,
        before: config.before?.iso,
        settleMs: config.settleMs,
        now: deps.now,
      };
      const observer = {
        pageStarted: (type: string, page: number, after: string) =>
          reporter.page(type, page, after),
        pageListed: (type: string, page: number, after: string, files: number, more: boolean) => {
          totals.pages++;
          reporter.pageListed(type, page, after, files, more);
        },
        skipped: (id: string, why: string) => {
          totals.skipped++;
          reporter.fileSkipped(id, why);
        },
      };
      for await (const entry of listEntries(client, eventType, start, settings, observer)) {
        if (signal.aborted) break;
        if (entry.kind === "file" && !deps.onListed) {
          const fetched = fetchFile(entry.file);
          fetched.catch(() => {}); // Observed by the consumer, in order.
          await queue.push({ entry, fetched });
        } else {
          await queue.push({ entry });
        }
      }
      queue.close(signal.aborted ? signal.reason : undefined);
    } catch (error) {
      queue.close(error);
    }
  })();

  let reached: string | null = null;
  const reach = (cursor: string) => {
    reached = cursor;
    totals.cursors[eventType] = cursor;
  };
  try {
    while (true) {
      const slot = await queue.shift();
      if (!slot) break;
      const { entry } = slot;
      if (entry.kind === "pageEnd") {
        if (!deps.onListed) await store?.advance(eventType, entry.nextAfter, entry.boundaryIds);
        reach(entry.nextAfter);
        continue;
      }
      if (deps.onListed) {
        await deps.onListed(entry.file);
        totals.files++;
        continue;
      }
      const { spool, result } = await slot.fetched!;
      if (spool && result) {
        await spool.deliver(result);
        totals.files++;
        totals.bytes += result.bytes;
      } else {
        totals.skipped++;
        reporter.fileSkipped(entry.file.id, "already stored with the right size and hash");
      }
      await store?.markDelivered(eventType, entry.pageAfter, entry.file.id);
      reach(entry.file.end_time);
    }
    if (deps.signal.aborted) throw deps.signal.reason;
    return reached;
  } catch (error) {
    controller.abort(error);
    // Wait for every download to stop, then throw their spools away.
    for (const slot of queue.drain()) {
      const fetched = await slot.fetched?.catch(() => undefined);
      await fetched?.spool?.discard();
    }
    await producer;
    throw error;
  } finally {
    deps.signal.removeEventListener("abort", stop);
  }
}
