/**
 * What the object-store destinations (S3 in `s3.ts`, Azure Blob in `azure.ts`) share: one
 * `Destination` over a small `ObjectStore` adapter, which only signs requests and speaks its
 * store's wire format. Everything else lives here once:
 *
 * - the key layout (`PREFIX/<event_type>/<YYYY-MM-DD>/<id>.jsonl[.gz]`, or hive, `layout.ts`);
 * - the idempotent re-run: `alreadyStored` lists each day's prefix once per pass (where the store
 *   lists), so a key not there costs no request; a key there is HEADed and the listing's size and
 *   SHA-256 compared with its metadata (`META_SHA256`, `META_SIZE`), so a whole object is skipped
 *   and an altered one is kept and reported as kept aside (`onKeptAside`, as a local directory's
 *   renamed file), then written again: where the bucket keeps versions the altered one stays as
 *   its version; where it does not it is first copied server-side to `<key>.altered-<UTC time>`;
 * - spools: each download lands in a private file of this run's spool directory
 *   (lib/destinations/spool_dir.ts; gzip-compressed on the way in with `--gzip`), read back into
 *   one buffer per upload (of the object's own size, or of `partBytes`; reused by later uploads),
 *   so memory stays bounded whatever the file's size; a single PUT is signed with the SHA-256
 *   already computed of the spool's bytes on their way in, not hashed again;
 * - uploads: one PUT up to `partBytes`, else a multipart (block) upload whose parts are sent one
 *   after another; a failed one is aborted; uploads a killed run left behind under the prefix are
 *   aborted when the destination first opens;
 * - retries of every request with backoff and `Retry-After` (lib/retry.ts): an adapter throws a
 *   `TransientError` for what another try may cure (500, 503, SlowDown, ServerBusy, a reset) and
 *   a `CliError` for what it cannot (403, 404), which fails the run at once;
 * - confirmation only after the store confirmed (the adapter resolves `put` / `completeUpload`
 *   only on the store's success answer, checked: PUT 200 with the right ETag, CompleteMultipart
 *   Upload 200 with the right ETag, Put Block List 201);
 * - uploads overlap downloads: `deliver` starts an upload and returns while at most `inFlight`
 *   run; `finish` waits for them all.
 *
 * ## The adapter (`ObjectStore`)
 *
 * Each method makes ONE attempt (the core retries) and resolves only on the store's success:
 *
 * - `check(needs)`: before any download: the bucket/container exists, the credentials can write,
 *   the clock agrees with the store's `Date`, and (when `needs.retention`) the bucket can retain
 *   objects; throws one clear `CliError` line otherwise.
 * - `head(key)`: the object's size and metadata (names lowercased, without the store's prefix),
 *   or undefined when there is none.
 * - `put(key, payload, options)`: the whole object from memory, with the payload's SHA-256 (S3's
 *   signed payload) or MD5 (Azure's Content-MD5) sent so that the store itself rejects corrupted
 *   bytes.
 * - `startUpload(key, options)` -> an upload id; `putPart(key, uploadId, number, payload)` -> the
 *   part's tag (an ETag, or a block id); `completeUpload(key, uploadId, parts, options)`;
 *   `abortUpload(key, uploadId)`. Part numbers count from 1. `options` are given at both start
 *   and completion (S3 takes metadata and retention at start, Azure at Put Block List).
 * - `staleUploads(prefix)`: unfinished uploads under `prefix` (with when they started, where the
 *   store says), for the clean-up of a killed run.
 * - `readBack(key, versionId?)` (optional): the size and SHA-256 of what an object (or one
 *   version of it) holds, read in bounded chunks, for the record of an altered object kept aside.
 * - `copyAside(key, asideKey, seen)` (optional): a server-side copy of the altered object HEAD
 *   saw (`seen`, its size and ETag) to `asideKey`, resolved only once the copy is confirmed
 *   (complete, of that size, and that ETag where the store keeps it), for a store that keeps no
 *   versions: the altered object is evidence and is never written over before it is kept.
 * - `versionParameter`: the query parameter that names a version in its URLs (`versionId` on S3,
 *   `versionid` on Azure), for the name of a version kept aside.
 * - `maxParts`: how many parts an upload may have (10,000 on S3, 50,000 on Azure); the core
 *   makes parts larger for objects that need more.
 *
 * @example
 * ```ts
 * declare const store: ObjectStore;
 * const destination = new ObjectStoreDestination(store, {
 *   prefix: "logs/",
 *   naming: { gzip: false, layout: "plain" },
 * });
 * ```
 */
