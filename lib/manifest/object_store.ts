/**
 * An `--output-dir s3://...` or `az://...` archive as an `ArchiveStore`, over the store's
 * `ObjectAccess` and the archive's key prefix:
 *
 * - manifests are `PREFIX/_manifest/<name>.jsonl`, written whole with `ifNoneMatch: "*"` so that
 *   a manifest, once written, is never overwritten (a retried write that finds its own bytes
 *   there succeeded the first time);
 * - the manifest lock is a lease on `PREFIX/_manifest/.lock` (lib/destinations/_lease.ts), waited
 *   for up to 120 s like the local store's OS lock;
 * - a run at work is marked by `PREFIX/_manifest/.live-<run id>`, a small object holding its event
 *   types and when the mark expires, renewed while the run works and deleted when it ends; a
 *   killed run's mark expires, so it is not live any more (and the next mark swept removes it).
 *   On the run's own host and pid namespace a mark whose process is gone is dead at once, so
 *   that a re-run after `kill -9` records the killed run's files (as recovered) straight away;
 * - credentials that may write but not delete (an Azure SAS without `d`, so that the writer
 *   cannot delete evidence) let go of the lock and the mark by rewriting them as expired
 *   (`deleteOrExpire` of lib/destinations/_lease.ts);
 * - with `retain` (`--retain-days`), each manifest is written with the retention the run's
 *   objects get (S3 Object Lock, Azure version-level immutability), so it is as write-once as
 *   they are; the lock and the live marks never are (they must be deleted or replaced);
 * - the archive's files are the keys under the prefix outside `_manifest/` (sizes from the
 *   listing), read back in bounded ranges. Uploads are multipart, so there are no temps.
 *
 * Every request is retried with the store's policy (each `ObjectAccess` call is one attempt).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "../destinations/_object_access.ts";
 * declare const access: ObjectAccess;
 * const store = new ObjectArchiveStore(access, "openai/", { label: "s3://archive/openai/" });
 * for (const name of await store.manifests()) console.log(name);
 * ```
 */
import { readlinkSync } from "node:fs";
import { hostname } from "node:os";
import { pid } from "node:process";
import { isProcessAlive } from "../atomic.ts";
import { CliError, reason } from "../errors.ts";
import { type RetryPolicy, withRetries } from "../retry.ts";
import type { ListedObject, ObjectAccess, WriteCondition } from "../destinations/_object_access.ts";
import { deleteOrExpire, type LeaseOptions, takeLease } from "../destinations/_lease.ts";
import type { RetentionRequest } from "../destinations/_retention.ts";
import { STORE_RETRY_POLICY } from "../destinations/_object_store.ts";
import { createCondition } from "../destinations/_conditional_probe.ts";
import { MANIFEST_DIR } from "./format.ts";
import type { ArchiveStore, ManifestLock, StoredObject } from "./store.ts";

/** How long a run waits for another run's manifest lock (held only while it writes one). */
export const LOCK_WAIT_MS = 120_000;
/** The bytes of one ranged read of a stored file. */
export const READ_CHUNK_BYTES = 8 * 1024 * 1024;
/** The largest manifest read whole (a run of ~500,000 files). */
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
/** A live mark lasts this long unless renewed (every third of it). */
const LIVE_TTL_MS = 5 * 60_000;
const LIVE_PREFIX = ".live-";

/** `takeLease` of lib/destinations/_lease.ts (given in tests). */
export type TakeLease = (
  access: ObjectAccess,
  key: string,
  options: LeaseOptions,
) => Promise<{ assertHeld(): Promise<void>; release(): Promise<void> }>;

export interface ObjectArchiveOptions {
  /** How the archive is named in messages, e.g. `s3://archive/openai/`. */
  label: string;
  /** The retries of each request (default: the stores' 5 retries from 1 s). */
  policy?: RetryPolicy;
  /** Default: lib/destinations/_lease.ts's. */
  takeLease?: TakeLease;
  lockWaitMs?: number;
  liveTtlMs?: number;
  now?: () => number;
  /** `--retain-days`: each manifest retained as the run's objects are, from when it is written. */
  retain?: RetentionRequest;
}

