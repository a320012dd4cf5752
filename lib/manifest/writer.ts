/**
 * The manifest of a run: opened by the session for a run that writes to an archive (or
 * `--manifest FILE`), told by each pass what it listed and, through a `ConfirmationListener`,
 * every file in the checkpoint's confirmation order; it writes one manifest per run (with
 * `--follow`, per poll that found anything new, and one an hour when none did), atomically and
 * under the archive's manifest lock, linked to the head of its job's chain.
 *
 * Lines are kept in memory until the manifest is written: a run that dies first loses them, and
 * the next run of the job finds the files it stored in no manifest and records them, marked
 * `recovered` (`recoverUnrecorded`, done when the writer opens).
 *
 * @example
 * ```ts
 * import { LocalArchiveStore } from "./local_store.ts";
 * const writer = await ManifestWriter.open({
 *   store: new LocalArchiveStore("logs"), principal: "ws-1", eventTypes: ["AUTH_LOG"], all: false,
 *   apiBase: "https://api.openai.com/v1", follow: false, listing: { settleMs: 0 },
 * });
 * writer.startEventType("AUTH_LOG", "2026-07-01T00:00:00Z");
 * // ... the pass, with writer.listener("AUTH_LOG") given to the confirmations
 * writer.listed("AUTH_LOG");
 * await writer.endPass();
 * ```
 */
import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import { publicationDelayMs } from "../event_types.ts";
import {
  type ConfirmationListener,
  quietCursor,
  type ReleasedFile,
} from "../destinations/confirmations.ts";
import type { KeptAside } from "../destinations/kind.ts";
import { redactValues } from "../errors.ts";
import { toMicros } from "../time.ts";
import { VERSION } from "../version.ts";
import { ChainHeads, parseManifest } from "./chain.ts";
import {
  type CloseLine,
  type FileLine,
  type GoneLine,
  headerLine,
  jobOf,
  type KeptAsideLine,
  lineHash,
  type ListedWindow,
  manifestName,
  type SkippedLine,
} from "./format.ts";
import { readManifests } from "./read_ahead.ts";
import type { Signer } from "./signing.ts";
import type { ArchiveStore, ManifestLock } from "./store.ts";
import { hashObject } from "./hash_object.ts";
import { ManifestFileStore } from "./local_store.ts";

// The listener's shape belongs to the confirmations that call it; named here for the writer's users.
export type { ConfirmationListener, ReleasedFile } from "../destinations/confirmations.ts";

/** With `--follow`, a poll that found nothing new still writes a manifest this often. */
export const QUIET_MANIFEST_MS = 3_600_000;

export interface ManifestWriterOptions {
  store: ArchiveStore;
  principal: string;
  /** The event types this run lists (what `all` resolved to, with `all`). */
  eventTypes: string[];
  all: boolean;
  apiBase: string;
  follow: boolean;
  /** How the run lists (what bounds a quiet window: `settleMs`, `before`). */
  listing: { settleMs: number; before?: string };
  signer?: Signer;
  /** Whether to record stored files no manifest names (default: yes). */
  recover?: boolean;
  now?: () => number;
  runId?: string;
}

type Unsigned<L> = Omit<L, "prev">;

export class ManifestWriter {
  readonly runId: string;
  readonly #options: ManifestWriterOptions;
  readonly #job: string;
  readonly #now: () => number;
  /** Entries (without `prev`, added when written) since the last manifest was written. */
  #entries: Array<
    Unsigned<FileLine> | Unsigned<GoneLine> | Unsigned<SkippedLine> | Unsigned<KeptAsideLine>
  > = [];
  /** Per event type: the window not yet written (from, and how far it reached). */
  #windows = new Map<string, { from: string; to?: string; listedAtMs: number }>();
  #passStartedMs: number;
  #lastWrittenMs: number;
  #written = 0;
  readonly #heads = new ChainHeads();
  /** Held while the run works (see `ArchiveStore.markLive`); let go by the final `endPass`. */
  #live: ManifestLock | undefined;

  private constructor(options: ManifestWriterOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.runId = options.runId ?? randomBytes(6).toString("hex");
    this.#job = jobOf(options.principal, options.all ? "all" : options.eventTypes);
    this.#passStartedMs = this.#now();
    this.#lastWrittenMs = this.#passStartedMs;
  }

  /** Opens the run's manifest, recording first the files stored earlier that no manifest names. */
  static async open(options: ManifestWriterOptions): Promise<ManifestWriter> {
    const writer = new ManifestWriter(options);
    if (options.recover !== false) await writer.#recoverUnrecorded();
    writer.#live = await options.store.markLive(writer.runId, options.eventTypes);
    return writer;
  }

  /** The job's chain this writer extends (principal and event types). */
  get job(): string {
    return this.#job;
  }