import { createHash } from "node:crypto";
import { type FileHandle, open, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { LogFile } from "../log_file.ts";
import { CliError, reason, TransientError } from "../errors.ts";
import { parseRetryAfter, type RetryNotice, type RetryPolicy, withRetries } from "../retry.ts";
import type { Env } from "../settings.ts";
import type { Destination, Parcel, Spool } from "./contract.ts";
import type { KeptAside } from "./kind.ts";
import { type KeyLayout, relativeKey } from "./layout.ts";
import { WriteCoalescer } from "./coalescer.ts";
import { createSpoolDir, type SpoolDir } from "./spool_dir.ts";
import { SpoolMemory } from "./_spool_memory.ts";
import { Allowance } from "./_allowance.ts";
import { StoredFactsTracker } from "../manifest/facts.ts";
import type { StoredFacts } from "../manifest/format.ts";

/** Metadata names of the listing's SHA-256 (hex) and size (decimal bytes) of the original file. */
export const META_SHA256 = "sha256";
export const META_SIZE = "size";

/** Default size of one part, and the largest object sent in one PUT: 8 MiB. */
export const DEFAULT_PART_BYTES = 8 * 1024 * 1024;
/** Uploads in flight at once by default (each holds one part in memory at most). */
export const DEFAULT_IN_FLIGHT = 4;
/**
 * The most bytes the spools of small files hold in memory at once (`SpoolMemory`): room for the
 * files of four downloads and four uploads of 2 MiB, and for more smaller ones.
 */
export const DEFAULT_SPOOL_MEMORY_BYTES = 16 * 1024 * 1024;
/**
 * The most bytes of request bodies on their way at once, across uploads: four small files, or two
 * parts of 8 MiB. Each body is copied by the runtime as it is sent, and those copies are garbage
 * the collector frees late: four uploads of 8 MiB parts at once peaked near 200 MB.
 */
export const DEFAULT_SENDING_BYTES = 16 * 1024 * 1024;

/** The default retry policy of store requests (5 retries, 1 s doubling, at most 30 s a wait). */
export const STORE_RETRY_POLICY: RetryPolicy = { retries: 5, backoffMs: 1_000, maxWaitMs: 30_000 };

/** For tests only: the first backoff of store retries, in ms (`OAI_COMPLIANCE_STORE_BACKOFF_MS`). */
export function storeRetryPolicy(env: Env): RetryPolicy {
  const backoff = Number(env.OAI_COMPLIANCE_STORE_BACKOFF_MS);
  return Number.isFinite(backoff) && backoff >= 0 && env.OAI_COMPLIANCE_STORE_BACKOFF_MS
    ? { ...STORE_RETRY_POLICY, backoffMs: backoff }
    : STORE_RETRY_POLICY;
}

/** An object's bytes in memory with their digests: the store checks them on arrival. */
export interface Payload {
  bytes: Uint8Array;
  /** Hex SHA-256 of `bytes` (S3's `x-amz-content-sha256`). */
  sha256: string;
  /** Base64 MD5 of `bytes` (`Content-MD5`). */
  md5: string;
}

/** Write-once retention of an object (S3 Object Lock, Azure immutability policy). */
export interface Retention {
  mode: "governance" | "compliance";
  until: Date;
}

/** What an object is stored with. */
export interface PutOptions {
  /** Metadata names (lowercase letters and digits) to values. */
  metadata: Record<string, string>;
  contentType: string;
  retention?: Retention;
}

/** An object as HEAD sees it. */
export interface StoredObject {
  size: number;
  /** Metadata, names lowercased and without the store's prefix (`x-amz-meta-`, `x-ms-meta-`). */
  metadata: Record<string, string>;
  /** The version HEAD found, where the bucket keeps versions (S3's `null` version is none). */
  versionId?: string;
  /** Its ETag, quotes kept, where the store gave one. */
  etag?: string;
  /** Its stored `Content-MD5` (base64), where the store keeps one for the object (Azure). */
  md5?: string;
  /** Its `Content-Type`, where the store gave one (a copy made in parts sets it again). */
  contentType?: string;
}

/** What an object holds, read back from the store. */
export interface ReadBack {
  size: number;
  /** Hex SHA-256 of its bytes. */
  sha256: string;
}

/** One uploaded part: its number (from 1), its tag from the store, and its size. */
export interface UploadedPart {
  number: number;
  tag: string;
  bytes: number;
}

/** An upload a run started and never finished. */
export interface StaleUpload {
  key: string;
  uploadId: string;
  /** When the store says it started; undefined where it does not say. */
  initiated?: Date;
}

/** One store's wire format and signing; see the module's doc comment. */
export interface ObjectStore {
  /** How it is named in messages, e.g. `s3://bucket/prefix`. */
  readonly label: string;
  readonly maxParts: number;
  check(needs: { retention: boolean }): Promise<void>;
  head(key: string, signal?: AbortSignal): Promise<StoredObject | undefined>;
  put(key: string, payload: Payload, options: PutOptions, signal?: AbortSignal): Promise<void>;
  startUpload(key: string, options: PutOptions, signal?: AbortSignal): Promise<string>;
  putPart(
    key: string,
    uploadId: string,
    number: number,
    payload: Payload,
    signal?: AbortSignal,
  ): Promise<string>;
  completeUpload(
    key: string,
    uploadId: string,
    parts: UploadedPart[],
    options: PutOptions,
    signal?: AbortSignal,
  ): Promise<void>;
  abortUpload(key: string, uploadId: string, signal?: AbortSignal): Promise<void>;
  staleUploads(prefix: string, signal?: AbortSignal): Promise<StaleUpload[]>;
  /**
   * The size and SHA-256 of an object's bytes (of one version, given `versionId`), read in bounded
   * chunks: what an altered object holds, for the kept-aside record (stores without it, and
   * without `copyAside`, report an altered object as a warning).
   */
  readBack?(key: string, versionId?: string, signal?: AbortSignal): Promise<ReadBack>;
  /**
   * Copies the object `seen` at `key` to `asideKey` within the store, resolved only once the
   * store confirmed a complete copy of it (a store without versions keeps the evidence this way).
   */
  copyAside?(
    key: string,
    asideKey: string,
    seen: StoredObject,
    signal?: AbortSignal,
  ): Promise<void>;
  /** The query parameter naming a version in the store's URLs (default `versionId`). */
  readonly versionParameter?: string;
  /**
   * One page of keys under `prefix` (`ObjectAccess.listPage`), where the store lists: the
   * idempotent re-run lists each day's prefix once instead of a HEAD before every upload.
   */
  listPage?(
    prefix: string,
    next?: string,
    signal?: AbortSignal,
  ): Promise<{ objects: Array<{ key: string }>; next?: string }>;
}

/** How an object-store destination stores its files. */
export interface ObjectStoreSettings {
  /** Key prefix: empty, or ending in `/`. */
  prefix: string;
  naming: KeyLayout;
  /** Days of write-once retention for every object (`--retain-days`), with its mode. */
  retain?: { days: number; mode: "governance" | "compliance" };
  policy?: RetryPolicy;
  /** Part size (and the largest single PUT); default `DEFAULT_PART_BYTES`. */
  partBytes?: number;
  /** Uploads at once; default `DEFAULT_IN_FLIGHT`. */
  inFlight?: number;
  /** Bytes of small files held in memory instead of temporary files; default `DEFAULT_SPOOL_MEMORY_BYTES`. */
  spoolMemoryBytes?: number;
  /** Bytes of request bodies sent at once, across uploads; default `DEFAULT_SENDING_BYTES`. */
  sendingBytes?: number;
  /** Told about each retry (a reporter note); default silent. */
  onRetry?: (notice: RetryNotice) => void;
  /** Told about an object found altered and written again (where the store cannot keep it). */
  onNote?: (text: string) => void;
  /**
   * Told about an object found altered and kept before the listed file is written again: as the
   * older version (the bucket keeps versions) or as a copy `<key>.altered-<UTC time>` beside it.
   */
  onKeptAside?: (kept: KeptAside) => void;
  /** Uploads that started before this are a killed run's (default: when the destination opened). */
  staleBefore?: Date;
}

/**
 * `PREFIX` of an `s3://BUCKET/PREFIX`-style URL path as a key prefix: no leading `/`, ending in
 * `/` unless empty, and no empty, `.` or `..` segment.
 *
 * @example
 * ```ts
 * keyPrefix("/logs/openai"); // "logs/openai/"
 * keyPrefix(""); // ""
 * ```
 */
export function keyPrefix(path: string): string {
  const segments = path.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === "." || s === "..")) {
    throw new CliError("usage", `the prefix ${path} has a '.' or '..' segment (see --help)`);
  }
  return segments.length ? segments.join("/") + "/" : "";
}

