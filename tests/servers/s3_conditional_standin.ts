/**
 * A small S3 stand-in on loopback for the conditional requests Debian's Ceph 16 RGW does not
 * honour as AWS S3 does, written from the Amazon S3 API reference (PutObject, GetObject,
 * DeleteObject, ListObjectsV2; "Conditional requests"):
 *
 * - PutObject `If-None-Match: *`: 412 PreconditionFailed when the key exists;
 * - PutObject `If-Match: ETAG`: 412 when the object's ETag differs, 404 NoSuchKey when there is
 *   none; the ETag compared with or without its quotes (Ceph 16 takes only the bare form);
 * - DeleteObject `If-Match: ETAG`: 412 when it differs (Ceph 16 deletes regardless), 204 else;
 * - GetObject with `Range: bytes=A-B`: 206 and `Content-Range`;
 * - ListObjectsV2 (`list-type=2`): `prefix`, `continuation-token`, at most `pageSize` keys a page
 *   (small, so that paging is exercised);
 * - GetObjectLockConfiguration (`?object-lock`): as `options.objectLock` says (else 404
 *   ObjectLockConfigurationNotFoundError); CreateMultipartUpload (`POST ?uploads`) and
 *   AbortMultipartUpload (`DELETE ?uploadId`), for the tool's up-front check.
 *
 * Path-style addressing (`/BUCKET/KEY`), one bucket, objects in memory. Each request must carry
 * a SigV4 `Authorization` header, and a body its `x-amz-content-sha256`, checked against the
 * bytes (the signature itself is checked by Ceph in the other suites). `Content-MD5` is checked
 * where sent, and required (400 InvalidRequest without it) unless `options.objectLock` says the
 * bucket has none, as S3 requires it of every upload into a bucket with Object Lock (the
 * reference's PutObject: "The Content-MD5 or x-amz-sdk-checksum-algorithm header is required for
 * any request to upload an object with a retention period configured using Amazon S3 Object
 * Lock"); a bucket without an answer here is taken to have it, the strict case.
 *
 * @example
 * ```ts
 * const standin = await startS3Standin("bucket");
 * // AWS_ENDPOINT_URL_S3=standin.endpoint ...
 * await standin.close();
 * ```
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export interface S3Standin {
  endpoint: string;
  /** Keys to their bytes and ETag (quoted, the MD5 of the bytes as S3 gives it). */
  objects: Map<string, { bytes: Uint8Array; etag: string }>;
  /** Every request as `METHOD /path?query`, in order. */
  seen: string[];
  /** The keys of the PUTs that carried a `Content-MD5`, in order. */
  md5Sent: string[];
  close(): Promise<void>;
}

function xml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function error(res: ServerResponse, status: number, code: string, message = code): void {
  res.writeHead(status, { "content-type": "application/xml" });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
      `<Message>${xml(message)}</Message></Error>`,
  );
}

function bare(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/"/g, "");
}

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of req) chunks.push(chunk as Uint8Array);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Starts the stand-in for `bucket` on a free loopback port. `ignoreConditions`: PUTs and DELETEs
 * drop If-None-Match and If-Match, as a store (or proxy) that does not honour them would.
 */
