/**
 * The spool of the destinations that write files out as one stream (stdout, `-o`, a FIFO): each
 * download lands whole and verified in a file of this run's private spool directory
 * (lib/destinations/spool_dir.ts), then is written out in listing order, or read as a stream
 * (line by line through lib/destinations/lines.ts) by a destination that sends records.
 *
 * @example
 * ```ts
 * import { writeStdout } from "../runtime.ts";
 * const bytes = new TextEncoder().encode('{"id":"e1"}\n');
 * const folder = await RunSpools.create();
 * const spool = await folder.next();
 * await spool.write(bytes);
 * await spool.writeInto({ write: writeStdout }, bytes.at(-1)); // the last byte decides a newline
 * await folder.remove();
 * ```
 */
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { CliError, reason } from "../errors.ts";
import { COALESCE_BYTES, WriteCoalescer } from "./coalescer.ts";
import type { Spool } from "./contract.ts";
import { createSpoolDir, type SpoolDir } from "./spool_dir.ts";

const NEWLINE = new Uint8Array([0x0a]);
const COPY_BUFFER_BYTES = COALESCE_BYTES;

/** Where a spool is written out: chunk by chunk, or (when `copyFile` can) the whole file at once. */
export interface ByteTarget {
  /** Writes `chunk` whole; done with it once the promise resolves (the buffer is reused). */
  write(chunk: Uint8Array): Promise<void>;
  /** Copies a file of exactly `length` bytes; false when it did not (nothing was written). */
  copyFile?(path: string, length: number): Promise<boolean>;
}

/** A spool file in a private directory, written by the download and then written out or read. */
export class FileSpool implements Spool {
  private written = 0;
  private readonly coalescer = new WriteCoalescer((bytes) => this.writeAt(bytes));
  private constructor(
    private readonly path: string,
    private readonly handle: Awaited<ReturnType<typeof open>>,
  ) {}

  /** Creates the spool file at `path`, which must not exist yet (owner-only). */
  static async create(path: string): Promise<FileSpool> {
    return new FileSpool(path, await open(path, "wx+", 0o600));
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.coalescer.write(chunk);
  }

  private async writeAt(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    try {
      while (offset < chunk.length) {
        // At an explicit position: truncate() in restart() does not move the file's own offset,
        // so a positionless write after it would leave a hole of zeros where the bytes belong.
        const { bytesWritten } = await this.handle.write(
          chunk,
          offset,
          chunk.length - offset,
          this.written + offset,
        );
        offset += bytesWritten;
      }
    } catch (error) {
      // The spool lives in the temp directory: a full or size-limited one is named as such.
      throw new CliError(
        "io",
        `cannot write the download spool ${this.path}: ${reason(error)}; set TMPDIR to a ` +
          `directory with room`,
        { cause: error },
      );
    }
    this.written += chunk.length;
  }

  async restart(): Promise<void> {
    await this.coalescer.reset();
    await this.handle.truncate(0);
    this.written = 0;
  }

  /**
   * Writes the spool's bytes into `target`, then `\n` when the file is not empty and its last
   * byte (`lastByte`) is not one (so JSON Lines stay valid when files follow each other), then
   * deletes the spool.
   */
  async writeInto(target: ByteTarget, lastByte: number | undefined): Promise<void> {
    await this.coalescer.flush();
    this.coalescer.release();
    // The whole-file copy takes the file as it is: only when it holds exactly the bytes.
    const copied = target.copyFile !== undefined && this.written > 0 &&
      (await this.handle.stat()).size === this.written &&
      await target.copyFile(this.path, this.written);
    if (!copied) {
      for await (const chunk of this.chunks(false)) await target.write(chunk);
    }
    if (lastByte !== undefined && lastByte !== 0x0a) await target.write(NEWLINE);
    await this.discard();
  }

  /** The spool's bytes as a stream of fresh chunks (for destinations that read records). */
  stream(): ReadableStream<Uint8Array> {
    const chunks = (async function* (spool: FileSpool) {
      await spool.coalescer.flush();
      spool.coalescer.release();
      yield* spool.chunks(true);
    })(this);
    return ReadableStream.from(chunks);
  }

  /** The bytes written, read back in 1 MiB chunks; `fresh`: a new buffer each (else reused). */
  private async *chunks(fresh: boolean): AsyncGenerator<Uint8Array> {
    let buffer = new Uint8Array(Math.min(COPY_BUFFER_BYTES, Math.max(1, this.written)));
    let position = 0;
    while (position < this.written) {
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      // No copy per chunk when writing out (a fifth of the CPU of a large delivery): the target
      // is done with the chunk once its write resolves.
      yield buffer.subarray(0, bytesRead);
      if (fresh) buffer = new Uint8Array(buffer.length);
      position += bytesRead;
    }
  }

  async discard(): Promise<void> {
    await this.coalescer.abandon();
    this.coalescer.release();
    await this.handle.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}

/**
 * This run's private spool directory, holding one numbered `FileSpool` per download; removed by
 * `remove()`. A run killed before that leaves partial copies of compliance data, which a later run
 * sweeps (lib/destinations/spool_dir.ts).
 */
export class RunSpools {
  private count = 0;
  private constructor(private readonly dir: SpoolDir) {}

  static async create(): Promise<RunSpools> {
    return new RunSpools(await createSpoolDir());
  }

  next(): Promise<FileSpool> {
    return FileSpool.create(join(this.dir.path, `${this.count++}.part`));
  }

  /** Deletes the directory and its spools (never recursing, never following a link). */
  remove(): Promise<void> {
    return this.dir.remove();
  }
}
