/**
 * What `verify` finds and reports: findings (each a problem, an explained gap or information,
 * with the consequences it caused grouped under it), per event type figures and coverage, each
 * job's chain head, and the verdict. This is the `--json` report's shape and what the HTML
 * report and the stderr summary render.
 *
 * @example
 * ```ts
 * const finding: Finding = {
 *   kind: "altered", severity: "problem", message: "AUTH_LOG/2026-07-02/eclf_1.jsonl: SHA-256 differs",
 *   path: "AUTH_LOG/2026-07-02/eclf_1.jsonl", eventType: "AUTH_LOG",
 * };
 * ```
 */

export type FindingKind =
  | "altered"
  | "missing"
  | "unexpected"
  | "chain_break"
  | "window_hole"
  | "duplicate"
  | "gap"
  | "gone"
  | "skipped"
  | "kept_aside"
  | "past_retention"
  | "duplicate_event";

/** `problem`: fails the verification (exit 3); `explained`: a recorded gap; `info`: neither. */
export type Severity = "problem" | "explained" | "info";

export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** One line saying what is wrong and where. */
  message: string;
  eventType?: string;
  path?: string;
  id?: string;
  manifest?: string;
  /** A time range (a hole, a removed manifest's window). */
  from?: string;
  to?: string;
  /** Every file and every event id of a `duplicate_event` finding. */
  paths?: string[];
  eventIds?: string[];
  /** What this cause brought about, not reported again on its own (files, windows). */
  consequences?: Finding[];
}

export interface Interval {
  from: string;
  to: string;
}

export interface TypeFigures {
  eventType: string;
  files: number;
  bytes: number;
  events: number;
  firstEndTime: string | null;
  lastEndTime: string | null;
  verified: number;
  problems: number;
  /** The windows the runs listed, merged, in time order. */
  covered: Interval[];
  holes: Interval[];
  /** End times of files recorded gone, and of files found altered or missing (for the timeline). */
  gone: string[];
  damaged: string[];
  /** Files recorded per UTC hour of their end_time (`2026-07-02T10`): the timeline's ticks. */
  archivedHours: Record<string, number>;
}

export interface ChainHead {
  job: string;
  manifests: number;
  /** SHA-256 of the chain's last line. */
  head: string;
  signature: "verified" | "invalid" | "unsigned" | "signed, not checked";
  keyId?: string;
}

export interface VerifyReport {
  tool: { name: "oai-compliance-logs"; version: string };
  command: string;
  archive: string;
  verifiedAt: string;
  intact: boolean;
  verdict: string;
  principals: string[];
  period: Interval | null;
  manifests: number;
  againstApi: boolean;
  types: TypeFigures[];
  chains: ChainHead[];
  /** Problems first, then explained gaps, then information. */
  findings: Finding[];
  counts: Record<Severity, number>;
}
