/**
 * A local emulator of Splunk's HTTP Event Collector, written from Splunk's public HEC reference
 * ("Format events for HTTP Event Collector", "About HTTP Event Collector Indexer Acknowledgment",
 * the HEC status codes), for tests: the products themselves cannot be installed here.
 *
 * - `POST /services/collector/event` (and `/services/collector`): `Authorization: Splunk <token>`;
 *   gzip bodies (`Content-Encoding: gzip`); concatenated event objects; the documented answers:
 *   200 `{"text":"Success","code":0}` (plus `"ackId"` when the token has acknowledgement), 401
 *   code 2 (token required) / 3 (invalid authorization), 403 code 4 (invalid token) / 1 (token
 *   disabled), 400 code 5 (no data) / 6 (invalid data format, with `invalid-event-number`) / 7
 *   (incorrect index) / 10 (data channel is missing) / 12 (event field is required) / 13 (event
 *   field cannot be blank), 503 code 9 (server is busy), 413 over `maxContentLength`.
 * - `POST /services/collector/ack?channel=<uuid>` `{"acks":[ids]}` -> `{"acks":{"id":bool}}`; 400
 *   code 14 when the token has no acknowledgement. AckIds count from 0 per channel.
 * - `GET /services/collector/health` -> 200 code 17 (or 503 code 18 when `unhealthy`).
 *
 * Acknowledgement may come late (`ackDelayMs`, a function of the ackId for out-of-order ones) or
 * never (`neverAck`); events are indexed (recorded in `events`) when the request is accepted,
 * as Splunk's are, so an unacknowledged batch sent again is held twice. Faults: `busy` (the next
 * N event requests answer 503), `tooMany` (429), `reset` (the next N event requests lose their
 * connection after the body arrived, before any answer).
 *
 * @example
 * ```ts
 * const hec = await startHecEmulator({ tokens: { "tok-1": { ack: true } } });
 * // -o hec+http://127.0.0.1:<hec.port> with SPLUNK_HEC_TOKEN=tok-1
 * await hec.close();
 * ```
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Buffer } from "node:buffer";
import { gunzipSync } from "node:zlib";

export interface HecToken {
  disabled?: boolean;
  /** Indexer acknowledgement on (the channel header is then required). */
  ack?: boolean;
  /** Indexes the token may write to (default any). */
  indexes?: string[];
}

export interface HecEmulatorOptions {
  tokens: Record<string, HecToken>;
  /** Bodies larger than this (decoded) answer 413, as `max_content_length` does. */
  maxContentLength?: number;
  /** How long after its request an ackId is acknowledged (default 0). */
  ackDelayMs?: number | ((ackId: number) => number);
  /** AckIds that are never acknowledged (their events are indexed nonetheless). */
  neverAck?: (ackId: number, channel: string) => boolean;
  /** Count only: events are counted, not kept (for the memory test). */
  countOnly?: boolean;
  unhealthy?: boolean;
  /** Added before every event answer (a slow indexer, for a kill mid-run). */
  latencyMs?: number;
}

export interface HecEvent {
  /** The event object as sent (time, host, source, sourcetype, index, event). */
  [field: string]: unknown;
}

export interface HecRequestRecord {
  path: string;
  status: number;
  channel?: string;
  gzip: boolean;
  events: number;
  ackId?: number;
}

export interface HecEmulator {
  port: number;
  /** `hec+http://127.0.0.1:<port>` */
  target: string;
  /** Every event indexed, in order of arrival, with the channel it came on. */
  events: Array<{ channel?: string; event: HecEvent }>;
  /** Events indexed (also in count-only mode). */
  eventCount(): number;
  requests: HecRequestRecord[];
  /** The next `n` event requests answer 503 "Server is busy". */
  busy(n: number): void;
  /** The next `n` event requests answer 429. */
  tooMany(n: number): void;
  /** The next `n` event requests lose their connection once the body arrived. */
  reset(n: number): void;
  /** Ack queries answered, and acks answered true (per ackId, to see none is confirmed twice). */
  ackedTrue: Map<string, number>;
  close(): Promise<void>;
}

