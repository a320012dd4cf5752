/**
 * `-o hec+https://HOST:8088`: every record into a Splunk HTTP Event Collector, in the shape the
 * "OpenAI Compliance Add-on" reads (sourcetype `openai:compliance:<event type in lower case>`).
 *
 * Batches of concatenated event objects (`time` from the record's `timestamp`, `sourcetype`,
 * `source` `oai-compliance-logs`, `host`, `index` from `--hec-index`, `event` the record itself, or
 * the line as a string when it is not JSON) are POSTed gzip-compressed to
 * `/services/collector/event` with `Authorization: Splunk <token>` and one
 * `X-Splunk-Request-Channel` per run. With indexer acknowledgement (the answer carries an `ackId`,
 * or `--hec-ack` requires one) a batch is confirmed only once `/services/collector/ack` says it
 * is indexed; an acknowledgement that does not come within `--hec-ack-timeout` sends the batch
 * again (HEC may then hold it twice; the checkpoint never moves on a guess). Without it, the 200
 * answer confirms. HEC's documented codes: an invalid or disabled token fails at once, "server is
 * busy" (503) and 429 are retried with backoff, "invalid data format" names the record.
 *
 * @example
 * ```ts
 * declare const context: import("./mod.ts").DestinationContext;
 * const hec = splunkHecKind.configure("hec+https://splunk.example:8088", { "hec-index": "oai" }, context);
 * await hec.check(); // the collector answers and takes the token
 * ```
 */
import { gzipSync } from "node:zlib";
import { hostname } from "node:os";
import { CliError, TransientError, usage } from "../errors.ts";
import { type Answer, request } from "../http.ts";
import { parseRetryAfter, sleep } from "../retry.ts";
import { toMicros } from "../time.ts";
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
  RECORD,
  type RecordOrigin,
  type SendOutcome,
  siemRetryPolicy,
} from "./_batching.ts";
import type { DestinationKind } from "./kind.ts";
import { isoInstant, scanJsonRecord } from "./lines.ts";

export const HEC_SOURCE = "oai-compliance-logs";
/** Defaults for a small indexer: 1,000 events or 1 MiB (before gzip) per request. */
export const HEC_BATCH_EVENTS = 1_000;
export const HEC_BATCH_BYTES = 1024 * 1024;
/** Requests in flight at once (each waits for its acknowledgement when that is on). */
export const HEC_IN_FLIGHT = 4;
export const HEC_ACK_TIMEOUT_S = 300;
/** How often pending acknowledgements are asked for. */
const ACK_POLL_MS = 250;
const REQUEST_TIMEOUT_MS = 60_000;

/** What HEC answers: `{"text": "...", "code": N}`, plus `ackId` or `invalid-event-number`. */
export interface HecAnswer {
  text?: string;
  code?: number;
  ackId?: number;
  "invalid-event-number"?: number;
}

function parseAnswer(answer: Answer): HecAnswer {
  try {
    const body = JSON.parse(answer.text);
    return body && typeof body === "object" ? body : {};
  } catch {
    return {};
  }
}

/** `timestamp` (RFC 3339) as epoch seconds with its fraction, exactly: "1782860465.177393". */
export function epochSeconds(timestamp: unknown): string | undefined {
  if (typeof timestamp !== "string") return undefined;
  const instant = isoInstant(timestamp);
  if (instant !== undefined) {
    const fraction = String(instant.micros);
    return `${instant.seconds}.${"000000".slice(fraction.length)}${fraction}`;
  }
  const micros = toMicros(timestamp);
  if (micros === undefined) return undefined;
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / 1_000_000n;
  const fraction = String(abs % 1_000_000n).padStart(6, "0");
  return `${negative ? "-" : ""}${whole}.${fraction}`;
}

export interface HecSettings {
  url: URL;
  token: string;
  channel: string;
  index?: string;
  host: string;
  /** `--hec-ack`: every answer must carry an ackId. */
  requireAck: boolean;
  ackTimeoutMs: number;
}

/** The HEC wire protocol: events encoded for the add-on, one attempt per batch. */
export class HecProtocol implements BatchProtocol {
  readonly name: string;
  readonly sizeHint = "raise max_content_length in the collector's limits.conf [http_input]";
  readonly #settings: HecSettings;
  readonly #acks: AckPoller;
  readonly #headers: Record<string, string>;
  readonly #envelopes = new Map<string, string>();

