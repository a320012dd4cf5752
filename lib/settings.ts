/**
 * The settings a command line becomes, grouped by the layer that uses them: the commands
 * (lib/commands/) build them once, the harness (lib/harness.ts) takes the reporting, client and
 * secrets, and each layer below gets only its own group (the listing its selection and page
 * settings, a destination its own options, the client its policy). Types only: no module below
 * the harness sees a whole `RunSettings`.
 *
 * @example
 * ```ts
 * declare const settings: RunSettings;
 * const { selection, listing } = settings; // what the pass lists, and how
 * ```
 */
import type { Scope } from "./event_types.ts";
import type { RetryPolicy } from "./retry.ts";
import type { TimeArg } from "./time.ts";
import type { ConfiguredDestination } from "./destinations/kind.ts";
import type { ArchiveStore } from "./manifest/store.ts";

/** The environment as the CLI sees it. */
export type Env = Record<string, string | undefined>;

/** What to list: whose logs, which event types, from when. */
export interface Selection {
  principal: string;
  scope: Scope;
  /** The event types named, or with `all` the route's types as this version knows them. */
  eventTypes: string[];
  /** `all` was asked: stored as `all` in the checkpoint, resolved again by each run. */
  all: boolean;
  /** `<after>`: where event types without a checkpoint cursor start. */
  after?: TimeArg;
}

/** How each event type is listed, page by page. */
export interface ListingSettings {
  /** Files per page. */
  limit: number;
  /** Only files whose end_time is earlier (ISO text, sent to the API). */
  before?: string;
  /** Files whose end_time is more recent than this are left for a later poll (0: none). */
  settleMs: number;
  now?: () => number;
}

/** What the API client needs: where, with which key, and how hard to retry. */
export interface ClientSettings {
  apiBase: URL;
  /** The Compliance API key. Never print a ClientSettings. */
  key: string;
  /** Where the key was read from, for hints: `COMPLIANCE_API_KEY` or the key file's name. */
  keySource: string;
  policy: RetryPolicy;
  timeoutMs: number;
  /** The download endpoint's budget per rolling minute, shared by the whole run. */
  downloadsPerMinute: number;
}

/** How the command reports on stderr. */
export interface ReportSettings {
  verbosity: "quiet" | "normal" | "verbose";
  logFormat: "plain" | "json";
}

/** What every API command (`run`, `list`, later `verify --against-api`) is given. */
export interface CommandSettings {
  selection: Selection;
  listing: ListingSettings;
  client: ClientSettings;
  report: ReportSettings;
  /** `--state FILE`: the checkpoint (a local file). */
  statePath?: string;
  /** Warnings found while parsing (e.g. an unknown event type), shown once the command reports. */
  warnings: string[];
}

/** A run: what `CommandSettings` says, where the files go, and how often. */
export interface RunSettings extends CommandSettings {
  /** Where every file goes (stdout when none was named); checked before the first download. */
  destination: ConfiguredDestination;
  /** Downloads at once. */
  concurrency: number;
  follow: boolean;
  intervalMs: number;
  /** `--manifest FILE` (for a run without an archive) and `--sign-key FILE` (lib/manifest/). */
  manifest?: { file?: string; signKey?: string };
  /** `--from-archive DIR`: the files are read from this archive instead of the API. */
  fromArchive?: ArchiveSourceSettings;
}

/** The archive a run reads its files from (lib/archive_source.ts), instead of the API. */
export interface ArchiveSourceSettings {
  /** As the user named it: `logs/`, `s3://bucket/prefix`. */
  label: string;
  store: ArchiveStore;
  /** Refuses an archive that is not there (or holds no manifests), before any work. */
  check(): Promise<void>;
}
