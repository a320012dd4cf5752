/**
 * TEST-ONLY malicious Compliance API and storage host: two listeners on 127.0.0.1 whose every
 * answer a test scripts, raw (status, headers, body), so a test can send what no honest server
 * would: redirects to `file:`/`data:` URLs, bogus cursors, gzip bodies, bytes trickled slowly.
 * It only listens, on loopback; it never opens a connection of its own.
 *
 * Routes: API `.../logs` -> `script.list`, API `.../logs/{id}` -> `script.download` (default: a
 * 307 to `{storage}/files/{id}`), anything on storage -> `script.storage` (default: 404). Any
 * other API path is a 404. Every request is recorded in `requests`.
 *
 * @example
 * const h = await startHostile({
 *   list: () => page([logFile("f1", "2026-07-02T00:00:00Z")]),
 *   download: () => redirect("file:///etc/passwd"),
 * });
 * try {
 *   await runCli(["ws-1", "AUTH_LOG", "10", "2026-07-01T00:00:00Z"], { env: h.env() });
 * } finally {
 *   await h.close();
 * }
 */
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { gzipSync } from "node:zlib";

/** What a handler sees of a request. */
export interface HostileRequest {
  server: "api" | "storage";
  method: string;
  /** The pathname, e.g. `/v1/compliance/workspaces/ws-1/logs/f1`. */
  path: string;
  query: Record<string, string>;
  /** Lower-cased names. */
  headers: Record<string, string>;
  /** The last path segment (the file id on `download` and default storage routes). */
  id: string;
}

/** A raw answer. Nothing is added but what node:http itself adds (date, chunked framing). */
export interface Reply {
  /** Default 200. */
  status?: number;
  headers?: Record<string, string>;
  /** Sent as is; an array is sent chunk by chunk (see `chunkDelayMs`). */
  body?: string | Uint8Array | Array<string | Uint8Array>;
  /** Pause before each body chunk: trickles the body. */
  chunkDelayMs?: number;
  /** Gzip the whole body and say so with `content-encoding: gzip`. */
  gzip?: boolean;
  /** Destroy the socket after the body instead of ending the response cleanly. */
  hangUp?: boolean;
}

export type Handler = (req: HostileRequest, origins: Origins) => Reply | Promise<Reply>;

export interface Origins {
  /** `http(s)://127.0.0.1:<port>/v1/compliance`: what `--api-base` should be. */
  apiBase: string;
  apiOrigin: string;
  storageOrigin: string;
}

export interface HostileScript {
  list?: Handler;
  download?: Handler;
  storage?: Handler;
}

export interface HostileOptions {
  /** Serve the API over HTTPS with this certificate (e.g. `makeTestPki` from tests/helpers/tls.ts). */
  apiTls?: { certPem: string; keyPem: string };
  /** Serve storage over HTTPS with this certificate. */
  storageTls?: { certPem: string; keyPem: string };
  /** Host name in the origins (default `127.0.0.1`; `localhost` to match a certificate). */
  host?: string;
}

export interface Hostile extends Origins {
  /** Every request, in arrival order. */
  requests: HostileRequest[];
  /** The key a test should give the CLI (the server does not check it). */
  key: string;
  /** COMPLIANCE_API_KEY and COMPLIANCE_API_BASE for `runCli`, plus `extra`. */
  env(extra?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

const KEY = "hostile-test-key-0123456789";

/** Starts both listeners on ephemeral loopback ports. */
export async function startHostile(
  script: HostileScript,
  options: HostileOptions = {},
): Promise<Hostile> {
  const requests: HostileRequest[] = [];
  const sockets = new Set<Socket>();
  const host = options.host ?? "127.0.0.1";
  const origins: Origins = { apiBase: "", apiOrigin: "", storageOrigin: "" };

  const route =
    (server: "api" | "storage") => async (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? "/", "http://hostile.invalid");
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
      }
      const request: HostileRequest = {
        server,
        method: req.method ?? "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers,
        id: decodeURIComponent(url.pathname.split("/").pop() ?? ""),
      };
      requests.push(request);
      const handler: Handler = server === "storage"
        ? script.storage ?? (() => ({ status: 404, body: "no such object" }))
        : url.pathname.endsWith("/logs")
        ? script.list ?? (() => page([]))
        : /\/logs\/[^/]+$/.test(url.pathname)
        ? script.download ?? ((r, o) => redirect(`${o.storageOrigin}/files/${r.id}`))
        : () => ({ status: 404, body: "not found" });
      try {
        await send(res, await handler(request, origins));
      } catch (error) {
        if (!res.headersSent) res.writeHead(500).end(`hostile handler failed: ${error}`);
        else res.destroy();
      }
    };

