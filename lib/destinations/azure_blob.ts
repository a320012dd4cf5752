/**
 * `--output-dir az://CONTAINER/PREFIX` (or `https://ACCOUNT.blob.core.windows.net/CONTAINER/
 * PREFIX`): one block blob per file, under the same keys as a local `--output-dir`. This module
 * is the Azure adapter of the shared object-store destination (`_object_store.ts`, which holds
 * the layout, the idempotent re-run, spools, retries and confirmation): Put Blob for a file of
 * one part, Put Block / Put Block List for larger ones, each request with its transactional
 * `Content-MD5`; the listing's SHA-256 and size stored as blob metadata (`x-ms-meta-sha256`,
 * `x-ms-meta-size`); confirmed only on Put Blob 201 or Put Block List 201.
 *
 * Azure has no upload to abort: uncommitted blocks never show as a blob, are discarded when the
 * blob is next committed, and are garbage-collected by the service after a week, so a killed
 * run leaves nothing visible and the next run writes the blob again.
 *
 * A blob a re-run finds altered is kept before it is written over (`_object_store.ts`): as the
 * version Get Blob Properties named where blob versioning is on, else as a Copy Blob within the
 * account to `<name>.altered-<UTC time>`.
 *
 * With `--retain-days N` each blob gets a version-level immutability policy
 * (`x-ms-immutability-policy-until-date`, `x-ms-immutability-policy-mode`: `Unlocked` for
 * governance, `Locked` for compliance); the container must have version-level immutability
 * support, checked before the first download.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const configured = azureBlobKind.configure("az://logs/openai", {}, { follow: false, env });
 * await configured.check();
 * ```
 */
import { randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import { CliError, usage } from "../errors.ts";
import { BlobClient, clockSkewMs, errorCode, MAX_CLOCK_SKEW_MS } from "../azure/blob_client.ts";
import { AZURE_SECRET_ENV, type AzureAccount, azureAccountFrom } from "../azure/credentials.ts";
import { checkSasToken } from "../azure/sas.ts";
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
  type StoredObject,
  storeRetryPolicy,
  type UploadedPart,
} from "./_object_store.ts";
import { LAYOUT_OPTION, parseLayout } from "./layout.ts";
import type { DestinationKind } from "./kind.ts";
import { ObjectArchiveStore } from "../manifest/object_store.ts";
import type {
  FetchedObject,
  ListedObject,
  ObjectAccess,
  PutSmallOptions,
} from "./_object_access.ts";
import { digestAnswer, readRangeAnswer, readSmallObject, requireEtag } from "./_answer_bytes.ts";
import { checkConditionalWrites, probeName } from "./_conditional_probe.ts";
import { MANIFEST_DIR } from "../manifest/format.ts";
import { type Opened, readText } from "../http.ts";
import type { BlobAnswer, BlobCall } from "../azure/blob_client.ts";
// Declared once for both object stores, so that their help and checks cannot differ.
import { parseRetention, RETENTION_OPTIONS } from "./_retention.ts";

/** How long a pending Copy Blob of an altered blob is waited for, and how often it is asked. */
const COPY_WAIT_MS = 120_000;
const COPY_POLL_MS = 500;

/** The most blocks a block blob may have. */
const MAX_BLOCKS = 50_000;

/**
 * Block size (and the largest Put Blob): 4 MiB keeps a 2 GiB upload under 100 MB of RSS under
 * Bun, where 8 MiB blocks reached 186 MB (the runtimes free large buffers late); 50,000 blocks
 * of it is 195 GiB, and the shared core makes blocks larger for anything bigger.
 */
export const AZURE_PART_BYTES = 4 * 1024 * 1024;

/** `https://ACCOUNT.blob.core.windows.net/...`: the only https URLs this destination takes. */
const PUBLIC_URL = /^https:\/\/([a-z0-9]{3,24})\.blob\.core\.windows\.net(\/.*)?$/;

/** Where the blobs go: the account (from the URL's host, for the https form), container, prefix. */
export interface AzureTarget {
  /** The account an https URL names; undefined for `az://` (the credentials say). */
  account?: string;
  container: string;
  /** Key prefix: empty, or ending in `/`. */
  prefix: string;
}

/**
 * The container and prefix of `az://CONTAINER/PREFIX` or `https://ACCOUNT.blob.core.windows.net/
 * CONTAINER/PREFIX`; usage errors for a container name Azure would refuse.
 *
 * @example
 * ```ts
 * parseAzureTarget("az://logs/openai/compliance");
 * // { account: undefined, container: "logs", prefix: "openai/compliance/" }
 * ```
 */
