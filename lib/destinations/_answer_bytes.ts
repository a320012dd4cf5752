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
