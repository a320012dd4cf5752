/**
 * The benchmark: the tool on the work it exists for, against the local emulator, each figure a
 * ratio measured side by side in the same run (absolute times are not comparable between runs on
 * a shared machine). It prints figures and a verdict per target, and never fails on a timing:
 * only a tool run that errors or writes the wrong bytes makes it exit non-zero.
 *
 * 1. Many small files with latency: 300 files of ~100 KB, 3 pages of 100, 20 ms added to every
 *    response; the tool at its default concurrency, at `--concurrency 1`, and the ideal
 *    (requests x latency / concurrency + transfer time at curl's rate); curl making the same
 *    requests, as many at once, is the practical limit.
 * 2. One large file (2 GiB): throughput against `curl -sS -L -o /dev/null` on the same signed URL,
 *    and peak resident memory, on stdout and with `--output-dir` (plain and `--gzip`); for
 *    context, what verify-then-emit (curl, openssl, cat) and a durable file (curl, sync) cost.
 * 3. Start-up: `--version` of the binary against a bare Bun binary (`console.log("x")`) built with
 *    the same flags in the same run, and of `deno run` and `bun run` from source (median).
 * 4. Verification cost: scenario 2 with the listing's `file_sha256` and without it.
 * link: scenarios 2 and 4 again over a storage link capped at --link-rate (default 250 MB/s,
 *    2 Gbit/s), where the wire rather than the CPU is the limit, as with a real object store.
 * s3, azure: the same files to S3 on a real Ceph RGW and to Azure Blob on Azurite, against a
 *    local --output-dir and against curl -T uploading them to the same store, signed the same way
 *    (the floor); peak RSS (scripts/_bench_stores.ts).
 * hec, elasticsearch: records/s and peak RSS into the Splunk HEC and _bulk emulators against a
 *    bare loop sending the same batches, and against --output-dir (scripts/_bench_siem.ts).
 * syslog: records/s to a real rsyslogd over TCP against a bare loop writing the same frames to
 *    it (scripts/_bench_syslog.ts).
 * verify: `verify` against sha256sum over the same files, and for a --gzip archive against
 *    zcat | sha256sum; peak RSS (scripts/_bench_verify.ts).
 * Measuring a child and the interleaved rounds are shared by all (scripts/_bench_measure.ts).
 *
 * Scenario 2 also measures the tool into a pipe (`| cat`, against `curl URL | cat`) and the floor
 * of any JavaScript downloader here: a bare Bun fetch loop, with and without SHA-256.
 *
 * The emulator runs in its own process (under Bun when available: it generates content about
 * twice as fast as under Deno), so its CPU is never counted against the tool. Tool runs write
 * stdout straight to /dev/null and `--output-dir` into a temporary directory, removed after each
 * run; peak memory comes from `/usr/bin/time -v` (or VmHWM in /proc).
 *
 * Usage: deno task bench [ROWS...] [--quick] [--size 512MiB] [--runs N] [--tool bun|deno|binary]
 *                        [--bin PATH] [--no-source] [--no-gzip] [--emulator-runtime bun|deno]
 *                        [--link-rate 250MB] [--link-size 1GiB] [--store-files N]
 *                        [--store-size 1MiB] [--siem-size 100MiB] [--json FILE]
 *   ROWS           the row groups to run (default: all): 1 2 3 4 link s3 azure hec
 *                  elasticsearch syslog verify, or stores (s3 azure), siem (hec elasticsearch),
 *                  destinations (the six of this round); also --scenarios a,b
 *   --tool T       bun or deno: the tool from source instead of a binary built for the run
 *   --quick        512 MiB instead of 2 GiB, one round, fewer start-up runs (a smoke test)
 *   --runs N       rounds of the headline figures (default 3; medians); --concurrency 1, the
 *                  --output-dir runs and the runs from source are measured in the first round
 *   --bin PATH     the binary to measure (default: built from this checkout into .bench/)
 *   --no-source    skip `deno run` / `bun run` from source in scenarios 1 and 2
 *   --no-gzip      skip `--output-dir --gzip` (compression-bound, the longest run)
 *   --link-rate R  the capped link of scenario "link" (default 250MB, per second)
 *   --link-size S  the file sent over it (default 1GiB; 512MiB with --quick)
 *   --json FILE    also write every measurement there
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseRunArgs } from "../lib/commands/run.ts";
import type { FileSpec } from "../tests/emulator/mod.ts";
import type { BenchEmulatorSpec } from "./_bench_emulator.ts";
import {
  type EmulatorProcess,
  signedUrl,
  startEmulatorProcess as startEmulatorIn,
} from "./_bench_emulator_process.ts";
import { BUN_FLAGS } from "./build.ts";
import {
  available,
  type BenchRow,
  interleave,
  measure,
  type Measured,
  median,
  UNPACED,
} from "./_bench_measure.ts";
import { benchSyslog } from "./_bench_syslog.ts";
import { benchSiem, type Siem } from "./_bench_siem.ts";
import { benchStores } from "./_bench_stores.ts";
import { benchVerify } from "./_bench_verify.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const MAIN_TS = join(ROOT, "main.ts");
const FETCH_TS = fileURLToPath(new URL("./_bench_fetch.ts", import.meta.url));
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const AFTER = "2026-07-01T00:00:00Z";
/** Scenario 1's large file, listed under another type, to measure the wire rate with curl. */
const WIRE_EVENT_TYPE = "AUDIT_LOG";
const TARGETS = {
  idealRatio: 1.3,
  sequentialSpeedup: 3.5,
  curlRatio: 0.8,
  peakMb: 120,
  startupMs: 30,
  verifyOverhead: 0.15,
};

