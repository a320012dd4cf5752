/**
 * The manifest's lines: one JSON object per line, each naming the SHA-256 of the line before it
 * (`prev`), so that changing, removing or reordering any line breaks the chain. A manifest is
 * one header, the files (delivered, recovered, gone, skipped) in the checkpoint's confirmation
 * order, and one closing line (optionally signed). The first line of a manifest links to the
 * last line of the previous manifest of the same job (principal and event types), so one chain
 * spans every run of that job into a directory. Hashes are over a line's exact UTF-8 bytes
 * (without its newline): nothing is re-serialized to check them.
 *
 * @example
 * ```ts
 * const header = headerLine({
 *   version: "1.0.0", runId: "r1", startedAt: "2026-07-02T00:00:00.000Z", apiBase: "https://api.openai.com/v1",
 *   principal: "ws-1", eventTypes: ["AUTH_LOG"], sequence: 1, windows: {}, prev: null,
 * });
 * lineHash(header); // hex SHA-256 of the line
 * ```
 */
import { createHash } from "node:crypto";

/** The manifest format this version writes (and the one it reads). */
export const MANIFEST_FORMAT = 1;
/** The folder of an archive that holds its manifests. */
export const MANIFEST_DIR = "_manifest";

/** A window an event type was listed over: `from` the start cursor `to` what it reached. */
export interface ListedWindow {
  from: string;
  to: string;
  /** When the listing of this type started (the quiet end is this less the publication delay). */
  listed_at: string;
}

export interface HeaderLine {
  type: "header";
  format: number;
  tool: "oai-compliance-logs";
  version: string;
  run_id: string;
  started_at: string;
  api_base: string;
  principal: string;
  event_types: string[];
  /** The job this chain belongs to: principal and event types. */
  job: string;
  /** This manifest's place in its job's chain, from 1: a gap is a removed manifest. */
  sequence: number;
  /** Per event type, the window this run (or `--follow` poll) listed. */
  windows: Record<string, ListedWindow>;
  prev: string | null;
}

/** What the destination stored for a file (relative path or object key, and how it differs). */
export interface StoredFacts {
  path: string;
  /**
   * Size and hash of the stored bytes, when they differ from the listed ones (gzip), or when the
   * listing gave no SHA-256 (then of the bytes as downloaded and stored): what a check compares
   * the stored bytes with before the listed `file_size`/`file_sha256`.
   */
  stored_size?: number;
  stored_sha256?: string;
  /** Lines (events) in the file, and the `timestamp` of the first and the last. */
  lines?: number;
  first_timestamp?: string;
  last_timestamp?: string;
}

export interface FileLine extends StoredFacts {
  type: "file";
  id: string;
  event_type: string;
  end_time: string;
  file_name?: string;
  file_size?: number;
  file_sha256?: string;
  delivered_at: string;
  /** Found stored but in no manifest (a run that crashed before writing its manifest). */
  recovered?: true;
  prev: string;
}

export interface GoneLine {
  type: "gone";
  id: string;
  event_type: string;
  end_time: string;
  reason: "expired" | "unavailable";
  recorded_at: string;
  prev: string;
}

export interface SkippedLine {
  type: "skipped";
  id: string;
  event_type: string;
  end_time: string;
  reason: string;
  recorded_at: string;
  prev: string;
}

/** A stored file a re-run found altered: kept aside (renamed) as evidence, and stored again. */
export interface KeptAsideLine {
  type: "kept_aside";
  id: string;
  event_type: string;
  end_time: string;
  /** Where it was stored, and the name it was kept under (relative to the archive's root). */
  path: string;
  aside: string;
  /** What the altered file holds. */
  aside_size: number;
  aside_sha256: string;
  recorded_at: string;
  prev: string;
}

export interface CloseLine {
  type: "close";
  /** Lines before this one in this manifest. */
  lines: number;
  /** SHA-256 of the line before this one: what the signature signs. */
  head: string;
  /** Base64 Ed25519 signature of `head` (its hex text as UTF-8), with `--sign-key`. */
  signature?: string;
  /** SHA-256 of the signing public key (SPKI DER), to tell keys apart. */
  key_id?: string;
  closed_at: string;
  prev: string;
}

export type EntryLine = FileLine | GoneLine | SkippedLine | KeptAsideLine;
export type ManifestLine = HeaderLine | EntryLine | CloseLine;

/** The job a chain belongs to: the principal and its event types (sorted), or `all`. */
export function jobOf(principal: string, eventTypes: readonly string[] | "all"): string {
  const types = eventTypes === "all" ? "all" : [...eventTypes].sort().join(",");
  return `${principal}/${types}`;
}

/** Hex SHA-256 of one line's text (without its newline). */
export function lineHash(line: string): string {
  return createHash("sha256").update(line).digest("hex");
}

/** The header line's text (fields in a fixed order). */
export function headerLine(options: {
  version: string;
  runId: string;
  startedAt: string;
  apiBase: string;
  principal: string;
  eventTypes: string[];
  job?: string;
  sequence: number;
  windows: Record<string, ListedWindow>;
  prev: string | null;
}): string {
  const line: HeaderLine = {
    type: "header",
    format: MANIFEST_FORMAT,
    tool: "oai-compliance-logs",
    version: options.version,
    run_id: options.runId,
    started_at: options.startedAt,
    api_base: options.apiBase,
    principal: options.principal,
    event_types: options.eventTypes,
    job: options.job ?? jobOf(options.principal, options.eventTypes),
    sequence: options.sequence,
    windows: options.windows,
    prev: options.prev,
  };
  return JSON.stringify(line);
}

/**
 * The manifest's file name: run (or poll) start in UTC ISO basic format, then the run id, so that
 * names sort by time: `20260702T100000Z-<run id>.jsonl`.
 *
 * @example
 * ```ts
 * manifestName(new Date("2026-07-02T10:00:00.123Z"), "r1"); // "20260702T100000.123Z-r1.jsonl"
 * ```
 */
export function manifestName(startedAt: Date, runId: string): string {
  const basic = startedAt.toISOString().replace(/[-:]/g, "");
  return `${basic}-${runId}.jsonl`;
}

/** Parses one manifest line; throws a plain `Error` naming what is wrong. */
export function parseLine(text: string): ManifestLine {
  const value: unknown = JSON.parse(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("not a JSON object");
  }
  const type = (value as { type?: unknown }).type;
  if (!["header", "file", "gone", "skipped", "kept_aside", "close"].includes(type as string)) {
    throw new Error(`unknown line type ${JSON.stringify(type)}`);
  }
  return value as ManifestLine;
}