/** The object key of `file` under `prefix`. */
export function objectKey(
  prefix: string,
  file: LogFile,
  eventType: string,
  naming: KeyLayout,
): string {
  return prefix + relativeKey(file, eventType, naming);
}

/**
 * The digests a store checks, of bytes in memory. Each is computed when first read (Azure never
 * reads `sha256`), unless `known` gives it: the SHA-256 the download already computed of the
 * very bytes the spool holds (S3 signs with it, so a spool that reads back other bytes is refused
 * by the store itself).
 *
 * @example
 * ```ts
 * const payload = payloadOf(new TextEncoder().encode("{}\n"));
 * payload.md5; // computed now, once
 * ```
 */
export function payloadOf(bytes: Uint8Array, known: { sha256?: string } = {}): Payload {
  let sha256 = known.sha256;
  let md5: string | undefined;
  return {
    bytes,
    get sha256() {
      return sha256 ??= createHash("sha256").update(bytes).digest("hex");
    },
    get md5() {
      return md5 ??= createHash("md5").update(bytes).digest("base64");
    },
  };
}

/**
 * A download's private copy (gzip-compressed on the way in with `--gzip`), its length counted: in
 * a buffer of the destination's `SpoolMemory` when the listed size fits there, else (or once the
 * bytes outgrow the buffer) in a private temporary file.
 */