// deno-lint-ignore no-explicit-any
const deno = (globalThis as any).Deno;
// deno-lint-ignore no-explicit-any
const bunGlobal = (globalThis as any).Bun;

/** A number of bytes from `2GiB`, `512MiB`, `100MB`, `1048576`. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a size: ${text} (e.g. 2GiB, 512MiB, 100MB)`);
  const units: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    kib: 1024,
    mib: MIB,
    gib: GIB,
  };
  return Math.round(Number(m[1]) * units[(m[2] ?? "b").toLowerCase()]);
}

function log(line: string): void {
  process.stderr.write(line + "\n");
}

/** The emulator in a process of its own, under --emulator-runtime. */
const startEmulatorProcess = (spec: BenchEmulatorSpec) => startEmulatorIn(emulatorRuntime, spec);

// ---------------------------------------------------------------------------------------------
// The tool under test

interface Runtime {
  name: string;
  argv: string[];
}

/**
 * A bare Bun binary (`console.log("x")`) built with the tool's flags: the floor of any binary's
 * start-up on this machine, measured beside the tool's.
 */
function buildBareBinary(dir: string): string {
  const source = join(dir, "bare.ts");
  const out = join(dir, "bare-bun");
  writeFileSync(source, 'console.log("x");\n');
  const result = spawnSync("bun", [
    ...BUN_FLAGS,
    "--target=bun-linux-x64",
    source,
    "--outfile",
    out,
  ], {
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`bun build failed:\n${result.stdout}${result.stderr}`);
  return out;
}

async function buildBinary(): Promise<string> {
  const out = join(ROOT, ".bench", "oai-compliance-logs-linux-x64");
  await mkdir(join(ROOT, ".bench"), { recursive: true });
  log(`Building the binary from this checkout: bun build --compile ... --outfile ${out}`);
  const result = spawnSync("bun", [
    ...BUN_FLAGS,
    "--target=bun-linux-x64",
    MAIN_TS,
    "--outfile",
    out,
  ], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`bun build failed:\n${result.stdout}${result.stderr}`);
  return out;
}

function toolEnv(key: string): Record<string, string> {
  return { COMPLIANCE_API_KEY: key, NO_COLOR: "1" };
}

async function runTool(
  runtime: Runtime,
  args: string[],
  key: string,
  what: string,
  intoPipe = false,
): Promise<Measured> {
  const result = await measure([...runtime.argv, ...args], { env: toolEnv(key), intoPipe });
  if (result.code !== 0) {
    throw new Error(
      `${runtime.name} failed (${what}), exit ${result.code}:\n${result.stderr.slice(-3000)}`,
    );
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Results

type Row = BenchRow;

const rows: Row[] = [];
const raw: Record<string, unknown> = {};

function row(r: Row): void {
  rows.push(r);
  const verdict = r.met === undefined ? "" : r.met ? " [met]" : " [MISSED]";
  log(`  ${r.scenario} | ${r.figure} | ${r.value} | ${r.target}${verdict}`);
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mbps = (bytes: number, ms: number) => `${(bytes / ms / 1000).toFixed(0)} MB/s`;
const x = (ratio: number) => `${ratio.toFixed(2)}x`;
const mb = (value?: number) => value === undefined ? "n/a" : `${value.toFixed(0)} MB`;

function machine(): string {
  const model = cpus()[0]?.model?.trim() ?? "unknown CPU";
  const versions = [
    deno ? `deno ${deno.version.deno}` : available("deno") ? "deno" : "",
    bunGlobal ? `bun ${bunGlobal.version}` : available("bun") ? "bun" : "",
  ].filter(Boolean).join(", ");
  return `${availableParallelism()} cores (${model}), ${(totalmem() / GIB).toFixed(0)} GiB RAM, ` +
    `Linux ${release()}; load average ${
      loadavg().map((l) => l.toFixed(1)).join(" ")
    } at start; ${versions}`;
}

function table(): string {
  const lines = [
    "| scenario | figure | measured | target | |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const mark = r.met === undefined ? "" : r.met ? "met" : "**missed**";
    const cells = [r.scenario, r.figure, r.value, r.target, mark].map((c) =>
      c.replace(/\|/g, "\\|")
    );
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: many small files with latency

async function scenarioSmallFiles(runtimes: Runtime[], runs: number): Promise<void> {
  const files = 300;
  const latencyMs = 20;
  const limit = 100;
  log(`\nScenario 1: ${files} files of ~100 KB, pages of ${limit}, ${latencyMs} ms per response`);
  const emu = await startEmulatorProcess({
    latencyMs,
    dataset: {
      count: files,
      size: 100_000,
      start: "2026-07-01T01:00:00Z",
      eventType: "AUTH_LOG",
      precompute: true,
    },
    files: [{
      eventType: WIRE_EVENT_TYPE,
      endTime: "2026-07-02T00:00:00Z",
      size: 256 * MIB,
      advertise: { fileSha256: null },
    }],
  });
  try {
    const listed = emu.files.filter((f) => f.eventType === "AUTH_LOG");
    const principal = listed[0].principal;
    const bytes = listed.reduce((n, f) => n + f.size, 0);
    const pages = Math.ceil(files / limit);
    const requests = pages + 2 * files; // each page, each file's 307, each file's bytes
    const parsed = parseRunArgs(["ws-1", "AUTH_LOG", "1", AFTER], {
      COMPLIANCE_API_KEY: "sk-bench-0123456789abcdef",
    });
    const defaultConcurrency = parsed?.concurrency ?? 4;

    // Transfer time: these bytes at the wire rate, which curl measures on a large file of
    // another event type on the same emulator (its one added latency taken off).
    const wire = emu.files.find((f) => f.eventType === WIRE_EVENT_TYPE)!;
    const wireRate = async () => {
      const url = await signedUrl(emu.apiBase, emu.key, principal, wire.id);
      const m = await measure(["curl", "-sS", "-o", "/dev/null", url]);
      if (m.code !== 0) throw new Error(`curl failed: ${m.stderr}`);
      return wire.size / Math.max(1, m.ms - latencyMs); // bytes per ms
    };

    // The practical limit: curl making the same two requests per file (the API's 307, then the
    // signed URL) over the same emulator, as many at once as the tool.
    const scope = principal.startsWith("org-") ? "organizations" : "workspaces";
    const config = join(scratch, "curl-files.txt");
    await writeFile(
      config,
      `header = "authorization: Bearer ${emu.key}"\n` +
        listed.map((f) =>
          `url = "${emu.apiBase}/${scope}/${principal}/logs/${f.id}"\noutput = "/dev/null"\n`
        ).join(""),
      { mode: 0o600 },
    );
    const curlFiles = async (parallel: number) => {
      const flags = parallel > 1 ? ["-Z", "--parallel-max", String(parallel)] : [];
      const m = await measure(["curl", "--no-progress-meter", "-sS", "-L", ...flags, "-K", config]);
      if (m.code !== 0) throw new Error(`curl failed: ${m.stderr}`);
      return m;
    };

    const args = [
      principal,
      "AUTH_LOG",
      String(limit),
      AFTER,
      "--api-base",
      emu.apiBase,
      ...UNPACED,
    ];
    const transfer: number[] = [];
    const curlParallel: Measured[] = [];
    const curlSequential: Measured[] = [];
    const times: Record<string, { parallel: Measured[]; sequential: Measured[] }> = {};
    for (const rt of runtimes) times[rt.name] = { parallel: [], sequential: [] };
    for (let round = 0; round < runs; round++) {
      transfer.push(bytes / await wireRate());
      curlParallel.push(await curlFiles(defaultConcurrency));
      log(
        `  round ${round + 1}: curl, ${defaultConcurrency} at once ${s(curlParallel.at(-1)!.ms)}`,
      );
      if (round === 0) {
        curlSequential.push(await curlFiles(1));
        log(`  round ${round + 1}: curl, one at a time ${s(curlSequential.at(-1)!.ms)}`);
      }
      for (const rt of runtimes) {
        const p = await runTool(rt, args, emu.key, "scenario 1");
        times[rt.name].parallel.push(p);
        log(`  round ${round + 1}: ${rt.name} default concurrency ${s(p.ms)}`);
        // --concurrency 1 takes ~13 s: measured in the first round only.
        if (round === 0) {
          const q = await runTool(rt, [...args, "--concurrency", "1"], emu.key, "scenario 1");
          times[rt.name].sequential.push(q);
          log(`  round ${round + 1}: ${rt.name} --concurrency 1 ${s(q.ms)}`);
        }
      }
    }
    const transferMs = median(transfer);
    const idealParallel = requests * latencyMs / defaultConcurrency + transferMs;
    const idealSequential = requests * latencyMs + transferMs;
    const curlPar = median(curlParallel.map((m) => m.ms));
    const curlSeq = median(curlSequential.map((m) => m.ms));
    row({
      scenario: "1",
      figure: `ideal: ${requests} requests x ${latencyMs} ms / ${defaultConcurrency} + transfer`,
      value: `${s(idealParallel)} (transfer: ${(bytes / 1e6).toFixed(1)} MB at curl's ${
        mbps(bytes, transferMs)
      }: ${s(transferMs)})`,
      target: "",
    });
    row({
      scenario: "1",
      figure: `curl -Z --parallel-max ${defaultConcurrency}, the same ${2 * files} requests ` +
        `(the practical limit)`,
      value: `${s(curlPar)} = ${x(curlPar / idealParallel)} the ideal; one at a time ${
        s(curlSeq)
      } (${((curlSeq - transferMs) / (2 * files)).toFixed(1)} ms per request)`,
      target: "",
    });
    raw.scenario1 = {
      files,
      bytes,
      requests,
      latencyMs,
      transfer,
      curlParallel,
      curlSequential,
      times,
      idealParallel,
    };
    for (const rt of runtimes) {
      const par = median(times[rt.name].parallel.map((m) => m.ms));
      const seq = median(times[rt.name].sequential.map((m) => m.ms));
      const peak = Math.max(...times[rt.name].parallel.map((m) => m.peakMb ?? 0));
      row({
        scenario: "1",
        figure: `${rt.name}, default concurrency (${defaultConcurrency}) vs ideal`,
        value:
          `${s(par)} = ${x(par / idealParallel)} the ideal, ${x(par / curlPar)} curl's time; ` +
          `peak ${mb(peak)}`,
        target: `<= ${TARGETS.idealRatio}x`,
        met: par / idealParallel <= TARGETS.idealRatio,
      });
      row({
        scenario: "1",
        figure: `${rt.name}, speed-up over --concurrency 1`,
        value: `${x(seq / par)} (sequential ${s(seq)} = ${x(seq / idealSequential)} its ideal, ` +
          `${x(seq / curlSeq)} curl's time)`,
        target: `>= ${TARGETS.sequentialSpeedup}x`,
        met: seq / par >= TARGETS.sequentialSpeedup,
      });
    }
  } finally {
    await emu.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios 2 and 4: one large file, verified and not

/** "2 GiB" or "512 MiB". */
function sizeLabel(size: number): string {
  return size % GIB === 0 ? `${size / GIB} GiB` : `${(size / MIB).toFixed(0)} MiB`;
}

/** The same large file twice: AUTH_LOG listed with its SHA-256, AUDIT_LOG without one. */
function largeFiles(size: number): FileSpec[] {
  const endTime = "2026-07-09T13:00:00Z";
  return [
    { eventType: "AUTH_LOG", endTime, size },
    { eventType: "AUDIT_LOG", endTime, size, advertise: { fileSha256: null } },
  ];
}

/** The tool's arguments for one event type of `emu`. */
function toolArgs(emu: EmulatorProcess, principal: string, eventType: string): string[] {
  return [principal, eventType, "100", AFTER, "--api-base", emu.apiBase, ...UNPACED];
}

/** curl on the file's signed URL, to /dev/null or into a pipe. */
async function curlFile(emu: EmulatorProcess, principal: string, id: string, intoPipe = false) {
  const url = await signedUrl(emu.apiBase, emu.key, principal, id);
  const output = intoPipe ? [] : ["-o", "/dev/null"];
  const m = await measure(["curl", "-sS", "-L", ...output, url], { intoPipe });
  if (m.code !== 0) throw new Error(`curl failed: ${m.stderr}`);
  return m;
}

async function scenarioLargeFile(
  binary: Runtime,
  sources: Runtime[],
  size: number,
  runs: number,
  withGzip: boolean,
): Promise<void> {
  const human = sizeLabel(size);
  log(`\nScenarios 2 and 4: one file of ${human}`);
  log("  starting the emulator (it hashes the file once before serving)");
  const emu = await startEmulatorProcess({ latencyMs: 0, files: largeFiles(size) });
  const out = await mkdtemp(join(tmpdir(), "oai-bench-out-"));
  try {
    const verified = emu.files.find((f) => f.sha)!;
    const unverified = emu.files.find((f) => !f.sha)!;
    const principal = verified.principal;
    const argsFor = (eventType: string) => toolArgs(emu, principal, eventType);
    const results: Record<string, Measured[]> = {};
    const add = (name: string, m: Measured) => (results[name] ??= []).push(m);
    const curl = (id: string, intoPipe = false) => curlFile(emu, principal, id, intoPipe);
    const toDir = async (rt: Runtime, eventType: string, expected: number, gzip: boolean) => {
      const dir = join(out, "run");
      const args = [...argsFor(eventType), "--output-dir", dir, ...(gzip ? ["--gzip"] : [])];
      try {
        const m = await runTool(rt, args, emu.key, "--output-dir");
        const written = await treeBytes(dir);
        if (!gzip && written !== expected) {
          throw new Error(`--output-dir wrote ${written} bytes instead of ${expected}`);
        }
        return m;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };

    // What the tool's designs cost at the least with standard tools, for comparison: verify
    // before emitting (download to a file, hash it, copy it out), and a durable file (fsync).
    const verifyThenEmit = async (id: string) => {
      const url = await signedUrl(emu.apiBase, emu.key, principal, id);
      const file = join(out, "spool");
      const script = `curl -sS -o "$2" "$1" && openssl dgst -sha256 "$2" >/dev/null && ` +
        `cat "$2" >/dev/null; status=$?; rm -f "$2"; exit $status`;
      const m = await measure(["sh", "-c", script, "sh", url, file]);
      if (m.code !== 0) throw new Error(`curl + openssl + cat failed: ${m.stderr}`);
      return m;
    };
    const durableFile = async (id: string) => {
      const url = await signedUrl(emu.apiBase, emu.key, principal, id);
      const file = join(out, "file");
      const script = `curl -sS -o "$2" "$1" && sync "$2"; status=$?; rm -f "$2"; exit $status`;
      const m = await measure(["sh", "-c", script, "sh", url, file]);
      if (m.code !== 0) throw new Error(`curl + sync failed: ${m.stderr}`);
      return m;
    };
    const hasOpenssl = available("openssl", ["version"]);
    // The runtime's own floor: Bun's fetch loop, with and without the hash, nothing else.
    const hasBun = available("bun");
    const fetchFloor = async (id: string, sha: boolean) => {
      const url = await signedUrl(emu.apiBase, emu.key, principal, id);
      const m = await measure(["bun", FETCH_TS, url, ...(sha ? ["--sha256"] : [])]);
      if (m.code !== 0) throw new Error(`the bare fetch loop failed: ${m.stderr}`);
      if (!m.stderr.startsWith(`${verified.size} bytes`)) {
        throw new Error(`the bare fetch loop read the wrong length: ${m.stderr}`);
      }
      return m;
    };

    for (let round = 0; round < runs; round++) {
      const first = round === 0;
      const step = async (name: string, run: () => Promise<Measured>) => {
        const m = await run();
        add(name, m);
        log(
          `  round ${round + 1}: ${name}: ${s(m.ms)}, ${mbps(size, m.ms)}, peak ${mb(m.peakMb)}, ` +
            `cpu ${m.cpuS?.toFixed(1) ?? "?"} s`,
        );
      };
      await step("curl", () => curl(verified.id));
      await step("stdout", () => runTool(binary, argsFor("AUTH_LOG"), emu.key, "stdout"));
      await step("stdout, no sha", () => runTool(binary, argsFor("AUDIT_LOG"), emu.key, "stdout"));
      await step("curl | cat", () => curl(verified.id, true));
      await step("stdout | cat", () => runTool(binary, argsFor("AUTH_LOG"), emu.key, "pipe", true));
      if (hasBun) {
        await step("bun fetch", () => fetchFloor(verified.id, false));
        await step("bun fetch+sha", () => fetchFloor(verified.id, true));
      }
      if (hasOpenssl) await step("curl+openssl+cat", () => verifyThenEmit(verified.id));
      // Disk-bound (fsync) and long: once, unless asked for more with --runs above 3.
      if (first || runs > 3) {
        await step("dir", () => toDir(binary, "AUTH_LOG", verified.size, false));
        await step("dir, no sha", () => toDir(binary, "AUDIT_LOG", unverified.size, false));
        await step("curl+sync", () => durableFile(verified.id));
      }
      if (first && withGzip) await step("dir gzip", () => toDir(binary, "AUTH_LOG", 0, true));
      if (first) {
        for (const rt of sources) {
          await step(
            `${rt.name} stdout`,
            () => runTool(rt, argsFor("AUTH_LOG"), emu.key, "stdout"),
          );
        }
      }
    }
    raw.scenario2 = { size, results };

    const med = (name: string) => median(results[name].map((m) => m.ms));
    const peak = (name: string) => Math.max(...results[name].map((m) => m.peakMb ?? 0));
    const cpu = (name: string) => {
      const seconds = results[name].map((m) => m.cpuS).filter((c) => c !== undefined);
      return seconds.length ? `${median(seconds).toFixed(1)} s` : "n/a";
    };
    const curlMs = med("curl");
    row({
      scenario: "2",
      figure: `curl -sS -L -o /dev/null, ${human} (the reference)`,
      value: `${mbps(size, curlMs)} (${s(curlMs)}), peak ${mb(peak("curl"))}, CPU ${cpu("curl")}`,
      target: "",
    });
    const throughput = (name: string, label: string, target = true) =>
      row({
        scenario: "2",
        figure: label,
        value: `${mbps(size, med(name))} = ${x(curlMs / med(name))} curl; peak ${
          mb(peak(name))
        }, CPU ${cpu(name)}`,
        target: target
          ? `>= ${TARGETS.curlRatio}x curl, < ${TARGETS.peakMb} MB`
          : `< ${TARGETS.peakMb} MB`,
        met: (!target || curlMs / med(name) >= TARGETS.curlRatio) && peak(name) < TARGETS.peakMb,
      });
    const reference = (name: string, label: string) =>
      results[name] && row({
        scenario: "2",
        figure: label,
        value: `${mbps(size, med(name))} = ${x(curlMs / med(name))} curl; CPU ${cpu(name)}`,
        target: "",
      });
    reference("bun fetch", "bare Bun fetch loop, discarding (reference: the runtime's floor)");
    reference("bun fetch+sha", "bare Bun fetch loop + SHA-256 (reference: floor when verifying)");
    reference("curl+openssl+cat", "curl to a file, openssl sha256, cat > /dev/null (reference)");
    throughput("stdout", `${binary.name} > /dev/null, verified`);
    const curlPipeMs = med("curl | cat");
    row({
      scenario: "2",
      figure: "curl -sS -L URL | cat > /dev/null (reference: into a pipe)",
      value: `${mbps(size, curlPipeMs)} (${s(curlPipeMs)}); CPU ${cpu("curl | cat")}`,
      target: "",
    });
    row({
      scenario: "2",
      figure: `${binary.name} | cat > /dev/null, verified (as a SIEM shipper reads it)`,
      value: `${mbps(size, med("stdout | cat"))} = ${x(curlPipeMs / med("stdout | cat"))} ` +
        `curl's pipe, ${x(curlMs / med("stdout | cat"))} curl; CPU ${cpu("stdout | cat")}`,
      target: `>= ${TARGETS.curlRatio}x curl`,
      met: curlMs / med("stdout | cat") >= TARGETS.curlRatio,
    });
    reference("curl+sync", "curl -o FILE, then sync FILE (reference)");
    throughput("dir", `${binary.name} --output-dir, verified`);
    if (results["dir gzip"]) {
      throughput("dir gzip", `${binary.name} --output-dir --gzip, verified`, false);
    }
    for (const rt of sources) throughput(`${rt.name} stdout`, `${rt.name} > /dev/null, verified`);

    const overhead = (withSha: string, without: string, label: string) => {
      const ratio = med(withSha) / med(without) - 1;
      row({
        scenario: "4",
        figure: label,
        value: `${(ratio * 100).toFixed(0)}% (${s(med(withSha))} vs ${s(med(without))})`,
        target: `< ${TARGETS.verifyOverhead * 100}%`,
        met: ratio < TARGETS.verifyOverhead,
      });
    };
    overhead("stdout", "stdout, no sha", `SHA-256 verification cost, ${binary.name} > /dev/null`);
    overhead("dir", "dir, no sha", `SHA-256 verification cost, ${binary.name} --output-dir`);
  } finally {
    await rm(out, { recursive: true, force: true });
    await emu.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios 2 and 4 again, on a link of fixed speed

/**
 * The large file over a capped link (the emulator paces its storage responses), as from a real
 * object store: where the wire, not the CPU, is the limit, the tool should keep pace with curl,
 * and hashing should cost nothing, since it runs while the tool waits for bytes.
 */
async function scenarioLink(binary: Runtime, size: number, rate: number, runs: number) {
  const human = sizeLabel(size);
  const link = `${(rate * 8 / 1e9).toFixed(1)} Gbit/s (${(rate / 1e6).toFixed(0)} MB/s)`;
  log(`\nScenarios 2 and 4 on a link of ${link}: one file of ${human}`);
  const emu = await startEmulatorProcess({
    latencyMs: 0,
    storageBytesPerSecond: rate,
    files: largeFiles(size),
  });
  try {
    const verified = emu.files.find((f) => f.sha)!;
    const args = (eventType: string) => toolArgs(emu, verified.principal, eventType);
    const results = await interleave(runs, {
      "curl": () => curlFile(emu, verified.principal, verified.id),
      "stdout": () => runTool(binary, args("AUTH_LOG"), emu.key, "stdout, capped link"),
      "stdout, no sha": () => runTool(binary, args("AUDIT_LOG"), emu.key, "stdout, capped link"),
    }, log);
    raw.scenarioLink = { size, rate, results };
    const med = (name: string) => median(results[name].map((m) => m.ms));
    const curlMs = med("curl");
    row({
      scenario: "2 (link)",
      figure: `curl -sS -L -o /dev/null, ${human} over ${link}`,
      value: `${mbps(size, curlMs)} (${s(curlMs)})`,
      target: "",
    });
    for (const [name, label] of [["stdout", "verified"], ["stdout, no sha", "not verified"]]) {
      row({
        scenario: "2 (link)",
        figure: `${binary.name} > /dev/null, ${label}`,
        value: `${mbps(size, med(name))} = ${x(curlMs / med(name))} curl`,
        target: "",
      });
    }
    row({
      scenario: "4 (link)",
      figure: `SHA-256 verification cost over ${link}`,
      value: `${((med("stdout") / med("stdout, no sha") - 1) * 100).toFixed(0)}% (${
        s(med("stdout"))
      } vs ${s(med("stdout, no sha"))})`,
      target: "",
    });
  } finally {
    await emu.close();
  }
}

/** Bytes of every file under `dir`. */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: start-up

/** The bare Bun binary's name among scenario 3's runtimes. */
const BARE_BUN = "bare Bun binary";

async function scenarioStartup(runtimes: Runtime[], runs: number): Promise<void> {
  log(`\nScenario 3: --version, median of ${runs} runs each`);
  const times: Record<string, number[]> = {};
  for (const rt of runtimes) {
    await measure([...rt.argv, "--version"]); // warm the file cache and Deno's module cache
    times[rt.name] = [];
  }
  for (let i = 0; i < runs; i++) {
    for (const rt of runtimes) {
      const started = performance.now();
      const r = spawnSync(rt.argv[0], [...rt.argv.slice(1), "--version"], { stdio: "ignore" });
      if (r.status !== 0) throw new Error(`${rt.name} --version exited with ${r.status}`);
      times[rt.name].push(performance.now() - started);
    }
  }
  raw.scenario3 = times;
  const bare = runtimes.find((rt) => rt.name === BARE_BUN);
  for (const rt of runtimes) {
    const ms = median(times[rt.name]);
    const isBinary = rt === runtimes[0];
    const floor = isBinary && bare
      ? `; bare Bun binary ${median(times[bare.name]).toFixed(0)} ms`
      : "";
    row({
      scenario: "3",
      figure: rt === bare ? `${BARE_BUN}: console.log("x"), same flags` : `${rt.name} --version`,
      value: `${ms.toFixed(0)} ms (min ${Math.min(...times[rt.name]).toFixed(0)} ms)${floor}`,
      target: isBinary ? `< ${TARGETS.startupMs} ms` : "",
      met: isBinary ? ms < TARGETS.startupMs : undefined,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Main

/** Every row group a selector can name; the default runs them all. */
const SELECTORS = [
  "1",
  "2",
  "3",
  "4",
  "link",
  "s3",
  "azure",
  "hec",
  "elasticsearch",
  "syslog",
  "verify",
] as const;
/** Names for several groups at once. */
const GROUPS: Record<string, string[]> = {
  stores: ["s3", "azure"],
  siem: ["hec", "elasticsearch"],
  destinations: ["s3", "azure", "hec", "elasticsearch", "syslog", "verify"],
};

const { values: flags, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    tool: { type: "string" },
    "store-files": { type: "string" },
    "store-size": { type: "string" },
    "siem-size": { type: "string" },
    quick: { type: "boolean" },
    size: { type: "string" },
    runs: { type: "string" },
    "startup-runs": { type: "string" },
    scenarios: { type: "string" },
    bin: { type: "string" },
    "no-source": { type: "boolean" },
    "no-gzip": { type: "boolean" },
    "emulator-runtime": { type: "string" },
    "link-rate": { type: "string" },
    "link-size": { type: "string" },
    json: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  const doc = readFileSync(fileURLToPath(import.meta.url), "utf8");
  log(/Usage:[\s\S]*?(?=\n \*\/)/.exec(doc)![0].replace(/\n \* ?/g, "\n"));
  process.exit(0);
}

const quick = Boolean(flags.quick);
const size = parseSize(flags.size ?? (quick ? "512MiB" : "2GiB"));
const runs = Number(flags.runs ?? (quick ? 1 : 3));
const startupRuns = Number(flags["startup-runs"] ?? (quick ? 10 : 30));
const named = [...positionals, ...(flags.scenarios?.split(",") ?? [])].map((t) => t.trim())
  .filter(Boolean).flatMap((t) => GROUPS[t] ?? [t]);
for (const name of named) {
  if (!(SELECTORS as readonly string[]).includes(name)) {
    log(
      `bench: unknown row group ${name}: name any of ${SELECTORS.join(", ")}, or ` +
        `${Object.keys(GROUPS).join(", ")}`,
    );
    process.exit(2);
  }
}
const scenarios = new Set<string>(named.length ? named : SELECTORS);
const storeFiles = Number(flags["store-files"] ?? (quick ? 20 : 100));
const storeBytes = parseSize(flags["store-size"] ?? "1MiB");
const siemMib = Math.round(parseSize(flags["siem-size"] ?? (quick ? "50MiB" : "100MiB")) / MIB);
const linkRate = parseSize(flags["link-rate"] ?? "250MB");
const linkSize = parseSize(flags["link-size"] ?? (quick ? "512MiB" : "1GiB"));
const emulatorRuntime = flags["emulator-runtime"] ?? (available("bun") ? "bun" : "deno");
if (!available("curl")) throw new Error("curl is needed as the reference");

const scratch = await mkdtemp(join(tmpdir(), "oai-bench-"));
let failed = false;
try {
  // --tool bun|deno: the tool from source, without building a binary (a shared machine).
  const fromSource: Record<string, Runtime> = {
    bun: { name: "bun run", argv: ["bun", MAIN_TS] },
    deno: { name: "deno run", argv: ["deno", "run", "--allow-all", "--quiet", MAIN_TS] },
  };
  if (flags.tool && !fromSource[flags.tool] && flags.tool !== "binary") {
    throw new Error(`--tool ${flags.tool}: name bun, deno or binary`);
  }
  const binPath = fromSource[flags.tool ?? ""] ? undefined : flags.bin ?? await buildBinary();
  const binary: Runtime = binPath ? { name: "binary", argv: [binPath] } : fromSource[flags.tool!];
  const sources: Runtime[] = flags["no-source"] ? [] : [
    ...(available("deno")
      ? [{ name: "deno run", argv: ["deno", "run", "--allow-all", "--quiet", MAIN_TS] }]
      : []),
    ...(available("bun") ? [{ name: "bun run", argv: ["bun", MAIN_TS] }] : []),
  ];
  const header = `Machine: ${machine()}. Emulator under ${emulatorRuntime}, in its own process.`;
  log(header);
  log(`Tool: ${binary.argv.join(" ")}`);
  if (scenarios.has("1")) await scenarioSmallFiles([binary, ...sources], runs);
  if (scenarios.has("2") || scenarios.has("4")) {
    await scenarioLargeFile(binary, sources, size, runs, !flags["no-gzip"]);
  }
  if (scenarios.has("link")) await scenarioLink(binary, linkSize, linkRate, runs);
  const stores = new Set((["s3", "azure"] as const).filter((s) => scenarios.has(s)));
  if (stores.size > 0) {
    const options = {
      files: storeFiles,
      fileBytes: storeBytes,
      runs,
      stores,
      emulator: emulatorRuntime,
    };
    for (const r of await benchStores(binary.argv, options, log)) row(r);
  }
  const siems = new Set((["hec", "elasticsearch"] as const).filter((s) => scenarios.has(s)));
  if (siems.size > 0) {
    // The bare loop runs under the tool's runtime (Bun for the binary, which Bun builds).
    const bareRuntime = binary.argv[0] === "deno" ? fromSource.deno.argv.slice(0, -1) : ["bun"];
    const options = {
      mib: siemMib,
      runs,
      siems: siems as Set<Siem>,
      bareRuntime,
      emulator: emulatorRuntime,
    };
    for (const r of await benchSiem(binary.argv, options, log)) row(r);
  }
  if (scenarios.has("syslog")) {
    for (
      const r of await benchSyslog(
        binary.argv,
        { mib: siemMib, runs, emulator: emulatorRuntime },
        log,
      )
    ) row(r);
  }
  if (scenarios.has("verify")) {
    const options = { files: quick ? 16 : 64, fileBytes: 4 * MIB, runs, emulator: emulatorRuntime };
    for (const r of await benchVerify(binary.argv, options, log)) row(r);
  }
  if (scenarios.has("3")) {
    const bare: Runtime = { name: BARE_BUN, argv: [buildBareBinary(scratch)] };
    await scenarioStartup([binary, bare, ...sources], startupRuns);
  }
  const command = `deno task bench ${process.argv.slice(2).join(" ")}`.trim();
  console.log(`${header}\n\n${table()}\n\nReproduce: \`${command}\``);
  if (flags.json) await writeFile(flags.json, JSON.stringify({ header, rows, raw }, null, 2));
} catch (error) {
  failed = true;
  log(`bench: ${(error as Error).stack ?? error}`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
