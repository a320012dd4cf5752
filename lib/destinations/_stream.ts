/**
 * The shared shape of the destinations that write every file, in listing order, into one byte
 * stream (stdout, a FIFO or device, the `-o` temp file): downloads wait in `FileSpool`s, and each
 * is written out whole when its turn comes. A target with `commit` (the `-o` file) confirms
 * everything only once committed; any other confirms each file once written.
 */
import type { LogFile } from "../log_file.ts";
import type { Destination, Guarantee, Parcel, Receipt } from "./contract.ts";
import { type ByteTarget, type FileSpool, SpoolFolder } from "./spool.ts";

export interface StreamTarget extends ByteTarget {
  /** Makes everything written durable and visible; the files are confirmed only then. */
  commit?(): Promise<void>;
  /** Releases the target at the end of the pass, whatever happened. */
  close?(): Promise<void>;
  /** Throws away what was written (the run failed before the commit). */
  discard?(): Promise<void>;
}

export class StreamDestination implements Destination<FileSpool> {
  /** Written but waiting for the commit. */
  #uncommitted: Receipt[] = [];

  private constructor(
    readonly guarantee: Guarantee,
    private readonly folder: SpoolFolder,
    private readonly target: StreamTarget,
  ) {}

  /** A destination writing into `target`, its spools in a new private spool directory. */
  static async create(guarantee: Guarantee, target: StreamTarget): Promise<StreamDestination> {
    return new StreamDestination(guarantee, await SpoolFolder.create(), target);
  }

  alreadyStored(_file: LogFile, _eventType: string): Promise<boolean> {
    return Promise.resolve(false);
  }

  spool(): Promise<FileSpool> {
    return this.folder.next();
  }

  async deliver({ spool, downloaded, receipt }: Parcel<FileSpool>): Promise<void> {
    await spool.writeInto(this.target, downloaded.lastByte);
    if (this.target.commit) this.#uncommitted.push(receipt);
    else receipt.confirm();
  }

  async finish(): Promise<void> {
    await this.target.commit?.();
    for (const receipt of this.#uncommitted) receipt.confirm();
    this.#uncommitted = [];
    await this.target.close?.();
    await this.folder.remove();
  }

  async abort(): Promise<void> {
    await this.target.discard?.();
    await this.target.close?.();
    await this.folder.remove();
  }
}
