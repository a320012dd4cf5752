/**
 * What tests need around the code they test: temp directories, real processes (a live pid to
 * hold a lock, a dead one to make it stale, another process holding a lock), what code wrote to
 * stderr, and the timeout of slow tests.
 *
 * @example
 * test("a slow thing", SLOW, async () => {
 *   await withDir("oai-example-", async (dir) => { ... });
 * });
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/**
 * What `fn` wrote to stderr through `process.stderr.write` (replaced meanwhile).
 *
 * @example
 * assert.equal(await stderrOf(() => reporter.emit({ event: "sleep", waitMs: 300 })), "Waiting 0.3s before the next poll\n");
 */
export async function stderrOf(fn: () => void | Promise<void>): Promise<string> {
  let out = "";
  const original = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = original;
  }
  return out;
}

/** Options for tests that run the CLI against an emulator several times (2 minutes each). */
export const SLOW = { timeout: 120_000 };

/**
 * Runs `fn` in a fresh temp directory named `prefix` + random, removed afterwards whatever `fn`
 * did; resolves with what `fn` resolved with.
 *
 * @example
 * await withDir("oai-state-", async (dir) => assert.ok(existsSync(dir)));
 */
export async function withDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A child of the runtime running the tests, doing nothing for `ms`. */
function spawnRuntime(ms: number): ChildProcess {
  const code = `setTimeout(() => {}, ${ms})`;
  const args = process.versions.deno ? ["eval", code] : ["-e", code];
  return spawn(process.execPath, args, { stdio: "ignore" });
}

/** Runs `fn` with the pid of a live process, killed afterwards. */
export async function withLivePid(fn: (pid: number) => Promise<void>): Promise<void> {
  const child = spawnRuntime(60_000);
  const exited = new Promise((done) => child.on("exit", done));
  try {
    await fn(child.pid!);
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

/** The pid of a process that has exited (and been reaped). */
export async function deadPid(): Promise<number> {
  const child = spawnRuntime(0);
  await new Promise((done) => child.on("exit", done));
  return child.pid!;
}

export const HOLD_LOCK_SCRIPT = fileURLToPath(new URL("./hold_lock.ts", import.meta.url));

/**
 * Runs `fn` while another process (of the runtime running the tests) holds the exclusive lock of
 * lib/runtime.ts on `path`; that process is killed afterwards.
 */
export async function withLockHeldElsewhere(path: string, fn: () => Promise<void>): Promise<void> {
  const args = process.versions.deno
    ? ["run", "--allow-all", "--quiet", HOLD_LOCK_SCRIPT, path]
    : [HOLD_LOCK_SCRIPT, path];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((done) => child.on("exit", done));
  try {
    const said = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (chunk) => {
        out += chunk;
        if (out.includes("\n")) resolve(out.trim());
      });
      child.on("exit", (code) => reject(new Error(`lock holder exited with ${code}`)));
    });
    if (said !== "held") throw new Error(`the lock holder could not take the lock: ${said}`);
    await fn();
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}
