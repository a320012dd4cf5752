/**
 * Time arguments and cursors. The API takes ISO 8601 instants and answers with RFC 3339 cursors
 * carrying microseconds, which `Date` cannot hold, so comparisons use integer microseconds.
 */
import { CliError } from "./errors.ts";

const ISO_WITH_ZONE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}:?\d{2})$/;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const RELATIVE = /^(\d+)(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Microseconds since the epoch of an RFC 3339 instant, or undefined when it does not parse. */
export function toMicros(iso: string): bigint | undefined {
  const m = ISO_WITH_ZONE.exec(iso);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = "00", frac = "", zone] = m;
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  // Reject calendar overflow such as 2026-02-31, which Date.UTC silently rolls over.
  const check = new Date(ms);
  if (
    check.getUTCFullYear() !== +y || check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d ||
    +h > 23 || +mi > 59 || +s > 59
  ) return undefined;
  let offsetMinutes = 0;
  if (zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const zh = +digits.slice(0, 2);
    const zm = +digits.slice(2);
    if (zh > 23 || zm > 59) return undefined;
    offsetMinutes = sign * (zh * 60 + zm);
  }
  const micros = BigInt(frac.padEnd(6, "0").slice(0, 6));
  return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1000n + micros;
}

/** `2026-07-09T13:00:00Z` for a Date, without milliseconds. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export interface TimeArg {
  /** What is sent to the API: the user's ISO text verbatim, or the computed instant. */
  iso: string;
  micros: bigint;
}

/**
 * Parses a time argument: ISO 8601 with a zone (sent verbatim, as the scripts do), a date alone
 * (UTC midnight), or a relative `90m`/`24h`/`7d`/`2w` counted back from `now`.
 *
 * @example
 * ```ts
 * parseTimeArg("24h", "after", new Date("2026-07-10T00:00:00Z")).iso // "2026-07-09T00:00:00Z"
 * ```
 */
export function parseTimeArg(text: string, name: string, now: Date = new Date()): TimeArg {
  const relative = RELATIVE.exec(text);
  if (relative) {
    const ms = now.getTime() - Number(relative[1]) * UNIT_MS[relative[2]];
    // `new Date` of a far past instant is invalid and `toISOString` would throw.
    if (!(ms >= 0)) {
      throw new CliError(
        "usage",
        `${name} must be a relative time that lands after 1970-01-01 (e.g. 7d); got '${text}'`,
      );
    }
    const iso = isoSeconds(new Date(ms));
    return { iso, micros: toMicros(iso)! };
  }
  const iso = DATE_ONLY.test(text) ? `${text}T00:00:00Z` : text;
  const micros = toMicros(iso);
  if (micros === undefined) {
    throw new CliError(
      "usage",
      `${name} must be an ISO 8601 time with a zone (e.g. 2026-07-09T00:00:00Z), a date ` +
        `(2026-07-09) or a relative time (90m, 24h, 7d); got '${text}'`,
    );
  }
  return { iso, micros };
}

/**
 * The instant in the machine's local time zone, as the scripts print it:
 * `2026-07-09 15:00:00 CEST`. Empty for a null cursor; the input itself when it does not parse.
 */
export function toLocalHuman(iso: string | null | undefined): string {
  if (!iso || iso === "null") return "";
  const micros = toMicros(iso);
  if (micros === undefined) return iso;
  const date = new Date(Number(micros / 1000n));
  const pad = (n: number) => String(n).padStart(2, "0");
  const zone = zoneLabel(date);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`.trimEnd();
}

/** `UTC`, `PDT`... where the platform has a name for the zone, else the offset as `+02:00`. */
function zoneLabel(date: Date): string {
  const name = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
    .formatToParts(date).find((p) => p.type === "timeZoneName")?.value ?? "";
  if (/^[A-Z]{2,5}$/.test(name)) return name;
  const offset = -date.getTimezoneOffset();
  const abs = Math.abs(offset);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${offset < 0 ? "-" : "+"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/**
 * The longest duration accepted: what runtime timers hold (2^31-1 ms, about 24.8 days). A longer
 * `setTimeout` fires at once, with a warning, so `--interval 25d` would poll in a tight loop.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses a duration such as `5m`, `90s`, `2h`, `1.5` or a bare number of seconds into whole
 * milliseconds (rounded), refusing anything above `MAX_DURATION_MS`.
 *
 * @example
 * ```ts
 * parseDuration("1.5", "--settle") // 1500
 * parseDuration("25d", "--interval") // throws a usage error: at most 24d
 * ```
 */
export function parseDuration(text: string, name: string): number {
  const bare = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) * 1000 : undefined;
  const relative = RELATIVE.exec(text);
  const ms = bare ?? (relative ? Number(relative[1]) * UNIT_MS[relative[2]] : undefined);
  if (ms === undefined || !Number.isFinite(ms)) {
    throw new CliError(
      "usage",
      `${name} must be a duration like 30s, 5m, 2h or a number of seconds; got '${text}'`,
    );
  }
  if (ms > MAX_DURATION_MS) {
    throw new CliError(
      "usage",
      `${name} must be at most ${Math.floor(MAX_DURATION_MS / 1000)} seconds (about 24.8 days), ` +
        `what timers can hold; got '${text}'`,
    );
  }
  return Math.round(ms);
}
