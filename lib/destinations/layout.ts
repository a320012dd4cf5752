/**
 * Where a file goes under an `--output-dir` root, local or in a bucket (`--layout`):
 *
 * - `plain` (the default): `<event_type>/<YYYY-MM-DD of end_time>/<id>.jsonl[.gz]`;
 * - `hive`: `event_type=<T>/date=<YYYY-MM-DD>/<id>.jsonl[.gz]`, which Athena, Glue, Spark and
 *   DuckDB discover as partitions.
 *
 * Keys are joined with `/` (the local destination turns them into a path); ids were checked to be
 * safe path segments by the listing.
 *
 * @example
 * ```ts
 * import type { LogFile } from "../log_file.ts";
 * const file: LogFile = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-02T10:00:00Z" };
 * relativeKey(file, "AUTH_LOG", { gzip: false, layout: "hive" });
 * // "event_type=AUTH_LOG/date=2026-07-02/eclf_1.jsonl"
 * ```
 */
import type { LogFile } from "../log_file.ts";
import type { OptionTable } from "../options.ts";
import { usage } from "../errors.ts";
import { toMicros } from "../time.ts";

export type Layout = "plain" | "hive";

export const LAYOUTS: readonly Layout[] = ["plain", "hive"];

/** How one destination names its files. */
export interface KeyLayout {
  gzip: boolean;
  layout: Layout;
}

/** The `--layout` option, declared alike by every `--output-dir` kind. */
export const LAYOUT_OPTION: OptionTable = {
  layout: {
    type: "string",
    arg: "plain|hive",
    help: "with --output-dir, name files <type>/<day>/<id> (plain, default)\n" +
      "or event_type=<type>/date=<day>/<id> (hive partitions)",
  },
};

/**
 * The `--layout` value (default `plain`); anything else is a usage error.
 *
 * @example
 * ```ts
 * parseLayout(undefined); // "plain"
 * parseLayout("hive"); // "hive"
 * ```
 */
export function parseLayout(value: string | boolean | undefined): Layout {
  if (value === undefined || value === false) return "plain";
  if (value === "plain" || value === "hive") return value;
  throw usage(`--layout must be plain or hive, got '${value}'`);
}

/** The UTC day of a file's end_time, `YYYY-MM-DD`. */
export function dayOf(file: LogFile): string {
  return new Date(Number(toMicros(file.end_time)! / 1000n)).toISOString().slice(0, 10);
}

/** The file's key relative to the root, `/`-separated. */
export function relativeKey(file: LogFile, eventType: string, naming: KeyLayout): string {
  const day = dayOf(file);
  const name = `${file.id}.jsonl${naming.gzip ? ".gz" : ""}`;
  return naming.layout === "hive"
    ? `event_type=${eventType}/date=${day}/${name}`
    : `${eventType}/${day}/${name}`;
}
