/**
 * `verify --against-api`: lists the API over the window the archive covers (or the one given)
 * and compares: a file the API lists that the archive neither holds nor recorded as gone or
 * skipped is a gap (a problem); a recorded file the API no longer lists is information (past
 * the API's retention, most likely).
 *
 * @example
 * ```ts
 * import type { ListingClient } from "../listing.ts";
 * import type { CheckResult } from "./check.ts";
 * declare const client: ListingClient;
 * declare const result: CheckResult;
 * const findings = await apiGaps(client, result, {
 *   windows: [{ eventType: "AUTH_LOG", after: "2026-07-01T00:00:00Z" }],
 *   limit: 100,
 * });
 * ```
 */
import { listEntries, type ListingClient, type ListingObserver } from "../listing.ts";
import { toMicros } from "../time.ts";
import type { CheckResult } from "./check.ts";
import type { Finding } from "./model.ts";

/** The API keeps files 30 days; older ones are expected to be unlisted. */
const RETENTION_MS = 30 * 24 * 3_600_000;

/** What to list: each event type over its own window (`before` exclusive, as the API takes it). */
export interface ApiWindow {
  windows: Array<{ eventType: string; after: string; before?: string }>;
  limit: number;
  now?: () => number;
}

const QUIET_OBSERVER: ListingObserver = {
  pageStarted() {},
  pageListed() {},
  skipped() {},
};

export async function apiGaps(
  client: ListingClient,
  result: CheckResult,
  window: ApiWindow,
  observer: ListingObserver = QUIET_OBSERVER,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const now = window.now ?? Date.now;
  for (const { eventType, after, before } of window.windows) {
    const start = { after, seen: new Set<string>() };
    const settings = { limit: window.limit, before, settleMs: 0 };
    const afterMicros = toMicros(after)!;
    const beforeMicros = before === undefined ? undefined : toMicros(before)!;
    const recorded = result.recordedIds.get(eventType) ?? new Map();
    const unrecorded = result.unrecordedIds.get(eventType) ?? new Set<string>();
    const listed = new Set<string>();
    for await (const entry of listEntries(client, eventType, start, settings, observer)) {
      if (entry.kind !== "file") continue;
      const { file } = entry;
      listed.add(file.id);
      if (recorded.has(file.id) || unrecorded.has(file.id)) continue;
      findings.push({
        kind: "gap",
        severity: "problem",
        message: `${file.id} (${eventType}, end_time ${file.end_time}): listed by the API, ` +
          "not in the archive",
        eventType,
        id: file.id,
      });
      const figures = result.types.get(eventType);
      if (figures) figures.problems++;
    }
    for (const [id, line] of recorded) {
      if (listed.has(id) || line.type !== "file") continue;
      const end = toMicros(line.end_time);
      if (end === undefined || end <= afterMicros) continue;
      if (beforeMicros !== undefined && end >= beforeMicros) continue;
      const old = now() - Number(end / 1000n) > RETENTION_MS;
      findings.push({
        kind: "past_retention",
        severity: "info",
        message: `${id} (${eventType}, end_time ${line.end_time}): in the archive, no longer ` +
          `listed by the API${old ? " (past its 30-day retention)" : ""}`,
        eventType,
        id,
        path: line.path,
      });
    }
  }
  return findings;
}
