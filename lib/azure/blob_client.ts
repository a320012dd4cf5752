/**
 * The Azure Blob REST calls the Blob destination makes, one attempt each (the caller retries),
 * each signed with Shared Key (lib/azure/shared_key.ts) or carrying the SAS token, and sent only
 * to the account's own endpoint: Get Container Properties, Get Blob Properties, Put Blob, Put
 * Block, Put Block List and Copy Blob (within the account). Every body is sent with its
 * transactional `Content-MD5`, so the service itself rejects bytes damaged on the way.
 *
 * Failures are classified here: 500, 503, `ServerBusy`, `OperationTimedOut` (and 408, 429) are
 * `TransientError`s with the answer's `Retry-After`; 403 is an `auth` error that names a clock
 * skew when the service's `Date` is more than 15 minutes off ours; anything else fails at once.
 *
 * @example
 * ```ts
 * import type { AzureAccount } from "./credentials.ts";
 * declare const account: AzureAccount;
 * const client = new BlobClient(account);
 * const properties = await client.blobProperties("logs", "AUTH_LOG/2026-07-02/eclf_1.jsonl");
 * ```
 */
import { CliError, TransientError } from "../errors.ts";
import { type Opened, openRequest, request, type RequestOptions } from "../http.ts";
import { parseRetryAfter } from "../retry.ts";
import type { AzureAccount } from "./credentials.ts";
import { sharedKeyAuthorization } from "./shared_key.ts";

/** The REST version sent: immutability policy headers need 2020-06-12, container flags 2021-02-12. */
export const AZURE_API_VERSION = "2021-12-02";

/** Azure refuses requests whose date is more than this far from its clock. */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

/** Error codes another attempt may cure, whatever the status. */
const RETRYABLE_CODES = new Set(["ServerBusy", "OperationTimedOut", "InternalError"]);

/** What one call sends. */
export interface BlobCall {
  method: "GET" | "HEAD" | "PUT" | "DELETE";
  container: string;
  /** The blob's name (`/`-separated), or undefined for a container call. */
  blob?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** What the call is for, in messages: "uploading a.jsonl". */
  what: string;
  signal?: AbortSignal;
}

/** An answer: status, headers, and the body's text (error XML, a block list). */
export interface BlobAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/** A blob as Get Blob Properties sees it. */
export interface BlobProperties {
  size: number;
  /** `x-ms-meta-*` headers, names lowercased, without the prefix. */
  metadata: Record<string, string>;
  etag?: string;
  versionId?: string;
  /** The blob's `Content-MD5` (base64), where it has one. */
  contentMd5?: string;
  /** `x-ms-copy-status` of the blob's last Copy Blob: `pending`, `success`, `aborted`, `failed`. */
  copyStatus?: string;
}

/**
 * The blob service of one account. `now` is the clock the requests are dated with (a test's).
 */
export class BlobClient {
  constructor(
    readonly account: AzureAccount,
    private readonly options: { timeoutMs?: number; now?: () => number } = {},
  ) {}

