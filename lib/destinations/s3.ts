/**
 * `--output-dir s3://BUCKET/PREFIX`: one object per file in an S3-compatible bucket (AWS S3,
 * Ceph RGW, MinIO, R2, GCS interoperability), with the local directory's layout, `--gzip`,
 * `--layout` and idempotent re-runs (the shared core, `_object_store.ts`). This module is the S3
 * adapter: SigV4-signed requests (lib/aws/sigv4.ts) with the payload's real SHA-256 (and its
 * Content-MD5 where the bucket has Object Lock, which requires it), S3's error codes, multipart
 * uploads, Object Lock, and CopyObject to keep an altered object aside where the bucket keeps no
 * versions.
 *
 * Credentials and region come from the standard AWS sources (lib/aws/credentials.ts); the
 * endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (then path-style addressing, as
 * S3-compatible stores want), else AWS itself with virtual-hosted addressing.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const store = s3Store("s3://archive/openai", env);
 * await store.check({ retention: false });
 * ```
 */
import { createHash } from "node:crypto";
import { CliError, TransientError, usage } from "../errors.ts";
import { type Answer, type Opened, openRequest, readText, request } from "../http.ts";
import type { Env } from "../settings.ts";
import {
  awsRegion,
  type CredentialProvider,
  credentialProvider,
  secretEndpoint,
} from "../aws/credentials.ts";
import { EMPTY_SHA256, signRequest, uriEncode } from "../aws/sigv4.ts";
import {
  checkStore,
  keyPrefix,
  type ObjectStore,
  ObjectStoreDestination,
  type Payload,
  payloadOf,
  type PutOptions,
  type ReadBack,
  type StaleUpload,
  statusError,
  type StoredObject,
  storeRetryPolicy,
  type UploadedPart,
} from "./_object_store.ts";
import { LAYOUT_OPTION, parseLayout } from "./layout.ts";
import { parseRetention, RETENTION_OPTIONS } from "./_retention.ts";
import type { DestinationKind } from "./kind.ts";
import { ObjectArchiveStore } from "../manifest/object_store.ts";
import type {
  FetchedObject,
  ListedObject,
  ObjectAccess,
  PutSmallOptions,
} from "./_object_access.ts";
import { digestAnswer, readRangeAnswer, readSmallObject, requireEtag } from "./_answer_bytes.ts";
import {
  checkConditionalWrites,
  conditionalWrites,
  emulatedDelete,
  emulatedPut,
  probeName,
} from "./_conditional_probe.ts";
import { MANIFEST_DIR } from "../manifest/format.ts";

/** SigV4 refuses requests whose date is further than this from the store's clock. */
export const MAX_SKEW_MS = 15 * 60_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** The most bytes of an S3 answer read (error documents, listings of uploads). */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/** What a `s3://BUCKET/PREFIX` URL names. */
export interface S3Location {
  bucket: string;
  prefix: string;
}

/**
 * Bucket and key prefix of `s3://BUCKET/PREFIX` (usage errors for anything else).
 *
 * @example
 * ```ts
 * parseS3Url("s3://archive/openai/logs"); // { bucket: "archive", prefix: "openai/logs/" }
 * ```
 */
export function parseS3Url(text: string): S3Location {
  const match = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/.exec(text);
  const bucket = match?.[1] ?? "";
  if (!match || !/^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(bucket)) {
    throw usage(`--output-dir ${text}: name an S3 bucket as s3://BUCKET/PREFIX`);
  }
  return { bucket, prefix: keyPrefix(match[2] ?? "") };
}

/** Settings of the S3 adapter beyond the bucket. */
export interface S3Settings {
  credentials: CredentialProvider;
  region: string;
  /** A custom endpoint (path-style addressing), else AWS's virtual-hosted one. */
  endpoint?: URL;
  /** For tests only: milliseconds added to the clock the requests are signed with. */
  clockOffsetMs?: number;
  /**
   * For tests only: the largest object one CopyObject copies (default 5 GiB); a larger altered
   * object is copied aside in parts.
   */
  maxCopyBytes?: number;
}

/** The S3 settings of an environment. */
export function s3Settings(env: Env): S3Settings {
  const endpointText = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  let endpoint: URL | undefined;
  if (endpointText) {
    // Signed requests carry the session token: https, or plain http only to loopback.
    endpoint = secretEndpoint(
      endpointText,
      env.AWS_ENDPOINT_URL_S3 ? "AWS_ENDPOINT_URL_S3" : "AWS_ENDPOINT_URL",
    );
  }
  const offset = Number(env.OAI_COMPLIANCE_S3_CLOCK_OFFSET_MS ?? 0);
  const maxCopy = Number(env.OAI_COMPLIANCE_S3_MAX_COPY_BYTES);
  return {
    credentials: credentialProvider(env),
    region: awsRegion(env),
    endpoint,
    clockOffsetMs: Number.isFinite(offset) ? offset : 0,
    maxCopyBytes: Number.isSafeInteger(maxCopy) && maxCopy > 0 ? maxCopy : MAX_COPY_BYTES,
  };
}

function xmlDecode(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&amp;/g, "&");
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** The text of the first `<name>` element of `xml`. */
function field(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match ? xmlDecode(match[1]) : undefined;
}

/** Every `<name>...</name>` element of `xml`, as text. */
function elements(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, "g"))].map((m) => m[1]);
}

type Query = Array<[string, string]>;

interface Sent {
  method: string;
  key?: string;
  query?: Query;
  headers?: Array<[string, string]>;
  body?: Payload;
  what: string;
  signal?: AbortSignal;
}

