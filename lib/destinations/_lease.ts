/**
 * A lease: the lock of something kept in an object store (a `--state s3://...` checkpoint, an
 * archive's manifest), held as one small object that names its owner and an expiry. It gives the
 * local lock file's guarantees (lib/checkpoint/lock.ts) by the store's own means:
 *
 * - taken with a conditional create (`If-None-Match: *`), so of two runs only one gets it;
 * - renewed every `ttl/3` while held, each renewal `If-Match` the ETag of the last one, so a
 *   renewal never overwrites a lease another run took over;
 * - a lease whose expiry has passed is a dead run's (its holder would have renewed it), and is
 *   taken over with `If-Match` on the ETag read, as the local lock's dead-owner rule does;
 * - `assertHeld` throws once a renewal found it lost (taken over, deleted) or could not renew it
 *   before its expiry; the holder then stops without writing;
 * - `release` deletes it, `If-Match` its last ETag, never another run's; credentials that may
 *   write but not delete (an Azure SAS without `d`) let go of it by rewriting it as expired.
 *
 * On a store that honours `If-Match` but ignores `If-None-Match: *` (Ceph 16 on a versioned
 * bucket; `conditionalWrites` of lib/destinations/_conditional_probe.ts says "if-match-only"), the
 * lease never relies on a create: its object, once made, always exists. Taking it reads it; when
 * absent a "free" record is written unconditionally (two runs doing so at once both write "free")
 * and read again; a free or expired record is replaced by ours `If-Match` its ETag, which only one
 * of two racing runs wins. Release rewrites it as free `If-Match` our ETag (never a delete).
 *
 * Expiries are compared with this machine's clock: hosts sharing a lease need clocks that agree
 * to well within the ttl (NTP), as object stores' own signing already requires.
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * const lease = await takeLease(access, "jobs/auth.state.json.lock", {
 *   owner: "run 3f2a, pid 4242 on host-a",
 *   what: "the checkpoint s3://bucket/jobs/auth.state.json",
 * });
 * try {
 *   await lease.assertHeld(); // then write what the lease guards
 * } finally {
 *   await lease.release();
 * }
 * ```
 */
import { clearInterval, setInterval } from "node:timers";
import { CliError, reason } from "../errors.ts";
import { type RetryPolicy, sleep, withRetries } from "../retry.ts";
import type { ObjectAccess } from "./_object_access.ts";
import { STORE_RETRY_POLICY } from "./_object_store.ts";
import { bareEtag, conditionalWrites } from "./_conditional_probe.ts";

export interface Lease {
  readonly key: string;
  /** Why a previous holder's lease was judged expired and taken over, if it was. */
  readonly tookOver?: string;
  /** Throws a CliError (kind "state") when the lease is no longer ours (renewal lost it). */
  assertHeld(): Promise<void>;
  /** Stops renewing and deletes it (If-Match its last ETag); idempotent. */
  release(): Promise<void>;
}

export interface LeaseOptions {
  /** Who holds it, in messages: run id, pid, host. */
  owner: string;
  /** What it guards, in messages, e.g. "the checkpoint s3://b/k". */
  what: string;
  /** 0 (default): refuse at once when held; else wait for it that long. */
  waitMs?: number;
  /** Default 5 min, renewed every ttl/3 while held. */
  ttlMs?: number;
  /** Retries of each request (default the stores' `STORE_RETRY_POLICY`). */
  policy?: RetryPolicy;
}

/** A lease's life by default: renewed every 100 s, taken over 5 minutes after its holder died. */
export const DEFAULT_LEASE_TTL_MS = 5 * 60_000;
/** How often a waiting run looks again at a held lease (at most). */
const POLL_MS = 2_000;
/** Rounds of create / read / take over after which a run gives up (when not waiting). */
const MAX_ROUNDS = 20;
/** A lease is one line of JSON; anything larger was never one. */
const MAX_LEASE_BYTES = 64 * 1024;

/** The object a lease is. */
export interface LeaseRecord {
  owner: string;
  what: string;
  /** ISO times: when first taken, last renewed, and when it lapses unless renewed again. */
  takenAt: string;
  renewedAt: string;
  expiresAt: string;
  /** Written by no run (if-match-only stores): the lease is there to be taken. */
  free?: true;
}

/**
 * Takes the lease at `key`, waiting up to `waitMs` for a live holder to release it, and taking
 * over an expired one. Refuses with a CliError of kind "state" naming the holder.
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * const lease = await takeLease(access, "k.lock", { owner: "pid 1 on a", what: "the checkpoint k" });
 * if (lease.tookOver) console.warn(`took over an expired lease (${lease.tookOver})`);
 * ```
 */
