/**
 * An object store's answer body as bytes, exactly as stored (no text decoding, no
 * Content-Encoding undone), under the answer's idle timeout and deadline and a size cap: what
 * `ObjectAccess.get` and `getRange` (lib/destinations/_object_access.ts) read with.
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
import { concatBytes } from "../bytes.ts";
import { CliError } from "../errors.ts";
import { answerDeadlineMs, type Opened, readBody } from "../http.ts";

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
 * A 200 where a range was asked (the store or a proxy ignored Range): refused, its body unread,
 * when its Content-Length is more than the `wanted` bytes (without one, reading it with
 * `maxBytes: wanted` stops at the range's size).
 */
export function refuseWholeObject(opened: Opened, wanted: number, what: string): void {
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
