/**
 * `--output-dir DIR`: one file per log at `DIR/<event_type>/<YYYY-MM-DD of end_time>/<id>.jsonl`
 * (`.jsonl.gz` with `--gzip`), each written once into a temp file beside it and renamed into
 * place as soon as it is verified. Confirmed per file (renamed and fsynced); re-runs skip a file
 * already there with the listed size and hash, so every file is stored exactly once.
 *
 * @example
 * ```ts
 * const destination = new DirectoryDestination("logs", false);
 * ```
 */
import { lstat, rename, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createHash } from "node:crypto";
import type { LogFile } from "../log_file.ts";
import {
  createTempBeside,
  directoryModeFor,
  ensureDir,
  OWNER_ONLY_FILE_MODE,
  removeStaleTemps,
  type TempFile,
} from "../atomic.ts";
import { type Layout, LAYOUT_OPTION, parseLayout, relativeKey } from "./layout.ts";
import { WriteCoalescer } from "./coalescer.ts";
import { fileChunks } from "../file_chunks.ts";
import type { Destination, Parcel, Spool } from "./contract.ts";
import type { DestinationEvents, DestinationKind, KeptAside } from "./kind.ts";
import { OUTPUT_MODE_OPTION, parseOutputMode } from "./output_mode.ts";
import { CliError, codeOf, reason, usage } from "../errors.ts";
import { StoredFactsTracker } from "../manifest/facts.ts";
import type { StoredFacts } from "../manifest/format.ts";
import { LocalArchiveStore } from "../manifest/local_store.ts";

/**
 * `DIR/<event_type>/<YYYY-MM-DD of end_time>/<id>.jsonl[.gz]` (ids were checked to be safe), or
 * with `--layout hive` `DIR/event_type=<T>/date=<YYYY-MM-DD>/<id>.jsonl[.gz]` (layout.ts).
 *
 * @example
 * ```ts
 * import type { LogFile } from "../log_file.ts";
 * const file: LogFile = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-02T10:00:00Z" };
 * outputPath("logs", file, "AUTH_LOG", true); // "logs/AUTH_LOG/2026-07-02/eclf_1.jsonl.gz"
 * ```
 */
export function outputPath(
  root: string,
  file: LogFile,
  eventType: string,
  gzip: boolean,
  layout: Layout = "plain",
): string {
  return join(root, ...relativeKey(file, eventType, { gzip, layout }).split("/"));
}

/** A temp file beside the final path, optionally gzip-compressed on the way in. */
class DirectorySpool implements Spool {
  private temp!: TempFile;
  private plain!: WriteCoalescer;
  private gzip?: { writer: WritableStreamDefaultWriter<BufferSource>; pump: Promise<void> };
  /** What the manifest records of the stored file (`key`: its path relative to the root). */
  private tracker!: StoredFactsTracker;

  constructor(
    private readonly path: string,
    private readonly compress: boolean,
    private readonly mode: number,
    private readonly key: string,
    /** The listing gave no SHA-256: the manifest records the downloaded bytes' own. */
    private readonly hashPlain = false,
  ) {}

  /** Where and how the file was stored, once committed. */
  facts(): StoredFacts {
    return this.tracker.facts();
  }

  async start(): Promise<this> {
    const temp = this.temp = await createTempBeside(this.path, this.mode);
    this.plain = new WriteCoalescer((bytes) => temp.write(bytes));
    const tracker = this.tracker = new StoredFactsTracker(this.key, {
      hashPlain: this.hashPlain && !this.compress,
    });
    if (this.compress) {
      const stream = new CompressionStream("gzip");
      const pump = (async () => {
        for await (const chunk of stream.readable) {
          tracker.stored(chunk);
          await temp.write(chunk);
        }
      })();
      pump.catch(() => {}); // Surfaced by close() below.
      this.gzip = { writer: stream.writable.getWriter(), pump };
    }
    return this;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.tracker.plain(chunk);
    if (!this.gzip) return this.plain.write(chunk);
    await this.gzip.writer.ready;
    await this.gzip.writer.write(chunk as Uint8Array<ArrayBuffer>);
  }

  async restart(): Promise<void> {
    await this.discard();
    await this.start();
  }

  /** Renames the file into place (fsynced): from now on it is stored. */
  async commit(): Promise<void> {
    if (this.gzip) {
      await this.gzip.writer.close();
      await this.gzip.pump;
    } else {
      await this.plain.flush();
      this.plain.release();
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
    this.plain.release();
    await this.temp.discard();
  }
}

/** One file per log, each written once and atomically; re-runs skip what is already there. */
export class DirectoryDestination implements Destination<DirectorySpool> {
  readonly guarantee = "confirmed";
  private readonly cleaned = new Set<string>();

  /** `fileMode`: the mode of the files it creates; directories it creates get theirs from it. */
  constructor(
    private readonly root: string,
    private readonly gzip: boolean,
    private readonly fileMode = OWNER_ONLY_FILE_MODE,
    private readonly layout: Layout = "plain",
    private readonly events?: Pick<DestinationEvents, "keptAside">,
  ) {}

