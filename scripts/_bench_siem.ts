/**
 * The Splunk HEC and Elasticsearch benchmark rows (issue 19): records per second and peak RSS of
 * the tool delivering the same files to each emulator (tests/siem/, count-only, in this process),
 * against the same run into a local `--output-dir`, and against a bare loop that sends the same
 * batches (encoded by the destination's own protocol beforehand, in memory) to the same emulator
 * with the same number of requests in flight: where the emulator on these cores is the limit, the
 * bare loop shows that limit. Against emulators, not the products.
 *
 * Usage: deno run -A scripts/_bench_siem.ts [MiB] (default 100), or from scripts/bench.ts
 * (`--scenarios siem`).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { startEmulator } from "../tests/emulator/mod.ts";
import { startElasticEmulator } from "../tests/siem/elastic_emulator.ts";
import { startHecEmulator } from "../tests/siem/hec_emulator.ts";
import type { BatchItem, BatchProtocol } from "../lib/destinations/_batching.ts";
import {
  BulkProtocol,
  ELASTIC_BATCH_DOCS,
  ELASTIC_IN_FLIGHT,
} from "../lib/destinations/elasticsearch.ts";
import { HEC_BATCH_EVENTS, HEC_IN_FLIGHT, HecProtocol } from "../lib/destinations/splunk_hec.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const TARGET_RECORDS_PER_S = 50_000;
const TOKEN = "bench-hec-token-0123456789";
const API_KEY = "YmVuY2gtZXMta2V5OnNlY3JldC0wMTIzNDU2Nzg5";

export interface SiemBenchRow {
  scenario: string;
  figure: string;
  value: string;
  target: string;
  met?: boolean;
}

/** Runs `argv` and returns its wall time and peak RSS (MB, from /usr/bin/time -v when present). */
async function timed(argv: string[], env: Record<string, string>) {
  const timeFile = join(tmpdir(), `siem-bench-${process.pid}-${Date.now()}`);
  const useTime = existsSync("/usr/bin/time");
  const full = useTime ? ["/usr/bin/time", "-v", "-o", timeFile, ...argv] : argv;
  const started = performance.now();
  const child = spawn(full[0], full.slice(1), {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk) => stderr = (stderr + String(chunk)).slice(-5000));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`the tool failed (exit ${code}): ${stderr}`);
  let peakMb: number | undefined;
  if (useTime) {
    const text = await readFile(timeFile, "utf8").catch(() => "");
    await rm(timeFile, { force: true });
    const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1]);
    if (kb) peakMb = kb * 1024 / 1e6;
  }
  return { ms, peakMb };
}

/** Every record's batch item, encoded by `protocol`, in batches of `count`. */
function batchesOf(protocol: BatchProtocol, records: string[], count: number): BatchItem[][] {
  const encoder = new TextEncoder();
  const batches: BatchItem[][] = [];
  for (let i = 0; i < records.length; i += count) {
    const items = records.slice(i, i + count).map((record, n) => {
      const origin = { eventType: "AUTH_LOG", fileId: "bench", line: i + n + 1 };
      const { text, eventId } = protocol.encode(record, origin);
      const source = encoder.encode(text);
      return {
        ...origin,
        eventId,
        recordBytes: record.length,
        source,
        start: 0,
        end: source.length,
      };
    });
    batches.push(items);
  }
  return batches;
}

/** Sends `batches` with `inFlight` at once; the milliseconds it took. */
async function bareLoop(protocol: BatchProtocol, batches: BatchItem[][], inFlight: number) {
  const signal = new AbortController().signal;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < batches.length) {
      const outcome = await protocol.send(batches[next++], signal);
      if (outcome.kind !== "accepted") throw new Error(`the bare loop got ${outcome.kind}`);
    }
  }));
  return performance.now() - started;
}