export async function startS3Standin(
  bucket: string,
  pageSize = 2,
  options: {
    ignoreConditions?: boolean;
    /**
     * How `GET ?object-lock` answers: "enabled", "disabled" (404
     * ObjectLockConfigurationNotFoundError), or another status (403 AccessDenied, 501
     * NotImplemented); unset: as "enabled" for Content-MD5, 404 to the question.
     */
    objectLock?: "enabled" | "disabled" | 403 | 501;
  } = {},
): Promise<S3Standin> {
  const objects = new Map<string, { bytes: Uint8Array; etag: string }>();
  const seen: string[] = [];
  const md5Sent: string[] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://standin");
    seen.push(`${req.method} ${url.pathname}${url.search}`);
    const bytes = await body(req);
    if (!/^AWS4-HMAC-SHA256 Credential=/.test(String(req.headers.authorization ?? ""))) {
      return error(res, 403, "AccessDenied");
    }
    const [, name, ...rest] = url.pathname.split("/");
    if (decodeURIComponent(name ?? "") !== bucket) return error(res, 404, "NoSuchBucket");
    const key = rest.map(decodeURIComponent).join("/");
    const object = objects.get(key);
    const conditions = !options.ignoreConditions;
    const ifMatch = conditions ? req.headers["if-match"] as string | undefined : undefined;
    const ifNoneMatch = conditions ? req.headers["if-none-match"] as string | undefined : undefined;
    if (req.method === "GET" && key === "" && url.searchParams.has("object-lock")) {
      const lock = options.objectLock;
      if (lock === 403) return error(res, 403, "AccessDenied");
      if (lock === 501) return error(res, 501, "NotImplemented");
      if (lock !== "enabled") return error(res, 404, "ObjectLockConfigurationNotFoundError");
      res.writeHead(200, { "content-type": "application/xml" });
      return res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration>` +
          `<ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>`,
      );
    }
    if (req.method === "POST" && url.searchParams.has("uploads")) {
      res.writeHead(200, { "content-type": "application/xml" });
      return res.end(
        `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult>` +
          `<Bucket>${bucket}</Bucket><Key>${xml(key)}</Key><UploadId>probe-1</UploadId>` +
          `</InitiateMultipartUploadResult>`,
      );
    }
    if (req.method === "DELETE" && url.searchParams.has("uploadId")) {
      res.writeHead(204);
      return res.end();
    }
    if (req.method === "GET" && key === "") {
      if (url.searchParams.get("list-type") !== "2") return error(res, 400, "InvalidRequest");
      const prefix = url.searchParams.get("prefix") ?? "";
      const token = url.searchParams.get("continuation-token");
      const after = token ? atob(token) : "";
      const keys = [...objects.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
      const page = keys.slice(0, pageSize);
      const truncated = keys.length > page.length;
      res.writeHead(200, { "content-type": "application/xml" });
      return res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${bucket}</Name>` +
          `<Prefix>${xml(prefix)}</Prefix><KeyCount>${page.length}</KeyCount>` +
          `<IsTruncated>${truncated}</IsTruncated>` +
          (truncated
            ? `<NextContinuationToken>${btoa(page[page.length - 1])}</NextContinuationToken>`
            : "") +
          page.map((k) => {
            const o = objects.get(k)!;
            return `<Contents><Key>${xml(k)}</Key><LastModified>2026-07-01T00:00:00.000Z` +
              `</LastModified><ETag>${xml(o.etag)}</ETag><Size>${o.bytes.length}</Size>` +
              `<StorageClass>STANDARD</StorageClass></Contents>`;
          }).join("") + `</ListBucketResult>`,
      );
    }
    if (req.method === "GET") {
      if (!object) return error(res, 404, "NoSuchKey");
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ""));
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(Number(range[2]), object.bytes.length - 1);
        if (start > end) return error(res, 416, "InvalidRange");
        res.writeHead(206, {
          etag: object.etag,
          "content-range": `bytes ${start}-${end}/${object.bytes.length}`,
        });
        return res.end(object.bytes.subarray(start, end + 1));
      }
      res.writeHead(200, { etag: object.etag, "content-length": object.bytes.length });
      return res.end(object.bytes);
    }
    if (req.method === "PUT") {
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      if (req.headers["x-amz-content-sha256"] !== sha256) {
        return error(res, 400, "XAmzContentSHA256Mismatch");
      }
      const digest = createHash("md5").update(bytes).digest();
      const md5 = req.headers["content-md5"];
      if (md5 !== undefined) md5Sent.push(key);
      if (md5 === undefined && options.objectLock !== "disabled") {
        // S3's own words for it.
        return error(
          res,
          400,
          "InvalidRequest",
          "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with " +
            "Object Lock parameters",
        );
      }
      if (md5 !== undefined && md5 !== Buffer.from(digest).toString("base64")) {
        return error(res, 400, "BadDigest");
      }
      if (ifNoneMatch !== undefined && ifNoneMatch.trim() === "*" && object) {
        return error(res, 412, "PreconditionFailed");
      }
      if (ifMatch !== undefined) {
        if (!object) return error(res, 404, "NoSuchKey");
        if (bare(ifMatch) !== bare(object.etag)) return error(res, 412, "PreconditionFailed");
      }
      const etag = `"${Buffer.from(digest).toString("hex")}"`;
      objects.set(key, { bytes, etag });
      res.writeHead(200, { etag });
      return res.end();
    }
    if (req.method === "DELETE") {
      if (ifMatch !== undefined && object && bare(ifMatch) !== bare(object.etag)) {
        return error(res, 412, "PreconditionFailed");
      }
      if (ifMatch !== undefined && !object) return error(res, 404, "NoSuchKey");
      objects.delete(key);
      res.writeHead(204);
      return res.end();
    }
    error(res, 501, "NotImplemented");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    objects,
    seen,
    md5Sent,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** The S3 environment that points the tool's S3 adapter at the stand-in at `endpoint`. */
export function standinEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: "AKIASTANDIN",
    AWS_SECRET_ACCESS_KEY: "standin-secret-0123456789",
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  };
}