/** One bucket of an S3-compatible store; see `ObjectStore` in `_object_store.ts`. */
export class S3Store implements ObjectStore, ObjectAccess {
  readonly maxParts = 10_000;
  readonly versionParameter = "versionId";
  readonly label: string;

  /**
   * Whether bodies carry `Content-MD5`: S3 requires it (or a checksum) on every upload into a
   * bucket with Object Lock. Elsewhere the signed SHA-256 already makes the store check the body,
   * and an MD5 of every byte would be CPU spent for nothing. Until `check` has asked the bucket,
   * and whenever its answer is unclear: sent.
   */
  private sendsMd5 = true;

  constructor(private readonly location: S3Location, private readonly settings: S3Settings) {
    this.label = `s3://${location.bucket}/${location.prefix}`;
  }

  /** The URL of `key` (or of the bucket), path-style on a custom endpoint. */
  private url(key: string | undefined, query: Query = []): URL {
    const { bucket } = this.location;
    const path = key === undefined ? "" : uriEncode(key, true);
    let base: string;
    const endpoint = this.settings.endpoint;
    if (endpoint) {
      const root = endpoint.href.replace(/\/+$/, "");
      base = `${root}/${uriEncode(bucket)}${key === undefined ? "" : "/" + path}`;
    } else if (bucket.includes(".")) {
      // A dotted bucket does not match the wildcard certificate: path-style.
      base = `https://s3.${this.settings.region}.amazonaws.com/${bucket}/${path}`;
    } else {
      base = `https://${bucket}.s3.${this.settings.region}.amazonaws.com/${path}`;
    }
    const search = query.map(([n, v]) =>
      v === "" ? uriEncode(n) : `${uriEncode(n)}=${uriEncode(v)}`
    )
      .join("&");
    return new URL(search ? `${base}?${search}` : base);
  }

  /** One signed request, its answer read whole (at most `MAX_ANSWER_BYTES`). */
  private async send(sent: Sent): Promise<Answer> {
    const { url, headers } = await this.signed(sent);
    return await request(url, headers, {
      method: sent.method,
      body: sent.body?.bytes,
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: sent.what,
      signal: sent.signal,
      maxBytes: MAX_ANSWER_BYTES,
      truncate: true,
    });
  }

  /** One signed request, its answer opened (its body is the caller's to read as bytes). */
  private async open(sent: Sent): Promise<Opened> {
    const { url, headers } = await this.signed(sent);
    return await openRequest(url, headers, {
      method: sent.method,
      body: sent.body?.bytes,
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: sent.what,
      signal: sent.signal,
    });
  }

  /** The URL and SigV4-signed headers of a request. */
  private async signed(sent: Sent): Promise<{ url: URL; headers: Record<string, string> }> {
    const url = this.url(sent.key, sent.query);
    const credentials = await this.settings.credentials.get();
    const payloadSha256 = sent.body?.sha256 ?? EMPTY_SHA256;
    const headers: Array<[string, string]> = [
      ["x-amz-content-sha256", payloadSha256],
      ...(sent.body && this.sendsMd5 ? [["content-md5", sent.body.md5] as [string, string]] : []),
      ...(sent.headers ?? []),
    ];
    const signed = signRequest({
      method: sent.method,
      url,
      headers,
      payloadSha256,
      credentials,
      region: this.settings.region,
      service: "s3",
      now: new Date(Date.now() + (this.settings.clockOffsetMs ?? 0)),
    });
    return { url, headers: signed.headers };
  }

  /** An S3 error answer as one clear line: retryable or not, by status and code. */
  private failure(answer: Answer, what: string): CliError {
    const code = field(answer.text, "Code");
    const message = field(answer.text, "Message");
    const where = this.label;
    const base = `${where}: ${what} failed: HTTP ${answer.status}${code ? ` ${code}` : ""}` +
      (message ? ` (${message})` : "");
    switch (code) {
      case "NoSuchBucket":
        return new CliError(
          "io",
          `${where}: the bucket ${this.location.bucket} does not exist (NoSuchBucket); create ` +
            `it, or check the bucket's name and AWS_ENDPOINT_URL_S3`,
        );
      case "RequestTimeTooSkewed":
      case "RequestExpired": {
        const skew = this.skewSeconds(answer);
        return new CliError(
          "auth",
          `${where}: the store refused the request's time (${code}): this clock is ` +
            `${skew === undefined ? "far" : `${Math.abs(skew)} s`} ${
              skew !== undefined && skew < 0 ? "behind" : "ahead of"
            } the store's (SigV4 allows 15 minutes); set the clock (NTP)`,
        );
      }
      case "InvalidAccessKeyId":
        return new CliError(
          "auth",
          `${where}: the store does not know the access key ` +
            `(InvalidAccessKeyId); check AWS_ACCESS_KEY_ID / the profile and the endpoint`,
        );
      case "SignatureDoesNotMatch":
        return new CliError(
          "auth",
          `${where}: the store refused the signature (SignatureDoesNotMatch); check ` +
            `AWS_SECRET_ACCESS_KEY / the profile, the region (${this.settings.region}) and any ` +
            `proxy that rewrites requests`,
        );
      case "AccessDenied":
      case "AllAccessDisabled":
        return new CliError(
          "auth",
          `${base}; the credentials need s3:PutObject, s3:GetObject, s3:ListBucket, ` +
            `s3:ListBucketMultipartUploads and s3:AbortMultipartUpload on it (keeping an altered ` +
            `object aside copies it: s3:GetObject on it and s3:PutObject on the copy; or reads ` +
            `its old version: s3:GetObjectVersion)`,
        );
      case "SlowDown":
      case "ServiceUnavailable":
      case "InternalError":
      case "RequestTimeout":
        return statusError(answer.status, answer.headers, base, true);
    }
    // Object Lock enabled on the bucket since the check (a long --follow): from now on every body
    // carries its Content-MD5, and this request is tried again with it.
    if (
      !this.sendsMd5 && answer.status === 400 &&
      (code === "MissingContentMD5" || /content-md5/i.test(message ?? ""))
    ) {
      this.sendsMd5 = true;
      return new TransientError("io", `${base}; sending Content-MD5 from now on`);
    }
    if (answer.status === 301 || answer.status === 307) {
      const region = answer.headers.get("x-amz-bucket-region");
      return new CliError(
        "io",
        `${base}: the bucket is in another region${region ? ` (${region})` : ""}; set AWS_REGION`,
      );
    }
    if (answer.status === 403 && !code) {
      return new CliError(
        "auth",
        `${base}: access denied; check the credentials and that they may read and write it`,
      );
    }
    if (answer.status === 404 && !code && what.startsWith("checking")) {
      return new CliError("io", `${base}: no such bucket or key`);
    }
    return statusError(answer.status, answer.headers, base);
  }