/** The rows of both destinations for `mib` MiB of AUTH_LOG files, the tool run as `tool`. */
export async function benchSiem(
  tool: string[],
  mib: number,
  log: (line: string) => void = console.log,
): Promise<SiemBenchRow[]> {
  const fileCount = Math.max(1, Math.round(mib / 25));
  const files = Array.from({ length: fileCount }, (_, i) => ({
    id: `eclf_bench_siem_${i}`,
    eventType: "AUTH_LOG",
    endTime: new Date(Date.parse("2026-07-02T00:00:00Z") + i * 3_600_000).toISOString(),
    size: Math.round((mib * 1024 * 1024) / fileCount),
  }));
  const emulator = await startEmulator({ files });
  const rows: SiemBenchRow[] = [];
  const dir = await mkdtemp(join(tmpdir(), "siem-bench-"));
  try {
    const decoder = new TextDecoder();
    const records: string[] = [];
    for (const f of emulator.files) {
      for (const line of decoder.decode(await emulator.contentOf(f.id)).split("\n")) {
        if (line.trim()) records.push(line);
      }
    }
    const args = [PRINCIPAL, "AUTH_LOG", "100", "2026-07-01T00:00:00Z", "--quiet"];
    const env = {
      COMPLIANCE_API_KEY: emulator.key,
      COMPLIANCE_API_BASE: emulator.apiBase,
      SPLUNK_HEC_TOKEN: TOKEN,
      ELASTIC_API_KEY: API_KEY,
    };
    log(`SIEM: ${records.length} records in ${fileCount} files (${mib} MiB)`);
    const local = await timed([...tool, ...args, "--output-dir", join(dir, "out")], env);
    await rm(join(dir, "out"), { recursive: true, force: true });
    const perS = (ms: number) => Math.round(records.length / (ms / 1000));
    rows.push({
      scenario: "siem",
      figure: "--output-dir (same files)",
      value: `${perS(local.ms)} records/s, peak ${local.peakMb?.toFixed(0) ?? "n/a"} MB`,
      target: "reference",
    });

    const hec = await startHecEmulator({ tokens: { [TOKEN]: {} }, countOnly: true });
    const es = await startElasticEmulator({ apiKeys: [API_KEY], countOnly: true });
    try {
      for (const which of ["hec", "elasticsearch"] as const) {
        const target = which === "hec" ? hec.target : es.target;
        const run = await timed([...tool, ...args, "-o", target], env);
        const protocol = which === "hec"
          ? new HecProtocol({
            url: new URL(`http://127.0.0.1:${hec.port}/`),
            token: TOKEN,
            channel: crypto.randomUUID(),
            host: "bench",
            requireAck: false,
            ackTimeoutMs: 60_000,
          })
          : new BulkProtocol({
            url: new URL(`http://127.0.0.1:${es.port}/`),
            flavor: "elasticsearch",
            document: "message",
            authorization: `ApiKey ${API_KEY}`,
          });
        const batches = batchesOf(
          protocol,
          records,
          which === "hec" ? HEC_BATCH_EVENTS : ELASTIC_BATCH_DOCS,
        );
        // Count-only: the emulator takes the same ids again without a 409.
        const bareMs = await bareLoop(
          protocol,
          batches,
          which === "hec" ? HEC_IN_FLIGHT : ELASTIC_IN_FLIGHT,
        );
        const toolPerS = perS(run.ms);
        const bare = perS(bareMs);
        const name = which === "hec" ? "Splunk HEC" : "Elasticsearch _bulk";
        rows.push({
          scenario: "siem",
          figure: `${name} (emulator): records/s, peak RSS`,
          value: `${toolPerS} records/s (${(toolPerS / bare).toFixed(2)}x a bare loop's ${bare}; ` +
            `${(run.ms / local.ms).toFixed(2)}x the --output-dir time), peak ${
              run.peakMb?.toFixed(0) ?? "n/a"
            } MB`,
          target: `>= ${TARGET_RECORDS_PER_S} records/s or >= 0.8x the bare loop; < 150 MB`,
          met: (toolPerS >= TARGET_RECORDS_PER_S || toolPerS >= 0.8 * bare) &&
            (run.peakMb === undefined || run.peakMb < 150),
        });
      }
    } finally {
      await hec.close();
      await es.close();
    }
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.main) {
  const mib = Number(process.argv[2] ?? 100);
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  const tool = deno
    ? [deno.execPath(), "run", "--allow-all", "--quiet", main]
    : [process.execPath, main];
  for (const row of await benchSiem(tool, mib)) {
    console.log(
      `${row.figure} | ${row.value} | ${row.target}${
        row.met === undefined ? "" : row.met ? " [met]" : " [MISSED]"
      }`,
    );
  }
}
