/**
 * What a destination module is, for the registry (mod.ts) and for the layers that handle a chosen
 * destination without knowing its kind (the session, the pass, the fan-out): types only, so that
 * a destination module and the registry that lists it never import each other.
 *
 * @example
 * ```ts
 * declare const kind: DestinationKind;
 * declare const context: DestinationContext;
 * const configured = kind.configure("logs", {}, context);
 * await configured.check();
 * ```
 */
import type { OptionTable, OptionValues } from "../options.ts";
import type { RetryNotice } from "../retry.ts";
import type { LogFile } from "../log_file.ts";
import type { Destination, Guarantee } from "./contract.ts";
import type { ArchiveStore } from "../manifest/store.ts";

/** The options that name a destination; stdout is what a run writes to when neither is given. */
export type DestinationFlag = "output" | "output-dir";

/** What a destination kind is told when it is configured from a command line. */
export interface DestinationContext {
  /** Whether the run polls (`--follow`). */
  follow: boolean;
  /** The checkpoint's path (`--state`), when there is one. */
  statePath?: string;
  /** The environment (credentials are read from it). */
  env: Record<string, string | undefined>;
}

export interface DestinationKind {
  /** Its name in messages and the docs, e.g. "directory". */
  readonly name: string;
  /** The option it serves; undefined for stdout (the default). */
  readonly flag?: DestinationFlag;
  /** URL schemes it takes (`s3` for `s3://...`); empty: it takes a local path. */
  readonly schemes: readonly string[];
  /**
   * Whether it takes this URL of one of its schemes (default: every one): a kind that shares a
   * scheme such as `https` takes only its own hosts, so another https URL is not taken for it.
   */
  takes?(url: string): boolean;
  /** Its own options, with their help (parsed by the command, checked by `configure`). */
  readonly options: OptionTable;
  /** Environment variables that hold its secrets: their values are redacted from all output. */
  readonly secretEnv: readonly string[];
  /** Run options it cannot be combined with, each with the reason. */
  readonly conflicts: Readonly<Record<string, string>>;
  /**
   * Checks `target` (the option's value) and this kind's options, with usage errors, before any
   * I/O; returns the destination ready to check itself and open.
   */
  configure(
    target: string,
    values: OptionValues<OptionTable>,
    context: DestinationContext,
  ): ConfiguredDestination;
}

/** A destination chosen and configured for one run, not yet opened. */
export interface ConfiguredDestination {
  /** How the user named it, for messages: `-o out.jsonl`, `--output-dir logs`, `stdout`. */
  readonly label: string;
  readonly guarantee: Guarantee;
  /** Local files it writes, for the check that no two of a run's files are the same file. */
  readonly localFiles: ReadonlyArray<readonly [label: string, path: string]>;
  /** What can be checked before the first request (a path's kind, credentials, reachability). */
  check(): Promise<void>;
  /** Opens it for one pass (`--follow` opens it once per poll), telling `events` what happens. */
  open(events: DestinationEvents): Promise<Destination>;
  /**
   * Where its manifests go and its stored files are read back (`--output-dir` kinds); such a
   * destination confirms each file with what it stored (`Receipt.confirm(StoredFacts)`).
   */
  readonly archive?: ArchiveStore;
}

/**
 * What a destination tells the run while it works, beyond its receipts: its own retries (counted
 * and shown like the API's) and warnings (an object found altered and written again).
 */
export interface DestinationEvents {
  retry(notice: RetryNotice): void;
  warn(text: string): void;
  /** A stored file that no longer matched its listing was renamed aside (kept as evidence). */
  keptAside(kept: KeptAside): void;
}

/** A stored file found altered by a re-run, and where it was kept. */
export interface KeptAside {
  file: LogFile;
  eventType: string;
  /** Where it was, and where it is now (as the user named the archive). */
  path: string;
  aside: string;
  /** The same two, relative to the archive's root (as its manifest names files). */
  key: string;
  asideKey: string;
  /** What the altered file holds. */
  size: number;
  sha256: string;
}
