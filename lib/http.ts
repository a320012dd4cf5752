/**
 * `fetch` with the limits a long-running tool needs against any server: a timeout for response
 * headers, an idle timeout for bodies (a stalled stream becomes a retryable failure instead of a
 * hang), an overall deadline and a size cap for API answers (a server that trickles a byte at a
 * time, or a compressed answer that inflates to gigabytes, cannot hold a run or its memory).
 * Bodies arrive as sent and are decoded here (`lib/coding.ts`), under those caps.
 *
 * Requests may use any method and carry a body: bytes or text from memory, or a stream of known
 * length made afresh for each attempt (a spool file), sent with its Content-Length. Redirects are
 * never followed here: the caller sees the 3xx and decides (`lib/urls.ts` says which targets
 * may be followed), so a credential never travels to a host nobody chose.
 *
 * @example
 * ```ts
 * declare const url: URL;
 * const answer = await request(url, { "content-type": "application/json" }, {
 *   method: "POST",
 *   body: JSON.stringify({ event: "x" }),
 *   timeoutMs: 30_000,
 *   what: "sending events",
 * });
 * if (answer.status !== 200) throw new Error(answer.text);
 * ```
 */
import { CliError, DecodeError, TransientError } from "./errors.ts";
import { contentCoding, decode } from "./coding.ts";
import { fetchInit, runtimeName } from "./runtime.ts";

/** An API answer, headers and body, must be whole within this many idle timeouts (`--timeout`). */
export const DEADLINE_TIMEOUTS = 5;
/** The most decoded bytes of one API answer (a listing page) read before giving up on it. */
export const MAX_ANSWER_BYTES = 32 * 1024 * 1024;
/** The most bytes of an error body read (and shown); the rest is not read at all. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * The overall deadline of an API answer for an idle timeout of `idleMs`: 150 s at the default
 * `--timeout 30`. File bodies are exempt: they may take hours yet keep making progress.
 *
 * @example
 * ```ts
 * answerDeadlineMs(30_000); // 150_000
 * ```
 */
export function answerDeadlineMs(idleMs: number): number {
  return DEADLINE_TIMEOUTS * idleMs;
}

/**
 * A body streamed with a known length, e.g. a spool file: `open()` is called once per request and
 * must yield exactly `length` bytes from the first (a retry calls it again).
 */
export interface StreamedBody {
  length: number;
  open(): ReadableStream<Uint8Array>;
}

/** What a request carries: bytes or text from memory, or a stream of known length. */
export type RequestBody = Uint8Array | string | StreamedBody;

/**
 * The most bytes of a streamed body held in memory where the runtime cannot stream it with a
 * Content-Length (Deno sends an unsized stream chunked and drops the header, see
 * denoland/deno#24197, and object stores refuse a PUT without one): 512 MiB.
 */
export const MAX_BUFFERED_BODY_BYTES = 512 * 1024 * 1024;

export interface RequestOptions {
  /**
   * Response headers must arrive within this long of the request's start; for a streamed body,
   * of the last chunk of it sent (an upload that keeps moving is not stalled).
   */
  timeoutMs: number;
  /** What the request is for, in error messages: "listing logs", "uploading f.jsonl". */
  what: string;
  signal?: AbortSignal;
  /** Default GET. */
  method?: string;
  body?: RequestBody;
}

export interface Opened {
  response: Response;
  /** Aborts the request and its body. */
  abort: (reason?: unknown) => void;
  /** Where the request went (its host names the culprit in errors). */
  url: URL;
  /**
   * `performance.now()` when the request started (for a request with a body, when its answer's
   * headers arrived); the answer's deadline counts from here.
   */
  startedAt: number;
}

/** The short reason behind a fetch failure, e.g. `ECONNREFUSED` or `connection reset`. */
export function networkReason(error: unknown): string {
  type Failure = { code?: unknown; message?: unknown; cause?: Failure } | null | undefined;
  const e = error as Failure;
  const code = e?.cause?.code ?? e?.code;
  if (typeof code === "string" && code !== "ERR_INVALID_STATE") return code;
  const message = String(e?.cause?.message ?? e?.message ?? e);
  return message.split(": ").slice(-1)[0].slice(0, 160);
}

