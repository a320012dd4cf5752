/**
 * The `verify` rows (issue 18): `verify DIR` over an archive the tool wrote, against `sha256sum`
 * over the same files, and for a `--gzip` archive against `zcat | sha256sum` (one zcat over all
 * the files into one sha256sum: the least work that reads every byte decompressed), with the
 * verify child's peak RSS. The archives are written once, before the clock; rounds interleave.
 *
 * Usage: from scripts/bench.ts (`deno task bench verify`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulatorProcess } from "./_bench_emulator_process.ts";
import {
  type BenchRow,
  interleave,
  loadOf,
  measureOk,
  medianMs,
  megabytes,
  peakOf,
  seconds,
  times,
  UNPACED,
} from "./_bench_measure.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const TARGETS = { ratio: 1.5, peakMb: 150 };

export async function benchVerify(
  tool: string[],
  options: { files: number; fileBytes: number; runs: number; emulator: string },
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const files = Array.from({ length: options.files }, (_, i) => ({
    eventType: "AUTH_LOG",
    endTime: new Date(Date.parse("2026-07-02T00:00:00Z") + i * 3_600_000).toISOString()
      .replace(/\.\d{3}Z$/, "Z"),
    size: options.fileBytes,
  }));
  const emulator = await startEmulatorProcess(options.emulator, { latencyMs: 0, files });
  const dir = await mkdtemp(join(tmpdir(), "oai-bench-verify-"));
  const rows: BenchRow[] = [];
  try {
    const total = emulator.files.reduce((n, f) => n + f.size, 0);
    const what = `${options.files} files, ${(total / 1e6).toFixed(0)} MB`;
    log(`\nverify: ${what}, plain and --gzip archives written first`);
    const env = { COMPLIANCE_API_KEY: emulator.key, COMPLIANCE_API_BASE: emulator.apiBase };
    const plain = join(dir, "plain");
    const gzip = join(dir, "gzip");
    for (const [out, extra] of [[plain, []], [gzip, ["--gzip"]]] as const) {
      await measureOk(
        [
          ...tool,
          PRINCIPAL,
          "AUTH_LOG",
          "100",
          "2026-07-01T00:00:00Z",
          "--output-dir",
          out,
          ...extra,
          ...UNPACED,
        ],
        { env, what: "writing the archive" },
      );
    }
    const verify = (archive: string) => () =>
      measureOk([...tool, "verify", archive, "--quiet"], { what: `verify ${archive}` });
    const files = (archive: string, name: string) =>
      `find "${archive}" -type f -name '${name}' -not -path '*/_manifest/*' -print0 | xargs -0`;
    const results = await interleave(options.runs, {
      "verify": verify(plain),
      "sha256sum": () => measureOk(["bash", "-c", `${files(plain, "*.jsonl")} sha256sum`]),
      "verify --gzip": verify(gzip),
      "zcat | sha256sum": () =>
        measureOk([
          "bash",
          "-c",
          `set -o pipefail; ${files(gzip, "*.jsonl.gz")} zcat | sha256sum`,
        ]),
    }, log);
    for (
      const [name, floor, label] of [
        ["verify", "sha256sum", "vs sha256sum over the same files"],
        ["verify --gzip", "zcat | sha256sum", "of the --gzip archive vs zcat | sha256sum"],
      ]
    ) {
      const ratio = medianMs(results[name]) / medianMs(results[floor]);
      const peak = peakOf(results[name]);
      rows.push({
        scenario: "verify",
        figure: `verify ${label} (${what})`,
        value: `${times(ratio)} (${seconds(medianMs(results[name]))} vs ${
          seconds(medianMs(results[floor]))
        }); peak ${megabytes(peak)}; load ${loadOf([results[name], results[floor]])}`,
        target: `<= ${TARGETS.ratio}x; < ${TARGETS.peakMb} MB`,
        met: ratio <= TARGETS.ratio && (peak === undefined || peak < TARGETS.peakMb),
      });
    }
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
