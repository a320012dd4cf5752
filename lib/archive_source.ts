/**
 * `--from-archive DIR`: an archive this tool wrote (`--output-dir`, a local directory or any
 * `ArchiveStore`, such as a bucket) read back as the run's source instead of the API, so that a
 * SIEM added later, or re-indexed, costs no API quota and needs no key.
 *
 * `ArchiveSource` has the API client's shape (`DeliveryClient`): it lists the files its
 * manifests record for the principal, per event type in `end_time` order (ties in the order the
 * manifests recorded them: the API's listing order), in pages from a cursor with the API's
 * semantics (`after` exclusive, `before` exclusive, `last_end_time` the page's last file), and
 * `download(file, spool)` copies a stored file into the spool while checking its bytes against
 * its manifest line: the stored size and SHA-256, and for a `.gz` file the decompressed SHA-256
 * too, the same comparisons `verify` makes (a line with no hash at all is refused, not trusted).
 * So the whole pipeline after it (destinations, confirmations, the run's own checkpoint, fan-out,
 * the summary) works unchanged. Each job's chain across its manifests must hold (`chainBreaks`):
 * a manifest removed from the middle would take its files with it unseen.
 *
 * A file a run recorded as `recovered` (stored by a run that died before its manifest) carries
 * only the day it is filed under as its `end_time`, which a feed may have passed meanwhile: it is
 * listed just after where the recording run's window started, which no feed had reached then.
 *
 * Files the manifests record as gone or skipped are passed over (`passOver`), and an event type
 * with nothing new gets a quiet cursor no later than what the archive's runs listed
 * (`completeUntil`): a cursor set by the clock would pass files the archive records later.
 * Each event type's listing reads the manifests as they are when it starts (`withSignal`), so a
 * `--follow` run sees what the archive's runs recorded since its last poll.
 *
 * @example
 * ```ts
 * import { LocalArchiveStore } from "./manifest/local_store.ts";
 * const archive = { label: "logs", store: new LocalArchiveStore("logs") };
 * const source = new ArchiveSource(archive, { principal: "ws-1", eventTypes: ["AUTH_LOG"] });
 * const page = await source.listPage({ eventType: "AUTH_LOG", limit: 100, after: "2026-07-01T00:00:00Z" });
 * ```
 */
import { createHash, type Hash } from "node:crypto";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { DeliveryClient } from "./delivery.ts";
import type { Downloaded } from "./download.ts";
import type { Spool } from "./destinations/contract.ts";
import type { DestinationContext } from "./destinations/kind.ts";
import { DESTINATIONS } from "./destinations/mod.ts";
import { CliError, codeOf, reason, usage } from "./errors.ts";
import { parseLocation } from "./locations.ts";
import type { ListPage, ListQuery, LogFile } from "./log_file.ts";
import { chainBreaks, type ChainLink, linkOf, parseManifest } from "./manifest/chain.ts";
import { readManifests } from "./manifest/read_ahead.ts";
import {
  type EntryLine,
  type FileLine,
  type GoneLine,
  MANIFEST_DIR,
  type SkippedLine,
} from "./manifest/format.ts";
import type { ArchiveSourceSettings } from "./settings.ts";
import { toMicros } from "./time.ts";

/** The command that explains a damaged archive in full. */
const VERIFY = "oai-compliance-logs verify";

/**
 * The archive `--from-archive` names, checked before any I/O: a local directory, or a URL of an
 * `--output-dir` kind whose archive can be read back. `outputDir`: the run's `--output-dir`, which
 * must not be the same archive (a run would read what it writes).
 *
 * @example
 * ```ts
 * declare const context: import("./destinations/kind.ts").DestinationContext;
 * const archive = configureArchiveSource("logs", context, undefined);
 * await archive.check();
 * ```
 */
