/**
 * `-o syslog+tcp://HOST:PORT`, `-o syslog+tls://HOST:PORT` (RFC 5425) and
 * `-o syslog+relp://HOST:PORT` (RELP): every record as one RFC 5424 message (lib/syslog/
 * message.ts: APP-NAME `oai-compliance-logs`, MSGID the event type, TIMESTAMP the record's
 * `timestamp`, the record untouched as MSG), octet-counted on TCP and TLS (RFC 6587).
 *
 * Guarantees: TCP and TLS never say what the server kept, so they are `best-effort`. The files
 * written on a connection are kept (their spools, on disk) until the connection is closed
 * cleanly every 2 s or 32 MiB: a server closes its side only once it has read every byte, and
 * only then are they confirmed. A connection that drops first is made again with backoff and
 * every file not confirmed is sent again (at-least-once across a reconnect); what the server had
 * read but not stored when it died is lost. RELP acknowledges every message: a file is
 * `confirmed` only once every message of it was acknowledged, and the messages a dropped
 * session did not acknowledge are sent again on the next.
 *
 * A record whose message would be longer than `--syslog-max-bytes` (default 64 KiB, the common
 * server limit) fails the run naming its `event_id`, its size and the way past it: it is never
 * cut (a SIEM would get broken JSON) and never retried.
 *
 * @example
 * ```ts
 * declare const context: import("./mod.ts").DestinationContext;
 * const syslog = syslogKind.configure("syslog+relp://127.0.0.1:2514", {}, context);
 * await syslog.check(); // connects and opens a RELP session
 * ```
 */
import { hostname } from "node:os";
import process from "node:process";
import { skipCommand } from "../checkpoint/_common.ts";
import { CliError, reason, usage } from "../errors.ts";
import { backoffDelay, type RetryPolicy, sleep } from "../retry.ts";
import type { LogFile } from "../log_file.ts";
import {
  codeOf,
  eventIdIn,
  FACILITIES,
  framedMessage,
  messageLength,
  priorityOf,
  recordFacts,
  recordTimestamp,
  SEVERITIES,
  type SyslogHeader,
  syslogHeader,
} from "../syslog/message.ts";
import { readRecords } from "../syslog/records.ts";
import { RelpClient } from "../syslog/relp.ts";
import {
  ConnectionLost,
  connectSyslog,
  readTlsMaterial,
  SocketWriter,
  type SyslogEndpoint,
  type TlsMaterial,
  tlsRefusal,
  tlsVerdict,
} from "../syslog/transport.ts";
import { countOption, garbageWatch, siemRetryPolicy } from "./_batching.ts";
import { SPOOLS_AHEAD } from "./_batching.ts";
import type { Destination, Guarantee, Parcel, Receipt } from "./contract.ts";
import type { DestinationEvents, DestinationKind } from "./kind.ts";
import { type FileSpool, RunSpools } from "./spool.ts";

/** The common server limit (rsyslog's maxMessageSize defaults to 8 KiB, many raise it to 64). */
export const SYSLOG_MAX_BYTES = 64 * 1024;
/** What `--syslog-max-bytes` may be raised to. */
const MAX_MAX_BYTES = 64 * 1024 * 1024;
/** Defaults: local0 (a facility for applications), info. */
export const DEFAULT_FACILITY = 16;
export const DEFAULT_SEVERITY = 6;
/**
 * TCP and TLS: the connection is closed cleanly (and the files sent on it confirmed) this often,
 * or after this many bytes: a crash repeats at most that much.
 */
const COMMIT_EVERY_MS = 2_000;
const COMMIT_EVERY_BYTES = 32 * 1024 * 1024;
/** How long the server may take to close its side after the end of a connection. */
const END_TIMEOUT_MS = 10_000;
const DEFAULT_PORTS = { "syslog+tcp": 514, "syslog+tls": 6514, "syslog+relp": 2514 } as const;

type Scheme = keyof typeof DEFAULT_PORTS;

export interface SyslogSettings {
  scheme: Scheme;
  endpoint: SyslogEndpoint;
  /** The server in messages: "syslog over TLS at host:6514". */
  what: string;
  facility: number;
  severity: number;
  maxBytes: number;
  policy: RetryPolicy;
  /** `--state`, for the `state skip` command a message suggests. */
  statePath?: string;
}