export function parseAzureTarget(target: string): AzureTarget {
  let account: string | undefined;
  let rest: string;
  const https = PUBLIC_URL.exec(target);
  if (https) {
    account = https[1];
    rest = (https[2] ?? "").replace(/^\//, "");
  } else if (target.startsWith("az://")) {
    rest = target.slice("az://".length);
  } else {
    throw usage(
      `--output-dir ${target}: an Azure Blob destination is az://CONTAINER/PREFIX or ` +
        `https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX`,
    );
  }
  if (/[?#]/.test(rest)) {
    throw usage(
      `--output-dir ${target}: no query or fragment (a SAS token goes in AZURE_STORAGE_SAS_TOKEN)`,
    );
  }
  const [container = "", ...path] = rest.split("/");
  if (!/^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/.test(container)) {
    throw usage(
      `--output-dir ${target}: '${container}' is not a valid container name (3 to 63 ` +
        `lowercase letters, digits and single hyphens, starting and ending with a letter or digit)`,
    );
  }
  return { account, container, prefix: keyPrefix(path.join("/")) };
}

/** The headers a blob is stored with: content type, metadata and immutability policy. */
export function blobHeaders(
  options: PutOptions,
  contentTypeHeader: string,
): Record<string, string> {
  const headers: Record<string, string> = { [contentTypeHeader]: options.contentType };
  for (const [name, value] of Object.entries(options.metadata)) {
    headers[`x-ms-meta-${name}`] = value;
  }
  if (options.retention) {
    headers["x-ms-immutability-policy-until-date"] = options.retention.until.toUTCString();
    headers["x-ms-immutability-policy-mode"] = options.retention.mode === "compliance"
      ? "Locked"
      : "Unlocked";
  }
  return headers;
}

/**
 * A block id: `uploadId-NNNNN` in base64, the same length for every block of a blob as Azure
 * requires, and distinct per upload so that two uploads' blocks never mix.
 */
export function blockId(uploadId: string, number: number): string {
  return Buffer.from(`${uploadId}-${String(number).padStart(5, "0")}`).toString("base64");
}

/** The Azure Blob adapter of `ObjectStore` (see the module doc). */
export class AzureBlobStore implements ObjectStore, ObjectAccess {
  readonly maxParts = MAX_BLOCKS;
  readonly versionParameter = "versionid";
  readonly label: string;

  constructor(
    private readonly client: BlobClient,
    private readonly container: string,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.label = `az://${container}/${prefix}`.replace(/\/$/, "");
  }

  /**
   * Before any download: the container exists and the credentials work (a HEAD of a name under
   * the prefix no file can have: BlobNotFound is the answer wanted), a SAS token allows writing
   * and has not expired, the clock agrees with the service's, and with retention the container
   * has version-level immutability support.
   */
  async check(needs: { retention: boolean }): Promise<void> {
    const { auth } = this.client.account;
    if (auth.kind === "sas") checkSasToken(auth.token, this.client.account.source, this.now());
    const probe = `${this.prefix}.oai-compliance-logs-check`;
    const call = {
      method: "HEAD" as const,
      container: this.container,
      blob: probe,
      what: `checking ${this.label}`,
    };
    const answer = await this.client.send(call);
    const code = errorCode(answer);
    if (!(answer.status === 404 && code !== "ContainerNotFound") && answer.status !== 200) {
      throw this.client.failure(answer, {
        ...call,
        blob: code === "ContainerNotFound" ? undefined : probe,
      });
    }
    const skew = clockSkewMs(answer.headers, this.now());
    if (skew !== undefined && Math.abs(skew) > MAX_CLOCK_SKEW_MS) {
      throw new CliError(
        "auth",
        `this machine's clock is ${Math.round(Math.abs(skew) / 1000)} s ` +
          `${skew > 0 ? "ahead of" : "behind"} the clock of storage account ` +
          `${this.client.account.name} (Azure allows 15 minutes): set the clock right (NTP) and ` +
          `run again`,
      );
    }
    // Refused before the probe below writes anything into a container that cannot retain it.
    if (needs.retention) await this.checkImmutability();
    // The manifest lock and write-once manifests need If-None-Match honoured (a probe blob in
    // `_manifest/`, which verify never counts among the archive's files).
    await checkConditionalWrites(this, `${this.prefix}${MANIFEST_DIR}/${probeName()}`, this.label);
  }

  /** The container must allow version-level immutability policies for `--retain-days`. */
  private async checkImmutability(): Promise<void> {
    const answer = await this.client.containerProperties(this.container);
    const enabled = answer.headers.get("x-ms-immutable-storage-with-versioning-enabled");
    if (enabled?.toLowerCase() === "true") return;
    throw new CliError(
      "usage",
      `--retain-days needs version-level immutability support on container ${this.container} ` +
        `(account ${this.client.account.name}), which it does not have: enable blob versioning ` +
        `on the account and version-level immutability support on the container (portal: ` +
        `container > Access policy; or az storage container-rm create ... --enable-vlw), or ` +
        `run without --retain-days`,
    );
  }

  async head(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    const properties = await this.client.blobProperties(this.container, key, signal);
    // With blob versioning on, the answer names the current version (`x-ms-version-id`).
    return properties && {
      size: properties.size,
      metadata: properties.metadata,
      versionId: properties.versionId,
      etag: properties.etag,
      md5: properties.contentMd5,
    };
  }

  /** The size and SHA-256 of a blob's bytes (of one version, given `versionId`), as they stream. */
  async readBack(key: string, versionId?: string, signal?: AbortSignal): Promise<ReadBack> {
    const call: BlobCall = {
      method: "GET",
      container: this.container,
      blob: key,
      query: versionId ? { versionid: versionId } : {},
      what: versionId ? `reading version ${versionId} of ${key}` : `reading ${key}`,
      signal,
    };
    const opened = await this.client.open(call);
    if (opened.response.status !== 200) {
      throw this.client.failure(await answerOf(opened, call), call);
    }
    return await digestAnswer(opened, {
      idleMs: 60_000,
      what: `${this.label}: ${call.what}`,
      signal,
    });
  }

  /**
   * Copy Blob of the altered blob Get Blob Properties saw (`x-ms-source-if-match` its ETag) to
   * `asideKey`: a same-account copy is done when it answers (`x-ms-copy-status: success`); a
   * pending one is polled with Get Blob Properties (at most `COPY_WAIT_MS`). Confirmed when the
   * copy has the source's size (and its Content-MD5, where the source has one).
   */
  async copyAside(
    key: string,
    asideKey: string,
    seen: StoredObject,
    signal?: AbortSignal,
  ): Promise<void> {
    const what = `copying the altered ${key} aside to ${asideKey}`;
    let status = await this.client.copyBlob(this.container, key, asideKey, seen.etag, signal);
    let copy = await this.client.blobProperties(this.container, asideKey, signal);
    const deadline = Date.now() + COPY_WAIT_MS;
    while (status === "pending" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, COPY_POLL_MS));
      signal?.throwIfAborted();
      copy = await this.client.blobProperties(this.container, asideKey, signal);
      status = copy?.copyStatus ?? "missing";
    }
    if (status !== "success") {
      throw new CliError(
        "io",
        `${this.label}: ${what}: ${
          status === "pending"
            ? `the copy is still pending after ${COPY_WAIT_MS / 1000} s`
            : `the copy ended with x-ms-copy-status ${status}`
        }; nothing was written over ${key}; run again`,
      );
    }
    const md5Differs = seen.md5 !== undefined && copy?.contentMd5 !== seen.md5;
    if (!copy || copy.size !== seen.size || md5Differs) {
      throw new CliError(
        "integrity",
        `${this.label}: ${what}: the copy is ${
          copy ? `${copy.size} bytes, Content-MD5 ${copy.contentMd5 ?? "(none)"}` : "not there"
        }, not the altered blob's ${seen.size} bytes, Content-MD5 ${seen.md5 ?? "(none)"}; ` +
          `nothing was written over ${key}; run again`,
      );
    }
  }

  async put(key: string, payload: Payload, options: PutOptions, signal?: AbortSignal) {
    await this.client.putBlob(
      this.container,
      key,
      payload.bytes,
      payload.md5,
      blobHeaders(options, "content-type"),
      signal,
    );
  }

  /** Azure needs no call to start: the id only keeps this upload's block ids apart. */
  startUpload(_key: string, _options: PutOptions, _signal?: AbortSignal): Promise<string> {
    return Promise.resolve(randomBytes(6).toString("hex"));
  }

  async putPart(
    key: string,
    uploadId: string,
    number: number,
    payload: Payload,
    signal?: AbortSignal,
  ): Promise<string> {
    const id = blockId(uploadId, number);
    await this.client.putBlock(this.container, key, id, payload.bytes, payload.md5, signal);
    return id;
  }

  async completeUpload(
    key: string,
    _uploadId: string,
    parts: UploadedPart[],
    options: PutOptions,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.client.putBlockList(
      this.container,
      key,
      parts.map((part) => part.tag),
      blobHeaders(options, "x-ms-blob-content-type"),
      (bytes) => payloadOf(bytes).md5,
      signal,
    );
  }

  /** Nothing to abort: the service discards uncommitted blocks (see the module doc). */
  abortUpload(_key: string, _uploadId: string, _signal?: AbortSignal): Promise<void> {
    return Promise.resolve();
  }

  /** None visible: a killed run's uncommitted blocks are the service's to discard. */
  staleUploads(_prefix: string, _signal?: AbortSignal): Promise<StaleUpload[]> {
    return Promise.resolve([]);
  }

  // ObjectAccess (_object_access.ts): small blobs read whole, ranges, listings, conditional
  // writes. Keys are full blob names in the container.

  async get(
    key: string,
    options: { maxBytes?: number; signal?: AbortSignal } = {},
  ): Promise<FetchedObject | undefined> {
    const call: BlobCall = {
      method: "GET",
      container: this.container,
      blob: key,
      what: `reading ${key}`,
      signal: options.signal,
    };
    const maxBytes = options.maxBytes ?? MAX_SMALL_BLOB_BYTES;
    const opened = await this.client.open(call);
    const { status } = opened.response;
    if (status !== 200) {
      const answer = await answerOf(opened, call);
      if (status === 404 && errorCode(answer) !== "ContainerNotFound") return undefined;
      throw this.client.failure(answer, call);
    }
    return await readSmallObject(opened, {
      idleMs: 60_000,
      what: `${this.label}: ${call.what}`,
      maxBytes,
      noun: "blob",
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
    const call: BlobCall = {
      method: "GET",
      container: this.container,
      blob: key,
      headers: { "x-ms-range": `bytes=${start}-${end - 1}` },
      what: `reading bytes ${start} to ${end} of ${key}`,
      signal,
    };
    const opened = await this.client.open(call);
    return await readRangeAnswer(
      opened,
      { start, end, idleMs: 60_000, what: `${this.label}: ${call.what}`, signal },
      async () => this.client.failure(await answerOf(opened, call), call),
    );
  }

  async listPage(
    prefix: string,
    next?: string,
    signal?: AbortSignal,
  ): Promise<{ objects: ListedObject[]; next?: string }> {
    const answer = await this.client.expect({
      method: "GET",
      container: this.container,
      query: {
        restype: "container",
        comp: "list",
        ...(prefix ? { prefix } : {}),
        ...(next ? { marker: next } : {}),
      },
      what: `listing ${prefix || "the container"}`,
      signal,
    }, [200]);
    const objects: ListedObject[] = [];
    for (const [, blob] of answer.text.matchAll(/<Blob>([\s\S]*?)<\/Blob>/g)) {
      const name = blobName(blob);
      if (name === undefined) continue;
      const modified = xmlText(blob, "Last-Modified");
      objects.push({
        key: name,
        size: Number(xmlText(blob, "Content-Length") ?? NaN),
        etag: xmlText(blob, "Etag"),
        lastModified: modified ? new Date(modified) : undefined,
      });
    }
    const marker = xmlText(answer.text, "NextMarker");
    return { objects, next: marker || undefined };
  }

  async putSmall(
    key: string,
    bytes: Uint8Array,
    options: PutSmallOptions,
    signal?: AbortSignal,
  ): Promise<string | "conflict"> {
    const headers: Record<string, string> = {
      "x-ms-blob-type": "BlockBlob",
      "content-md5": payloadOf(bytes).md5,
      // Content type, metadata and (for manifests) the immutability policy, as objects get them.
      ...blobHeaders({ ...options, metadata: options.metadata ?? {} }, "content-type"),
    };
    const condition = options.condition;
    if (condition && "ifNoneMatch" in condition) headers["if-none-match"] = "*";
    if (condition && "ifMatch" in condition) headers["if-match"] = condition.ifMatch;
    const call: BlobCall = {
      method: "PUT",
      container: this.container,
      blob: key,
      headers,
      body: bytes,
      what: `writing ${key}`,
      signal,
    };
    const answer = await this.client.send(call);
    if (condition && isBlobConflict(answer)) return "conflict";
    if (answer.status !== 201) throw this.client.failure(answer, call);
    return requireEtag(answer.headers, `${this.label}: ${call.what}`);
  }

  async deleteKey(
    key: string,
    condition?: { ifMatch: string },
    signal?: AbortSignal,
  ): Promise<void | "conflict"> {
    const call: BlobCall = {
      method: "DELETE",
      container: this.container,
      blob: key,
      headers: condition ? { "if-match": condition.ifMatch } : {},
      what: `deleting ${key}`,
      signal,
    };
    const answer = await this.client.send(call);
    if (answer.status === 202 || answer.status === 200) return;
    const code = errorCode(answer);
    if (answer.status === 404 && code !== "ContainerNotFound") return;
    if (condition && isBlobConflict(answer)) return "conflict";
    throw this.client.failure(answer, call);
  }
}

/** The most a small blob read whole (`ObjectAccess.get`) may have by default: 1 MiB. */
const MAX_SMALL_BLOB_BYTES = 1024 * 1024;

/**
 * Whether a conditional write's answer says its condition failed: 412 ConditionNotMet (If-Match),
 * 409 BlobAlreadyExists (If-None-Match: *), or 404 BlobNotFound (the version If-Match named is gone).
 */
function isBlobConflict(answer: BlobAnswer): boolean {
  const code = errorCode(answer);
  if (answer.status === 412) return true;
  if (answer.status === 409 && (code === "BlobAlreadyExists" || code === "ConditionNotMet")) {
    return true;
  }
  return answer.status === 404 && code === "BlobNotFound";
}

/** An opened answer that is not the one wanted, read whole for its error code. */
async function answerOf(opened: Opened, call: BlobCall): Promise<BlobAnswer> {
  const text = await readText(opened, {
    idleMs: 60_000,
    what: call.what,
    signal: call.signal,
    maxBytes: 64 * 1024,
    truncate: true,
  });
  return { status: opened.response.status, headers: opened.response.headers, text };
}

/**
 * A listed blob's name: as the text of `<Name>`, or URL-encoded where the service marks it
 * `<Name Encoded="true">` (a name with characters XML 1.0 cannot carry).
 *
 * @example
 * ```ts
 * blobName('<Name Encoded="true">a%01b</Name>'); // "a\u0001b"
 * ```
 */
export function blobName(blob: string): string | undefined {
  const match = /<Name(\s+Encoded="(true|false)")?\s*>([^<]*)<\/Name>/.exec(blob);
  if (!match) return undefined;
  const text = xmlText(`<Name>${match[3]}</Name>`, "Name")!;
  return match[2] === "true" ? decodeURIComponent(text) : text;
}

/** The text of the first `<name>` element of `xml`, entities decoded. */
function xmlText(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  if (!match) return undefined;
  return match[1].replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&amp;/g, "&");
}

/** `--output-dir az://CONTAINER/PREFIX` (or the account's https URL) on the registry. */
export const azureBlobKind: DestinationKind = {
  name: "azure-blob",
  flag: "output-dir",
  schemes: ["az", "https"],
  takes: (url) => url.startsWith("az://") || PUBLIC_URL.test(url),
  options: {
    gzip: { type: "boolean", help: "with --output-dir, write .jsonl.gz" },
    ...LAYOUT_OPTION,
    ...RETENTION_OPTIONS,
  },
  secretEnv: AZURE_SECRET_ENV,
  conflicts: {},
  configure(target, values, context) {
    const { account: urlAccount, container, prefix } = parseAzureTarget(target);
    const gzip = Boolean(values.gzip);
    const layout = parseLayout(values.layout);
    const retain = parseRetention(values);
    const account: AzureAccount = azureAccountFrom(context.env, urlAccount);
    const store = new AzureBlobStore(new BlobClient(account), container, prefix);
    const policy = storeRetryPolicy(context.env);
    const partBytes = testPartBytes(context.env) ?? AZURE_PART_BYTES;
    const staleBefore = new Date();
    let destination: ObjectStoreDestination | undefined;
    return {
      label: `--output-dir ${target}`,
      guarantee: "confirmed",
      localFiles: [],
      // Manifests in PREFIX/_manifest/, and the objects read back by `verify`.
      archive: new ObjectArchiveStore(store, prefix, {
        label: target.startsWith("az://") ? `az://${container}/${prefix}` : target,
        policy,
        retain, // Manifests as write-once as the blobs.
      }),
      check: () => checkStore(store, { retention: retain !== undefined }, policy),
      open: (events) => {
        // One per process (`--follow` opens it once per poll).
        destination ??= new ObjectStoreDestination(store, {
          prefix,
          naming: { gzip, layout },
          retain,
          policy,
          partBytes,
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

/** For tests only: a smaller block size (`OAI_COMPLIANCE_STORE_PART_BYTES`), to test blocks cheaply. */
function testPartBytes(env: Record<string, string | undefined>): number | undefined {
  const value = Number(env.OAI_COMPLIANCE_STORE_PART_BYTES);
  return Number.isSafeInteger(value) && value >= 1024 ? value : undefined;
}
