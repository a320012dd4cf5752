/**
 * A small RELP client (the Reliable Event Logging Protocol of rsyslog and librelp), written from
 * the protocol description: every frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; a session
 * starts with `open` (offering `relp_version=0` and `commands=syslog`), carries one `syslog`
 * command per message, each answered by an `rsp` with the same transaction number (`200 OK`
 * when the server took it), and ends with `close`. A server going away sends `serverclose`.
 *
 * Messages are pipelined up to a window (count and bytes); each one's callback hears when it was
 * acknowledged. When the connection drops, a `serverclose` comes, a message is refused or no
 * acknowledgement comes in time, the client reconnects with backoff, opens a new session and
 * sends again, in order, every message not acknowledged yet (so the server may hold a few twice,
 * never none). It gives up only after the retry policy's tries, failing every pending message.
 *
 * @example
 * ```ts
 * import { connectSyslog } from "./transport.ts";
 * const endpoint = { transport: "tcp", host: "127.0.0.1", port: 2514 } as const;
 * const client = new RelpClient({
 *   what: "RELP at 127.0.0.1:2514",
 *   connect: () => connectSyslog(endpoint, "RELP at 127.0.0.1:2514"),
 *   policy: { retries: 5, backoffMs: 1000, maxWaitMs: 30000 },
 * });
 * await client.open();
 * await client.send(new TextEncoder().encode("<14>1 - - app - - - hello"), (error) => {
 *   if (!error) console.log("acknowledged");
 * });
 * await client.close();
 * ```
 */
import type { Socket } from "node:net";
import { CliError, reason } from "../errors.ts";
import { backoffDelay, type RetryNotice, type RetryPolicy, sleep } from "../retry.ts";
import { ConnectionLost, SocketWriter } from "./transport.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** RELP's transaction numbers run from 1 to this, then wrap to 1. */
const MAX_TXNR = 999_999_999;
/** What a session offers in its `open`. */
export const RELP_OFFERS = "relp_version=0\nrelp_software=oai-compliance-logs\ncommands=syslog";

/** One RELP frame's bytes. */
export function relpFrame(
  txnr: number,
  command: string,
  data: Uint8Array | string = "",
): Uint8Array {
  const body = typeof data === "string" ? encoder.encode(data) : data;
  const head = encoder.encode(`${txnr} ${command} ${body.length}${body.length ? " " : ""}`);
  const frame = new Uint8Array(head.length + body.length + 1);
  frame.set(head);
  frame.set(body, head.length);
  frame[frame.length - 1] = 0x0a;
  return frame;
}

/** The head of a `syslog` frame for a message of `length` bytes (the message and LF follow). */
export function syslogFramePrefix(txnr: number, length: number): string {
  return `${txnr} syslog ${length} `;
}

export interface RelpFrame {
  txnr: number;
  command: string;
  data: Uint8Array;
}

/** A frame that does not follow the protocol. */
export class RelpProtocolError extends Error {}

/** The most data a server's frame (an `rsp` or `serverclose`) may carry. */
const SERVER_FRAME_DATA_BYTES = 64 * 1024;

/**
 * Reads RELP frames out of a byte stream: feed it chunks, it returns every whole frame so far;
 * throws `RelpProtocolError` on bytes that are not RELP. `maxData` bounds a frame's data.
 *
 * @example
 * ```ts
 * const reader = new RelpFrameReader();
 * reader.push(new TextEncoder().encode("2 rsp 6 200 OK\n")); // [{ txnr: 2, command: "rsp", ... }]
 * ```
 */
export class RelpFrameReader {
  #buffer = new Uint8Array(0);
  constructor(private readonly maxData = 128 * 1024 * 1024) {}

