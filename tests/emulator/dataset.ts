/**
 * What files exist: the `FileSpec` a test writes, its normalized form (id, principal and exact
 * size filled in), and generators for bulk and demo datasets.
 *
 * @example
 * const files = generateDataset({ count: 150, start: "2026-07-01T00:00:00Z" });
 */
import { routeOnlyOf, scopeOf } from "../../lib/event_types.ts";
import { Content } from "./content.ts";
import { hashHex, Rng } from "./_random.ts";
import { formatEndTime, parseIsoMicros } from "./_time.ts";

/** One log file the emulator lists and serves. */
export interface FileSpec {
  /** e.g. "eclf_..."; default derived from the other fields. */
  id?: string;
  /** "AUTH_LOG" | "AUDIT_LOG" | ... */
  eventType: string;
  /** RFC 3339 UTC, e.g. "2026-07-09T13:00:00Z" (normalized to this shape). */
  endTime: string;
  /** Default: the emulator's first principal. */
  principal?: string;
  /** Approximate size of generated content in bytes (whole lines); normalized to the exact size. */
  size?: number;
  /** Default true; false = the last line has no newline. */
  trailingNewline?: boolean;
  /** Lines end with "\r\n". */
  crlf?: boolean;
  /** Explicit content instead of generated (size and sha come from it). */
  content?: Uint8Array | string;
  /** Seed of generated content (default 0): same seed and id, same bytes. */
  seed?: number;
  /** Override what the listing says (null = omit the field), for wrong size/hash tests. */
  advertise?: { fileSize?: number | null; fileSha256?: string | null };
}

/** The default principals: a ChatGPT workspace and an API organization. */
export const DEFAULT_PRINCIPALS = ["ws-0f0e0d0c-demo", "org-demoorg123"];
/** Default target size of a generated file. */
export const DEFAULT_FILE_SIZE = 2048;

/** A spec with every default filled in; `size` is the exact number of bytes served. */
export type NormalizedFileSpec = FileSpec & {
  id: string;
  principal: string;
  size: number;
  trailingNewline: boolean;
  crlf: boolean;
};

/** A file as the emulator holds it. */
export interface StoredFile {
  spec: NormalizedFileSpec;
  endMicros: number;
  content: Content;
}

/** A stable id from the fields that identify a file, unique among `taken`. */
function defaultId(spec: FileSpec, principal: string, taken: (id: string) => boolean): string {
  for (let n = 0;; n++) {
    const id = `eclf_${
      hashHex(`${spec.seed ?? 0}|${principal}|${spec.eventType}|${spec.endTime}|${n}`).slice(0, 32)
    }`;
    if (!taken(id)) return id;
  }
}

/** Fills in defaults and builds the content; throws on a spec a test could not have meant. */
export function normalizeSpec(
  spec: FileSpec,
  defaultPrincipal: string,
  taken: (id: string) => boolean,
): StoredFile {
  const endMicros = parseIsoMicros(spec.endTime);
  if (endMicros === null) throw new TypeError(`FileSpec.endTime is not ISO 8601: ${spec.endTime}`);
  if (!spec.eventType) throw new TypeError("FileSpec.eventType is required");
  const principal = spec.principal ?? defaultPrincipal;
  const route = routeOnlyOf(spec.eventType);
  if (route !== undefined && route !== scopeOf(principal)) {
    throw new TypeError(
      `FileSpec: ${principal} cannot hold ${spec.eventType} files: only ${route} carry that type`,
    );
  }
  const id = spec.id ?? defaultId(spec, principal, taken);
  if (taken(id)) throw new TypeError(`duplicate file id ${id}`);
  const trailingNewline = spec.trailingNewline ?? true;
  const crlf = spec.crlf ?? false;
  const content = spec.content !== undefined ? Content.explicit(spec.content) : Content.generated({
    seed: spec.seed ?? 0,
    id,
    eventType: spec.eventType,
    principal,
    endMicros,
    target: spec.size ?? DEFAULT_FILE_SIZE,
    crlf,
    trailingNewline,
  });
  return {
    spec: {
      ...spec,
      id,
      principal,
      endTime: formatEndTime(endMicros),
      size: content.size,
      trailingNewline,
      crlf,
    },
    endMicros,
    content,
  };
}

