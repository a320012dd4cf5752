/**
 * Where finished log files go. Downloads land in a spool first (verified, complete), then the
 * pipeline hands each one to the sink in listing order:
 * - stdout: the bytes as served, plus `\n` when a non-empty file lacks one (JSON Lines stays valid);
 * - one `-o` file: the same stream into a temp file renamed into place only when the run ends;
 * - an `--output-dir` tree: one file per log, renamed into place as soon as it is verified.
 */
import { open, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createHash } from "node:crypto";
import type { LogFile } from "./api.ts";
import type { Downloaded, SpoolWriter } from "./download.ts";
import { createTempBeside, ensureDir, removeStaleTemps, type TempFile } from "./atomic.ts";
import { COALESCE_BYTES, WriteCoalescer } from "./coalescer.ts";
import { BrokenPipeError, copyFileToStdout, writeStdout } from "./runtime.ts";
import { CliError, codeOf, reason } from "./errors.ts";
import { createSpoolDir, type SpoolDir } from "./spool_dir.ts";
import { toMicros } from "./time.ts";

const NEWLINE = new Uint8Array([0x0a]);
const COPY_BUFFER_BYTES = COALESCE_BYTES;

/** A download in progress: written by `downloadFile`, then delivered or discarded. */
export interface Spool extends SpoolWriter {
  /** Makes the bytes durable and visible (where the sink's guarantee needs it). */
  deliver(result: Downloaded): Promise<void>;
  discard(): Promise<void>;
}

export interface Sink {
  /**
   * True when a delivered file is already safe on its destination, so the checkpoint may move
   * past it at once; false when everything becomes durable only at `finish` (the `-o` file).
   */
  readonly durableOnDeliver: boolean;
  /** Whether a previous run already stored this file whole (makes re-runs idempotent). */
  alreadyStored(file: LogFile, eventType: string): Promise<boolean>;
  spool(file: LogFile, eventType: string): Promise<Spool>;
  finish(): Promise<void>;
  /** Removes everything temporary; leaves earlier complete outputs untouched. */
  abort(): Promise<void>;
}

/** Where a spool is replayed: chunk by chunk, or (when `copyFile` can) the whole file at once. */
interface Destination {
  emit(chunk: Uint8Array): Promise<void>;
  /** Copies a file of exactly `length` bytes; false when it did not (nothing was written). */
  copyFile?(path: string, length: number): Promise<boolean>;
}

/** A spool file in a private directory, replayed into a stream on delivery. */
class FileSpool implements Spool {
  private written = 0;
  private readonly coalescer = new WriteCoalescer((bytes) => this.writeAt(bytes));
  private constructor(
    private readonly path: string,
    private handle: Awaited<ReturnType<typeof open>>,
    private readonly destination: Destination,
  ) {}