/** The endpoint `-o` names (usage errors). */
export function parseSyslogTarget(target: string): { scheme: Scheme; host: string; port: number } {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw usage(`-o ${target} is not a valid URL; use syslog+tcp://HOST:PORT`);
  }
  const scheme = url.protocol.slice(0, -1) as Scheme;
  if (!(scheme in DEFAULT_PORTS)) {
    throw usage(`-o ${target}: use syslog+tcp://, syslog+tls:// or syslog+relp://`);
  }
  if (
    url.username || url.password || (url.pathname && url.pathname !== "/") || url.search || url.hash
  ) {
    throw usage(
      `-o ${target}: a syslog URL is only syslog+tcp://HOST:PORT (no path, query or user)`,
    );
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!host) throw usage(`-o ${target} names no host`);
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[scheme];
  return { scheme, host, port };
}

/** A facility or severity option: a name or a number (usage error otherwise). */
function codeOption(
  values: Record<string, unknown>,
  name: string,
  names: readonly string[],
  fallback: number,
): number {
  const text = values[name];
  if (text === undefined) return fallback;
  const code = codeOf(String(text), names);
  if (code === undefined) {
    throw usage(
      `--${name} '${text}' is not one of ${names.join(", ")} (or 0 to ${names.length - 1})`,
    );
  }
  return code;
}

/** Describes a record for messages. */
function recordName(eventId: string | undefined, line: number, eventType: string, file: LogFile) {
  const id = eventId === undefined ? "a record without an event_id" : `event ${eventId}`;
  return `${id} (line ${line} of ${eventType} file ${file.id})`;
}

/** One file's messages until every one is acknowledged (RELP). */
class FileAcks {
  #outstanding = 0;
  #sealed = false;
  #rejected = false;
  constructor(private readonly receipt: Receipt) {}
  add(): void {
    this.#outstanding++;
  }
  settle(error?: unknown): void {
    if (error !== undefined) return this.reject(error);
    this.#outstanding--;
    this.#check();
  }
  seal(): void {
    this.#sealed = true;
    this.#check();
  }
  reject(error: unknown): void {
    if (this.#rejected) return;
    this.#rejected = true;
    this.receipt.reject(error);
  }
  #check(): void {
    if (this.#sealed && this.#outstanding === 0 && !this.#rejected) this.receipt.confirm();
  }
}

export class SyslogDestination implements Destination<FileSpool> {
  readonly guarantee: Guarantee;
  readonly #headers = new Map<string, SyslogHeader>();
  readonly #hostname = hostname();
  #writer: SocketWriter | undefined;
  #connectedAt = 0;
  /** TCP and TLS: files written on the current connection, not yet confirmed. */
  #sent: Array<Parcel<FileSpool>> = [];
  #sentBytes = 0;
  #failure: { error: unknown } | undefined;
  readonly spoolsAhead = SPOOLS_AHEAD;

  private constructor(
    private readonly settings: SyslogSettings,
    private readonly material: TlsMaterial,
    private readonly folder: RunSpools,
    private readonly relp: RelpClient | undefined,
    private readonly events: DestinationEvents | undefined,
  ) {
    this.guarantee = relp ? "confirmed" : "best-effort";
  }

  /** Opened for one pass; `events` hears its reconnects (the run counts them as retries). */
  static async create(
    settings: SyslogSettings,
    material: TlsMaterial,
    events?: DestinationEvents,
  ): Promise<SyslogDestination> {
    const folder = await RunSpools.create();
    let relp: RelpClient | undefined;
    if (settings.scheme === "syslog+relp") {
      relp = new RelpClient({
        what: settings.what,
        connect: () => connectSyslog(settings.endpoint, settings.what, material),
        policy: settings.policy,
        onRetry: (notice) => events?.retry(notice),
      });
      try {
        await relp.open();
      } catch (error) {
        await folder.remove();
        throw error;
      }
    }
    return new SyslogDestination(settings, material, folder, relp, events);
  }

  alreadyStored(): Promise<boolean> {
    // A syslog server cannot be asked what it holds: searches de-duplicate on event_id.
    return Promise.resolve(false);
  }

  spool(): Promise<FileSpool> {
    return this.folder.next();
  }

  async deliver(parcel: Parcel<FileSpool>): Promise<void> {
    if (this.#failure) {
      await parcel.spool.discard();
      throw this.#failure.error;
    }
    try {
      if (this.relp) {
        try {
          await this.#deliverRelp(parcel, this.relp);
        } finally {
          await parcel.spool.discard();
        }
      } else await this.#deliverStream(parcel);
    } catch (error) {
      this.#failure ??= { error };
      parcel.receipt.reject(error);
      throw error;
    }
  }