export function configureArchiveSource(
  location: string,
  context: DestinationContext,
  outputDir: string | undefined,
): ArchiveSourceSettings {
  if (location === "") throw usage("--from-archive needs a directory (or a bucket URL)");
  if (outputDir !== undefined && sameLocation(location, outputDir)) {
    throw usage(
      `--from-archive ${location} and --output-dir ${outputDir} are the same archive: a run ` +
        "cannot feed an archive from itself; name another --output-dir, or -o for a SIEM",
    );
  }
  const parsed = parseLocation(location);
  const kinds = DESTINATIONS.filter((kind) => kind.flag === "output-dir");
  const kind = parsed.kind === "url"
    ? kinds.find((k) => k.schemes.includes(parsed.scheme) && (k.takes?.(location) ?? true))
    : kinds.find((k) => k.schemes.length === 0);
  if (!kind) {
    const schemes = kinds.flatMap((k) => k.schemes.map((s) => `${s}://`));
    throw usage(
      `--from-archive ${location}: not an archive this tool writes; it takes a local directory` +
        (schemes.length ? ` or a URL of ${schemes.join(", ")}` : ""),
    );
  }
  const store = kind.configure(location, {}, context).archive;
  if (!store) {
    throw usage(`--from-archive ${location}: a ${kind.name} archive cannot be read back yet`);
  }
  return {
    label: location,
    store,
    check: async () => {
      if (parsed.kind === "path") {
        await refuseMissingDirectory(location);
        if (outputDir !== undefined) await refuseSameDirectory(location, outputDir);
      }
      // Not the kind's own check, which proves a bucket takes writes: a feed only reads, and its
      // credentials may be read-only. Listing the manifests proves the bucket and the access.
      if ((await store.manifests()).length === 0) {
        throw usage(
          `--from-archive ${location} holds no manifests (${MANIFEST_DIR}/): name an ` +
            "--output-dir archive this tool wrote",
        );
      }
    },
  };
}

/** Whether two archive locations name one archive (paths resolved, URLs without a final `/`). */
function sameLocation(a: string, b: string): boolean {
  const norm = (text: string) => {
    const location = parseLocation(text);
    return location.kind === "path" ? resolve(location.path) : text.replace(/\/+$/, "");
  };
  return norm(a) === norm(b);
}

/** The same directory under two names (a symbolic link, a bind mount) is refused too. */
async function refuseSameDirectory(location: string, outputDir: string): Promise<void> {
  if (parseLocation(outputDir).kind !== "path") return;
  const [a, b] = await Promise.all(
    [location, outputDir].map((p) => stat(p).catch(() => undefined)),
  );
  // An inode of 0 is a file system that does not give one: nothing to compare.
  if (a && b && a.ino > 0 && a.dev === b.dev && a.ino === b.ino) {
    throw usage(
      `--from-archive ${location} and --output-dir ${outputDir} are the same directory: a run ` +
        "cannot feed an archive from itself; name another --output-dir, or -o for a SIEM",
    );
  }
}

async function refuseMissingDirectory(path: string): Promise<void> {
  try {
    if ((await stat(path)).isDirectory()) return;
  } catch (error) {
    throw usage(`cannot read --from-archive ${path}: ${reason(error)}`);
  }
  throw usage(`--from-archive ${path} is not a directory; name an --output-dir archive`);
}

/**
 * What the source keeps of a file line: enough to list the file and check its bytes. `floor`,
 * for a recovered line: where its run's window for the type started (see `#build`).
 */
type KeptFile =
  & Pick<
    FileLine,
    | "recovered"
    | "type"
    | "id"
    | "event_type"
    | "end_time"
    | "file_name"
    | "file_size"
    | "file_sha256"
    | "path"
    | "stored_size"
    | "stored_sha256"
  >
  & { floor?: string };

/** A manifest line as the source keeps it (an archive of a year holds half a million). */
type KeptLine =
  | KeptFile
  | Pick<GoneLine | SkippedLine, "type" | "id" | "event_type" | "end_time" | "reason">;

