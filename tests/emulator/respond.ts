/**
 * Writing one response body with backpressure, and the byte-level faults that can happen on the
 * way: a reset after N bytes, a stall after N bytes, flipped bytes. Stops as soon as the client
 * goes away or the emulator closes, so nothing is generated for nobody.
 *
 * @example
 * await sendBody(res, 200, { "content-type": "text/plain" }, [bytes], { closing });
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export interface Shaping {
  /** Aborted when the emulator closes. */
  closing: AbortSignal;
  /** Reset the connection after this many body bytes. */
  cutAfterBytes?: number;
  /** Wait this long after `cutAfterBytes` bytes before the reset. */
  pauseBeforeCutMs?: number;
  /** Send nothing more after this many body bytes, until the client goes away. */
  stallAfterBytes?: number;
  /** Flip a byte at this body offset (and every 4 KiB after it). */
  corruptFrom?: number;
  /** Counts body bytes handed to the socket. */
  onBytes?: (n: number) => void;
  /** The link the body is sent over, when its speed is capped. */
  link?: PacedLink;
}

/**
 * A link of fixed capacity shared by every response sent over it, like a site's uplink: each
 * chunk takes its turn, so one download gets the whole rate and four share it. Only waits of a
 * few milliseconds are slept (timers are too coarse for each chunk), so the rate holds on average.
 */
export class PacedLink {
  private freeAt = 0;
  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`bad link rate ${bytesPerSecond}`);
  }

  /** Reserves the link for `bytes`; resolves when they may go (false: the emulator is closing). */
  take(bytes: number, closing: AbortSignal): Promise<boolean> {
    const now = performance.now();
    this.freeAt = Math.max(now, this.freeAt) + (bytes * 1000) / this.bytesPerSecond;
    const ahead = this.freeAt - now;
    return ahead > 4 ? sleep(ahead, closing) : Promise.resolve(!closing.aborted);
  }
}

/** Resolves when the response is closed (client gone, socket destroyed) or the emulator closes. */
export function whenGone(res: ServerResponse, closing: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (isGone(res, closing)) return resolve();
    const done = () => {
      res.off("close", done);
      closing.removeEventListener("abort", done);
      resolve();
    };
    res.on("close", done);
    closing.addEventListener("abort", done);
  });
}

function isGone(res: ServerResponse, closing: AbortSignal): boolean {
  return closing.aborted || res.destroyed || (res.socket?.destroyed ?? false);
}

/** Sleeps, waking early (false) when the emulator closes. */
export function sleep(ms: number, closing: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (closing.aborted) return resolve(false);
    const timer = setTimeout(() => {
      closing.removeEventListener("abort", wake);
      resolve(true);
    }, ms);
    const wake = () => {
      clearTimeout(timer);
      resolve(false);
    };
    closing.addEventListener("abort", wake, { once: true });
  });
}

/** Writes a chunk; resolves true once the socket can take more, false if the client went away. */
function write(res: ServerResponse, chunk: Uint8Array, closing: AbortSignal): Promise<boolean> {
  if (isGone(res, closing)) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const settle = () => {
      res.off("drain", settle);
      res.off("close", settle);
      closing.removeEventListener("abort", settle);
      resolve(!isGone(res, closing));
    };
    res.on("drain", settle);
    res.on("close", settle);
    closing.addEventListener("abort", settle);
  });
}

/** Writes a chunk and waits until it is flushed to the socket (or the client is gone). */
function writeFlushed(res: ServerResponse, chunk: Uint8Array, closing: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("close", done);
      closing.removeEventListener("abort", done);
      resolve();
    };
    res.on("close", done);
    closing.addEventListener("abort", done);
    res.write(chunk, done);
  });
}

function flip(chunk: Uint8Array, chunkStart: number, from: number): void {
  for (let pos = Math.max(from, chunkStart); pos < chunkStart + chunk.length; pos += 4096) {
    chunk[pos - chunkStart] ^= 0x55;
  }
}

/**
 * Sends status, headers and the body chunks, shaped by faults. `content-length` must be in
 * `headers` when a cut or stall should look like a truncated body.
 */
export async function sendBody(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: Iterable<Uint8Array>,
  shaping: Shaping,
): Promise<void> {
  const { closing } = shaping;
  if (isGone(res, closing)) return;
  res.writeHead(status, headers);
  const limit = shaping.cutAfterBytes ?? shaping.stallAfterBytes;
  let sent = 0;
  for (const chunk of limit === undefined ? body : truncated(body, limit)) {
    if (shaping.link && !(await shaping.link.take(chunk.length, closing))) return;
    if (shaping.corruptFrom !== undefined) flip(chunk, sent, shaping.corruptFrom);
    const ok = limit === undefined
      ? await write(res, chunk, closing)
      : (await writeFlushed(res, chunk, closing), !isGone(res, closing));
    if (!ok) return;
    sent += chunk.length;
    shaping.onBytes?.(chunk.length);
  }
  if (shaping.cutAfterBytes !== undefined) {
    if (sent === 0) await writeFlushed(res, new Uint8Array(0), closing);
    if (shaping.pauseBeforeCutMs) await pauseUnlessGone(res, shaping.pauseBeforeCutMs, closing);
    res.socket?.destroy();
    return;
  }
  if (shaping.stallAfterBytes !== undefined) {
    if (sent === 0) res.flushHeaders();
    await whenGone(res, closing);
    return;
  }
  if (!isGone(res, closing)) res.end();
}

/** Waits `ms`, or less when the client goes away or the emulator closes. */
function pauseUnlessGone(res: ServerResponse, ms: number, closing: AbortSignal): Promise<void> {
  const stop = new AbortController();
  const gone = whenGone(res, closing).then(() => stop.abort());
  return Promise.race([sleep(ms, AbortSignal.any([closing, stop.signal])), gone]).then(() => {
    stop.abort();
  });
}

function* truncated(body: Iterable<Uint8Array>, limit: number): Generator<Uint8Array> {
  let left = limit;
  for (const chunk of body) {
    if (left <= 0) return;
    yield chunk.length <= left ? chunk : chunk.subarray(0, left);
    left -= chunk.length;
  }
}

/** The request's path and query, parsed. */
export function parseTarget(req: IncomingMessage): URL {
  return new URL(req.url ?? "/", "http://emulator.invalid");
}
