/**
 * `-o elasticsearch+https://HOST:9200[/TARGET]` (and `opensearch+https://`): every record into
 * Elasticsearch or OpenSearch through `POST /_bulk`, each a `create` action with `_id` the
 * record's `event_id`, so that a record sent again (the platform delivers at least once, and a
 * killed run re-sends its unconfirmed files) is dropped as a repeat (409) instead of stored twice.
 *
 * Without TARGET each event type goes to the data stream of Elastic's `openai_chatgpt_enterprise`
 * integration, `logs-openai_chatgpt_enterprise.<type in lower case>-default`, as its ingest
 * pipeline expects it: `{"message": <the raw record>, "@timestamp": <its timestamp>}`. With
 * `--elastic-document parsed` the document is the record's own fields, plus `@timestamp` from
 * `timestamp` when absent (data streams require it), for indices without that pipeline.
 *
 * Per item: 201 (created) and 409 (already there) confirm; 429 items are sent again alone with
 * backoff; any other item error fails the run naming the event id and the reason, the checkpoint
 * before its file. Credentials: `ELASTIC_API_KEY` (`Authorization: ApiKey`), or
 * `ELASTIC_USERNAME` and `ELASTIC_PASSWORD` (basic), each also read from a file named by the
 * `_FILE` variant.
 *
 * @example
 * ```ts
 * declare const context: import("./mod.ts").DestinationContext;
 * const es = elasticsearchKind.configure("elasticsearch+https://es.example:9200", {}, context);
 * await es.check(); // GET / with the credentials; the product header is checked
 * ```
 */
import { CliError, registerSecret, TransientError, usage } from "../errors.ts";
import { type Answer, request } from "../http.ts";
import { parseRetryAfter } from "../retry.ts";
import {
  BatchingDestination,
  type BatchItem,
  type BatchProtocol,
  collectorUrl,
  countOption,
  describeItem,
  type EncodedRecord,
  joinItems,
  readSecret,
  RECORD_ESCAPED,
  type RecordOrigin,
  type SendOutcome,
  siemRetryPolicy,
} from "./_batching.ts";
import type { DestinationKind } from "./kind.ts";
import { scanJsonRecord } from "./lines.ts";

/** Defaults for a small cluster: 1,000 documents or 2 MiB per bulk request. */
export const ELASTIC_BATCH_DOCS = 1_000;
export const ELASTIC_BATCH_BYTES = 2 * 1024 * 1024;
/** Bulk requests in flight at once. */
export const ELASTIC_IN_FLIGHT = 2;
const REQUEST_TIMEOUT_MS = 60_000;

const encoder = new TextEncoder();

/** The integration's data stream of `eventType`. */
export function integrationDataStream(eventType: string): string {
  return `logs-openai_chatgpt_enterprise.${eventType.toLowerCase()}-default`;
}

export type DocumentShape = "message" | "parsed";
export type Flavor = "elasticsearch" | "opensearch";

export interface ElasticSettings {
  url: URL;
  flavor: Flavor;
  /** An index or data stream every record goes to; undefined: the integration's per type. */
  target?: string;
  document: DocumentShape;
  authorization: string;
}

