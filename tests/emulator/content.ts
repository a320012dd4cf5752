/**
 * The bytes of one log file, produced on demand for any byte range. A generated file is a block of
 * JSON lines (at most ~1 MiB) repeated, then a whole-line prefix of that block as a tail; each
 * repetition rewrites the last digits of every `event_id` so ids stay unique. Any range is thus
 * produced in constant memory, and a 2 GiB file never exists anywhere.
 *
 * @example
 * const c = Content.generated({ seed: 0, id: "eclf_1", eventType: "AUTH_LOG", principal: "ws-1",
 *   endMicros: 0, target: 4096, crlf: false, trailingNewline: true });
 * for (const chunk of c.slice(100, 200)) console.log(chunk.length);
 */
import { createHash } from "node:crypto";
import { Rng } from "./_random.ts";
import { EVENT_ID_TAIL_OFFSET, eventLine } from "./events.ts";

/** Upper bound of the repeated block; a file up to this size is exactly one block. */
export const BLOCK_TARGET = 1024 * 1024;
/** Default chunk size when streaming. */
export const CHUNK_SIZE = 64 * 1024;
/** Lines span at most this long before the file's end time. */
const FILE_SPAN_MICROS = 3_600_000_000;

export interface GeneratedParams {
  seed: number;
  id: string;
  eventType: string;
  principal: string;
  endMicros: number;
  /** Approximate size in bytes; the real size is whole lines, at or just above it. */
  target: number;
  crlf: boolean;
  trailingNewline: boolean;
}

interface Block {
  bytes: Uint8Array;
  /** Offset just past each line's newline, ascending. */
  lineEnds: number[];
  /** Offset of each line's 8 rewritable `event_id` digits, ascending. */
  patchAt: Uint32Array;
  idMasks: Uint32Array;
}

/** Recently used blocks: regenerating one costs milliseconds, keeping all costs memory. */
const blockCache = new Map<string, Block>();
const BLOCK_CACHE_ENTRIES = 12;

function buildBlock(p: GeneratedParams, blockTarget: number): Block {
  const key = JSON.stringify([
    p.seed,
    p.id,
    p.eventType,
    p.principal,
    p.endMicros,
    p.crlf,
    blockTarget,
  ]);
  const cached = blockCache.get(key);
  if (cached) {
    blockCache.delete(key);
    blockCache.set(key, cached);
    return cached;
  }
  const rng = new Rng(`content:${p.seed}:${p.id}`);
  const encoder = new TextEncoder();
  const newline = p.crlf ? "\r\n" : "\n";
  // Spread the lines over the hour before the end time, roughly evenly (~750 bytes a line).
  const expectedLines = Math.round(blockTarget / 750) + 1;
  const meanGap = FILE_SPAN_MICROS / (expectedLines + 1);
  let t = p.endMicros - FILE_SPAN_MICROS;
  const lines: Uint8Array[] = [];
  const lineEnds: number[] = [];
  const patchAt: number[] = [];
  const idMasks: number[] = [];
  let length = 0;
  while (length < blockTarget) {
    t = Math.min(p.endMicros - 1, t + Math.floor(rng.next() * 2 * meanGap));
    const { json, idMask } = eventLine(p.eventType, p.principal, rng, t);
    const bytes = encoder.encode(json + newline);
    patchAt.push(length + EVENT_ID_TAIL_OFFSET);
    idMasks.push(idMask);
    lines.push(bytes);
    length += bytes.length;
    lineEnds.push(length);
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const line of lines) {
    bytes.set(line, at);
    at += line.length;
  }
  const block = {
    bytes,
    lineEnds,
    patchAt: Uint32Array.from(patchAt),
    idMasks: Uint32Array.from(idMasks),
  };
  blockCache.set(key, block);
  if (blockCache.size > BLOCK_CACHE_ENTRIES) blockCache.delete(blockCache.keys().next().value!);
  return block;
}

