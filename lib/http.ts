/**
 * `fetch` with the two timeouts a long-running tool needs: waiting for response headers, and an
 * idle body (a stalled stream becomes a retryable failure instead of a hang).
 */
import { TransientError } from "./retry.ts";

export interface Opened {
  response: Response;
  /** Aborts the request and its body. */
  abort: (reason?: unknown) => void;
}

/** The short reason behind a fetch failure, e.g. `ECONNREFUSED` or `connection reset`. */
export function networkReason(error: unknown): string {
  // deno-lint-ignore no-explicit-any
  const e = error as any;
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
  try {
    const response = await fetch(url, { headers, redirect: "manual", signal: controller.signal });
    return {
      response,
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
 * The body's chunks, failing with a `TransientError` when no byte arrives for `idleMs` or the
 * connection breaks mid-body.
 */
export async function* readBody(
  opened: Opened,
  options: { idleMs: number; what: string; signal?: AbortSignal },
): AsyncGenerator<Uint8Array> {
  const body = opened.response.body;
  if (!body) return;
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    while (true) {
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new TransientError(
                "network",
                `stalled: no data for ${options.idleMs / 1000}s while ${options.what}`,
              ),
            ),
          options.idleMs,
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

/** The whole body as text, under the same idle timeout (for small JSON answers). */
export async function readText(
  opened: Opened,
  options: { idleMs: number; what: string; signal?: AbortSignal },
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of readBody(opened, options)) {
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}