  /** The URL of a container or blob, with the call's query and (for SAS) the token. */
  url(container: string, blob?: string, query: Record<string, string> = {}): URL {
    const url = new URL(this.account.endpoint.href);
    const segments = [container, ...(blob === undefined ? [] : blob.split("/"))];
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/${
      segments.map(encodeURIComponent).join("/")
    }`;
    const params = new URLSearchParams(
      this.account.auth.kind === "sas" ? this.account.auth.token : "",
    );
    for (const [name, value] of Object.entries(query)) params.set(name, value);
    url.search = params.toString();
    return url;
  }

  /** Sends one call and resolves with any answer (the caller judges the status). */
  async send(call: BlobCall): Promise<BlobAnswer> {
    const { url, headers, options } = this.prepare(call);
    const answer = await request(url, headers, {
      ...options,
      maxBytes: 4 * 1024 * 1024,
      truncate: true,
    });
    return { status: answer.status, headers: answer.headers, text: answer.text };
  }

  /** Sends one call and resolves once its answer's headers came (the body is the caller's). */
  open(call: BlobCall): Promise<Opened> {
    const { url, headers, options } = this.prepare(call);
    return openRequest(url, headers, options);
  }

  /** A call's URL, signed headers and request options. */
  private prepare(
    call: BlobCall,
  ): { url: URL; headers: Record<string, string>; options: RequestOptions } {
    const url = this.url(call.container, call.blob, call.query);
    const headers: Record<string, string> = {
      "x-ms-date": new Date(this.options.now?.() ?? Date.now()).toUTCString(),
      "x-ms-version": AZURE_API_VERSION,
      ...call.headers,
    };
    if (call.body !== undefined || call.method === "PUT") {
      headers["content-length"] = String(call.body?.length ?? 0);
    }
    if (this.account.auth.kind === "shared-key") {
      headers.authorization = sharedKeyAuthorization(
        this.account.name,
        this.account.auth.key,
        call.method,
        url,
        headers,
      );
    }
    // fetch sets Content-Length itself from the body; it was only needed for the signature.
    const { "content-length": _, ...sent } = headers;
    const bytes = call.body?.length ?? 0;
    return {
      url,
      headers: sent,
      options: {
        method: call.method,
        body: call.body,
        // An upload gets time for its bytes on a slow link (at least 100 kB/s) besides the answer.
        timeoutMs: (this.options.timeoutMs ?? 60_000) + Math.ceil(bytes / 100),
        what: call.what,
        signal: call.signal,
      },
    };
  }

  /** Sends one call and returns its answer when its status is `expected`, else throws. */
  async expect(call: BlobCall, expected: number[]): Promise<BlobAnswer> {
    const answer = await this.send(call);
    if (expected.includes(answer.status)) return answer;
    throw this.failure(answer, call);
  }

  /** The error an unexpected answer becomes (see the module doc). */
  failure(answer: BlobAnswer, call: BlobCall): CliError {
    const code = errorCode(answer);
    const message = errorMessage(answer);
    const target = `${this.account.name}/${call.container}${call.blob ? `/${call.blob}` : ""}`;
    const said =
      `Azure Blob answered ${answer.status}${code ? ` ${code}` : ""} while ${call.what}` +
      ` (${target})${message ? `: ${message}` : ""}`;
    if (
      answer.status >= 500 || answer.status === 408 || answer.status === 429 ||
      RETRYABLE_CODES.has(code ?? "")
    ) {
      return new TransientError(
        "network",
        said,
        parseRetryAfter(answer.headers.get("retry-after")),
      );
    }
    if (answer.status === 403 || answer.status === 401) {
      const skew = clockSkewMs(answer.headers, this.options.now?.() ?? Date.now());
      if (skew !== undefined && Math.abs(skew) > MAX_CLOCK_SKEW_MS) {
        return new CliError(
          "auth",
          `${said}; this machine's clock is ${Math.round(Math.abs(skew) / 1000)} s ` +
            `${skew > 0 ? "ahead of" : "behind"} the storage service's (Azure allows 15 ` +
            `minutes): set the clock right (NTP) and run again`,
        );
      }
      return new CliError(
        "auth",
        `${said}; check ${this.account.source}: the key or SAS token must be valid for account ` +
          `${this.account.name}, and a SAS must allow read, create, write and list on the container ` +
          `(sp=rcwl; read is also what copies an altered blob aside)`,
      );
    }
    if (answer.status === 404 && (code === "ContainerNotFound" || call.blob === undefined)) {
      return new CliError(
        "io",
        `container ${call.container} does not exist in storage account ${this.account.name}; ` +
          `create it (az storage container create --name ${call.container}) or fix the ` +
          `destination`,
      );
    }
    return new CliError("io", said);
  }

  /** Get Container Properties: its headers, or a thrown error (404: no such container). */
  async containerProperties(container: string, signal?: AbortSignal): Promise<BlobAnswer> {
    return await this.expect({
      method: "HEAD",
      container,
      query: { restype: "container" },
      what: `checking container ${container}`,
      signal,
    }, [200]);
  }

  /** Get Blob Properties, or undefined when there is no such blob. */
  async blobProperties(
    container: string,
    blob: string,
    signal?: AbortSignal,
  ): Promise<BlobProperties | undefined> {
    const call: BlobCall = {
      method: "HEAD",
      container,
      blob,
      what: `checking for ${blob}`,
      signal,
    };
    const answer = await this.send(call);
    if (answer.status === 404 && errorCode(answer) !== "ContainerNotFound") return undefined;
    if (answer.status !== 200) throw this.failure(answer, call);
    const metadata: Record<string, string> = {};
    answer.headers.forEach((value, name) => {
      const lower = name.toLowerCase();
      if (lower.startsWith("x-ms-meta-")) metadata[lower.slice("x-ms-meta-".length)] = value;
    });
    return {
      size: Number(answer.headers.get("content-length") ?? NaN),
      metadata,
      etag: answer.headers.get("etag") ?? undefined,
      versionId: answer.headers.get("x-ms-version-id") ?? undefined,
      contentMd5: answer.headers.get("content-md5") ?? undefined,
      copyStatus: answer.headers.get("x-ms-copy-status") ?? undefined,
    };
  }

  /**
   * Copy Blob within the account: `source` (as Get Blob Properties saw it, `sourceEtag`, so that a
   * later change is not the one copied) to `blob`. Resolves with `x-ms-copy-status` of the 202
   * answer: `success` for a copy done at once (a same-account copy), else `pending`.
   */
  async copyBlob(
    container: string,
    source: string,
    blob: string,
    sourceEtag: string | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    // Shared Key signs the destination's request, which authorizes a same-account source; a SAS
    // must be on the source's URL too (it needs read on the source).
    const answer = await this.expect({
      method: "PUT",
      container,
      blob,
      headers: {
        "x-ms-copy-source": this.url(container, source).href,
        ...(sourceEtag ? { "x-ms-source-if-match": sourceEtag } : {}),
      },
      what: `copying ${source} to ${blob}`,
      signal,
    }, [202, 201]);
    return answer.headers.get("x-ms-copy-status") ?? "success";
  }

  /** Put Blob (a block blob, whole): resolves only on 201 Created. */
  async putBlob(
    container: string,
    blob: string,
    body: Uint8Array,
    md5: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<BlobAnswer> {
    return await this.expect({
      method: "PUT",
      container,
      blob,
      headers: { "x-ms-blob-type": "BlockBlob", "content-md5": md5, ...headers },
      body,
      what: `uploading ${blob}`,
      signal,
    }, [201]);
  }

  /** Put Block: one uncommitted block of `blob`, resolves only on 201 Created. */
  async putBlock(
    container: string,
    blob: string,
    blockId: string,
    body: Uint8Array,
    md5: string,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.expect({
      method: "PUT",
      container,
      blob,
      query: { comp: "block", blockid: blockId },
      headers: { "content-md5": md5 },
      body,
      what: `uploading a block of ${blob}`,
      signal,
    }, [201]);
  }

  /** Put Block List: commits `blockIds` in order as the blob; resolves only on 201 Created. */
  async putBlockList(
    container: string,
    blob: string,
    blockIds: string[],
    headers: Record<string, string>,
    md5Of: (bytes: Uint8Array) => string,
    signal?: AbortSignal,
  ): Promise<BlobAnswer> {
    const body = new TextEncoder().encode(blockListXml(blockIds));
    return await this.expect({
      method: "PUT",
      container,
      blob,
      query: { comp: "blocklist" },
      headers: { "content-type": "application/xml", "content-md5": md5Of(body), ...headers },
      body,
      what: `committing the blocks of ${blob}`,
      signal,
    }, [201]);
  }
}

