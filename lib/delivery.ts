/**
 * One event type: listing -> concurrent downloads -> destination -> confirmation -> checkpoint.
 *
 * Listing runs ahead of the downloads, up to `concurrency` downloads run at once into spools, and
 * the destination is handed the files in listing order. The checkpoint moves only past what the
 * destination confirmed, in listing order (lib/destinations/confirmations.ts), so neither output
 * nor checkpoint ever gets ahead of the data.
 *
 * @example
 * const confirmations = await deliverEventType({
 *   eventType: "AUTH_LOG", start, client, destination, store, stats, reporter, signal,
 *   settings: { concurrency: 4, limit: 100, settleMs: 0 },
 * });
 */
import type { LogFile } from "./api.ts";
import type { Downloaded } from "./download.ts";
import { type Entry, listEntries, type ListingClient, type Start } from "./listing.ts";
import type { Reporter } from "./reporter/mod.ts";
import type { RunStats } from "./run_stats.ts";
import { Confirmations } from "./destinations/confirmations.ts";
import type { CursorStore, Destination, Spool } from "./destinations/contract.ts";

export interface DeliverySettings {
  /** Downloads at once. */
  concurrency: number;
  /** Files per listed page. */
  limit: number;
  /** Only files whose end_time is earlier (ISO text). */
  before?: string;
  /** Files whose end_time is more recent than this are left for a later poll. */
  settleMs: number;
  now?: () => number;
}

/** What a delivery tells the reporter (kept to these calls so the reporter can change shape). */
export type DeliveryReporter = Pick<Reporter, "emit">;

/**
 * What a delivery needs of the API client (`ComplianceClient` is one): pages, and a file's bytes
 * into a spool, verified, with the client's retry policy and signal.
 */
export interface DeliveryClient extends ListingClient {
  /** This client with its requests also ended by `signal`. */
  withSignal(signal: AbortSignal): DeliveryClient;
  download(file: LogFile, spool: Spool, hooks: { onNote?: (text: string) => void }): Promise<
    Downloaded
  >;
}

export interface EventTypeDelivery {
  eventType: string;
  /** Where the listing starts (lib/listing.ts `startingPoint`). */
  start: Start;
  client: DeliveryClient;
  destination: Destination;
  store?: CursorStore;
  stats: RunStats;
  reporter: DeliveryReporter;
  /** Aborted on SIGINT/SIGTERM or on the first fatal error of the pass. */
  signal: AbortSignal;
  settings: DeliverySettings;
}

/** A listed file after its download: stored by an earlier run, or waiting in a spool. */
type Fetched =
  | { kind: "alreadyStored" }
  | { kind: "downloaded"; spool: Spool; downloaded: Downloaded };

/**
 * Lists, downloads and hands over every file of one event type, in listing order. Resolves with
 * the event type's confirmations once every file is handed over and every checkpoint move
 * released so far is written; files a destination confirms only at `finish` are still `pending`
 * then. Throws on the first failure (or rejection) after stopping every download.
 */
export async function deliverEventType(job: EventTypeDelivery): Promise<Confirmations> {
  const { eventType, destination, stats, reporter, settings } = job;
  // A private abort for this event type's listing and downloads, also pulled by the caller's.
  const controller = new AbortController();
  const stop = () => controller.abort(job.signal.reason);
  job.signal.addEventListener("abort", stop, { once: true });
  const signal = controller.signal;
  const client = job.client.withSignal(signal);
  const confirmations = new Confirmations(eventType, job.store, stats, (error) => {
    controller.abort(error); // A rejection stops the downloads at once.
  });
  const semaphore = new Semaphore(settings.concurrency);
  const queue = new BoundedQueue<{ entry: Entry; fetched?: Promise<Fetched> }>(
    settings.concurrency * 2,
  );

  const fetchFile = async (file: LogFile): Promise<Fetched> => {
    await semaphore.acquire(signal);
    let spool: Spool | undefined;
    try {
      if (await destination.alreadyStored(file, eventType)) return { kind: "alreadyStored" };
      spool = await destination.spool(file, eventType);
      reporter.emit({ event: "fileStart", id: file.id });
      const started = Date.now();
      // Retries are counted and reported by the client's own hook (lib/pass.ts).
      const downloaded = await client.download(file, spool, {
        onNote: (text) => reporter.emit({ event: "note", text }),
      });
      reporter.emit({
        event: "file",
        id: file.id,
        bytes: downloaded.bytes,
        durationMs: Date.now() - started,
      });
      return { kind: "downloaded", spool, downloaded };
    } catch (error) {
      await spool?.discard();
      throw error;
    } finally {
      semaphore.release();
    }
  };

  const producer = (async () => {
    try {
      const listing = {
        limit: settings.limit,
        before: settings.before,
        settleMs: settings.settleMs,
        now: settings.now,
      };
      const observer = {
        pageStarted: (type: string, page: number, after: string) =>
          reporter.emit({ event: "pageStart", eventType: type, page, after }),
        pageListed: (type: string, page: number, after: string, files: number, more: boolean) => {
          stats.pageListed();
          reporter.emit({ event: "page", eventType: type, page, after, files, hasMore: more });
        },
        skipped: (id: string, why: string) => {
          stats.skippedFile();
          reporter.emit({ event: "skip", id, reason: why });
        },
      };
      for await (const entry of listEntries(client, eventType, job.start, listing, observer)) {
        if (signal.aborted) break;
        if (entry.kind === "file") {
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

  try {
    while (true) {
      const slot = await queue.shift();
      if (!slot) break;
      const { entry } = slot;
      if (entry.kind === "pageEnd") {
        confirmations.pageEnd(entry.nextAfter, entry.boundaryIds);
        continue;
      }
      const fetched = await slot.fetched!;
      // After a rejection nothing more is handed over: the run fails there.
      if (confirmations.failure) {
        if (fetched.kind === "downloaded") await fetched.spool.discard();
        throw confirmations.failure.error;
      }
      if (fetched.kind === "alreadyStored") {
        stats.skippedFile();
        reporter.emit({
          event: "skip",
          id: entry.file.id,
          reason: "already stored with the right size and hash",
        });
        confirmations.skip(entry.file, entry.pageAfter);
        continue;
      }
      const { spool, downloaded } = fetched;
      const receipt = confirmations.expect(entry.file, entry.pageAfter, downloaded.bytes);
      try {
        await destination.deliver({ file: entry.file, eventType, spool, downloaded, receipt });
      } catch (error) {
        await spool.discard();
        throw error;
      }
    }
    if (job.signal.aborted) throw job.signal.reason;
    await confirmations.settled();
    return confirmations;
  } catch (error) {
    controller.abort(error);
    // Wait for every download to stop, then throw their spools away.
    for (const slot of queue.drain()) {
      const fetched = await slot.fetched?.catch(() => undefined);
      if (fetched?.kind === "downloaded") await fetched.spool.discard();
    }
    await producer;
    // What was confirmed before the failure reaches the checkpoint before the run ends.
    await confirmations.settled().catch(() => {});
    throw confirmations.failure ? confirmations.failure.error : error;
  } finally {
    job.signal.removeEventListener("abort", stop);
  }
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
