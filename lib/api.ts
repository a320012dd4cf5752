/**
 * The Compliance API client: lists log files page by page and downloads them. It owns its HTTP
 * concerns: the retry policy, the abort signal, which origin gets the key (redirects are followed
 * by hand so the key never reaches the storage host that serves the signed URLs), and which
 * answers mean a signed URL expired.
 *
 * @example
 * const client = new ComplianceClient({ apiBase, key, principal, scope, policy, timeoutMs, onRetry });
 * const page = await client.listPage({ eventType: "AUTH_LOG", limit: 100, after });
 * const downloaded = await client.download(page.data[0], spool);
 */
import { type Downloaded, downloadFile, type FileSource, type SpoolWriter } from "./download.ts";
import { CliError, redact, TransientError } from "./errors.ts";
import { MAX_ERROR_BODY_BYTES, type Opened, openRequest, readText } from "./http.ts";
import {
  parseRetryAfter,
  RETRYABLE_STATUSES,
  type RetryNotice,
  type RetryPolicy,
  withRetries,
} from "./retry.ts";
import { toMicros } from "./time.ts";
import { followable } from "./urls.ts";

export interface LogFile {
  id: string;
  event_type: string;
  end_time: string;
  file_name?: string;
  file_size?: number;
  file_sha256?: string;
}

export interface ListPage {
  data: LogFile[];
  has_more: boolean;
  last_end_time: string | null;
}

export interface ListQuery {
  eventType: string;
  limit: number;
  after: string;
  before?: string;
}

export interface ClientOptions {
  apiBase: URL;
  key: string;
  principal: string;
  scope: "workspaces" | "organizations";
  policy: RetryPolicy;
  timeoutMs: number;
  onRetry: (notice: RetryNotice) => void;
  signal?: AbortSignal;
  /** Whole downloads tried before a hash or size mismatch is final (default 3). */
  integrityAttempts?: number;
}

/** What one download reports besides the client's own retries. */
export interface DownloadHooks {
  /** Retries of this download (default: the client's `onRetry`). */
  onRetry?: (notice: RetryNotice) => void;
  /** A detail for `-v` output, e.g. which form of an encoded file the listing described. */
  onNote?: (text: string) => void;
}

/** Ids become URL segments and file names: letters, digits, `_`, `-` and inner dots only. */
const SAFE_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;
const MAX_REDIRECTS = 5;

/** Signed-URL answers that mean "this URL is no longer good": ask the API for a new one. */
const EXPIRED_URL_STATUSES = new Set([403, 404, 410]);

/**
 * `HTTP error 401 while listing logs (...)` with the body, pretty-printed when it is JSON; a
 * `TransientError` for statuses worth another try, with the server's `Retry-After`.
 *
 * @example
 * if (!opened.response.ok) throw await httpError(opened, "listing logs", 30_000);
 */
export async function httpError(opened: Opened, what: string, idleMs: number): Promise<CliError> {
  const { status } = opened.response;
  let body = "";
  try {
    // Only the head of an error body is read (and within the answer deadline); redacted before
    // any cut, so a key the server echoes cannot be cut into a prefix that redaction misses.
    const head = await readText(opened, {
      idleMs,
      what,
      maxBytes: MAX_ERROR_BODY_BYTES,
      truncate: true,
    });
    body = redact(head).trim();
  } catch {
    // The status says enough; a body that cannot be read adds nothing.
  }
  let detail = body.slice(0, 4000) || undefined;
  try {
    detail = redact(JSON.stringify(JSON.parse(body), null, 2));
  } catch {
    // Not JSON: printed as it came.
  }
  const message = `HTTP error ${status} while ${what}:`;
  const hint = hintFor(status, what);
  if (hint) detail = detail ? `${detail}\n${hint}` : hint;
  if (RETRYABLE_STATUSES.has(status)) {
    const retryAfter = parseRetryAfter(opened.response.headers.get("retry-after"));
    return new TransientError("api", message, retryAfter, { detail });
  }
  return new CliError(status === 401 || status === 403 ? "auth" : "api", message, { detail });
}

/**
 * What the common mistakes behind an API refusal look like, as one `hint:` line: a key that is not
 * a Compliance API key, a principal the key was not issued for, an id of the wrong kind.
 */
