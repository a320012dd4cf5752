/**
 * Which storage account a run writes to, where its Blob endpoint is, and how requests to it are
 * authorized, from the standard Azure variables: `AZURE_STORAGE_CONNECTION_STRING` (its
 * `AccountName`/`AccountKey`, `SharedAccessSignature`, `BlobEndpoint` for an emulator or a custom
 * domain, `DefaultEndpointsProtocol`/`EndpointSuffix`, or `UseDevelopmentStorage=true`), else
 * `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` (Shared Key) or `AZURE_STORAGE_SAS_TOKEN`.
 * Every one of these is a secret (`AZURE_SECRET_ENV`); none is ever sent anywhere but the
 * account's own endpoint.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const account = azureAccountFrom(env, undefined); // for az://CONTAINER/PREFIX
 * ```
 */
import { usage } from "../errors.ts";
import { isLiteralLoopback } from "../urls.ts";
import type { Env } from "../settings.ts";

/** The variables that hold Azure credentials: their values are redacted from all output. */
export const AZURE_SECRET_ENV = [
  "AZURE_STORAGE_CONNECTION_STRING",
  "AZURE_STORAGE_KEY",
  "AZURE_STORAGE_SAS_TOKEN",
] as const;

/** Azurite's well-known development account (public, documented by Microsoft). */
export const DEVELOPMENT_ACCOUNT = "devstoreaccount1";
export const DEVELOPMENT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** How requests are authorized: signed with the account key, or carrying a SAS token. */
export type AzureAuth =
  | { kind: "shared-key"; key: string }
  | { kind: "sas"; token: string };

/** A storage account as the Blob client uses it. */
export interface AzureAccount {
  name: string;
  /**
   * The Blob service's base URL, no trailing slash; its path is empty on Azure and
   * `/ACCOUNT` on an emulator (path-style).
   */
  endpoint: URL;
  auth: AzureAuth;
  /** Where the credentials came from, for messages. */
  source: string;
}

/**
 * A connection string's `Key=Value;` pairs (keys as written; values may hold `=`, as keys and
 * SAS tokens do).
 *
 * @example
 * ```ts
 * parseConnectionString("AccountName=a;AccountKey=k==;");
 * // { AccountName: "a", AccountKey: "k==" }
 * ```
 */
export function parseConnectionString(text: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const part of text.split(";")) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at <= 0) {
      throw usage(
        "AZURE_STORAGE_CONNECTION_STRING is not a connection string (each part must be " +
          "Key=Value, separated by ';'); copy it again from the storage account's Access keys",
      );
    }
    pairs[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return pairs;
}

/** A connection string key, looked up case-insensitively (Azure's own parsers ignore case). */
function field(pairs: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(pairs).find((k) => k.toLowerCase() === name.toLowerCase());
  const value = key === undefined ? undefined : pairs[key];
  return value === "" ? undefined : value;
}

/** A SAS token as a query string without the leading `?`. */
function sasToken(text: string): string {
  return text.trim().replace(/^\?/, "");
}

/** An endpoint URL, checked, without a trailing slash or any query. */
function endpointUrl(text: string, from: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`${from} is not a URL: ${text}`);
  }
  // Every request carries a signature or the SAS token: https, or plain http only to loopback.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLiteralLoopback(url))) {
    throw usage(
      `${from} must be an https URL (plain http only to a loopback address such as Azurite's); ` +
        `got ${url.origin}`,
    );
  }
  url.search = "";
  url.hash = "";
  url.pathname = url.pathname.replace(/\/+$/, "");
  return url;
}

/** `https://ACCOUNT.blob.core.windows.net` (or another cloud's suffix). */
function publicEndpoint(account: string, protocol = "https", suffix = "core.windows.net"): URL {
  return endpointUrl(`${protocol}://${account}.blob.${suffix}`, "the Blob endpoint");
}

/**
 * The account from the environment. `urlAccount` is the account an `https://ACCOUNT.blob.core.
 * windows.net/...` destination names (undefined for `az://`): the credentials must be for it,
 * and requests go to that host. Usage errors name what is missing or disagrees.
 *
 * @example
 * ```ts
 * const env = { AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_KEY: "a2V5" };
 * azureAccountFrom(env, undefined).endpoint.href; // "https://acct.blob.core.windows.net/"
 * ```
 */
