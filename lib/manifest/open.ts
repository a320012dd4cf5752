/**
 * The manifest writer for a run, from its settings: an archive destination's own store
 * (`--output-dir DIR` writes `DIR/_manifest/`), else `--manifest FILE`, else none; signed with
 * `--sign-key`. Kept out of the session so that it stays a few lines.
 *
 * @example
 * ```ts
 * declare const settings: import("../settings.ts").RunSettings;
 * // Undefined when the run writes no manifest (no archive, no --manifest FILE).
 * const writer = await openRunManifest({ ...settings, apiBase: settings.client.apiBase });
 * ```
 */
import type { RunSettings } from "../settings.ts";
import { ManifestFileStore } from "./local_store.ts";
import { loadSigningKey } from "./signing.ts";
import { ManifestWriter } from "./writer.ts";

export async function openRunManifest(
  settings: Pick<RunSettings, "manifest" | "destination" | "selection" | "listing" | "follow"> & {
    apiBase: URL;
  },
): Promise<ManifestWriter | undefined> {
  const file = settings.manifest?.file;
  const store = settings.destination.archive ?? (file ? new ManifestFileStore(file) : undefined);
  if (!store) return undefined;
  const signKey = settings.manifest?.signKey;
  const { selection, listing } = settings;
  return await ManifestWriter.open({
    store,
    principal: selection.principal,
    eventTypes: selection.eventTypes,
    all: selection.all,
    apiBase: settings.apiBase.href.replace(/\/$/, ""),
    follow: settings.follow,
    listing: { settleMs: listing.settleMs, before: listing.before },
    signer: signKey === undefined ? undefined : await loadSigningKey(signKey),
  });
}
