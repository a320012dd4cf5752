/**
 * What a run has done, with one owner: the run creates it, the delivery updates it where files
 * are confirmed by their destination and where the checkpoint moves (never when a file was only
 * listed or downloaded), and the reporter renders it. So the summary of a run that fails or is
 * interrupted still counts what it delivered.
 *
 * @example
 * ```ts
 * import type { LogFile } from "./log_file.ts";
 * import type { Reporter } from "./reporter/mod.ts";
 * declare const file: LogFile;
 * declare const reporter: Reporter;
 * const stats = new RunStats();
 * stats.startEventType("AUTH_LOG", null); // null: no checkpoint cursor yet
 * stats.pageListed();
 * stats.confirmed("AUTH_LOG", file, 1500); // the destination confirmed it, the checkpoint moved
 * stats.reached("AUTH_LOG", file.end_time); // a whole page delivered, up to its last end_time
 * reporter.end(stats.snapshot("ok", 0));
 * ```
 */
import type { LogFile } from "./log_file.ts";
import type { RunStatus } from "./errors.ts";

/** A listed file the API no longer had, recorded as gone (the checkpoint passed it). */
export interface GoneFileRecord {
  eventType: string;
  id: string;
  endTime: string;
  reason: "expired" | "unavailable";
}

/** At most this many gone files are listed in a snapshot (all are counted). */
export const MAX_LISTED_GONE = 1000;

export interface StatsSnapshot {
  files: number;
  bytes: number;
  pages: number;
  retries: number;
  skipped: number;
  /** Stored files found altered by a re-run: kept aside (renamed) and stored again. */
  keptAside: number;
  /** Listed files the API no longer had, recorded as gone: a successful run then exits 4. */
  gone: number;
  /** The first `MAX_LISTED_GONE` of them, in the order they were recorded. */
  goneFiles: GoneFileRecord[];
  durationMs: number;
  /** Per event type: where the delivered data reaches (the checkpoint's cursor when nothing new). */
  cursors: Record<string, string | null>;
  status: RunStatus;
  exitCode: number;
}

export class RunStats {
  files = 0;
  bytes = 0;
  pages = 0;
  retries = 0;
  skipped = 0;
  keptAside = 0;
  readonly #gone: GoneFileRecord[] = [];
  readonly cursors: Record<string, string | null> = {};
  /** Files confirmed per event type in the current pass (for "Completed downloading N files"). */
  readonly #passFiles = new Map<string, number>();
  /** Whether the current pass moved each event type's cursor. */
  readonly #passMoved = new Map<string, string>();
  readonly #now: () => number;
  readonly #started: number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#started = now();
  }

  /** A pass starts on `eventType`, whose data stands at `cursor` (the checkpoint's, or null). */
  startEventType(eventType: string, cursor: string | null): void {
    if (!(eventType in this.cursors) || cursor !== null) this.cursors[eventType] = cursor;
    this.#passFiles.set(eventType, 0);
    this.#passMoved.delete(eventType);
  }

  pageListed(): void {
    this.pages++;
  }

  retried(): void {
    this.retries++;
  }

  /** A file not delivered again: returned again at a page boundary, or already stored. */
  /** A stored file no longer matched its listing: kept aside, and the file stored again. */
  keptAsideFile(): void {
    this.keptAside++;
  }

  skippedFile(): void {
    this.skipped++;
  }

  /** `file` reached its destination, which confirmed it; the checkpoint moves past it. */
  confirmed(eventType: string, file: LogFile, bytes: number): void {
    this.files++;
    this.bytes += bytes;
    this.#passFiles.set(eventType, (this.#passFiles.get(eventType) ?? 0) + 1);
    this.reached(eventType, file.end_time);
  }

  /**
   * `file` was gone (its download answered 404, for `reason`) and the checkpoint passed it, as it
   * passes a delivered file.
   */
  goneFile(eventType: string, file: LogFile, reason: GoneFileRecord["reason"]): void {
    this.#gone.push({ eventType, id: file.id, endTime: file.end_time, reason });
    this.reached(eventType, file.end_time);
  }

  /** Every file recorded gone so far (the session ends a run that had any with exit 4). */
  goneFiles(): GoneFileRecord[] {
    return this.#gone.map((record) => ({ ...record }));
  }

  /** The delivered data of `eventType` reaches `cursor` (a whole page, or a confirmed file). */
  reached(eventType: string, cursor: string): void {
    this.cursors[eventType] = cursor;
    this.#passMoved.set(eventType, cursor);
  }

  /** This pass's figures for `eventType`: files confirmed, and the cursor it moved to (or null). */
  pass(eventType: string): { files: number; movedTo: string | null } {
    return {
      files: this.#passFiles.get(eventType) ?? 0,
      movedTo: this.#passMoved.get(eventType) ?? null,
    };
  }

  snapshot(status: StatsSnapshot["status"], exitCode: number): StatsSnapshot {
    return {
      files: this.files,
      bytes: this.bytes,
      pages: this.pages,
      retries: this.retries,
      skipped: this.skipped,
      keptAside: this.keptAside,
      gone: this.#gone.length,
      goneFiles: this.#gone.slice(0, MAX_LISTED_GONE).map((record) => ({ ...record })),
      durationMs: this.#now() - this.#started,
      cursors: { ...this.cursors },
      status,
      exitCode,
    };
  }
}