function hintFor(status: number, what: string): string | undefined {
  if (status === 401) {
    return "hint: the API did not accept the key; it must be a Compliance API key (a Platform " +
      "admin key or an ordinary API key is not one): check COMPLIANCE_API_KEY or " +
      "COMPLIANCE_API_KEY_FILE";
  }
  if (status === 403) {
    return "hint: the key may not read this principal's logs; check that the workspace or " +
      "organization id is the one the key was issued for, and that its compliance access has " +
      "been granted";
  }
  if (status === 404 && what.startsWith("listing")) {
    return "hint: the API knows no such workspace or organization for this key; a workspace id " +
      "is a UUID, an organization id starts with org-";
  }
  return undefined;
}

export class ComplianceClient {
  /** The client as a download sees it (see `FileSource`). */
  readonly #files: FileSource = {
    resolveDownload: (id) => this.resolveDownload(id),
    openFile: (url, offset, what) => this.openFile(url, offset, what),
    isExpiredUrl: (url, status) => this.isExpiredUrl(url, status),
    httpError: (opened, what) => httpError(opened, what, this.options.timeoutMs),
  };

  constructor(private readonly options: ClientOptions) {}

  /**
   * This client with its requests and waits also ended by `signal`: a run that has failed stops
   * its listing and downloads at once, instead of sitting out a `Retry-After` or a stall first.
   */
  withSignal(signal: AbortSignal): ComplianceClient {
    const outer = this.options.signal;
    return new ComplianceClient({
      ...this.options,
      signal: outer ? AbortSignal.any([outer, signal]) : signal,
    });
  }

  /** `{base}/{scope}/{principal}/logs[/{id}]` */
  logsUrl(id?: string): URL {
    const { apiBase, scope, principal } = this.options;
    const path = `${apiBase.pathname}/${scope}/${encodeURIComponent(principal)}/logs` +
      (id === undefined ? "" : `/${encodeURIComponent(id)}`);
    return new URL(path, apiBase);
  }

  listUrl(query: ListQuery): URL {
    const url = this.logsUrl();
    url.searchParams.set("limit", String(query.limit));
    url.searchParams.set("event_type", query.eventType);
    url.searchParams.set("after", query.after);
    if (query.before !== undefined) url.searchParams.set("before", query.before);
    return url;
  }

  /** Headers for a request to `url`: the key only when it goes to the API's own origin. */
  headersFor(url: URL, extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { "user-agent": "oai-compliance-logs", ...extra };
    if (url.origin === this.options.apiBase.origin) {
      headers.authorization = `Bearer ${this.options.key}`;
    }
    return headers;
  }

  private open(url: URL, what: string, extra?: Record<string, string>): Promise<Opened> {
    return openRequest(url, this.headersFor(url, extra), {
      timeoutMs: this.options.timeoutMs,
      what,
      signal: this.options.signal,
    });
  }

  /** One page of the listing, retried on rate limits, server errors and network failures. */
  listPage(query: ListQuery): Promise<ListPage> {
    const what = `listing logs (after=${query.after}, event_type=${query.eventType}, ` +
      `limit=${query.limit})`;
    const url = this.listUrl(query);
    return withRetries(
      what,
      this.options.policy,
      async () => {
        const opened = await this.open(url, what);
        if (opened.response.status < 200 || opened.response.status > 299) {
          throw await httpError(opened, what, this.options.timeoutMs);
        }
        const text = await readText(opened, {
          idleMs: this.options.timeoutMs,
          what,
          signal: this.options.signal,
        });
        return parseListPage(text, what);
      },
      this.options.onRetry,
      this.options.signal,
    );
  }

  /**
   * Asks the API for file `id` and resolves with where its bytes are: the signed URL the API
   * redirects to (or the API URL itself if it answers with the body). Retried like a listing.
   */
  resolveDownload(id: string): Promise<URL> {
    const what = `downloading log id=${id}`;
    const url = this.logsUrl(id);
    return withRetries(
      what,
      this.options.policy,
      async () => {
        const opened = await this.open(url, what);
        const { status } = opened.response;
        if (status >= 300 && status <= 399 && opened.response.headers.has("location")) {
          opened.abort();
          // A final error, not retried: the same server would send the same place again.
          const location = opened.response.headers.get("location")!;
          return followable(location, url, this.options.apiBase, what);
        }
        if (status >= 200 && status <= 299) {
          opened.abort();
          return url;
        }
        throw await httpError(opened, what, this.options.timeoutMs);
      },
      this.options.onRetry,
      this.options.signal,
    );
  }

  /**
   * Whether HTTP `status` from `url` means a signed storage URL expired. Never an answer of the
   * API's own origin: a 403 or 404 there is final (a wrong key, an unknown file).
   */
  isExpiredUrl(url: URL, status: number): boolean {
    return EXPIRED_URL_STATUSES.has(status) && url.origin !== this.options.apiBase.origin;
  }

  /**
   * Downloads `file` into `spool` with this client's retry policy, timeout and signal; resolves
   * only with complete bytes verified against the listing (see lib/download.ts).
   *
   * @example
   * const { bytes, sha256 } = await client.download(file, spool, { onNote: console.error });
   */
  download(file: LogFile, spool: SpoolWriter, hooks: DownloadHooks = {}): Promise<Downloaded> {
    const { policy, timeoutMs, signal, integrityAttempts } = this.options;
    return downloadFile(this.#files, file, spool, {
      policy,
      timeoutMs,
      signal,
      integrityAttempts,
      onRetry: hooks.onRetry ?? this.options.onRetry,
      onNote: hooks.onNote,
    });
  }

  /**
   * GETs a file's bytes from `url` from byte `offset` on, following further redirects by hand.
   * The caller checks the status: 403/404/410 from storage mean the signed URL expired.
   */
  async openFile(url: URL, offset: number, what: string): Promise<Opened> {
    const range: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    let current = url;
    for (let hop = 0;; hop++) {
      const opened = await this.open(current, what, range);
      const { status, headers } = opened.response;
      if (status < 300 || status > 399 || !headers.has("location") || hop >= MAX_REDIRECTS) {
        return opened;
      }
      opened.abort();
      current = followable(headers.get("location")!, current, this.options.apiBase, what);
    }
  }
}

