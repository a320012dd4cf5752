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
 * The local path an option names; a URL is a usage error naming the schemes that option takes,
 * before anything is created.
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

/** `https://ACCOUNT.blob.core.windows.net/...`: the only https URLs `--state` takes. */
const AZURE_BLOB_URL = /^https:\/\/[a-z0-9]{3,24}\.blob\.core\.windows\.net\//;

/**
 * What `--state` names: a local file, or a checkpoint in object storage (`s3://BUCKET/KEY`,
 * `az://CONTAINER/KEY`, `https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY`); any other URL is
 * a usage error, before anything is created.
 *
 * @example
 * ```ts
 * stateLocation("state.json"); // "state.json"
 * stateLocation("s3://bucket/jobs/auth.state.json"); // "s3://bucket/jobs/auth.state.json"
 * stateLocation("ftp://host/state.json"); // throws: --state takes a file, s3:// or az://
 * ```
 */
export function stateLocation(text: string): string {
  const location = parseLocation(text);
  if (location.kind === "path") return location.path;
  if (location.scheme === "s3" || location.scheme === "az" || AZURE_BLOB_URL.test(text)) {
    return text;
  }
  throw usage(
    `--state ${text}: --state takes a local file path, s3://BUCKET/KEY, az://CONTAINER/KEY or ` +
      `https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY; ${location.scheme}:// URLs are not ` +
      `supported for it`,
  );
}