  /**
   * A stored file found altered was kept aside: both names and what the altered one holds go in
   * the manifest, so that `verify` reports it as an explained alteration, not an unexpected file.
   */
  keptAside(kept: KeptAside): void {
    this.#entries.push({
      type: "kept_aside",
      id: kept.file.id,
      event_type: kept.eventType,
      end_time: kept.file.end_time,
      path: kept.key,
      aside: kept.asideKey,
      aside_size: kept.size,
      aside_sha256: kept.sha256,
      recorded_at: new Date(this.#now()).toISOString(),
    });
  }

  /** A pass starts (a run, or a `--follow` poll). */
  startPass(): void {
    this.#passStartedMs = this.#now();
  }

  /** The pass lists `eventType` from `from` (its start cursor); kept when not yet written. */
  startEventType(eventType: string, from: string): void {
    const open = this.#windows.get(eventType);
    if (open) open.listedAtMs = this.#now();
    else this.#windows.set(eventType, { from, listedAtMs: this.#now() });
  }

  /** Hears `eventType`'s files in confirmation order. */
  listener(eventType: string): ConfirmationListener {
    return {
      released: (entry) => this.#released(eventType, entry),
      listingEnd: (after) => this.#listingEnd(eventType, after),
    };
  }

  /**
   * `eventType` was listed to its end: with nothing new, its window reaches the listing time less
   * the type's publication delay (and `settleMs`), never past `before`: no later time is proven.
   */
  listed(eventType: string): void {
    const { listing } = this.#options;
    const window = this.#windows.get(eventType);
    if (!window) return;
    const quiet = quietCursor({
      startAfter: window.from,
      listedAtMs: window.listedAtMs,
      publicationDelayMs: publicationDelayMs(eventType),
      settleMs: listing.settleMs,
      before: listing.before,
    });
    if (window.to === undefined || later(quiet, window.to)) window.to = quiet;
  }

  /**
   * The pass ended (done or failed): writes its manifest, unless under `--follow` it found nothing
   * new and one was written within the hour. `final`: the process ends (write what is pending).
   */
  async endPass(options: { final?: boolean; failed?: boolean } = {}): Promise<void> {
    try {
      const quiet = this.#entries.length === 0;
      // A run that failed before it stored or listed anything proves nothing: no manifest.
      if (options.failed && quiet && ![...this.#windows.values()].some((w) => w.to)) return;
      if (this.#options.follow && quiet) {
        const due = this.#now() - this.#lastWrittenMs >= QUIET_MANIFEST_MS;
        if (!due || options.final) return;
      }
      await this.#write();
    } finally {
      if (options.final) await this.#live?.release();
    }
  }

  #listingEnd(eventType: string, after: string): void {
    const window = this.#windows.get(eventType);
    if (window && (window.to === undefined || later(after, window.to))) window.to = after;
  }

  #released(eventType: string, entry: ReleasedFile): void {
    const { file } = entry;
    const at = new Date(this.#now()).toISOString();
    const window = this.#windows.get(eventType);
    if (window && (window.to === undefined || later(file.end_time, window.to))) {
      window.to = file.end_time;
    }
    const listed = {
      id: file.id,
      event_type: eventType,
      end_time: file.end_time,
    };
    if (entry.how === "gone") {
      this.#entries.push({ type: "gone", ...listed, reason: entry.reason, recorded_at: at });
      return;
    }
    if (entry.how === "passed") {
      // Already stored: recorded by the run that stored it (or recovered when this run opened).
      if (entry.skipReason === undefined) return;
      this.#entries.push({ type: "skipped", ...listed, reason: entry.skipReason, recorded_at: at });
      return;
    }
    // An archive that did not store the file this run (a fan-out that fed only the other
    // destination) recorded it when it did; a run without an archive records what it wrote.
    if (entry.stored === undefined && !(this.#options.store instanceof ManifestFileStore)) return;
    const line: Unsigned<FileLine> = {
      type: "file",
      ...listed,
      ...(file.file_name === undefined ? {} : { file_name: file.file_name }),
      ...(file.file_size === undefined ? {} : { file_size: file.file_size }),
      ...(file.file_sha256 === undefined ? {} : { file_sha256: file.file_sha256 }),
      ...(entry.stored ?? { path: "" }),
      delivered_at: at,
    };
    this.#entries.push(line);
  }

  /** Writes the pending entries as one manifest linked to the job's head, under the lock. */
  async #write(): Promise<void> {
    const { store, signer } = this.#options;
    const entries = this.#entries;
    const windows: Record<string, ListedWindow> = {};
    for (const [type, window] of this.#windows) {
      if (window.to === undefined) continue; // Neither listed to the end nor any file passed.
      windows[type] = {
        from: window.from,
        to: window.to,
        listed_at: new Date(window.listedAtMs).toISOString(),
      };
    }
    const startedAt = new Date(this.#passStartedMs);
    const lock = await store.lock();
    try {
      const head = await this.#heads.of(store, this.#job);
      // Free text from the server (file names) could echo the key: every value is redacted
      // before the line is made, so that a redaction never cuts into a JSON escape.
      const lines: string[] = [headerLine(
        redactValues({
          version: VERSION,
          runId: this.runId,
          startedAt: startedAt.toISOString(),
          apiBase: this.#options.apiBase,
          principal: this.#options.principal,
          eventTypes: this.#options.all ? ["all"] : this.#options.eventTypes,
          job: this.#job,
          sequence: (head?.sequence ?? 0) + 1,
          windows,
          prev: head?.hash ?? null,
        }) as Parameters<typeof headerLine>[0],
      )];
      let prev = lineHash(lines[0]);
      for (const entry of entries) {
        const text = JSON.stringify(redactValues({ ...entry, prev }));
        lines.push(text);
        prev = lineHash(text);
      }
      const close: CloseLine = {
        type: "close",
        lines: lines.length,
        head: prev,
        closed_at: new Date(this.#now()).toISOString(),
        prev,
      };
      if (signer) {
        const { signature, keyId } = await signer.sign(prev);
        close.signature = signature;
        close.key_id = keyId;
      }
      lines.push(JSON.stringify(close));
      let name = manifestName(startedAt, this.runId);
      if (this.#written > 0) name = name.replace(/\.jsonl$/, `-${this.#written + 1}.jsonl`);
      const text = lines.join("\n") + "\n";
      await lock.assertHeld(); // A lease lost meanwhile (taken over): write nothing.
      await store.writeManifest(name, text);
      // A store of one file (`--manifest FILE`) rewrites it: it is read again next time.
      if (store instanceof ManifestFileStore) this.#heads.forget(basename(store.path));
      else this.#heads.add(parseManifest(name, text));
    } finally {
      await lock.release();
    }
    this.#written++;
    this.#lastWrittenMs = this.#now();
    this.#entries = this.#entries.slice(entries.length);
    // The next manifest's windows start where these ended.
    for (const [type, window] of this.#windows) {
      if (window.to !== undefined) this.#windows.set(type, { from: window.to, listedAtMs: 0 });
    }
  }

  /**
   * Files stored under this job's event types that no manifest names (a run that died before
   * writing its manifest): each becomes a `recovered` line of this run's manifest, with its
   * stored size and hash (and the original's, when gzipped). Their `end_time` is the day they are
   * filed under: the listing that told the exact time was lost with the run.
   */
  async #recoverUnrecorded(): Promise<void> {
    const { store } = this.#options;
    const recorded = new Set<string>();
    for await (const { name, text } of readManifests(store, await store.manifests())) {
      const parsed = parseManifest(name, text);
      if (!(store instanceof ManifestFileStore)) this.#heads.add(parsed);
      for (const segment of parsed.segments) {
        for (const { line } of segment.entries) {
          if (line.type === "file") recorded.add(line.path);
        }
      }
    }
    const at = new Date(this.#now()).toISOString();
    // A run at work on a type has stored files its manifest will name: not ours to claim.
    const live = new Set((await store.liveRuns()).flat());
    const types = this.#options.eventTypes.filter((type) => !live.has(type));
    const prefixes = types.flatMap((type) => [type, `event_type=${type}`]);
    for await (const object of store.objects(prefixes)) {
      if (object.temp || recorded.has(object.path)) continue;
      const parsed = STORED_PATH.exec(object.path);
      if (!parsed || !types.includes(parsed[1])) continue;
      const [, eventType, day, id, gz] = parsed;
      const hashed = await hashObject(store, object.path, Boolean(gz));
      if (!hashed.ok) continue; // A damaged file is not claimed: verify reports it.
      const line: Unsigned<FileLine> = {
        type: "file",
        id,
        event_type: eventType,
        end_time: `${day}T00:00:00Z`,
        file_size: hashed.plainBytes,
        file_sha256: hashed.plainSha256,
        path: object.path,
        ...(gz ? { stored_size: hashed.storedBytes, stored_sha256: hashed.storedSha256 } : {}),
        lines: hashed.lines,
        delivered_at: at,
        recovered: true,
      };
      this.#entries.push(line);
    }
  }
}

/**
 * `<event_type>/<YYYY-MM-DD>/<id>.jsonl[.gz]`, or `event_type=<T>/date=<day>/...` (`--layout
 * hive`), as lib/destinations/layout.ts names them.
 */
export const STORED_PATH =
  /^(?:event_type=)?([A-Z0-9_]+)\/(?:date=)?(\d{4}-\d{2}-\d{2})\/([^/]+)\.jsonl(\.gz)?$/;

function later(a: string, b: string): boolean {
  return toMicros(a)! > toMicros(b)!;
}
