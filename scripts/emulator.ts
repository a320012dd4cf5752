/**
 * Runs the local Compliance API emulator with the demo dataset until interrupted, for trying the
 * CLI by hand or benchmarking it. Prints `COMPLIANCE_API_BASE=<url>` on stdout; the key is never
 * printed: it is read from `EMULATOR_KEY`, or generated and written to an owner-only file whose
 * path goes to stderr (likewise a key scoped to some event types, from `EMULATOR_SCOPED_KEY`).
 *
 * Usage: deno run -A scripts/emulator.ts [options]   (or: bun scripts/emulator.ts; --help lists them)
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  demoDataset,
  type DownloadLimit,
  type Emulator,
  type Fault,
  PortInUseError,
  REFERENCE_DOWNLOAD_LIMIT,
  REFERENCE_RETENTION_DAYS,
  startEmulator,
} from "../tests/emulator/mod.ts";

const USAGE = `usage: scripts/emulator.ts [options]

Runs a local Compliance API with the demo dataset until Ctrl-C:
  workspace ws-0f0e0d0c-demo    250 AUTH_LOG and 40 AUDIT_LOG files over the last two days
  organization org-demoorg123   12 APP_LOG, 6 APP_AUTH_LOG and 44 hourly COSTS files
Each route carries its own event types, as the API's does: AUTH_LOG on org-demoorg123 (or COSTS
on the workspace) answers 400.

Options:
  --port N                The API listens on port N and the storage host on port N+1
                          (default: any two free ports).
  --latency MS            Add MS milliseconds before every answer.
  --download-limit N[/S]  Answer 429 with Retry-After past N download requests per rolling
                          S seconds (default S: 60) per key. The real API's limit is
                          ${REFERENCE_DOWNLOAD_LIMIT.requests}/${
  REFERENCE_DOWNLOAD_LIMIT.windowMs / 1000
}. Default: no limit.
  --url-ttl S             Signed storage URLs expire S seconds after the API hands them out
                          (default 300, the API's 5 minutes); storage then answers 403.
  --retention-days D      Files older than D days are gone: not listed, and 404 on download
                          (default ${REFERENCE_RETENTION_DAYS}, the API's retention).
  --scoped-key TYPES      Also make a second key authorized only for these comma-separated
                          event types (others answer 403 naming the missing scope). It is read
                          from EMULATOR_SCOPED_KEY, or written to a file named on stderr.
  --gone ID               The listed file ID answers 404 "The log file was not found or is no
                          longer available" on download, as an expired file does (repeatable;
                          see the ids with: oai-compliance-logs list <principal> <type>).
  --gone-plain ID         The listed file ID answers a bare 404 (repeatable).
  --fault JSON            Queue a fault (repeatable): a JSON object as tests pass to inject(),
                          see tests/emulator/faults.ts. "times" (default 1) counts the requests
                          it hits; use 1e9 for every one. For example:
                            '{"target":"storage","cutAfterBytes":5000,"times":3}'
                              cut the next 3 file downloads after 5000 bytes
                            '{"target":"list","status":429,"headers":{"retry-after":"2"}}'
                              answer the next listing 429
                            '{"target":"download","status":503,"times":2}'
                              fail the next 2 download-endpoint requests
                            '{"target":"storage","corruptBytes":true}'
                              flip bytes in the next file (a SHA-256 mismatch)
  -h, --help              Show this help.

Set EMULATOR_KEY to choose the key (otherwise one is generated into an owner-only file).`;

interface Args {
  port: number;
  latencyMs: number;
  downloadLimit?: DownloadLimit;
  urlTtlMs: number;
  retentionDays: number;
  scopedTypes?: string[];
  gone: { id: string; style: "unavailable" | "plain" }[];
  faults: Fault[];
}

function parseArgs(argv: string[]): Args {
  const out: Args = {
    port: 0,
    latencyMs: 0,
    urlTtlMs: 300_000,
    retentionDays: REFERENCE_RETENTION_DAYS,
    gone: [],
    faults: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const eq = argv[i].indexOf("=");
    const flag = eq > 0 && argv[i].startsWith("--") ? argv[i].slice(0, eq) : argv[i];
    const inline = flag === argv[i] ? undefined : argv[i].slice(eq + 1);
    const value = () => {
      const raw = inline ?? argv[++i];
      if (raw === undefined) throw new Error(`${flag} wants a value`);
      return raw;
    };
    const number = (min: number, max: number, raw = value()) => {
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || n < min || n > max) {
        throw new Error(`${flag} wants an integer from ${min} to ${max}, got ${raw}`);
      }
      return n;
    };
    if (flag === "--port") out.port = number(1, 65534);
    else if (flag === "--latency") out.latencyMs = number(0, 60_000);
    else if (flag === "--url-ttl") out.urlTtlMs = number(1, 86_400) * 1000;
    else if (flag === "--retention-days") out.retentionDays = number(1, 3650);
    else if (flag === "--download-limit") {
      const [requests, seconds = "60", ...rest] = value().split("/");
      if (rest.length) throw new Error(`--download-limit wants N or N/S, got ${argv[i]}`);
      out.downloadLimit = {
        requests: number(1, 1_000_000, requests),
        windowMs: number(1, 86_400, seconds) * 1000,
      };
    } else if (flag === "--scoped-key") {
      const types = value().split(",").map((t) => t.trim()).filter((t) => t !== "");
      if (!types.length || types.some((t) => !/^[A-Z][A-Z0-9_]*$/.test(t))) {
        throw new Error(`--scoped-key wants event types like AUTH_LOG,AUDIT_LOG, got ${argv[i]}`);
      }
      out.scopedTypes = types;
    } else if (flag === "--gone") out.gone.push({ id: value(), style: "unavailable" });
    else if (flag === "--gone-plain") out.gone.push({ id: value(), style: "plain" });
    else if (flag === "--fault") {
      const raw = value();
      let fault: Fault;
      try {
        fault = JSON.parse(raw);
      } catch {
        throw new Error(`--fault wants a JSON object, got ${raw}`);
      }
      if (typeof fault !== "object" || fault === null || Array.isArray(fault)) {
        throw new Error(`--fault wants a JSON object, got ${raw}`);
      }
      out.faults.push(fault);
    } else if (flag === "-h" || flag === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${argv[i]} (see --help)`);
  }
  return out;
}

let args: Args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exit(2);
}

let keyDir: string | null = null;
/** Writes a generated key to an owner-only file in a fresh directory; returns its path. */
function writeKey(name: string, value: string): string {
  keyDir ??= mkdtempSync(join(tmpdir(), "oai-compliance-emulator-"));
  const path = join(keyDir, name);
  writeFileSync(path, value, { mode: 0o600 });
  return path;
}
const generated = () => `emu-${randomBytes(24).toString("hex")}`;