/** The part of `line` the source keeps; undefined for a line it has no use for. */
function keep(line: EntryLine): KeptLine | undefined {
  const { id, event_type, end_time } = line;
  if (line.type === "gone" || line.type === "skipped") {
    return { type: line.type, id, event_type, end_time, reason: line.reason };
  }
  // A file kept aside was stored again, and recorded again: that line is the one to go by.
  if (line.type !== "file") return undefined;
  const { file_name, file_size, file_sha256, path, stored_size, stored_sha256, recovered } = line;
  return {
    ...(recovered ? { recovered } : {}),
    type: "file",
    id,
    event_type,
    end_time,
    file_name,
    file_size,
    file_sha256,
    path,
    stored_size,
    stored_sha256,
  };
}

/** One stored file as the listing hands it out, with the manifest line that vouches for it. */
interface IndexedFile {
  kind: "file";
  file: LogFile;
  micros: bigint;
  /** The last line recording it (a file kept aside and stored again is recorded anew). */
  line: KeptFile;
  manifest: string;
  order: number;
}

/** A file the archive's runs recorded as gone or skipped: listed, then passed over. */
interface IndexedPass {
  kind: "pass";
  file: LogFile;
  micros: bigint;
  reason: string;
  order: number;
}

type Indexed = IndexedFile | IndexedPass;

/** What one event type's listing sees: its files in order, and how far the archive's runs listed. */
interface TypeIndex {
  entries: Indexed[];
  byId: Map<string, Indexed>;
  /** The latest `to` of the windows the archive's runs listed for the type, if any. */
  listedTo?: string;
}

/** One manifest as read, kept for later views (an archive's manifests are written once). */
interface ReadManifest {
  entries: KeptLine[];
  /** Each of the principal's runs in it: its place in its job's chain. */
  links: ChainLink[];
  /** Per event type, the latest window end the manifest's runs of this principal reached. */
  windows: Map<string, string>;
}

/** Whose files the source lists: a principal, and the event types asked (undefined: all). */
export interface ArchiveSelection {
  principal: string;
  eventTypes?: readonly string[];
}

/** The manifests read so far and what they hold of one principal, shared by every view. */
class ManifestCache {
  readonly #read = new Map<string, ReadManifest>();

  readonly #eventTypes: ReadonlySet<string> | undefined;

  /** `eventTypes`: the types the run asks for (other lines are not kept); undefined: all. */
  constructor(
    readonly archive: Pick<ArchiveSourceSettings, "label" | "store">,
    readonly selection: ArchiveSelection,
  ) {
    this.#eventTypes = selection.eventTypes && new Set(selection.eventTypes);
  }