  async finish(): Promise<void> {
    try {
      if (this.relp) await this.relp.close();
      else if (this.#sent.length > 0) await this.#commit();
      else await this.#writer?.end();
    } catch (error) {
      this.#rejectSent(error);
      throw error;
    } finally {
      this.#writer = undefined;
      await this.folder.remove();
    }
  }

  async abort(): Promise<void> {
    this.relp?.destroy();
    this.#writer?.destroy();
    this.#writer = undefined;
    this.#rejectSent(new CliError("interrupted", "the delivery was stopped"));
    await this.folder.remove();
  }

  #header(eventType: string): SyslogHeader {
    let header = this.#headers.get(eventType);
    if (!header) {
      header = syslogHeader({
        priority: priorityOf(this.settings.facility, this.settings.severity),
        hostname: this.#hostname,
        procId: String(process.pid),
        msgId: eventType,
      });
      this.#headers.set(eventType, header);
    }
    return header;
  }

  /**
   * Every message of the parcel's file with `prefix`/`suffix` of its frame: `send` takes each in
   * order. Fails on the first record too large.
   */
  async #eachMessage(
    { file, eventType, spool }: Parcel<FileSpool>,
    frame: (length: number) => [prefix: string, suffix: string],
    send: (bytes: Uint8Array) => Promise<void>,
  ): Promise<void> {
    const header = this.#header(eventType);
    const { maxBytes } = this.settings;
    for await (const item of readRecords(spool.stream(), maxBytes)) {
      if (item.kind === "too-large") {
        throw this.#tooLarge(
          recordName(eventIdIn(item.head), item.line, eventType, file),
          item.size,
          undefined,
          file,
          eventType,
        );
      }
      const timestamp = recordTimestamp(item.bytes);
      const length = messageLength(header, timestamp, item.bytes.length);
      if (length > maxBytes) {
        const { eventId } = recordFacts(item.bytes);
        throw this.#tooLarge(
          recordName(eventId, item.line, eventType, file),
          item.bytes.length,
          length,
          file,
          eventType,
        );
      }
      const [prefix, suffix] = frame(length);
      garbageWatch.taken(length);
      await send(framedMessage(prefix, header, timestamp, item.bytes, suffix));
    }
  }

  #tooLarge(
    what: string,
    recordBytes: number,
    messageBytes: number | undefined,
    file: LogFile,
    eventType: string,
  ): CliError {
    const size = messageBytes === undefined
      ? `${recordBytes} bytes`
      : `${recordBytes} bytes (${messageBytes} as a syslog message)`;
    const skip = this.settings.statePath === undefined
      ? "or pass its file with `state skip` (with --state)"
      : `or pass its file with \`${skipCommand(this.settings.statePath, eventType, file.id)}\``;
    return new CliError(
      "integrity",
      `${what} is ${size}, more than --syslog-max-bytes ${this.settings.maxBytes} allows; it is ` +
        `not cut or sent. Raise --syslog-max-bytes together with the server's limit (rsyslog: ` +
        `global(maxMessageSize="...")), ${skip}`,
    );
  }

  /**
   * TCP and TLS: the file whole into the socket, kept until the server has read it (`#commit`);
   * on a new connection every file not committed yet is sent again first.
   */
  async #deliverStream(parcel: Parcel<FileSpool>): Promise<void> {
    this.#sent.push(parcel);
    try {
      await this.#attempt(async () => {
        const fresh = !this.#writer || this.#writer.lost;
        const writer = await this.#connected();
        for (const each of fresh ? this.#sent : [parcel]) await this.#writeFile(each, writer);
        // Not waited for: the commit's clean close is what confirms.
        await writer.flush(false);
      });
    } catch (error) {
      this.#sent.pop();
      await parcel.spool.discard();
      // What came before the failed file is still committed, so the checkpoint passes it.
      if (!(error instanceof CliError && error.kind === "network") && this.#sent.length > 0) {
        await this.#commit().catch((commitError) => this.#rejectSent(commitError));
      }
      throw error;
    }
    this.#sentBytes += parcel.downloaded.bytes;
    const due = Date.now() - this.#connectedAt >= COMMIT_EVERY_MS;
    if (this.#sentBytes >= COMMIT_EVERY_BYTES || due) await this.#commit();
  }

  #writeFile(parcel: Parcel<FileSpool>, writer: SocketWriter): Promise<void> {
    return this.#eachMessage(
      parcel,
      (length) => [`${length} `, ""],
      (frame) => writer.write(frame),
    );
  }

  /**
   * Closes the connection cleanly: once the server closed its side it has read every byte sent
   * on it, and the files sent are confirmed (the most a plain stream can tell). A connection
   * that breaks first is made again and the files are sent again.
   */
  async #commit(): Promise<void> {
    await this.#attempt(async () => {
      const fresh = !this.#writer || this.#writer.lost;
      const writer = await this.#connected();
      if (fresh) {
        for (const each of this.#sent) await this.#writeFile(each, writer);
        await writer.flush(true);
      }
      this.#writer = undefined;
      if (!(await writer.end(END_TIMEOUT_MS))) {
        throw new ConnectionLost(
          `${this.settings.what} did not close the connection cleanly within ` +
            `${END_TIMEOUT_MS / 1000}s of its end`,
        );
      }
    });
    const sent = this.#sent;
    this.#sent = [];
    this.#sentBytes = 0;
    for (const each of sent) {
      each.receipt.confirm();
      await each.spool.discard();
    }
  }

  #rejectSent(error: unknown): void {
    const sent = this.#sent;
    this.#sent = [];
    for (const each of sent) {
      each.receipt.reject(error);
      each.spool.discard().catch(() => {});
    }
  }

  /** Runs `step` until it succeeds; a lost connection is made again with backoff, a few times. */
  async #attempt(step: () => Promise<void>): Promise<void> {
    const { policy } = this.settings;
    for (let attempt = 0;; attempt++) {
      try {
        return await step();
      } catch (error) {
        this.#writer?.destroy();
        this.#writer = undefined;
        const lost = error instanceof ConnectionLost ||
          (error instanceof CliError && error.kind === "network");
        if (!lost) throw error;
        const refused = tlsRefusal(error, this.settings.what);
        if (refused) throw refused;
        if (attempt >= policy.retries) {
          throw new CliError(
            "network",
            `${error.message}, still after ${policy.retries + 1} tries; the files not confirmed ` +
              `yet are sent again by the next run`,
            { cause: error },
          );
        }
        const waitMs = backoffDelay(attempt, policy);
        this.events?.retry({
          what: `sending to ${this.settings.what}`,
          attempt: attempt + 2,
          of: policy.retries + 1,
          waitMs,
          reason: error.message,
        });
        await sleep(waitMs);
      }
    }
  }

  async #connected(): Promise<SocketWriter> {
    if (this.#writer && !this.#writer.lost) return this.#writer;
    if (this.#writer) {
      // Lost between two steps (no step failed on it): reconnected at once, and reported.
      this.events?.retry({
        what: `sending to ${this.settings.what}`,
        attempt: 2,
        of: this.settings.policy.retries + 1,
        waitMs: 0,
        reason: reason(this.#writer.error ?? "the connection was lost"),
      });
      this.#writer.destroy();
      this.#writer = undefined;
    }
    const socket = await connectSyslog(this.settings.endpoint, this.settings.what, this.material);
    // The server never writes on a syslog stream: anything it sends is ignored.
    socket.on("data", () => {});
    this.#writer = new SocketWriter(socket, this.settings.what);
    this.#connectedAt = Date.now();
    return this.#writer;
  }

  /** RELP: every message pipelined; the file is confirmed when the last is acknowledged. */
  async #deliverRelp(parcel: Parcel<FileSpool>, relp: RelpClient): Promise<void> {
    const acks = new FileAcks(parcel.receipt);
    try {
      await this.#eachMessage(parcel, () => ["", ""], async (message) => {
        acks.add();
        await relp.send(message, (error) => acks.settle(error));
      });
    } catch (error) {
      acks.reject(error);
      // The files before this one still get their acknowledgements, so the checkpoint passes them.
      if (!(error instanceof CliError && error.kind === "network")) {
        await relp.drain().catch(() => {});
      }
      throw error;
    }
    acks.seal();
    await relp.flush();
  }
}