/**
 * Advice for network failures a setting can cure: a certificate signed by a private CA (or a
 * TLS-inspecting proxy), or a proxy that refuses the tunnel. Empty for anything else.
 */
export function networkHint(reason: string): string {
  if (
    /cert|UnknownIssuer|NotValidForName|self[- ]signed|UNABLE_TO_(VERIFY|GET_ISSUER)|issuer/i.test(
      reason,
    )
  ) {
    return ": its TLS certificate is not trusted; if a private CA (or a TLS-inspecting proxy) " +
      "signs it, set NODE_EXTRA_CA_CERTS (or DENO_CERT under Deno) to that CA's PEM file";
  }
  if (/proxy/i.test(reason)) {
    return ": the proxy refused; check HTTPS_PROXY, its credentials and NO_PROXY";
  }
  return "";
}

/**
 * Sends a request (a GET unless `options.method` says otherwise, with `options.body` if given)
 * and resolves with the response once its headers arrive. Network failures and timeouts become
 * `TransientError`s; an abort of `signal` rejects with the signal's reason; a streamed body that
 * does not hold its stated length is an `io` error. The answer's body will arrive as sent:
 * `accept-encoding: identity` asks servers not to compress, and one that does anyway (storage
 * holding gzip objects) is decoded by `readText` or the caller.
 *
 * @example
 * ```ts
 * declare const url: URL;
 * const opened = await openRequest(url, {}, { timeoutMs: 30_000, what: "listing logs" });
 * ```
 */
