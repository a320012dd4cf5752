/**
 * Shared fixtures for black-box tests: an emulator per test, the environment that points the CLI
 * at it, and the bytes the CLI should print for a set of files.
 */
import {
  type Emulator,
  type EmulatorOptions,
  type ScopedKey,
  startEmulator,
} from "../emulator/mod.ts";
import { concat } from "./cli.ts";

export const PRINCIPAL = "ws-0f0e0d0c-demo";
export const ORG = "org-demoorg123";
export const AFTER = "2026-07-01T00:00:00Z";
/** A second key for `scopedKeys`, as a test passes it in `COMPLIANCE_API_KEY`. */
export const SCOPED_KEY = "sk-emulator-scoped-key-5e2b7c9d1a";

/**
 * `SCOPED_KEY` authorized for `eventTypes` only: the emulator answers 403 naming the missing
 * scope for any other type.
 *
 * @example
 * ```ts
 * await withEmulator({ scopedKeys: [scopedKey(["AUTH_LOG"])] }, async (emulator) => {
 *   const env = envFor(emulator, { COMPLIANCE_API_KEY: SCOPED_KEY });
 * });
 * ```
 */
export function scopedKey(eventTypes: string[]): ScopedKey {
  return { key: SCOPED_KEY, eventTypes };
}

/** Starts an emulator, runs `fn`, and always closes it. */
export async function withEmulator<T>(
  options: EmulatorOptions,
  fn: (emulator: Emulator) => Promise<T>,
): Promise<T> {
  const emulator = await startEmulator(options);
  try {
    return await fn(emulator);
  } finally {
    await emulator.close();
  }
}

/** The environment that points the CLI at `emulator` with its key. */
export function envFor(emulator: Emulator, extra: Record<string, string> = {}) {
  return { COMPLIANCE_API_KEY: emulator.key, COMPLIANCE_API_BASE: emulator.apiBase, ...extra };
}

/** `count` files an hour apart from `start`, with the given sizes cycling. */
export function hourlyFiles(
  count: number,
  options: { eventType?: string; principal?: string; sizes?: number[]; start?: string } = {},
) {
  const start = Date.parse(options.start ?? "2026-07-02T00:00:00Z");
  const sizes = options.sizes ?? [1500, 0, 40_000, 333];
  return Array.from({ length: count }, (_, i) => ({
    id: `eclf_${(options.eventType ?? "AUTH_LOG").toLowerCase()}_${String(i).padStart(4, "0")}`,
    eventType: options.eventType ?? "AUTH_LOG",
    principal: options.principal,
    endTime: new Date(start + i * 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    size: sizes[i % sizes.length],
    trailingNewline: i % 5 !== 3,
  }));
}

/** What stdout must hold: each file as served, plus `\n` where a non-empty file lacks one. */
export async function expectedStream(emulator: Emulator, ids: string[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const id of ids) {
    const content = await emulator.contentOf(id);
    parts.push(content);
    if (content.length > 0 && content[content.length - 1] !== 0x0a) {
      parts.push(new Uint8Array([0x0a]));
    }
  }
  return concat(parts);
}

/** Ids of the emulator's files of one event type (and principal), in listing order. */
export function idsOf(emulator: Emulator, eventType = "AUTH_LOG", principal = PRINCIPAL): string[] {
  return emulator.files
    .filter((f) => f.eventType === eventType && (f.principal ?? PRINCIPAL) === principal)
    // The emulator's specs are normalized: every one has its id.
    .map((f) => ({ ...f, id: f.id! }))
    .sort((a, b) => a.endTime.localeCompare(b.endTime) || a.id.localeCompare(b.id))
    .map((f) => f.id);
}
