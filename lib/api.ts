/**
 * The Compliance API client: lists log files page by page and downloads them. It owns its HTTP
 * concerns: the retry policy, the abort signal, which origin gets the key (redirects are followed
 * by hand so the key never reaches the storage host that serves the signed URLs), and which
 * answers mean a signed URL expired, and the run's pace of download requests (lib/download_pace.ts).
 *
 * @example
 * ```ts
 * import type { SpoolWriter } from "./download.ts";
 * declare const options: ComplianceClientSettings; // apiBase, key, principal, scope, policy, timeoutMs...
 * declare const spool: SpoolWriter;
 * const client = new ComplianceClient(options);
 * const after = "2026-07-01T00:00:00Z";
 * const page = await client.listPage({ eventType: "AUTH_LOG", limit: 100, after });
 * const downloaded = await client.download(page.data[0], spool);
 * ```
 */
import {
  type Downloaded,
  downloadFile,
  FileNotFoundError,
  type FileSource,
  type SpoolWriter,
} from "./download.ts";
import { DownloadPace } from "./download_pace.ts";
import { CliError, redact, TransientError } from "./errors.ts";
import {
  COMPLIANCE_READ_SCOPE,
  routeNoun,
  routeOnlyOf,
  routeTypesLine,
  type Scope,
  scopeForType,
} from "./event_types.ts";
import { MAX_ERROR_BODY_BYTES, type Opened, openRequest, readText } from "./http.ts";
import type { ListPage, ListQuery, LogFile } from "./log_file.ts";
import {
  parseRetryAfter,
  RETRYABLE_STATUSES,
  type RetryNotice,
  type RetryPolicy,
  withRetries,
} from "./retry.ts";
import { toMicros } from "./time.ts";
import { followable } from "./urls.ts";

/** The scope keys created before the Compliance Logs Platform had its own; it still works. */
export const LEGACY_COMPLIANCE_SCOPE = "chatgpt.enterprise.compliance_export.read";

/** What the client is built with: the run's client settings, whose logs, and its hooks. */
export interface ComplianceClientSettings {
  apiBase: URL;
  key: string;
  principal: string;
  scope: Scope;
  policy: RetryPolicy;
  timeoutMs: number;
  onRetry: (notice: RetryNotice) => void;
  signal?: AbortSignal;
  /**
   * Where the key came from, named by the 401 hint: `COMPLIANCE_API_KEY`, or
   * `COMPLIANCE_API_KEY_FILE /path` (default: both names, as either may have been used).
   */
  keySource?: string;
  /**
   * The most requests to the API's download endpoint in any rolling minute
   * (`--max-downloads-per-minute`; default 50, the API's documented limit). Used only when no
   * `downloadPace` is given.
   */
  downloadsPerMinute?: number;
  /**
   * The run's one budget of download requests, shared by every client of the run (each pass of
   * `--follow` builds its own client): made once per run with `new DownloadPace(n)`. Default: a
   * budget of this client's own, of `downloadsPerMinute`.
   */
  downloadPace?: DownloadPace;
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

/** What a refusal's hint may name: the event type asked for, and where the key came from. */
export interface HintContext {
  eventType?: string;
  keySource?: string;
}

/**
 * `HTTP error 401 while listing logs (...)` with the body, pretty-printed when it is JSON; a
 * `TransientError` for statuses worth another try, with the server's `Retry-After`. `context`
 * makes the hint of a refusal name the scope of the event type and where the key came from.
 *
 * @example
 * ```ts
 * import type { Opened } from "./http.ts";
 * declare const opened: Opened;
 * if (!opened.response.ok) throw await httpError(opened, "listing logs", 30_000);
 * ```
 */
export async function httpError(
  opened: Opened,
  what: string,
  idleMs: number,
  context?: HintContext,
): Promise<CliError> {
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
  let doc: unknown;
  try {
    doc = JSON.parse(body);
    detail = redact(JSON.stringify(doc, null, 2));
  } catch {
    // Not JSON: printed as it came.
  }
  const message = `HTTP error ${status} while ${what}:`;
  // Hints speak of the API's key and ids: only for the API's own answers (context given).
  const hint = context ? hintFor(status, what, doc, context) : undefined;
  if (hint) detail = detail ? `${detail}\n${hint}` : hint;
  if (RETRYABLE_STATUSES.has(status)) {
    const retryAfter = parseRetryAfter(opened.response.headers.get("retry-after"));
    return new TransientError("api", message, retryAfter, { detail });
  }
  return new CliError(status === 401 || status === 403 ? "auth" : "api", message, { detail });
}

/** Which scopes let a key read `eventType` (or every type when none is named), as one phrase. */
function scopesFor(eventType: string | undefined): string {
  const all = `${COMPLIANCE_READ_SCOPE} (the legacy ${LEGACY_COMPLIANCE_SCOPE} still works)`;
  return eventType ? `${scopeForType(eventType)} or ${all}` : all;
}

/**
 * What the common mistakes behind an API refusal look like, as one `hint:` line: a key without
 * the scope, a principal the key was not created for, a wrong API base path, an id of the wrong
 * kind.
 */
function hintFor(
  status: number,
  what: string,
  doc: unknown,
  context: HintContext,
): string | undefined {
  const { eventType } = context;
  if (status === 401) {
    const source = context.keySource ?? "COMPLIANCE_API_KEY or COMPLIANCE_API_KEY_FILE";
    return `hint: the API did not accept the key from ${source}; it must be an Admin API key ` +
      `(created by a workspace owner or admin in the admin portal) with the scope ` +
      `${scopesFor(eventType)}, and not revoked`;
  }
  if (status === 403) {
    return `hint: the key may not read ${eventType ?? "the logs"} of this principal; keys are ` +
      `authorized per event type: it needs the scope ${scopesFor(eventType)}, and the ` +
      `workspace or organization id must be the one the key was created for`;
  }
  if (status === 404 && what.startsWith("listing")) {
    const principal = "the API knows no such workspace or organization for this key (a " +
      "workspace id is a UUID, an organization id starts with org-)";
    if (isBareNotFound(doc)) {
      return "hint: the answer is a plain Not Found, so either the API base path is wrong " +
        "(check COMPLIANCE_API_BASE or --api-base; the default is " +
        `https://api.chatgpt.com/v1/compliance), or ${principal}`;
    }
    return `hint: ${principal}`;
  }
  return undefined;
}

/** `{"detail":"Not Found"}`: what the API's framework answers for a route it does not have. */
function isBareNotFound(doc: unknown): boolean {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return false;
  const entries = Object.entries(doc);
  return entries.length === 1 && entries[0][0] === "detail" && entries[0][1] === "Not Found";
}

/**
 * The one clear line for a 400 on a listing of a type that only the other route carries, or
 * undefined when that is not the case.
 */
export function otherRouteLine(eventType: string, scope: Scope): string | undefined {
  const only = routeOnlyOf(eventType);
  if (only === undefined || only === scope) return undefined;
  return `${eventType} is ${routeNoun(only) === "organization" ? "an" : "a"} ${
    routeNoun(only)
  } event type; ${routeTypesLine(scope)}`;
}

export class ComplianceClient {
  /** The client as a download sees it (see `FileSource`). */
  readonly #files: FileSource = {
    resolveDownload: (file) => this.resolveDownload(file),
    openFile: (url, offset, what) => this.openFile(url, offset, what),
    isExpiredUrl: (url, status) => this.isExpiredUrl(url, status),
    httpError: (opened, what) =>
      httpError(opened, what, this.options.timeoutMs, this.hintContext(opened.url)),
  };
  /** The run's budget of download requests (kept by `withSignal` copies). */
  readonly #pace: DownloadPace;

