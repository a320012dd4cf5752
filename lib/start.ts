/**
 * The one rule for where each event type's listing starts: its checkpoint cursor, else `<after>`,
 * else a usage error naming what to give. A type new to an `all` job (the API added it, or a key's
 * scope now allows it) starts at the API's retention horizon, so that a growing type list never
 * breaks a scheduled job. Called before anything is created or requested, and again by each pass
 * (the checkpoint moves between polls).
 *
 * @example
 * ```ts
 * const { starts } = startsOf(["AUTH_LOG"], "2026-07-01T00:00:00Z", undefined, { all: false });
 * starts.get("AUTH_LOG"); // { after: "2026-07-01T00:00:00Z", seen: Set {} }
 * ```
 */
import { usage } from "./errors.ts";
import type { Start } from "./listing.ts";
import { toMicros } from "./time.ts";

/** The API keeps about this much history. */
export const RETENTION_MS = 30 * 86_400_000;

/** What the rule needs of a checkpoint: its path, and its cursors once the file exists. */
export interface CheckpointCursors {
  readonly path: string;
  /** Undefined while the state file does not exist yet. */
  cursor?: (eventType: string) => { after: string; seen: string[] } | undefined;
}

/**
 * Where each of `eventTypes` starts, and the warnings that go with it (a start older than the
 * API's retention). `checkpoint` is undefined without `--state`. Throws a usage error when a type
 * has nowhere to start.
 */
export function startsOf(
  eventTypes: readonly string[],
  after: string | undefined,
  checkpoint: CheckpointCursors | undefined,
  options: { all: boolean; nowMs?: number },
): { starts: Map<string, Start>; warnings: string[] } {
  const nowMs = options.nowMs ?? Date.now();
  const starts = new Map<string, Start>();
  const warnings: string[] = [];
  const cursorless: string[] = [];
  for (const eventType of eventTypes) {
    const saved = checkpoint?.cursor?.(eventType);
    if (saved) starts.set(eventType, { after: saved.after, seen: new Set(saved.seen) });
    else cursorless.push(eventType);
  }
  if (cursorless.length === 0) return { starts, warnings };
  if (after === undefined) {
    if (checkpoint === undefined) {
      throw usage("missing <after>: give a start time as <after> or --after (or use --state)");
    }
    if (checkpoint.cursor === undefined) {
      throw usage(
        `missing <after>: the state file ${checkpoint.path} does not exist yet; give a start ` +
          `time as <after> or --after for the first run`,
      );
    }
    if (!options.all) {
      throw usage(
        `missing <after>: the state file ${checkpoint.path} has no cursor for ` +
          `${cursorless.join(", ")} yet; give a start time as <after> or --after for the first run`,
      );
    }
    const horizon = new Date(nowMs - RETENTION_MS).toISOString();
    for (const eventType of cursorless) starts.set(eventType, { after: horizon, seen: new Set() });
    warnings.push(
      `warning: ${cursorless.join(", ")} ${cursorless.length > 1 ? "are" : "is"} new to this ` +
        `'all' job; listing ${cursorless.length > 1 ? "them" : "it"} from ${horizon}, the oldest ` +
        `the API keeps`,
    );
    return { starts, warnings };
  }
  for (const eventType of cursorless) starts.set(eventType, { after, seen: new Set() });
  // Only a start the user gave: a checkpoint's cursor stays at the newest file it has seen, which
  // for a quiet event type may be old without anything having been missed.
  if ((toMicros(after) ?? 0n) < BigInt(nowMs - RETENTION_MS) * 1000n) {
    warnings.push(
      `warning: after ${after} is more than 30 days ago; the API keeps about 30 days of files, ` +
        `so older ones may be gone`,
    );
  }
  return { starts, warnings };
}