  /** The store's clock less this one's, in seconds, from the answer's `Date`. */
  private skewSeconds(answer: Answer): number | undefined {
    const date = answer.headers.get("date");
    const at = date ? Date.parse(date) : NaN;
    if (Number.isNaN(at)) return undefined;
    const signedAt = Date.now() + (this.settings.clockOffsetMs ?? 0);
    return Math.round((signedAt - at) / 1000);
  }

  async check(needs: { retention: boolean }): Promise<void> {
    // A multipart upload started and aborted: proves the bucket exists and the credentials may
    // write, before the one small object the conditional-write probe creates and deletes.
    const probe = `${this.location.prefix}.oai-compliance-logs-probe-${crypto.randomUUID()}`;
    const started = await this.send({
      method: "POST",
      key: probe,
      query: [["uploads", ""]],
      what: "checking that the bucket takes uploads",
    });
    if (started.status !== 200) {
      throw this.failure(started, "checking that the bucket takes uploads");
    }
    const uploadId = field(started.text, "UploadId");
    if (uploadId) await this.abortUpload(probe, uploadId);
    // Refused before the probe below writes anything into a bucket that cannot retain it.
    const lock = await this.objectLock();
    if (needs.retention && lock !== "enabled") throw this.noObjectLock(lock);
    this.sendsMd5 = lock !== "disabled";
    // The manifest lock and write-once manifests need conditional writes (a probe key in
    // `_manifest/`, which verify never counts among the archive's files). A bucket that honours
    // none (Ceph 16's versioned ones) is taken, and the run warns (s3Kind's open).
    await checkConditionalWrites(
      this,
      `${this.location.prefix}${MANIFEST_DIR}/${probeName()}`,
      this.label,
      undefined,
      { allowNone: true },
    );
  }

  /**
   * The bucket's Object Lock: "enabled", "disabled" (the bucket says it has none), or the answer
   * that said neither (a store that does not implement it, or credentials that may not ask).
   */
  private async objectLock(): Promise<"enabled" | "disabled" | Answer> {
    const lock = await this.send({
      method: "GET",
      query: [["object-lock", ""]],
      what: "checking the bucket's Object Lock",
    });
    if (lock.status === 200 && field(lock.text, "ObjectLockEnabled") === "Enabled") {
      return "enabled";
    }
    if (
      lock.status === 200 || lock.status === 404 ||
      field(lock.text, "Code") === "ObjectLockConfigurationNotFoundError"
    ) {
      return "disabled";
    }
    // A 500 or 503 is retried (by checkStore) rather than taken for "unclear" (a 501 is).
    if (lock.status === 500 || lock.status === 503) {
      throw this.failure(lock, "checking the bucket's Object Lock");
    }
    return lock;
  }

  /** Why `--retain-days` cannot be had: the bucket's Object Lock is off, or could not be read. */
  private noObjectLock(lock: "disabled" | Answer): CliError {
    if (lock !== "disabled") return this.failure(lock, "checking the bucket's Object Lock");
    return new CliError(
      "usage",
      `--retain-days needs Object Lock, and ${this.label} does not have it enabled: create the ` +
        `bucket with it (aws s3api create-bucket --object-lock-enabled-for-bucket ...) or ` +
        `enable it on a versioned bucket (aws s3api put-object-lock-configuration --bucket ` +
        `${this.location.bucket} --object-lock-configuration ObjectLockEnabled=Enabled)`,
    );
  }

  async head(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    const answer = await this.send({ method: "HEAD", key, what: `checking ${key}`, signal });
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw this.failure(answer, `checking ${key}`);
    const metadata: Record<string, string> = {};
    answer.headers.forEach((value, name) => {
      const lower = name.toLowerCase();
      if (lower.startsWith("x-amz-meta-")) metadata[lower.slice(11)] = value;
    });
    // An unversioned bucket's object is version "null": no older version would keep it.
    const version = answer.headers.get("x-amz-version-id") ?? undefined;
    return {
      size: Number(answer.headers.get("content-length") ?? -1),
      metadata,
      versionId: version && version !== "null" ? version : undefined,
      etag: answer.headers.get("etag") ?? undefined,
      contentType: answer.headers.get("content-type") ?? undefined,
    };
  }

