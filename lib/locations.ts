/**
 * What a path-like option value names: a URL (it starts with `scheme://`) or a local path. One
 * rule for `-o`, `--output-dir`, `--state` and every later one, so that `s3://bucket` is never
 * taken for a local directory named `s3:`, while `C:\logs` and `C:/logs` stay Windows paths.
 *
 * @example
 * ```ts
 * parseLocation("s3://bucket/prefix"); // { kind: "url", scheme: "s3", text: "s3://bucket/prefix" }
 * parseLocation("C:\\logs"); // { kind: "path", path: "C:\\logs" }
 * ```
 */
import { usage } from "./errors.ts";

export type Location =
  | { kind: "url"; scheme: string; text: string }
  | { kind: "path"; path: string };

/** A value is a URL only when it starts with `scheme://` (RFC 3986 scheme characters). */
const URL_PREFIX = /^([a-z][a-z0-9+.-]*):\/\//;

export function parseLocation(text: string): Location {
  const scheme = URL_PREFIX.exec(text)?.[1];
  return scheme === undefined ? { kind: "path", path: text } : { kind: "url", scheme, text };
}

/**
 * The local path an option names; a URL is a usage error naming the schemes that option takes
 * (none yet for the checkpoint), before anything is created.
 *
 * @example
 * ```ts
 * localPath("--state", "state.json"); // "state.json"
 * localPath("--state", "s3://bucket/state.json"); // throws: --state takes a local file
 * ```
 */
export function localPath(option: string, text: string): string {
  const location = parseLocation(text);
  if (location.kind === "path") return location.path;
  throw usage(
    `${option} ${text}: ${option} takes a local file path; ${location.scheme}:// URLs are not ` +
      `supported for it`,
  );
}