  static async create(path: string, destination: Destination) {
    return new FileSpool(path, await open(path, "wx+", 0o600), destination);
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

  async deliver(result: Downloaded): Promise<void> {
    await this.coalescer.flush();
    const { emit, copyFile } = this.destination;
    // The whole-file copy takes the file as it is: only when it holds exactly the bytes.
    const copied = copyFile !== undefined && this.written > 0 &&
      (await this.handle.stat()).size === this.written &&
      await copyFile(this.path, this.written);
    if (!copied) await this.replay(emit);
    if (result.lastByte !== undefined && result.lastByte !== 0x0a) await emit(NEWLINE);
    await this.discard();
  }

  private async replay(emit: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    const buffer = new Uint8Array(Math.min(COPY_BUFFER_BYTES, Math.max(1, this.written)));
    let position = 0;
    while (position < this.written) {
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      // No copy per chunk (a fifth of the CPU of a large delivery): `emit` is done with the
      // chunk once its promise resolves, as writeStdout and TempFile.write are.
      await emit(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  }

  async discard(): Promise<void> {
    await this.coalescer.abandon();
    await this.handle.close().catch(() => {});
    await rm(this.path, { force: true });
  }
}

/** This process's spool directories by path (created and removed by lib/spool_dir.ts). */
const spoolDirs = new Map<string, SpoolDir>();

/**
 * A private, owner-only directory for spools, removed by `abort`/`finish`; a run killed before
 * that leaves partial copies of compliance data, which a later run sweeps (lib/spool_dir.ts).
 */
async function privateSpoolDir(): Promise<string> {
  const spool = await createSpoolDir();
  spoolDirs.set(spool.path, spool);
  return spool.path;
}

/** Removes a spool directory of this process (never recursing, never following a link). */
async function removeSpoolDir(dir: string): Promise<void> {
  await spoolDirs.get(dir)?.remove();
  spoolDirs.delete(dir);
}

/** Streams every file to stdout in listing order; at-least-once across crashes. */
export class StdoutSink implements Sink {
  readonly durableOnDeliver = true;
  private count = 0;
  private constructor(private readonly dir: string) {}

  static async create(): Promise<StdoutSink> {
    return new StdoutSink(await privateSpoolDir());
  }

  alreadyStored(): Promise<boolean> {
    return Promise.resolve(false);
  }

  spool(): Promise<Spool> {
    return FileSpool.create(join(this.dir, `${this.count++}.part`), {
      emit: writeStdout,
      copyFile: copyFileToStdout,
    });
  }

  async finish(): Promise<void> {
    await removeSpoolDir(this.dir);
  }

  abort(): Promise<void> {
    return this.finish();
  }
}

/**
 * `-o` naming a FIFO or a character device (`/dev/stdout`, a named pipe a shipper reads): the
 * files stream into it in listing order, as on stdout. A temp file renamed over it would replace
 * the pipe or device with a regular file, so this sink never renames.
 */
export class StreamFileSink implements Sink {
  readonly durableOnDeliver = true;
  private count = 0;
  private constructor(
    private readonly dir: string,
    private readonly path: string,
    private readonly handle: Awaited<ReturnType<typeof open>>,
  ) {}

  static async create(path: string): Promise<StreamFileSink> {
    let handle;
    try {
      handle = await open(path, "w");
    } catch (error) {
      throw new CliError("io", `cannot open ${path} for writing: ${reason(error)}`, {
        cause: error,
      });
    }
    return new StreamFileSink(await privateSpoolDir(), path, handle);
  }

  alreadyStored(): Promise<boolean> {
    return Promise.resolve(false);
  }

  spool(): Promise<Spool> {
    return FileSpool.create(join(this.dir, `${this.count++}.part`), {
      emit: (chunk) => this.write(chunk),
    });
  }

  private async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    try {
      while (offset < chunk.length) {
        offset += (await this.handle.write(chunk, offset, chunk.length - offset)).bytesWritten;
      }
    } catch (error) {
      // The pipe's reader went away: the same as a closed stdout.
      if (codeOf(error) === "EPIPE") throw new BrokenPipeError();
      throw new CliError(
        "io",
        `cannot write ${this.path}: ${reason(error)}; the file being written was cut short ` +
          `and the checkpoint stays before it`,
        { cause: error },
      );
    }
  }

  async finish(): Promise<void> {
    await this.handle.close().catch(() => {});
    await removeSpoolDir(this.dir);
  }

  abort(): Promise<void> {
    return this.finish();
  }
}

/** Everything into one file that appears only complete (temp + fsync + rename at the end). */
export class SingleFileSink implements Sink {
  readonly durableOnDeliver = false;
  private count = 0;
  private constructor(
    private readonly dir: string,
    private readonly target: TempFile,
  ) {}

  static async create(path: string): Promise<SingleFileSink> {
    // The temp of a run killed before its commit holds a partial copy of compliance data.
    await removeStaleTemps(dirname(path), { finalName: basename(path) });
    const target = await createTempBeside(path);
    return new SingleFileSink(await privateSpoolDir(), target);
  }

  alreadyStored(): Promise<boolean> {
    return Promise.resolve(false);
  }

  spool(): Promise<Spool> {
    return FileSpool.create(join(this.dir, `${this.count++}.part`), {
      emit: (chunk) => this.target.write(chunk),
    });
  }

  async finish(): Promise<void> {
    await this.target.commit();
    await removeSpoolDir(this.dir);
  }

  async abort(): Promise<void> {
    await this.target.discard();
    await removeSpoolDir(this.dir);
  }
}

/** `DIR/<event_type>/<YYYY-MM-DD of end_time>/<id>.jsonl[.gz]` (ids were checked to be safe). */
export function outputPath(root: string, file: LogFile, eventType: string, gzip: boolean): string {
  const day = new Date(Number(toMicros(file.end_time)! / 1000n)).toISOString().slice(0, 10);
  return join(root, eventType, day, `${file.id}.jsonl${gzip ? ".gz" : ""}`);
}

/** A temp file beside the final path, optionally gzip-compressed on the way in. */
class TreeSpool implements Spool {
  private temp!: TempFile;
  private plain!: WriteCoalescer;
  private gzip?: { writer: WritableStreamDefaultWriter<BufferSource>; pump: Promise<void> };

  constructor(private readonly path: string, private readonly compress: boolean) {}

  async start(): Promise<this> {
    const temp = this.temp = await createTempBeside(this.path);
    this.plain = new WriteCoalescer((bytes) => temp.write(bytes));
    if (this.compress) {
      const stream = new CompressionStream("gzip");
      const pump = (async () => {
        for await (const chunk of stream.readable) await temp.write(chunk);
      })();
      pump.catch(() => {}); // Surfaced by close() below.
      this.gzip = { writer: stream.writable.getWriter(), pump };
    }
    return this;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (!this.gzip) return this.plain.write(chunk);
    await this.gzip.writer.ready;
    await this.gzip.writer.write(chunk as Uint8Array<ArrayBuffer>);
  }

  async restart(): Promise<void> {
    await this.discard();
    await this.start();
  }

  async deliver(): Promise<void> {
    if (this.gzip) {
      await this.gzip.writer.close();
      await this.gzip.pump;
    } else {
      await this.plain.flush();
    }
    await this.temp.commit();
  }

  async discard(): Promise<void> {
    if (this.gzip) {
      await this.gzip.writer.abort().catch(() => {});
      await this.gzip.pump.catch(() => {});
      this.gzip = undefined;
    }
    await this.plain.abandon();
    await this.temp.discard();
  }
}

/** One file per log, each written once and atomically; re-runs skip what is already there. */
export class DirectorySink implements Sink {
  readonly durableOnDeliver = true;
  private readonly cleaned = new Set<string>();

  constructor(private readonly root: string, private readonly gzip: boolean) {}

  async alreadyStored(file: LogFile, eventType: string): Promise<boolean> {
    const path = outputPath(this.root, file, eventType, this.gzip);
    try {
      if (!(await stat(path)).isFile()) return false;
    } catch {
      return false;
    }
    if (file.file_size === undefined && file.file_sha256 === undefined) return true;
    const { bytes, sha256 } = await hashStoredFile(path, this.gzip);
    return (file.file_size === undefined || bytes === file.file_size) &&
      (file.file_sha256 === undefined || sha256 === file.file_sha256);
  }

  async spool(file: LogFile, eventType: string): Promise<Spool> {
    const path = outputPath(this.root, file, eventType, this.gzip);
    const dir = dirname(path);
    await ensureDir(dir);
    if (!this.cleaned.has(dir)) {
      // Temps of a run that was killed before it could rename them.
      this.cleaned.add(dir);
      await removeStaleTemps(dir);
    }
    return await new TreeSpool(path, this.gzip).start();
  }

  finish(): Promise<void> {
    return Promise.resolve();
  }

  abort(): Promise<void> {
    return Promise.resolve();
  }
}

/** Size and SHA-256 of a stored file's original bytes (decompressed when gzipped). */
async function hashStoredFile(
  path: string,
  gzip: boolean,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  let stream: ReadableStream<Uint8Array> = ReadableStream.from(fileChunks(path));
  if (gzip) {
    stream = stream.pipeThrough(
      new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
  }
  try {
    for await (const chunk of stream) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } catch {
    return { bytes: -1, sha256: "" }; // A corrupt archive is simply not "already stored".
  }
  return { bytes, sha256: hash.digest("hex") };
}

/** A file's bytes in 1 MiB chunks, so checking a 2 GiB file costs no more memory than a small one. */
async function* fileChunks(path: string): AsyncGenerator<Uint8Array> {
  const handle = await open(path, "r");
  try {
    const buffer = new Uint8Array(COPY_BUFFER_BYTES);
    while (true) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.slice(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
