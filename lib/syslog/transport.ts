/**
 * The byte streams syslog travels on: a TCP connection, or TLS over one (RFC 5425: the server's
 * certificate checked against `--ca-file` or the system's roots, and a client certificate for
 * mutual TLS), opened through `node:net` and `node:tls`, which Deno and Bun both provide; and a
 * writer that coalesces small frames into large writes and waits when the socket is full, so
 * memory stays bounded whatever is sent.
 *
 * @example
 * ```ts
 * const socket = await connectSyslog({ transport: "tcp", host: "127.0.0.1", port: 514 }, "syslog");
 * const writer = new SocketWriter(socket);
 * await writer.write(new TextEncoder().encode("5 hello"));
 * await writer.flush();
 * ```
 */
import { readFileSync } from "node:fs";
import { connect as connectTcp, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { Buffer } from "node:buffer";
import { CliError, codeOf, reason, usage } from "../errors.ts";

/** How long a connection (and its TLS handshake) may take. */
export const CONNECT_TIMEOUT_MS = 15_000;
/** Frames are gathered into writes of about this size. */
const WRITE_BYTES = 64 * 1024;
/** Bytes the socket may hold unwritten before the writer waits for it to drain. */
const SOCKET_BUFFER_BYTES = 1024 * 1024;
/** A connection whose server takes no bytes for this long is dropped (and opened again). */
const STALL_MS = 60_000;

export interface SyslogEndpoint {
  transport: "tcp" | "tls";
  host: string;
  port: number;
  /** PEM files (TLS only). */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** The files of a TLS endpoint, read once (usage errors name the option). */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads `--ca-file`, `--client-cert` and `--client-key` (usage errors). */
export function readTlsMaterial(endpoint: SyslogEndpoint): TlsMaterial {
  const read = (option: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw usage(`cannot read ${option} '${path}': ${codeOf(error) ?? reason(error)}`);
    }
  };
  return {
    ca: read("--ca-file", endpoint.caFile),
    cert: read("--client-cert", endpoint.certFile),
    key: read("--client-key", endpoint.keyFile),
  };
}

/** The lost connection a writer reports: the caller may reconnect and send again. */
export class ConnectionLost extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConnectionLost";
  }
}

/** Why a connection could not be made, as a user reads it. */
function connectFailure(what: string, error: unknown): CliError {
  const code = codeOf(error);
  const why = code === "ECONNREFUSED"
    ? "connection refused; check that the server listens there"
    : code === "ENOTFOUND" || code === "EAI_AGAIN"
    ? "the host name does not resolve"
    : /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT/.test(code ?? "")
    ? `the server's certificate is not trusted (${reason(error)}); pass its CA with --ca-file`
    : code === "ETIMEDOUT"
    ? `no answer within ${CONNECT_TIMEOUT_MS / 1000}s`
    : reason(error);
  return new CliError("network", `cannot connect to ${what}: ${why}`, { cause: error });
}

/**
 * A connected socket to `endpoint` (for TLS, once the handshake checked the server's
 * certificate); a `network` CliError naming `what` when it cannot be made in time.
 */
export function connectSyslog(
  endpoint: SyslogEndpoint,
  what: string,
  material: TlsMaterial = {},
  timeoutMs = CONNECT_TIMEOUT_MS,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    let settled = false;
    // Never removed: an error in the moment between the connection and its writer's listener
    // (a TLS alert can come with the handshake's last bytes) must not go unhandled; the writer
    // sees the close that follows it.
    const onError = (error: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(connectFailure(what, error));
    };
    const timer = setTimeout(
      () => onError(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })),
      timeoutMs,
    );
    const ready = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    };
    if (endpoint.transport === "tls") {
      socket = connectTls({
        host: endpoint.host,
        port: endpoint.port,
        // SNI takes a name only; an address is checked against the certificate's IP SANs.
        servername: isIP(endpoint.host) ? undefined : endpoint.host,
        ca: material.ca,
        cert: material.cert,
        key: material.key,
        rejectUnauthorized: true,
      }, ready);
    } else {
      socket = connectTcp({ host: endpoint.host, port: endpoint.port }, ready);
    }
    socket.on("error", onError);
  });
}

/**
 * Waits `ms` after a TLS handshake for the server's verdict on it: TLS 1.3 completes the client's
 * handshake before the server has checked a client certificate, and a server that refuses it
 * answers with an alert or a close right after. Resolves with that error (or a close), or
 * undefined when `ms` passed quietly. (A session ticket is no sign: Deno reports one even from
 * a server that then refuses.)
 */
