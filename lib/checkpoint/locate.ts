/**
 * Which `StateStore` (store.ts) a `--state` value names: a local file, or a checkpoint in a
 * bucket or container (object_state.ts).
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const store = await openStateStore("s3://jobs/auth.state.json", env);
 * ```
 */
import { existsSync } from "node:fs";
import { parseLocation } from "../locations.ts";
import type { Env } from "../settings.ts";
import { stateTarget } from "./format.ts";
import { objectStateStore } from "./object_state.ts";
import { LocalStateStore, type StateStore } from "./store.ts";

/**
 * The store `--state` names: a local file, or a URL of a bucket or container (credentials from
 * `env`, as the destinations take them).
 */
export async function openStateStore(path: string, env: Env = {}): Promise<StateStore> {
  const location = parseLocation(path);
  if (location.kind === "url") return objectStateStore(location.text, env);
  return new LocalStateStore(path, await stateTarget(path));
}

/**
 * Whether the checkpoint `path` exists, without creating or locking anything.
 *
 * @example
 * ```ts
 * await stateExists("auth.state.json"); // false before the first run
 * ```
 */
export async function stateExists(path: string, env: Env = {}): Promise<boolean> {
  if (parseLocation(path).kind === "path") return existsSync(path);
  return (await (await openStateStore(path, env)).read()) !== undefined;
}
