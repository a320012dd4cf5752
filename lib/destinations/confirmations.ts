/**
 * Confirmations arrive late and out of order; the checkpoint moves strictly in listing order.
 * `Confirmations` keeps one event type's listing entries in order (files handed to the
 * destination, files passed without delivery, files found gone, page ends, the listing's end) and
 * releases each checkpoint move once it and everything before it are settled: `markDelivered` per
 * confirmed or passed file, `markGone` per gone file, `advance` per page end. The run's statistics
 * are updated at the same place, so they count exactly what was released. A rejected file stops
 * the releases there for good: the checkpoint stays before it.
 *
 * @example
 * ```ts
 * import type { LogFile } from "../log_file.ts";
 * import type { RunStats } from "../run_stats.ts";
 * import type { DeliveryCheckpoint } from "./contract.ts";
 * declare const checkpoint: DeliveryCheckpoint;
 * declare const stats: RunStats;
 * declare const fileA: LogFile, fileB: LogFile;
 * const after = "2026-07-01T00:00:00Z", nextAfter = "2026-07-01T02:00:00Z";
 * const confirmations = new Confirmations("AUTH_LOG", checkpoint, stats);
 * const first = confirmations.expect(fileA, after, 1500);
 * const second = confirmations.expect(fileB, after, 200);
 * confirmations.pageEnd(nextAfter, ["b"]);
 * second.confirm(); // nothing moves: fileA is not confirmed yet
 * first.confirm(); // both files, then the page end, move the checkpoint in order
 * await confirmations.settled();
 * ```
 */
import type { LogFile } from "../log_file.ts";
import type { RunStats } from "../run_stats.ts";
import { toMicros } from "../time.ts";
import type { DeliveryCheckpoint, Receipt } from "./contract.ts";
import type { StoredFacts } from "../manifest/format.ts";

type Slot =
  | {
    kind: "file";
    file: LogFile;
    pageAfter: string;
    bytes: number;
    /**
     * delivered: handed to the destination (counts as a file once confirmed); passed: not
     * delivered again (already stored, or skipped by the operator); gone: the API no longer has it.
     */
    how: "delivered" | "passed" | "gone";
    goneReason?: "expired" | "unavailable";
    /** What the destination stored (for the manifest); the operator's reason for a skip. */
    stored?: StoredFacts;
    skipReason?: string;
    state: "pending" | "confirmed" | "rejected";
  }
  | { kind: "pageEnd"; nextAfter: string; boundaryIds: string[] }
  | { kind: "listingEnd"; after: string };

/** The part of `RunStats` that confirmations update. */

/** One file as the checkpoint moves past it, in confirmation order. */
export type ReleasedFile =
  | { how: "delivered"; file: LogFile; stored?: StoredFacts }
  | { how: "passed"; file: LogFile; skipReason?: string }
  | { how: "gone"; file: LogFile; reason: "expired" | "unavailable" };

/** Told each file of one event type as the checkpoint moves past it (the run's manifest). */
export interface ConfirmationListener {
  released(entry: ReleasedFile): void;
  /** The listing ended with nothing new; no file can still appear before `after`. */
  listingEnd(after: string): void;
}

export type ConfirmedStats = Pick<RunStats, "confirmed" | "reached" | "goneFile">;

export class Confirmations {
  readonly #eventType: string;
  readonly #checkpoint: DeliveryCheckpoint | undefined;
  readonly #stats: ConfirmedStats;
  readonly #onFailure: (error: unknown) => void;
  readonly #listener: ConfirmationListener | undefined;
  /** Entries not released yet, from `#head` on, in listing order. */
  #slots: Slot[] = [];
  #head = 0;
  #pending = 0;
  #failure: { error: unknown } | undefined;
  /** Checkpoint writes, one after another in release order. */
  #writes: Promise<void> = Promise.resolve();
  #writeFailed = false;
  /** The `after` the released moves have reached (the checkpoint's at first), if any. */
  #at: string | undefined;

