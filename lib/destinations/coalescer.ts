/**
 * Gathers the small chunks a download arrives in (16-512 KiB) into writes of 1 MiB once a file
 * has proved large, and writes behind: a full buffer is handed to the sink and the next chunks
 * fill a second buffer while that write runs. A 2 GiB file costs 2,048 writes instead of ~35,000,
 * and the download no longer stops for each one (writing fresh pages of a new file is the spool's
 * main cost: ~2 s of kernel time per 2 GiB on the benchmark machine).
 *
 * The sink is never called again before its previous write settled, so positional writers may
 * keep their offset in a field; it must be done with the bytes when its promise resolves (the
 * buffers are reused). A failed write is reported by the next `write` or `flush`.
 */

export const COALESCE_BYTES = 1 << 20;

/**
 * Buffers given back by coalescers that are done (`release`), taken by the next: a run of many
 * files just over 1 MiB would otherwise make a buffer or two of garbage per file, which the
 * collector frees late (the peak memory of a run of small files is its garbage).
 */
const free: Uint8Array[] = [];
const KEEP_FREE = 8;

function takeBuffer(size: number): Uint8Array {
  return (size === COALESCE_BYTES ? free.pop() : undefined) ?? new Uint8Array(size);
}

export class WriteCoalescer {
  private filling?: Uint8Array;
  private spare?: Uint8Array;
  private fill = 0;
  private seen = 0;
  /** The one write in flight; its buffer is the sink's until it settles. */
  private inFlight?: Promise<void>;
  /** The gathered buffer the sink has until its write settles (awaited or not). */
  private sinking?: Uint8Array;

  constructor(
    private readonly sink: (bytes: Uint8Array) => Promise<void>,
    private readonly bufferBytes = COALESCE_BYTES,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    this.seen += chunk.length;
    // Small files are written as they come: gathering would only delay them. (Nothing is
    // gathered yet then: gathering starts only once `seen` reaches a buffer.)
    if (this.seen < this.bufferBytes) return this.sinkNow(chunk);
    if (this.fill + chunk.length > this.bufferBytes) await this.startWrite();
    if (chunk.length >= this.bufferBytes) return this.sinkNow(chunk);
    this.filling ??= takeBuffer(this.bufferBytes);
    this.filling.set(chunk, this.fill);
    this.fill += chunk.length;
  }

  /** Writes everything gathered and waits for it; call before the bytes are read or committed. */
  async flush(): Promise<void> {
    await this.startWrite();
    await this.settle();
  }

  /** Forgets what is gathered once the write in flight is over (the download starts over). */
  async reset(): Promise<void> {
    await this.abandon();
    this.fill = 0;
    this.seen = 0;
  }

  /**
   * Gives its buffers back for the next coalescer, dropping what they hold: call once done, after
   * `flush` or `abandon` (a buffer a write still holds is left to the collector).
   */
  release(): void {
    for (const buffer of [this.filling, this.spare]) {
      if (buffer === this.sinking) continue; // The sink may still be reading it.
      if (buffer?.length === COALESCE_BYTES && free.length < KEEP_FREE) free.push(buffer);
    }
    this.filling = this.spare = undefined;
    this.fill = 0;
  }

  /** Waits out the write in flight, whatever its outcome (the file is being thrown away). */
  async abandon(): Promise<void> {
    const inFlight = this.inFlight;
    this.inFlight = undefined;
    await inFlight?.catch(() => {});
  }

  private async sinkNow(bytes: Uint8Array): Promise<void> {
    await this.settle();
    await this.sink(bytes);
  }

  /** Hands the gathered bytes to the sink without waiting, and swaps in the spare buffer. */
  private async startWrite(): Promise<void> {
    if (this.fill === 0) return;
    await this.settle(); // One write at a time: the spare buffer is free only once it is done.
    const full = this.filling!;
    const inFlight = this.sink(full.subarray(0, this.fill));
    this.sinking = full;
    // Handled here so a failure waiting for the next call is not an unhandled rejection;
    // `settle` still sees it.
    inFlight.catch(() => {}).finally(() => {
      if (this.sinking === full) this.sinking = undefined;
    });
    this.inFlight = inFlight;
    this.filling = this.spare; // Taken when the next chunk comes, if one does.
    this.spare = full; // Filled again only after the next settle().
    this.fill = 0;
  }

  private async settle(): Promise<void> {
    const inFlight = this.inFlight;
    this.inFlight = undefined;
    await inFlight;
  }
}
