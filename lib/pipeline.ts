/**
 * The run: pages -> concurrent downloads -> in-order delivery -> checkpoint.
 *
 * Listing runs ahead of the downloads, up to `concurrency` downloads run at once into spools,
 * and delivery walks the listing order, so output and checkpoint never get ahead of the data:
 * the cursor moves past a file only after that file has reached its destination.
 */
import type { ComplianceClient, ListPage, LogFile } from "./api.ts";
import type { Config } from "./args.ts";
import { CliError } from "./errors.ts";
import { type Downloaded, downloadFile } from "./download.ts";
import type { Reporter } from "./reporter.ts";
import type { Sink, Spool } from "./sinks.ts";
import { toMicros } from "./time.ts";

/** The part of the checkpoint the pipeline drives (see lib/checkpoint.ts). */
export interface CursorStore {
  cursor(eventType: string): { after: string; seen: string[] } | undefined;
  markDelivered(eventType: string, pageAfter: string, id: string): Promise<void>;
  advance(eventType: string, newAfter: string, boundaryIds: string[]): Promise<void>;
}

type Entry =
  | { kind: "file"; file: LogFile; pageAfter: string }
  | { kind: "pageEnd"; pageAfter: string; nextAfter: string; boundaryIds: string[] };

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

/** Where listing starts for `eventType`: the checkpoint's cursor, else `<after>`. */
function startingPoint(deps: PipelineDeps, eventType: string) {
  const saved = deps.store?.cursor(eventType);
  if (saved) return { after: saved.after, seen: new Set(saved.seen) };
  if (!deps.config.after) {
    throw new CliError(
      "usage",
      `the state file has no cursor for ${eventType} yet; give <after> or --after for the first run`,
    );
  }
  return { after: deps.config.after.iso, seen: new Set<string>() };
}

/** How far ahead of the local clock a listed time may be before it is a server error. */
const MAX_FUTURE_MS = 86_400_000;

/**
 * Throws an API error for a page the server should never send, before any of its files is
 * downloaded or checkpointed: files of another event type (they would be filed and checkpointed
 * under the asked one), and times more than a day ahead of the local clock (such a cursor would
 * skip every real file until that day). A missing `event_type` counts as the asked one.
 *
 * @example
 * checkPage(page, "AUTH_LOG", Date.now(), "2026-07-01T00:00:00Z");
 */
export function checkPage(page: ListPage, eventType: string, nowMs: number, after: string): void {
  const what = `listing ${eventType} logs (after=${after})`;
  const limit = BigInt(nowMs + MAX_FUTURE_MS) * 1000n;
  const future = (time: string) =>
    new CliError(
      "api",
      `the API listed ${time} while ${what}, more than a day ahead of this machine's clock; ` +
        `not saved as the cursor; check the clock (or the API base), then retry`,
    );
  for (const file of page.data) {
    if (file.event_type !== "" && file.event_type !== eventType) {
      throw new CliError(
        "api",
        `the API listed file ${file.id} of event type ${
          JSON.stringify(file.event_type)
        } while ${what}; nothing of it was saved; the API may be misconfigured or not the real API, check --api-base`,
      );
    }
    if (toMicros(file.end_time)! > limit) throw future(`end_time ${file.end_time} of ${file.id}`);
  }
  if (page.last_end_time !== null && toMicros(page.last_end_time)! > limit) {
    throw future(`last_end_time ${page.last_end_time}`);
  }
}

/**
 * The listing as a stream of entries, page by page, without ids already delivered (in this run
 * or, at the boundary, in the last one), and guarded against cursors that do not advance.
 */
async function* listEntries(
  deps: PipelineDeps,
  eventType: string,
  start: { after: string; seen: Set<string> },
  totals: Totals,
): AsyncGenerator<Entry> {
  const { config, client, reporter } = deps;
  const now = deps.now ?? Date.now;
  let after = start.after;
  const delivered = new Set(start.seen);
  for (let page = 1;; page++) {
    reporter.page(eventType, page, after);
    const result = await client.listPage({
      eventType,
      limit: config.limit,
      after,
      before: config.before?.iso,
    });
    totals.pages++;
    checkPage(result, eventType, now(), after);
    reporter.pageListed(eventType, page, after, result.data.length, result.has_more);
    // Files too recent to be final are left for the next poll; the cursor stays before them.
    const settledBefore = config.settleMs > 0 ? BigInt(now() - config.settleMs) * 1000n : undefined;
    for (const file of result.data) {
      if (settledBefore !== undefined && toMicros(file.end_time)! > settledBefore) return;
      if (delivered.has(file.id)) {
        totals.skipped++;
        reporter.fileSkipped(file.id, "already delivered (returned again at the page boundary)");
        continue;
      }
      delivered.add(file.id);
      yield { kind: "file", file, pageAfter: after };
    }
    const next = result.last_end_time;
    if (next === null) return;
    const nextMicros = toMicros(next)!;
    const boundaryIds = result.data.filter((f) => toMicros(f.end_time)! >= nextMicros)
      .map((f) => f.id);
    if (result.has_more && nextMicros <= toMicros(after)!) {
      const how = nextMicros === toMicros(after) ? "did not advance" : "moved backwards";
      throw new CliError(
        "api",
        `the API said has_more but its cursor ${how} (last_end_time ${next} after ${after}); ` +
          `stopping rather than looping; retry later`,
      );
    }
    yield { kind: "pageEnd", pageAfter: after, nextAfter: next, boundaryIds };
    if (!result.has_more) return;
    after = next;
  }
}

/** Downloads (or lists) every file of every event type in the config, counting into `totals`. */
export async function runPipeline(deps: PipelineDeps): Promise<void> {
  const { totals } = deps;
  for (const eventType of deps.config.eventTypes) {
    const start = startingPoint(deps, eventType);
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
      for await (const entry of listEntries({ ...deps, client }, eventType, start, totals)) {
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
