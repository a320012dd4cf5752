/**
 * The object store rows (issue 17): the same files delivered by the tool to S3 on a real Ceph
 * RADOS Gateway (tests/servers/ceph.ts) and to Azure Blob on Azurite (tests/servers/azurite.ts),
 * against the same run into a local `--output-dir`, and against the store's floor: curl uploading
 * the same files to the same store, as many at once as the tool downloads, signed the same way
 * (S3: `--aws-sigv4` with the payload's real SHA-256 in `x-amz-content-sha256`, and no
 * `Content-MD5`, as the tool sends none into a bucket without Object Lock; Azure: a SAS computed
 * here, `Content-MD5` per request). Rounds are interleaved; peak RSS is the
 * tool child's. Every run writes under a prefix of its own, so no run skips what another stored.
 *
 * Usage: from scripts/bench.ts (`deno task bench s3`, `deno task bench azure`).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { contentOf, startEmulatorProcess } from "./_bench_emulator_process.ts";
import {
  type Ceph,
  CEPH_MISSING,
  createBucket,
  listKeys,
  startCeph,
} from "../tests/servers/ceph.ts";
import { accountSas, type Azurite, azuriteSkip, startAzurite } from "../tests/servers/azurite.ts";
import {
  type BenchRow,
  interleave,
  loadOf,
  measure,
  type Measured,
  measureOk,
  median,
  medianMs,
  megabytes,
  peakOf,
  seconds,
  times,
  UNPACED,
} from "./_bench_measure.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const AFTER = "2026-07-01T00:00:00Z";
const TARGETS = { local: 1.3, floor: 1.2, peakMb: 150 };
/** The tool's default concurrency: curl uploads as many files at once. */
const IN_FLIGHT = 4;

export interface StoreBenchOptions {
  files: number;
  fileBytes: number;
  runs: number;
  stores: ReadonlySet<"s3" | "azure">;
  /** The emulator process's runtime. */
  emulator: string;
}

interface SourceFile {
  id: string;
  path: string;
  sha256: string;
  md5: string;
}