export async function takeLease(
  access: ObjectAccess,
  key: string,
  options: LeaseOptions,
): Promise<Lease> {
  const ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  const policy = options.policy ?? STORE_RETRY_POLICY;
  const retried = <T>(what: string, attempt: () => Promise<T>) =>
    withRetries(`${what} (${keyUrl(access, key)})`, policy, attempt, () => {});
  const waitUntil = Date.now() + (options.waitMs ?? 0);
  const shown = `the lease ${key} on ${options.what}`;
  // Where `If-None-Match: *` is ignored, no create is tried: the lease object is read, made
  // "free" when absent, and a free or expired one replaced by ours `If-Match` its ETag.
  const creates = conditionalWrites(access) !== "if-match-only";
  const read = () =>
    retried("reading the lease", () => access.get(key, { maxBytes: MAX_LEASE_BYTES }));
  const take = (record: LeaseRecord, etag: string, tookOver?: string) =>
    new HeldLease(access, key, options, ttlMs, policy, record, etag, tookOver);
  for (let attempt = 0;; attempt++) {
    if (attempt >= MAX_ROUNDS && Date.now() > waitUntil) {
      throw new CliError(
        "state",
        `cannot take ${shown}: other runs keep taking it or releasing it; try again`,
      );
    }
    // Ours, made for this round's create (and then its take-over), or only for a take-over.
    let ours: { record: LeaseRecord; bytes: Uint8Array } | undefined;
    if (creates) {
      ours = fresh(options, ttlMs);
      const { bytes } = ours;
      const created = await retried(
        "taking the lease",
        () => access.putSmall(key, bytes, leaseWrite({ ifNoneMatch: "*" })),
      );
      if (created !== "conflict") return take(ours.record, created);
    }
    const found = await read();
    if (found === undefined) {
      if (creates) continue; // released since: try again
      // Its first use (or it was deleted by hand). Unconditional, as a create cannot be made
      // conditional here: two runs racing both write "free", and take it If-Match below. (A
      // run's "free" landing after another run took it is caught by that run's next renewal.)
      await retried(
        "making the lease",
        () => access.putSmall(key, encode(freeRecord(options.what)), leaseWrite(undefined)),
      );
      continue;
    }
    // A retried create whose first try landed (its answer lost) conflicts with itself.
    if (ours && sameBytes(found.bytes, ours.bytes)) return take(ours.record, found.etag);
    const held = parseRecord(found.bytes);
    if (held === undefined) {
      throw new CliError(
        "state",
        `${key} on ${options.what} is not a lease this tool writes; delete it if no run is ` +
          `active, then run again`,
      );
    }
    const expiresAt = Date.parse(held.expiresAt);
    if (held.free || Date.now() > expiresAt) {
      const tookOver = held.free ? undefined : `${held.owner} held it since ${held.takenAt} and ` +
        `did not renew it after ${held.renewedAt}; it expired at ${held.expiresAt}`;
      ours ??= fresh(options, ttlMs);
      const { record, bytes } = ours;
      const taken = await retried(
        creates ? "taking over the expired lease" : "taking the lease",
        () => access.putSmall(key, bytes, leaseWrite({ ifMatch: found.etag })),
      );
      if (taken !== "conflict") return take(record, taken, tookOver);
      // Another run took it (over) first, or it was renewed, or our own retried write landed
      // (its answer lost).
      const now = await read();
      if (now && sameBytes(now.bytes, bytes)) return take(record, now.etag, tookOver);
      continue;
    }
    const left = waitUntil - Date.now();
    if (left <= 0) {
      throw new CliError(
        "state",
        `another run (${held.owner}, since ${held.takenAt}) holds ${shown}; wait for it to ` +
          `finish (a lease left by a run that died expires ${Math.round(ttlMs / 60_000)} ` +
          `minutes after its last renewal, ${held.renewedAt}, and is taken over then)`,
      );
    }
    // Backs off a little on each look, but never sleeps past the wait or the lease's expiry.
    const pause = Math.min(POLL_MS, 200 * 2 ** Math.min(attempt, 4), left, expiresAt - Date.now());
    await sleep(Math.max(50, pause));
  }
}

/** A record of ours taken now, and its bytes (compared to tell a lost answer's write). */
function fresh(options: LeaseOptions, ttlMs: number): { record: LeaseRecord; bytes: Uint8Array } {
  const takenAt = new Date();
  const record = recordOf(options, takenAt, takenAt, ttlMs);
  return { record, bytes: encode(record) };
}

