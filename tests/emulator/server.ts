/**
 * Starts the emulator: an API listener and a storage listener on loopback (two origins), records
 * every request, adds latency, and on `close()` ends every socket so nothing hangs.
 *
 * @example
 * const emu = await startEmulator({ files: generateDataset({ count: 3, start: "2026-07-09T10:00:00Z" }) });
 * try { await fetch(`${emu.apiBase}/workspaces/${"ws-0f0e0d0c-demo"}/logs?...`); } finally { await emu.close(); }
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { type DownloadLimit, DownloadLimiter, KeyGrants, type ScopedKey } from "./access.ts";
import { handleApi } from "./api.ts";
import {
  DEFAULT_PRINCIPALS,
  type FileSpec,
  type NormalizedFileSpec,
  normalizeSpec,
  type StoredFile,
} from "./dataset.ts";
import { type Fault, FaultQueue } from "./faults.ts";
import { PacedLink, sleep } from "./respond.ts";
import { UrlSigner } from "./signing.ts";
import { handleStorage } from "./storage.ts";

export interface EmulatorOptions {
  /** Accepted Bearer key with every scope, default "sk-emulator-test-key-4f9c2a7e1b8d3c6f". */
  key?: string;
  /**
   * More accepted keys, each authorized for some event types only: a listing or download of
   * another type answers 403 naming the missing `chatgpt.enterprise.compliance_logs_platform.
   * <type>.read` scope. Default none.
   */
  scopedKeys?: ScopedKey[];
  /** Default ["ws-0f0e0d0c-demo", "org-demoorg123"]. */
  principals?: string[];
  /** The dataset. */
  files?: FileSpec[];
  /** Added before every response (API and storage). */
  latencyMs?: number;
  /** Default 5 minutes (the reference's); expired signed URLs answer 403 "Request has expired". */
  signedUrlTtlMs?: number;
  /**
   * Files whose end_time is older than this many days are gone: not listed, and their downloads
   * answer 404 "The log file was not found or is no longer available". The API keeps 30
   * (`REFERENCE_RETENTION_DAYS`); default none, because test datasets have fixed past dates.
   */
  retentionDays?: number;
  /**
   * The download endpoint's limit per key over a rolling window (429 with `Retry-After` in
   * seconds beyond it). The API's is 50 a minute (`REFERENCE_DOWNLOAD_LIMIT`); scale it down
   * for fast tests, e.g. `{ requests: 10, windowMs: 2000 }`. Default none.
   */
  downloadLimit?: DownloadLimit;
  /** List filters end_time >= after instead of >, so boundary files are returned again. */
  inclusiveAfter?: boolean;
  /** How last_end_time is derived (always RFC 3339 with microseconds). Default "lastItem". */
  lastEndTimeMode?: "lastItem" | "pageMaxPlusMicros";
  /** Port of the API listener; default any free port. */
  apiPort?: number;
  /**
   * Caps the storage listener's bandwidth, shared by all downloads, like a real link (default
   * none: loopback speed). Used by the benchmark to compare tools on a wire slower than their CPU.
   */
  storageBytesPerSecond?: number;
  /** Port of the storage listener; default any free port. */
  storagePort?: number;
}

export interface RecordedRequest {
  server: "api" | "storage";
  method: string;
  /** The pathname. */
  path: string;
  query: Record<string, string>;
  /** Lower-cased names, full values. */
  headers: Record<string, string>;
  /** Epoch milliseconds of arrival. */
  time: number;
  /** The status answered, once the response has started (undefined before, or if none was). */
  status?: number;
}