export function azureAccountFrom(env: Env, urlAccount: string | undefined): AzureAccount {
  const connection = env.AZURE_STORAGE_CONNECTION_STRING?.trim();
  const account = connection
    ? fromConnectionString(connection, urlAccount)
    : fromAccountVariables(env, urlAccount);
  if (urlAccount !== undefined && account.name !== urlAccount) {
    throw usage(
      `the destination names storage account ${urlAccount}, but ${account.source} is for ` +
        `account ${account.name}; use az://CONTAINER/PREFIX, or credentials for ${urlAccount}`,
    );
  }
  return account;
}

function fromConnectionString(text: string, urlAccount: string | undefined): AzureAccount {
  const source = "AZURE_STORAGE_CONNECTION_STRING";
  const pairs = parseConnectionString(text);
  if (field(pairs, "UseDevelopmentStorage")?.toLowerCase() === "true") {
    const proxy = field(pairs, "DevelopmentStorageProxyUri");
    const base = proxy ? endpointUrl(proxy, `${source}'s DevelopmentStorageProxyUri`) : undefined;
    const endpoint = endpointUrl(
      base
        ? `${base.origin}/${DEVELOPMENT_ACCOUNT}`
        : `http://127.0.0.1:10000/${DEVELOPMENT_ACCOUNT}`,
      source,
    );
    return {
      name: DEVELOPMENT_ACCOUNT,
      endpoint,
      auth: { kind: "shared-key", key: DEVELOPMENT_KEY },
      source,
    };
  }
  const key = field(pairs, "AccountKey");
  const sas = field(pairs, "SharedAccessSignature");
  const blobEndpoint = field(pairs, "BlobEndpoint");
  const endpoint = blobEndpoint ? endpointUrl(blobEndpoint, `${source}'s BlobEndpoint`) : undefined;
  const name = field(pairs, "AccountName") ?? accountOfEndpoint(endpoint) ?? urlAccount;
  if (!name) {
    throw usage(`${source} has no AccountName (nor a BlobEndpoint that names the account)`);
  }
  if (!key && !sas) {
    throw usage(
      `${source} has neither AccountKey nor SharedAccessSignature; copy the full connection ` +
        `string from the storage account's Access keys (or a SAS connection string)`,
    );
  }
  const protocol = field(pairs, "DefaultEndpointsProtocol") ?? "https";
  return {
    name,
    endpoint: endpoint ?? publicEndpoint(name, protocol, field(pairs, "EndpointSuffix")),
    auth: key ? { kind: "shared-key", key } : { kind: "sas", token: sasToken(sas!) },
    source,
  };
}

/** The account a `https://ACCOUNT.blob.<suffix>` endpoint names, or its path-style first segment. */
function accountOfEndpoint(endpoint: URL | undefined): string | undefined {
  if (!endpoint) return undefined;
  const host = /^([a-z0-9]{3,24})\.blob\./.exec(endpoint.hostname)?.[1];
  return host ?? (endpoint.pathname.split("/")[1] || undefined);
}

function fromAccountVariables(env: Env, urlAccount: string | undefined): AzureAccount {
  const name = env.AZURE_STORAGE_ACCOUNT?.trim() || urlAccount;
  const key = env.AZURE_STORAGE_KEY?.trim();
  const sas = env.AZURE_STORAGE_SAS_TOKEN?.trim();
  if (!name || (!key && !sas)) {
    throw usage(
      "an Azure Blob destination needs credentials: set AZURE_STORAGE_CONNECTION_STRING, or " +
        "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY (Shared Key) or AZURE_STORAGE_SAS_TOKEN",
    );
  }
  const source = key ? "AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY" : "AZURE_STORAGE_SAS_TOKEN";
  return {
    name,
    endpoint: publicEndpoint(name),
    auth: key ? { kind: "shared-key", key } : { kind: "sas", token: sasToken(sas!) },
    source: env.AZURE_STORAGE_ACCOUNT ? source : `${source} (account ${name} from the URL)`,
  };
}
