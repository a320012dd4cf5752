/**
 * A fault-injecting proxy in front of a Blob endpoint (Azurite), on loopback: it forwards every
 * request unchanged and records it, except those a queued fault takes, which it answers itself
 * (an error status with Azure's error XML and `x-ms-error-code`, optionally `Retry-After`) or
 * cuts off mid-body (the connection reset after part of the upload arrived). Date headers of the
 * answers can be shifted, to play a service whose clock disagrees with ours.
 *
 * @example
 * ```ts
 * const proxy = await startFaultProxy("http://127.0.0.1:10000");
 * proxy.faults.push({ when: (r) => r.method === "PUT", status: 503, code: "ServerBusy" });
 * await proxy.close();
 * ```
 */
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxiedRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: Record<string, string>;
  /** Body bytes that arrived (for a request a fault cut off: those before the cut). */
  bodyBytes: number;
  /** What the proxy did: forwarded it, or which fault. */
  outcome: "forwarded" | "status" | "reset";
}

export interface Fault {
  /** Which request it takes (the first matching fault in the queue takes it, once). */
  when: (request: ProxiedRequest) => boolean;
  /** Answer with this status (and `code`), unless `reset`. */
  status?: number;
  code?: string;
  retryAfter?: string;
  /** Reset the connection once this many body bytes arrived (or at once without a body). */
  reset?: boolean;
}

export interface FaultProxy {
  /** e.g. `http://127.0.0.1:PORT` (append the account path for path-style endpoints). */
  origin: string;
  faults: Fault[];
  requests: ProxiedRequest[];
  /** Milliseconds added to the `Date` of every forwarded answer. */
  dateShiftMs: number;
  close(): Promise<void>;
}

/** Starts the proxy in front of `target` (an origin such as `http://127.0.0.1:10000`). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const proxy: FaultProxy = {
    origin: "",
    faults: [],
    requests: [],
    dateShiftMs: 0,
    close: () => Promise.resolve(),
  };
  const server = createServer((req, res) => handle(req, res));
  function handle(req: IncomingMessage, res: ServerResponse): void {
    const record: ProxiedRequest = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      headers: Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : v ?? ""]),
      ),
      bodyBytes: 0,
      outcome: "forwarded",
    };
    proxy.requests.push(record);
    const at = proxy.faults.findIndex((fault) => fault.when(record));
    const fault = at >= 0 ? proxy.faults.splice(at, 1)[0] : undefined;
    if (fault?.reset) {
      record.outcome = "reset";
      const length = Number(req.headers["content-length"] ?? 0);
      if (length === 0) return void req.socket.destroy();
      req.on("data", (chunk: Uint8Array) => {
        record.bodyBytes += chunk.length;
        // Cut once some of the body came: the client's upload breaks mid-way.
        if (record.bodyBytes >= Math.min(length / 2, 64 * 1024)) req.socket.destroy();
      });
      return;
    }
    if (fault) {
      record.outcome = "status";
      req.on("data", (chunk: Uint8Array) => void (record.bodyBytes += chunk.length));
      req.on("end", () => {
        const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${fault.code ?? "Fault"}` +
          `</Code><Message>injected by the test proxy</Message></Error>`;
        res.writeHead(fault.status ?? 500, {
          "content-type": "application/xml",
          "x-ms-error-code": fault.code ?? "Fault",
          ...(fault.retryAfter ? { "retry-after": fault.retryAfter } : {}),
          date: new Date(Date.now() + proxy.dateShiftMs).toUTCString(),
        });
        res.end(req.method === "HEAD" ? undefined : body);
      });
      return;
    }
    const forwarded = request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    }, (answer) => {
      const headers = { ...answer.headers };
      if (proxy.dateShiftMs && headers.date) {
        headers.date = new Date(Date.parse(headers.date) + proxy.dateShiftMs).toUTCString();
      }
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
    });
    forwarded.on("error", () => res.destroy());
    req.on("data", (chunk: Uint8Array) => void (record.bodyBytes += chunk.length));
    req.pipe(forwarded);
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  proxy.origin = `http://127.0.0.1:${port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
  return proxy;
}
