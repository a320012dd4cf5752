/**
 * The Splunk HEC and Elasticsearch rows (issue 19): records per second and peak RSS of the tool
 * delivering the same files to each emulator (tests/siem/, count-only, in this process), against
 * the same run into a local `--output-dir`, and against a bare loop that sends the same batches
 * (encoded by the destination's own protocol before its clock starts) to the same emulator with
 * the same number of requests in flight. The bare loop runs in a child process under the same
 * runtime as the tool, like the tool, so that neither shares this process's thread with the
 * emulators: where the emulator on these cores is the limit, the bare loop shows that limit.
 * Against emulators, not the products.
 *
 * Usage: from scripts/bench.ts (`deno task bench hec`, `deno task bench elasticsearch`); the bare
 * loop is this file run as `bun scripts/_bench_siem.ts --bare hec|elasticsearch PORT RECORDS`.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { contentOf, startEmulatorProcess } from "./_bench_emulator_process.ts";
import { startElasticEmulator } from "../tests/siem/elastic_emulator.ts";
import { startHecEmulator } from "../tests/siem/hec_emulator.ts";
import { type BatchItem, type BatchProtocol, encodedText } from "../lib/destinations/_batching.ts";
import {
  BulkProtocol,
  ELASTIC_BATCH_DOCS,
  ELASTIC_IN_FLIGHT,
} from "../lib/destinations/elasticsearch.ts";
import { HEC_BATCH_EVENTS, HEC_IN_FLIGHT, HecProtocol } from "../lib/destinations/splunk_hec.ts";
import {
  type BenchRow,
  interleave,
  loadOf,
  type Measured,
  measureOk,
  medianMs,
  megabytes,
  peakOf,
  UNPACED,
} from "./_bench_measure.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const TARGETS = { recordsPerS: 50_000, bareRatio: 0.8, peakMb: 150 };
const TOKEN = "bench-hec-token-0123456789";
const API_KEY = "YmVuY2gtZXMta2V5OnNlY3JldC0wMTIzNDU2Nzg5";
const SELF = fileURLToPath(import.meta.url);

export type Siem = "hec" | "elasticsearch";
const NAMES: Record<Siem, string> = { hec: "Splunk HEC", elasticsearch: "Elasticsearch _bulk" };

/** The destination's own protocol object, aimed at `port`. */
function protocolFor(which: Siem, port: number): BatchProtocol {
  return which === "hec"
    ? new HecProtocol({
      url: new URL(`http://127.0.0.1:${port}/`),
      token: TOKEN,
      channel: crypto.randomUUID(),
      host: "bench",
      requireAck: false,
      ackTimeoutMs: 60_000,
    })
    : new BulkProtocol({
      url: new URL(`http://127.0.0.1:${port}/`),
      flavor: "elasticsearch",
      document: "message",
      authorization: `ApiKey ${API_KEY}`,
    });
}

/** Every record's batch item, encoded by `protocol`, in batches of `count`. */
function batchesOf(protocol: BatchProtocol, records: string[], count: number): BatchItem[][] {
  const encoder = new TextEncoder();
  const batches: BatchItem[][] = [];
  for (let i = 0; i < records.length; i += count) {
    batches.push(
      records.slice(i, i + count).map((record, n) => {
        const origin = { eventType: "AUTH_LOG", fileId: "bench", line: i + n + 1 };
        const encoded = protocol.encode(record, origin);
        const source = encoder.encode(encodedText(encoded, record));
        const eventId = encoded.eventId;
        return {
          ...origin,
          eventId,
          recordBytes: record.length,
          source,
          start: 0,
          end: source.length,
        };
      }),
    );
  }
  return batches;
}

/** The bare loop (in its child): sends `batches` with `inFlight` at once; milliseconds taken. */
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