export interface Emulator {
  /** "http://127.0.0.1:<port>/v1/compliance" */
  apiBase: string;
  /** "http://127.0.0.1:<other port>", a different origin. */
  storageOrigin: string;
  /** The key with every scope. */
  key: string;
  /** Every request on both listeners, in order of arrival, with times and statuses. */
  requests: RecordedRequest[];
  /** Normalized specs (ids, principals, exact sizes filled in), in insertion order. */
  files: NormalizedFileSpec[];
  addFiles(specs: FileSpec[]): void;
  /** The exact bytes served (for tests; fine for small files). */
  contentOf(id: string): Promise<Uint8Array>;
  sha256Of(id: string): Promise<string>;
  /** Queues a fault; throws on an invalid one. */
  inject(fault: Fault): void;
  clearFaults(): void;
  /** Faults still queued (not used up). */
  faultsRemaining(): number;
  /** How many times faults have been applied. */
  faultsUsed(): number;
  /** Body bytes the storage listener has handed to sockets so far. */
  storageBytesSent(): number;
  /** How many 429s the download limit has answered (not counting injected faults). */
  rateLimited(): number;
  /** The API's download-endpoint requests (`.../logs/{id}`), optionally for one file id. */
  downloadRequests(id?: string): RecordedRequest[];
  /** Closes both listeners and destroys open sockets. */
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** The API's download endpoint, `.../logs/{id}`. */
const DOWNLOAD_PATH = /^\/v1\/compliance\/(?:workspaces|organizations)\/[^/]+\/logs\/([^/]+)\/?$/;

/** What the API's reference documents. */
export const REFERENCE_RETENTION_DAYS = 30;

/** A port the emulator could not listen on, naming which listener wanted it. */
export class PortInUseError extends Error {
  constructor(readonly listener: "API" | "storage", readonly port: number, cause: unknown) {
    super(`the ${listener} listener cannot use port ${port}: it is already in use`, { cause });
    this.name = "PortInUseError";
  }
}

interface Listener {
  server: Server;
  origin: string;
  close(): Promise<void>;
}

function headerRecord(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) {
      out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
    }
  }
  return out;
}

function queryRecord(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of url.searchParams) if (!(name in out)) out[name] = value;
  return out;
}

