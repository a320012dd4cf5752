/**
 * A stand-in for the part of the Azure Blob service that Azurite does not implement: blob
 * versions and version-level immutability policies (WORM). Written from the Azure REST
 * reference (Put Blob, Put Block, Put Block List, Get Blob Properties, Get Container Properties,
 * "Version-level immutability support"), for the requests `--retain-days` sends; on loopback,
 * in memory, one container, the development account, Shared Key checked.
 *
 * What it holds to, as the reference says:
 * - Get Container Properties answers `x-ms-immutable-storage-with-versioning-enabled: true` only
 *   for a container created with version-level immutability support (`vlw`);
 * - `x-ms-immutability-policy-until-date` (an RFC 1123 date in the future) and
 *   `x-ms-immutability-policy-mode` (`Unlocked` or `Locked`) come together, need version
 *   2020-06-12 or later, and are refused on a container without that support;
 * - every write of a blob makes a new version; earlier versions are kept, with their policies,
 *   and Get Blob / Get Blob Properties with `versionid=<x-ms-version-id>` read any of them (the
 *   current one without it; 404 BlobNotFound for a version that does not exist);
 * - bodies are checked against their transactional `Content-MD5` (400 Md5Mismatch);
 * - for the archive's manifests and leases: List Blobs, Get Blob (with `x-ms-range`), Put Blob
 *   with `If-None-Match: *` (409 BlobAlreadyExists) or `If-Match` (412 ConditionNotMet), and
 *   Delete Blob (the current version; refused while its policy holds).
 *
 * @example
 * ```ts
 * const standin = await startImmutabilityStandin({ container: "worm", versionLevelWorm: true });
 * const env = { AZURE_STORAGE_CONNECTION_STRING: standin.connectionString };
 * await standin.close();
 * ```
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { Buffer } from "node:buffer";
import { DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY } from "../../lib/azure/credentials.ts";
import { sharedKeyAuthorization } from "../../lib/azure/shared_key.ts";
import { connectionStringFor } from "./azurite.ts";

export interface StoredVersion {
  versionId: string;
  etag: string;
  bytes: Uint8Array;
  metadata: Record<string, string>;
  contentType: string;
  policy?: { until: string; mode: string };
}

export interface StandinRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  status: number;
}

export interface ImmutabilityStandin {
  connectionString: string;
  /** Every version of every blob, oldest first, by name. */
  versions: Map<string, StoredVersion[]>;
  requests: StandinRequest[];
  close(): Promise<void>;
}

const MIN_POLICY_VERSION = "2020-06-12";

