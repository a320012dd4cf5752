/**
 * Hostile response bodies for black-box tests, served from loopback only: a body trickled a byte
 * at a time, a gzip bomb streamed without ever being held in memory, a fixed answer. Each server
 * answers every request with the same handler and records whether clients went away early.
 *
 * @example
 * const server = await startHostile((req, res) => trickle(res, 200, '{"data":[]}', 100));
 * try { await runCli([...], { env: { COMPLIANCE_API_BASE: server.apiBase } }); } finally { await server.close(); }
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { constants, crc32, deflateRawSync } from "node:zlib";

export interface HostileServer {
  /** e.g. "http://127.0.0.1:40123/v1/compliance", to pass as COMPLIANCE_API_BASE. */
  apiBase: string;
  /** Requests seen so far. */
  requests: number;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/** Starts a loopback server answering every request with `handler`. */
export function startHostile(handler: Handler): Promise<HostileServer> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    state.requests++;
    Promise.resolve(handler(req, res)).catch(() => res.destroy());
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const state: HostileServer = {
    apiBase: "",
    requests: 0,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        for (const socket of sockets) socket.destroy();
      }),
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      state.apiBase = `http://127.0.0.1:${port}/v1/compliance`;
      resolve(state);
    });
  });
}

/** Whether the client has gone away (then a hostile body stops being sent). */
function gone(res: ServerResponse): boolean {
  return res.destroyed || (res.socket?.destroyed ?? true);
}

/** Resolves once `chunk` is written, or at once when the client is gone; false if gone. */
function send(res: ServerResponse, chunk: Uint8Array | string): Promise<boolean> {
  if (gone(res)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = () => {
      res.off("close", done);
      resolve(!gone(res));
    };
    res.on("close", done);
    res.write(chunk, done);
  });
}

/**
 * Answers `status` with `body`, one byte every `everyMs`: each byte resets an idle timeout, so
 * only an overall deadline ends it. `content-length` is the whole body's, as a real server's.
 */
export async function trickle(
  res: ServerResponse,
  status: number,
  body: string,
  everyMs: number,
): Promise<void> {
  const bytes = new TextEncoder().encode(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(bytes.length),
  });
  res.flushHeaders();
  for (const byte of bytes) {
    if (!(await send(res, new Uint8Array([byte])))) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  res.end();
}

const MiB = 1024 * 1024;

/**
 * A gzip member inflating to `mebibytes` MiB of zeros, built from one compressed MiB repeated
 * (full flushes make each repeat independent, so they may be concatenated): ~1 KiB per MiB, and
 * generated in milliseconds. The trailer's CRC and size are right, so it is a valid gzip body.
 */
export function gzipBomb(mebibytes: number): { parts: Uint8Array[]; inflated: number } {
  const zeros = new Uint8Array(MiB);
  const block = new Uint8Array(
    deflateRawSync(zeros, { level: 9, finishFlush: constants.Z_FULL_FLUSH }),
  );
  let crc = 0;
  for (let i = 0; i < mebibytes; i++) crc = crc32(zeros, crc);
  const trailer = new Uint8Array(8);
  const view = new DataView(trailer.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, (mebibytes * MiB) >>> 0, true);
  const header = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  const final = new Uint8Array([0x03, 0x00]); // An empty final block with fixed Huffman codes.
  const parts = [header, ...Array.from({ length: mebibytes }, () => block), final, trailer];
  return { parts, inflated: mebibytes * MiB };
}

/** Sends `parts` as a gzip-encoded 200 JSON answer, stopping as soon as the client goes away. */
export async function sendGzip(res: ServerResponse, parts: Uint8Array[]): Promise<void> {
  res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
  for (const part of parts) {
    if (!(await send(res, part))) return;
  }
  res.end();
}

/** Answers `status` with `body` at once. */
export function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(body);
}