/** What a live mark holds. */
interface LiveMark {
  run: string;
  owner: string;
  eventTypes: string[];
  expiresAt: string;
  host: string;
  pid: number;
  /** The pid namespace (`/proc/self/ns/pid`), where there is one to read: its pid means this. */
  pidNamespace?: string;
}

let namespace: { value?: string } | undefined;

/** This process's pid namespace on Linux (`pid:[4026531836]`); undefined elsewhere. */
function pidNamespace(): string | undefined {
  namespace ??= (() => {
    try {
      return { value: readlinkSync("/proc/self/ns/pid") };
    } catch {
      return {}; // No /proc, or no permission to read it: marks expire by time only.
    }
  })();
  return namespace.value;
}

export class ObjectArchiveStore implements ArchiveStore {
  readonly label: string;
  readonly #access: () => ObjectAccess;
  readonly #prefix: string;
  readonly #options: ObjectArchiveOptions;
  readonly #policy: RetryPolicy;
  readonly #now: () => number;
  /** Sizes from the last listing of `objects()`, so that `read` knows where an object ends. */
  readonly #sizes = new Map<string, number>();

  /**
   * `access`: the store's, or a function that makes it on first use (credentials are looked up
   * then, not while the command line is parsed). `prefix`: the archive's key prefix, `""` or
   * ending in `/`.
   */
  constructor(
    access: ObjectAccess | (() => ObjectAccess),
    prefix: string,
    options: ObjectArchiveOptions,
  ) {
    let made: ObjectAccess | undefined;
    this.#access = typeof access === "function" ? () => made ??= access() : () => access;
    this.#prefix = prefix;
    this.#options = options;
    this.label = options.label;
    this.#policy = options.policy ?? STORE_RETRY_POLICY;
    this.#now = options.now ?? Date.now;
  }