/** First index whose value is >= x in an ascending array. */
function lowerBound(values: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");

/** Rewrites the id digits of repetition `rep` that fall inside `chunk` (block bytes [off, off+len)). */
function patchIds(block: Block, rep: number, off: number, chunk: Uint8Array): void {
  const end = off + chunk.length;
  const mix = Math.imul(rep, 0x9e3779b1);
  for (let i = lowerBound(block.patchAt, off - 7); i < block.patchAt.length; i++) {
    const p = block.patchAt[i];
    if (p >= end) break;
    const value = (block.idMasks[i] ^ mix) >>> 0;
    for (let k = 0; k < 8; k++) {
      const pos = p + k;
      if (pos >= off && pos < end) chunk[pos - off] = HEX_DIGITS[(value >>> (28 - 4 * k)) & 15];
    }
  }
}

/** The served bytes of one file, as ranges on demand. */
export class Content {
  /** Exact number of bytes served. */
  readonly size: number;
  #explicit: Uint8Array | null = null;
  #params: GeneratedParams | null = null;
  #blockTarget = 0;
  #blockLength = 0;
  #sha: Promise<string> | null = null;

  private constructor(size: number) {
    this.size = size;
  }

  /** Content given verbatim. */
  static explicit(content: Uint8Array | string): Content {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content.slice();
    const c = new Content(bytes.length);
    c.#explicit = bytes;
    return c;
  }

  /** Deterministic JSON lines of about `params.target` bytes. */
  static generated(params: GeneratedParams): Content {
    const target = Math.max(0, Math.floor(params.target));
    if (target === 0) return Content.explicit(new Uint8Array(0));
    const blockTarget = Math.min(target, BLOCK_TARGET);
    const block = buildBlock(params, blockTarget);
    const blockLength = block.bytes.length;
    const reps = Math.floor(target / blockLength);
    const remainder = target - reps * blockLength;
    const tail = remainder === 0 ? 0 : block.lineEnds[lowerBound(block.lineEnds, remainder)];
    const raw = reps * blockLength + tail;
    const size = params.trailingNewline ? raw : raw - (params.crlf ? 2 : 1);
    const c = new Content(size);
    c.#params = params;
    c.#blockTarget = blockTarget;
    c.#blockLength = blockLength;
    return c;
  }

  /** Chunks covering bytes [start, end); each chunk is a fresh copy the caller may keep. */
  *slice(start = 0, end = this.size, chunkSize = CHUNK_SIZE): Generator<Uint8Array> {
    start = Math.max(0, start);
    end = Math.min(this.size, end);
    if (this.#explicit) {
      for (let pos = start; pos < end; pos += chunkSize) {
        yield this.#explicit.slice(pos, Math.min(end, pos + chunkSize));
      }
      return;
    }
    let pos = start;
    const block = buildBlock(this.#params!, this.#blockTarget);
    while (pos < end) {
      const rep = Math.floor(pos / this.#blockLength);
      const off = pos - rep * this.#blockLength;
      const n = Math.min(end - pos, this.#blockLength - off, chunkSize);
      const chunk = block.bytes.slice(off, off + n);
      if (rep > 0) patchIds(block, rep, off, chunk);
      yield chunk;
      pos += n;
    }
  }

  /** The whole file; meant for tests on small files. */
  bytes(): Uint8Array {
    if (this.size > 512 * 1024 * 1024) throw new RangeError("file too large to materialize");
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const chunk of this.slice(0, this.size, BLOCK_TARGET)) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /**
   * Hex SHA-256 of the served bytes, computed once by streaming (a few seconds per GiB) and
   * yielding to the event loop. `signal` (the emulator closing) abandons the computation.
   */
  sha256(signal?: AbortSignal): Promise<string> {
    this.#sha ??= this.#hash(signal).catch((error) => {
      this.#sha = null;
      throw error;
    });
    return this.#sha;
  }

  async #hash(signal?: AbortSignal): Promise<string> {
    const hash = createHash("sha256");
    let sinceYield = 0;
    for (const chunk of this.slice(0, this.size, BLOCK_TARGET)) {
      hash.update(chunk);
      sinceYield += chunk.length;
      if (sinceYield >= 16 * BLOCK_TARGET) {
        sinceYield = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
        signal?.throwIfAborted();
      }
    }
    return hash.digest("hex");
  }
}