  /** The size and SHA-256 of an object's bytes (of one version, given `versionId`), as they stream. */
  async readBack(key: string, versionId?: string, signal?: AbortSignal): Promise<ReadBack> {
    const what = versionId ? `reading version ${versionId} of ${key}` : `reading ${key}`;
    const opened = await this.open({
      method: "GET",
      key,
      query: versionId ? [["versionId", versionId]] : [],
      what,
      signal,
    });
    if (opened.response.status !== 200) {
      throw this.failure(await this.answerOf(opened, what, signal), what);
    }
    return await digestAnswer(opened, {
      idleMs: REQUEST_TIMEOUT_MS,
      what: `${this.label}: ${what}`,
      signal,
    });
  }

  /**
   * A copy of the altered object HEAD saw to `asideKey`, on its ETag
   * (`x-amz-copy-source-if-match`, so that a later change is not the one copied), with its
   * metadata: one CopyObject up to 5 GiB, a multipart copy of a larger one (`copyInParts`).
   * Confirmed when the copy answered 200 without an error document and a HEAD of the copy shows
   * the source's size (and, after a CopyObject, its ETag, an MD5 that a copy keeps, unless it was
   * a multipart or encrypted object; a multipart copy's ETag is not comparable).
   */
  async copyAside(
    key: string,
    asideKey: string,
    seen: StoredObject,
    signal?: AbortSignal,
  ): Promise<void> {
    const what = `copying the altered ${key} aside to ${asideKey}`;
    let comparable = false;
    if (seen.size > (this.settings.maxCopyBytes ?? MAX_COPY_BYTES)) {
      await this.copyInParts(key, asideKey, seen, what, signal);
    } else {
      const headers: Array<[string, string]> = [
        ["x-amz-copy-source", this.copySource(key)],
        ["x-amz-metadata-directive", "COPY"],
      ];
      if (seen.etag) headers.push(["x-amz-copy-source-if-match", bareEtag(seen.etag)]);
      const answer = await this.send({ method: "PUT", key: asideKey, headers, what, signal });
      this.checkCopied(answer, key, what);
      comparable = seen.etag !== undefined && !bareEtag(seen.etag).includes("-") &&
        !answer.headers.has("x-amz-server-side-encryption-customer-algorithm") &&
        !/^aws:kms/.test(answer.headers.get("x-amz-server-side-encryption") ?? "");
    }
    const copy = await this.head(asideKey, signal);
    const bare = (etag?: string) => etag === undefined ? undefined : bareEtag(etag);
    if (
      !copy || copy.size !== seen.size || (comparable && bare(copy.etag) !== bare(seen.etag))
    ) {
      throw new CliError(
        "integrity",
        `${this.label}: ${what}: the copy is ${
          copy ? `${copy.size} bytes, ETag ${copy.etag ?? "(none)"}` : "not there"
        }, not the altered object's ${seen.size} bytes, ETag ${seen.etag ?? "(none)"}; ` +
          `nothing was written over ${key}; run again`,
      );
    }
  }

  /** `x-amz-copy-source` of `key` in this bucket. */
  private copySource(key: string): string {
    return `/${this.location.bucket}/${uriEncode(key, true)}`;
  }

  /**
   * A copy's answer (CopyObject, UploadPartCopy) taken only as a success: 412 is the source
   * changed since HEAD saw it, and a 200 may still carry an error document (S3 sends headers
   * before it finishes).
   */
  private checkCopied(answer: Answer, key: string, what: string): void {
    if (answer.status === 412) throw this.changedAgain(key, "412 PreconditionFailed on its ETag");
    if (answer.status !== 200 || /<Error>/.test(answer.text)) {
      if (answer.status === 200) {
        const code = field(answer.text, "Code") ?? "an error document";
        throw statusError(500, answer.headers, `${this.label}: ${what} failed: ${code}`, true);
      }
      throw this.failure(answer, what);
    }
  }

  private changedAgain(key: string, how: string): CliError {
    return new CliError(
      "state",
      `${this.label}: ${key} changed again while it was being kept aside (${how}); nothing ` +
        `was written over it; run again`,
    );
  }

