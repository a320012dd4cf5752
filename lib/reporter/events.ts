/**
 * What the reporter can be told: one event type per occurrence. Events named as in
 * `--log-format json` output (`warning`, `page`, `file`, `skip`, `gone`, `retry`, `error`, `sleep`,
 * `summary`) appear there with their fields in snake_case (see `json.ts`); the others
 * (`pageStart`, `fileStart`, `completed`, `note`) exist only as the scripts' plain lines.
 * `progress` is made by the JSON renderer itself, from the events it is told (`progress.ts`).
 *
 * @example
 * ```ts
 * declare const reporter: { emit(event: ReportEvent): void };
 * reporter.emit({ event: "file", id: "eclf_1", bytes: 1500, durationMs: 12 });
 * ```
 */
import type { RunStatus } from "../errors.ts";
import type { StatsSnapshot } from "../run_stats.ts";

export interface WarningEvent {
  event: "warning";
  /** Without the `warning:` label, which plain output adds. */
  message: string;
  /** A notice shown in plain output as it is, without the label (e.g. a received signal). */
  unlabelled?: boolean;
}

/** A page is about to be asked for (plain: `Fetching page N ...`; live: the status line). */
export interface PageStartEvent {
  event: "pageStart";
  eventType: string;
  page: number;
  after: string;
}

/** A page has been listed: `files` on it, and whether more follow. */
export interface PageEvent {
  event: "page";
  eventType: string;
  page: number;
  after: string;
  files: number;
  hasMore: boolean;
  /** Where the page was listed when not the API: `archive DIR` (`--from-archive`). */
  source?: string;
}

/** A download starts (plain: `Fetching logs for ID: ...`). */
export interface FileStartEvent {
  event: "fileStart";
  id: string;
}

/** A file has been downloaded and verified. */
export interface FileEvent {
  event: "file";
  id: string;
  bytes: number;
  durationMs: number;
}

/** A file not delivered again, and why. */
export interface SkipEvent {
  event: "skip";
  id: string;
  reason: string;
}

/**
 * A listed file the API no longer has (its download answered 404 on every try, and it has expired
 * or the API said it is no longer available): recorded as gone, the checkpoint moves past it.
 */
export interface GoneEvent {
  event: "gone";
  eventType: string;
  id: string;
  endTime: string;
  reason: "expired" | "unavailable";
}

/** A request or download is tried again after `waitMs`. */
export interface RetryEvent {
  event: "retry";
  what: string;
  attempt: number;
  of: number;
  waitMs: number;
  reason: string;
}

/** The end of one event type's pass (plain: `Completed downloading N log files ...`). */
export interface CompletedEvent {
  event: "completed";
  eventType: string;
  /** Files delivered in this pass. */
  files: number;
  /** Where this pass moved the data to, or null. */
  cursor: string | null;
  /** Where the pass started. */
  initialAfter: string;
  /** What happened to the files, as the line says it (default "Completed downloading"; `list`: "Listed"). */
  done?: string;
}

/** A detail shown only with `-v` in plain output. */
export interface NoteEvent {
  event: "note";
  text: string;
}

/** An error: the run's fatal one, or (with `willRetry`) an outage `--follow` rides out. */
export interface ErrorEvent {
  event: "error";
  /** Without the `error:` label, which plain output adds. */
  message: string;
  /** Extra lines (e.g. a pretty-printed JSON error body). */
  detail?: string;
  kind?: string;
  exitCode?: number;
  willRetry?: boolean;
}

/** `--follow` waits `waitMs` before the next poll. */
export interface SleepEvent {
  event: "sleep";
  waitMs: number;
}

/** What the run did (`RunStats.snapshot()`), and how it ended when it has. */
export type SummaryEvent =
  & { event: "summary" }
  & Omit<StatsSnapshot, "status" | "exitCode" | "gone" | "goneFiles" | "keptAside">
  & {
    /** Listed files the API no longer had (shown only when some were). */
    gone?: number;
    /** Stored files found altered and kept aside (shown only when some were). */
    keptAside?: number;
    /** `incomplete` (exit 4): done, but some listed files were no longer available. */
    status?: RunStatus;
    /** A run's destination guarantee: `best-effort` ones (stdout, syslog over TCP) cannot confirm. */
    guarantee?: "confirmed" | "best-effort";
    /** Where the files were read when not the API: `archive DIR` (`--from-archive`). */
    source?: string;
    exitCode?: number;
  };

/**
 * Where a long run stands (`--log-format json`, at most every 10 s while files move): files done
 * of the files listed so far, bytes, the recent rate and the time left for what is listed.
 */
export interface ProgressEvent {
  event: "progress";
  /** Files delivered, skipped or gone. */
  filesDone: number;
  /** Files the listing has named so far (it lists ahead of the downloads, a page at a time). */
  filesListed: number;
  /** False while a listed page said more follow: then more files are to come. */
  listingComplete: boolean;
  bytes: number;
  /** Over the last minute, rounded; null until there is a rate to tell. */
  bytesPerSecond: number | null;
  filesPerMinute: number | null;
  /** For the files listed so far, at the recent rate; null when unknown. */
  etaSeconds: number | null;
}

export type ReportEvent =
  | WarningEvent
  | PageStartEvent
  | PageEvent
  | FileStartEvent
  | FileEvent
  | SkipEvent
  | GoneEvent
  | RetryEvent
  | CompletedEvent
  | NoteEvent
  | ErrorEvent
  | SleepEvent
  | SummaryEvent
  | ProgressEvent;

/** The events that `--log-format json` writes. */
export type JsonEvent = Exclude<
  ReportEvent,
  PageStartEvent | FileStartEvent | CompletedEvent | NoteEvent
>;

/** Renders events in one output format. */
export interface Renderer {
  render(event: ReportEvent): void;
}