  const listen = async (server: "api" | "storage", tls?: HostileOptions["apiTls"]) => {
    const handler = route(server);
    const s = tls
      ? createHttps({ cert: tls.certPem, key: tls.keyPem }, handler)
      : createHttp(handler);
    s.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    s.on("tlsClientError", () => {}); // A client refusing the certificate is not our failure.
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve()); // Loopback only, by design.
    });
    const port = (s.address() as AddressInfo).port;
    return { s, origin: `${tls ? "https" : "http"}://${host}:${port}` };
  };

  const api = await listen("api", options.apiTls);
  const storage = await listen("storage", options.storageTls);
  origins.apiOrigin = api.origin;
  origins.apiBase = `${api.origin}/v1/compliance`;
  origins.storageOrigin = storage.origin;

  return {
    ...origins,
    requests,
    key: KEY,
    env: (extra = {}) => ({
      COMPLIANCE_API_KEY: KEY,
      COMPLIANCE_API_BASE: origins.apiBase,
      DENO_NO_UPDATE_CHECK: "1",
      ...extra,
    }),
    close: () =>
      new Promise<void>((done) => {
        let open = 2;
        const one = () => --open === 0 && done();
        api.s.close(one);
        storage.s.close(one);
        for (const socket of sockets) socket.destroy();
      }),
  };
}

async function send(res: ServerResponse, reply: Reply): Promise<void> {
  const encoder = new TextEncoder();
  const raw = reply.body === undefined ? [] : Array.isArray(reply.body) ? reply.body : [reply.body];
  let chunks = raw.map((c) => typeof c === "string" ? encoder.encode(c) : c);
  const headers = { ...reply.headers };
  if (reply.gzip) {
    const whole = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      whole.set(c, at);
      at += c.length;
    }
    chunks = [new Uint8Array(gzipSync(whole))];
    headers["content-encoding"] = "gzip";
  }
  res.writeHead(reply.status ?? 200, headers);
  for (const chunk of chunks) {
    if (reply.chunkDelayMs) await new Promise((r) => setTimeout(r, reply.chunkDelayMs));
    if (res.destroyed) return;
    res.write(chunk);
  }
  if (reply.hangUp) res.socket?.destroy();
  else res.end();
}

/** A JSON answer. */
export function json(value: unknown, status = 200): Reply {
  return { status, headers: { "content-type": "application/json" }, body: JSON.stringify(value) };
}

/** A redirect to `location`, taken as given (any scheme, even unparsable). */
export function redirect(location: string, status = 307): Reply {
  return { status, headers: { location } };
}

/** A list page; `last_end_time` defaults to the last file's `end_time` (or null). */
export function page(
  data: unknown[],
  more: { has_more?: boolean; last_end_time?: string | null } = {},
): Reply {
  const last = (data[data.length - 1] as { end_time?: string } | undefined)?.end_time ?? null;
  return json({
    object: "list",
    data,
    has_more: more.has_more ?? false,
    last_end_time: more.last_end_time === undefined ? last : more.last_end_time,
  });
}

/** A listed file of `AUTH_LOG` (override any field with `extra`). */
export function logFile(id: string, endTime: string, extra: Record<string, unknown> = {}) {
  return { object: "compliance.log_file", id, event_type: "AUTH_LOG", end_time: endTime, ...extra };
}
