/**
 * Where an archive's manifests and files are, as the manifest writer and `verify` see it: a
 * local directory (lib/manifest/local_store.ts), or a bucket or container (lib/manifest/object_store.ts: an object
 * store implements the same few calls with its own listing, reads and conditional writes).
 * Paths are relative to the archive's root and `/`-separated, as the manifest records them.
 *
 * @example
 * ```ts
 * declare const store: ArchiveStore;
 * for (const name of await store.manifests()) console.log(name, (await store.readManifest(name)).length);
 * ```
 */

/** One stored object (a file of the archive, outside its manifest folder). */
export interface StoredObject {
  /** Relative to the archive's root, `/`-separated. */
  path: string;
  size: number;
  /** A temp of this tool: `live` while its writer runs (not unexpected), `dead` once it died. */
  temp?: "live" | "dead";
}

/** A held lock on the archive's manifest folder (or a run's live mark, `markLive`). */
export interface ManifestLock {
  /**
   * Throws a CliError (kind "state") when the lock is no longer this run's (an object store's
   * lease lost, taken over); the writer calls it just before it writes a manifest. An OS lock
   * cannot be lost, and a live mark that is lost is made again: both resolve at once.
   */
  assertHeld(): Promise<void>;
  release(): Promise<void>;
}

export interface ArchiveStore {
  /** How the user named it, for messages (`logs/`, `s3://bucket/prefix`). */
  readonly label: string;
  /** The manifests' names in `_manifest/`, sorted (the names sort by time). */
  manifests(): Promise<string[]>;
  readManifest(name: string): Promise<string>;
  /** Writes one manifest whole: it appears complete or not at all. */
  writeManifest(name: string, text: string): Promise<void>;
  /** Serializes manifest writers (waits for another run's lock, within reason). */
  lock(): Promise<ManifestLock>;
  /**
   * Marks a run at work on `eventTypes` until released (the OS lets go when it dies), so that
   * `verify` meanwhile does not take the files it stored since its last manifest for strays.
   */
  markLive(runId: string, eventTypes: readonly string[]): Promise<ManifestLock>;
  /** The event types of every run at work now. */
  liveRuns(): Promise<string[][]>;
  /** Every stored object outside `_manifest/` (under `prefixes` only, when given). */
  objects(prefixes?: readonly string[]): AsyncIterable<StoredObject>;
  /** An object's bytes, in bounded chunks. */
  read(path: string): AsyncIterable<Uint8Array>;
}
