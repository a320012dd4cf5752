/**
 * The syslog benchmark row (issue 19): records per second from the tool to a real rsyslogd over
 * TCP (`-o syslog+tcp://`), against a bare loop writing the same octet-counted frames, prepared
 * in memory beforehand, into a socket to the same rsyslogd: where rsyslog on these cores is the
 * limit, the bare loop shows that limit. rsyslogd writes every message to a file as in the tests
 * (tests/servers/rsyslog.ts); the emulator runs in this process.
 *
 * Usage: deno run -A scripts/_bench_syslog.ts [MiB] (default 100), or from scripts/bench.ts
 * (`--scenarios syslog`).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import { startEmulator } from "../tests/emulator/mod.ts";
import { rsyslogSkip, startRsyslog } from "../tests/servers/rsyslog.ts";
import { priorityOf, recordFacts, syslogFrame, syslogHeader } from "../lib/syslog/message.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const FACILITY = 20;
const TARGET_RECORDS_PER_S = 50_000;

export interface SyslogBenchRow {
  figure: string;
  value: string;
  target: string;
  met?: boolean;
}

/** Runs `argv` and returns its wall time and peak RSS (MB, from /usr/bin/time -v when present). */
async function timed(argv: string[], env: Record<string, string>) {
  const timeFile = join(tmpdir(), `syslog-bench-${process.pid}-${Date.now()}`);
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

/** Writes `frames` into a new connection, 64 KiB at a time, and waits for rsyslog's close. */
async function bareLoop(port: number, frames: Uint8Array[]): Promise<number> {
  const started = performance.now();
  const socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("data", () => {});
  let pending: Uint8Array[] = [];
  let bytes = 0;
  const write = async () => {
    const chunk = Buffer.concat(pending, bytes);
    pending = [];
    bytes = 0;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once("drain", resolve));
  };
  for (const frame of frames) {
    pending.push(frame);
    bytes += frame.length;
    if (bytes >= 64 * 1024) await write();
  }
  if (bytes > 0) await write();
  await new Promise<void>((resolve) => {
    socket.once("close", () => resolve());
    socket.end();
  });
  return performance.now() - started;
}

/** The rows: the tool's records/s and peak RSS, the bare loop's, and their ratio. */
export async function benchSyslog(
  toolArgv: string[],
  mib = 100,
  log: (line: string) => void = console.error,
): Promise<SyslogBenchRow[]> {
  const why = rsyslogSkip();
  if (why) return [{ figure: "syslog over TCP to rsyslog", value: `skipped: ${why}`, target: "" }];
  const rsyslog = await startRsyslog();
  const count = Math.max(1, Math.round(mib / 4));
  const files = Array.from({ length: count }, (_, i) => ({
    eventType: "AUTH_LOG",
    endTime: new Date(Date.parse("2026-07-02T00:00:00Z") + i * 3_600_000).toISOString()
      .replace(/\.\d{3}Z$/, "Z"),
    size: 4 * 1024 * 1024,
  }));
  const emulator = await startEmulator({ files });
  try {
    // The same frames the tool sends, built before the clock starts.
    const header = syslogHeader({
      priority: priorityOf(FACILITY, 6),
      hostname: hostname(),
      procId: "1",
      msgId: "AUTH_LOG",
    });
    const frames: Uint8Array[] = [];
    for (const file of emulator.files) {
      const text = await emulator.contentOf(file.id!);
      let start = 0;
      for (let end = text.indexOf(0x0a); end !== -1; end = text.indexOf(0x0a, start)) {
        const record = text.subarray(start, end);
        if (record.length > 0) {
          frames.push(syslogFrame(header, recordFacts(record).timestamp, record));
        }
        start = end + 1;
      }
    }
    const records = frames.length;
    log(`syslog: ${records} records in ${count} files (${mib} MiB) to rsyslogd over TCP`);
    const tool = await timed(
      [
        ...toolArgv,
        PRINCIPAL,
        "AUTH_LOG",
        "100",
        "2026-07-01T00:00:00Z",
        "-o",
        `syslog+tcp://127.0.0.1:${rsyslog.ports.tcp}`,
        "--syslog-facility",
        String(FACILITY),
      ],
      { COMPLIANCE_API_KEY: emulator.key, COMPLIANCE_API_BASE: emulator.apiBase, NO_COLOR: "1" },
    );
    const bareMs = await bareLoop(rsyslog.ports.tcp, frames);
    const toolRate = records / (tool.ms / 1000);
    const bareRate = records / (bareMs / 1000);
    const ratio = toolRate / bareRate;
    return [
      {
        figure: "syslog over TCP to rsyslogd: the tool (download, verify, send)",
        value: `${Math.round(toolRate)} records/s, peak RSS ${tool.peakMb?.toFixed(0) ?? "n/a"} MB`,
        target: `>= ${TARGET_RECORDS_PER_S} records/s or >= 0.8x the bare loop`,
        met: toolRate >= TARGET_RECORDS_PER_S || ratio >= 0.8,
      },
      {
        figure: "syslog over TCP to rsyslogd: a bare loop writing the same frames",
        value: `${Math.round(bareRate)} records/s (the tool: ${ratio.toFixed(2)}x)`,
        target: "",
      },
    ];
  } finally {
    await emulator.close();
  }
}

if (import.meta.main || process.argv[1] === fileURLToPath(import.meta.url)) {
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const argv = deno
    ? [deno.execPath(), "run", "--allow-all", "--quiet", main]
    : [process.execPath, main];
  const rows = await benchSyslog(argv, Number(process.argv[2] ?? 100));
  for (const row of rows) {
    console.log(
      `${row.figure} | ${row.value} | ${row.target}${
        row.met === undefined ? "" : row.met ? " [met]" : " [MISSED]"
      }`,
    );
  }
  process.exit(0);
}