  /**
   * A multipart copy of the altered object `seen` at `key` to `asideKey`, for one larger than a
   * CopyObject copies: CreateMultipartUpload with the metadata HEAD saw (a part copy copies
   * none), UploadPartCopy of each range on the ETag HEAD saw, then CompleteMultipartUpload. Any
   * failure aborts the upload (best effort; a stale one is aborted by the next run), so nothing
   * but a complete copy appears at `asideKey`.
   */
  private async copyInParts(
    key: string,
    asideKey: string,
    seen: StoredObject,
    what: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const partBytes = copyPartBytes(seen.size, this.settings.maxCopyBytes);
    if (partBytes > MAX_COPY_BYTES) {
      throw new CliError(
        "io",
        `${this.label}: ${what}: at ${seen.size} bytes it is more than 10,000 parts of 5 GiB ` +
          `can copy; copy it aside by other means, then run again`,
      );
    }
    // What CopyObject would have kept: the metadata and Content-Type HEAD saw.
    const headers = Object.entries(seen.metadata)
      .map(([name, value]): [string, string] => [`x-amz-meta-${name}`, value]);
    if (seen.contentType) headers.push(["content-type", seen.contentType]);
    const started = await this.send({
      method: "POST",
      key: asideKey,
      query: [["uploads", ""]],
      headers,
      what,
      signal,
    });
    if (started.status !== 200) throw this.failure(started, what);
    const uploadId = field(started.text, "UploadId");
    if (!uploadId) throw new TransientError("io", `${this.label}: ${what}: no UploadId came back`);
    try {
      const parts: Array<{ number: number; tag: string }> = [];
      for (let at = 0; at < seen.size; at += partBytes) {
        const number = parts.length + 1;
        const last = Math.min(at + partBytes, seen.size) - 1;
        const headers: Array<[string, string]> = [
          ["x-amz-copy-source", this.copySource(key)],
          ["x-amz-copy-source-range", `bytes=${at}-${last}`],
        ];
        if (seen.etag) headers.push(["x-amz-copy-source-if-match", bareEtag(seen.etag)]);
        const partWhat = `${what} (part ${number}, bytes ${at} to ${last})`;
        const answer = await this.send({
          method: "PUT",
          key: asideKey,
          query: [["partNumber", String(number)], ["uploadId", uploadId]],
          headers,
          what: partWhat,
          signal,
        });
        this.checkCopied(answer, key, partWhat);
        const tag = field(answer.text, "ETag");
        if (!tag) {
          throw new TransientError("io", `${this.label}: ${partWhat}: no ETag came back`);
        }
        parts.push({ number, tag });
      }
      // A store that ignores x-amz-copy-source-if-match (Ceph 16) copies whatever the key holds:
      // the key must still be what HEAD saw once every part is copied.
      if (seen.etag) {
        const now = await this.head(key, signal);
        if (!now?.etag || bareEtag(now.etag) !== bareEtag(seen.etag)) {
          throw this.changedAgain(key, `its ETag is now ${now ? now.etag ?? "(none)" : "gone"}`);
        }
      }
      // No expected ETag: the copy's size is checked by the caller's HEAD.
      await this.complete(asideKey, uploadId, parts, undefined, `${what} (completing it)`, signal);
    } catch (error) {
      await this.abortUpload(asideKey, uploadId).catch(() => {});
      throw error;
    }
  }

  private objectHeaders(options: PutOptions): Array<[string, string]> {
    const headers: Array<[string, string]> = [["content-type", options.contentType]];
    for (const [name, value] of Object.entries(options.metadata)) {
      headers.push([`x-amz-meta-${name}`, value]);
    }
    headers.push(...objectLockHeaders(options.retention));
    return headers;
  }

  async put(key: string, payload: Payload, options: PutOptions, signal?: AbortSignal) {
    const what = `uploading ${key}`;
    const answer = await this.send({
      method: "PUT",
      key,
      headers: this.objectHeaders(options),
      body: payload,
      what,
      signal,
    });
    if (answer.status !== 200) throw this.failure(answer, what);
    if (this.sendsMd5) checkEtag(answer, md5Hex(payload.md5), `${this.label}: ${what}`);
  }

  async startUpload(key: string, options: PutOptions, signal?: AbortSignal): Promise<string> {
    const what = `starting the upload of ${key}`;
    const answer = await this.send({
      method: "POST",
      key,
      query: [["uploads", ""]],
      headers: this.objectHeaders(options),
      what,
      signal,
    });
    if (answer.status !== 200) throw this.failure(answer, what);
    const uploadId = field(answer.text, "UploadId");
    if (!uploadId) throw new TransientError("io", `${this.label}: ${what}: no UploadId came back`);
    return uploadId;
  }

  async putPart(
    key: string,
    uploadId: string,
    number: number,
    payload: Payload,
    signal?: AbortSignal,
  ): Promise<string> {
    const what = `uploading part ${number} of ${key}`;
    const answer = await this.send({
      method: "PUT",
      key,
      query: [["partNumber", String(number)], ["uploadId", uploadId]],
      body: payload,
      what,
      signal,
    });
    if (answer.status !== 200) throw this.failure(answer, what);
    if (this.sendsMd5) checkEtag(answer, md5Hex(payload.md5), `${this.label}: ${what}`);
    // The part's ETag names it in the completion, and is its MD5 there (multipartEtag).
    return requireEtag(answer.headers, `${this.label}: ${what}`);
  }

  async completeUpload(
    key: string,
    uploadId: string,
    parts: UploadedPart[],
    _options: PutOptions,
    signal?: AbortSignal,
  ): Promise<void> {
    const what = `completing the upload of ${key}`;
    await this.complete(key, uploadId, parts, multipartEtag(parts), what, signal);
  }

