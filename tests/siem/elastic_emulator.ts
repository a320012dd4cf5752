/**
 * A local emulator of Elasticsearch's (or OpenSearch's) `_bulk` API, written from Elastic's public
 * REST reference ("Bulk API", "Security: authentication", the `X-Elastic-Product` header the
 * official clients check since 7.14), for tests: the products cannot be installed here.
 *
 * - `GET /`: the cluster's info (`version.number`, `tagline`; `version.distribution` "opensearch"
 *   for `flavor: "opensearch"`), with `X-Elastic-Product: Elasticsearch` on every answer of the
 *   Elasticsearch flavor (OpenSearch sends none).
 * - Authentication: `Authorization: ApiKey <key>` or `Basic` with a user and password; anything
 *   else answers 401 `security_exception` with `WWW-Authenticate`.
 * - `POST /_bulk` (NDJSON, a final newline required): `create` (and `index`) actions with `_index`
 *   and `_id`; per-item results as Elasticsearch gives them: 201 `created`, 409
 *   `version_conflict_engine_exception` on an `_id` already there, and injected item faults (429
 *   `es_rejected_execution_exception`, 400 `mapper_parsing_exception`, ...); `errors` true when
 *   any item failed. A body over `maxContentLength` answers 413. Whole-request faults: `busy`
 *   (503 or 429 with Retry-After) and `reset` (the connection drops once the body arrived).
 *
 * @example
 * ```ts
 * const es = await startElasticEmulator({ apiKeys: ["k1"] });
 * // -o elasticsearch+http://127.0.0.1:<es.port> with ELASTIC_API_KEY=k1
 * await es.close();
 * ```
 */
import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface ElasticEmulatorOptions {
  flavor?: "elasticsearch" | "opensearch";
  /** Elasticsearch before 7.14, or something else in its place: no X-Elastic-Product header. */
  noProductHeader?: boolean;
  apiKeys?: string[];
  users?: Record<string, string>;
  maxContentLength?: number;
  /** Count only: documents are counted by _id, their bodies not kept (the memory test). */
  countOnly?: boolean;
  /** Added before every bulk answer (a slow cluster, for a kill mid-run). */
  latencyMs?: number;
}

/** An item fault: the next `times` attempts at `_id` answer `status` with `type` and `reason`. */
export interface ItemFault {
  status: number;
  type: string;
  reason: string;
  times: number;
}

export interface BulkRecord {
  status: number;
  /** Actions in the request, and their statuses. */
  items: Array<{ id: string; index: string; status: number }>;
  authorization?: string;
  contentType?: string;
}

export interface ElasticEmulator {
  port: number;
  /** `elasticsearch+http://127.0.0.1:<port>` (or `opensearch+http://`). */
  target: string;
  /** Documents by index, then _id (the document as sent). */
  indices: Map<string, Map<string, unknown>>;
  /** Documents stored (also in count-only mode). */
  documentCount(): number;
  bulks: BulkRecord[];
  /** Answers for `_id` the next `fault.times` times. */
  failItem(id: string, fault: ItemFault): void;
  /** The next `n` bulk requests answer `status` (503 or 429). */
  busy(n: number, status?: number): void;
  /** The next `n` bulk requests lose their connection once the body arrived. */
  reset(n: number): void;
  /** Every create of `_id`, as (status) in order (to see each stored once). */
  attempts(id: string): number[];
  close(): Promise<void>;
}

