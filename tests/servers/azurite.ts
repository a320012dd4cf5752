/**
 * Azurite (npm `azurite@3.35.0`, the Azure Storage emulator) for the Azure Blob tests: started
 * once per test process on a free loopback port, with its well-known development account and
 * telemetry off, in a temp directory removed at exit; stopped when the process exits.
 *
 * When `azurite-blob` is not installed, `azuriteSkip()` gives the reason to skip, and with
 * `CI=true` the tests fail with a message naming the install line instead.
 *
 * @example
 * ```ts
 * const azurite = await startAzurite();
 * await azurite.createContainer("logs");
 * const env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
 * ```
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { BlobClient } from "../../lib/azure/blob_client.ts";
import { DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY } from "../../lib/azure/credentials.ts";
import { sharedKeyAuthorization } from "../../lib/azure/shared_key.ts";

export const AZURITE_INSTALL = "npm install -g azurite@3.35.0";

/** A running Azurite blob service. */
export interface Azurite {
  /** e.g. `http://127.0.0.1:41234/devstoreaccount1` */
  blobEndpoint: string;
  port: number;
  /** The connection string of the development account at this endpoint. */
  connectionString: string;
  /** The development account's connection string pointed at another endpoint (a proxy). */
  connectionStringVia(blobEndpoint: string): string;
  client: BlobClient;
  /** Creates a container (409 if it exists is fine). */
  createContainer(name: string): Promise<void>;
  /** Every committed blob under `prefix`: name, size and metadata. */
  listBlobs(container: string, prefix?: string): Promise<ListedBlob[]>;
  /** A blob's bytes. */
  blobBytes(container: string, name: string): Promise<Uint8Array>;
}

export interface ListedBlob {
  name: string;
  size: number;
  metadata: Record<string, string>;
  /** Block blob's committed block count is not listed; the content type is. */
  contentType: string;
}

/** Why the Azure tests cannot run here, or undefined when they can. Throws on CI without it. */
export function azuriteSkip(): string | undefined {
  const found = spawnSync("azurite-blob", ["--version"], { stdio: "ignore" });
  if (!found.error && found.status === 0) return undefined;
  const why = `azurite-blob is not installed (${AZURITE_INSTALL})`;
  if (process.env.CI === "true") {
    throw new Error(`azure (Azurite) tests cannot run on CI: ${why}`);
  }
  return why;
}

let started: Promise<Azurite> | undefined;

/** Azurite for this process: started by the first call, the same one afterwards. */
export function startAzurite(): Promise<Azurite> {
  started ??= launch();
  return started;
}

/**
 * An account SAS token of the development account for the Blob service (version 2019-12-12, whose
 * string to sign is the account, permissions, services, resource types, start, expiry, IP,
 * protocol and version, each followed by a newline), as the "Create an account SAS" reference
 * builds it.
 */
export function accountSas(permissions: string, expiry: Date, key = DEVELOPMENT_KEY): string {
  const se = expiry.toISOString().replace(/\.\d{3}Z$/, "Z");
  const version = "2019-12-12";
  const signed = [DEVELOPMENT_ACCOUNT, permissions, "b", "sco", "", se, "", "", version, ""]
    .join("\n");
  const sig = createHmac("sha256", Buffer.from(key, "base64")).update(signed).digest("base64");
  return new URLSearchParams({ sv: version, ss: "b", srt: "sco", sp: permissions, se, sig })
    .toString();
}

