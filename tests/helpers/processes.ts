/**
 * Temp directories and real processes for unit tests of files and locks: a live pid to hold a
 * lock, a dead one to make it stale.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Runs `fn` in a fresh temp directory, removed afterwards. */
export async function withDir(prefix: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await fn(dir);
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