export async function openRequest(
  url: URL,
  headers: Record<string, string>,
  options: RequestOptions,
): Promise<Opened> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (options.signal?.aborted) throw options.signal.reason;
  const timeout = new TransientError(
    "network",
    `timed out after ${options.timeoutMs / 1000}s waiting for ${url.host} while ${options.what}`,
  );
  // Armed again by every chunk of a streamed body: a long upload that keeps moving is not stalled.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(timeout), options.timeoutMs);
  };
  const startedAt = performance.now();
  const sending: { failure?: CliError } = {};
  try {
    const body = await outgoing(options, sending, arm);
    arm();
    const response = await fetch(url, {
      ...fetchInit(url),
      method: options.method ?? "GET",
      headers: { "accept-encoding": "identity", ...headers, ...body.headers },
      // Any Uint8Array is sent as is (the DOM types want one over a plain ArrayBuffer).
      body: body.body as BodyInit | undefined,
      ...(body.body instanceof ReadableStream ? { duplex: "half" } : {}),
      redirect: "manual",
      signal: controller.signal,
    });
    return {
      response,
      url,
      startedAt: options.body === undefined ? startedAt : performance.now(),
      abort: (reason) => {
        controller.abort(reason);
        options.signal?.removeEventListener("abort", onOuterAbort);
      },
    };
  } catch (error) {
    options.signal?.removeEventListener("abort", onOuterAbort);
    if (options.signal?.aborted) throw options.signal.reason;
    if (sending.failure) throw sending.failure;
    if (error instanceof CliError) throw error;
    if (controller.signal.aborted) throw timeout;
    const reason = networkReason(error);
    throw new TransientError(
      "network",
      `network error while ${options.what}: cannot reach ${url.host} (${reason})${
        networkHint(reason)
      }`,
      undefined,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Whether this runtime's fetch sends a stream body with the Content-Length it is given. */
function streamsWithLength(): boolean {
  return !runtimeName().startsWith("deno");
}

/**
 * The body as fetch takes it, and the headers it needs. A streamed body is checked against its
 * length on the way (a mismatch is recorded in `sending.failure`) and calls `progress` per chunk;
 * where the runtime cannot stream it with a length, it is read into memory first.
 */
async function outgoing(
  options: RequestOptions,
  sending: { failure?: CliError },
  progress: () => void,
): Promise<
  { body?: Uint8Array | string | ReadableStream<Uint8Array>; headers?: Record<string, string> }
> {
  const body = options.body;
  if (body === undefined || typeof body === "string" || body instanceof Uint8Array) {
    return { body };
  }
  const { length } = body;
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new CliError(
      "io",
      `the body of a request while ${options.what} has no valid length (${length})`,
    );
  }
  const checked = measured(body.open(), length, options.what, sending, progress);
  if (streamsWithLength()) return { body: checked, headers: { "content-length": String(length) } };
  if (length > MAX_BUFFERED_BODY_BYTES) {
    throw new CliError(
      "io",
      `the body of a request while ${options.what} is ${length} bytes; under Deno at most ` +
        `${formatMiB(MAX_BUFFERED_BODY_BYTES)} can be sent with its length (run it under Bun, or ` +
        `send smaller parts)`,
    );
  }
  const whole = new Uint8Array(length);
  let at = 0;
  const reader = checked.getReader();
  try {
    while (true) {
      const step = await reader.read();
      if (step.done) break;
      whole.set(step.value, at);
      at += step.value.length;
    }
  } catch (error) {
    throw sending.failure ?? error;
  }
  return { body: whole };
}

/** `stream`, failing (and recording why in `sending`) when it yields more or less than `length`. */
function measured(
  stream: ReadableStream<Uint8Array>,
  length: number,
  what: string,
  sending: { failure?: CliError },
  progress: () => void,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let sent = 0;
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, why: string) => {
    sending.failure = new CliError(
      "io",
      `the body of a request while ${what} ${why}; nothing was taken as sent`,
    );
    controller.error(sending.failure);
    reader.cancel().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch (error) {
        return fail(
          controller,
          `could not be read (${error instanceof Error ? error.message : error})`,
        );
      }
      if (step.done) {
        if (sent !== length) return fail(controller, `ended after ${sent} of its ${length} bytes`);
        return controller.close();
      }
      const chunk = typeof step.value === "string"
        ? new TextEncoder().encode(step.value)
        : step.value;
      sent += chunk.length;
      if (sent > length) return fail(controller, `is longer than its stated ${length} bytes`);
      progress();
      controller.enqueue(chunk);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * The body's chunks as sent (still Content-Encoded), failing with a `TransientError` when no byte
 * arrives for `idleMs`, when `deadlineMs` (counted from the request's start) passes, or when the
 * connection breaks mid-body.
 */
export async function* readBody(
  opened: Opened,
  options: { idleMs: number; what: string; signal?: AbortSignal; deadlineMs?: number },
): AsyncGenerator<Uint8Array> {
  const body = opened.response.body;
  if (!body) return;
  const reader = body.getReader();
  const deadlineAt = opened.startedAt + (options.deadlineMs ?? Infinity);
  let received = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    while (true) {
      // One timer for whichever comes first: the idle timeout or the overall deadline.
      const left = deadlineAt - performance.now();
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              left < options.idleMs
                ? new TransientError(
                  "network",
                  `${opened.url.host} did not finish its answer within ` +
                    `${options.deadlineMs! / 1000}s (${DEADLINE_TIMEOUTS} x --timeout; ` +
                    `${received} bytes came) while ${options.what}; gave up on it`,
                )
                : new TransientError(
                  "network",
                  `stalled: no data for ${options.idleMs / 1000}s while ${options.what}`,
                ),
            ),
          Math.max(0, Math.min(left, options.idleMs)),
        );
      });
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await Promise.race([reader.read(), stalled]);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (error instanceof TransientError) throw error;
        throw new TransientError(
          "network",
          `connection broken while ${options.what} (${networkReason(error)})`,
          undefined,
          { cause: error },
        );
      } finally {
        clearTimeout(timer);
      }
      if (step.done) return;
      // Bun may hand out string chunks in byte streams; normalise so hashing and writes agree.
      const chunk = typeof step.value === "string"
        ? new TextEncoder().encode(step.value)
        : step.value;
      received += chunk.length;
      yield chunk;
    }
  } finally {
    opened.abort();
    try {
      reader.releaseLock();
    } catch {
      // A read still pending after a stall; the abort above has already ended it.
    }
  }
}

