/**
 * The delivery contract: what a destination does with the files a delivery hands it, and what it
 * promises about them.
 *
 * A delivery downloads each listed file into a spool the destination made, then hands it over in
 * listing order as a `Parcel`. The destination takes it (`deliver` resolves) and settles its
 * `Receipt` now, later, out of order or all at once at `finish`: `confirm()` once it holds the
 * file as its guarantee says, or `reject(error)` when it refused it. The checkpoint moves past a
 * file only once it and every file listed before it are confirmed (lib/destinations/
 * confirmations.ts), so a destination may batch, pipeline and acknowledge late:
 *
 * - a file per object (`--output-dir`, later S3 or Azure Blob) confirms each file once stored;
 * - one output written whole (`-o`) confirms everything when it commits;
 * - a batching SIEM (Splunk HEC with indexer acknowledgement, Elasticsearch `_bulk`) reads the
 *   spool line by line (`spool.stream()` through lib/destinations/lines.ts), sends bounded batches
 *   and confirms or rejects each file when its batches are acknowledged;
 * - a transport that never confirms (stdout, a FIFO, syslog over TCP) is `best-effort`: it
 *   confirms a file once it has written it whole.
 *
 * @example
 * ```ts
 * import type { ComplianceClient } from "../api.ts";
 * import type { LogFile } from "../log_file.ts";
 * declare const destination: Destination; // made for `-o`, `--output-dir` or stdout
 * declare const client: ComplianceClient;
 * declare const file: LogFile;
 * declare const receipt: Receipt; // from `Confirmations.expect` (confirmations.ts)
 * const spool = await destination.spool(file, "AUTH_LOG");
 * const downloaded = await client.download(file, spool);
 * await destination.deliver({ file, eventType: "AUTH_LOG", spool, downloaded, receipt });
 * await destination.finish(); // every receipt is settled once this resolves
 * ```
 */
import type { LogFile } from "../log_file.ts";
import type { Downloaded, SpoolWriter } from "../download.ts";
import type { StoredFacts } from "../manifest/format.ts";

/**
 * What a confirmation means. `confirmed`: the destination holds the file durably (renamed and
 * fsynced, committed, acknowledged). `best-effort`: it was written whole into a transport that
 * never says whether the reader kept it; a file is delivered at least once across crashes of this
 * tool, but a reader that dies with bytes unread loses them.
 */
export type Guarantee = "confirmed" | "best-effort";

/** A download in progress, written by the download and then handed over or discarded. */
export interface Spool extends SpoolWriter {
  /** Throws the bytes away; safe to call more than once and after a hand-over. */
  discard(): Promise<void>;
}

/** How a destination settles one parcel; the first call counts, later ones are ignored. */
export interface Receipt {
  /**
   * The destination holds the file as its guarantee says: the checkpoint may pass it. `stored`:
   * where and how it was stored (path or key, stored size and hash, lines), for the manifest.
   */
  confirm(stored?: StoredFacts): void;
  /** The destination refused the file: the run fails, the checkpoint stays before it. */
  reject(error: unknown): void;
}

/** One downloaded, verified file, handed over in listing order. */
export interface Parcel<S extends Spool = Spool> {
  file: LogFile;
  eventType: string;
  /** The spool this destination made for the file; the destination's once handed over. */
  spool: S;
  downloaded: Downloaded;
  receipt: Receipt;
}

export interface Destination<S extends Spool = Spool> {
  readonly guarantee: Guarantee;
  /**
   * At most this many downloads may run ahead of it (lib/delivery.ts enforces it); a
   * destination slower than downloads says so to bound memory. Undefined: `--concurrency` alone.
   */
  readonly spoolsAhead?: number;
  /** Whether a previous run already stored this file whole (makes re-runs idempotent). */
  alreadyStored(file: LogFile, eventType: string): Promise<boolean>;
  /** A new spool for `file`, written by the download. */
  spool(file: LogFile, eventType: string): Promise<S>;
  /**
   * Takes `parcel`, in listing order. Resolves once taken (the receipt may be settled now or
   * later: a batching destination resolves while its window has room); rejects when it could not
   * take it, which fails the run.
   */
  deliver(parcel: Parcel<S>): Promise<void>;
  /** Ends the pass: flushes and commits, settling every receipt it was given. */
  finish(): Promise<void>;
  /** Removes everything temporary; leaves earlier complete outputs untouched. */
  abort(): Promise<void>;
}

/**
 * The part of the checkpoint a delivery moves (lib/checkpoint/ implements it): per file with
 * `markDelivered`, per page with `advance`, only ever in listing order and past confirmed files.
 */
export interface DeliveryCheckpoint {
  cursor(eventType: string): { after: string; seen: string[] } | undefined;
  markDelivered(eventType: string, pageAfter: string, id: string): Promise<void>;
  advance(eventType: string, newAfter: string, boundaryIds: string[]): Promise<void>;
  /** A listed file the API no longer has: recorded, and passed as `markDelivered` passes one. */
  markGone(
    eventType: string,
    pageAfter: string,
    file: LogFile,
    reason: "expired" | "unavailable",
  ): Promise<void>;
  /** The operator's reason for skipping `id` (`state skip`): it is not downloaded. */
  skipReason(eventType: string, id: string): string | undefined;
  /** The command that skips `id`, named by the error that stops a run on that file. */
  skipCommand(eventType: string, id: string): string;
}