/** `-o syslog+tcp://`, `syslog+tls://`, `syslog+relp://` on the registry. */
export const syslogKind: DestinationKind = {
  name: "syslog",
  flag: "output",
  schemes: ["syslog+tcp", "syslog+tls", "syslog+relp"],
  options: {
    "syslog-facility": {
      type: "string",
      arg: "NAME",
      help: "with -o syslog+...://, the facility: a name (local0) or 0-23 (default local0)",
    },
    "syslog-severity": {
      type: "string",
      arg: "NAME",
      help: "with -o syslog+...://, the severity: a name (info) or 0-7 (default info)",
    },
    "syslog-max-bytes": {
      type: "string",
      arg: "BYTES",
      help:
        `with -o syslog+...://, the longest message the server takes (default ${SYSLOG_MAX_BYTES});\n` +
        "a longer record fails the run, never cut",
    },
    "ca-file": {
      type: "string",
      arg: "FILE",
      help: "with -o syslog+tls://, the CA certificates (PEM) the server's is checked against\n" +
        "(default: the system's)",
    },
    "client-cert": {
      type: "string",
      arg: "FILE",
      help: "with -o syslog+tls://, a client certificate (PEM) for mutual TLS",
    },
    "client-key": {
      type: "string",
      arg: "FILE",
      help: "with -o syslog+tls://, the client certificate's private key (PEM)",
    },
  },
  secretEnv: [],
  conflicts: {},
  configure(target, values, context) {
    const { scheme, host, port } = parseSyslogTarget(target);
    const tlsOptions = ["ca-file", "client-cert", "client-key"].filter((o) =>
      values[o] !== undefined
    );
    if (scheme !== "syslog+tls" && tlsOptions.length > 0) {
      throw usage(`--${tlsOptions[0]} needs -o syslog+tls://HOST:PORT`);
    }
    if ((values["client-cert"] === undefined) !== (values["client-key"] === undefined)) {
      throw usage("--client-cert and --client-key go together (mutual TLS needs both)");
    }
    const maxBytes = countOption(values, "syslog-max-bytes", SYSLOG_MAX_BYTES);
    if (maxBytes < 480 || maxBytes > MAX_MAX_BYTES) {
      throw usage(`--syslog-max-bytes must be from 480 to ${MAX_MAX_BYTES}, got ${maxBytes}`);
    }
    const endpoint: SyslogEndpoint = {
      transport: scheme === "syslog+tls" ? "tls" : "tcp",
      host,
      port,
      caFile: values["ca-file"] as string | undefined,
      certFile: values["client-cert"] as string | undefined,
      keyFile: values["client-key"] as string | undefined,
    };
    const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const what = scheme === "syslog+relp"
      ? `RELP at ${where}`
      : scheme === "syslog+tls"
      ? `syslog over TLS at ${where}`
      : `syslog over TCP at ${where}`;
    const settings: SyslogSettings = {
      scheme,
      endpoint,
      what,
      facility: codeOption(values, "syslog-facility", FACILITIES, DEFAULT_FACILITY),
      severity: codeOption(values, "syslog-severity", SEVERITIES, DEFAULT_SEVERITY),
      maxBytes,
      policy: siemRetryPolicy(context.env),
      statePath: context.statePath,
    };
    const material = readTlsMaterial(endpoint);
    return {
      label: `-o ${target}`,
      guarantee: scheme === "syslog+relp" ? "confirmed" : "best-effort",
      localFiles: [],
      check: () => checkReachable(settings, material, target),
      open: (events) => SyslogDestination.create(settings, material, events),
    };
  },
};

