/**
 * The listing of one event type, page by page from a cursor: the entries to deliver in order, the
 * page ends where the checkpoint may advance, and the guards against a server that contradicts
 * itself (cursors that do not advance, files of another type, times from the future). Consumed by
 * the run's delivery and by the `list` command.
 *
 * @example
 * ```ts
 * import type { LogFile } from "./log_file.ts";
 * import type { DeliveryCheckpoint } from "./destinations/contract.ts";
 * declare const client: ListingClient;
 * declare const observer: ListingObserver;
 * declare const checkpoint: DeliveryCheckpoint;
 * declare function deliver(file: LogFile): Promise<void>;
 * const start = { after: "2026-07-01T00:00:00Z", seen: new Set<string>() };
 * const settings = { limit: 100, settleMs: 0 };
 * for await (const entry of listEntries(client, "AUTH_LOG", start, settings, observer)) {
 *   if (entry.kind === "file") await deliver(entry.file);
 *   else await checkpoint.advance("AUTH_LOG", entry.nextAfter, entry.boundaryIds);
 * }
 * ```
 */
import type { ListPage, ListQuery, LogFile } from "./log_file.ts";
import type { ListingSettings } from "./settings.ts";
import { CliError } from "./errors.ts";
import type { Reporter } from "./reporter/mod.ts";
import type { RunStats } from "./run_stats.ts";
import { toMicros } from "./time.ts";

/** A file to deliver (listed on the page asked with `pageAfter`), or the end of a page. */
export type Entry =
  | { kind: "file"; file: LogFile; pageAfter: string }
  | { kind: "pageEnd"; pageAfter: string; nextAfter: string; boundaryIds: string[] };

/** Where a listing starts: the `after` to send, and ids already delivered at it. */
export interface Start {
  after: string;
  seen: Set<string>;
}

/** What the listing needs of the API client. */
export interface ListingClient {
  listPage(query: ListQuery): Promise<ListPage>;
}

/** Told as the listing goes: progress for the reporter, counts for the run's statistics. */
export interface ListingObserver {
  pageStarted(eventType: string, page: number, after: string): void;
  pageListed(eventType: string, page: number, after: string, files: number, hasMore: boolean): void;
  /** A file returned again at a page boundary, already delivered. */
  skipped(id: string, why: string): void;
}

/**
 * The observer that reports a listing's progress as reporter events and counts its pages and
 * skipped files in the run's statistics: what `run` and `list` both show.
 *
 * @example
 * ```ts
 * import type { Reporter } from "./reporter/mod.ts";
 * import { RunStats } from "./run_stats.ts";
 * declare const reporter: Reporter;
 * const observer = reportingObserver(reporter, new RunStats());
 * ```
 */
export function reportingObserver(
  reporter: Pick<Reporter, "emit">,
  stats: Pick<RunStats, "pageListed" | "skippedFile">,
): ListingObserver {
  return {
    pageStarted: (eventType, page, after) =>
      reporter.emit({ event: "pageStart", eventType, page, after }),
    pageListed: (eventType, page, after, files, hasMore) => {
      stats.pageListed();
      reporter.emit({ event: "page", eventType, page, after, files, hasMore });
    },
    skipped: (id, why) => {
      stats.skippedFile();
      reporter.emit({ event: "skip", id, reason: why });
    },
  };
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
 * ```ts
 * import type { ListPage } from "./log_file.ts";
 * declare const page: ListPage;
 * checkPage(page, "AUTH_LOG", Date.now(), "2026-07-01T00:00:00Z");
 * ```
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
export async function* listEntries(
  client: ListingClient,
  eventType: string,
  start: Start,
  settings: ListingSettings,
  observer: ListingObserver,
): AsyncGenerator<Entry> {
  const now = settings.now ?? Date.now;
  let after = start.after;
  const delivered = new Set(start.seen);
  for (let page = 1;; page++) {
    observer.pageStarted(eventType, page, after);
    const result = await client.listPage({
      eventType,
      limit: settings.limit,
      after,
      before: settings.before,
    });
    checkPage(result, eventType, now(), after);
    observer.pageListed(eventType, page, after, result.data.length, result.has_more);
    // Files too recent to be final are left for the next poll; the cursor stays before them.
    const settledBefore = settings.settleMs > 0
      ? BigInt(now() - settings.settleMs) * 1000n
      : undefined;
    for (const file of result.data) {
      if (settledBefore !== undefined && toMicros(file.end_time)! > settledBefore) return;
      if (delivered.has(file.id)) {
        observer.skipped(file.id, "already delivered (returned again at the page boundary)");
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
