/**
 * The Azure Blob destination's configuration: credentials from the environment (connection
 * string, account with key or SAS), the two URL forms and what they refuse, SAS tokens checked
 * up front, the headers a blob is stored with, and how the service's answers become errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BlobClient, errorCode } from "../../lib/azure/blob_client.ts";
import {
  azureAccountFrom,
  DEVELOPMENT_KEY,
  parseConnectionString,
} from "../../lib/azure/credentials.ts";
import { checkSasToken } from "../../lib/azure/sas.ts";
import { CliError, TransientError } from "../../lib/errors.ts";
import { parseRunArgs } from "../../lib/commands/run.ts";
import { DESTINATIONS, destinationSecrets } from "../../lib/destinations/mod.ts";
import { blobHeaders, blockId, parseAzureTarget } from "../../lib/destinations/azure_blob.ts";

const API_KEY = { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" };
const KEY_ENV = { AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_KEY: "a2V5a2V5a2V5" };

test("a connection string gives the account, its key and the BlobEndpoint (Azurite)", () => {
  const text = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
    `AccountKey=${DEVELOPMENT_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;`;
  assert.deepEqual(parseConnectionString(text).AccountKey, DEVELOPMENT_KEY);
  const account = azureAccountFrom({ AZURE_STORAGE_CONNECTION_STRING: text }, undefined);
  assert.equal(account.name, "devstoreaccount1");
  assert.equal(account.endpoint.href, "http://127.0.0.1:10000/devstoreaccount1");
  assert.deepEqual(account.auth, { kind: "shared-key", key: DEVELOPMENT_KEY });
});

test("a connection string without an endpoint goes to the account's public one", () => {
  const account = azureAccountFrom({
    AZURE_STORAGE_CONNECTION_STRING:
      "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.usgovcloudapi.net",
  }, undefined);
  assert.equal(account.endpoint.origin, "https://acct.blob.core.usgovcloudapi.net");
  const sas = azureAccountFrom({
    AZURE_STORAGE_CONNECTION_STRING:
      "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2021&sig=x%3D",
  }, undefined);
  assert.equal(sas.name, "acct");
  assert.deepEqual(sas.auth, { kind: "sas", token: "sv=2021&sig=x%3D" });
});

test("UseDevelopmentStorage=true is Azurite's default endpoint and account", () => {
  const account = azureAccountFrom(
    { AZURE_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true" },
    undefined,
  );
  assert.equal(account.endpoint.href, "http://127.0.0.1:10000/devstoreaccount1");
});

test("AZURE_STORAGE_ACCOUNT with a key or a SAS token; nothing set is one clear usage error", () => {
  assert.equal(azureAccountFrom(KEY_ENV, undefined).auth.kind, "shared-key");
  const sas = azureAccountFrom(
    { AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_SAS_TOKEN: "?sv=1&sig=abc" },
    undefined,
  );
  assert.deepEqual(sas.auth, { kind: "sas", token: "sv=1&sig=abc" });
  assert.equal(sas.endpoint.origin, "https://acct.blob.core.windows.net");
  assert.throws(
    () => azureAccountFrom({}, undefined),
    /needs credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with/,
  );
});

test("an https destination takes its account from the host; other credentials are refused", () => {
  assert.equal(
    azureAccountFrom({ AZURE_STORAGE_KEY: "a2V5" }, "fromurl").endpoint.origin,
    "https://fromurl.blob.core.windows.net",
  );
  assert.throws(
    () => azureAccountFrom(KEY_ENV, "other"),
    /names storage account other, but AZURE_STORAGE_ACCOUNT\/AZURE_STORAGE_KEY is for account acct/,
  );
});

test("az:// and the account's https URL give container and prefix; bad names are refused", () => {
  assert.deepEqual(parseAzureTarget("az://logs/openai/x/"), {
    account: undefined,
    container: "logs",
    prefix: "openai/x/",
  });
  assert.deepEqual(parseAzureTarget("https://acct.blob.core.windows.net/logs"), {
    account: "acct",
    container: "logs",
    prefix: "",
  });
  assert.throws(() => parseAzureTarget("az://Logs/x"), /'Logs' is not a valid container name/);
  assert.throws(() => parseAzureTarget("az://a--b/x"), /not a valid container name/);
  assert.throws(() => parseAzureTarget("az://logs/x?sv=1"), /no query or fragment/);
  assert.throws(() => parseAzureTarget("az://logs/../x"), /'\.' or '\.\.' segment/);
});

test("the registry gives az:// and only the account's https host to the Azure destination", () => {
  const settings = parseRunArgs(
    ["ws-1", "AUTH_LOG", "5", "1h", "--output-dir", "https://acct.blob.core.windows.net/c1c/p"],
    { ...API_KEY, AZURE_STORAGE_KEY: "a2V5" },
    new Date(),
  );
  assert.equal(
    settings?.destination.label,
    "--output-dir https://acct.blob.core.windows.net/c1c/p",
  );
  assert.ok(
    parseRunArgs(
      ["ws-1", "AUTH_LOG", "5", "1h", "--output-dir", "az://logs/p"],
      { ...API_KEY, ...KEY_ENV },
      new Date(),
    ),
  );
  for (
    const other of ["https://example.com/logs", "https://acct.blob.core.windows.net.evil.io/c"]
  ) {
    assert.throws(
      () =>
        parseRunArgs(["ws-1", "AUTH_LOG", "5", "1h", "--output-dir", other], {
          ...API_KEY,
          ...KEY_ENV,
        }, new Date()),
      /no destination takes this https:\/\/ URL; --output-dir takes a local path or a URL of .*https:\/\//,
      other,
    );
  }
});

test("every Azure credential variable is a secret", () => {
  const env = {
    AZURE_STORAGE_CONNECTION_STRING: "AccountName=a;AccountKey=k",
    AZURE_STORAGE_KEY: "key-value",
    AZURE_STORAGE_SAS_TOKEN: "sv=1&sig=s",
    AZURE_STORAGE_ACCOUNT: "public-name",
  };
  const secrets = destinationSecrets(env, DESTINATIONS);
  for (
    const name of [
      "AZURE_STORAGE_CONNECTION_STRING",
      "AZURE_STORAGE_KEY",
      "AZURE_STORAGE_SAS_TOKEN",
    ] as const
  ) {
    assert.ok(secrets.includes(env[name]), name);
  }
});

test("a SAS token that cannot write, cannot read, or has expired is refused up front", () => {
  const now = Date.parse("2027-01-01T00:00:00Z");
  checkSasToken("sv=2021-12-02&sp=racwl&se=2027-02-01T00:00:00Z&sig=x", "T", now);
  assert.throws(() => checkSasToken("sp=rl&sig=x", "T", now), /T does not allow write \(w\)/);
  assert.throws(() => checkSasToken("sp=cw&sig=x", "T", now), /does not allow read \(r\)/);
  assert.throws(
    () => checkSasToken("sp=rcwl&se=2026-12-31T00:00:00Z&sig=x", "T", now),
    /T expired at 2026-12-31T00:00:00.000Z/,
  );
  assert.throws(() => checkSasToken("sv=1&sp=rw", "T", now), /not a SAS token/);
});

test("a blob's headers carry metadata, content type and the immutability policy", () => {
  const until = new Date("2027-01-08T00:00:00Z");
  const headers = blobHeaders({
    metadata: { sha256: "ab", size: "12" },
    contentType: "application/x-ndjson",
    retention: { mode: "compliance", until },
  }, "x-ms-blob-content-type");
  assert.deepEqual(headers, {
    "x-ms-blob-content-type": "application/x-ndjson",
    "x-ms-meta-sha256": "ab",
    "x-ms-meta-size": "12",
    "x-ms-immutability-policy-until-date": "Fri, 08 Jan 2027 00:00:00 GMT",
    "x-ms-immutability-policy-mode": "Locked",
  });
  const governance = blobHeaders({
    metadata: {},
    contentType: "x",
    retention: { mode: "governance", until },
  }, "content-type");
  assert.equal(governance["x-ms-immutability-policy-mode"], "Unlocked");
});

test("block ids have one length for every block of an upload, and differ between uploads", () => {
  const ids = [1, 9, 10, 500, 50_000].map((n) => blockId("0a1b2c3d4e5f", n));
  assert.equal(new Set(ids.map((id) => id.length)).size, 1);
  assert.notEqual(blockId("0a1b2c3d4e5f", 1), blockId("ffffffffffff", 1));
});

test("503, 500 and ServerBusy are retryable with Retry-After; 403 names the clock skew", () => {
  const client = new BlobClient({
    name: "acct",
    endpoint: new URL("https://acct.blob.core.windows.net"),
    auth: { kind: "shared-key", key: "a2V5" },
    source: "AZURE_STORAGE_KEY",
  }, { now: () => Date.parse("2027-01-01T00:30:00Z") });
  const call = { method: "PUT" as const, container: "c", blob: "b", what: "uploading b" };
  const busy = client.failure({
    status: 503,
    headers: new Headers({ "retry-after": "3", "x-ms-error-code": "ServerBusy" }),
    text: "",
  }, call);
  assert.ok(busy instanceof TransientError);
  assert.equal(busy.retryAfterMs, 3000);
  assert.match(busy.message, /answered 503 ServerBusy while uploading b \(acct\/c\/b\)/);
  const skewed = client.failure({
    status: 403,
    headers: new Headers({ date: "Fri, 01 Jan 2027 00:00:00 GMT" }),
    text: "<Error><Code>AuthenticationFailed</Code><Message>Server failed</Message></Error>",
  }, call);
  assert.ok(skewed instanceof CliError && !(skewed instanceof TransientError));
  assert.equal(skewed.kind, "auth");
  assert.match(skewed.message, /clock is 1800 s ahead of the storage service's/);
  const missing = client.failure({
    status: 404,
    headers: new Headers({ "x-ms-error-code": "ContainerNotFound" }),
    text: "",
  }, call);
  assert.match(missing.message, /container c does not exist in storage account acct/);
  assert.equal(
    errorCode({ status: 409, headers: new Headers(), text: "<Error><Code>X</Code></Error>" }),
    "X",
  );
});

test("a SAS token travels in the query to the account's endpoint only", () => {
  const client = new BlobClient({
    name: "acct",
    endpoint: new URL("https://acct.blob.core.windows.net"),
    auth: { kind: "sas", token: "sv=2021-12-02&sp=rcw&sig=abc%2B" },
    source: "AZURE_STORAGE_SAS_TOKEN",
  });
  const url = client.url("logs", "AUTH_LOG/2027-01-01/e 1.jsonl", { comp: "block" });
  assert.equal(url.origin, "https://acct.blob.core.windows.net");
  assert.equal(url.pathname, "/logs/AUTH_LOG/2027-01-01/e%201.jsonl");
  assert.equal(url.searchParams.get("sig"), "abc+");
  assert.equal(url.searchParams.get("comp"), "block");
});