  /**
   * `onFailure` hears the first rejection or failed checkpoint write at once (to stop the run);
   * `listener` (the run's manifest) hears every file as it is released, in that order.
   */
  constructor(
    eventType: string,
    checkpoint: DeliveryCheckpoint | undefined,
    stats: ConfirmedStats,
    onFailure: (error: unknown) => void = () => {},
    listener?: ConfirmationListener,
  ) {
    this.#eventType = eventType;
    this.#checkpoint = checkpoint;
    this.#stats = stats;
    this.#onFailure = onFailure;
    this.#listener = listener;
    this.#at = checkpoint?.cursor(eventType)?.after;
  }

  /** Files handed over whose receipts are not settled yet. */
  get pending(): number {
    return this.#pending;
  }

  /** The first rejection or failed checkpoint write, if any (boxed: any value may be thrown). */
  get failure(): { error: unknown } | undefined {
    return this.#failure;
  }

  /**
   * The next file in listing order, handed to the destination with `bytes`; its receipt settles
   * it. Settling a receipt twice keeps the first answer.
   */
  expect(file: LogFile, pageAfter: string, bytes: number): Receipt {
    const slot: Slot = {
      kind: "file",
      file,
      pageAfter,
      bytes,
      how: "delivered",
      state: "pending",
    };
    this.#slots.push(slot);
    this.#pending++;
    const settle = (state: "confirmed" | "rejected") => {
      if (slot.state !== "pending") return false;
      slot.state = state;
      this.#pending--;
      return true;
    };
    return {
      confirm: (stored) => {
        if (settle("confirmed")) {
          slot.stored = stored;
          this.#release();
        }
      },
      reject: (error) => {
        if (settle("rejected")) this.#fail(error);
      },
    };
  }