export function connectionStringFor(blobEndpoint: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${DEVELOPMENT_ACCOUNT};` +
    `AccountKey=${DEVELOPMENT_KEY};BlobEndpoint=${blobEndpoint};`;
}

/**
 * Runs Azurite under a small Node watchdog that kills it and removes its directory once its
 * stdin closes: when this test process exits, however it ends (even by SIGKILL), the pipe closes.
 * (An exit hook alone does not run under every test runner.)
 */
const WATCHDOG = `
const { spawn } = require("node:child_process");
const { rmSync } = require("node:fs");
const [location, ...args] = process.argv.slice(1);
const child = spawn("azurite-blob", ["--location", location, ...args], { stdio: ["ignore", "inherit", "inherit"] });
const stop = () => { child.kill("SIGKILL"); rmSync(location, { recursive: true, force: true }); process.exit(0); };
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
child.on("exit", (code) => { rmSync(location, { recursive: true, force: true }); process.exit(code ?? 1); });
`;

async function launch(): Promise<Azurite> {
  const location = mkdtempSync(join(tmpdir(), "oai-azurite-"));
  const child = spawn("node", [
    "-e",
    WATCHDOG,
    location,
    "--blobHost",
    "127.0.0.1",
    "--blobPort",
    "0",
    "--skipApiVersionCheck",
    "--disableTelemetry",
    "--silent",
  ], { stdio: ["pipe", "pipe", "pipe"] });
  process.on("exit", () => child.stdin?.destroy());
  const port = await listeningPort(child);
  // The test process may end while Azurite runs: its stdin closing stops the watchdog above.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void })?.unref?.();
  }
  const blobEndpoint = `http://127.0.0.1:${port}/${DEVELOPMENT_ACCOUNT}`;
  const connectionString = connectionStringFor(blobEndpoint);
  const client = new BlobClient({
    name: DEVELOPMENT_ACCOUNT,
    endpoint: new URL(blobEndpoint),
    auth: { kind: "shared-key", key: DEVELOPMENT_KEY },
    source: "the test",
  });
  return {
    blobEndpoint,
    port,
    connectionString,
    connectionStringVia: connectionStringFor,
    client,
    async createContainer(name) {
      await client.expect({
        method: "PUT",
        container: name,
        query: { restype: "container" },
        what: `creating container ${name}`,
      }, [201, 409]);
    },
    listBlobs: (container, prefix) => listBlobs(client, container, prefix),
    async blobBytes(container, name) {
      const url = client.url(container, name);
      const headers = { "x-ms-date": new Date().toUTCString(), "x-ms-version": "2021-12-02" };
      const authorization = sharedKeyAuthorization(
        DEVELOPMENT_ACCOUNT,
        DEVELOPMENT_KEY,
        "GET",
        url,
        headers,
      );
      const response = await fetch(url, { headers: { ...headers, authorization } });
      if (response.status !== 200) throw new Error(`GET ${url.pathname}: ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

/** The port Azurite printed once it listens (`successfully listens on http://127.0.0.1:PORT`). */
function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`Azurite did not start within 30 s: ${out}`));
    }, 30_000);
    const onData = (chunk: Uint8Array) => {
      out += new TextDecoder().decode(chunk);
      const port = /listens on https?:\/\/[^:\s]+:(\d+)/.exec(out)?.[1];
      if (port) {
        clearTimeout(timer);
        resolve(Number(port));
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited (${code}) before it listened: ${out}`));
    });
  });
}

/** List Blobs with metadata, following `NextMarker`. */
async function listBlobs(
  client: BlobClient,
  container: string,
  prefix = "",
): Promise<ListedBlob[]> {
  const blobs: ListedBlob[] = [];
  let marker = "";
  do {
    const answer = await client.expect({
      method: "GET",
      container,
      query: {
        restype: "container",
        comp: "list",
        include: "metadata",
        ...(prefix ? { prefix } : {}),
        ...(marker ? { marker } : {}),
      },
      what: `listing ${container}`,
    }, [200]);
    for (const [, body] of answer.text.matchAll(/<Blob>([\s\S]*?)<\/Blob>/g)) {
      const metadata: Record<string, string> = {};
      const meta = /<Metadata>([\s\S]*?)<\/Metadata>/.exec(body)?.[1] ?? "";
      for (const [, name, value] of meta.matchAll(/<([A-Za-z0-9_]+)>([^<]*)<\/\1>/g)) {
        metadata[name.toLowerCase()] = value;
      }
      blobs.push({
        name: unescapeXml(/<Name>([^<]*)<\/Name>/.exec(body)?.[1] ?? ""),
        size: Number(/<Content-Length>(\d+)<\/Content-Length>/.exec(body)?.[1] ?? NaN),
        contentType: /<Content-Type>([^<]*)<\/Content-Type>/.exec(body)?.[1] ?? "",
        metadata,
      });
    }
    marker = /<NextMarker>([^<]*)<\/NextMarker>/.exec(answer.text)?.[1] ?? "";
  } while (marker);
  return blobs;
}

function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}