export async function startElasticEmulator(
  options: ElasticEmulatorOptions = {},
): Promise<ElasticEmulator> {
  const flavor = options.flavor ?? "elasticsearch";
  const indices = new Map<string, Map<string, unknown>>();
  const ids = new Set<string>();
  const bulks: BulkRecord[] = [];
  const faults = new Map<string, ItemFault>();
  const attempts = new Map<string, number[]>();
  let busy = 0;
  let busyStatus = 503;
  let reset = 0;
  let stored = 0;
  const sockets = new Set<Socket>();
  const apiKeys = new Set(options.apiKeys ?? []);
  const users = options.users ?? {};

  function send(res: ServerResponse, status: number, body: unknown, headers = {}): void {
    if (flavor === "elasticsearch" && !options.noProductHeader) {
      res.setHeader("x-elastic-product", "Elasticsearch");
    }
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  }

  function authenticated(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? "";
    const apiKey = /^ApiKey (.+)$/.exec(header);
    if (apiKey) return apiKeys.has(apiKey[1]);
    const basic = /^Basic (.+)$/.exec(header);
    if (!basic) return false;
    const pair = Buffer.from(basic[1], "base64").toString("utf8");
    const colon = pair.indexOf(":");
    return colon > 0 && users[pair.slice(0, colon)] === pair.slice(colon + 1);
  }

  function refuseAuth(res: ServerResponse): void {
    send(res, 401, {
      error: {
        root_cause: [{ type: "security_exception", reason: "unable to authenticate user" }],
        type: "security_exception",
        reason: "unable to authenticate user [] for REST request [/_bulk]",
      },
      status: 401,
    }, { "www-authenticate": 'Basic realm="security" charset="UTF-8", ApiKey' });
  }

  async function bodyOf(req: IncomingMessage): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of req) chunks.push(chunk as Uint8Array);
    return Buffer.concat(chunks);
  }

  function bulk(text: string, record: BulkRecord): { items: unknown[]; errors: boolean } | string {
    if (text.length > 0 && !text.endsWith("\n")) {
      return "The bulk request must be terminated by a newline [\\n]";
    }
    const lines = text.split("\n");
    lines.pop();
    const items: unknown[] = [];
    let errors = false;
    for (let i = 0; i < lines.length; i += 2) {
      let action: Record<string, { _index?: string; _id?: string }>;
      try {
        action = JSON.parse(lines[i]);
      } catch {
        return `Malformed action/metadata line [${i + 1}]`;
      }
      const [op, meta] = Object.entries(action)[0] ?? [];
      if (op !== "create" && op !== "index") return `Malformed action/metadata line [${i + 1}]`;
      const index = meta._index;
      const id = meta._id ?? `auto-${ids.size}-${i}`;
      if (!index) return `Validation Failed: 1: index is missing;`;
      const source = lines[i + 1];
      let status: number;
      let error: { type: string; reason: string } | undefined;
      const fault = faults.get(id);
      let document: unknown;
      if (fault && fault.times > 0) {
        fault.times--;
        status = fault.status;
        error = { type: fault.type, reason: fault.reason };
      } else {
        try {
          document = options.countOnly ? undefined : JSON.parse(source ?? "");
          if (!options.countOnly && (document === null || typeof document !== "object")) {
            throw new Error("not an object");
          }
        } catch {
          status = 400;
          error = {
            type: "document_parsing_exception",
            reason: `[1:1] failed to parse: the document of [${id}] is not a JSON object`,
          };
        }
        status ??= 0;
        if (!error && options.countOnly) {
          status = 201;
          stored++;
        } else if (!error) {
          if (ids.has(`${index}\u0000${id}`) && op === "create") {
            status = 409;
            error = {
              type: "version_conflict_engine_exception",
              reason: `[${id}]: version conflict, document already exists (current version [1])`,
            };
          } else {
            status = 201;
            ids.add(`${index}\u0000${id}`);
            if (!options.countOnly) {
              if (!indices.has(index)) indices.set(index, new Map());
              indices.get(index)!.set(id, document);
            }
          }
        }
      }
      if (!options.countOnly) {
        if (!attempts.has(id)) attempts.set(id, []);
        attempts.get(id)!.push(status);
      }
      if (!options.countOnly) record.items.push({ id, index, status });
      if (error) errors = true;
      items.push({
        [op]: error ? { _index: index, _id: id, status, error: { ...error, index } } : {
          _index: index,
          _id: id,
          _version: 1,
          result: "created",
          _shards: { total: 1, successful: 1, failed: 0 },
          _seq_no: ids.size,
          _primary_term: 1,
          status,
        },
      });
    }
    return { items, errors };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://es");
    const body = await bodyOf(req);
    if (!authenticated(req)) return refuseAuth(res);
    if (req.method === "GET" && url.pathname === "/") {
      return send(res, 200, {
        name: "emulator-node-1",
        cluster_name: "emulator",
        cluster_uuid: "AT69_T_DTp-1qgIJlatQqA",
        version: flavor === "opensearch"
          ? { distribution: "opensearch", number: "2.13.0", lucene_version: "9.10.0" }
          : { number: "8.14.0", build_flavor: "default", lucene_version: "9.10.0" },
        tagline: flavor === "opensearch"
          ? "The OpenSearch Project: https://opensearch.org/"
          : "You Know, for Search",
      });
    }
    if (req.method !== "POST" || url.pathname !== "/_bulk") {
      return send(res, 404, { error: "no handler found for uri", status: 404 });
    }
    if (options.latencyMs) await new Promise((done) => setTimeout(done, options.latencyMs));
    const record: BulkRecord = {
      status: 0,
      items: [],
      authorization: req.headers.authorization,
      contentType: req.headers["content-type"],
    };
    bulks.push(record);
    if (reset > 0) {
      reset--;
      record.status = -1;
      req.socket.destroy();
      return;
    }
    if (busy > 0) {
      busy--;
      record.status = busyStatus;
      return send(res, busyStatus, {
        error: { type: "es_rejected_execution_exception", reason: "rejected execution" },
        status: busyStatus,
      }, { "retry-after": "0" });
    }
    if (options.maxContentLength !== undefined && body.length > options.maxContentLength) {
      record.status = 413;
      if (flavor === "elasticsearch") res.setHeader("x-elastic-product", "Elasticsearch");
      res.writeHead(413);
      res.end();
      return;
    }
    const result = bulk(body.toString("utf8"), record);
    if (typeof result === "string") {
      record.status = 400;
      return send(res, 400, {
        error: { type: "illegal_argument_exception", reason: result },
        status: 400,
      });
    }
    record.status = 200;
    send(res, 200, { errors: result.errors, took: 1, items: result.items });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      if (!res.headersSent) send(res, 500, { error: String(error), status: 500 });
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
    target: `${flavor}+http://127.0.0.1:${port}`,
    indices,
    documentCount: () => options.countOnly ? stored : ids.size,
    bulks,
    failItem: (id, fault) => void faults.set(id, { ...fault }),
    busy: (n, status = 503) => {
      busy += n;
      busyStatus = status;
    },
    reset: (n) => void (reset += n),
    attempts: (id) => attempts.get(id) ?? [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