  /**
   * CompleteMultipartUpload of `parts`, resolved on the store's 200 without an error document.
   * With `expected` (the parts' multipart ETag) the object is confirmed only by that ETag, and a
   * lost answer of an earlier try (NoSuchUpload) is taken when the object has it; without (a
   * multipart copy, whose parts' MD5s are not known here) the caller confirms what it holds.
   */
  private async complete(
    key: string,
    uploadId: string,
    parts: ReadonlyArray<{ number: number; tag: string }>,
    expected: string | undefined,
    what: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const xml = "<CompleteMultipartUpload>" +
      parts.map((p) =>
        `<Part><PartNumber>${p.number}</PartNumber><ETag>${xmlEscape(p.tag)}</ETag></Part>`
      ).join("") + "</CompleteMultipartUpload>";
    const answer = await this.send({
      method: "POST",
      key,
      query: [["uploadId", uploadId]],
      headers: [["content-type", "application/xml"]],
      body: payloadOf(new TextEncoder().encode(xml)),
      what,
      signal,
    });
    // A 200 may still carry an error document (S3 sends headers before it finishes).
    if (answer.status === 200 && !/<Error>/.test(answer.text)) {
      if (expected === undefined) return;
      let etag = field(answer.text, "ETag")?.replace(/"/g, "");
      if (!etag) {
        // Ceph 16 answers an empty <ETag/>: the object's own ETag then says what it holds.
        const stored = await this.send({ method: "HEAD", key, what, signal });
        if (stored.status !== 200) throw this.failure(stored, what);
        etag = stored.headers.get("etag")?.replace(/"/g, "") || undefined;
      }
      // No ETag at all is no confirmation: a store that cannot say what it holds is not believed.
      if (etag === undefined || etag !== expected) {
        throw new CliError(
          "integrity",
          `${this.label}: ${what}: the store's ETag ${etag ?? "(none)"} is not the parts' ` +
            `${expected}; the object is not confirmed`,
        );
      }
      return;
    }
    if (expected !== undefined && field(answer.text, "Code") === "NoSuchUpload") {
      // An earlier try completed it and its answer was lost: the object is there if so.
      const stored = await this.send({ method: "HEAD", key, what, signal });
      if (stored.status === 200 && stored.headers.get("etag")?.replace(/"/g, "") === expected) {
        return;
      }
    }
    if (answer.status === 200) {
      throw statusError(
        500,
        answer.headers,
        `${this.label}: ${what} failed: ${field(answer.text, "Code")}`,
        true,
      );
    }
    throw this.failure(answer, what);
  }

  async abortUpload(key: string, uploadId: string, signal?: AbortSignal): Promise<void> {
    const what = `aborting the upload of ${key}`;
    const answer = await this.send({
      method: "DELETE",
      key,
      query: [["uploadId", uploadId]],
      what,
      signal,
    });
    if (answer.status === 204 || answer.status === 200 || answer.status === 404) return;
    throw this.failure(answer, what);
  }

  async staleUploads(prefix: string, signal?: AbortSignal): Promise<StaleUpload[]> {
    const found: StaleUpload[] = [];
    let markers: Query = [];
    const what = "listing unfinished uploads";
    for (let page = 0; page < 1000; page++) {
      const answer = await this.send({
        method: "GET",
        query: [["uploads", ""], ["prefix", prefix], ...markers],
        what,
        signal,
      });
      if (answer.status !== 200) throw this.failure(answer, what);
      for (const upload of elements(answer.text, "Upload")) {
        const key = field(upload, "Key");
        const uploadId = field(upload, "UploadId");
        const initiated = field(upload, "Initiated");
        if (key === undefined || uploadId === undefined) continue;
        found.push({ key, uploadId, initiated: initiated ? new Date(initiated) : undefined });
      }
      if (field(answer.text, "IsTruncated") !== "true") break;
      markers = [
        ["key-marker", field(answer.text, "NextKeyMarker") ?? ""],
        ["upload-id-marker", field(answer.text, "NextUploadIdMarker") ?? ""],
      ];
    }
    return found;
  }

  // ObjectAccess (_object_access.ts): small objects read whole, ranges, listings, conditional
  // writes. Keys are full keys in the bucket.

  async get(
    key: string,
    options: { maxBytes?: number; signal?: AbortSignal } = {},
  ): Promise<FetchedObject | undefined> {
    const what = `reading ${key}`;
    const maxBytes = options.maxBytes ?? MAX_SMALL_OBJECT_BYTES;
    const opened = await this.open({ method: "GET", key, what, signal: options.signal });
    const { status } = opened.response;
    if (status !== 200) {
      const answer = await this.answerOf(opened, what, options.signal);
      if (status === 404 && field(answer.text, "Code") !== "NoSuchBucket") return undefined;
      throw this.failure(answer, what);
    }
    return await readSmallObject(opened, {
      idleMs: REQUEST_TIMEOUT_MS,
      what: `${this.label}: ${what}`,
      maxBytes,
      noun: "object",
      signal: options.signal,
    });
  }

  async getRange(
    key: string,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const what = `reading bytes ${start} to ${end} of ${key}`;
    const opened = await this.open({
      method: "GET",
      key,
      headers: [["range", `bytes=${start}-${end - 1}`]],
      what,
      signal,
    });
    return await readRangeAnswer(
      opened,
      { start, end, idleMs: REQUEST_TIMEOUT_MS, what: `${this.label}: ${what}`, signal },
      async () => this.failure(await this.answerOf(opened, what, signal), what),
    );
  }

  async listPage(
    prefix: string,
    next?: string,
    signal?: AbortSignal,
  ): Promise<{ objects: ListedObject[]; next?: string }> {
    const what = `listing ${prefix || "the bucket"}`;
    // URL-encoded keys: XML 1.0 cannot carry every character a key may have (control
    // characters); a store that ignores encoding-type answers without <EncodingType>.
    const query: Query = [["encoding-type", "url"], ["list-type", "2"], ["prefix", prefix]];
    if (next !== undefined) query.push(["continuation-token", next]);
    const answer = await this.send({ method: "GET", query, what, signal });
    if (answer.status !== 200) throw this.failure(answer, what);
    const encoded = field(answer.text, "EncodingType") === "url";
    const objects: ListedObject[] = [];
    for (const entry of elements(answer.text, "Contents")) {
      const raw = field(entry, "Key");
      if (raw === undefined) continue;
      // S3 encodes as forms do (a space is `+`, a `+` is `%2B`).
      const key = encoded ? decodeURIComponent(raw.replace(/\+/g, " ")) : raw;
      const modified = field(entry, "LastModified");
      objects.push({
        key,
        size: Number(field(entry, "Size") ?? NaN),
        etag: field(entry, "ETag"),
        lastModified: modified ? new Date(modified) : undefined,
      });
    }
    const token = field(answer.text, "NextContinuationToken");
    const truncated = field(answer.text, "IsTruncated") === "true";
    if (truncated && !token) {
      // A store that ignores list-type=2 (its V1 answer has no token): the listing cannot be
      // continued, and a partial one must never pass for whole (callers fall back or fail).
      throw new CliError(
        "io",
        `${this.label}: ${what}: the answer is truncated but gives no NextContinuationToken ` +
          `(a store without ListObjectsV2?)`,
      );
    }
    return { objects, next: truncated ? token : undefined };
  }

  async putSmall(
    key: string,
    bytes: Uint8Array,
    options: PutSmallOptions,
    signal?: AbortSignal,
  ): Promise<string | "conflict"> {
    if (options.condition && conditionalWrites(this) === "none") {
      const unconditional = { ...options, condition: undefined };
      return emulatedPut(
        this,
        key,
        bytes,
        options.condition,
        () => this.putSmall(key, bytes, unconditional, signal),
        signal,
      );
    }
    const what = `writing ${key}`;
    const payload = payloadOf(bytes);
    const headers: Array<[string, string]> = [["content-type", options.contentType]];
    for (const [name, value] of Object.entries(options.metadata ?? {})) {
      headers.push([`x-amz-meta-${name}`, value]);
    }
    headers.push(...objectLockHeaders(options.retention));
    const condition = options.condition;
    if (condition && "ifNoneMatch" in condition) headers.push(["if-none-match", "*"]);
    if (condition && "ifMatch" in condition) {
      headers.push(["if-match", bareEtag(condition.ifMatch)]);
    }
    const answer = await this.send({ method: "PUT", key, headers, body: payload, what, signal });
    if (isConflict(answer, condition !== undefined)) return "conflict";
    if (answer.status !== 200) throw this.failure(answer, what);
    if (this.sendsMd5) checkEtag(answer, md5Hex(payload.md5), `${this.label}: ${what}`);
    // The version a later If-Match names: never one made up (with KMS it is not the MD5).
    return requireEtag(answer.headers, `${this.label}: ${what}`);
  }

  async deleteKey(
    key: string,
    condition?: { ifMatch: string },
    signal?: AbortSignal,
  ): Promise<void | "conflict"> {
    if (condition && conditionalWrites(this) === "none") {
      return emulatedDelete(
        this,
        key,
        condition,
        () => this.deleteKey(key, undefined, signal),
        signal,
      );
    }
    const what = `deleting ${key}`;
    const headers: Array<[string, string]> = condition
      ? [["if-match", bareEtag(condition.ifMatch)]]
      : [];
    const answer = await this.send({ method: "DELETE", key, headers, what, signal });
    if (answer.status === 204 || answer.status === 200) return;
    if (answer.status === 404 && field(answer.text, "Code") !== "NoSuchBucket") return;
    if (isConflict(answer, condition !== undefined)) return "conflict";
    throw this.failure(answer, what);
  }

  /** An opened answer that is not the one wanted, read whole for its error document. */
  private async answerOf(opened: Opened, what: string, signal?: AbortSignal): Promise<Answer> {
    const text = await readText(opened, {
      idleMs: REQUEST_TIMEOUT_MS,
      what,
      signal,
      maxBytes: MAX_ANSWER_BYTES,
      truncate: true,
    });
    return {
      status: opened.response.status,
      headers: opened.response.headers,
      url: opened.url,
      text,
    };
  }
}

/**
 * An ETag without its quotes, as `If-Match` carries it to S3: Ceph 16's RGW compares the header
 * with its stored ETag as is (a quoted one never matches, so every conditional write would
 * conflict), while AWS S3 and MinIO take either form.
 */
function bareEtag(etag: string): string {
  return etag.replace(/^W\//, "").replace(/"/g, "");
}

/** The largest object one CopyObject copies, and the largest part of a multipart copy: 5 GiB. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** A multipart copy's part where 10,000 of them hold the object: 512 MiB, few requests. */
const COPY_PART_BYTES = 512 * 1024 ** 2;
/** The smallest part S3 takes but the last: 5 MiB. */
const MIN_PART_BYTES = 5 * 1024 ** 2;
/** The most parts an S3 upload may have. */
const MAX_PARTS = 10_000;

/**
 * The part size of a multipart copy of `size` bytes: 512 MiB, at most `maxCopyBytes` (what one
 * CopyObject copies; lowered by tests) but never under S3's 5 MiB minimum part, and larger (whole
 * MiB) where 10,000 parts would not hold the object.
 *
 * @example
 * ```ts
 * copyPartBytes(6 * 1024 ** 3); // 536870912: 12 parts of 512 MiB
 * copyPartBytes(11 * 1024 ** 2, 1024 ** 2); // 5242880: 3 parts, the last 1 MiB
 * ```
 */
export function copyPartBytes(size: number, maxCopyBytes: number = MAX_COPY_BYTES): number {
  const part = Math.max(MIN_PART_BYTES, Math.min(COPY_PART_BYTES, maxCopyBytes));
  if (Math.ceil(size / part) <= MAX_PARTS) return part;
  const mib = 1024 ** 2;
  return Math.ceil(size / MAX_PARTS / mib) * mib;
}

/** The most a small object read whole (`ObjectAccess.get`) may have by default: 1 MiB. */
const MAX_SMALL_OBJECT_BYTES = 1024 * 1024;

/**
 * Whether a conditional write's answer says its condition failed: 412 PreconditionFailed; 409
 * (S3's ConditionalRequestConflict, a concurrent conditional write); or, for If-Match, 404 (the
 * version read no longer exists).
 */
function isConflict(answer: Answer, conditional: boolean): boolean {
  if (!conditional) return false;
  const code = field(answer.text, "Code");
  if (answer.status === 412) return true;
  if (answer.status === 409 && code !== "OperationAborted") return true;
  return answer.status === 404 && code === "NoSuchKey";
}

function md5Hex(base64: string): string {
  return [...atob(base64)].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

/**
 * S3's ETag of a multipart object: the MD5 of its parts' MD5s, then `-` and their count. Each
 * part's MD5 is the ETag the store answered it with, having checked its signed SHA-256 (and its
 * Content-MD5 where sent); undefined where a part's ETag is no MD5 (encrypted with a KMS or a
 * customer key), and the completion's answer alone confirms the object.
 */
export function multipartEtag(parts: ReadonlyArray<{ tag: string }>): string | undefined {
  const hash = createHash("md5");
  for (const part of parts) {
    const hex = part.tag.replace(/"/g, "");
    if (!/^[0-9a-f]{32}$/i.test(hex)) return undefined;
    hash.update(Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16)));
  }
  return `${hash.digest("hex")}-${parts.length}`;
}

/** A PUT's ETag is the body's MD5 unless the store encrypts with KMS (then it is opaque). */
function checkEtag(answer: Answer, expected: string, what: string): void {
  const etag = answer.headers.get("etag")?.replace(/"/g, "");
  // Encrypted with a KMS or customer key, an object's ETag is not its MD5: Content-MD5 and the
  // signed SHA-256 were checked by the store itself.
  const encrypted = answer.headers.get("x-amz-server-side-encryption") === "aws:kms" ||
    answer.headers.get("x-amz-server-side-encryption") === "aws:kms:dsse" ||
    answer.headers.has("x-amz-server-side-encryption-customer-algorithm");
  if (encrypted) return;
  if (etag !== expected) {
    throw new CliError(
      "integrity",
      `${what}: the store's ETag ${etag ?? "(none)"} is not the body's MD5 ${expected}; not ` +
        `confirmed`,
    );
  }
}

/** S3 Object Lock headers of a retention (none without one): for objects and manifests alike. */
function objectLockHeaders(retention: PutOptions["retention"]): Array<[string, string]> {
  if (!retention) return [];
  return [
    ["x-amz-object-lock-mode", retention.mode.toUpperCase()],
    [
      "x-amz-object-lock-retain-until-date",
      retention.until.toISOString().replace(/\.\d{3}Z$/, "Z"),
    ],
  ];
}

/**
 * The adapter for `s3://BUCKET/PREFIX` with the environment's credentials and endpoint.
 */
export function s3Store(url: string, env: Env): S3Store {
  return new S3Store(parseS3Url(url), s3Settings(env));
}

/** `--output-dir s3://BUCKET/PREFIX` on the registry. */
export const s3Kind: DestinationKind = {
  name: "S3 bucket",
  flag: "output-dir",
  schemes: ["s3"],
  options: {
    gzip: { type: "boolean", help: "with --output-dir, write .jsonl.gz" },
    ...LAYOUT_OPTION,
    ...RETENTION_OPTIONS,
  },
  secretEnv: ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"],
  conflicts: {},
  configure(target, values, context) {
    const location = parseS3Url(target);
    const naming = { gzip: Boolean(values.gzip), layout: parseLayout(values.layout) };
    const retain = parseRetention(values);
    let store: S3Store | undefined;
    // Credentials are looked up at check(), not while parsing the command line.
    const storeOf = () => store ??= new S3Store(location, s3Settings(context.env));
    const staleBefore = new Date();
    let destination: ObjectStoreDestination | undefined;
    return {
      label: `--output-dir ${target}`,
      guarantee: "confirmed",
      localFiles: [],
      // Manifests in PREFIX/_manifest/, and the objects read back by `verify`.
      archive: new ObjectArchiveStore(storeOf, location.prefix, {
        label: `s3://${location.bucket}/${location.prefix}`,
        policy: storeRetryPolicy(context.env),
        retain, // Manifests as write-once as the objects.
      }),
      check: () =>
        checkStore(storeOf(), { retention: retain !== undefined }, storeRetryPolicy(context.env)),
      open: (events) => {
        if (!destination && conditionalWrites(storeOf()) === "none") {
          events.warn(
            `${target}: the bucket honours no conditional writes (If-None-Match, If-Match; ` +
              `Ceph 16 on a versioned bucket), so its manifest lock is best effort: two runs ` +
              `into it at once could fork its manifests; schedule them so they cannot overlap`,
          );
        }
        // One per process: stale uploads are cleaned once, the first time it opens.
        destination ??= new ObjectStoreDestination(storeOf(), {
          prefix: location.prefix,
          naming,
          retain,
          policy: storeRetryPolicy(context.env),
          staleBefore,
          onRetry: (notice) => events.retry(notice),
          onNote: (text) => events.warn(text),
          onKeptAside: (kept) => events.keptAside(kept),
        });
        return Promise.resolve(destination);
      },
    };
  },
};
