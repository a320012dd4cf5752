/**
 * A local emulator of the OpenAI Compliance Logs Platform API, for tests, demos and benchmarks.
 * Never imported by `lib/` or `main.ts`.
 *
 * @example
 * import { generateDataset, startEmulator } from "./tests/emulator/mod.ts";
 * const emu = await startEmulator({ files: generateDataset({ count: 250, start: "2026-07-01T00:00:00Z" }) });
 * try {
 *   // point the client at emu.apiBase with emu.key
 * } finally {
 *   await emu.close();
 * }
 */
export { demoDataset, generateDataset } from "./dataset.ts";
export type { DatasetOptions, FileSpec, NormalizedFileSpec } from "./dataset.ts";
export type { Fault, FaultTarget } from "./faults.ts";
export { REFERENCE_DOWNLOAD_LIMIT } from "./access.ts";
export type { DownloadLimit, ScopedKey } from "./access.ts";
export { GONE_DETAIL } from "./api.ts";
export { PortInUseError, REFERENCE_RETENTION_DAYS, startEmulator } from "./server.ts";
export type { Emulator, EmulatorOptions, RecordedRequest } from "./server.ts";
export { gzipOf } from "./storage.ts";
