/**
 * An object store's answer body as bytes, exactly as stored (no text decoding, no
 * Content-Encoding undone), under the answer's idle timeout and deadline and a size cap: what
 * `ObjectAccess.get` and `getRange` (lib/destinations/_object_access.ts) read with. Also what
 * every store does with the answer to such a read (`readSmallObject`, `readRangeAnswer`) and
 * with a read back's (`digestAnswer`), written once so that the stores cannot differ.
 *
 * @example
 * ```ts
 * import type { Opened } from "../http.ts";
 * declare const opened: Opened;
 * const bytes = await readAnswerBytes(opened, {
 *   idleMs: 60_000,
 *   what: "reading jobs/auth.state.json",
 *   maxBytes: 1 << 20,
 * });
 * ```
 */
import { createHash } from "node:crypto";
import { concatBytes } from "../bytes.ts";
import { CliError } from "../errors.ts";
import { answerDeadlineMs, type Opened, readBody } from "../http.ts";
import type { FetchedObject } from "./_object_access.ts";
import type { ReadBack } from "./_object_store.ts";

/** Reads the whole body; a body over `maxBytes` is a CliError naming `what` (it stops reading). */
export async function readAnswerBytes(
  opened: Opened,
  options: { idleMs: number; what: string; maxBytes: number; signal?: AbortSignal },
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const body = readBody(opened, { ...options, deadlineMs: answerDeadlineMs(options.idleMs) });
    for await (const chunk of body) {
      total += chunk.length;
      if (total > options.maxBytes) {
        throw new CliError(
          "io",
          `${options.what}: the object is larger than ${options.maxBytes} bytes; stopped reading it`,
        );
      }
      chunks.push(chunk);
    }
  } finally {
    opened.abort();
  }
  return chunks.length === 0 ? new Uint8Array(0) : concatBytes(chunks, total);
}

/**
 * A small object (a checkpoint, a lease, a manifest) from the 200 answer to its GET, with the
 * ETag a conditional write names it by: refused unread when its Content-Length is over
 * `maxBytes`, and never read past it. `noun` is the store's word for it in that refusal
 * ("object", "blob"); `what` names the read in messages.
 *
 * @example
 * ```ts
 * import type { Opened } from "../http.ts";
 * declare const opened: Opened;
 * const { bytes, etag } = await readSmallObject(opened, {
 *   idleMs: 60_000,
 *   what: "s3://b/: reading jobs/auth.state.json",
 *   maxBytes: 1 << 20,
 *   noun: "object",
 * });
 * ```
 */
export async function readSmallObject(
  opened: Opened,
  options: { idleMs: number; what: string; maxBytes: number; noun: string; signal?: AbortSignal },
): Promise<FetchedObject> {
  const { idleMs, what, maxBytes, noun, signal } = options;
  const headers = opened.response.headers;
  const length = Number(headers.get("content-length") ?? NaN);
  if (length > maxBytes) {
    opened.abort();
    throw new CliError(
      "io",
      `${what}: the ${noun} is ${length} bytes, more than the ${maxBytes} such ` +
        `${/^[aeiou]/.test(noun) ? "an" : "a"} ${noun} may have`,
    );
  }
  const bytes = await readAnswerBytes(opened, { idleMs, what, maxBytes, signal });
  return { bytes, etag: requireEtag(headers, what) };
}

/**
 * The bytes `start` to `end` (exclusive) of an object, from the answer to a GET that asked for
 * that range: a 206, or a 200 for a range from 0 (a store or proxy that ignores Range sends the
 * whole object, taken only when it is no more than the range, so that a 2 GiB object is never
 * buffered whole). Any other answer is the error `refused` makes of it (each store reads its own
 * error document). `what` names the read in messages.
 *
 * @example
 * ```ts
 * import type { Opened } from "../http.ts";
 * declare const opened: Opened;
 * const bytes = await readRangeAnswer(opened, {
 *   start: 0,
 *   end: 4096,
 *   idleMs: 60_000,
 *   what: "s3://b/: reading bytes 0 to 4096 of k",
 * }, () => Promise.resolve(new Error(`GET answered ${opened.response.status}`)));
 * ```
 */
export async function readRangeAnswer(
  opened: Opened,
  range: { start: number; end: number; idleMs: number; what: string; signal?: AbortSignal },
  refused: () => Promise<Error>,
): Promise<Uint8Array> {
  const { start, end, idleMs, what, signal } = range;
  const status = opened.response.status;
  if (status !== 206 && !(status === 200 && start === 0)) throw await refused();
  if (status === 200) refuseWholeObject(opened, end - start, what);
  return await readAnswerBytes(opened, { idleMs, what, maxBytes: end - start, signal });
}

/**
 * The size and SHA-256 of an answer's body as it streams (never held: a stored object may be
 * gigabytes), under the answer's idle timeout but no deadline (a large object takes long): what
 * a store's `readBack` checks a stored object with. `what` names the read in messages.
 *
 * @example
 * ```ts
 * import type { Opened } from "../http.ts";
 * declare const opened: Opened;
 * const { size, sha256 } = await digestAnswer(opened, {
 *   idleMs: 60_000,
 *   what: "s3://b/: reading AUTH_LOG/2026-07-02/eclf_1.jsonl",
 * });
 * ```
 */
export async function digestAnswer(
  opened: Opened,
  options: { idleMs: number; what: string; signal?: AbortSignal },
): Promise<ReadBack> {
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of readBody(opened, options)) {
      hash.update(chunk);
      size += chunk.length;
    }
  } finally {
    opened.abort();
  }
  return { size, sha256: hash.digest("hex") };
}

/**
 * A 200 where a range was asked (the store or a proxy ignored Range): refused, its body unread,
 * when its Content-Length is more than the `wanted` bytes (without one, reading it with
 * `maxBytes: wanted` stops at the range's size).
 */
function refuseWholeObject(opened: Opened, wanted: number, what: string): void {
  const length = Number(opened.response.headers.get("content-length") ?? NaN);
  if (Number.isNaN(length) || length <= wanted) return;
  opened.abort();
  throw new CliError(
    "io",
    `${what}: the store ignored the Range header and sent the whole object (${length} bytes, ` +
      `not ${wanted}); use a store (or proxy) that honours Range requests`,
  );
}

/**
 * The ETag of an answer that must have one: without it no conditional write could name the
 * version read (an empty one would be taken as a version), so it is refused.
 */
export function requireEtag(headers: Headers, what: string): string {
  const etag = headers.get("etag");
  if (etag) return etag;
  throw new CliError(
    "io",
    `${what}: the store's answer has no ETag, which conditional writes need; use a store (or ` +
      `proxy) that passes ETags through`,
  );
}
