/**
 * The shared shape of the destinations that write every file, in listing order, into one byte
 * stream (stdout, a FIFO or device, the `-o` temp file): downloads wait in `FileSpool`s, and each
 * is written out whole when its turn comes. A target with `commit` (the `-o` file) confirms
 * everything only once committed; any other confirms each file once written. A target that can
 * also `sync` mid-pass (the `-o` file appended to) confirms what it synced every few seconds, so
 * a crash late in a long pass repeats only the last seconds' files.
 */
import type { LogFile } from "../log_file.ts";
import type { Destination, Guarantee, Parcel, Receipt } from "./contract.ts";
import { type ByteTarget, type FileSpool, RunSpools } from "./spool.ts";

export interface StreamTarget extends ByteTarget {
  /** Makes everything written durable and visible; the files are confirmed only then. */
  commit?(): Promise<void>;
  /** Makes everything written so far durable mid-pass (with `commit`): confirmed then too. */
  sync?(): Promise<void>;
  /** Releases the target at the end of the pass, whatever happened. */
  close?(): Promise<void>;
  /** Throws away what was written (the run failed before the commit). */
  discard?(): Promise<void>;
}

/** How often a target with `sync` is synced mid-pass (an fsync each time: not every file). */
export const SYNC_EVERY_MS = 2000;

export class StreamDestination implements Destination<FileSpool> {
  /** Written but waiting for the commit. */
  #uncommitted: Receipt[] = [];
  #lastSync = Date.now();

  private constructor(
    readonly guarantee: Guarantee,
    private readonly folder: RunSpools,
    private readonly target: StreamTarget,
    private readonly syncEveryMs: number,
  ) {}

  /**
   * A destination writing into `target`, its spools in a new private spool directory;
   * `syncEveryMs`: how often a target with `sync` is synced and its files confirmed mid-pass.
   */
  static async create(
    guarantee: Guarantee,
    target: StreamTarget,
    options: { syncEveryMs?: number } = {},
  ): Promise<StreamDestination> {
    const syncEveryMs = options.syncEveryMs ?? SYNC_EVERY_MS;
    return new StreamDestination(guarantee, await RunSpools.create(), target, syncEveryMs);
  }

  alreadyStored(_file: LogFile, _eventType: string): Promise<boolean> {
    return Promise.resolve(false);
  }

  spool(): Promise<FileSpool> {
    return this.folder.next();
  }

  async deliver({ spool, downloaded, receipt }: Parcel<FileSpool>): Promise<void> {
    await spool.writeInto(this.target, downloaded.lastByte);
    if (!this.target.commit) return receipt.confirm();
    this.#uncommitted.push(receipt);
    if (this.target.sync && Date.now() - this.#lastSync >= this.syncEveryMs) {
      await this.target.sync();
      this.#lastSync = Date.now();
      this.#confirmUncommitted();
    }
  }

  async finish(): Promise<void> {
    await this.target.commit?.();
    this.#confirmUncommitted();
    await this.target.close?.();
    await this.folder.remove();
  }

  async abort(): Promise<void> {
    await this.target.discard?.();
    await this.target.close?.();
    await this.folder.remove();
  }

  #confirmUncommitted(): void {
    for (const receipt of this.#uncommitted) receipt.confirm();
    this.#uncommitted = [];
  }
}
