/**
 * The storage listener, a stand-in for an object store behind signed URLs:
 * `GET /files/{id}?expires=&sig=` serves the JSONL bytes, with single byte ranges, S3-like XML
 * errors, and storage faults.
 *
 * @example
 * http.createServer((req, res) => handleStorage(ctx, req, res));
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import type { StoredFile } from "./dataset.ts";
import type { Fault, FaultQueue } from "./faults.ts";
import { type PacedLink, parseTarget, sendBody, sleep } from "./respond.ts";
import type { UrlSigner } from "./signing.ts";

export interface StorageContext {
  files: ReadonlyMap<string, StoredFile>;
  faults: FaultQueue;
  signer: UrlSigner;
  closing: AbortSignal;
  /** Counts body bytes written, for tests of backpressure and disconnects. */
  onBytes: (n: number) => void;
  /** The storage link's capacity, when capped (file bodies only; errors are tiny). */
  link?: PacedLink;
}

const ROUTE = /^\/files\/([^/]+)$/;

function xmlError(
  ctx: StorageContext,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): Promise<void> {
  const body = new TextEncoder().encode(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`,
  );
  return sendBody(
    res,
    status,
    { "content-type": "application/xml", "content-length": String(body.length), ...extra },
    [body],
    { closing: ctx.closing },
  );
}

function injectedStatus(ctx: StorageContext, res: ServerResponse, fault: Fault): Promise<void> {
  if (fault.body === undefined) {
    const code = fault.status === 503
      ? "SlowDown"
      : fault.status === 429
      ? "TooManyRequests"
      : "InternalError";
    return xmlError(
      ctx,
      res,
      fault.status!,
      code,
      `Injected failure (HTTP ${fault.status}).`,
      fault.headers,
    );
  }
  const body = new TextEncoder().encode(fault.body);
  return sendBody(
    res,
    fault.status!,
    { "content-type": "application/xml", "content-length": String(body.length), ...fault.headers },
    [body],
    { closing: ctx.closing },
  );
}

/**
 * A single `bytes=` range as [start, end) within `size`; "unsatisfiable" for a 416; null when
 * the header is absent, malformed or multi-range (then the whole file is served, as RFC 9110 allows).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size];
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? Infinity : Number(m[2]);
  if (last < start) return null;
  if (start >= size) return "unsatisfiable";
  return [start, Math.min(last, size - 1) + 1];
}

/**
 * The gzip object storage holds for `bytes` under the `gzip` fault: deterministic (level 6, no
 * name, no time), so a test can list its size and hash.
 *
 * @example
 * emu.addFiles([{ ..., content, advertise: { fileSize: gzipOf(content).length } }]);
 */
export function gzipOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(bytes, { level: 6 }));
}

/** Handles one request on the storage listener. */
export async function handleStorage(
  ctx: StorageContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = parseTarget(req);
  const route = ROUTE.exec(url.pathname);
  if (!route) return xmlError(ctx, res, 404, "NoSuchKey", "The specified key does not exist.");
  if (req.method !== "GET" && req.method !== "HEAD") {
    return xmlError(ctx, res, 405, "MethodNotAllowed", "The specified method is not allowed.", {
      allow: "GET, HEAD",
    });
  }
  const id = decodeURIComponent(route[1]);
  let fault = ctx.faults.take("storage", id);
  if (fault?.stallBeforeHeadersMs !== undefined) {
    if (!(await sleep(fault.stallBeforeHeadersMs, ctx.closing))) return;
    fault = undefined;
  }
  if (fault?.status !== undefined) return injectedStatus(ctx, res, fault);

  const verdict = fault?.expireUrl ? "expired" : ctx.signer.verify(id, url.searchParams);
  if (verdict === "expired") return xmlError(ctx, res, 403, "AccessDenied", "Request has expired");
  if (verdict !== "ok") {
    return xmlError(
      ctx,
      res,
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided.",
    );
  }
  const file = ctx.files.get(id);
  if (!file) return xmlError(ctx, res, 404, "NoSuchKey", "The specified key does not exist.");

  const gzipped = fault?.gzip ? gzipOf(file.content.bytes()) : undefined;
  const content = gzipped
    ? { size: gzipped.length, slice: (a: number, b: number) => [gzipped.slice(a, b)] }
    : file.content;
  const headers: Record<string, string> = {
    "content-type": "application/jsonl",
    "accept-ranges": "bytes",
    ...(gzipped ? { "content-encoding": "gzip" } : {}),
  };
  const range = fault?.ignoreRange ? null : parseRange(req.headers.range, content.size);
  if (range === "unsatisfiable") {
    return xmlError(ctx, res, 416, "InvalidRange", "The requested range is not satisfiable", {
      "content-range": `bytes */${content.size}`,
    });
  }
  const [start, end] = range ?? [0, content.size];
  headers["content-length"] = String(end - start);
  if (range) headers["content-range"] = `bytes ${start}-${end - 1}/${content.size}`;
  const body = req.method === "HEAD" ? [] : content.slice(start, end);
  await sendBody(res, range ? 206 : 200, headers, body, {
    closing: ctx.closing,
    cutAfterBytes: fault?.cutAfterBytes,
    pauseBeforeCutMs: fault?.pauseBeforeCutMs,
    stallAfterBytes: fault?.stallAfterBytes,
    corruptFrom: fault?.corruptBytes ? Math.floor((end - start) / 2) : undefined,
    onBytes: ctx.onBytes,
    link: ctx.link,
  });
}