function answer(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=UTF-8" });
  res.end(text);
}

/** Splits concatenated JSON objects (whitespace between them allowed); undefined at the first bad one. */
export function splitEvents(text: string): { objects: unknown[]; badAt?: number } {
  const objects: unknown[] = [];
  let i = 0;
  const n = text.length;
  while (true) {
    while (i < n && /\s/.test(text[i])) i++;
    if (i >= n) return { objects };
    if (text[i] !== "{") return { objects, badAt: objects.length };
    let depth = 0;
    let inString = false;
    let j = i;
    for (; j < n; j++) {
      const c = text[j];
      if (inString) {
        if (c === "\\") j++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        depth--;
        if (depth === 0) break;
      }
    }
    if (j >= n) return { objects, badAt: objects.length };
    try {
      objects.push(JSON.parse(text.slice(i, j + 1)));
    } catch {
      return { objects, badAt: objects.length };
    }
    i = j + 1;
  }
}

export async function startHecEmulator(options: HecEmulatorOptions): Promise<HecEmulator> {
  const events: HecEmulator["events"] = [];
  const requests: HecRequestRecord[] = [];
  const ackedTrue = new Map<string, number>();
  /** Per channel: the next ackId, and when each is acknowledged. */
  const channels = new Map<string, { next: number; ackAt: Map<number, number> }>();
  let count = 0;
  let busy = 0;
  let tooMany = 0;
  let reset = 0;
  const sockets = new Set<Socket>();

  const delayOf = (ackId: number) =>
    typeof options.ackDelayMs === "function" ? options.ackDelayMs(ackId) : options.ackDelayMs ?? 0;

  async function bodyOf(req: IncomingMessage): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of req) chunks.push(chunk as Uint8Array);
    const raw = Buffer.concat(chunks);
    return req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
  }

  /** The token's settings, or the answer already sent for a missing or refused one. */
  function authorize(req: IncomingMessage, res: ServerResponse, record: HecRequestRecord) {
    const header = req.headers.authorization;
    const done = (status: number, body: Record<string, unknown>) => {
      record.status = status;
      answer(res, status, body);
      return undefined;
    };
    if (!header) return done(401, { text: "Token is required", code: 2 });
    const match = /^Splunk (.+)$/.exec(header);
    if (!match) return done(401, { text: "Invalid authorization", code: 3 });
    const token = options.tokens[match[1]];
    if (!token) return done(403, { text: "Invalid token", code: 4 });
    if (token.disabled) return done(403, { text: "Token disabled", code: 1 });
    return token;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://hec");
    const channel = (req.headers["x-splunk-request-channel"] as string | undefined) ??
      url.searchParams.get("channel") ?? undefined;
    const record: HecRequestRecord = {
      path: url.pathname,
      status: 0,
      channel,
      gzip: req.headers["content-encoding"] === "gzip",
      events: 0,
    };
    requests.push(record);
    if (req.method === "GET" && url.pathname === "/services/collector/health") {
      record.status = options.unhealthy ? 503 : 200;
      return options.unhealthy
        ? answer(res, 503, { text: "HEC is unhealthy, queues are full", code: 18 })
        : answer(res, 200, { text: "HEC is healthy", code: 17 });
    }
    const isEvent = url.pathname === "/services/collector/event" ||
      url.pathname === "/services/collector";
    const isAck = url.pathname === "/services/collector/ack";
    if (req.method !== "POST" || (!isEvent && !isAck)) {
      record.status = 404;
      return answer(res, 404, {
        text: "The requested URL was not found on this server.",
        code: 404,
      });
    }
    const body = await bodyOf(req);
    if (options.latencyMs && isEvent) {
      await new Promise((done) => setTimeout(done, options.latencyMs));
    }
    const token = authorize(req, res, record);
    if (!token) return;
    if (token.ack && !channel) {
      record.status = 400;
      return answer(res, 400, { text: "Data channel is missing", code: 10 });
    }
    if (isAck) {
      if (!token.ack) {
        record.status = 400;
        return answer(res, 400, { text: "ACK is disabled", code: 14 });
      }
      const state = channels.get(channel!);
      let ids: unknown;
      try {
        ids = JSON.parse(new TextDecoder().decode(body)).acks;
      } catch {
        ids = undefined;
      }
      if (!Array.isArray(ids)) {
        record.status = 400;
        return answer(res, 400, { text: "Invalid data format", code: 6 });
      }
      const acks: Record<string, boolean> = {};
      const now = Date.now();
      for (const id of ids) {
        const at = state?.ackAt.get(Number(id));
        const done = at !== undefined && at <= now;
        acks[String(id)] = done;
        if (done) {
          const key = `${channel}:${id}`;
          ackedTrue.set(key, (ackedTrue.get(key) ?? 0) + 1);
        }
      }
      record.status = 200;
      return answer(res, 200, { acks });
    }
    // Faults hit requests that carry events (not an empty probe of the token).
    if (reset > 0 && body.length > 0) {
      reset--;
      record.status = -1;
      req.socket.destroy();
      return;
    }
    if (busy > 0 && body.length > 0) {
      busy--;
      record.status = 503;
      return answer(res, 503, { text: "Server is busy", code: 9 });
    }
    if (tooMany > 0 && body.length > 0) {
      tooMany--;
      record.status = 429;
      res.setHeader("retry-after", "0");
      return answer(res, 429, { text: "Too many requests", code: 9 });
    }
    if (options.maxContentLength !== undefined && body.length > options.maxContentLength) {
      record.status = 413;
      res.writeHead(413, { "content-type": "text/plain" });
      res.end(
        `Content-Length of ${body.length} too large (maximum is ${options.maxContentLength})`,
      );
      return;
    }
    const text = new TextDecoder().decode(body);
    const { objects, badAt } = splitEvents(text);
    if (objects.length === 0 && badAt === undefined) {
      record.status = 400;
      return answer(res, 400, { text: "No data", code: 5 });
    }
    if (badAt !== undefined) {
      record.status = 400;
      return answer(res, 400, {
        text: "Invalid data format",
        code: 6,
        "invalid-event-number": badAt,
      });
    }
    for (const [i, object] of objects.entries()) {
      const event = object as Record<string, unknown>;
      if (!("event" in event)) {
        record.status = 400;
        return answer(res, 400, {
          text: "Event field is required",
          code: 12,
          "invalid-event-number": i,
        });
      }
      if (event.event === "" || event.event === null) {
        record.status = 400;
        return answer(res, 400, {
          text: "Event field cannot be blank",
          code: 13,
          "invalid-event-number": i,
        });
      }
      const index = event.index as string | undefined;
      if (token.indexes && index !== undefined && !token.indexes.includes(index)) {
        record.status = 400;
        return answer(res, 400, { text: "Incorrect index", code: 7, "invalid-event-number": i });
      }
    }
    // Accepted: indexed now (acknowledged later, when the token has acknowledgement).
    count += objects.length;
    record.events = objects.length;
    if (!options.countOnly) {
      for (const event of objects) events.push({ channel, event: event as HecEvent });
    }
    record.status = 200;
    if (!token.ack) return answer(res, 200, { text: "Success", code: 0 });
    let state = channels.get(channel!);
    if (!state) channels.set(channel!, state = { next: 0, ackAt: new Map() });
    const ackId = state.next++;
    record.ackId = ackId;
    if (!options.neverAck?.(ackId, channel!)) state.ackAt.set(ackId, Date.now() + delayOf(ackId));
    answer(res, 200, { text: "Success", code: 0, ackId });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      if (!res.headersSent) answer(res, 500, { text: String(error), code: 8 });
      else res.destroy();
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    target: `hec+http://127.0.0.1:${port}`,
    events,
    eventCount: () => count,
    requests,
    busy: (n) => void (busy += n),
    tooMany: (n) => void (tooMany += n),
    reset: (n) => void (reset += n),
    ackedTrue,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