/** A lease nobody holds (if-match-only stores, where the lease object is never deleted). */
function freeRecord(what: string): LeaseRecord {
  const never = new Date(0).toISOString();
  return { owner: "nobody", what, takenAt: never, renewedAt: never, expiresAt: never, free: true };
}

/**
 * The lease at `key` in words, for `state show`: "none", who holds it until when, or that it
 * expired (the next run takes it over).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * await describeLease(access, "k.lock"); // "held by run 3f2a, pid 1 on a since ..., until ..."
 * ```
 */
export async function describeLease(
  access: ObjectAccess,
  key: string,
  policy: RetryPolicy = STORE_RETRY_POLICY,
): Promise<string> {
  const found = await withRetries(
    `reading the lease ${keyUrl(access, key)}`,
    policy,
    () => access.get(key, { maxBytes: MAX_LEASE_BYTES }),
    () => {},
  );
  if (found === undefined) return "none";
  const held = parseRecord(found.bytes);
  if (held === undefined) return `${key} is not a lease this tool writes`;
  if (held.free) return "none";
  if (Date.now() > Date.parse(held.expiresAt)) {
    return `expired at ${held.expiresAt} (${held.owner}); the next run takes it over`;
  }
  return `held by ${held.owner} since ${held.takenAt}, until ${held.expiresAt} unless renewed`;
}

/** One attempt made with retries, named for messages. */
export type Retried = <T>(what: string, attempt: () => Promise<T>) => Promise<T>;

/**
 * Lets go of a lock-like object (a lease, an archive's live mark): deletes `key` (`If-Match`
 * `ifMatch` when given) or, where the credentials may write but not delete (an Azure SAS without
 * `d`, so that the writer cannot delete evidence), rewrites it in place as `expired` (`If-Match`
 * the version it holds), which the next run judges expired and takes over at once. A conflict
 * either way means another run holds it now: not ours to touch. Throws the delete's error only
 * when the rewrite failed too (or there is no `expired` to write).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * declare const etag: string;
 * declare const expired: Uint8Array;
 * await deleteOrExpire(access, "k.lock", {
 *   ifMatch: etag,
 *   expired: { bytes: expired, ifMatch: etag },
 *   retried: (_what, attempt) => attempt(),
 * });
 * ```
 */
export async function deleteOrExpire(
  access: ObjectAccess,
  key: string,
  options: {
    ifMatch?: string;
    expired?: { bytes: Uint8Array; ifMatch: string };
    retried: Retried;
  },
): Promise<void> {
  const { ifMatch, expired, retried } = options;
  try {
    await retried(
      "releasing",
      () => access.deleteKey(key, ifMatch === undefined ? undefined : { ifMatch }),
    );
  } catch (error) {
    if (expired === undefined) throw error;
    try {
      await retried(
        "expiring in place (the credentials may not delete)",
        () =>
          access.putSmall(key, expired.bytes, {
            condition: { ifMatch: expired.ifMatch },
            contentType: "application/json",
          }),
      );
    } catch {
      throw error;
    }
  }
}

/**
 * A full key as a URL for messages: the store's label names its bucket or container and its
 * prefix (`s3://b/openai/`), and keys already include the prefix, so the key goes after the
 * bucket or container alone (`s3://b/openai/_manifest/.lock`, not `s3://b/openai/openai/...`).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess; // label "s3://b/openai/"
 * keyUrl(access, "openai/_manifest/.lock"); // "s3://b/openai/_manifest/.lock"
 * ```
 */
export function keyUrl(access: ObjectAccess, key: string): string {
  const root = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(access.label)?.[0];
  return root === undefined ? `${access.label.replace(/\/?$/, "/")}${key}` : `${root}/${key}`;
}

function leaseWrite(condition: { ifNoneMatch: "*" } | { ifMatch: string } | undefined) {
  return { contentType: "application/json", condition };
}

function recordOf(
  options: LeaseOptions,
  takenAt: Date,
  renewedAt: Date,
  ttlMs: number,
): LeaseRecord {
  return {
    owner: options.owner,
    what: options.what,
    takenAt: takenAt.toISOString(),
    renewedAt: renewedAt.toISOString(),
    expiresAt: new Date(renewedAt.getTime() + ttlMs).toISOString(),
  };
}

function encode(record: LeaseRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record) + "\n");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function parseRecord(bytes: Uint8Array): LeaseRecord | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    const fields = ["owner", "what", "takenAt", "renewedAt", "expiresAt"];
    if (typeof value !== "object" || value === null) return undefined;
    if (!fields.every((f) => typeof value[f] === "string")) return undefined;
    if (Number.isNaN(Date.parse(value.expiresAt))) return undefined;
    return value as LeaseRecord;
  } catch {
    return undefined;
  }
}