const key = process.env.EMULATOR_KEY || generated();
const keyPath = process.env.EMULATOR_KEY ? "" : writeKey("key", key);
const scopedKey = args.scopedTypes && (process.env.EMULATOR_SCOPED_KEY || generated());
const scopedKeyPath = scopedKey && !process.env.EMULATOR_SCOPED_KEY
  ? writeKey("scoped-key", scopedKey)
  : "";

function removeKeyFiles() {
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
}

function fail(message: string): never {
  removeKeyFiles();
  console.error(`error: ${message}`);
  process.exit(1);
}

const files = demoDataset();
let emulator: Emulator;
try {
  emulator = await startEmulator({
    key,
    scopedKeys: scopedKey ? [{ key: scopedKey, eventTypes: args.scopedTypes! }] : [],
    files,
    latencyMs: args.latencyMs,
    apiPort: args.port,
    storagePort: args.port ? args.port + 1 : 0,
    signedUrlTtlMs: args.urlTtlMs,
    retentionDays: args.retentionDays,
    downloadLimit: args.downloadLimit,
  });
} catch (error) {
  if (error instanceof PortInUseError) {
    const which = error.listener === "storage"
      ? `port ${error.port} (--port ${args.port} takes ${args.port} for the API and ${error.port} ` +
        `for the storage host)`
      : `port ${error.port}`;
    fail(`cannot start the emulator: ${which} is already in use; choose another --port`);
  }
  fail(`cannot start the emulator: ${(error as Error).message}`);
}
try {
  for (const { id, style } of args.gone) {
    if (!emulator.files.some((f) => f.id === id)) throw new Error(`no file ${id} in the dataset`);
    emulator.inject({ target: "download", id, gone: style, times: Infinity });
  }
  for (const fault of args.faults) emulator.inject(fault);
} catch (error) {
  await emulator.close();
  fail(`${(error as Error).message} (see --help)`);
}

console.log(`COMPLIANCE_API_BASE=${emulator.apiBase}`);
console.error(
  keyPath
    ? `The API key is in ${keyPath} (mode 0600, removed on exit); set EMULATOR_KEY to choose it.`
    : "The API key is the value of EMULATOR_KEY.",
);
if (scopedKey) {
  console.error(
    `A key for ${args.scopedTypes!.join(", ")} only is ` +
      (scopedKeyPath ? `in ${scopedKeyPath}.` : "the value of EMULATOR_SCOPED_KEY."),
  );
}

/** "250 AUTH_LOG, 40 AUDIT_LOG files" for one principal. */
function summary(principal: string): string {
  const counts = new Map<string, number>();
  for (const f of files) {
    if (f.principal === principal) counts.set(f.eventType, (counts.get(f.eventType) ?? 0) + 1);
  }
  return [...counts].map(([type, n]) => `${n} ${type}`).join(", ") + " files";
}
const limit = args.downloadLimit
  ? `${args.downloadLimit.requests} downloads per ${args.downloadLimit.windowMs / 1000} s per key`
  : "no download limit";
console.error(
  `Principals: workspace ws-0f0e0d0c-demo (${summary("ws-0f0e0d0c-demo")}), ` +
    `organization org-demoorg123 (${summary("org-demoorg123")}).\n` +
    `Storage on ${emulator.storageOrigin}; URLs last ${args.urlTtlMs / 1000} s; retention ` +
    `${args.retentionDays} days; ${limit}. Ctrl-C to stop.`,
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await emulator.close();
  removeKeyFiles();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
