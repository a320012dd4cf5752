/**
 * Size and SHA-256 of a stored object as stored and, for a `.gz` one, of its decompressed bytes
 * too, read once in bounded chunks: what the manifest records and `verify` checks.
 *
 * @example
 * ```ts
 * import type { ArchiveStore } from "./store.ts";
 * declare const store: ArchiveStore;
 * const hashed = await hashObject(store, "AUTH_LOG/2026-07-02/eclf_1.jsonl.gz", true);
 * if (hashed.ok) console.log(hashed.plainSha256);
 * ```
 */
import { createHash } from "node:crypto";
import type { ArchiveStore } from "./store.ts";

export type Hashed =
  | {
    ok: true;
    storedBytes: number;
    storedSha256: string;
    plainBytes: number;
    plainSha256: string;
    /** Newline-terminated lines, plus a last line without one. */
    lines: number;
  }
  | { ok: false; storedBytes: number; storedSha256: string; why: string };

/** Hashes `path` of `store`; `gzip`: also decompress it (a corrupt stream is `ok: false`). */
export async function hashObject(
  store: ArchiveStore,
  path: string,
  gzip: boolean,
  onBytes?: (bytes: number) => void,
  /** Told each chunk of the plain (decompressed) bytes, e.g. to read event ids on the way. */
  onPlain?: (chunk: Uint8Array) => void,
): Promise<Hashed> {
  const stored = createHash("sha256");
  let storedBytes = 0;
  const plain = gzip ? createHash("sha256") : stored;
  let plainBytes = 0;
  let newlines = 0;
  let lastByte = -1;
  const count = (chunk: Uint8Array) => {
    for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) newlines++;
    if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
  };
  const source = store.read(path);
  if (!gzip) {
    for await (const chunk of source) {
      stored.update(chunk);
      storedBytes += chunk.length;
      count(chunk);
      onPlain?.(chunk);
      onBytes?.(chunk.length);
    }
    const sha = stored.digest("hex");
    return {
      ok: true,
      storedBytes,
      storedSha256: sha,
      plainBytes: storedBytes,
      plainSha256: sha,
      lines: newlines + (lastByte !== -1 && lastByte !== 0x0a ? 1 : 0),
    };
  }
  const tapped = ReadableStream.from((async function* () {
    for await (const chunk of source) {
      stored.update(chunk);
      storedBytes += chunk.length;
      onBytes?.(chunk.length);
      yield chunk;
    }
  })());
  const inflated = tapped.pipeThrough(
    new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
  try {
    for await (const chunk of inflated) {
      plain.update(chunk);
      plainBytes += chunk.length;
      count(chunk);
      onPlain?.(chunk);
    }
  } catch (error) {
    return {
      ok: false,
      storedBytes,
      storedSha256: stored.digest("hex"),
      why: `not a valid gzip stream (${(error as Error).message ?? error})`,
    };
  }
  return {
    ok: true,
    storedBytes,
    storedSha256: stored.digest("hex"),
    plainBytes,
    plainSha256: plain.digest("hex"),
    lines: newlines + (lastByte !== -1 && lastByte !== 0x0a ? 1 : 0),
  };
}
