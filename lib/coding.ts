/**
 * Content codings, decoded by the tool itself: `fetch` is told to leave bodies as sent (see
 * `fetchInit` in runtime.ts) so that what a compressed body inflates to can be bounded
 * while it streams, and a log file can be verified in its stored form as well as its decoded one.
 */
import { CliError, DecodeError } from "./errors.ts";

/**
 * At most this much compressed input goes into the decoder at a time: gzip inflates up to ~1032x,
 * so one 16 KiB piece becomes at most ~17 MB of output held at once.
 */
const MAX_PIECE = 16 * 1024;

/** A body's Content-Encoding as one lower-case token; `undefined` for none or `identity`. */
export function contentCoding(headers: Headers): string | undefined {
  const coding = headers.get("content-encoding")?.trim().toLowerCase();
  return coding === undefined || coding === "" || coding === "identity" ? undefined : coding;
}

/** Whether `decode` can undo `coding`. */
export function canDecode(coding: string | undefined): boolean {
  return coding === undefined || coding === "gzip" || coding === "x-gzip";
}

/**
 * The decoded chunks of `raw`, a body sent with Content-Encoding `coding` (see `canDecode`).
 * Pulls `raw` only as fast as the output is read, so a gzip bomb costs bounded memory. Errors of
 * `raw` (timeouts, aborts) pass through unchanged; the decoder's own become `DecodeError`s.
 * Stopping early (a `break`) closes `raw` once its pending read ends: abort the request too.
 *
 * @example
 * ```ts
 * import { type Opened, readBody } from "./http.ts";
 * declare const opened: Opened;
 * declare function write(chunk: Uint8Array): Promise<void>;
 * const body = readBody(opened, { idleMs: 30_000, what: "downloading log id=eclf_1" });
 * const coding = contentCoding(opened.response.headers);
 * for await (const chunk of decode(body, coding)) await write(chunk);
 * ```
 */
export async function* decode(
  raw: AsyncIterable<Uint8Array>,
  coding: string | undefined,
): AsyncGenerator<Uint8Array> {
  if (coding === undefined) return yield* raw;
  if (!canDecode(coding)) {
    throw new CliError("api", `the server sent Content-Encoding: ${coding}, which is not decoded`);
  }
  const source = raw[Symbol.asyncIterator]();
  let pending: Uint8Array = new Uint8Array(0);
  const input = new ReadableStream<BufferSource>({
    async pull(controller) {
      while (pending.length === 0) {
        const step = await source.next();
        if (step.done) return controller.close();
        pending = step.value;
      }
      controller.enqueue(pending.slice(0, MAX_PIECE));
      pending = pending.subarray(MAX_PIECE);
    },
    cancel() {
      source.return?.(undefined).catch(() => {});
    },
  }, { highWaterMark: 0 });
  const reader = input.pipeThrough<Uint8Array>(new DecompressionStream("gzip")).getReader();
  try {
    while (true) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch (error) {
        if (error instanceof CliError) throw error;
        throw new DecodeError(coding, error);
      }
      if (step.done) return;
      yield step.value;
    }
  } finally {
    // Not awaited: a read of `raw` may still be pending; the caller aborts the request to end it.
    reader.cancel().catch(() => {});
  }
}