export class ObjectSpool implements Spool {
  private handle?: FileHandle;
  private file?: string;
  private coalescer?: WriteCoalescer;
  private gzip?: { writer: WritableStreamDefaultWriter<BufferSource>; pump: Promise<void> };
  /** The bytes while they are held in memory: `held.subarray(0, length)`. */
  private held?: Uint8Array;
  /** Bytes of the stored form (after compression) in the spool. */
  length = 0;
  /** What the manifest records of the object (`key`: relative to the store's prefix). */
  private tracker!: StoredFactsTracker;

  constructor(
    /** The temporary file's path, made only when the spool needs one. */
    private readonly path: () => Promise<string>,
    private readonly compress: boolean,
    private readonly key = "",
    /** The listing gave no SHA-256: the manifest records the downloaded bytes' own. */
    private readonly hashPlain = false,
    /** Where a file of the listed `size` may be held instead of a temporary file. */
    private readonly memory?: { pool: SpoolMemory; size: number },
  ) {}

  /** Where and how the file was stored, once finalized. */
  facts(): StoredFacts {
    return this.tracker.facts();
  }

  async start(): Promise<this> {
    this.length = 0;
    const tracker = this.tracker = new StoredFactsTracker(this.key, {
      hashPlain: this.hashPlain && !this.compress,
    });
    this.held = this.memory?.pool.take(this.memory.size);
    if (!this.held) await this.openFile();
    if (this.compress) {
      const stream = new CompressionStream("gzip");
      const pump = (async () => {
        for await (const chunk of stream.readable) {
          tracker.stored(chunk);
          await this.put(chunk);
        }
      })();
      pump.catch(() => {}); // Surfaced by finalize() below.
      this.gzip = { writer: stream.writable.getWriter(), pump };
    }
    return this;
  }

  /** The temporary file, written through a coalescer from `length` on. */
  private async openFile(): Promise<void> {
    const path = this.file = await this.path();
    const handle = this.handle = await open(path, "wx+", 0o600);
    this.coalescer = new WriteCoalescer(async (bytes) => {
      let at = 0;
      try {
        while (at < bytes.length) {
          const position = this.length + at;
          at += (await handle.write(bytes, at, bytes.length - at, position)).bytesWritten;
        }
      } catch (error) {
        throw new CliError(
          "io",
          `cannot write the upload spool ${path}: ${reason(error)}; set TMPDIR to a ` +
            `directory with room`,
          { cause: error },
        );
      }
      this.length += bytes.length;
    });
  }

  /** Stores bytes of the stored form: in the buffer while they fit, else in the file. */
  private async put(chunk: Uint8Array): Promise<void> {
    const held = this.held;
    if (held) {
      if (this.length + chunk.length <= held.length) {
        held.set(chunk, this.length);
        this.length += chunk.length;
        return;
      }
      // More than the listing said (or than its gzip took): the file takes over, from byte 0.
      const bytes = held.subarray(0, this.length);
      this.held = undefined;
      this.length = 0;
      await this.openFile();
      await this.coalescer!.write(bytes);
      await this.coalescer!.flush(); // The buffer is written out before it is given back.
      this.memory!.pool.give(held);
    }
    return this.coalescer!.write(chunk);
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.tracker.plain(chunk);
    if (!this.gzip) return this.put(chunk);
    await this.gzip.writer.ready;
    await this.gzip.writer.write(chunk as Uint8Array<ArrayBuffer>);
  }

  async restart(): Promise<void> {
    await this.discard();
    await this.start();
  }

  /** Ends compression and writes out what is buffered: from now on `length` is the object's. */
  async finalize(): Promise<void> {
    if (this.gzip) {
      await this.gzip.writer.close();
      await this.gzip.pump;
      this.gzip = undefined;
    }
    await this.coalescer?.flush();
    // Its write buffers go to the next download now: a spool waits for its upload slot, then
    // for the upload, and a run holds many spools at once.
    this.coalescer?.release();
    this.coalescer = undefined;
  }

  /** The finalized bytes when they are held in memory (valid until `discard`), else undefined. */
  inMemory(): Uint8Array | undefined {
    return this.held?.subarray(0, this.length);
  }

