/**
 * Manifest chains for the tests of the chain walk (lib/manifest/chain.ts): links made up to
 * their names, hashes and sequences, so a test can take one out, fork or forge one.
 */
import type { ChainLink } from "../../lib/manifest/chain.ts";

/**
 * A job's chain of `count` manifests, each linked to the one before: the manifest of sequence
 * `n` is `2026070<n>T000000Z-r<n>.jsonl`, its last hash `h<n>` and its `prev` `h<n-1>` (the
 * first's `null`).
 *
 * @example
 * ```ts
 * const [first, second] = chainLinks("ws-1/AUTH_LOG", 2);
 * console.assert(second.prev === first.lastHash);
 * ```
 */
export function chainLinks(job: string, count: number): ChainLink[] {
  return Array.from({ length: count }, (_, i) => ({
    manifest: `2026070${i + 1}T000000Z-r${i + 1}.jsonl`,
    job,
    sequence: i + 1,
    prev: i === 0 ? null : `h${i}`,
    lastHash: `h${i + 1}`,
  }));
}
