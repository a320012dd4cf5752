/**
 * Reading, listing and conditional writes of small objects in a bucket or container: what an
 * archive's manifests (lib/manifest/object_store.ts), a checkpoint kept in the store
 * (`--state s3://...`) and the leases that guard both need beyond the uploads of
 * `_object_store.ts`. `S3Store` and `AzureBlobStore` implement it with their own signing.
 *
 * Keys are full keys in the bucket or container (the store's prefix already applied by the
 * caller). Each method makes ONE attempt, like `ObjectStore`'s: it throws a `TransientError` for
 * what another try may cure and a `CliError` for what it cannot; callers retry with lib/retry.ts's
 * `withRetries` and the store's policy (`storeRetryPolicy`).
 *
 * Conditional writes are how two runs that share a store are kept apart without a local lock:
 * `ifNoneMatch: "*"` creates only when the key does not exist (a lease taken, a manifest never
 * overwritten); `ifMatch: etag` replaces only the version read (a lease renewed, a checkpoint
 * moved). A write whose condition fails resolves to `"conflict"` (HTTP 412, or 409 where the
 * store answers a concurrent create that way); it never throws for it.
 *
 * @example
 * ```ts
 * declare const access: ObjectAccess;
 * const got = await access.get("jobs/auth.state.json");
 * const tag = await access.putSmall("jobs/auth.state.json", new TextEncoder().encode("{}"), {
 *   condition: got ? { ifMatch: got.etag } : { ifNoneMatch: "*" },
 *   contentType: "application/json",
 * });
 * if (tag === "conflict") throw new Error("another run moved it");
 * ```
 */

/** An object read whole (small objects only: manifests, checkpoints, leases). */
export interface FetchedObject {
  bytes: Uint8Array;
  /** The store's ETag, quotes included as the store sent them. */
  etag: string;
}

/** One key as a listing gives it. */
export interface ListedObject {
  key: string;
  size: number;
  etag?: string;
  lastModified?: Date;
}

/** The condition of a write or delete: none, "only if absent", or "only this version". */
export type WriteCondition = { ifNoneMatch: "*" } | { ifMatch: string } | undefined;

export interface PutSmallOptions {
  condition?: WriteCondition;
  contentType: string;
  /** Metadata names (lowercase letters and digits) to values. */
  metadata?: Record<string, string>;
  /**
   * Write-once retention (`--retain-days`, for manifests): S3 Object Lock headers, Azure
   * version-level immutability headers, as the stored objects get. Never for what must be
   * deleted or replaced (leases, live marks, a checkpoint).
   */
  retention?: { mode: "governance" | "compliance"; until: Date };
}

export interface ObjectAccess {
  /** How it is named in messages, e.g. `s3://bucket/prefix`. */
  readonly label: string;
  /** The object whole, or undefined when there is none. Refuses one over `maxBytes` (1 MiB). */
  get(key: string, options?: { maxBytes?: number; signal?: AbortSignal }): Promise<
    FetchedObject | undefined
  >;
  /** Bytes `start` up to (excluding) `end` of an object: for reading large ones in chunks. */
  getRange(key: string, start: number, end: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** One page of keys under `prefix`, in key order; `next` continues the listing. */
  listPage(
    prefix: string,
    next?: string,
    signal?: AbortSignal,
  ): Promise<{ objects: ListedObject[]; next?: string }>;
  /** Writes a small object whole; its new ETag, or "conflict" when the condition failed. */
  putSmall(
    key: string,
    bytes: Uint8Array,
    options: PutSmallOptions,
    signal?: AbortSignal,
  ): Promise<string | "conflict">;
  /** Deletes a key (no error when it is already gone); "conflict" when `ifMatch` failed. */
  deleteKey(
    key: string,
    condition?: { ifMatch: string },
    signal?: AbortSignal,
  ): Promise<void | "conflict">;
}