/** Starts the stand-in with one container, with or without version-level immutability support. */
export async function startImmutabilityStandin(
  options: { container: string; versionLevelWorm: boolean },
): Promise<ImmutabilityStandin> {
  const versions = new Map<string, StoredVersion[]>();
  const blocks = new Map<string, Uint8Array>();
  const requests: StandinRequest[] = [];
  /** Blobs whose current version was deleted (their versions are kept). */
  const deleted = new Set<string>();
  const current = (name: string) => deleted.has(name) ? undefined : versions.get(name)?.at(-1);
  let counter = 0;

  const server = createServer(async (req, res) => {
    const body = await readAll(req);
    const url = new URL(req.url ?? "/", "http://standin");
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      headers[name] = Array.isArray(value) ? value.join(",") : value ?? "";
    }
    const record: StandinRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      status: 0,
    };
    requests.push(record);
    const answer = (status: number, extra: Record<string, string> = {}, code?: string) => {
      record.status = status;
      res.writeHead(status, {
        date: new Date().toUTCString(),
        "x-ms-version": headers["x-ms-version"] ?? "",
        ...(code ? { "x-ms-error-code": code, "content-type": "application/xml" } : {}),
        ...extra,
      });
      res.end(
        code && req.method !== "HEAD"
          ? `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code>` +
            `<Message>${code} (stand-in)</Message></Error>`
          : undefined,
      );
    };
    if (!signatureValid(req, url, headers)) return answer(403, {}, "AuthenticationFailed");
    const [, account, container, ...rest] = url.pathname.split("/");
    const name = rest.map(decodeURIComponent).join("/");
    if (account !== DEVELOPMENT_ACCOUNT || container !== options.container) {
      return answer(404, {}, "ContainerNotFound");
    }
    const comp = url.searchParams.get("comp");
    if (!name) {
      if (req.method === "HEAD" && url.searchParams.get("restype") === "container") {
        return answer(200, {
          "x-ms-immutable-storage-with-versioning-enabled": String(options.versionLevelWorm),
        });
      }
      if (req.method === "GET" && comp === "list") {
        record.status = 200;
        const prefix = url.searchParams.get("prefix") ?? "";
        const listed = [...versions.keys()].filter((n) => n.startsWith(prefix) && current(n))
          .sort().map((n) => {
            const { bytes, etag } = current(n)!;
            return `<Blob><Name>${escapeXml(n)}</Name><Properties><Content-Length>` +
              `${bytes.length}</Content-Length><Etag>${etag}</Etag></Properties></Blob>`;
          });
        res.writeHead(200, { "content-type": "application/xml" });
        return res.end(
          `<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>${listed.join("")}` +
            `</Blobs><NextMarker /></EnumerationResults>`,
        );
      }
      return answer(400, {}, "UnsupportedHttpVerb");
    }
    // Get Blob and Get Blob Properties of one version (`versionid`), whether current or not.
    const asked = url.searchParams.get("versionid");
    const chosen = asked === null
      ? current(name)
      : versions.get(name)?.find((v) => v.versionId === asked);
    if (req.method === "GET") {
      const latest = chosen;
      if (!latest) return answer(404, {}, "BlobNotFound");
      const range = /^bytes=(\d+)-(\d+)$/.exec(headers["x-ms-range"] ?? "");
      const bytes = range
        ? latest.bytes.subarray(Number(range[1]), Number(range[2]) + 1)
        : latest.bytes;
      record.status = range ? 206 : 200;
      res.writeHead(record.status, {
        "content-length": String(bytes.length),
        "content-type": latest.contentType,
        etag: latest.etag,
        "x-ms-version-id": latest.versionId,
      });
      return res.end(bytes);
    }
    if (req.method === "DELETE") {
      const latest = current(name);
      if (!latest) return answer(404, {}, "BlobNotFound");
      if (headers["if-match"] && headers["if-match"] !== latest.etag) {
        return answer(412, {}, "ConditionNotMet");
      }
      if (latest.policy) return answer(409, {}, "BlobImmutableDueToPolicy");
      deleted.add(name);
      return answer(202);
    }
    if (req.method === "HEAD") {
      const latest = chosen;
      if (!latest) return answer(404, {}, "BlobNotFound");
      const meta = Object.fromEntries(
        Object.entries(latest.metadata).map(([k, v]) => [`x-ms-meta-${k}`, v]),
      );
      return answer(200, {
        "content-length": String(latest.bytes.length),
        "content-type": latest.contentType,
        "x-ms-version-id": latest.versionId,
        ...meta,
        ...(latest.policy
          ? {
            "x-ms-immutability-policy-until-date": latest.policy.until,
            "x-ms-immutability-policy-mode": latest.policy.mode.toLowerCase(),
          }
          : {}),
      });
    }
    if (req.method !== "PUT") return answer(400, {}, "UnsupportedHttpVerb");
    const md5 = headers["content-md5"];
    if (md5 && createHash("md5").update(body).digest("base64") !== md5) {
      return answer(400, {}, "Md5Mismatch");
    }
    if (comp === "block") {
      blocks.set(`${name}\n${url.searchParams.get("blockid")}`, body);
      return answer(201);
    }
    const existing = current(name);
    if (headers["if-none-match"] === "*" && existing) return answer(409, {}, "BlobAlreadyExists");
    if (headers["if-match"] && headers["if-match"] !== existing?.etag) {
      return answer(412, {}, "ConditionNotMet");
    }
    const policy = policyOf(headers);
    if (policy === "invalid") return answer(400, {}, "InvalidHeaderValue");
    if (policy && !options.versionLevelWorm) {
      return answer(409, {}, "ImmutableStorageWithVersioningIsNotEnabled");
    }
    let bytes: Uint8Array;
    let contentType: string;
    if (comp === "blocklist") {
      const ids = [...new TextDecoder().decode(body).matchAll(/<Latest>([^<]*)<\/Latest>/g)]
        .map((m) => m[1]);
      const parts = ids.map((id) => blocks.get(`${name}\n${id}`));
      if (parts.some((p) => p === undefined)) return answer(400, {}, "InvalidBlockList");
      bytes = Buffer.concat(parts as Uint8Array[]);
      for (const key of [...blocks.keys()]) if (key.startsWith(`${name}\n`)) blocks.delete(key);
      contentType = headers["x-ms-blob-content-type"] ?? "application/octet-stream";
    } else if (comp === null && headers["x-ms-blob-type"] === "BlockBlob") {
      bytes = body;
      contentType = headers["content-type"] ?? "application/octet-stream";
    } else {
      return answer(400, {}, "InvalidQueryParameterValue");
    }
    const metadata: Record<string, string> = {};
    for (const [header, value] of Object.entries(headers)) {
      if (header.startsWith("x-ms-meta-")) metadata[header.slice(10)] = value;
    }
    const versionId = new Date(Date.now() + counter++).toISOString().replace("Z", "0000Z");
    const etag = `"0x${counter.toString(16).toUpperCase()}"`;
    const list = versions.get(name) ?? [];
    list.push({ versionId, etag, bytes, metadata, contentType, ...(policy ? { policy } : {}) });
    versions.set(name, list);
    deleted.delete(name);
    return answer(201, { "x-ms-version-id": versionId, etag });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    connectionString: connectionStringFor(`http://127.0.0.1:${port}/${DEVELOPMENT_ACCOUNT}`),
    versions,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** The policy a write asks for; "invalid" when the reference would refuse its headers. */
function policyOf(
  headers: Record<string, string>,
): { until: string; mode: string } | undefined | "invalid" {
  const until = headers["x-ms-immutability-policy-until-date"];
  const mode = headers["x-ms-immutability-policy-mode"];
  if (until === undefined && mode === undefined) return undefined;
  if (until === undefined || mode === undefined) return "invalid";
  if ((headers["x-ms-version"] ?? "") < MIN_POLICY_VERSION) return "invalid";
  // RFC 1123, as the reference's examples: "Fri, 01 Jan 2027 00:00:00 GMT".
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(until)) {
    return "invalid";
  }
  if (Date.parse(until) <= Date.now()) return "invalid";
  if (mode !== "Unlocked" && mode !== "Locked") return "invalid";
  return { until, mode };
}

function signatureValid(req: IncomingMessage, url: URL, headers: Record<string, string>): boolean {
  const signed = { ...headers };
  delete signed.authorization;
  const expected = sharedKeyAuthorization(
    DEVELOPMENT_ACCOUNT,
    DEVELOPMENT_KEY,
    req.method ?? "GET",
    url,
    signed,
  );
  return headers.authorization === expected;
}

function readAll(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
