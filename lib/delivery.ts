/**
 * One event type: listing -> concurrent downloads -> destination -> confirmation -> checkpoint.
 *
 * Listing runs ahead of the downloads, up to `concurrency` downloads run at once into spools, and
 * the destination is handed the files in listing order. The checkpoint moves only past what the
 * destination confirmed, in listing order (lib/destinations/confirmations.ts), so neither output
 * nor checkpoint ever gets ahead of the data.
 *
 * A file the API no longer has (`GoneFileError`, expired or unavailable) is recorded as gone in
 * its turn and the run goes on; `GONE_BREAKER` unavailable ones in a row stop the run before the
 * first of them. A file the operator skipped (`state skip`) is not downloaded. An event type
 * whose listing ends with nothing new and that has no cursor yet gets one where no file can still
 * appear (`quietCursor`).
 *
 * @example
 * ```ts
 * // start, client, destination, checkpoint, stats, reporter, signal:
 * declare const parts: Omit<EventTypeDelivery, "eventType" | "settings">;
 * const confirmations = await deliverEventType({
 *   ...parts,
 *   eventType: "AUTH_LOG",
 *   settings: { concurrency: 4, limit: 100, settleMs: 0 },
 * });
 * ```
 */
import type { LogFile } from "./log_file.ts";
import type { Downloaded } from "./download.ts";
import { CliError, GoneFileError } from "./errors.ts";
import { publicationDelayMs } from "./event_types.ts";
import { toMicros } from "./time.ts";
import {
  type Entry,
  listEntries,
  type ListingClient,
  reportingObserver,
  type Start,
} from "./listing.ts";
import type { Reporter } from "./reporter/mod.ts";
import type { RunStats } from "./run_stats.ts";
import { Confirmations, quietCursor } from "./destinations/confirmations.ts";
import type { ConfirmationListener } from "./destinations/confirmations.ts";
import type { DeliveryCheckpoint, Destination, Spool } from "./destinations/contract.ts";

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
  /** Why a listed file is passed over without a download (an archive recorded it gone), if so. */
  passOver?(file: LogFile): string | undefined;
  /** No file of `eventType` can still appear before this time (an archive: what its runs listed). */
  completeUntil?(eventType: string): string;
}

export interface EventTypeDelivery {
  eventType: string;
  /** Where the listing starts (lib/start.ts `startsOf`). */
  start: Start;
  client: DeliveryClient;
  destination: Destination;
  checkpoint?: DeliveryCheckpoint;
  stats: RunStats;
  reporter: DeliveryReporter;
  /** Aborted on SIGINT/SIGTERM or on the first fatal error of the pass. */
  signal: AbortSignal;
  settings: DeliverySettings;
  /** Hears each file as the checkpoint passes it (the run's manifest), in that order. */
  listener?: ConfirmationListener;
}

/**
 * A listed file after its turn to download: stored by an earlier run, skipped by the operator
 * (`state skip`), gone from the API, or waiting in a spool.
 */
export type Fetched =
  | { kind: "alreadyStored" }
  | { kind: "skippedByOperator"; reason: string }
  | { kind: "passedOver"; reason: string }
  | { kind: "gone"; reason: "expired" | "unavailable"; error: GoneFileError }
  | { kind: "downloaded"; spool: Spool; downloaded: Downloaded };

/** What the delivery's queue carries: the listing's entries, then its end when nothing was new. */
type Step = Entry | { kind: "listingEnd"; after: string };

/**
 * This many gone files in a row whose reason is "unavailable" (the API said "no longer available"
 * of files not near retention) mean something else is wrong: a proxy, ids mangled on the way.
 */