  /** Fills `buffer` from `position` on (the last part may come short); returns the bytes read. */
  async readAt(buffer: Uint8Array, position: number): Promise<number> {
    if (this.held) {
      const bytes = this.held.subarray(Math.min(position, this.length), this.length);
      const fill = Math.min(buffer.length, bytes.length);
      buffer.set(bytes.subarray(0, fill));
      return fill;
    }
    let fill = 0;
    while (fill < buffer.length) {
      const { bytesRead } = await this.handle!.read(
        buffer,
        fill,
        buffer.length - fill,
        position + fill,
      );
      if (bytesRead === 0) break;
      fill += bytesRead;
    }
    return fill;
  }

  async discard(): Promise<void> {
    if (this.gzip) {
      await this.gzip.writer.abort().catch(() => {});
      await this.gzip.pump.catch(() => {});
      this.gzip = undefined;
    }
    if (this.held) this.memory!.pool.give(this.held);
    this.held = undefined;
    const file = this.file;
    if (file === undefined) return; // No file was made.
    this.file = undefined;
    await this.coalescer?.abandon();
    this.coalescer?.release();
    this.coalescer = undefined;
    await this.handle?.close().catch(() => {});
    this.handle = undefined;
    // unlink, not rm: one call per file instead of an lstat and an unlink (every file has one).
    await unlink(file).catch((error) => {
      if ((error as { code?: string }).code !== "ENOENT") throw error;
    });
  }
}

/**
 * The most pages (of up to 1,000 keys) listed of one day's prefix before the idempotent re-run
 * gives up listing it and HEADs each key instead (a prefix that big is cheaper to ask key by key).
 */
export const MAX_LISTED_PAGES = 10;

/**
 * The buffers uploads read their temporary files into, reused: each request takes one at least
 * its body's size (an object's, or a part's) and gives it back once answered, so a run allocates
 * as many as it sends at once instead of one per body (garbage the collector frees late, and the
 * peak memory with it). At most `keep` are kept, the largest first.
 */
class BufferPool {
  private readonly free: Uint8Array[] = [];
  constructor(private readonly keep: number) {}
  take(size: number): Uint8Array {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const length = this.free[i].length;
      if (length >= size && (best === -1 || length < this.free[best].length)) best = i;
    }
    const buffer = best === -1 ? new Uint8Array(size) : this.free.splice(best, 1)[0];
    return buffer.subarray(0, size);
  }
  give(view: Uint8Array): void {
    this.free.push(new Uint8Array(view.buffer)); // Its whole capacity (taken at offset 0).
    this.free.sort((a, b) => b.length - a.length);
    this.free.length = Math.min(this.free.length, this.keep);
  }
}

/** An `--output-dir` in a bucket: one object per file, each stored once; see the module doc. */
export class ObjectStoreDestination implements Destination<ObjectSpool> {
  readonly guarantee = "confirmed";
  private folder?: Promise<SpoolDir>;
  private spools = 0;
  private readonly uploads = new Set<Promise<void>>();
  private readonly slots: Allowance;
  /** The bytes of request bodies on their way at once (the runtime copies each body it sends). */
  private readonly sending: Allowance;
  private readonly controller = new AbortController();
  private readonly policy: RetryPolicy;
  private readonly partBytes: number;
  private cleanup?: Promise<void>;
  private readonly buffers: BufferPool;
  private readonly memory: SpoolMemory;
  /**
   * Each day's prefix listed once per pass, as the keys it held (plus those this pass stored);
   * undefined where the store does not list, or the prefix was too big or failed to list.
   */
  private listed = new Map<string, Promise<Set<string> | undefined>>();

  constructor(
    private readonly store: ObjectStore,
    private readonly settings: ObjectStoreSettings,
  ) {
    this.slots = new Allowance(settings.inFlight ?? DEFAULT_IN_FLIGHT);
    this.sending = new Allowance(settings.sendingBytes ?? DEFAULT_SENDING_BYTES);
    this.policy = settings.policy ?? STORE_RETRY_POLICY;
    this.partBytes = settings.partBytes ?? DEFAULT_PART_BYTES;
    this.buffers = new BufferPool(settings.inFlight ?? DEFAULT_IN_FLIGHT);
    this.memory = new SpoolMemory(
      settings.spoolMemoryBytes ?? DEFAULT_SPOOL_MEMORY_BYTES,
      this.partBytes,
    );
  }

