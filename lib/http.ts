/**
 * `fetch` with the limits a long-running tool needs against any server: a timeout for response
 * headers, an idle timeout for bodies (a stalled stream becomes a retryable failure instead of a
 * hang), an overall deadline and a size cap for API answers (a server that trickles a byte at a
 * time, or a compressed answer that inflates to gigabytes, cannot hold a run or its memory).
 * Bodies arrive as sent and are decoded here (`lib/coding.ts`), under those caps.
 */
import { CliError, DecodeError, TransientError } from "./errors.ts";
import { contentCoding, decode } from "./coding.ts";
import { fetchInit } from "./runtime.ts";

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
 * answerDeadlineMs(30_000); // 150_000
 */
export function answerDeadlineMs(idleMs: number): number {
  return DEADLINE_TIMEOUTS * idleMs;
}

export interface Opened {
  response: Response;
  /** Aborts the request and its body. */
  abort: (reason?: unknown) => void;
  /** Where the request went (its host names the culprit in errors). */
  url: URL;
  /** `performance.now()` when the request started; deadlines count from here. */
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
 * Starts a GET and resolves with the response once its headers arrive. Network failures and
 * timeouts become `TransientError`s; an abort of `signal` rejects with the signal's reason.
 * The body will arrive as sent: `accept-encoding: identity` asks servers not to compress, and
 * one that does anyway (storage holding gzip objects) is decoded by `readText` or the caller.
 */
export async function openRequest(
  url: URL,
  headers: Record<string, string>,
  options: { timeoutMs: number; what: string; signal?: AbortSignal },
): Promise<Opened> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (options.signal?.aborted) throw options.signal.reason;
  const timeout = new TransientError(
    "network",
    `timed out after ${options.timeoutMs / 1000}s waiting for ${url.host} while ${options.what}`,
  );
  const timer = setTimeout(() => controller.abort(timeout), options.timeoutMs);
  const startedAt = performance.now();
  try {
    const response = await fetch(url, {
      ...fetchInit(url),
      headers: { "accept-encoding": "identity", ...headers },
      redirect: "manual",
      signal: controller.signal,
    });
    return {
      response,
      url,
      startedAt,
      abort: (reason) => {
        controller.abort(reason);
        options.signal?.removeEventListener("abort", onOuterAbort);
      },
    };
  } catch (error) {
    options.signal?.removeEventListener("abort", onOuterAbort);
    if (options.signal?.aborted) throw options.signal.reason;
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
 * const text = await readText(opened, { idleMs: 30_000, what: "listing logs" });
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

function formatMiB(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}