  /**
   * Whether `file` is stored whole, in this run's form or the other (a `--gzip` run into a plain
   * archive, or the reverse, stores nothing twice). A stored file that no longer matches the
   * listing is evidence of tampering or damage: it is renamed aside (never deleted) and reported,
   * and the listed file is stored again.
   */
  async alreadyStored(file: LogFile, eventType: string): Promise<boolean> {
    for (const gzip of [this.gzip, !this.gzip]) {
      const path = outputPath(this.root, file, eventType, gzip, this.layout);
      const found = await storedState(path, gzip, file);
      if (found === "whole") return true;
      if (found !== "absent") {
        const key = relativeKey(file, eventType, { gzip, layout: this.layout });
        await this.#keepAside({
          file,
          eventType,
          path,
          key,
          size: found.bytes,
          sha256: found.sha256,
        });
      }
    }
    return false;
  }

  /** Renames an altered file to `<name>.altered-<UTC time>`, beside it. */
  async #keepAside(
    found: Omit<KeptAside, "aside" | "asideKey" | "size" | "sha256"> & {
      size: number;
      sha256: string;
    },
  ): Promise<void> {
    const { path } = found;
    const suffix = `.altered-${new Date().toISOString().replace(/[-:]/g, "")}`;
    const aside = path + suffix;
    try {
      await rename(path, aside);
    } catch (error) {
      throw new CliError(
        "io",
        `${path} no longer matches its listing and cannot be kept aside: ${reason(error)}; ` +
          `move it away by hand, then run again`,
        { cause: error },
      );
    }
    this.events?.keptAside({ ...found, aside, asideKey: found.key + suffix });
  }

  async spool(file: LogFile, eventType: string): Promise<DirectorySpool> {
    const path = outputPath(this.root, file, eventType, this.gzip, this.layout);
    const dir = dirname(path);
    await ensureDir(dir, directoryModeFor(this.fileMode));
    if (!this.cleaned.has(dir)) {
      // Temps of a run that was killed before it could rename them.
      this.cleaned.add(dir);
      await removeStaleTemps(dir);
    }
    const key = relativeKey(file, eventType, { gzip: this.gzip, layout: this.layout });
    const unhashed = file.file_sha256 === undefined;
    return await new DirectorySpool(path, this.gzip, this.fileMode, key, unhashed).start();
  }

  async deliver({ spool, receipt }: Parcel<DirectorySpool>): Promise<void> {
    await spool.commit();
    receipt.confirm(spool.facts());
  }

  finish(): Promise<void> {
    return Promise.resolve();
  }

  abort(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * What is at `path` for `file`: nothing (or not a regular file), the file whole (or a file the
 * listing pins neither size nor hash of), or a file that no longer matches the listing.
 */
async function storedState(
  path: string,
  gzip: boolean,
  file: LogFile,
): Promise<"absent" | "whole" | { bytes: number; sha256: string }> {
  try {
    if (!(await lstat(path)).isFile()) return "absent";
  } catch {
    return "absent";
  }
  if (file.file_size === undefined && file.file_sha256 === undefined) return "whole";
  const { bytes, sha256 } = await hashStoredFile(path, gzip);
  const whole = (file.file_size === undefined || bytes === file.file_size) &&
    (file.file_sha256 === undefined || sha256 === file.file_sha256);
  return whole ? "whole" : { bytes, sha256 };
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
  } catch (error) {
    // A file that cannot be read is an I/O problem to report, not a tampered file to set aside.
    if (codeOf(error) !== undefined) {
      throw new CliError("io", `cannot read the stored ${path}: ${reason(error)}`, {
        cause: error,
      });
    }
    return { bytes: -1, sha256: "" }; // Not valid gzip: corrupt, so not "already stored".
  }
  return { bytes, sha256: hash.digest("hex") };
}

/** `--output-dir DIR` on the registry. */
export const directoryKind: DestinationKind = {
  name: "directory",
  flag: "output-dir",
  schemes: [],
  options: {
    gzip: { type: "boolean", help: "with --output-dir, write .jsonl.gz" },
    ...LAYOUT_OPTION,
    ...OUTPUT_MODE_OPTION,
  },
  secretEnv: [],
  conflicts: {},
  configure(root, values) {
    const gzip = Boolean(values.gzip);
    const layout = parseLayout(values.layout);
    const mode = parseOutputMode(values["output-mode"]);
    return {
      label: `--output-dir ${root}`,
      guarantee: "confirmed",
      localFiles: [],
      check: () => refuseNonDirectory(root),
      archive: new LocalArchiveStore(root, mode),
      open: (events) => Promise.resolve(new DirectoryDestination(root, gzip, mode, layout, events)),
    };
  },
};

/** `--output-dir` naming something that is not a directory fails before any request. */
async function refuseNonDirectory(root: string): Promise<void> {
  try {
    if ((await stat(root)).isDirectory()) return;
  } catch (error) {
    if (codeOf(error) === "ENOENT") return; // Created with the first file.
    throw usage(`cannot use --output-dir ${root}: ${reason(error)}`);
  }
  throw usage(`--output-dir ${root} is not a directory; name a directory (or use -o for one file)`);
}
