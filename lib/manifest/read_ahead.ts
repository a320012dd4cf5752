/**
 * An archive's manifests read a few at a time, handed on in the order asked: they grow by one a
 * run (an hourly job writes 8,760 a year), and every run, `verify` and `--from-archive` reads
 * them all. One after another, each cost a round trip to the store before the run could start.
 *
 * @example
 * ```ts
 * import type { ArchiveStore } from "./store.ts";
 * declare const store: ArchiveStore;
 * for await (const { name, text } of readManifests(store, await store.manifests())) {
 *   console.log(name, text.length);
 * }
 * ```
 */
import type { ArchiveStore } from "./store.ts";

/** Manifests being read at once: each is held whole (up to 256 MiB) until its turn. */
export const MANIFESTS_AHEAD = 8;

/** `names` of `store` with their texts, in that order, at most `ahead` read at once. */
export async function* readManifests(
  store: Pick<ArchiveStore, "readManifest">,
  names: readonly string[],
  ahead = MANIFESTS_AHEAD,
): AsyncGenerator<{ name: string; text: string }> {
  const reading: Array<Promise<string>> = [];
  let next = 0;
  const readMore = () => {
    while (reading.length < ahead && next < names.length) {
      const text = store.readManifest(names[next++]);
      text.catch(() => {}); // Surfaced when its turn comes (or dropped if the reader stopped).
      reading.push(text);
    }
  };
  readMore();
  for (const name of names) {
    const text = await reading.shift()!;
    readMore();
    yield { name, text };
  }
}