  get #dir(): string {
    return `${this.#prefix}${MANIFEST_DIR}/`;
  }

  async manifests(): Promise<string[]> {
    const names: string[] = [];
    for await (const object of this.#list(this.#dir)) {
      const name = object.key.slice(this.#dir.length);
      if (name.endsWith(".jsonl") && !name.startsWith(".") && !name.includes("/")) names.push(name);
    }
    return names.sort();
  }

  async readManifest(name: string): Promise<string> {
    const key = this.#dir + name;
    const got = await this.#retried(
      `reading ${this.#shown(key)}`,
      () => this.#access().get(key, { maxBytes: MAX_MANIFEST_BYTES }),
    );
    if (!got) throw new CliError("io", `cannot read ${this.#shown(key)}: it is gone`);
    return new TextDecoder().decode(got.bytes);
  }

  async writeManifest(name: string, text: string): Promise<void> {
    const key = this.#dir + name;
    const bytes = new TextEncoder().encode(text);
    const retain = this.#options.retain;
    const written = await this.#retried(
      `writing ${this.#shown(key)}`,
      () =>
        this.#access().putSmall(key, bytes, {
          // Without If-None-Match where the store ignores it (Ceph 16, versioned bucket): a
          // manifest's name is its run's own, written under the manifest lock.
          condition: createCondition(this.#access()),
          contentType: "application/x-ndjson",
          retention: retain && {
            mode: retain.mode,
            until: new Date(this.#now() + retain.days * 86_400_000),
          },
        }),
    );
    if (written !== "conflict") return;
    // A retry of a write that did land the first time finds its own bytes: that is success.
    const there = await this.#retried(
      `reading ${this.#shown(key)}`,
      () => this.#access().get(key, { maxBytes: MAX_MANIFEST_BYTES }),
    );
    if (there && sameBytes(there.bytes, bytes)) return;
    throw new CliError(
      "state",
      `the manifest ${this.#shown(key)} already exists with other contents; a manifest is never ` +
        `overwritten: run again (the next run gets a new name)`,
    );
  }

  async lock(): Promise<ManifestLock> {
    const take = this.#options.takeLease ?? takeLease;
    const key = `${this.#dir}.lock`;
    const lease = await take(this.#access(), key, {
      owner: owner(),
      what: `the manifest lock ${this.#shown(key)}`,
      waitMs: this.#options.lockWaitMs ?? LOCK_WAIT_MS,
      policy: this.#policy,
    });
    // Credentials that may not delete: the lease expires itself in place (_lease.ts).
    return { assertHeld: () => lease.assertHeld(), release: () => lease.release() };
  }

  async markLive(runId: string, eventTypes: readonly string[]): Promise<ManifestLock> {
    await this.#sweepExpiredMarks();
    const key = `${this.#dir}${LIVE_PREFIX}${runId}`;
    const ttl = this.#options.liveTtlMs ?? LIVE_TTL_MS;
    const markOwner = owner();
    const markBytes = (expiresAtMs: number) => {
      const mark: LiveMark = {
        run: runId,
        owner: markOwner,
        eventTypes: [...eventTypes],
        expiresAt: new Date(expiresAtMs).toISOString(),
        host: hostname(),
        pid,
        ...(pidNamespace() === undefined ? {} : { pidNamespace: pidNamespace() }),
      };
      return new TextEncoder().encode(JSON.stringify(mark) + "\n");
    };
    const put = (condition: WriteCondition, expiresAtMs: number) => {
      const bytes = markBytes(expiresAtMs);
      return this.#retried(
        `marking the run live in ${this.#shown(key)}`,
        () => this.#access().putSmall(key, bytes, { condition, contentType: "application/json" }),
      );
    };
    // Without If-None-Match where the store ignores it: the key is this run's own (its id).
    const created = await put(createCondition(this.#access()), this.#now() + ttl);
    if (created === "conflict") {
      throw new CliError(
        "state",
        `${this.#shown(key)} already exists: is run ${runId} running twice?`,
      );
    }
    let etag: string = created;
    // Renewed If-Match the last ETag; a mark found gone (swept by a run that judged it expired
    // after a late renewal) or under an ETag never seen (a renewal whose answer was lost) is
    // made again, so that the run stays marked live.
    const renew = async (): Promise<string | "conflict"> => {
      const expiresAt = this.#now() + ttl;
      const renewed = await put({ ifMatch: etag }, expiresAt);
      if (renewed !== "conflict") return renewed;
      const found = await this.#retried(
        `reading ${this.#shown(key)}`,
        () => this.#access().get(key),
      );
      return await put(
        found ? { ifMatch: found.etag } : createCondition(this.#access()),
        expiresAt,
      );
    };
    let released = false;
    let renewing: Promise<void> = Promise.resolve();
    // Renewed well before it expires; a failed renewal only makes the mark expire early (verify
    // then counts this run's unrecorded files as unexpected until its manifest is written), and
    // the next one tries again.
    const timer = setInterval(() => {
      renewing = (async () => {
        if (released) return;
        const next = await renew().catch(() => "conflict" as const);
        if (!released && next !== "conflict") etag = next;
      })();
    }, Math.max(ttl / 3, 10));
    (timer as { unref?: () => void }).unref?.(); // never what keeps the process alive
    return {
      // A mark is not a lock: one lost is made again by the next renewal.
      assertHeld: () => Promise.resolve(),
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        await renewing;
        // Not allowed to delete (an Azure SAS without `d`): expired in place, as a lease is;
        // else it expires by itself.
        await deleteOrExpire(this.#access(), key, {
          expired: { bytes: markBytes(0), ifMatch: etag },
          retried: (what, attempt) => this.#retried(`${what} ${this.#shown(key)}`, attempt),
        }).catch(() => {});
      },
    };
  }

  async liveRuns(): Promise<string[][]> {
    return (await this.#marks()).filter(({ mark }) => !this.#expired(mark)).map(({ mark }) =>
      mark.eventTypes
    );
  }

  async *objects(prefixes?: readonly string[]): AsyncIterable<StoredObject> {
    // A prefix names a folder (`AUTH_LOG` is `AUTH_LOG/...`, not `AUTH_LOG_X/...`).
    const roots = prefixes?.map((p) => (p === "" || p.endsWith("/") ? p : `${p}/`)) ?? [""];
    for (const root of roots) {
      for await (const object of this.#list(this.#prefix + root)) {
        const path = object.key.slice(this.#prefix.length);
        if (path.startsWith(`${MANIFEST_DIR}/`) || path.endsWith("/")) continue; // Folder markers.
        this.#sizes.set(path, object.size);
        yield { path, size: object.size };
      }
    }
  }

  async *read(path: string): AsyncIterable<Uint8Array> {
    const key = this.#prefix + path;
    const size = this.#sizes.get(path) ?? await this.#sizeOf(key);
    const range = (start: number) =>
      this.#retried(
        `reading ${this.#shown(key)}`,
        () => this.#access().getRange(key, start, Math.min(start + READ_CHUNK_BYTES, size)),
      );
    // One range ahead: the next is on its way while this one is hashed.
    let pending = size > 0 ? range(0) : undefined;
    for (let start = 0; pending; start += READ_CHUNK_BYTES) {
      const chunk = await pending;
      const next = start + READ_CHUNK_BYTES;
      pending = next < size ? range(next) : undefined;
      pending?.catch(() => {}); // Surfaced when awaited.
      yield chunk;
    }
  }

  async #sizeOf(key: string): Promise<number> {
    for await (const object of this.#list(key)) {
      if (object.key === key) return object.size;
      if (object.key > key) break;
    }
    throw new CliError("io", `cannot read ${this.#shown(key)}: no such object`);
  }

  async #marks(): Promise<Array<{ key: string; mark: LiveMark; etag: string }>> {
    const marks: Array<{ key: string; mark: LiveMark; etag: string }> = [];
    for await (const object of this.#list(`${this.#dir}${LIVE_PREFIX}`)) {
      const got = await this.#retried(
        `reading ${this.#shown(object.key)}`,
        () => this.#access().get(object.key),
      );
      if (!got) continue; // Released meanwhile.
      try {
        const mark = JSON.parse(new TextDecoder().decode(got.bytes)) as LiveMark;
        if (Array.isArray(mark.eventTypes) && typeof mark.expiresAt === "string") {
          marks.push({ key: object.key, mark, etag: got.etag });
        }
      } catch {
        // Not a mark of this tool: ignored.
      }
    }
    return marks;
  }

  /** Past its expiry, or its process is gone (same host and pid namespace: the pid is its). */
  #expired(mark: LiveMark): boolean {
    if (!(Date.parse(mark.expiresAt) > this.#now())) return true;
    const here = pidNamespace() !== undefined && mark.pidNamespace === pidNamespace() &&
      mark.host === hostname();
    return here && !isProcessAlive(mark.pid);
  }

  /** Marks of runs that died (expired): removed, so that they do not pile up. */
  async #sweepExpiredMarks(): Promise<void> {
    for (const { key, mark, etag } of await this.#marks()) {
      if (!this.#expired(mark)) continue;
      // If-Match the version judged expired: one renewed since (a late renewal) is left alone.
      await this.#retried(
        `removing ${this.#shown(key)}`,
        () => this.#access().deleteKey(key, { ifMatch: etag }),
      ).catch(() => {}); // Another sweeper's, or the next run's to remove.
    }
  }

  async *#list(prefix: string): AsyncGenerator<ListedObject> {
    let next: string | undefined;
    do {
      const page = await this.#retried(
        `listing ${this.#shown(prefix)}`,
        () => this.#access().listPage(prefix, next),
      );
      yield* page.objects;
      next = page.next;
    } while (next !== undefined);
  }

  async #retried<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    try {
      return await withRetries(what, this.#policy, attempt, () => {});
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw new CliError("io", `${what} failed: ${reason(error)}`, { cause: error });
    }
  }

  /** A key as the user would name it: the archive's label and the part under its prefix. */
  #shown(key: string): string {
    const label = this.label.endsWith("/") ? this.label : `${this.label}/`;
    return label + key.slice(this.#prefix.length);
  }
}

/** Who holds a lock or a mark: a random part, so that two runs never take each other's. */
function owner(): string {
  return `run ${crypto.randomUUID().slice(0, 8)}, pid ${pid} on ${hostname()}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
