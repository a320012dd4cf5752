/**
 * Confirmations arrive late and out of order; the checkpoint moves strictly in listing order.
 * `Confirmations` keeps one event type's listing entries in order (files handed to the
 * destination, files skipped, page ends) and releases each checkpoint move once it and everything
 * before it are settled: `markDelivered` per confirmed or skipped file, `advance` per page end.
 * The run's statistics are updated at the same place, so they count exactly what was released.
 * A rejected file stops the releases there for good: the checkpoint stays before it.
 *
 * @example
 * const confirmations = new Confirmations("AUTH_LOG", checkpoint, stats);
 * const first = confirmations.expect(fileA, after, 1500);
 * const second = confirmations.expect(fileB, after, 200);
 * confirmations.pageEnd(after, nextAfter, ["b"]);
 * second.confirm(); // nothing moves: fileA is not confirmed yet
 * first.confirm(); // both files, then the page end, move the checkpoint in order
 * await confirmations.settled();
 */
import type { LogFile } from "../api.ts";
import type { RunStats } from "../run_stats.ts";
import type { CursorStore, Receipt } from "./contract.ts";

type Slot =
  | {
    kind: "file";
    file: LogFile;
    pageAfter: string;
    bytes: number;
    /** Already on the destination from an earlier run: moves the checkpoint, counts as skipped. */
    skipped: boolean;
    state: "pending" | "confirmed" | "rejected";
  }
  | { kind: "pageEnd"; nextAfter: string; boundaryIds: string[] };

/** The part of `RunStats` that confirmations update. */
export type ConfirmedStats = Pick<RunStats, "confirmed" | "reached">;

export class Confirmations {
  readonly #eventType: string;
  readonly #store: CursorStore | undefined;
  readonly #stats: ConfirmedStats;
  readonly #onFailure: (error: unknown) => void;
  /** Entries not released yet, from `#head` on, in listing order. */
  #slots: Slot[] = [];
  #head = 0;
  #pending = 0;
  #failure: { error: unknown } | undefined;
  /** Checkpoint writes, one after another in release order. */
  #writes: Promise<void> = Promise.resolve();
  #writeFailed = false;

  /** `onFailure` hears the first rejection or failed checkpoint write at once (to stop the run). */
  constructor(
    eventType: string,
    store: CursorStore | undefined,
    stats: ConfirmedStats,
    onFailure: (error: unknown) => void = () => {},
  ) {
    this.#eventType = eventType;
    this.#store = store;
    this.#stats = stats;
    this.#onFailure = onFailure;
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
    const slot: Slot = { kind: "file", file, pageAfter, bytes, skipped: false, state: "pending" };
    this.#slots.push(slot);
    this.#pending++;
    const settle = (state: "confirmed" | "rejected") => {
      if (slot.state !== "pending") return false;
      slot.state = state;
      this.#pending--;
      return true;
    };
    return {
      confirm: () => {
        if (settle("confirmed")) this.#release();
      },
      reject: (error) => {
        if (settle("rejected")) this.#fail(error);
      },
    };
  }

  /** The next file in listing order was already stored whole: the checkpoint passes it in turn. */
  skip(file: LogFile, pageAfter: string): void {
    this.#slots.push({
      kind: "file",
      file,
      pageAfter,
      bytes: 0,
      skipped: true,
      state: "confirmed",
    });
    this.#release();
  }

  /** A page ends here: once everything before it is confirmed, the cursor moves to `nextAfter`. */
  pageEnd(nextAfter: string, boundaryIds: string[]): void {
    this.#slots.push({ kind: "pageEnd", nextAfter, boundaryIds });
    this.#release();
  }

  /**
   * Resolves once every checkpoint move released so far is written; rethrows a rejection or a
   * failed write. With `complete`, also throws when a receipt is still unsettled (a destination
   * that finished without settling everything broke the contract).
   */
  async settled(options: { complete?: boolean } = {}): Promise<void> {
    await this.#writes;
    if (this.#failure) throw this.#failure.error;
    if (options.complete && this.#pending > 0) {
      throw new Error(
        `the destination finished with ${this.#pending} ${this.#eventType} file(s) neither ` +
          "confirmed nor rejected",
      );
    }
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
      this.#stats.reached(eventType, slot.nextAfter);
      this.#write((store) => store.advance(eventType, slot.nextAfter, slot.boundaryIds));
      return;
    }
    if (slot.skipped) this.#stats.reached(eventType, slot.file.end_time);
    else this.#stats.confirmed(eventType, slot.file, slot.bytes);
    this.#write((store) => store.markDelivered(eventType, slot.pageAfter, slot.file.id));
  }

  #write(move: (store: CursorStore) => Promise<void>): void {
    const store = this.#store;
    if (!store) return;
    this.#writes = this.#writes.then(async () => {
      if (this.#writeFailed) return;
      try {
        await move(store);
      } catch (error) {
        this.#writeFailed = true;
        this.#fail(error);
      }
    });
  }
}
