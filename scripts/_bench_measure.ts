/**
 * What every benchmark script shares: running a child and measuring its wall time, peak RSS and
 * CPU (`/usr/bin/time -v` when installed, else VmHWM polled from /proc), the row type the table
 * is made of, medians, and the loop that runs variants interleaved round after round, so that
 * the ratios of one row are always taken side by side, under the same load.
 *
 * @example
 * ```ts
 * const results = await interleave(3, {
 *   "sha256sum": () => measureOk(["sha256sum", "/etc/hostname"]),
 * }, console.error);
 * console.log(medianMs(results["sha256sum"]));
 * ```
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/**
 * The tool's arguments that lift its pace of download requests (50 a minute by default, the API's
 * documented limit per key) to the most it accepts: the emulator has no such limit, and a paced
 * run would measure the pace (100 files take a minute), not the tool.
 */
export const UNPACED = ["--max-downloads-per-minute", "10000"];

/** One line of the results table. */
export interface BenchRow {
  scenario: string;
  figure: string;
  value: string;
  target: string;
  /** Whether the target is met; undefined for a reference row. */
  met?: boolean;
}

export interface Measured {
  ms: number;
  /** Peak resident set size in MB (10^6 bytes), when it could be read. */
  peakMb?: number;
  /** User + system CPU seconds, when /usr/bin/time is there. */
  cpuS?: number;
  code: number | null;
  stderr: string;
  /** The 1-minute load average when it started (the machine is shared). */
  load?: number;
}

/** Whether `command` can be run (found on PATH, or a path that exists). */
export function available(command: string, args: string[] = ["--version"]): boolean {
  try {
    return spawnSync(command, args, { stdio: "ignore" }).status === 0;
  } catch {
    return false;
  }
}

const TIME = "/usr/bin/time";
export const HAS_TIME = existsSync(TIME) && available(TIME, ["-v", "true"]);

/** Peak RSS from /proc while the process runs (when /usr/bin/time is missing). */
function pollPeak(child: ChildProcess): () => number | undefined {
  let peakKb: number | undefined;
  const read = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
      if (kb) peakKb = Math.max(peakKb ?? 0, kb);
    } catch {
      // Exited between two polls, or no /proc.
    }
  };
  const timer = setInterval(read, 10);
  return () => {
    clearInterval(timer);
    return peakKb === undefined ? undefined : peakKb * 1024 / 1e6;
  };
}

/**
 * Runs `argv` with stdout to /dev/null (straight to the file, never through this process) and
 * measures wall time, peak RSS and CPU.
 */
export async function measure(
  argv: string[],
  options: { env?: Record<string, string>; timeoutMs?: number; intoPipe?: boolean } = {},
): Promise<Measured> {
  const timeFile = join(tmpdir(), `oai-bench-time-${process.pid}-${Math.random().toString(36)}`);
  // Into a pipe read by `cat`, as a SIEM shipper reads the tool; pipefail keeps argv's status.
  const piped = options.intoPipe
    ? ["bash", "-c", 'set -o pipefail; "$@" | cat > /dev/null', "bash", ...argv]
    : argv;
  const full = HAS_TIME ? [TIME, "-v", "-o", timeFile, ...piped] : piped;
  const load = loadavg()[0];
  const started = performance.now();
  const child = spawn(full[0], full.slice(1), {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stopPolling = HAS_TIME ? undefined : pollPeak(child);
  let stderr = "";
  child.stderr!.on("data", (chunk: Uint8Array) => {
    stderr = (stderr + new TextDecoder().decode(chunk)).slice(-20_000);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15 * 60_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c) => resolve(c));
  });
  const ms = performance.now() - started;
  clearTimeout(timer);
  const result: Measured = { ms, code, stderr, load };
  if (HAS_TIME) {
    const text = await readFile(timeFile, "utf8").catch(() => "");
    await rm(timeFile, { force: true });
    const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1]);
    if (kb) result.peakMb = kb * 1024 / 1e6;
    const user = Number(/User time \(seconds\): ([\d.]+)/.exec(text)?.[1]);
    const sys = Number(/System time \(seconds\): ([\d.]+)/.exec(text)?.[1]);
    if (!Number.isNaN(user + sys)) result.cpuS = user + sys;
  } else {
    result.peakMb = stopPolling!();
  }
  return result;
}

/** `measure`, throwing with its stderr's end when it does not exit 0. */
export async function measureOk(
  argv: string[],
  options: Parameters<typeof measure>[1] & { what?: string } = {},
): Promise<Measured> {
  const m = await measure(argv, options);
  if (m.code !== 0) {
    throw new Error(
      `${options.what ?? argv.slice(0, 3).join(" ")} failed, exit ${m.code}:\n` +
        m.stderr.slice(-3000),
    );
  }
  return m;
}

/** Times an in-process loop (a bare client), as a `Measured` without memory or CPU. */
export async function timeLoop(run: () => Promise<unknown>): Promise<Measured> {
  const load = loadavg()[0];
  const started = performance.now();
  await run();
  return { ms: performance.now() - started, code: 0, stderr: "", load };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const medianMs = (list: Measured[]): number => median(list.map((m) => m.ms));
/** The highest peak of a variant's runs, when any was read. */
export const peakOf = (list: Measured[]): number | undefined => {
  const peaks = list.map((m) => m.peakMb).filter((p) => p !== undefined);
  return peaks.length ? Math.max(...peaks) : undefined;
};
/** The 1-minute load averages seen at the starts of these runs: `2.1-3.4`. */
export function loadOf(lists: Measured[][]): string {
  const loads = lists.flat().map((m) => m.load).filter((l) => l !== undefined);
  if (!loads.length) return "n/a";
  const [low, high] = [Math.min(...loads), Math.max(...loads)];
  return low.toFixed(1) === high.toFixed(1)
    ? low.toFixed(1)
    : `${low.toFixed(1)}-${high.toFixed(1)}`;
}

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
export const times = (ratio: number): string => `${ratio.toFixed(2)}x`;
export const megabytes = (value?: number): string =>
  value === undefined ? "n/a" : `${value.toFixed(0)} MB`;

/**
 * Runs each variant once per round, in order, for `runs` rounds (interleaved, so that every
 * variant sees the same moments of a shared machine), and returns each one's measurements.
 * `warmUp`: a round first that is not counted (a store's first writes into a new bucket cost
 * it seconds once; the file cache).
 */
export async function interleave(
  runs: number,
  variants: Record<string, () => Promise<Measured>>,
  log: (line: string) => void,
  options: { warmUp?: boolean } = {},
): Promise<Record<string, Measured[]>> {
  const results: Record<string, Measured[]> = {};
  for (let round = options.warmUp ? -1 : 0; round < runs; round++) {
    for (const [name, run] of Object.entries(variants)) {
      const m = await run();
      if (round >= 0) (results[name] ??= []).push(m);
      log(
        `  ${round < 0 ? "warm-up" : `round ${round + 1}`}: ${name}: ${seconds(m.ms)}, peak ${
          megabytes(m.peakMb)
        }` +
          (m.cpuS === undefined ? "" : `, cpu ${m.cpuS.toFixed(1)} s`) +
          (m.load === undefined ? "" : `, load ${m.load.toFixed(1)}`),
      );
    }
  }
  return results;
}

/** The machine's `[1, 5, 15]`-minute load averages, for a line of the report. */
export function loadNow(): string {
  return loadavg().map((l) => l.toFixed(1)).join(" ");
}
