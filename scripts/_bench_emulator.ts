/**
 * The benchmark's emulator process: `scripts/bench.ts` runs the local Compliance API emulator in
 * this separate process so that its CPU is never counted against the tool under test. It starts
 * the emulator described by the JSON in argv[2], computes every advertised SHA-256 before
 * answering (so no listing waits for the emulator to hash 2 GiB), prints one JSON line with where
 * it listens, and stops when its stdin closes (the benchmark ended or died).
 *
 * Usage (by bench.ts only): bun scripts/_bench_emulator.ts '{"latencyMs":20,"files":[...]}'
 */
import process from "node:process";
import { type FileSpec, generateDataset, startEmulator } from "../tests/emulator/mod.ts";
import { DEFAULT_PRINCIPALS, normalizeSpec } from "../tests/emulator/dataset.ts";

/** What bench.ts asks for. */
export interface BenchEmulatorSpec {
  latencyMs: number;
  /** Caps the storage link (bytes per second), shared by all downloads. */
  storageBytesPerSecond?: number;
  /** Explicit files; `dataset` below is added after them. */
  files?: FileSpec[];
  /**
   * Generated files. `precompute` hands the emulator each file's bytes ready-made (as an object
   * store serves them) instead of generating them per request, which costs the emulator ~1.5 ms
   * per 100 KB file: time that is the emulator's, not the tool's. The bytes are the same.
   */
  dataset?: { count: number; size: number; start: string; eventType: string; precompute?: boolean };
  /** `files` too served ready-made (the same bytes), for rows where the emulator's CPU competes. */
  precompute?: boolean;
}

/** What this process prints once ready. */
export interface BenchEmulatorInfo {
  apiBase: string;
  key: string;
  files: Array<{ id: string; eventType: string; principal: string; size: number; sha: boolean }>;
}

const spec = JSON.parse(process.argv[2] ?? "{}") as BenchEmulatorSpec;
const principal = DEFAULT_PRINCIPALS[0];
const readyMade = (f: FileSpec): FileSpec => ({
  ...f,
  content: normalizeSpec(f, principal, () => false).content.bytes(),
});
const files: FileSpec[] = (spec.files ?? []).map((f) => spec.precompute ? readyMade(f) : f);
if (spec.dataset) {
  const { count, size, start, eventType } = spec.dataset;
  const specs = generateDataset({ count, size, start, eventTypes: [eventType] });
  files.push(
    ...(spec.dataset.precompute ? specs.map(readyMade) : specs),
  );
}
// Signed URLs stay valid for the whole run: the benchmark fetches one per curl run.
const ttl = 6 * 3600_000;
const emulator = await startEmulator({
  files,
  latencyMs: spec.latencyMs,
  storageBytesPerSecond: spec.storageBytesPerSecond,
  signedUrlTtlMs: ttl,
});

const advertised = (f: FileSpec) => !(f.advertise && "fileSha256" in f.advertise);
for (const file of emulator.files) {
  if (advertised(file)) await emulator.sha256Of(file.id);
}

const info: BenchEmulatorInfo = {
  apiBase: emulator.apiBase,
  key: emulator.key,
  files: emulator.files.map((f) => ({
    id: f.id,
    eventType: f.eventType,
    principal: f.principal,
    size: f.size,
    sha: advertised(f),
  })),
};
process.stdout.write(JSON.stringify(info) + "\n");

const stop = async () => {
  await emulator.close();
  process.exit(0);
};
process.stdin.on("data", () => {});
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