  /**
   * Every manifest of the archive, reading only those not read before. A job's chain across its
   * manifests must hold too: a manifest removed from the middle would take its files with it
   * unseen, so the run stops and `verify` tells the rest.
   */
  async all(): Promise<Array<[string, ReadManifest]>> {
    const names = await this.archive.store.manifests();
    const unread = names.filter((name) => !this.#read.has(name));
    for await (const { name, text } of readManifests(this.archive.store, unread)) {
      this.#read.set(name, this.#parse(name, text));
    }
    const read = names.map((name): [string, ReadManifest] => [name, this.#read.get(name)!]);
    const [broken] = chainBreaks(read.flatMap(([, manifest]) => manifest.links));
    if (broken) {
      const { label } = this.archive;
      throw new CliError(
        "integrity",
        `the manifests (${MANIFEST_DIR}/) of --from-archive ${label} do not form one chain for ` +
          `job ${broken.job}: ${broken.why}; the files a missing or replaced manifest recorded ` +
          `cannot be vouched for, so nothing more is read; \`${VERIFY} ${label}\` reports the ` +
          "whole archive",
      );
    }
    return read;
  }

  /**
   * The principal's lines of one manifest. A manifest whose lines do not link (changed, removed,
   * inserted) cannot vouch for any file it names: the run stops and `verify` tells the rest.
   */
  #parse(name: string, text: string): ReadManifest {
    const parsed = parseManifest(name, text);
    const ours = parsed.segments.filter((s) =>
      s.header.line.principal === this.selection.principal
    );
    const damage = parsed.damage.find((d) =>
      ours.length > 0 || parsed.segments.length === 0 || d.line < parsed.segments[0].header.number
    );
    if (damage) {
      throw new CliError(
        "integrity",
        `${MANIFEST_DIR}/${name} of --from-archive ${this.archive.label} is damaged at line ` +
          `${damage.line} (${damage.why}): it cannot vouch for the files it records; nothing ` +
          `was read from it; \`${VERIFY} ${this.archive.label}\` reports the whole archive`,
      );
    }
    const entries: ReadManifest["entries"] = [];
    const windows = new Map<string, string>();
    for (const segment of ours) {
      for (const [type, window] of Object.entries(segment.header.line.windows ?? {})) {
        const known = windows.get(type);
        if (known === undefined || micros(window.to) > micros(known)) windows.set(type, window.to);
      }
      for (const { line } of segment.entries) {
        if (this.#eventTypes && !this.#eventTypes.has(line.event_type)) continue;
        const kept = keep(line);
        if (kept?.type === "file" && kept.recovered) {
          const from = segment.header.line.windows?.[line.event_type]?.from;
          if (from !== undefined) kept.floor = from;
        }
        if (kept) entries.push(kept);
      }
    }
    return { entries, windows, links: ours.map(linkOf) };
  }
}

/**
 * The archive as the run's source of files, in the API client's shape (see the module doc).
 * `signal` ends its reads; `withSignal` makes a view with a fresh look at the manifests.
 */
export class ArchiveSource implements DeliveryClient {
  readonly #cache: ManifestCache;
  readonly #signal: AbortSignal | undefined;
  /** This view's index per event type, made at its first listing. */
  readonly #types = new Map<string, Promise<TypeIndex>>();
  /** The same, once made (for the calls that cannot wait). */
  readonly #resolved = new Map<string, TypeIndex>();

  constructor(
    archive: Pick<ArchiveSourceSettings, "label" | "store">,
    selection: ArchiveSelection,
    signal?: AbortSignal,
    cache?: ManifestCache,
  ) {
    this.#cache = cache ?? new ManifestCache(archive, selection);
    this.#signal = signal;
  }

  get #label(): string {
    return this.#cache.archive.label;
  }

  /** A view whose reads `signal` also ends, reading the manifests as they are now. */
  withSignal(signal: AbortSignal): ArchiveSource {
    const outer = this.#signal;
    return new ArchiveSource(
      this.#cache.archive,
      this.#cache.selection,
      outer ? AbortSignal.any([outer, signal]) : signal,
      this.#cache,
    );
  }

  /** One page from `query.after` (exclusive), with every file of its last `end_time` on it. */
  async listPage(query: ListQuery): Promise<ListPage> {
    const { entries } = await this.#index(query.eventType);
    const after = micros(query.after);
    const before = query.before === undefined ? undefined : micros(query.before);
    let start = firstAfter(entries, after);
    const data: LogFile[] = [];
    const inRange = (at: number) =>
      at < entries.length && (before === undefined || entries[at].micros < before);
    while (inRange(start) && data.length < query.limit) data.push(entries[start++].file);
    // Files of one end_time stay on one page: the next page starts after that time.
    while (
      data.length > 0 && inRange(start) && entries[start].micros === entries[start - 1].micros
    ) {
      data.push(entries[start++].file);
    }
    return {
      data,
      has_more: inRange(start),
      last_end_time: data.length === 0 ? null : data[data.length - 1].end_time,
    };
  }

  /** Why `file` is not to be read (the archive's runs recorded it gone or skipped), if so. */
  passOver(file: LogFile): string | undefined {
    const entry = this.#known(file);
    return entry?.kind === "pass" ? entry.reason : undefined;
  }

  /**
   * The time up to which the archive holds all it will of `eventType`: what its runs listed. A
   * quiet cursor goes no further (the epoch when no run listed the type: it does not move).
   */
  completeUntil(eventType: string): string {
    return this.#resolved.get(eventType)?.listedTo ?? EPOCH;
  }

  /**
   * Copies the stored file into `spool` in bounded chunks (decompressed when stored as `.gz`)
   * and resolves once its bytes match its manifest line; else an integrity error naming the
   * file, after which the spool is discarded by the delivery and nothing of it is sent.
   */
  async download(
    file: LogFile,
    spool: Spool,
    hooks: { onNote?: (text: string) => void } = {},
  ): Promise<Downloaded> {
    const entry = this.#known(file);
    if (entry?.kind !== "file") throw new Error(`${file.id} was not listed by this archive`);
    const { line, manifest } = entry;
    const where = `${this.#label.replace(/\/+$/, "")}/${line.path}`;
    if ((line.stored_sha256 ?? line.file_sha256) === undefined) {
      throw new CliError(
        "integrity",
        `${MANIFEST_DIR}/${manifest} records no hash for ${where} (${file.id}, ` +
          `${file.event_type}; the listing gave none, and the run that stored it was of a version ` +
          "that recorded none of its own): its bytes cannot be checked, so nothing of it was " +
          "sent and the checkpoint stays before it",
      );
    }
    hooks.onNote?.(`reading ${where} (recorded in ${MANIFEST_DIR}/${manifest})`);
    const gzip = line.path.endsWith(".gz");
    const stored = new Tally();
    const plain = gzip ? new Tally() : stored;
    const signal = this.#signal;
    const raw = (async function* (chunks: AsyncIterable<Uint8Array>) {
      for await (const chunk of chunks) {
        signal?.throwIfAborted();
        stored.update(chunk);
        yield chunk;
      }
    })(this.#cache.archive.store.read(line.path));
    const chunks: AsyncIterable<Uint8Array> = gzip
      ? ReadableStream.from(raw).pipeThrough(
        new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
      )
      : raw;
    let lastByte: number | undefined;
    const why: string[] = [];
    try {
      for await (const chunk of chunks) {
        if (gzip) plain.update(chunk);
        if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
        await spool.write(chunk);
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (error instanceof CliError) throw error;
      if (codeOf(error) === "ENOENT") why.push("not in the archive");
      else if (codeOf(error) !== undefined || !gzip) {
        throw new CliError("io", `cannot read ${where}: ${reason(error)}`, { cause: error });
      } else why.push(`not a valid gzip stream (${reason(error)})`);
    }
    if (why.length === 0) why.push(...mismatches(line, stored, plain, gzip));
    if (why.length > 0) {
      throw new CliError(
        "integrity",
        `${where} (${file.id}, ${file.event_type}) is not what ${MANIFEST_DIR}/${manifest} ` +
          `recorded: ${why.join("; ")}; nothing of it was sent, the checkpoint stays before ` +
          `it; \`${VERIFY} ${this.#label}\` reports the whole archive`,
      );
    }
    return { bytes: plain.bytes, sha256: plain.digest(), lastByte };
  }

  #known(file: LogFile): Indexed | undefined {
    return this.#resolved.get(file.event_type)?.byId.get(file.id);
  }

  #index(eventType: string): Promise<TypeIndex> {
    let index = this.#types.get(eventType);
    if (!index) {
      index = this.#build(eventType);
      this.#types.set(eventType, index);
    }
    return index;
  }

  async #build(eventType: string): Promise<TypeIndex> {
    const byId = new Map<string, Indexed>();
    let listedTo: string | undefined;
    let order = 0;
    for (const [name, read] of await this.#cache.all()) {
      const listedBefore = listedTo;
      const to = read.windows.get(eventType);
      if (to !== undefined && (listedTo === undefined || micros(to) > micros(listedTo))) {
        listedTo = to;
      }
      for (const line of read.entries) {
        if (line.event_type !== eventType) continue;
        order++;
        const earlier = byId.get(line.id);
        const file: LogFile = {
          id: line.id,
          event_type: line.event_type,
          end_time: line.end_time,
        };
        if (line.type === "file") {
          if (line.path === "") continue; // A run without an archive (--manifest FILE) wrote it.
          if (line.recovered) file.end_time = recoveredAt(line, listedBefore);
          if (line.file_name !== undefined) file.file_name = line.file_name;
          if (line.file_size !== undefined) file.file_size = line.file_size;
          if (line.file_sha256 !== undefined) file.file_sha256 = line.file_sha256;
          // Recorded again (kept aside and stored anew): the last line vouches, in its first place.
          byId.set(line.id, {
            kind: "file",
            file,
            micros: micros(file.end_time),
            line,
            manifest: name,
            order: earlier?.order ?? order,
          });
        } else if (!earlier) {
          const reason = line.type === "gone"
            ? `recorded as gone from the API (${line.reason}) in ${MANIFEST_DIR}/${name}`
            : `skipped by the archive's operator (${line.reason}), ${MANIFEST_DIR}/${name}`;
          byId.set(line.id, { kind: "pass", file, micros: micros(line.end_time), reason, order });
        }
      }
    }
    const entries = [...byId.values()].sort((a, b) =>
      a.micros < b.micros ? -1 : a.micros > b.micros ? 1 : a.order - b.order
    );
    const index: TypeIndex = { entries, byId, listedTo };
    this.#resolved.set(eventType, index);
    return index;
  }
}

const EPOCH = "1970-01-01T00:00:00Z";

function micros(iso: string): bigint {
  return toMicros(iso) ?? 0n;
}

/**
 * Where a recovered file is listed. Its line's `end_time` is the day it is filed under (the run
 * that listed it died first), which a feed's cursor may have passed before the file was recorded:
 * it is listed just after where its recording run's window started (or, without one, the latest
 * window end of the manifests before it), which no feed could have passed when it was recorded.
 */
function recoveredAt(line: KeptFile, listedBefore: string | undefined): string {
  const floor = line.floor ?? listedBefore;
  if (floor === undefined) return line.end_time;
  const after = micros(floor) + 1n;
  return after > micros(line.end_time) ? isoOfMicros(after) : line.end_time;
}

/** RFC 3339 UTC with microseconds, as `toMicros` reads it back. */
function isoOfMicros(value: bigint): string {
  const seconds = new Date(Number(value / 1_000_000n) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${String(value % 1_000_000n).padStart(6, "0")}Z`;
}

/** The index of the first entry later than `after` (entries sorted by time). */
function firstAfter(entries: Indexed[], after: bigint): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (entries[middle].micros <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Bytes and SHA-256 of one form of a file (as stored, or decompressed). */
class Tally {
  bytes = 0;
  readonly #hash: Hash = createHash("sha256");
  #digest: string | undefined;
  update(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.#hash.update(chunk);
  }
  digest(): string {
    return this.#digest ??= this.#hash.digest("hex");
  }
}

/**
 * How the bytes read differ from the manifest line, as `verify` says it: the stored size and
 * hash (the listed ones when the file is stored as listed), then a `.gz` file's decompressed
 * size and hash against the listing's.
 */
function mismatches(line: KeptFile, stored: Tally, plain: Tally, gzip: boolean): string[] {
  const storedSize = line.stored_size ?? line.file_size;
  const storedSha = line.stored_sha256 ?? line.file_sha256;
  if (storedSize !== undefined && stored.bytes !== storedSize) {
    return [`size ${stored.bytes} bytes, the manifest says ${storedSize}`];
  }
  if (storedSha !== undefined && stored.digest() !== storedSha) {
    return [`SHA-256 ${stored.digest()}, the manifest says ${storedSha}`];
  }
  if (!gzip || line.stored_sha256 === undefined) return [];
  if (line.file_size !== undefined && plain.bytes !== line.file_size) {
    return [`decompressed size ${plain.bytes} bytes, the listing said ${line.file_size}`];
  }
  if (line.file_sha256 !== undefined && plain.digest() !== line.file_sha256) {
    return [`decompressed SHA-256 ${plain.digest()}, the listing said ${line.file_sha256}`];
  }
  return [];
}