  /** Aborts the uploads a killed run left under the prefix (once; later calls wait for it). */
  cleanStaleUploads(): Promise<void> {
    const before = this.settings.staleBefore ?? new Date();
    this.cleanup ??= (async () => {
      const stale = await this.retried(
        `listing unfinished uploads under ${this.store.label}`,
        (signal) => this.store.staleUploads(this.settings.prefix, signal),
      );
      for (const upload of stale) {
        if (upload.initiated && upload.initiated >= before) continue; // Not a killed run's.
        await this.retried(
          `aborting the unfinished upload of ${upload.key}`,
          (signal) => this.store.abortUpload(upload.key, upload.uploadId, signal),
        );
      }
    })();
    return this.cleanup;
  }

  private keyOf(file: LogFile, eventType: string): string {
    return objectKey(this.settings.prefix, file, eventType, this.settings.naming);
  }

  private retried<T>(what: string, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = this.controller.signal;
    return withRetries(
      what,
      this.policy,
      () => attempt(signal),
      this.settings.onRetry ?? (() => {}),
      signal,
    );
  }

  async alreadyStored(file: LogFile, eventType: string): Promise<boolean> {
    const key = this.keyOf(file, eventType);
    // Absent from its prefix's listing: nothing to compare (a new file costs no round trip).
    const listed = await this.listedKeys(key);
    if (listed && !listed.has(key)) return false;
    const stored = await this.retried(
      `checking ${this.store.label} for ${key}`,
      (signal) => this.store.head(key, signal),
    );
    if (!stored) return false;
    const whole = isWhole(stored, file);
    if (!whole) await this.reportAltered(file, eventType, key, stored);
    return whole;
  }

  /**
   * The keys under `key`'s own prefix (its day's folder), listed once per pass and shared by every
   * file of that day; undefined (HEAD each key) where the store does not list, the prefix holds
   * more than `MAX_LISTED_PAGES` pages, or the listing failed (HEAD then says what is wrong).
   */
  private listedKeys(key: string): Promise<Set<string> | undefined> {
    const listPage = this.store.listPage?.bind(this.store);
    if (!listPage) return Promise.resolve(undefined);
    const prefix = key.slice(0, key.lastIndexOf("/") + 1);
    let listed = this.listed.get(prefix);
    if (!listed) {
      listed = (async () => {
        const keys = new Set<string>();
        let next: string | undefined;
        try {
          for (let page = 0; page < MAX_LISTED_PAGES; page++) {
            const answer = await this.retried(
              `listing ${prefix} in ${this.store.label}`,
              (signal) => listPage(prefix, next, signal),
            );
            for (const object of answer.objects) {
              // A key outside the prefix (a store that mangles keys): the listing is not
              // trusted, and each file is checked with a HEAD instead.
              if (!object.key.startsWith(prefix)) return undefined;
              keys.add(object.key);
            }
            next = answer.next;
            if (next === undefined) return keys;
          }
          return undefined;
        } catch (error) {
          if (this.controller.signal.aborted) throw error;
          return undefined;
        }
      })();
      this.listed.set(prefix, listed);
    }
    return listed;
  }

  /** Adds a key this pass stored to its prefix's listing, if that prefix was listed. */
  private async noteStored(key: string): Promise<void> {
    const prefix = key.slice(0, key.lastIndexOf("/") + 1);
    (await this.listed.get(prefix)?.catch(() => undefined))?.add(key);
  }

  /**
   * An altered object is evidence: it is kept before the listed file is written over it, and
   * reported as kept aside with what it holds (read back from the store). Nothing can be renamed
   * in a store (with Object Lock nothing can be renamed or deleted either): where the bucket keeps
   * versions, writing the listed file again makes a new version and the altered one stays as the
   * version HEAD found; where it keeps none, the altered object is first copied within the store
   * to `<key>.altered-<UTC time, ISO basic>` beside it (as a local directory renames it), and the
   * copy checked. A store that can do neither replaces it, and the run says so.
   */
  private async reportAltered(
    file: LogFile,
    eventType: string,
    key: string,
    stored: StoredObject,
  ): Promise<void> {
    const store = this.store;
    const readBack = store.readBack?.bind(store);
    const copyAside = store.copyAside?.bind(store);
    if (!readBack || (!stored.versionId && !copyAside)) {
      this.settings.onNote?.(
        `${key} is in the store but does not match the listing's size and SHA-256; writing it ` +
          `again (the store can keep neither a version nor a copy of the altered object, which ` +
          `is replaced)`,
      );
      return;
    }
    const relative = relativeKey(file, eventType, this.settings.naming);
    let asideRelative: string;
    let held: ReadBack;
    if (stored.versionId) {
      const { versionId } = stored;
      asideRelative = `${relative}?${store.versionParameter ?? "versionId"}=` +
        encodeURIComponent(versionId);
      held = await this.retried(
        `reading the altered ${key} (version ${versionId})`,
        (signal) => readBack(key, versionId, signal),
      );
    } else {
      const suffix = alteredSuffix(new Date());
      const asideKey = key + suffix;
      asideRelative = relative + suffix;
      await this.retried(
        `keeping the altered ${key} aside as ${asideKey}`,
        (signal) => copyAside!(key, asideKey, stored, signal),
      );
      held = await this.retried(
        `reading ${asideKey}, the altered ${key} kept aside`,
        (signal) => readBack(asideKey, undefined, signal),
      );
      if (held.size !== stored.size) {
        throw new CliError(
          "integrity",
          `${store.label}: ${asideKey}, the copy of the altered ${key}, has ${held.size} bytes ` +
            `where the altered object had ${stored.size}; nothing was written over ${key}; run ` +
            `again`,
        );
      }
    }
    const where = store.label.replace(/\/?$/, "/") + relative;
    const aside = store.label.replace(/\/?$/, "/") + asideRelative;
    const kept: KeptAside = {
      file,
      eventType,
      path: where,
      aside,
      key: relative,
      asideKey: asideRelative,
      size: held.size,
      sha256: held.sha256,
    };
    if (this.settings.onKeptAside) this.settings.onKeptAside(kept);
    else {
      this.settings.onNote?.(
        `${where} no longer matches the listing's size and SHA-256: kept aside as ${aside}, and ` +
          `the listed file is stored again`,
      );
    }
  }