/** How a `_bulk` answer without errors begins, as Elasticsearch and OpenSearch write it. */
const NO_ERRORS =
  /^\{(?:"took":\d+,"errors":false|"errors":false,"took":\d+)(?:,"ingest_took":\d+)?,"items":\[\{"create":\{/;
const CREATE_ITEM = '{"create":{';

/**
 * Whether a `_bulk` answer says, in the form the servers write, that there were no errors and
 * holds exactly `count` create items, without parsing it (a thousand items' objects per batch
 * were 6% of a delivery's CPU). Every other answer (false) is parsed and judged in full. The
 * items are counted by their `{"create":{` opening: inside a JSON string a quote is escaped, so
 * it cannot appear there.
 */
export function allCreated(text: string, count: number): boolean {
  if (!NO_ERRORS.test(text)) return false;
  let items = 0;
  for (let at = text.indexOf(CREATE_ITEM); at !== -1; at = text.indexOf(CREATE_ITEM, at + 11)) {
    items++;
  }
  return items === count;
}

/** The `_bulk` wire protocol: create actions, one attempt per batch. */
export class BulkProtocol implements BatchProtocol {
  readonly name: string;
  readonly sizeHint = "raise http.max_content_length on the cluster";
  readonly #settings: ElasticSettings;
  readonly #actionHeads = new Map<string, string>();

  constructor(settings: ElasticSettings) {
    this.#settings = settings;
    const product = settings.flavor === "opensearch" ? "OpenSearch" : "Elasticsearch";
    this.name = `${product} at ${settings.url.host}`;
  }

  url(path: string): URL {
    return new URL(path, this.#settings.url);
  }

  encode(text: string, origin: RecordOrigin): EncodedRecord {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliError(
        "integrity",
        `line ${origin.line} of ${origin.eventType} file ${origin.fileId} is not JSON; ` +
          `${this.name} takes JSON documents only, so nothing of the file is confirmed. Skip the ` +
          `file with 'state skip' if it is expected`,
      );
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new CliError(
        "integrity",
        `line ${origin.line} of ${origin.eventType} file ${origin.fileId} is not a JSON object`,
      );
    }
    const fields = parsed as Record<string, unknown>;
    const eventId = fields.event_id;
    if (typeof eventId !== "string" || eventId === "") {
      throw new CliError(
        "integrity",
        `line ${origin.line} of ${origin.eventType} file ${origin.fileId} has no event_id, ` +
          `which becomes the document's _id`,
      );
    }
    const timestamp = typeof fields.timestamp === "string" ? fields.timestamp : undefined;
    if (this.#settings.document === "message") return this.#message(eventId, timestamp, origin);
    const action = this.#action(eventId, origin);
    let document: string;
    if ("@timestamp" in fields || timestamp === undefined) {
      document = text.trim();
    } else {
      // The record's own bytes, with @timestamp put first.
      const rest = text.trim().slice(1);
      const empty = Object.keys(fields).length === 0;
      document = `{"@timestamp":${JSON.stringify(timestamp)}${empty ? "}" : `,${rest}`}`;
    }
    return { text: `${action}${document}\n`, eventId };
  }

  /** A record in the default shape, from its bytes (a record `encode` must judge: undefined). */
  encodeBytes(record: Uint8Array, origin: RecordOrigin): EncodedRecord | undefined {
    if (this.#settings.document !== "message") return undefined;
    const facts = scanJsonRecord(record);
    if (!facts || facts.unusual || !facts.object || !facts.eventId) return undefined;
    return this.#message(facts.eventId, facts.timestamp, origin, true);
  }

  /**
   * The record as the integration's pipeline takes it: escaped from its bytes into `message`.
   * `plain`: `eventId` and `timestamp` were read from the record as JSON strings without escapes
   * (`scanJsonRecord`), so quoting them is all `JSON.stringify` would do.
   */
  #message(
    eventId: string,
    timestamp: string | undefined,
    origin: RecordOrigin,
    plain = false,
  ): EncodedRecord {
    const quote = plain ? (text: string) => `"${text}"` : JSON.stringify;
    const rest = timestamp === undefined ? "" : `,"@timestamp":${quote(timestamp)}`;
    const head = `${this.#action(eventId, origin, plain)}{"message":"`;
    return { parts: [head, RECORD_ESCAPED, `"${rest}}\n`], eventId };
  }

  #action(eventId: string, origin: RecordOrigin, plain = false): string {
    const id = plain ? `"${eventId}"` : JSON.stringify(eventId);
    return `${this.#actionHead(origin.eventType)}${id}}}\n`;
  }

  /** `{"create":{"_index":...,"_id":` for `eventType`'s records, made once per event type. */
  #actionHead(eventType: string): string {
    let head = this.#actionHeads.get(eventType);
    if (head === undefined) {
      const index = this.#settings.target ?? integrationDataStream(eventType);
      head = `{"create":{"_index":${JSON.stringify(index)},"_id":`;
      this.#actionHeads.set(eventType, head);
    }
    return head;
  }

  async send(items: readonly BatchItem[], signal: AbortSignal): Promise<SendOutcome> {
    const answer = await request(this.url("/_bulk"), {
      authorization: this.#settings.authorization,
      "content-type": "application/x-ndjson",
    }, {
      method: "POST",
      body: joinItems(items),
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: `indexing ${items.length} documents into ${this.name}`,
      signal,
    });
    if (answer.status === 413) return { kind: "too-large" };
    if (answer.status !== 200) throw this.failure(answer);
    if (allCreated(answer.text, items.length)) return { kind: "accepted" };
    let body: { errors?: boolean; items?: Array<Record<string, BulkItemResult>> };
    try {
      body = JSON.parse(answer.text);
    } catch {
      throw new TransientError("api", `${this.name} answered _bulk with something not JSON`);
    }
    if (!Array.isArray(body.items) || body.items.length !== items.length) {
      throw new CliError(
        "api",
        `${this.name} answered _bulk with ${body.items?.length ?? "no"} items for ` +
          `${items.length} actions; check that -o names the cluster itself`,
      );
    }
    if (body.errors === false) return { kind: "accepted" };
    const retry: number[] = [];
    const failed: Array<{ index: number; error: CliError }> = [];
    body.items.forEach((entry, index) => {
      const result = entry.create ?? Object.values(entry)[0] ?? {};
      const status = result.status;
      if (status === 200 || status === 201 || status === 409) return;
      if (status === 429) return void retry.push(index);
      const why = result.error
        ? `${result.error.type ?? "error"}: ${result.error.reason ?? ""}`.trim()
        : `status ${status}`;
      failed.push({
        index,
        error: new CliError(
          "api",
          `${this.name} refused ${describeItem(items[index])}: ${why}; the checkpoint stays ` +
            `before its file`,
        ),
      });
    });
    return {
      kind: "partial",
      retry,
      failed,
      retryAfterMs: parseRetryAfter(answer.headers.get("retry-after")),
    };
  }

  /** The error for a whole request refused. */
  failure(answer: Answer): CliError {
    let reason = answer.text.trim().slice(0, 200);
    try {
      const error = JSON.parse(answer.text)?.error;
      if (error && typeof error === "object") {
        reason = `${error.type ?? "error"}: ${error.reason ?? ""}`.trim();
      } else if (typeof error === "string") reason = error;
    } catch {
      // Not JSON: the text itself says it.
    }
    const said = `HTTP ${answer.status}${reason ? ` ${JSON.stringify(reason)}` : ""}`;
    if (answer.status === 401) {
      return new CliError(
        "auth",
        `${this.name} refused the credentials (${said}); check ELASTIC_API_KEY, or ` +
          `ELASTIC_USERNAME and ELASTIC_PASSWORD (or their _FILE variants)`,
      );
    }
    if (answer.status === 403) {
      return new CliError(
        "auth",
        `${this.name} does not let these credentials write (${said}); grant them create_doc ` +
          `on the target indices or data streams`,
      );
    }
    if ([429, 500, 502, 503, 504].includes(answer.status)) {
      return new TransientError(
        "api",
        `${this.name} is busy (${said})`,
        parseRetryAfter(answer.headers.get("retry-after")),
      );
    }
    return new CliError("api", `${this.name} refused the request (${said})`);
  }

  /** The up-front check: the cluster answers GET / with these credentials, and is what -o says. */
  async check(): Promise<void> {
    let answer: Answer;
    try {
      answer = await request(this.url("/"), { authorization: this.#settings.authorization }, {
        timeoutMs: 30_000,
        what: `checking ${this.name}`,
        maxBytes: 1024 * 1024,
        truncate: true,
      });
    } catch (error) {
      throw new CliError("network", `cannot reach ${this.name}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (answer.status !== 200) throw this.failure(answer);
    let info: { version?: { distribution?: string; number?: string } } = {};
    try {
      info = JSON.parse(answer.text);
    } catch {
      // Checked below by what it lacks.
    }
    const opensearch = info.version?.distribution === "opensearch";
    if (this.#settings.flavor === "elasticsearch") {
      if (opensearch) {
        throw usage(`${this.name} is OpenSearch; use -o opensearch+https://`);
      }
      // Elasticsearch 7.14 and later send it on every answer; the official clients refuse
      // a server without it.
      if (answer.headers.get("x-elastic-product") !== "Elasticsearch") {
        throw new CliError(
          "api",
          `${this.name} did not answer as Elasticsearch (no X-Elastic-Product: Elasticsearch ` +
            `header); check that -o names the cluster (7.14 or later), or use opensearch+https:// ` +
            `for OpenSearch`,
        );
      }
    } else if (!opensearch) {
      throw new CliError(
        "api",
        `${this.name} did not answer as OpenSearch (version.distribution is not "opensearch"); ` +
          `use -o elasticsearch+https:// for Elasticsearch`,
      );
    }
  }
}

interface BulkItemResult {
  status?: number;
  error?: { type?: string; reason?: string };
}

/** The Authorization header from the environment; a usage error when none is set. */
function authorizationFrom(env: Record<string, string | undefined>, target: string): string {
  const apiKey = readSecret(env, "ELASTIC_API_KEY");
  if (apiKey) return `ApiKey ${apiKey}`;
  const username = readSecret(env, "ELASTIC_USERNAME");
  const password = readSecret(env, "ELASTIC_PASSWORD");
  if (username && password) {
    const pair = encoder.encode(`${username}:${password}`);
    // The header's base64 form hides the password from redaction unless it is a secret too.
    const basic = btoa(String.fromCharCode(...pair));
    registerSecret(basic);
    return `Basic ${basic}`;
  }
  throw usage(
    `-o ${target} needs credentials: ELASTIC_API_KEY, or ELASTIC_USERNAME and ELASTIC_PASSWORD ` +
      `(each may instead name a file in its _FILE variant)`,
  );
}

const HAS_CREDENTIALS = (env: Record<string, string | undefined>) =>
  Boolean(env.ELASTIC_API_KEY || env.ELASTIC_API_KEY_FILE) ||
  Boolean(
    (env.ELASTIC_USERNAME || env.ELASTIC_USERNAME_FILE) &&
      (env.ELASTIC_PASSWORD || env.ELASTIC_PASSWORD_FILE),
  );

/** `-o elasticsearch+https://` and `-o opensearch+https://` on the registry. */
export const elasticsearchKind: DestinationKind = {
  name: "Elasticsearch/OpenSearch",
  flag: "output",
  schemes: ["elasticsearch+https", "elasticsearch+http", "opensearch+https", "opensearch+http"],
  options: {
    "elastic-document": {
      type: "string",
      arg: "SHAPE",
      help: "with -o elasticsearch+https://, 'message' (default: the raw record in message, for\n" +
        "the openai_chatgpt_enterprise integration) or 'parsed' (the record's fields)",
    },
    "elastic-batch-docs": {
      type: "string",
      arg: "N",
      help:
        `with -o elasticsearch+https://, documents per _bulk request at most (default ${ELASTIC_BATCH_DOCS})`,
    },
    "elastic-batch-bytes": {
      type: "string",
      arg: "BYTES",
      help:
        `with -o elasticsearch+https://, bytes per _bulk request at most (default ${ELASTIC_BATCH_BYTES})`,
    },
  },
  secretEnv: ["ELASTIC_API_KEY", "ELASTIC_PASSWORD"],
  conflicts: {},
  configure(target, values, context) {
    const flavor: Flavor = target.startsWith("opensearch+") ? "opensearch" : "elasticsearch";
    const url = collectorUrl(target, flavor);
    const path = decodeURIComponent(url.pathname.replace(/^\/+|\/+$/g, ""));
    if (path.includes("/")) {
      throw usage(`-o ${target}: the path names one index or data stream, got '${path}'`);
    }
    if (
      path && (/[\\*?"<>| ,#:]/.test(path) || path !== path.toLowerCase() || /^[-_+.]/.test(path))
    ) {
      throw usage(`-o ${target}: '${path}' is not a valid index or data stream name`);
    }
    url.pathname = "/";
    const shape = values["elastic-document"] ?? "message";
    if (shape !== "message" && shape !== "parsed") {
      throw usage(`--elastic-document must be 'message' or 'parsed', got '${shape}'`);
    }
    if (!HAS_CREDENTIALS(context.env)) authorizationFrom({}, target);
    const maxCount = countOption(values, "elastic-batch-docs", ELASTIC_BATCH_DOCS);
    const maxBytes = countOption(values, "elastic-batch-bytes", ELASTIC_BATCH_BYTES);
    let protocol: BulkProtocol | undefined;
    const protocolOf = () =>
      protocol ??= new BulkProtocol({
        url,
        flavor,
        target: path || undefined,
        document: shape,
        authorization: authorizationFrom(context.env, target),
      });
    return {
      label: `-o ${target}`,
      guarantee: "confirmed",
      localFiles: [],
      check: () => protocolOf().check(),
      open: (events) =>
        BatchingDestination.create(protocolOf(), {
          onRetry: (notice) => events.retry(notice),
          maxCount,
          maxBytes,
          inFlight: ELASTIC_IN_FLIGHT,
          policy: siemRetryPolicy(context.env),
        }),
    };
  },
};