export const GONE_BREAKER = 3;

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
  const confirmations = new Confirmations(eventType, job.checkpoint, stats, (error) => {
    controller.abort(error); // A rejection stops the downloads at once.
  }, job.listener);
  const semaphore = new Semaphore(settings.concurrency);
  // Downloads ahead of the destination (in flight, or done and waiting their turn), where it
  // bounds them (`Destination.spoolsAhead`): taken in listing order before anything else is
  // awaited, given back when the consumer reaches the file, so the file it waits for always
  // holds one (taken in any other order, later files could hold them all).
  const ahead = destination.spoolsAhead === undefined
    ? undefined
    : new Semaphore(Math.max(1, destination.spoolsAhead));
  const queue = new BoundedQueue<{ entry: Step; fetched?: Promise<Fetched> }>(
    settings.concurrency * 2,
  );

  const fetchFile = async (file: LogFile): Promise<Fetched> => {
    await ahead?.acquire(signal);
    const skipReason = job.checkpoint?.skipReason(eventType, file.id);
    if (skipReason !== undefined) return { kind: "skippedByOperator", reason: skipReason };
    const passReason = client.passOver?.(file);
    if (passReason !== undefined) return { kind: "passedOver", reason: passReason };
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
      if (error instanceof GoneFileError && error.reason !== "unexplained") {
        return { kind: "gone", reason: error.reason, error };
      }
      throw withSkipAdvice(error, file, eventType, job.checkpoint);
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
      const observer = reportingObserver(reporter, stats);
      const now = settings.now ?? Date.now;
      const listedAtMs = now();
      let newFiles = 0;
      for await (const entry of listEntries(client, eventType, job.start, listing, observer)) {
        if (signal.aborted) break;
        if (entry.kind === "file") {
          newFiles++;
          const fetched = fetchFile(entry.file);
          fetched.catch(() => {}); // Observed by the consumer, in order.
          await queue.push({ entry, fetched });
        } else {
          await queue.push({ entry });
        }
      }
      if (!signal.aborted && newFiles === 0 && job.checkpoint) {
        // Listed to the end with nothing new: an event type without a cursor gets one (every
        // asked event type has a cursor once listed to the end, files or not).
        const after = quietCursor({
          startAfter: job.start.after,
          listedAtMs,
          publicationDelayMs: publicationDelayMs(eventType),
          settleMs: settings.settleMs,
          before: earlier(settings.before, client.completeUntil?.(eventType)),
        });
        await queue.push({ entry: { kind: "listingEnd", after } });
      }
      queue.close(signal.aborted ? signal.reason : undefined);
    } catch (error) {
      queue.close(error);
    }
  })();

  // Unavailable gone files (and the page ends after them) held back until the breaker is decided:
  // recorded once a file of another kind follows or the listing ends, never if it trips.
  const held: Array<
    { kind: "gone"; file: LogFile; pageAfter: string } | {
      kind: "pageEnd";
      nextAfter: string;
      boundaryIds: string[];
    }
  > = [];
  const recordGone = (file: LogFile, pageAfter: string, reason: "expired" | "unavailable") => {
    reporter.emit({
      event: "gone",
      eventType,
      id: file.id,
      endTime: file.end_time,
      reason,
    });
    confirmations.gone(file, pageAfter, reason);
  };
  const releaseHeld = () => {
    for (const item of held.splice(0)) {
      if (item.kind === "pageEnd") confirmations.pageEnd(item.nextAfter, item.boundaryIds);
      else recordGone(item.file, item.pageAfter, "unavailable");
    }
  };

  try {
    while (true) {
      const slot = await queue.shift();
      if (!slot) break;
      const { entry } = slot;
      if (entry.kind === "pageEnd") {
        if (held.length > 0) {
          held.push({
            kind: "pageEnd",
            nextAfter: entry.nextAfter,
            boundaryIds: entry.boundaryIds,
          });
        } else confirmations.pageEnd(entry.nextAfter, entry.boundaryIds);
        continue;
      }
      if (entry.kind === "listingEnd") {
        releaseHeld();
        confirmations.listingEnd(entry.after);
        continue;
      }
      const fetched = await slot.fetched!;
      ahead?.release();
      // After a rejection nothing more is handed over: the run fails there.
      if (confirmations.failure) {
        if (fetched.kind === "downloaded") await fetched.spool.discard();
        throw confirmations.failure.error;
      }
      if (fetched.kind === "gone" && fetched.reason === "unavailable") {
        held.push({ kind: "gone", file: entry.file, pageAfter: entry.pageAfter });
        const streak = held.filter((item) => item.kind === "gone");
        if (streak.length >= GONE_BREAKER) throw breakerError(eventType, streak, job.checkpoint);
        continue;
      }
      releaseHeld();
      if (fetched.kind === "gone") {
        recordGone(entry.file, entry.pageAfter, fetched.reason);
        continue;
      }
      if (fetched.kind === "skippedByOperator" || fetched.kind === "passedOver") {
        stats.skippedFile();
        reporter.emit({
          event: "skip",
          id: entry.file.id,
          reason: fetched.kind === "passedOver"
            ? fetched.reason
            : `skipped by the operator (state skip): ${fetched.reason}`,
        });
        confirmations.skip(entry.file, entry.pageAfter, fetched.reason);
        continue;
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
    releaseHeld();
    await confirmations.settled();
    return confirmations;
  } catch (error) {
    controller.abort(error);
    // Wait for every download to stop, then throw their spools away: those queued, and the one
    // a producer blocked on a full queue pushes once the drain has closed it.
    const discardQueued = async () => {
      for (const slot of queue.drain()) {
        const fetched = await slot.fetched?.catch(() => undefined);
        if (fetched?.kind === "downloaded") await fetched.spool.discard();
      }
    };
    await discardQueued();
    await producer;
    await discardQueued();
    // What was confirmed before the failure reaches the checkpoint before the run ends.
    await confirmations.settled().catch(() => {});
    throw confirmations.failure ? confirmations.failure.error : error;
  } finally {
    job.signal.removeEventListener("abort", stop);
  }
}

/** The earlier of two optional ISO times. */
function earlier(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return toMicros(b)! < toMicros(a)! ? b : a;
}

/**
 * The error that stops a run on a file no retry will cure (a persistent integrity mismatch, an
 * unexplained 404), naming the way past it when there is a checkpoint: `state skip`.
 */
function withSkipAdvice(
  error: unknown,
  file: LogFile,
  eventType: string,
  checkpoint: DeliveryCheckpoint | undefined,
): unknown {
  if (!checkpoint || !(error instanceof CliError)) return error;
  const poison = error instanceof GoneFileError || error.kind === "integrity";
  if (!poison) return error;
  // A message ending in ":" introduces its detail (the API's answer): the advice goes before it.
  const colon = error.message.endsWith(":");
  const message = `${colon ? error.message.slice(0, -1) : error.message}; to pass this file ` +
    `on purpose, run \`${checkpoint.skipCommand(eventType, file.id)}\`${colon ? ":" : ""}`;
  const options = { cause: error, detail: error.detail };
  return error instanceof GoneFileError
    ? new GoneFileError(error.file, error.reason, message, options)
    : new CliError(error.kind, message, options);
}

/** The breaker's error: several unavailable files in a row; the checkpoint stays before them. */
function breakerError(
  eventType: string,
  streak: Array<{ file: LogFile }>,
  checkpoint: DeliveryCheckpoint | undefined,
): CliError {
  const ids = streak.map(({ file }) => file.id);
  const where = checkpoint ? `; the checkpoint stays before ${ids[0]}` : "";
  return new CliError(
    "api",
    `${ids.length} ${eventType} files in a row were answered "no longer available" although ` +
      `not near the API's retention (${ids.join(", ")}): files do not expire like that; ` +
      `something between this tool and the API (a proxy, ids altered on the way) may be at ` +
      `fault${where}; check --api-base and any proxy, then run again`,
  );
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