/** A loopback HTTP server whose sockets are tracked so `close()` can end keep-alive ones. */
function listen(name: "API" | "storage", port: number, handler: Handler): Promise<Listener> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    handler(req, res).catch(() => {
      if (res.destroyed || res.socket?.destroyed) return;
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("emulator error");
      } else {
        res.socket?.destroy();
      }
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      reject(error.code === "EADDRINUSE" ? new PortInUseError(name, port, error) : error);
    });
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const actual = typeof address === "object" && address ? address.port : port;
      resolve({
        server,
        origin: `http://127.0.0.1:${actual}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
            sockets.clear();
          }),
      });
    });
  });
}

/**
 * Starts an emulator of the Compliance Logs Platform API on two loopback ports.
 *
 * @example
 * const emu = await startEmulator({ files: [{ eventType: "AUTH_LOG", endTime: "2026-07-09T13:00:00Z" }] });
 * try {
 *   const res = await fetch(`${emu.apiBase}/workspaces/ws-0f0e0d0c-demo/logs?limit=10&event_type=AUTH_LOG&after=2026-07-01T00:00:00Z`,
 *     { headers: { authorization: `Bearer ${emu.key}` } });
 * } finally {
 *   await emu.close();
 * }
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const key = options.key ?? "sk-emulator-test-key-4f9c2a7e1b8d3c6f";
  const grants = new KeyGrants(key, options.scopedKeys);
  const limiter = options.downloadLimit && new DownloadLimiter(options.downloadLimit);
  if (options.retentionDays !== undefined && !(options.retentionDays > 0)) {
    throw new RangeError(`retentionDays must be > 0, got ${options.retentionDays}`);
  }
  const retentionMs = options.retentionDays === undefined
    ? undefined
    : options.retentionDays * 86_400_000;
  const principals = options.principals ?? DEFAULT_PRINCIPALS;
  if (!principals.length) throw new TypeError("at least one principal is needed");
  const stored = new Map<string, StoredFile>();
  const specs: NormalizedFileSpec[] = [];
  const requests: RecordedRequest[] = [];
  const faults = new FaultQueue();
  const signer = new UrlSigner(options.signedUrlTtlMs ?? 5 * 60_000);
  const closing = new AbortController();
  const latency = options.latencyMs ?? 0;
  const link = options.storageBytesPerSecond === undefined
    ? undefined
    : new PacedLink(options.storageBytesPerSecond);
  let storageBytes = 0;

  const addFiles = (list: FileSpec[]) => {
    // Normalize all first so one bad spec adds none.
    const fresh = new Map<string, StoredFile>();
    for (const spec of list) {
      const file = normalizeSpec(spec, principals[0], (id) => stored.has(id) || fresh.has(id));
      fresh.set(file.spec.id, file);
    }
    for (const [id, file] of fresh) {
      stored.set(id, file);
      specs.push(file.spec);
    }
  };
  addFiles(options.files ?? []);

  const record = (server: "api" | "storage", req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://emulator.invalid");
    const entry: RecordedRequest = {
      server,
      method: req.method ?? "GET",
      path: url.pathname,
      query: queryRecord(url),
      headers: headerRecord(req),
      time: Date.now(),
    };
    requests.push(entry);
    const noteStatus = () => {
      if (res.headersSent) entry.status = res.statusCode;
    };
    res.once("finish", noteStatus);
    res.once("close", noteStatus);
  };
  const withLatency = (server: "api" | "storage", handle: Handler): Handler => async (req, res) => {
    record(server, req, res);
    if (latency > 0 && !(await sleep(latency, closing.signal))) return;
    await handle(req, res);
  };

  const storage = await listen(
    "storage",
    options.storagePort ?? 0,
    withLatency("storage", (req, res) =>
      handleStorage(
        {
          files: stored,
          faults,
          signer,
          closing: closing.signal,
          onBytes: (n) => (storageBytes += n),
          link,
        },
        req,
        res,
      )),
  );
  let api: Listener;
  try {
    api = await listen(
      "API",
      options.apiPort ?? 0,
      withLatency("api", (req, res) =>
        handleApi(
          {
            grants,
            limiter,
            retentionMs,
            principals,
            files: stored,
            faults,
            signer,
            storageOrigin: storage.origin,
            closing: closing.signal,
            page: {
              inclusiveAfter: options.inclusiveAfter ?? false,
              lastEndTimeMode: options.lastEndTimeMode ?? "lastItem",
            },
          },
          req,
          res,
        )),
    );
  } catch (error) {
    await storage.close();
    throw error;
  }

  const fileOf = (id: string) => {
    const file = stored.get(id);
    if (!file) throw new Error(`no file ${id} in the emulator`);
    return file;
  };
  let closed: Promise<void> | null = null;

  return {
    apiBase: `${api.origin}/v1/compliance`,
    storageOrigin: storage.origin,
    key,
    requests,
    files: specs,
    addFiles,
    contentOf: (id) => Promise.resolve().then(() => fileOf(id).content.bytes()),
    sha256Of: (id) => Promise.resolve().then(() => fileOf(id).content.sha256()),
    inject: (fault) => faults.push(fault),
    clearFaults: () => faults.clear(),
    faultsRemaining: () => faults.remaining(),
    faultsUsed: () => faults.used(),
    storageBytesSent: () => storageBytes,
    rateLimited: () => limiter?.refused() ?? 0,
    downloadRequests: (id) =>
      requests.filter((r) => {
        if (r.server !== "api") return false;
        const m = DOWNLOAD_PATH.exec(r.path);
        return m !== null && (id === undefined || decodeURIComponent(m[1]) === id);
      }),
    close() {
      closed ??= (async () => {
        closing.abort();
        await Promise.all([api.close(), storage.close()]);
      })();
      return closed;
    },
  };
}