  async spool(file: LogFile, eventType: string): Promise<ObjectSpool> {
    await this.cleanStaleUploads();
    const number = this.spools++;
    // The spool folder is made when the first file needs one (not for files held in memory).
    const path = async () =>
      join((await (this.folder ??= createSpoolDir())).path, `${number}.part`);
    const key = relativeKey(file, eventType, this.settings.naming);
    const unhashed = file.file_sha256 === undefined;
    const size = file.file_size;
    const memory = size === undefined ? undefined : { pool: this.memory, size };
    return await new ObjectSpool(path, this.settings.naming.gzip, key, unhashed, memory).start();
  }

  async deliver(parcel: Parcel<ObjectSpool>): Promise<void> {
    const { spool, file, eventType, receipt, downloaded } = parcel;
    try {
      await spool.finalize();
    } catch (error) {
      await spool.discard();
      throw error;
    }
    await this.slots.acquire();
    const key = this.keyOf(file, eventType);
    const options = this.optionsFor(file, downloaded.sha256, downloaded.bytes);
    const facts = spool.facts();
    // The SHA-256 of the spool's bytes, already computed on their way in: the stored (gzip)
    // bytes' by the manifest's tracker, the plain ones' by the download.
    const stored = facts.stored_size === spool.length
      ? facts.stored_sha256
      : !this.settings.naming.gzip && downloaded.bytes === spool.length
      ? downloaded.sha256
      : undefined;
    const upload = (async () => {
      try {
        await this.upload(key, spool, options, stored);
        await this.noteStored(key);
        receipt.confirm(facts);
      } catch (error) {
        receipt.reject(error);
      } finally {
        await spool.discard().catch(() => {});
        this.slots.release();
      }
    })();
    this.uploads.add(upload);
    upload.finally(() => this.uploads.delete(upload));
  }

  private optionsFor(file: LogFile, sha256: string | undefined, bytes: number): PutOptions {
    const metadata: Record<string, string> = { [META_SIZE]: String(file.file_size ?? bytes) };
    const hash = file.file_sha256 ?? sha256;
    if (hash) metadata[META_SHA256] = hash.toLowerCase();
    const retain = this.settings.retain;
    return {
      metadata,
      contentType: this.settings.naming.gzip ? "application/gzip" : "application/x-ndjson",
      retention: retain && {
        mode: retain.mode,
        until: new Date(Date.now() + retain.days * 86_400_000),
      },
    };
  }

  /** Stores the spool's bytes at `key`: one PUT, or a multipart upload aborted on failure. */
  private async upload(
    key: string,
    spool: ObjectSpool,
    options: PutOptions,
    sha256: string | undefined,
  ): Promise<void> {
    const total = spool.length;
    const partBytes = Math.max(this.partBytes, Math.ceil(total / this.store.maxParts));
    if (total <= partBytes) {
      const put = (bytes: Uint8Array) => {
        const payload = payloadOf(bytes, { sha256: sha256?.toLowerCase() });
        return this.retried(`uploading ${key}`, (signal) => {
          return this.store.put(key, payload, options, signal);
        });
      };
      const held = spool.inMemory();
      if (!held) return await this.sendFromSpool(spool, key, 0, total, put);
      await this.sending.acquire(total);
      try {
        return await put(held);
      } finally {
        this.sending.release(total);
      }
    }
    const uploadId = await this.retried(
      `starting the upload of ${key}`,
      (signal) => this.store.startUpload(key, options, signal),
    );
    try {
      const parts: UploadedPart[] = [];
      for (let at = 0; at < total; at += partBytes) {
        const size = Math.min(partBytes, total - at);
        const number = parts.length + 1;
        const tag = await this.sendFromSpool(spool, key, at, size, (bytes) => {
          const payload = payloadOf(bytes);
          return this.retried(
            `uploading part ${number} of ${key}`,
            (signal) => this.store.putPart(key, uploadId, number, payload, signal),
          );
        });
        parts.push({ number, tag, bytes: size });
      }
      await this.retried(
        `completing the upload of ${key}`,
        (signal) => this.store.completeUpload(key, uploadId, parts, options, signal),
      );
    } catch (error) {
      // Best effort: a stale upload left here is aborted by the next run.
      await this.store.abortUpload(key, uploadId).catch(() => {});
      throw error;
    }
  }