export function tlsVerdict(socket: Socket, ms = 250): Promise<unknown> {
  return new Promise((resolve) => {
    const done = (value: unknown) => {
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("close", onClose);
      resolve(value);
    };
    const onError = (error: unknown) => done(error);
    const onClose = () => done(new ConnectionLost("the server closed the TLS session"));
    const timer = setTimeout(() => done(undefined), ms);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}

/**
 * The error a TLS server's alert means, as a user reads it, or undefined when `error` is not one:
 * an alert is the server's refusal (of a missing or untrusted client certificate, say), which
 * another try would only repeat.
 */
export function tlsRefusal(error: unknown, what: string): CliError | undefined {
  const text = reason(error instanceof ConnectionLost && error.cause ? error.cause : error);
  if (!/alert|SSL routines/i.test(text)) return undefined;
  const hint = /certificate[ _]?required|handshake[ _]?failure/i.test(text)
    ? "it requires a client certificate: give --client-cert and --client-key"
    : /unknown[ _]?ca|bad[ _]?certificate|certificate[ _]?unknown|unsupported[ _]?certificate|expired/i
        .test(text)
    ? "it does not accept this client certificate (--client-cert)"
    : "check its TLS settings and --ca-file, --client-cert, --client-key";
  return new CliError("network", `${what} refused the TLS session (${text}); ${hint}`, {
    cause: error,
  });
}

/**
 * Writes frames into a socket: gathered into writes of about 64 KiB, each awaited when the socket
 * is full (its buffer drains first). A socket that fails or closes makes every later call throw
 * `ConnectionLost`.
 */
export class SocketWriter {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #lost: ConnectionLost | undefined;
  #error: unknown;
  /** The server ended its side before this writer ended (it may not have read everything). */
  #peerEnded = false;
  readonly #whenLost: Promise<void>;

  constructor(readonly socket: Socket, what = "the syslog server") {
    let wake!: () => void;
    this.#whenLost = new Promise((resolve) => wake = resolve);
    const lose = (error?: unknown) => {
      this.#lost ??= new ConnectionLost(
        `the connection to ${what} was lost${error ? `: ${reason(error)}` : ""}`,
        { cause: error },
      );
      wake();
    };
    socket.on("error", (error) => {
      this.#error ??= error;
      lose(error);
    });
    socket.on("close", () => lose());
    socket.on("end", () => this.#peerEnded = true);
  }

  /** The socket's first error, if it had one. */
  get error(): unknown {
    return this.#error;
  }

  /** Whether the connection is gone. */
  get lost(): boolean {
    return this.#lost !== undefined;
  }

  /** Adds `frame` (kept: the caller must not reuse it); writes once enough is gathered. */
  async write(frame: Uint8Array): Promise<void> {
    if (this.#lost) throw this.#lost;
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    if (this.#pendingBytes >= WRITE_BYTES) await this.flush(false);
  }

  /**
   * Writes what is gathered; waits while the socket is full, and with `settled` until it took
   * every byte into the kernel (the most a plain stream can say).
   */
  async flush(settled = true): Promise<void> {
    if (this.#lost) throw this.#lost;
    if (this.#pendingBytes > 0) {
      const chunk = this.#pending.length === 1
        ? this.#pending[0]
        : Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
      const written = new Promise<void>((resolve) => this.socket.write(chunk, () => resolve()));
      if (settled) await this.#unlessStalled(written);
      else if (this.socket.writableLength > SOCKET_BUFFER_BYTES) {
        const drained = new Promise<void>((resolve) => this.socket.once("drain", resolve));
        await this.#unlessStalled(drained);
      }
    }
    if (this.#lost) throw this.#lost;
  }

  /**
   * Waits for `progress`, or for the connection to be lost; a server that accepts the connection
   * but stops reading would hold the run for ever, so after `STALL_MS` without progress the
   * connection is dropped (and the caller reconnects and sends again what was not confirmed).
   */
  async #unlessStalled(progress: Promise<void>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.socket.destroy(new Error(`the server took no bytes for ${STALL_MS / 1000} s`));
        resolve();
      }, STALL_MS);
    });
    try {
      await Promise.race([progress, this.#whenLost, stalled]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends the stream and waits (bounded) for the server to close its side: true when it did so
   * cleanly, which it does only once it read every byte before the end.
   */
  async end(timeoutMs = 10_000): Promise<boolean> {
    if (this.#lost || this.#peerEnded) {
      this.socket.destroy();
      return false;
    }
    const clean = await new Promise<boolean>((resolve) => {
      let ended = false;
      this.socket.once("end", () => ended = true);
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve(ended && this.#error === undefined);
      });
      this.socket.end();
    });
    this.socket.destroy();
    return clean;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