/**
 * Parses a list answer defensively: the service was seen sending several JSON documents
 * separated by newlines, so the first one that parses is used.
 */
export function parseListPage(text: string, what: string): ListPage {
  const bad = (why: string) =>
    new CliError(
      "api",
      `unexpected answer while ${what}: ${why}; the API may have changed, report this with --verbose output`,
    );
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const first = text.split(/\r?\n/).find((line) => line.trim() !== "");
    try {
      doc = JSON.parse(first ?? "");
    } catch {
      throw bad("the body is not JSON");
    }
  }
  if (typeof doc !== "object" || doc === null || !Array.isArray((doc as ListPage).data)) {
    throw bad("no 'data' array");
  }
  const page = doc as Record<string, unknown>;
  const hasMore = page.has_more ?? false;
  if (typeof hasMore !== "boolean") throw bad("'has_more' is not a boolean");
  const last = page.last_end_time ?? null;
  if (last !== null && (typeof last !== "string" || toMicros(last) === undefined)) {
    throw bad(`'last_end_time' is not an RFC 3339 time: ${JSON.stringify(last)}`);
  }
  // Stopping here would look like the end of the logs while files are still missing.
  if (hasMore && last === null) throw bad("'has_more' is true but 'last_end_time' is null");
  const data = (page.data as unknown[]).map((item, index) => parseLogFile(item, index, bad));
  return { data, has_more: hasMore, last_end_time: last };
}

function parseLogFile(item: unknown, index: number, bad: (why: string) => CliError): LogFile {
  const f = item as Record<string, unknown>;
  if (typeof f !== "object" || f === null) throw bad(`data[${index}] is not an object`);
  if (typeof f.id !== "string" || !SAFE_ID.test(f.id)) {
    throw bad(`data[${index}].id ${JSON.stringify(f.id)} is not a safe file id`);
  }
  if (typeof f.end_time !== "string" || toMicros(f.end_time) === undefined) {
    throw bad(`data[${index}].end_time of ${f.id} is not an RFC 3339 time`);
  }
  const size = f.file_size ?? undefined;
  if (size !== undefined && (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)) {
    throw bad(`data[${index}].file_size of ${f.id} is not a byte count`);
  }
  const sha = f.file_sha256 ?? undefined;
  if (sha !== undefined && (typeof sha !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha))) {
    throw bad(`data[${index}].file_sha256 of ${f.id} is not a SHA-256 hex digest`);
  }
  return {
    id: f.id,
    event_type: typeof f.event_type === "string" ? f.event_type : "",
    end_time: f.end_time,
    file_name: typeof f.file_name === "string" ? f.file_name : undefined,
    file_size: size as number | undefined,
    file_sha256: (sha as string | undefined)?.toLowerCase(),
  };
}