export interface DatasetOptions {
  principal?: string;
  /** Default ["AUTH_LOG"]; `count` files are made for each. */
  eventTypes?: string[];
  /** Files per event type. */
  count: number;
  /** End time of the first file of each type. */
  start: string;
  /** Minutes between consecutive end times of one type; default 60. */
  stepMinutes?: number;
  /** Target size of each file; default 2048. */
  size?: number;
  seed?: number;
}

/**
 * `count` hourly (or every `stepMinutes`) files per event type, ids and content fixed by `seed`.
 *
 * @example
 * generateDataset({ eventTypes: ["AUTH_LOG", "AUDIT_LOG"], count: 24, start: "2026-07-09T01:00:00Z" });
 */
export function generateDataset(opts: DatasetOptions): (FileSpec & { id: string })[] {
  const start = parseIsoMicros(opts.start);
  if (start === null) throw new TypeError(`start is not ISO 8601: ${opts.start}`);
  const step = (opts.stepMinutes ?? 60) * 60_000_000;
  const seed = opts.seed ?? 0;
  const principal = opts.principal ?? DEFAULT_PRINCIPALS[0];
  const specs: (FileSpec & { id: string })[] = [];
  for (const eventType of opts.eventTypes ?? ["AUTH_LOG"]) {
    for (let i = 0; i < opts.count; i++) {
      const endTime = formatEndTime(start + i * step);
      specs.push({
        id: `eclf_${hashHex(`${seed}|${principal}|${eventType}|${i}`).slice(0, 32)}`,
        eventType,
        endTime,
        principal,
        size: opts.size ?? DEFAULT_FILE_SIZE,
        seed,
      });
    }
  }
  return specs;
}

/** A size between 0 and ~200 KB, mostly small, sometimes empty. */
function demoSize(rng: Rng): number {
  if (rng.int(25) === 0) return 0;
  return Math.round(Math.exp(Math.log(300) + rng.next() * (Math.log(200_000) - Math.log(300))));
}

/**
 * The demo dataset: for the workspace, 250 AUTH_LOG files (three pages at limit 100) and 40
 * AUDIT_LOG files over the two days ending a few minutes before `now`, sizes from 0 to ~200 KB, a
 * few without a trailing newline; for the organization, 12 APP_LOG and 6 APP_AUTH_LOG files over
 * the same days and 44 hourly COSTS files ending 4 hours before `now` (COSTS arrive 3-5 h late).
 */
export function demoDataset(now: number = Date.now()): (FileSpec & { id: string })[] {
  const rng = new Rng("demo");
  const minute = 60_000_000;
  const last = Math.floor((now * 1000 - 5 * minute) / minute) * minute;
  const specs: (FileSpec & { id: string })[] = [];
  const series = (
    principal: string,
    eventType: string,
    count: number,
    end = last,
    step = Math.floor((48 * 60) / count) * minute,
  ) => {
    for (let i = 0; i < count; i++) {
      const endMicros = end - (count - 1 - i) * step;
      specs.push({
        id: `eclf_${hashHex(`demo|${principal}|${eventType}|${i}`).slice(0, 32)}`,
        eventType,
        endTime: formatEndTime(endMicros),
        principal,
        size: demoSize(rng),
        trailingNewline: rng.int(20) !== 0,
      });
    }
  };
  series(DEFAULT_PRINCIPALS[0], "AUTH_LOG", 250);
  series(DEFAULT_PRINCIPALS[0], "AUDIT_LOG", 40);
  const hour = 60 * minute;
  series(DEFAULT_PRINCIPALS[1], "APP_LOG", 12);
  series(DEFAULT_PRINCIPALS[1], "APP_AUTH_LOG", 6);
  series(
    DEFAULT_PRINCIPALS[1],
    "COSTS",
    44,
    Math.floor((now * 1000 - 4 * hour) / hour) * hour,
    hour,
  );
  return specs;
}