/** The rows of each store in `options.stores`, the tool run as `tool`. */
export async function benchStores(
  tool: string[],
  options: StoreBenchOptions,
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const specs = Array.from({ length: options.files }, (_, i) => ({
    id: `eclf_bench_store_${String(i).padStart(4, "0")}`,
    eventType: "AUTH_LOG",
    endTime: new Date(Date.parse("2026-07-02T00:00:00Z") + i * 60_000).toISOString()
      .replace(/\.\d{3}Z$/, "Z"),
    size: options.fileBytes,
  }));
  // Served ready-made, as a real storage host serves them: generating 1 MiB per request costs
  // the emulator ~15 ms of CPU, taken from the two cores the store and the tool share.
  const emulator = await startEmulatorProcess(options.emulator, {
    latencyMs: 0,
    files: specs,
    precompute: true,
  });
  const dir = await mkdtemp(join(tmpdir(), "oai-bench-stores-"));
  try {
    // The files as stored, on disk for curl, with their hashes (computed before any clock).
    await mkdir(join(dir, "source"));
    const sources: SourceFile[] = [];
    let bytes = 0;
    for (const file of emulator.files) {
      const content = await contentOf(emulator, file.id);
      bytes += content.length;
      const path = join(dir, "source", `${file.id}.jsonl`);
      await writeFile(path, content);
      sources.push({
        id: file.id,
        path,
        sha256: createHash("sha256").update(content).digest("hex"),
        md5: createHash("md5").update(content).digest("base64"),
      });
    }
    const what = `${options.files} files of ${(options.fileBytes / 2 ** 20).toFixed(0)} MiB`;
    log(`\nObject stores: ${what} (${(bytes / 1e6).toFixed(0)} MB), ${options.runs} rounds`);
    const env = { COMPLIANCE_API_KEY: emulator.key, COMPLIANCE_API_BASE: emulator.apiBase };
    const args = (outputDir: string) => [
      PRINCIPAL,
      "AUTH_LOG",
      "100",
      AFTER,
      "--output-dir",
      outputDir,
      "--quiet",
      ...UNPACED,
    ];
    let run = 0;
    const local = async () => {
      const out = join(dir, `local-${run++}`);
      try {
        return await measureOk([...tool, ...args(out)], { env, what: "the tool to a local dir" });
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    };

    // CPU the other processes of a run spend (the store's, the emulator's), read around it.
    const serverCpu = new Map<Measured, { store: number; emulator: number }>();
    const withServerCpu = (store: string, variant: () => Promise<Measured>) => async () => {
      const before = { store: cpuSeconds(store), emulator: cpuSeconds(EMULATOR_PROCESS) };
      const measured = await variant();
      serverCpu.set(measured, {
        store: cpuSeconds(store) - before.store,
        emulator: cpuSeconds(EMULATOR_PROCESS) - before.emulator,
      });
      return measured;
    };
    const variants: Record<string, () => Promise<Measured>> = { local };
    const checks: Array<() => Promise<void>> = [];
    const labels: Record<string, { name: string; skipped?: string; unchecked?: boolean }> = {};
    for (const which of options.stores) {
      const name = which === "s3" ? "S3 (Ceph RGW)" : "Azure Blob (Azurite)";
      const skipped = which === "s3" ? CEPH_MISSING : azuriteSkip();
      labels[which] = { name, skipped };
      if (skipped) continue;
      if (which === "s3") log("  starting Ceph (about 15 s)");
      const store = which === "s3" ? await s3Store(await startCeph()) : await azureStore();
      // The floor checks what the tool's uploads check: the store must refuse wrong hashes.
      const wrong = { ...sources[0], sha256: "0".repeat(64), md5: "AAAAAAAAAAAAAAAAAAAAAA==" };
      const probe = await measure(curlArgv([store.curl(wrong, "probe")]));
      labels[which].unchecked = probe.code === 0;
      log(
        `  ${name}: curl with a wrong payload hash ${
          probe.code === 0
            ? "was ACCEPTED (the floor is not checked)"
            : "was refused, as it must be"
        }`,
      );
      // A prefix of its own per run; afterwards, each must hold every file.
      const prefixes: string[] = [];
      const next = (kind: string) => {
        prefixes.push(`${kind}-${prefixes.length}`);
        return prefixes.at(-1)!;
      };
      variants[which] = withServerCpu(
        store.processes,
        () =>
          measureOk([...tool, ...args(store.url(next("tool")))], {
            env: { ...env, ...store.env },
            what: `the tool to ${name}`,
          }),
      );
      variants[`${which} curl`] = withServerCpu(store.processes, () => {
        const prefix = next("curl");
        return measureOk(curlArgv(sources.map((f) => store.curl(f, prefix))), {
          what: `curl -T to ${name}`,
        });
      });
      checks.push(async () => {
        for (const prefix of prefixes) {
          const under = prefix.startsWith("tool") ? `${prefix}/AUTH_LOG/` : `${prefix}/`;
          const found = await store.count(under);
          if (found !== sources.length) {
            throw new Error(
              `${store.url(prefix)} holds ${found} objects instead of ${sources.length}: a run ` +
                "lost files",
            );
          }
        }
      });
    }
    const results = await interleave(options.runs, variants, log, { warmUp: true });
    for (const check of checks) await check();

    const localMs = medianMs(results.local);
    rows.push({
      scenario: "stores",
      figure: `the tool to a local --output-dir, ${what} (the reference)`,
      value: `${seconds(localMs)}, ${(bytes / localMs / 1000).toFixed(0)} MB/s, peak ${
        megabytes(peakOf(results.local))
      }; load ${loadOf([results.local])}`,
      target: "",
    });
    for (const [store, { name, skipped, unchecked }] of Object.entries(labels)) {
      if (skipped) {
        rows.push({ scenario: "stores", figure: name, value: `skipped: ${skipped}`, target: "" });
        continue;
      }
      const toolMs = medianMs(results[store]);
      const floorMs = medianMs(results[`${store} curl`]);
      const peak = peakOf(results[store]);
      const vsLocal = toolMs / localMs;
      const vsFloor = toolMs / floorMs;
      const cpu = cpuBound(results[store], serverCpu);
      const floorCpu = cpuBound(results[`${store} curl`], serverCpu);
      // The least time even a tool whose uploads cost it nothing would need: its local run's
      // CPU (the same downloads and checks), with the store's and the emulator's.
      const localCpu = median(results.local.map((m) => m.cpuS ?? 0));
      const bestMs = (localCpu + cpu.store + cpu.emulator) / cpus().length * 1000;
      rows.push({
        scenario: "stores",
        figure: `${name}: curl -T, ${IN_FLIGHT} at once, the same files (the floor)` +
          (unchecked ? " (the store did not check its payload hash)" : ""),
        value: `${seconds(floorMs)}, ${(bytes / floorMs / 1000).toFixed(0)} MB/s; the store's ` +
          `CPU ${floorCpu.store.toFixed(2)} s`,
        target: "",
      });
      rows.push({
        scenario: "stores",
        figure: `${name}: the tool (download, verify, upload)`,
        value: `${seconds(toolMs)} = ${times(vsLocal)} local, ${times(vsFloor)} the curl floor; ` +
          `peak ${megabytes(peak)}; load ${loadOf([results[store], results[`${store} curl`]])}; ` +
          `CPU: the tool ${cpu.tool.toFixed(2)} s, the store ${cpu.store.toFixed(2)} s, the ` +
          `emulator ${cpu.emulator.toFixed(2)} s, so at least ${seconds(cpu.boundMs)} on ` +
          `${cpus().length} cores (${times(cpu.boundMs / localMs)} local); with uploads ` +
          `costing the tool no CPU (${localCpu.toFixed(2)} s, its local run's), still at least ` +
          `${seconds(bestMs)} = ${times(bestMs / localMs)} local, ${times(bestMs / floorMs)} ` +
          `the floor`,
        target: `<= ${TARGETS.local}x local or <= ${TARGETS.floor}x the floor; ` +
          `< ${TARGETS.peakMb} MB`,
        met: (vsLocal <= TARGETS.local || vsFloor <= TARGETS.floor) &&
          (peak === undefined || peak < TARGETS.peakMb),
      });
    }
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

/** The benchmark's emulator process, by its command line (`pgrep -f`). */
const EMULATOR_PROCESS = "_bench_emulator\\.ts";

/** User + system CPU seconds so far of the processes whose command line matches `pattern`. */
function cpuSeconds(pattern: string): number {
  let pids: string[];
  try {
    pids = execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" }).trim().split("\n");
  } catch {
    return 0; // None (pgrep exits 1).
  }
  const ticks = 100; // USER_HZ on Linux.
  let total = 0;
  for (const pid of pids) {
    try {
      // After the command's closing parenthesis: utime and stime are the 12th and 13th fields.
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // Ended meanwhile.
    }
  }
  return total;
}

/**
 * The medians of the CPU a variant's runs took in each process, and the least time that CPU
 * needs on this machine's cores: a run can be no faster, however well it overlaps.
 */
function cpuBound(
  runs: Measured[],
  servers: Map<Measured, { store: number; emulator: number }>,
): { tool: number; store: number; emulator: number; boundMs: number } {
  const of = (pick: (m: Measured) => number) => median(runs.map(pick));
  const tool = of((m) => m.cpuS ?? 0);
  const store = of((m) => servers.get(m)?.store ?? 0);
  const emulator = of((m) => servers.get(m)?.emulator ?? 0);
  return { tool, store, emulator, boundMs: (tool + store + emulator) / cpus().length * 1000 };
}

/** What the rows need of a store: where the tool writes, curl's transfer, a count. */
interface Store {
  /** The tool's --output-dir for `prefix`. */
  url(prefix: string): string;
  env: Record<string, string>;
  /** curl's options uploading `file` under `prefix`, signed as the tool signs. */
  curl(file: SourceFile, prefix: string): string[];
  /** The objects under `prefix`. */
  count(prefix: string): Promise<number>;
  /** The store's processes, by command line (`pgrep -f`), for their CPU. */
  processes: string;
}

/** A new bucket on Ceph; curl signs with --aws-sigv4 and the payload's real SHA-256. */
async function s3Store(ceph: Ceph): Promise<Store> {
  const bucket = `oai-bench-${Date.now().toString(36)}`;
  await createBucket(ceph, bucket);
  const credentials = `${ceph.env.AWS_ACCESS_KEY_ID}:${ceph.env.AWS_SECRET_ACCESS_KEY}`;
  return {
    url: (prefix) => `s3://${bucket}/${prefix}`,
    env: ceph.env,
    curl: (f, prefix) => [
      "--aws-sigv4",
      `aws:amz:${ceph.env.AWS_REGION}:s3`,
      "--user",
      credentials,
      "-H",
      `x-amz-content-sha256: ${f.sha256}`,
      // No Content-MD5: the bucket has no Object Lock, and the tool sends none there either.
      "-T",
      f.path,
      `${ceph.endpoint}/${bucket}/${prefix}/${f.id}.jsonl`,
    ],
    count: async (prefix) => (await listKeys(ceph, bucket, prefix)).length,
    processes: "(^|/)(radosgw|ceph-osd|ceph-mon) ",
  };
}

/** A new container on Azurite; curl sends an account SAS and Content-MD5. */
async function azureStore(): Promise<Store> {
  const azurite: Azurite = await startAzurite();
  const container = `oai-bench-${Date.now().toString(36)}`;
  await azurite.createContainer(container);
  const sas = accountSas("rwc", new Date(Date.now() + 6 * 3600_000));
  return {
    url: (prefix) => `az://${container}/${prefix}`,
    env: { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString },
    curl: (f, prefix) => [
      "-H",
      "x-ms-blob-type: BlockBlob",
      "-H",
      "x-ms-version: 2021-12-02",
      "-H",
      `Content-MD5: ${f.md5}`,
      "-T",
      f.path,
      `${azurite.blobEndpoint}/${container}/${prefix}/${f.id}.jsonl?${sas}`,
    ],
    count: async (prefix) => (await azurite.listBlobs(container, prefix)).length,
    processes: "azurite-blob --location",
  };
}

/** One curl for every transfer (`--next` between them), IN_FLIGHT at once, failing on >= 400. */
function curlArgv(transfers: string[][]): string[] {
  const argv = ["curl", "-Z", "--parallel-max", String(IN_FLIGHT)];
  transfers.forEach((transfer, i) => {
    if (i > 0) argv.push("--next");
    argv.push("-sS", "--fail", "-o", "/dev/null", ...transfer);
  });
  return argv;
}