  constructor(private readonly options: ComplianceClientSettings) {
    this.#pace = options.downloadPace ?? new DownloadPace(options.downloadsPerMinute);
  }

  /** What a hint may say about an answer from `url`: nothing unless it is the API's own. */
  private hintContext(url: URL, eventType?: string): HintContext | undefined {
    if (url.origin !== this.options.apiBase.origin) return undefined;
    return { eventType, keySource: this.options.keySource };
  }

  /**
   * This client with its requests and waits also ended by `signal`: a run that has failed stops
   * its listing and downloads at once, instead of sitting out a `Retry-After` or a stall first.
   */
  withSignal(signal: AbortSignal): ComplianceClient {
    const outer = this.options.signal;
    return new ComplianceClient({
      ...this.options,
      downloadPace: this.#pace,
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
        const { status } = opened.response;
        const otherRoute = status === 400
          ? otherRouteLine(query.eventType, this.options.scope)
          : undefined;
        if (otherRoute) {
          opened.abort();
          throw new CliError("usage", otherRoute);
        }
        if (status < 200 || status > 299) {
          throw await httpError(
            opened,
            what,
            this.options.timeoutMs,
            this.hintContext(url, query.eventType),
          );
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
   * Asks the API for `file` once and resolves with where its bytes are: the signed URL the API
   * redirects to (or the API URL itself if it answers with the body). Not retried here: the
   * download's loop (lib/download.ts) is the one retry loop of a download. Waits for the run's
   * download pace first; a 429 holds that pace back for every download until its `Retry-After`.
   * A 404 is a `FileNotFoundError` (the download decides whether the file is gone).
   */
  async resolveDownload(file: LogFile): Promise<URL> {
    const what = `downloading log id=${file.id}`;
    const url = this.logsUrl(file.id);
    await this.#pace.take(this.options.signal);
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
    const error = await httpError(
      opened,
      what,
      this.options.timeoutMs,
      this.hintContext(url, file.event_type),
    );
    if (status === 429) {
      const pause = error instanceof TransientError && error.retryAfterMs !== undefined
        ? error.retryAfterMs
        : this.#pace.windowMs / this.#pace.perWindow;
      this.#pace.pauseFor(Math.min(pause, this.options.policy.maxWaitMs));
    }
    if (status === 404) throw new FileNotFoundError(error.message, { detail: error.detail });
    throw error;
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
   * ```ts
   * import type { SpoolWriter } from "./download.ts";
   * import type { LogFile } from "./log_file.ts";
   * declare const client: ComplianceClient;
   * declare const file: LogFile;
   * declare const spool: SpoolWriter;
   * const { bytes, sha256 } = await client.download(file, spool, { onNote: console.error });
   * ```
   */
  download(file: LogFile, spool: SpoolWriter, hooks: DownloadHooks = {}): Promise<Downloaded> {
    const { policy, timeoutMs, signal } = this.options;
    // The gone-file spacing and retention clock take their defaults (see DownloadSettings).
    return downloadFile(this.#files, file, spool, {
      policy,
      timeoutMs,
      signal,
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
      // An API that serves a file's body itself (no redirect) spends its download budget on
      // every GET of it, resumes included.
      const onApi = current.origin === this.options.apiBase.origin;
      if (onApi) await this.#pace.take(this.options.signal);
      const opened = await this.open(current, what, range);
      if (onApi && opened.response.status === 429) {
        const wait = parseRetryAfter(opened.response.headers.get("retry-after"));
        this.#pace.pauseFor(
          Math.min(
            wait ?? this.#pace.windowMs / this.#pace.perWindow,
            this.options.policy.maxWaitMs,
          ),
        );
      }
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