/**
 * The body of Put Block List: every block taken from the latest uploaded, in order.
 *
 * @example
 * ```ts
 * blockListXml(["QQ==", "Qg=="]);
 * // '<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QQ==</Latest><Latest>Qg==</Latest></BlockList>'
 * ```
 */
export function blockListXml(blockIds: string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?><BlockList>${
    blockIds.map((id) => `<Latest>${id}</Latest>`).join("")
  }</BlockList>`;
}

/** The answer's error code: the `x-ms-error-code` header (HEAD has no body), else `<Code>`. */
export function errorCode(answer: BlobAnswer): string | undefined {
  return answer.headers.get("x-ms-error-code") ??
    /<Code>([^<]{1,100})<\/Code>/.exec(answer.text)?.[1];
}

/** The error XML's `<Message>` (its first line: the rest is a request id and a time). */
function errorMessage(answer: BlobAnswer): string | undefined {
  const message = /<Message>([^<]{1,600})<\/Message>/.exec(answer.text)?.[1];
  const detail = /<AuthenticationErrorDetail>([^<]{1,300})</.exec(answer.text)?.[1];
  const first = message?.split(/\r?\n/)[0].trim();
  return [first, detail?.trim()].filter(Boolean).join("; ") || undefined;
}

/** Our clock minus the service's (`Date` of its answer), in ms; undefined without a date. */
export function clockSkewMs(headers: Headers, nowMs: number): number | undefined {
  const date = headers.get("date");
  const at = date === null ? NaN : Date.parse(date);
  return Number.isFinite(at) ? nowMs - at : undefined;
}