/** The rows of each SIEM in `siems` for `mib` MiB of AUTH_LOG files, the tool run as `tool`. */
export async function benchSiem(
  tool: string[],
  options: {
    mib: number;
    runs: number;
    siems: ReadonlySet<Siem>;
    bareRuntime: string[];
    emulator: string;
  },
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const fileCount = Math.max(1, Math.round(options.mib / 4));
  const files = Array.from({ length: fileCount }, (_, i) => ({
    id: `eclf_bench_siem_${i}`,
    eventType: "AUTH_LOG",
    endTime: new Date(Date.parse("2026-07-02T00:00:00Z") + i * 3_600_000).toISOString(),
    size: Math.round((options.mib * 1024 * 1024) / fileCount),
  }));
  const emulator = await startEmulatorProcess(options.emulator, { latencyMs: 0, files });
  const hec = await startHecEmulator({ tokens: { [TOKEN]: {} }, countOnly: true });
  const es = await startElasticEmulator({ apiKeys: [API_KEY], countOnly: true });
  const rows: BenchRow[] = [];
  const dir = await mkdtemp(join(tmpdir(), "oai-bench-siem-"));
  try {
    const decoder = new TextDecoder();
    const records: string[] = [];
    for (const f of emulator.files) {
      for (const line of decoder.decode(await contentOf(emulator, f.id)).split("\n")) {
        if (line.trim()) records.push(line);
      }
    }
    const recordsFile = join(dir, "records.jsonl");
    await writeFile(recordsFile, records.join("\n") + "\n");
    const args = [PRINCIPAL, "AUTH_LOG", "100", "2026-07-01T00:00:00Z", "--quiet", ...UNPACED];
    const env = {
      COMPLIANCE_API_KEY: emulator.key,
      COMPLIANCE_API_BASE: emulator.apiBase,
      SPLUNK_HEC_TOKEN: TOKEN,
      ELASTIC_API_KEY: API_KEY,
    };
    log(
      `\nSIEM: ${records.length} records in ${fileCount} files (${options.mib} MiB), ` +
        `${options.runs} rounds`,
    );
    let run = 0;
    const variants: Record<string, () => Promise<Measured>> = {
      local: async () => {
        const out = join(dir, `out-${run++}`);
        try {
          return await measureOk([...tool, ...args, "--output-dir", out], { env });
        } finally {
          await rm(out, { recursive: true, force: true });
        }
      },
    };
    const ports: Record<Siem, number> = { hec: hec.port, elasticsearch: es.port };
    const targets: Record<Siem, string> = { hec: hec.target, elasticsearch: es.target };
    for (const which of options.siems) {
      variants[which] = () => measureOk([...tool, ...args, "-o", targets[which]], { env });
      // Count-only: the emulator takes the same ids again without a 409.
      variants[`${which} bare`] = async () => {
        const m = await measureOk([
          ...options.bareRuntime,
          SELF,
          "--bare",
          which,
          String(ports[which]),
          recordsFile,
        ]);
        return { ...m, ms: Number(/^bare ms (\S+)$/m.exec(m.stderr)?.[1]) };
      };
    }
    const results = await interleave(options.runs, variants, log);
    const perS = (list: Measured[]) => Math.round(records.length / (medianMs(list) / 1000));
    rows.push({
      scenario: "siem",
      figure: `the tool to a local --output-dir, the same files (the reference)`,
      value: `${perS(results.local)} records/s, peak ${megabytes(peakOf(results.local))}; ` +
        `load ${loadOf([results.local])}`,
      target: "",
    });
    for (const which of options.siems) {
      const toolRate = perS(results[which]);
      const bareRate = perS(results[`${which} bare`]);
      const peak = peakOf(results[which]);
      rows.push({
        scenario: "siem",
        figure: `${NAMES[which]} (emulator): a bare loop sending the same batches`,
        value: `${bareRate} records/s`,
        target: "",
      });
      rows.push({
        scenario: "siem",
        figure: `${NAMES[which]} (emulator): the tool (download, verify, send)`,
        value: `${toolRate} records/s = ${(toolRate / bareRate).toFixed(2)}x the bare loop, ` +
          `${(medianMs(results[which]) / medianMs(results.local)).toFixed(2)}x the local ` +
          `time; peak ${megabytes(peak)}; load ${
            loadOf([results[which], results[`${which} bare`]])
          }`,
        target: `>= ${TARGETS.recordsPerS} records/s or >= ${TARGETS.bareRatio}x the bare loop; ` +
          `< ${TARGETS.peakMb} MB`,
        met: (toolRate >= TARGETS.recordsPerS || toolRate >= TARGETS.bareRatio * bareRate) &&
          (peak === undefined || peak < TARGETS.peakMb),
      });
    }
  } finally {
    await hec.close();
    await es.close();
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[2] === "--bare") {
  const [which, port, file] = process.argv.slice(3) as [Siem, string, string];
  const records = (await readFile(file, "utf8")).split("\n").filter((l) => l.trim());
  const protocol = protocolFor(which, Number(port));
  const batches = batchesOf(
    protocol,
    records,
    which === "hec" ? HEC_BATCH_EVENTS : ELASTIC_BATCH_DOCS,
  );
  const ms = await bareLoop(protocol, batches, which === "hec" ? HEC_IN_FLIGHT : ELASTIC_IN_FLIGHT);
  process.stderr.write(`bare ms ${ms}\n`);
  process.exit(0);
}
