/**
 * Figures as a person reads them: every number a line shows is rounded to what matters
 * (`1.2 MB/s`, `3 files/min`, `2h 13m`), never a float's seventeen digits.
 *
 * @example
 * ```ts
 * formatBytes(885.4718981972429) + "/s"; // "885 B/s"
 * formatDuration(7_980); // "2h 13m"
 * ```
 */

const BYTE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/**
 * `n` bytes in decimal units: whole bytes, then one decimal place from KB on.
 *
 * @example
 * ```ts
 * formatBytes(12_345); // "12.3 KB"
 * formatBytes(999_960); // "1.0 MB"
 * ```
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "0 B";
  let value = n;
  let unit = 0;
  // Round first, so 999.96 KB shows as 1.0 MB rather than 1000.0 KB.
  while (unit < BYTE_UNITS.length - 1 && roundTo(value, unit === 0 ? 0 : 1) >= 1000) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/**
 * A download rate in bytes per second.
 *
 * @example
 * ```ts
 * formatByteRate(1_234_567); // "1.2 MB/s"
 * ```
 */
export function formatByteRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * Files per minute: whole from 10 on, a tenth below (and below 0.1, per hour).
 *
 * @example
 * ```ts
 * formatFileRate(48.46); // "48 files/min"
 * formatFileRate(3); // "3 files/min"
 * formatFileRate(1498.4); // "1,498 files/min"
 * formatFileRate(0.05); // "3 files/h"
 * ```
 */
export function formatFileRate(filesPerMinute: number): string {
  if (filesPerMinute > 0 && filesPerMinute < 0.1) {
    return `${trimmed(filesPerMinute * 60, filesPerMinute * 60 >= 10 ? 0 : 1)} files/h`;
  }
  if (filesPerMinute >= 10) return `${formatCount(filesPerMinute)} files/min`;
  return `${trimmed(filesPerMinute, 1)} files/min`;
}

/**
 * A duration in seconds in its two largest units: `45s`, `4m 30s`, `12m`, `2h 13m`, `3d 4h`.
 *
 * @example
 * ```ts
 * formatDuration(270); // "4m 30s"
 * formatDuration(7_980); // "2h 13m"
 * ```
 */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m}m`;
  if (m < 48 * 60) return `${Math.floor(m / 60)}h ${m % 60}m`;
  const h = Math.round(m / 60);
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/**
 * A count with thousands separated by commas.
 *
 * @example
 * ```ts
 * formatCount(39_000); // "39,000"
 * ```
 */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function roundTo(value: number, places: number): number {
  const factor = 10 ** places;
  return Math.round(value * factor) / factor;
}

/** `value` to `places` decimals, without a trailing `.0`. */
function trimmed(value: number, places: number): string {
  return String(roundTo(value, places));
}
