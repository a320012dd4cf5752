/**
 * The benchmark's side of its emulator process (scripts/_bench_emulator.ts): starts it under Bun
 * or Deno, so that its CPU is never the tool's nor this process's, and reads what it serves (the
 * signed URL of a file, a file's bytes as the tool gets them) before any clock starts.
 *
 * @example
 * ```ts
 * const emulator = await startEmulatorProcess("bun", { latencyMs: 0, files: [] });
 * await emulator.close();
 * ```
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { BenchEmulatorInfo, BenchEmulatorSpec } from "./_bench_emulator.ts";

const EMULATOR_TS = fileURLToPath(new URL("./_bench_emulator.ts", import.meta.url));

export interface EmulatorProcess extends BenchEmulatorInfo {
  close(): Promise<void>;
}

export async function startEmulatorProcess(
  runtime: "bun" | "deno" | string,
  spec: BenchEmulatorSpec,
): Promise<EmulatorProcess> {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const argv = runtime === "bun"
    ? ["bun", EMULATOR_TS]
    : [deno ? deno.execPath() : "deno", "run", "--allow-all", "--quiet", EMULATOR_TS];
  const child = spawn(argv[0], [...argv.slice(1), JSON.stringify(spec)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<BenchEmulatorInfo>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => reject(new Error(`the emulator process exited with ${code}`)));
    lines.once("line", (line) => resolve(JSON.parse(line)));
  });
  // This process may end without close(): the emulator stops when its stdin closes.
  process.on("exit", () => child.kill("SIGKILL"));
  return {
    ...info,
    close: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners("close");
        child.on("close", () => resolve());
        child.stdin!.end();
        setTimeout(() => child.kill("SIGKILL"), 5000).unref?.();
      }),
  };
}

/** The signed storage URL the API redirects to for `id` (what curl and the tool both fetch). */
export async function signedUrl(apiBase: string, key: string, principal: string, id: string) {
  const scope = principal.startsWith("org-") ? "organizations" : "workspaces";
  const response = await fetch(`${apiBase}/${scope}/${principal}/logs/${id}`, {
    headers: { authorization: `Bearer ${key}` },
    redirect: "manual",
  });
  await response.body?.cancel();
  const location = response.headers.get("location");
  if (response.status !== 307 || !location) {
    throw new Error(`the emulator answered ${response.status} without a redirect for ${id}`);
  }
  return location;
}

/** A file's bytes as the emulator serves them (before any clock: for floors and bare loops). */
export async function contentOf(emulator: EmulatorProcess, id: string): Promise<Uint8Array> {
  const file = emulator.files.find((f) => f.id === id);
  if (!file) throw new Error(`the emulator has no file ${id}`);
  const response = await fetch(await signedUrl(emulator.apiBase, emulator.key, file.principal, id));
  if (response.status !== 200) {
    throw new Error(`the emulator answered ${response.status} for ${id}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}