/** Before any download: the server answers (TLS: the handshake passes; RELP: a session opens). */
async function checkReachable(
  settings: SyslogSettings,
  material: TlsMaterial,
  target: string,
): Promise<void> {
  const what = `${settings.what} (-o ${target})`;
  if (settings.scheme === "syslog+relp") {
    const client = new RelpClient({
      what,
      connect: () => connectSyslog(settings.endpoint, what, material),
      policy: { ...settings.policy, retries: 0 },
    });
    await client.open();
    await client.close();
    return;
  }
  const socket = await connectSyslog(settings.endpoint, what, material);
  const writer = new SocketWriter(socket, what);
  socket.on("data", () => {});
  if (settings.endpoint.transport === "tls") {
    // TLS 1.3 ends the client's handshake before the server has checked a client certificate:
    // its refusal (an alert, or a close) comes right after, and is shown here, before any
    // download.
    const verdict = await tlsVerdict(socket);
    if (verdict !== undefined) {
      writer.destroy();
      throw tlsRefusal(verdict, what) ?? new CliError(
        "network",
        `${what} closed the TLS session right after the handshake; it may require a client ` +
          `certificate (--client-cert, --client-key) or not accept the one given`,
      );
    }
  }
  await writer.end(2_000);
  const refused = writer.error === undefined ? undefined : tlsRefusal(writer.error, what);
  if (refused) throw refused;
}
