/**
 * The list endpoint's semantics without any I/O: validate the query the way FastAPI would
 * (422 with a `detail` array), then pick one page of files and the cursor to continue from.
 *
 * @example
 * const q = parseListQuery(new URLSearchParams("limit=100&event_type=AUTH_LOG&event_type=AUDIT_LOG&after=2026-07-01"));
 * if ("query" in q) selectPage(files, q.query, { inclusiveAfter: false, lastEndTimeMode: "lastItem" });
 */
import type { StoredFile } from "./dataset.ts";
import { parseIsoMicros } from "./_time.ts";

export interface ListQuery {
  limit: number;
  /** Every `event_type` given (the parameter is an array: repeated), in order, without repeats. */
  eventTypes: string[];
  afterMicros: number;
  beforeMicros: number | null;
}

/** One entry of a FastAPI validation error. */
export interface ValidationDetail {
  type: string;
  loc: string[];
  msg: string;
  input: string | null;
  ctx?: Record<string, unknown>;
}

export interface PageOptions {
  inclusiveAfter: boolean;
  lastEndTimeMode: "lastItem" | "pageMaxPlusMicros";
}

export interface Page {
  items: StoredFile[];
  hasMore: boolean;
  /** Epoch micros of `last_end_time`, null on an empty page. */
  lastEndMicros: number | null;
}

const DEFAULT_LIMIT = 100;

function datetimeError(name: string, input: string): ValidationDetail {
  return {
    type: "datetime_from_date_parsing",
    loc: ["query", name],
    msg: "Input should be a valid datetime or date, invalid character in year",
    input,
  };
}

/** The validated query, or every problem with it (FastAPI reports them all at once). */
export function parseListQuery(
  params: URLSearchParams,
): { query: ListQuery } | { detail: ValidationDetail[] } {
  const detail: ValidationDetail[] = [];
  const rawLimit = params.get("limit");
  let limit = DEFAULT_LIMIT;
  if (rawLimit !== null) {
    if (!/^\s*[+-]?\d+\s*$/.test(rawLimit)) {
      detail.push({
        type: "int_parsing",
        loc: ["query", "limit"],
        msg: "Input should be a valid integer, unable to parse string as an integer",
        input: rawLimit,
      });
    } else {
      limit = Number(rawLimit);
      if (limit < 1) {
        detail.push({
          type: "greater_than_equal",
          loc: ["query", "limit"],
          msg: "Input should be greater than or equal to 1",
          input: rawLimit,
          ctx: { ge: 1 },
        });
      } else if (limit > 100) {
        detail.push({
          type: "less_than_equal",
          loc: ["query", "limit"],
          msg: "Input should be less than or equal to 100",
          input: rawLimit,
          ctx: { le: 100 },
        });
      }
    }
  }
  const eventTypes = [...new Set(params.getAll("event_type").filter((t) => t !== ""))];
  if (!eventTypes.length) {
    detail.push({
      type: "missing",
      loc: ["query", "event_type"],
      msg: "Field required",
      input: null,
    });
  }
  const rawAfter = params.get("after");
  const afterMicros = rawAfter === null ? null : parseIsoMicros(rawAfter);
  if (rawAfter === null) {
    detail.push({ type: "missing", loc: ["query", "after"], msg: "Field required", input: null });
  } else if (afterMicros === null) {
    detail.push(datetimeError("after", rawAfter));
  }
  const rawBefore = params.get("before");
  const beforeMicros = rawBefore === null ? null : parseIsoMicros(rawBefore);
  if (rawBefore !== null && beforeMicros === null) detail.push(datetimeError("before", rawBefore));
  if (detail.length) return { detail };
  return { query: { limit, eventTypes, afterMicros: afterMicros!, beforeMicros } };
}

function byEndTimeThenId(a: StoredFile, b: StoredFile): number {
  return a.endMicros - b.endMicros || (a.spec.id < b.spec.id ? -1 : a.spec.id > b.spec.id ? 1 : 0);
}

/**
 * One page of `files` (already those of the principal, within retention): of any of the asked
 * types, after `after` (strictly, unless inclusive) and strictly before `before`, ascending by end
 * time then id (so several types come as one union in end_time order).
 *
 * With strict `after`, files sharing the end time of a page's last item but falling on the next
 * page are never listed: that is what a strictly-later cursor implies, so datasets that page
 * should not put equal end times across a page boundary.
 */
export function selectPage(files: Iterable<StoredFile>, q: ListQuery, opts: PageOptions): Page {
  const matching: StoredFile[] = [];
  const types = new Set(q.eventTypes);
  for (const f of files) {
    if (!types.has(f.spec.eventType)) continue;
    if (opts.inclusiveAfter ? f.endMicros < q.afterMicros : f.endMicros <= q.afterMicros) continue;
    if (q.beforeMicros !== null && f.endMicros >= q.beforeMicros) continue;
    matching.push(f);
  }
  matching.sort(byEndTimeThenId);
  const items = matching.slice(0, q.limit);
  const hasMore = matching.length > items.length;
  if (!items.length) return { items, hasMore, lastEndMicros: null };
  const last = items[items.length - 1].endMicros;
  if (opts.lastEndTimeMode === "lastItem") return { items, hasMore, lastEndMicros: last };
  // Past the last item by a few hundred microseconds, but never up to the next file's end time,
  // so a strictly-later cursor still loses nothing.
  const next = hasMore ? matching[items.length].endMicros : Infinity;
  const bump = 1 + (Math.floor(last / 1000) % 997);
  return { items, hasMore, lastEndMicros: Math.max(last, Math.min(last + bump, next - 1)) };
}