  constructor(settings: HecSettings) {
    this.#settings = settings;
    this.name = `Splunk HEC at ${settings.url.host}`;
    this.#headers = {
      authorization: `Splunk ${settings.token}`,
      "x-splunk-request-channel": settings.channel,
    };
    this.#acks = new AckPoller(this, settings.ackTimeoutMs);
  }

  /** `path` under the collector's URL (which may carry a prefix of a proxy). */
  url(path: string): URL {
    const base = this.#settings.url;
    return new URL(`${base.pathname.replace(/\/+$/, "")}${path}`, base);
  }

  encode(record: string, origin: RecordOrigin): EncodedRecord {
    let parsed: unknown;
    let json = true;
    try {
      parsed = JSON.parse(record);
    } catch {
      json = false;
    }
    const fields = json && parsed && typeof parsed === "object" && !Array.isArray(parsed)
      ? parsed as Record<string, unknown>
      : {};
    const time = epochSeconds(fields.timestamp);
    const eventId = typeof fields.event_id === "string" ? fields.event_id : undefined;
    // The record goes in as it is (copied from its bytes); a line that is not JSON as a string.
    const head = this.#head(time, origin.eventType);
    return json
      ? { parts: [head, RECORD, "}"], eventId }
      : { text: `${head}${JSON.stringify(record)}}`, eventId };
  }

  /** A JSON record from its bytes (one that is not, or unusual, is left to `encode`). */
  encodeBytes(record: Uint8Array, origin: RecordOrigin): EncodedRecord | undefined {
    const facts = scanJsonRecord(record);
    if (!facts || facts.unusual) return undefined;
    const time = facts.object ? epochSeconds(facts.timestamp) : undefined;
    const eventId = facts.object ? facts.eventId : undefined;
    return { parts: [this.#head(time, origin.eventType), RECORD, "}"], eventId };
  }

  /** What comes before the record: `{"time":...,` the envelope, `"event":`. */
  #head(time: string | undefined, eventType: string): string {
    return `{${time ? `"time":${time},` : ""}${this.#envelope(eventType)}"event":`;
  }

  /** The fields every event of `eventType` carries, ending in a comma. */
  #envelope(eventType: string): string {
    let envelope = this.#envelopes.get(eventType);
    if (envelope === undefined) {
      envelope = `"host":${JSON.stringify(this.#settings.host)},"source":"${HEC_SOURCE}",` +
        `"sourcetype":${JSON.stringify(`openai:compliance:${eventType.toLowerCase()}`)},` +
        (this.#settings.index ? `"index":${JSON.stringify(this.#settings.index)},` : "");
      this.#envelopes.set(eventType, envelope);
    }
    return envelope;
  }

  async send(items: readonly BatchItem[], signal: AbortSignal): Promise<SendOutcome> {
    const body = gzipSync(joinItems(items), { level: 1 });
    const answer = await request(this.url("/services/collector/event"), {
      ...this.#headers,
      "content-type": "application/json",
      "content-encoding": "gzip",
    }, {
      method: "POST",
      body,
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: `sending ${items.length} events to ${this.name}`,
      signal,
      maxBytes: 64 * 1024,
      truncate: true,
    });
    if (answer.status === 413) {
      return { kind: "too-large", limit: answer.text.trim().slice(0, 160) || undefined };
    }
    const hec = parseAnswer(answer);
    if (answer.status === 200) {
      if (typeof hec.ackId === "number") {
        await this.#acks.wait(hec.ackId, items.length, signal);
      } else if (this.#settings.requireAck) {
        throw new CliError(
          "api",
          `${this.name} answered without an ackId: indexer acknowledgement is off for this ` +
            `token; turn it on in the token's settings, or run without --hec-ack`,
        );
      }
      return { kind: "accepted" };
    }
    throw this.failure(answer, hec, items);
  }

  /** The error for an answer that is not a success, named as Splunk documents its codes. */
  failure(answer: Answer, hec: HecAnswer, items: readonly BatchItem[] = []): CliError {
    const said = `HTTP ${answer.status}${hec.code === undefined ? "" : `, code ${hec.code}`} "${
      hec.text ?? answer.text.trim().slice(0, 160)
    }"`;
    const tokenSource = "SPLUNK_HEC_TOKEN (or SPLUNK_HEC_TOKEN_FILE)";
    if (hec.code === 1) {
      return new CliError(
        "auth",
        `${this.name} refused the token: it is disabled (${said}); enable it, or set ${tokenSource} to an enabled one`,
      );
    }
    if (hec.code === 4 || hec.code === 2 || hec.code === 3 || answer.status === 401) {
      return new CliError("auth", `${this.name} refused the token (${said}); check ${tokenSource}`);
    }
    if (hec.code === 6) {
      const index = hec["invalid-event-number"];
      const item = typeof index === "number" ? items[index] : undefined;
      return new CliError(
        "api",
        `${this.name} refused ${item ? describeItem(item) : "a record"} as an invalid data ` +
          `format (${said}); the checkpoint stays before its file`,
      );
    }
    if (hec.code === 7) {
      return new CliError(
        "api",
        `${this.name} refused the index ${
          JSON.stringify(this.#settings.index ?? "(the token's default)")
        } (${said}); ` +
          `name an index the token may write to with --hec-index`,
      );
    }
    if (hec.code === 14) {
      return new CliError(
        "api",
        `${this.name}: indexer acknowledgement is disabled for this token (${said}); run without --hec-ack`,
      );
    }
    if (
      answer.status === 429 || answer.status === 503 || answer.status === 500 ||
      answer.status === 502 || answer.status === 504 || hec.code === 9 || hec.code === 8
    ) {
      return new TransientError(
        "api",
        `${this.name} is busy (${said})`,
        parseRetryAfter(answer.headers.get("retry-after")),
      );
    }
    return new CliError("api", `${this.name} refused the request (${said})`);
  }

  /** Asks which of `ackIds` are indexed (one attempt). */
  async queryAcks(ackIds: number[], signal: AbortSignal): Promise<Record<string, boolean>> {
    const url = this.url("/services/collector/ack");
    url.searchParams.set("channel", this.#settings.channel);
    const answer = await request(url, {
      ...this.#headers,
      "content-type": "application/json",
    }, {
      method: "POST",
      body: JSON.stringify({ acks: ackIds }),
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: `asking ${this.name} for acknowledgements`,
      signal,
    });
    const hec = parseAnswer(answer);
    if (answer.status !== 200) throw this.failure(answer, hec);
    const acks = (hec as { acks?: unknown }).acks;
    if (!acks || typeof acks !== "object") {
      throw new TransientError("api", `${this.name} answered the ack query without "acks"`);
    }
    return acks as Record<string, boolean>;
  }

  /** The up-front check: the collector is healthy and takes the token. */
  async check(): Promise<void> {
    const what = `checking ${this.name}`;
    let health: Answer;
    try {
      health = await request(this.url("/services/collector/health"), {}, {
        timeoutMs: 30_000,
        what,
        maxBytes: 64 * 1024,
        truncate: true,
      });
    } catch (error) {
      throw new CliError("network", `cannot reach ${this.name}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (health.status !== 200) {
      const hec = parseAnswer(health);
      throw new CliError(
        "api",
        `${this.name} is not healthy (HTTP ${health.status} "${
          hec.text ?? health.text.trim().slice(0, 160)
        }"); ` +
          `check that -o names its HEC port, and retry when it is`,
      );
    }
    // An empty request with the token: "No data" (code 5) means the token is taken.
    const probe = await request(this.url("/services/collector/event"), {
      ...this.#headers,
      "content-type": "application/json",
    }, { method: "POST", body: "", timeoutMs: 30_000, what, maxBytes: 64 * 1024, truncate: true });
    const hec = parseAnswer(probe);
    if (probe.status === 400 && hec.code === 5) return;
    if (probe.status === 200) return;
    throw this.failure(probe, hec);
  }
}

/**
 * Waits for the acknowledgement of each batch: one loop asks for all pending ackIds every
 * `ACK_POLL_MS`; an ackId not acknowledged within `timeoutMs` fails its batch with a
 * `TransientError`, which sends it again.
 */
class AckPoller {
  #waiting = new Map<
    number,
    { resolve: () => void; reject: (error: unknown) => void; deadline: number; events: number }
  >();
  #running = false;

  constructor(private readonly protocol: HecProtocol, private readonly timeoutMs: number) {}

  wait(ackId: number, events: number, signal: AbortSignal): Promise<void> {
    // A collector that hands out one ackId twice would leave the first batch waiting for ever.
    if (this.#waiting.has(ackId)) {
      return Promise.reject(
        new CliError(
          "api",
          `the HTTP Event Collector gave ackId ${ackId} to two batches on one channel; it is ` +
            `not acknowledging reliably: check its indexer acknowledgement settings`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#waiting.set(ackId, {
        resolve,
        reject,
        deadline: performance.now() + this.timeoutMs,
        events,
      });
      if (!this.#running) this.#run(signal);
    });
  }

  async #run(signal: AbortSignal): Promise<void> {
    this.#running = true;
    try {
      while (this.#waiting.size > 0) {
        await sleep(ACK_POLL_MS, signal);
        let acks: Record<string, boolean> = {};
        try {
          acks = await this.protocol.queryAcks([...this.#waiting.keys()], signal);
        } catch (error) {
          // A query that failed for good fails every batch waiting; a transient one is asked again.
          if (!(error instanceof TransientError)) throw error;
        }
        const now = performance.now();
        for (const [ackId, waiter] of this.#waiting) {
          if (acks[String(ackId)] === true) {
            this.#waiting.delete(ackId);
            waiter.resolve();
          } else if (now >= waiter.deadline) {
            this.#waiting.delete(ackId);
            waiter.reject(
              new TransientError(
                "api",
                `${this.protocol.name} did not acknowledge ackId ${ackId} (${waiter.events} ` +
                  `events) within ${this.timeoutMs / 1000}s; sending them again (HEC may then ` +
                  `hold them twice)`,
              ),
            );
          }
        }
      }
    } catch (error) {
      for (const waiter of this.#waiting.values()) waiter.reject(error);
      this.#waiting.clear();
    } finally {
      this.#running = false;
    }
  }
}

/** `-o hec+https://HOST:8088` on the registry. */
export const splunkHecKind: DestinationKind = {
  name: "Splunk HTTP Event Collector",
  flag: "output",
  schemes: ["hec+https", "hec+http"],
  options: {
    "hec-index": {
      type: "string",
      arg: "NAME",
      help: "with -o hec+https://, the Splunk index of every event (default: the token's)",
    },
    "hec-ack": {
      type: "boolean",
      help:
        "with -o hec+https://, require indexer acknowledgement (used whenever the token has it)",
    },
    "hec-ack-timeout": {
      type: "string",
      arg: "SECONDS",
      help:
        `with -o hec+https://, send a batch again when unacknowledged this long (default ${HEC_ACK_TIMEOUT_S})`,
    },
    "hec-batch-events": {
      type: "string",
      arg: "N",
      help: `with -o hec+https://, events per request at most (default ${HEC_BATCH_EVENTS})`,
    },
    "hec-batch-bytes": {
      type: "string",
      arg: "BYTES",
      help:
        `with -o hec+https://, bytes per request before gzip at most (default ${HEC_BATCH_BYTES})`,
    },
  },
  secretEnv: ["SPLUNK_HEC_TOKEN"],
  conflicts: {},
  configure(target, values, context) {
    const url = collectorUrl(target, "hec");
    const env = context.env;
    if (!env.SPLUNK_HEC_TOKEN && !env.SPLUNK_HEC_TOKEN_FILE) {
      throw usage(
        `-o ${target} needs the HEC token in SPLUNK_HEC_TOKEN (or a file named by ` +
          `SPLUNK_HEC_TOKEN_FILE)`,
      );
    }
    const index = values["hec-index"] as string | undefined;
    if (index !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(index)) {
      throw usage(`--hec-index '${index}' is not a Splunk index name (letters, digits, _ and -)`);
    }
    const ackTimeoutS = countOption(values, "hec-ack-timeout", HEC_ACK_TIMEOUT_S);
    const maxCount = countOption(values, "hec-batch-events", HEC_BATCH_EVENTS);
    const maxBytes = countOption(values, "hec-batch-bytes", HEC_BATCH_BYTES);
    // One channel per run: the collector keeps ackIds per channel.
    const channel = crypto.randomUUID();
    let protocol: HecProtocol | undefined;
    const protocolOf = () =>
      protocol ??= new HecProtocol({
        url,
        token: readSecret(env, "SPLUNK_HEC_TOKEN")!,
        channel,
        index,
        host: hostname(),
        requireAck: Boolean(values["hec-ack"]),
        ackTimeoutMs: ackTimeoutS * 1000,
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
          inFlight: HEC_IN_FLIGHT,
          policy: siemRetryPolicy(env),
        }),
    };
  },
};