  /**
   * `size` bytes of the spool from `at`, read into a buffer (reused) and sent by `send`, within
   * the sending allowance; the buffer is given back once `send` is answered.
   */
  private async sendFromSpool<T>(
    spool: ObjectSpool,
    key: string,
    at: number,
    size: number,
    send: (bytes: Uint8Array) => Promise<T>,
  ): Promise<T> {
    await this.sending.acquire(size);
    const buffer = this.buffers.take(size);
    try {
      const got = await spool.readAt(buffer, at);
      if (got !== size) throw spoolShort(key, at + got, spool.length);
      return await send(buffer);
    } finally {
      this.buffers.give(buffer);
      this.sending.release(size);
    }
  }

  async finish(): Promise<void> {
    while (this.uploads.size) await Promise.allSettled([...this.uploads]);
    await this.removeFolder();
  }

  async abort(): Promise<void> {
    this.controller.abort(new CliError("interrupted", "the run stopped; uploads were abandoned"));
    while (this.uploads.size) await Promise.allSettled([...this.uploads]);
    await this.removeFolder();
  }

  private async removeFolder(): Promise<void> {
    this.listed = new Map(); // The next pass (--follow) lists again.
    const folder = this.folder;
    this.folder = undefined;
    if (folder) await (await folder).remove();
    this.spools = 0;
  }
}

/**
 * The store's up-front check (`ObjectStore.check`), retried like every other request: a 503 at
 * the start of a run is not a reason to give up.
 *
 * @example
 * ```ts
 * declare const store: ObjectStore;
 * await checkStore(store, { retention: false });
 * ```
 */
export function checkStore(
  store: ObjectStore,
  needs: { retention: boolean },
  policy: RetryPolicy = STORE_RETRY_POLICY,
): Promise<void> {
  return withRetries(`checking ${store.label}`, policy, () => store.check(needs), () => {});
}

/** Whether a stored object is the listed file, by the metadata it was stored with. */
export function isWhole(stored: StoredObject, file: LogFile): boolean {
  const size = stored.metadata[META_SIZE];
  const sha256 = stored.metadata[META_SHA256];
  if (file.file_size !== undefined && size !== String(file.file_size)) return false;
  if (file.file_sha256 !== undefined && sha256 !== file.file_sha256.toLowerCase()) return false;
  // Without either in the listing, an object written by this tool (it has the size) counts.
  return size !== undefined;
}

/**
 * The suffix of an altered object's copy: `.altered-<UTC time, ISO basic>`, as a local directory
 * names an altered file it renames aside.
 *
 * @example
 * ```ts
 * alteredSuffix(new Date("2026-07-02T10:20:30.456Z")); // ".altered-20260702T102030.456Z"
 * ```
 */
export function alteredSuffix(at: Date): string {
  return `.altered-${at.toISOString().replace(/[-:]/g, "")}`;
}

function spoolShort(key: string, got: number, total: number): CliError {
  return new CliError(
    "io",
    `the spool of ${key} gave ${got} of its ${total} bytes; nothing was stored; run again`,
  );
}

/**
 * A store's answer status as an error: 5xx, 408 and 429 (and what `retryable` says, such as
 * S3's SlowDown) retryable with the answer's `Retry-After`, everything else fatal with `message`.
 *
 * @example
 * ```ts
 * import { TransientError } from "../errors.ts";
 * const error = statusError(503, new Headers({ "retry-after": "2" }), "uploading a.jsonl: 503");
 * error instanceof TransientError; // true
 * ```
 */
export function statusError(
  status: number,
  headers: Headers,
  message: string,
  retryable = false,
): CliError {
  if (retryable || status >= 500 || status === 408 || status === 429) {
    return new TransientError("network", message, parseRetryAfter(headers.get("retry-after")));
  }
  return new CliError(status === 401 || status === 403 ? "auth" : "io", message);
}