/**
 * The whole body of an API answer as decoded text, under the idle timeout and the answer
 * deadline, and at most `maxBytes` decoded bytes (default `MAX_ANSWER_BYTES`): past that it
 * throws, or with `truncate` returns what came so far. Either way it stops reading and aborts.
 *
 * @example
 * ```ts
 * declare const opened: Opened;
 * const text = await readText(opened, { idleMs: 30_000, what: "listing logs" });
 * ```
 */
export async function readText(
  opened: Opened,
  options: {
    idleMs: number;
    what: string;
    signal?: AbortSignal;
    maxBytes?: number;
    truncate?: boolean;
  },
): Promise<string> {
  const maxBytes = options.maxBytes ?? MAX_ANSWER_BYTES;
  const coding = contentCoding(opened.response.headers);
  const raw = readBody(opened, { ...options, deadlineMs: answerDeadlineMs(options.idleMs) });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of decode(raw, coding)) {
      const room = maxBytes - total;
      if (chunk.length > room) {
        if (!options.truncate) {
          throw new CliError(
            "api",
            `the answer from ${opened.url.host} while ${options.what} is larger than ` +
              `${formatMiB(maxBytes)}${coding ? " decoded" : ""}; stopped reading it. Check ` +
              `that COMPLIANCE_API_BASE (or --api-base) and any proxy lead to the Compliance API`,
          );
        }
        chunks.push(chunk.subarray(0, room));
        break;
      }
      chunks.push(chunk);
      total += chunk.length;
    }
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    throw new CliError(
      "api",
      `the answer from ${opened.url.host} while ${options.what} could not be decoded: ` +
        `${error.message}; retry later, and report it if it persists`,
    );
  } finally {
    opened.abort();
  }
  const decoder = new TextDecoder();
  return chunks.map((c) => decoder.decode(c, { stream: true })).join("") + decoder.decode();
}

/**
 * An answer read whole: its status, headers and decoded text (see `readText` for the limits).
 */
export interface Answer {
  status: number;
  headers: Headers;
  url: URL;
  text: string;
}

/**
 * Sends a request and reads its whole answer under the answer deadline and a size cap (default
 * `MAX_ANSWER_BYTES`; with `truncate`, a longer answer is cut there instead of refused). Any
 * status resolves; a 3xx is not followed.
 *
 * @example
 * ```ts
 * declare const url: URL;
 * const answer = await request(url, {}, { method: "PUT", body: "{}", timeoutMs: 30_000, what: "uploading" });
 * ```
 */
export async function request(
  url: URL,
  headers: Record<string, string>,
  options: RequestOptions & { maxBytes?: number; truncate?: boolean },
): Promise<Answer> {
  const opened = await openRequest(url, headers, options);
  const text = await readText(opened, {
    idleMs: options.timeoutMs,
    what: options.what,
    signal: options.signal,
    maxBytes: options.maxBytes,
    truncate: options.truncate,
  });
  const { status, headers: answerHeaders } = opened.response;
  return { status, headers: answerHeaders, url, text };
}

/**
 * The answer's body parsed as JSON, read as `readText` reads it; an `api` error when it is not
 * JSON.
 *
 * @example
 * ```ts
 * declare const opened: Opened;
 * const doc = await readJson(opened, { idleMs: 30_000, what: "indexing events" });
 * ```
 */
export async function readJson(
  opened: Opened,
  options: { idleMs: number; what: string; signal?: AbortSignal; maxBytes?: number },
): Promise<unknown> {
  const text = await readText(opened, options);
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(
      "api",
      `the answer from ${opened.url.host} while ${options.what} is not JSON ` +
        `(${text.length} characters, starting ${JSON.stringify(text.slice(0, 80))})`,
    );
  }
}

function formatMiB(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}
