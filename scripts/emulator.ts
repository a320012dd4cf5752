/**
 * Runs the local Compliance API emulator with the demo dataset until interrupted, for trying the
 * CLI by hand or benchmarking it. Prints `COMPLIANCE_API_BASE=<url>` on stdout; the key is never
 * printed: it is read from `EMULATOR_KEY`, or generated and written to an owner-only file whose
 * path goes to stderr.
 *
 * Usage: deno run -A scripts/emulator.ts [--port N] [--latency MS]   (or: bun scripts/emulator.ts)
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { demoDataset, type Emulator, startEmulator } from "../tests/emulator/mod.ts";

const USAGE = "usage: scripts/emulator.ts [--port N] [--latency MS]";

function parseArgs(argv: string[]): { port: number; latencyMs: number } {
  const out = { port: 0, latencyMs: 0 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => inline ?? argv[++i];
    const number = (name: string, max: number) => {
      const raw = value();
      const n = Number(raw);
      if (!/^\d+$/.test(raw ?? "") || n > max) {
        throw new Error(`${name} wants an integer, got ${raw}`);
      }
      return n;
    };
    if (flag === "--port") out.port = number("--port", 65535);
    else if (flag === "--latency") out.latencyMs = number("--latency", 60_000);
    else if (flag === "-h" || flag === "--help") {
      console.error(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
  }
  return out;
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exit(2);
}

let keyDir: string | null = null;
let keyPath = "";
let key = process.env.EMULATOR_KEY ?? "";
if (!key) {
  key = `emu-${randomBytes(24).toString("hex")}`;
  keyDir = mkdtempSync(join(tmpdir(), "oai-compliance-emulator-"));
  keyPath = join(keyDir, "key");
  writeFileSync(keyPath, key, { mode: 0o600 });
}

function removeKeyFile() {
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
}

let emulator: Emulator;
try {
  emulator = await startEmulator({
    key,
    files: demoDataset(),
    latencyMs: args.latencyMs,
    apiPort: args.port,
    storagePort: args.port ? args.port + 1 : 0,
  });
} catch (error) {
  removeKeyFile();
  console.error(`error: cannot start the emulator: ${(error as Error).message}`);
  process.exit(1);
}
console.log(`COMPLIANCE_API_BASE=${emulator.apiBase}`);
console.error(
  keyDir
    ? `The API key is in ${keyPath} (mode 0600, removed on exit); set EMULATOR_KEY to choose it.`
    : "The API key is the value of EMULATOR_KEY.",
);
console.error(
  `Principals: workspace ${emulator.files[0].principal} (250 AUTH_LOG, 40 AUDIT_LOG files), ` +
    `organization org-demoorg123. Storage on ${emulator.storageOrigin}. Ctrl-C to stop.`,
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await emulator.close();
  removeKeyFile();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
