/**
 * Timestamps as the API shows them. Times are held as integer microseconds since the epoch (safe in
 * a double until the year 2255) because `last_end_time` carries microseconds.
 *
 * @example
 * const us = parseIsoMicros("2026-07-09T13:00:00Z")!;
 * formatMicros(us); // "2026-07-09T13:00:00.000000Z"
 */

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/**
 * Parses an ISO 8601 date or date-time to epoch microseconds; `null` when unparsable. A time
 * without an offset is taken as UTC, as the API does; digits past the microsecond are truncated.
 */
export function parseIsoMicros(text: string): number | null {
  const m = ISO_8601.exec(text.trim());
  if (!m) return null;
  const [y, mo, d, h = 0, mi = 0, s = 0] = m.slice(1, 7).map((v) => (v === undefined ? 0 : +v));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  if (new Date(ms).getUTCDate() !== d) return null;
  const fraction = m[7] ? Number(m[7].padEnd(6, "0").slice(0, 6)) : 0;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && zone !== "Z" && zone !== "z") {
    const digits = zone.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return null;
    offsetMinutes = (zone[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  return (ms - offsetMinutes * 60_000) * 1000 + fraction;
}

function splitMicros(us: number): { seconds: string; micros: number } {
  const ms = Math.floor(us / 1000);
  const micros = us - Math.floor(us / 1_000_000) * 1_000_000;
  return { seconds: new Date(ms).toISOString().slice(0, 19), micros };
}

/** RFC 3339 UTC with exactly six fractional digits, the shape of `last_end_time`. */
export function formatMicros(us: number): string {
  const { seconds, micros } = splitMicros(us);
  return `${seconds}.${String(micros).padStart(6, "0")}Z`;
}

/** RFC 3339 UTC, fractional digits only when non-zero: the shape of a file's `end_time`. */
export function formatEndTime(us: number): string {
  const { seconds, micros } = splitMicros(us);
  return micros ? `${seconds}.${String(micros).padStart(6, "0")}Z` : `${seconds}Z`;
}

/** Python's `isoformat()` of an aware UTC datetime, as used in `file_name`. */
export function formatPythonIso(us: number): string {
  const { seconds, micros } = splitMicros(us);
  return micros ? `${seconds}.${String(micros).padStart(6, "0")}+00:00` : `${seconds}+00:00`;
}
