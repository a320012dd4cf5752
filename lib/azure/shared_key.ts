/**
 * Azure Storage Shared Key authorization, written from the "Authorize with Shared Key" reference
 * (Blob service, version 2009-09-19 and later): the string to sign is the verb, twelve standard
 * headers (Content-Length blank when zero, as from version 2015-02-21), the canonicalized
 * `x-ms-` headers and the canonicalized resource; the signature is its HMAC-SHA256 under the
 * base64-decoded account key, sent as `Authorization: SharedKey ACCOUNT:SIGNATURE`.
 *
 * @example
 * ```ts
 * const url = new URL("https://acct.blob.core.windows.net/logs/a.jsonl");
 * const headers = { "x-ms-date": new Date().toUTCString(), "x-ms-version": "2021-12-02" };
 * const authorization = sharedKeyAuthorization("acct", "a2V5", "HEAD", url, headers);
 * ```
 */
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";

/** The standard headers signed, in the reference's order, each on its own line (blank if absent). */
const SIGNED_HEADERS = [
  "content-encoding",
  "content-language",
  "content-length",
  "content-md5",
  "content-type",
  "date",
  "if-modified-since",
  "if-match",
  "if-none-match",
  "if-unmodified-since",
  "range",
] as const;

/**
 * The `x-ms-` headers as signed: names lowercased and sorted, each value's runs of whitespace
 * folded into one space and trimmed, one `name:value\n` line each.
 *
 * @example
 * ```ts
 * canonicalizedHeaders({ "X-Ms-Version": "2021-12-02", "x-ms-date": " Fri,  01 Jan 2027 " });
 * // "x-ms-date:Fri, 01 Jan 2027\nx-ms-version:2021-12-02\n"
 * ```
 */
export function canonicalizedHeaders(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([name, value]) => [name.toLowerCase().trim(), value] as const)
    .filter(([name]) => name.startsWith("x-ms-"))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}:${value.replace(/\s+/g, " ").trim()}\n`)
    .join("");
}

/**
 * `/ACCOUNT` + the URL's encoded path, then each query parameter (name lowercased, decoded,
 * sorted; several values sorted and joined by commas) on its own line as `name:value`. For the
 * emulator's path-style URLs the account appears twice (`/devstoreaccount1/devstoreaccount1/c`).
 *
 * @example
 * ```ts
 * canonicalizedResource("acct", new URL("https://acct.blob.core.windows.net/c/b?comp=block&blockid=QQ%3D%3D"));
 * // "/acct/c/b\nblockid:QQ==\ncomp:block"
 * ```
 */
export function canonicalizedResource(account: string, url: URL): string {
  const params = new Map<string, string[]>();
  for (const [name, value] of url.searchParams) {
    const key = name.toLowerCase();
    params.set(key, [...(params.get(key) ?? []), value]);
  }
  const lines = [...params.keys()].sort().map((name) =>
    `\n${name}:${params.get(name)!.sort().join(",")}`
  );
  return `/${account}${url.pathname || "/"}${lines.join("")}`;
}

/**
 * The string a Shared Key request signs. `headers` are the request's own (any case); a zero
 * Content-Length is signed blank.
 *
 * @example
 * ```ts
 * const url = new URL("http://127.0.0.1:10000/devstoreaccount1/c?restype=container");
 * stringToSign("devstoreaccount1", "HEAD", url, { "x-ms-date": "Fri, 01 Jan 2027 00:00:00 GMT" });
 * ```
 */
export function stringToSign(
  account: string,
  method: string,
  url: URL,
  headers: Record<string, string>,
): string {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const standard = SIGNED_HEADERS.map((name) => {
    const value = lower.get(name) ?? "";
    return name === "content-length" && value === "0" ? "" : value;
  });
  return [method.toUpperCase(), ...standard].join("\n") + "\n" +
    canonicalizedHeaders(headers) + canonicalizedResource(account, url);
}

/**
 * The `Authorization` header value for a request, signed with the account key (base64, as the
 * portal shows it).
 *
 * @example
 * ```ts
 * const url = new URL("https://acct.blob.core.windows.net/c?restype=container");
 * sharedKeyAuthorization("acct", "a2V5", "HEAD", url, { "x-ms-date": new Date().toUTCString() });
 * // "SharedKey acct:..."
 * ```
 */
export function sharedKeyAuthorization(
  account: string,
  keyBase64: string,
  method: string,
  url: URL,
  headers: Record<string, string>,
): string {
  const signature = createHmac("sha256", Buffer.from(keyBase64, "base64"))
    .update(stringToSign(account, method, url, headers), "utf8")
    .digest("base64");
  return `SharedKey ${account}:${signature}`;
}