  push(chunk: Uint8Array): RelpFrame[] {
    let joined = chunk;
    if (this.#buffer.length > 0) {
      joined = new Uint8Array(this.#buffer.length + chunk.length);
      joined.set(this.#buffer);
      joined.set(chunk, this.#buffer.length);
    }
    const frames: RelpFrame[] = [];
    let at = 0;
    for (;;) {
      const frame = this.#parse(joined, at);
      if (!frame) break;
      frames.push(frame.frame);
      at = frame.next;
    }
    this.#buffer = joined.slice(at);
    return frames;
  }

  #parse(bytes: Uint8Array, at: number): { frame: RelpFrame; next: number } | undefined {
    // The header is short: its three fields end at the second space and the length's end.
    const first = bytes.indexOf(0x20, at);
    if (first === -1) return this.#partialHeader(bytes, at);
    const second = bytes.indexOf(0x20, first + 1);
    if (second === -1) return this.#partialHeader(bytes, at);
    const txnrText = decoder.decode(bytes.subarray(at, first));
    const command = decoder.decode(bytes.subarray(first + 1, second));
    let end = second + 1;
    while (end < bytes.length && bytes[end] >= 0x30 && bytes[end] <= 0x39) end++;
    if (end === bytes.length) return this.#partialHeader(bytes, at);
    const lengthText = decoder.decode(bytes.subarray(second + 1, end));
    if (
      !/^\d{1,9}$/.test(txnrText) || !/^[a-z]{1,32}$/i.test(command) ||
      !/^\d{1,10}$/.test(lengthText)
    ) {
      throw new RelpProtocolError(
        `not a RELP frame: ${
          JSON.stringify(decoder.decode(bytes.subarray(at, end + 1)).slice(0, 80))
        }`,
      );
    }
    const length = Number(lengthText);
    if (length > this.maxData) throw new RelpProtocolError(`a RELP frame of ${length} bytes`);
    let dataStart = end;
    if (length > 0) {
      if (bytes[end] !== 0x20) {
        throw new RelpProtocolError("a RELP frame without a space before its data");
      }
      dataStart = end + 1;
    }
    if (bytes.length < dataStart + length + 1) return undefined;
    if (bytes[dataStart + length] !== 0x0a) {
      throw new RelpProtocolError("a RELP frame without its LF trailer");
    }
    return {
      frame: { txnr: Number(txnrText), command, data: bytes.slice(dataStart, dataStart + length) },
      next: dataStart + length + 1,
    };
  }

  /** An incomplete header: fine while short, else the stream is not RELP. */
  #partialHeader(bytes: Uint8Array, at: number): undefined {
    if (bytes.length - at > 64) throw new RelpProtocolError("not a RELP frame header");
    return undefined;
  }
}

/** An `rsp` frame's code and text: `200 OK`, `500 ...`. */
export function parseResponse(data: Uint8Array): { code: number; text: string; extra: string } {
  const text = decoder.decode(data);
  const newline = text.indexOf("\n");
  const first = newline === -1 ? text : text.slice(0, newline);
  const match = /^(\d{3})(?: (.*))?$/.exec(first);
  return {
    code: match ? Number(match[1]) : 0,
    text: match ? match[2] ?? "" : first,
    extra: newline === -1 ? "" : text.slice(newline + 1),
  };
}

export interface RelpOptions {
  /** The server in messages: "RELP at host:2514". */
  what: string;
  /** A new connection to the server (TCP, or TLS once handshaken). */
  connect: () => Promise<Socket>;
  policy: RetryPolicy;
  /** Messages unacknowledged at most (default 512). */
  window?: number;
  /** Bytes of unacknowledged messages at most (default 8 MiB; at least one message). */
  windowBytes?: number;
  /** A session whose oldest message waits this long for its acknowledgement is reopened. */
  ackTimeoutMs?: number;
  /** Hears each reconnect before its wait (counted and shown like the API's retries). */
  onRetry?: (notice: RetryNotice) => void;
}

/** One message until it is acknowledged. */
interface Pending {
  message: Uint8Array;
  done: (error?: unknown) => void;
  txnr: number;
  session: Session | undefined;
}

/** One connection's RELP session. */
interface Session {
  socket: Socket;
  writer: SocketWriter;
  nextTxnr: number;
  /** The open's or close's answer, awaited by number. */
  replies: Map<number, (frame: RelpFrame) => void>;
  /** Set when the session failed (the first reason counts). */
  failure?: unknown;
}

export class RelpClient {
  readonly #options: Required<Omit<RelpOptions, "onRetry">> & Pick<RelpOptions, "onRetry">;
  #session: Session | undefined;
  /** True while the session is open and every pending message was sent on it. */
  #ready = false;
  #recovering: Promise<void> | undefined;
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #failed: { error: unknown } | undefined;
  #wake: Array<() => void> = [];
  #lastAck = Date.now();
  #stall: ReturnType<typeof setInterval> | undefined;
  #closing = false;

  constructor(options: RelpOptions) {
    this.#options = {
      ...options,
      window: options.window ?? 512,
      windowBytes: options.windowBytes ?? 8 * 1024 * 1024,
      ackTimeoutMs: options.ackTimeoutMs ?? 60_000,
    };
  }

  /** Connects and opens a session; a `network` CliError when it cannot. */
  async open(): Promise<void> {
    this.#session = await this.#openSession();
    this.#ready = true;
  }