/** A lease this process holds: renews itself until released or lost. */
class HeldLease implements Lease {
  #etag: string;
  #record: LeaseRecord;
  #lost?: string;
  #timer?: ReturnType<typeof setInterval>;
  #renewing: Promise<void> = Promise.resolve();
  #released?: Promise<void>;

  constructor(
    private readonly access: ObjectAccess,
    readonly key: string,
    private readonly options: LeaseOptions,
    private readonly ttlMs: number,
    private readonly policy: RetryPolicy,
    record: LeaseRecord,
    etag: string,
    readonly tookOver?: string,
  ) {
    this.#record = record;
    this.#etag = etag;
    this.#timer = setInterval(() => {
      this.#renewing = this.#renewing.then(() => this.#renew());
    }, Math.max(10, Math.floor(ttlMs / 3)));
    // Never what keeps the process alive.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #renew(): Promise<void> {
    if (this.#lost || this.#released) return;
    const now = new Date();
    const record = recordOf(this.options, new Date(this.#record.takenAt), now, this.ttlMs);
    const bytes = encode(record);
    try {
      let tries = 0;
      let tag = await withRetries(
        `renewing the lease ${keyUrl(this.access, this.key)}`,
        this.policy,
        () => {
          tries++;
          return this.access.putSmall(this.key, bytes, leaseWrite({ ifMatch: this.#etag }));
        },
        () => {},
      );
      if (tag === "conflict") {
        // A renewal whose write landed but whose answer was lost (this one retried, or an
        // earlier one that gave up) left the lease ours under an ETag we never saw: still ours
        // when it names our owner and takenAt, and renewed again over that ETag.
        const found = await this.access.get(this.key, { maxBytes: MAX_LEASE_BYTES });
        const held = found && parseRecord(found.bytes);
        if (found && held?.owner === this.#record.owner && held.takenAt === this.#record.takenAt) {
          tag = tries > 1 && sameBytes(found.bytes, bytes)
            ? found.etag
            : await this.access.putSmall(
              this.key,
              bytes,
              leaseWrite({ ifMatch: found.etag }),
            );
        }
      }
      if (tag === "conflict") {
        this.#lose("another run took it over or it was deleted");
        return;
      }
      this.#etag = tag;
      this.#record = record;
    } catch (error) {
      // Tried again at the next interval; lost only once it lapsed unrenewed.
      if (Date.now() > Date.parse(this.#record.expiresAt)) {
        this.#lose(
          `it lapsed at ${this.#record.expiresAt}: it could not be renewed (${reason(error)})`,
        );
      }
    }
  }

  #lose(why: string): void {
    this.#lost = why;
    clearInterval(this.#timer);
  }

  assertHeld(): Promise<void> {
    if (!this.#lost && Date.now() > Date.parse(this.#record.expiresAt)) {
      this.#lose(`it lapsed at ${this.#record.expiresAt} without a renewal`);
    }
    if (this.#lost) {
      return Promise.reject(
        new CliError(
          "state",
          `this run no longer holds the lease ${this.key} on ${this.options.what} (${this.#lost}); ` +
            `stopping without writing`,
        ),
      );
    }
    return Promise.resolve();
  }

  release(): Promise<void> {
    this.#released ??= (async () => {
      clearInterval(this.#timer);
      await this.#renewing;
      if (this.#lost) return;
      this.#lost = "it was released";
      const retried = <T>(what: string, attempt: () => Promise<T>) =>
        withRetries(`${what} ${keyUrl(this.access, this.key)}`, this.policy, attempt, () => {});
      // Read first: a store that ignores If-Match on DELETE (Ceph 16) then deletes another run's
      // lease only if that run took it over in the moment between the read and the delete.
      const found = await retried(
        "reading the lease",
        () => this.access.get(this.key, { maxBytes: MAX_LEASE_BYTES }),
      );
      if (!found || bareEtag(found.etag) !== bareEtag(this.#etag)) return;
      if (conditionalWrites(this.access) === "if-match-only") {
        // Never deleted there (a create cannot be conditional): made free, If-Match ours.
        await retried(
          "releasing",
          () =>
            this.access.putSmall(
              this.key,
              encode(freeRecord(this.options.what)),
              leaseWrite({ ifMatch: this.#etag }),
            ),
        );
        return;
      }
      const expired = encode({ ...this.#record, expiresAt: new Date(0).toISOString() });
      await deleteOrExpire(this.access, this.key, {
        ifMatch: this.#etag,
        expired: { bytes: expired, ifMatch: this.#etag },
        retried,
      });
    })();
    return this.#released;
  }
}
