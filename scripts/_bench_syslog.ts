/**
 * The syslog benchmark row (issue 19): records per second from the tool to a real rsyslogd over
 * TCP (`-o syslog+tcp://`), against a bare loop writing the same octet-counted frames, prepared
 * in memory beforehand, into a socket to the same rsyslogd: where rsyslog on these cores is the
 * limit, the bare loop shows that limit. rsyslogd writes every message to a file as in the tests
 * (tests/servers/rsyslog.ts); the emulator runs in this process.
 *
 * Usage: from scripts/bench.ts (`deno task bench syslog`).
 */
import { connect } from "node:net";
import { hostname } from "node:os";
import { Buffer } from "node:buffer";
import { contentOf, startEmulatorProcess } from "./_bench_emulator_process.ts";
import { rsyslogSkip, startRsyslog } from "../tests/servers/rsyslog.ts";
import { priorityOf, recordFacts, syslogFrame, syslogHeader } from "../lib/syslog/message.ts";
import {
  type BenchRow,
  interleave,
  loadOf,
  measureOk,
  medianMs,
  megabytes,
  peakOf,
  timeLoop,
  UNPACED,
} from "./_bench_measure.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const FACILITY = 20;
const TARGETS = { recordsPerS: 50_000, bareRatio: 0.8, peakMb: 150 };

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
  options: { mib: number; runs: number; emulator: string },
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const why = rsyslogSkip();
  if (why) {
    return [{
      scenario: "syslog",
      figure: "syslog over TCP",
      value: `skipped: ${why}`,
      target: "",
    }];
  }
  const rsyslog = await startRsyslog();
  const count = Math.max(1, Math.round(options.mib / 4));
  const files = Array.from({ length: count }, (_, i) => ({
    eventType: "AUTH_LOG",
    endTime: new Date(Date.parse("2026-07-02T00:00:00Z") + i * 3_600_000).toISOString()
      .replace(/\.\d{3}Z$/, "Z"),
    size: 4 * 1024 * 1024,
  }));
  const emulator = await startEmulatorProcess(options.emulator, { latencyMs: 0, files });
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
      const text = await contentOf(emulator, file.id);
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
    log(
      `\nsyslog: ${records} records in ${count} files (${options.mib} MiB) to rsyslogd over TCP, ` +
        `${options.runs} rounds`,
    );
    const args = [
      PRINCIPAL,
      "AUTH_LOG",
      "100",
      "2026-07-01T00:00:00Z",
      "-o",
      `syslog+tcp://127.0.0.1:${rsyslog.ports.tcp}`,
      "--syslog-facility",
      String(FACILITY),
      "--quiet",
      ...UNPACED,
    ];
    const env = {
      COMPLIANCE_API_KEY: emulator.key,
      COMPLIANCE_API_BASE: emulator.apiBase,
      NO_COLOR: "1",
    };
    const results = await interleave(options.runs, {
      tool: () => measureOk([...toolArgv, ...args], { env, what: "the tool to rsyslog" }),
      bare: () => timeLoop(() => bareLoop(rsyslog.ports.tcp, frames)),
    }, log);
    const toolRate = records / (medianMs(results.tool) / 1000);
    const bareRate = records / (medianMs(results.bare) / 1000);
    const ratio = toolRate / bareRate;
    const peak = peakOf(results.tool);
    return [
      {
        scenario: "syslog",
        figure: "syslog over TCP to rsyslogd: a bare loop writing the same frames",
        value: `${Math.round(bareRate)} records/s`,
        target: "",
      },
      {
        scenario: "syslog",
        figure: "syslog over TCP to rsyslogd: the tool (download, verify, send)",
        value: `${Math.round(toolRate)} records/s = ${ratio.toFixed(2)}x the bare loop; peak ${
          megabytes(peak)
        }; load ${loadOf([results.tool, results.bare])}`,
        target: `>= ${TARGETS.recordsPerS} records/s or >= ${TARGETS.bareRatio}x the bare loop; ` +
          `< ${TARGETS.peakMb} MB`,
        met: (toolRate >= TARGETS.recordsPerS || ratio >= TARGETS.bareRatio) &&
          (peak === undefined || peak < TARGETS.peakMb),
      },
    ];
  } finally {
    await emulator.close();
  }
}