  /**
   * Queues `message` once the window has room and writes it; `done` hears once: without an error
   * when the server acknowledged it, with one when the client gave up.
   */
  async send(message: Uint8Array, done: (error?: unknown) => void): Promise<void> {
    while (
      !this.#failed && this.#pending.length > 0 &&
      (this.#pending.length >= this.#options.window ||
        this.#pendingBytes + message.length > this.#options.windowBytes)
    ) {
      await this.flush();
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
    if (this.#failed) throw this.#failed.error;
    const entry: Pending = { message, done, txnr: 0, session: undefined };
    this.#pending.push(entry);
    this.#pendingBytes += message.length;
    this.#startStallWatch();
    if (this.#ready && this.#session) await this.#write(this.#session, entry);
  }

  /** Writes out what is gathered (acknowledgements come only for what was sent). */
  async flush(): Promise<void> {
    const session = this.#session;
    if (!this.#ready || !session) return;
    try {
      await session.writer.flush(false);
    } catch (error) {
      this.#sessionFailed(session, error);
    }
  }

  /** Resolves once every message sent so far is acknowledged; throws if the client gave up. */
  async drain(): Promise<void> {
    while (!this.#failed && this.#pending.length > 0) {
      await this.flush();
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
    if (this.#failed) throw this.#failed.error;
  }

  /** Waits for every acknowledgement, then closes the session (`close`, its answer, the end). */
  async close(): Promise<void> {
    try {
      await this.drain();
    } finally {
      this.#closing = true;
      this.#stopStallWatch();
      const session = this.#session;
      this.#session = undefined;
      if (session && !session.failure) {
        const txnr = this.#nextTxnr(session);
        const answered = this.#await(session, txnr, 5_000).catch(() => undefined);
        try {
          await session.writer.write(relpFrame(txnr, "close"));
          await session.writer.flush(false);
          await answered;
        } catch {
          // Closing anyway: everything was acknowledged.
        }
        await session.writer.end(2_000);
      } else session?.writer.destroy();
    }
  }

  /** Drops the connection without a close (a stopped run). */
  destroy(error: unknown = new CliError("interrupted", "the delivery was stopped")): void {
    this.#closing = true;
    this.#stopStallWatch();
    this.#session?.writer.destroy();
    this.#session = undefined;
    this.#giveUp(error);
  }

  async #openSession(): Promise<Session> {
    const socket = await this.#options.connect();
    const session: Session = {
      socket,
      writer: new SocketWriter(socket, this.#options.what),
      nextTxnr: 1,
      replies: new Map(),
    };
    // A server's frames are short replies (rsp, serverclose): a larger one is not RELP, and a
    // hostile server must not make the client buffer megabytes.
    const reader = new RelpFrameReader(SERVER_FRAME_DATA_BYTES);
    socket.on("data", (chunk: Uint8Array) => {
      let frames: RelpFrame[];
      try {
        frames = reader.push(chunk);
      } catch (error) {
        return this.#sessionFailed(session, error);
      }
      for (const frame of frames) this.#onFrame(session, frame);
    });
    socket.on("close", () => this.#sessionFailed(session, new ConnectionLost("closed")));
    socket.on("error", (error) => this.#sessionFailed(session, error));
    try {
      const txnr = this.#nextTxnr(session);
      const answer = this.#await(session, txnr, 15_000);
      await session.writer.write(relpFrame(txnr, "open", RELP_OFFERS));
      await session.writer.flush(false);
      const response = parseResponse((await answer).data);
      if (response.code !== 200) {
        throw new CliError(
          "network",
          `${this.#options.what} refused the RELP session: ${response.code} ${response.text}`,
        );
      }
      if (!/^commands=.*\bsyslog\b/m.test(response.extra)) {
        throw new CliError("network", `${this.#options.what} does not take RELP syslog commands`);
      }
      return session;
    } catch (error) {
      session.failure ??= error;
      session.writer.destroy();
      if (error instanceof CliError) throw error;
      throw new CliError(
        "network",
        `${this.#options.what} did not open a RELP session: ${reason(error)}`,
        { cause: error },
      );
    }
  }

  /** The answer to `txnr` on `session`, or a rejection when the session fails or it is late. */
  #await(session: Session, txnr: number, timeoutMs: number): Promise<RelpFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        session.replies.delete(txnr);
        reject(
          new CliError(
            "network",
            `${this.#options.what} did not answer within ${timeoutMs / 1000}s`,
          ),
        );
      }, timeoutMs);
      session.replies.set(txnr, (frame) => {
        clearTimeout(timer);
        if (frame.command === "rsp") resolve(frame);
        else reject(session.failure ?? new ConnectionLost("the session ended"));
      });
    });
  }

  #nextTxnr(session: Session): number {
    const txnr = session.nextTxnr;
    session.nextTxnr = txnr >= MAX_TXNR ? 1 : txnr + 1;
    return txnr;
  }

  async #write(session: Session, entry: Pending): Promise<void> {
    entry.txnr = this.#nextTxnr(session);
    entry.session = session;
    const frame = relpFrame(entry.txnr, "syslog", entry.message);
    try {
      await session.writer.write(frame);
    } catch (error) {
      this.#sessionFailed(session, error);
    }
  }

  #onFrame(session: Session, frame: RelpFrame): void {
    if (frame.command === "serverclose") {
      return this.#sessionFailed(session, new ConnectionLost("the server closed the session"));
    }
    if (frame.command !== "rsp") {
      return this.#sessionFailed(
        session,
        new RelpProtocolError(`an unexpected '${frame.command}'`),
      );
    }
    const reply = session.replies.get(frame.txnr);
    if (reply) {
      session.replies.delete(frame.txnr);
      return reply(frame);
    }
    // Answers come in the order of the commands: the oldest pending message of this session.
    const index = this.#pending.findIndex((p) => p.session === session && p.txnr === frame.txnr);
    if (index === -1) return; // An answer to a message of an earlier session, already resent.
    const response = parseResponse(frame.data);
    if (response.code !== 200) {
      return this.#sessionFailed(
        session,
        new CliError(
          "network",
          `${this.#options.what} refused a message: ${response.code} ${response.text}`.trim(),
        ),
      );
    }
    const [entry] = this.#pending.splice(index, 1);
    this.#pendingBytes -= entry.message.length;
    this.#lastAck = Date.now();
    entry.done();
    // No timer is left running while nothing waits (it would keep the process alive).
    if (this.#pending.length === 0) this.#stopStallWatch();
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  /** The session broke: reconnect and send again what it did not acknowledge. */
  #sessionFailed(session: Session, error: unknown): void {
    if (session.failure !== undefined) return;
    session.failure = error;
    session.writer.destroy();
    for (const reply of session.replies.values()) {
      reply({ txnr: 0, command: "failed", data: new Uint8Array() });
    }
    session.replies.clear();
    if (this.#session !== session || this.#closing || this.#failed) return;
    this.#ready = false;
    this.#session = undefined;
    this.#recovering ??= this.#recover(error).finally(() => this.#recovering = undefined);
  }

  async #recover(cause: unknown): Promise<void> {
    const { policy } = this.#options;
    let last = cause;
    for (let attempt = 0; attempt <= policy.retries; attempt++) {
      const waitMs = backoffDelay(attempt, policy);
      this.#options.onRetry?.({
        what:
          `sending ${this.#pending.length} unacknowledged message(s) again to ${this.#options.what}`,
        attempt: attempt + 2,
        of: policy.retries + 2,
        waitMs,
        reason: reason(last),
      });
      try {
        await sleep(waitMs);
        if (this.#closing || this.#failed) return;
        const session = await this.#openSession();
        this.#session = session;
        this.#lastAck = Date.now();
        // Appended meanwhile or not: every message not sent on this session, in order.
        for (const entry of this.#pending) {
          if (entry.session !== session) await this.#write(session, entry);
          if (session.failure) break;
        }
        if (session.failure) {
          last = session.failure;
          continue;
        }
        await session.writer.flush(false).catch(() => {});
        this.#ready = true;
        this.#wakeAll();
        return;
      } catch (error) {
        last = error;
      }
    }
    this.#giveUp(
      new CliError(
        "network",
        `${this.#options.what}: ${reason(last)}, still after ${policy.retries + 1} tries to ` +
          `reconnect; ${this.#pending.length} message(s) were not acknowledged (their files ` +
          `stay unconfirmed and are sent again by the next run)`,
        { cause: last },
      ),
    );
  }

  #giveUp(error: unknown): void {
    this.#stopStallWatch();
    this.#failed ??= { error };
    for (const entry of this.#pending.splice(0)) entry.done(this.#failed.error);
    this.#pendingBytes = 0;
    this.#wakeAll();
  }

  /** While messages wait: a session whose oldest wait exceeds the timeout is reopened. */
  #startStallWatch(): void {
    if (this.#stall !== undefined) return;
    const timeout = this.#options.ackTimeoutMs;
    this.#lastAck = Date.now();
    this.#stall = setInterval(() => {
      const session = this.#session;
      if (!this.#ready || !session || this.#pending.length === 0) {
        this.#lastAck = Date.now();
        return;
      }
      if (Date.now() - this.#lastAck > timeout) {
        this.#sessionFailed(
          session,
          new ConnectionLost(`no acknowledgement within ${timeout / 1000}s`),
        );
      }
    }, Math.max(50, Math.min(1_000, timeout / 4)));
  }

  #stopStallWatch(): void {
    clearInterval(this.#stall);
    this.#stall = undefined;
  }
}