  /**
   * The next file in listing order is not delivered (already stored whole, or skipped by the
   * operator, for `skipReason`): the checkpoint passes it in turn.
   */
  skip(file: LogFile, pageAfter: string, skipReason?: string): void {
    this.#push({
      kind: "file",
      file,
      pageAfter,
      bytes: 0,
      how: "passed",
      skipReason,
      state: "confirmed",
    });
  }

  /**
   * The next file in listing order is gone (the API no longer has it, for `reason`): in turn, it
   * is recorded as gone, counted, and the checkpoint passes it as it passes a delivered file.
   */
  gone(file: LogFile, pageAfter: string, reason: "expired" | "unavailable"): void {
    this.#push({
      kind: "file",
      file,
      pageAfter,
      bytes: 0,
      how: "gone",
      goneReason: reason,
      state: "confirmed",
    });
  }

  /** A page ends here: once everything before it is confirmed, the cursor moves to `nextAfter`. */
  pageEnd(nextAfter: string, boundaryIds: string[]): void {
    this.#push({ kind: "pageEnd", nextAfter, boundaryIds });
  }

  /**
   * The listing reached its end without a new file: in turn, an event type that has no cursor yet
   * gets one at `after` (no boundary ids), so that every event type has a cursor once listed to
   * the end and the next run needs no `<after>`. The caller picks an `after` no file can still
   * appear before (see `quietCursor`). A cursor that exists stays where the delivered data put it:
   * moving it on would only risk a file published late.
   */
  listingEnd(after: string): void {
    this.#push({ kind: "listingEnd", after });
  }

  /**
   * Resolves once every checkpoint move released so far is written; rethrows a rejection or a
   * failed write. With `complete`, also throws when a receipt is still unsettled (a destination
   * that finished without settling everything broke the contract).
   */
  async settled(options: { complete?: boolean } = {}): Promise<void> {
    // Moves queued while waiting (a confirmation that came meanwhile) are waited for too: the
    // caller closes the checkpoint next, and a move made after that would be lost.
    let writes: Promise<unknown>;
    do {
      writes = this.#writes;
      await writes;
    } while (writes !== this.#writes);
    if (this.#failure) throw this.#failure.error;
    if (options.complete && this.#pending > 0) {
      throw new Error(
        `the destination finished with ${this.#pending} ${this.#eventType} file(s) neither ` +
          "confirmed nor rejected",
      );
    }
  }

  #push(slot: Slot): void {
    this.#slots.push(slot);
    this.#release();
  }

  #fail(error: unknown): void {
    if (this.#failure) return;
    this.#failure = { error };
    this.#onFailure(error);
  }

  /** Releases the settled prefix: a pending or rejected file stops it. */
  #release(): void {
    while (this.#head < this.#slots.length && !this.#writeFailed) {
      const slot = this.#slots[this.#head];
      if (slot.kind === "file" && slot.state !== "confirmed") break;
      this.#head++;
      this.#apply(slot);
    }
    // Forget released entries now and then, not on every release (shifting is O(n)).
    if (this.#head > 1024 && this.#head * 2 > this.#slots.length) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
  }

  #apply(slot: Slot): void {
    const eventType = this.#eventType;
    if (slot.kind === "pageEnd") {
      this.#at = slot.nextAfter;
      this.#stats.reached(eventType, slot.nextAfter);
      this.#write((checkpoint) => checkpoint.advance(eventType, slot.nextAfter, slot.boundaryIds));
      return;
    }
    if (slot.kind === "listingEnd") {
      this.#listener?.listingEnd(slot.after);
      if (this.#at !== undefined) return;
      this.#at = slot.after;
      this.#stats.reached(eventType, slot.after);
      this.#write((checkpoint) => checkpoint.advance(eventType, slot.after, []));
      return;
    }
    const { file, pageAfter } = slot;
    this.#at = pageAfter;
    if (slot.how === "gone") {
      const reason = slot.goneReason!;
      this.#stats.goneFile(eventType, file, reason);
      this.#listener?.released({ how: "gone", file, reason });
      this.#write((checkpoint) => checkpoint.markGone(eventType, pageAfter, file, reason));
      return;
    }
    if (slot.how === "passed") this.#stats.reached(eventType, file.end_time);
    else this.#stats.confirmed(eventType, file, slot.bytes);
    this.#listener?.released(
      slot.how === "passed"
        ? { how: "passed", file, skipReason: slot.skipReason }
        : { how: "delivered", file, stored: slot.stored },
    );
    this.#write((checkpoint) => checkpoint.markDelivered(eventType, pageAfter, file.id));
  }

  #write(move: (checkpoint: DeliveryCheckpoint) => Promise<void>): void {
    const checkpoint = this.#checkpoint;
    if (!checkpoint) return;
    this.#writes = this.#writes.then(async () => {
      if (this.#writeFailed) return;
      try {
        await move(checkpoint);
      } catch (error) {
        this.#writeFailed = true;
        this.#fail(error);
      }
    });
  }
}

/**
 * Where an event type's cursor may move when a listing that started at `listedAtMs` found nothing
 * new: no file can still appear before it. Files are published up to `publicationDelayMs` after
 * their `end_time` (and a file more recent than `settleMs` was left for a later poll), so the
 * cursor is the listing time less the larger of the two, never before `startAfter` (where the
 * listing started) and never after `before` (files from there on were not asked for). A cursor
 * set to "now" would skip a file published minutes later with an earlier `end_time`.
 *
 * @example
 * ```ts
 * const listedAt = Date.parse("2026-07-02T12:00:00Z");
 * quietCursor({ startAfter: "2026-07-01T00:00:00Z", listedAtMs: listedAt, publicationDelayMs: 1_800_000, settleMs: 0 });
 * // "2026-07-02T11:30:00.000Z"
 * ```
 */
export function quietCursor(options: {
  startAfter: string;
  listedAtMs: number;
  publicationDelayMs: number;
  settleMs: number;
  before?: string;
}): string {
  const { startAfter, listedAtMs, publicationDelayMs, settleMs, before } = options;
  const safeMs = listedAtMs - Math.max(publicationDelayMs, settleMs);
  let candidate = new Date(safeMs).toISOString();
  if (before !== undefined && toMicros(before)! < toMicros(candidate)!) candidate = before;
  return toMicros(candidate)! > toMicros(startAfter)! ? candidate : startAfter;
}
