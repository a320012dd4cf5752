/**
 * The built binaries this machine can run, and how: natively, under `qemu-aarch64-static`, or
 * under Wine. `prepareBinaryEnv` readies the emulator (idempotently: it builds the Wine stand-in
 * for `bcryptprimitives.dll` and initialises a private Wine prefix once) and proves the binary
 * starts, or says plainly what is missing.
 *
 * The black-box tests pick the binary up from `OAI_CLI_BIN` / `OAI_CLI_WRAPPER`
 * (see `tests/helpers/cli.ts`); `env` of a ready target carries those and Wine's variables.
 *
 * Usage (prepare and report): deno run -A scripts/binary-targets.ts
 *
 * @example
 * for (const target of runnableTargets()) {
 *   const ready = await prepareBinaryEnv(target);
 *   if (ready.ok) spawn("bun", ["test", ...target.testFiles], { env: { ...process.env, ...ready.env } });
 * }
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { DIST_DIR, fileName, hostTarget, REPO_ROOT, type Target, TARGETS } from "./targets.ts";

export interface BinaryTarget {
  /** `linux-x64`, `linux-arm64 (qemu)`, `windows-x64 (wine)`. */
  name: string;
  target: Target;
  /** How this machine runs it. */
  runner: "native" | "qemu" | "wine";
  /** Absolute path of the binary under `dist/`. */
  binPath: string;
  /** argv prefix that runs it (empty when native). */
  wrapper: string[];
  /** Black-box test files (relative to the repo root) to run against it. */
  testFiles: string[];
  /**
   * Tests that cannot pass under this emulator although the binary is right, each with why
   * (matched against test names; the suite leaves them out and says so).
   */
  knownEmulatorGaps: { test: string; reason: string }[];
}

/** Paths of the emulators, overridable for machines that put them elsewhere. */
export const QEMU = process.env.OAI_QEMU_AARCH64 ?? "qemu-aarch64-static";
export const QEMU_SYSROOT = process.env.OAI_QEMU_SYSROOT ?? "/usr/aarch64-linux-gnu";
export const WINE = process.env.OAI_WINE ?? "/usr/lib/wine/wine64";
export const MINGW_GCC = process.env.OAI_MINGW_GCC ?? "x86_64-w64-mingw32-gcc";
/** A Wine prefix of our own, so tests never touch (or depend on) a user's `~/.wine`. */
export const WINEPREFIX = process.env.OAI_WINEPREFIX ?? join(tmpdir(), "oai-compliance-logs-wine");
export const STUB_DLL_SOURCE = join(REPO_ROOT, "tests", "tooling", "bcryptprimitives.c");
/** Starts Wine's server and services off the tests' pipes, then runs the program. */
export const WINE_RUN_SCRIPT = join(REPO_ROOT, "tests", "tooling", "wine-run.sh");

/** Tests Wine 8 cannot pass for reasons of its own, not of the binary. */
export const WINE_GAPS: { test: string; reason: string }[] = [
  {
    test: "a network error is one line naming the host",
    reason: "Wine 8's socket poll never reports a refused non-blocking connect, so the " +
      "binary waits forever; Windows reports it within ~2 s",
  },
];

/**
 * End-to-end test files for linux-arm64 under qemu, where one CLI start takes ~1.5 s: the
 * drop-in interface and its errors, the checkpoint and outputs (locks, resume, signals), and
 * TLS through a proxy with a private CA (the crypto and sockets that differ per CPU).
 */
export const QEMU_TEST_FILES: readonly string[] = [
  "tests/cli_core.test.ts",
  "tests/checkpoint_cli.test.ts",
  "tests/proxy.test.ts",
];

/**
 * End-to-end test files for windows-x64 under Wine: the drop-in interface, every HTTP fault
 * (retries, resume, integrity), the key never leaking, and the Windows specifics. The checkpoint
 * and service files are POSIX-signal and pid based (SIGTERM, a Linux pid holding a lock), which
 * means nothing to a Windows process under Wine; the Windows CI runner runs them natively.
 */
export const WINE_TEST_FILES: readonly string[] = [
  "tests/cli_core.test.ts",
  "tests/reliability.test.ts",
  "tests/key_leak.test.ts",
  "tests/hostile_tempdir.test.ts",
];

export const WINDOWS_TEST_FILES: readonly string[] = ["tests/binaries/windows.test.ts"];

/** Every black-box test file (`tests/*.test.ts`), relative to the repo root. */
export function blackBoxTestFiles(): string[] {
  return readdirSync(join(REPO_ROOT, "tests"))
    .filter((name) => name.endsWith(".test.ts"))
    .sort()
    .map((name) => `tests/${name}`);
}

function existing(files: readonly string[]): string[] {
  return files.filter((f) => existsSync(join(REPO_ROOT, f)));
}

/**
 * The binaries this machine can run, with the tests for each: the host's own binary runs every
 * black-box test; linux-arm64 (qemu) and windows-x64 (Wine) run a representative subset.
 * Emulated targets are listed only on a Linux x64 host (where the emulators exist).
 */
export function runnableTargets(distDir: string = DIST_DIR): BinaryTarget[] {
  const byName = (name: string) => TARGETS.find((t) => t.name === name)!;
  const host = hostTarget(process.platform, process.arch);
  const all = blackBoxTestFiles();
  const targets: BinaryTarget[] = [];
  if (host) {
    targets.push({
      name: host.name,
      target: host,
      runner: "native",
      binPath: join(distDir, fileName(host)),
      wrapper: [],
      knownEmulatorGaps: [],
      testFiles: host.os === "windows" ? [...all, ...existing(WINDOWS_TEST_FILES)] : all,
    });
  }
  if (host?.name === "linux-x64") {
    const arm = byName("linux-arm64");
    targets.push({
      name: "linux-arm64 (qemu)",
      target: arm,
      runner: "qemu",
      binPath: join(distDir, fileName(arm)),
      wrapper: [QEMU, "-L", QEMU_SYSROOT],
      knownEmulatorGaps: [],
      testFiles: existing(QEMU_TEST_FILES),
    });
    const win = byName("windows-x64");
    targets.push({
      name: "windows-x64 (wine)",
      target: win,
      runner: "wine",
      binPath: join(distDir, fileName(win)),
      wrapper: ["sh", WINE_RUN_SCRIPT],
      knownEmulatorGaps: WINE_GAPS,
      testFiles: [...existing(WINE_TEST_FILES), ...existing(WINDOWS_TEST_FILES)],
    });
  }
  return targets;
}

/** Ready: the variables to run the tests with. Not ready: why, and what to install. */
export type Readiness = { ok: true; env: Record<string, string> } | { ok: false; reason: string };

/** Runs a command; resolves with its exit code and output (never rejects). */
function exec(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 120_000,
): Promise<{ code: number | null; output: string; missing: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c) => output += c);
    child.stderr.on("data", (c) => output += c);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ code: null, output: error.message, missing: error.code === "ENOENT" });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output, missing: false });
    });
  });
}

function onPath(command: string): boolean {
  if (command.includes("/")) return existsSync(command);
  return (process.env.PATH ?? "").split(delimiter).some((dir) => existsSync(join(dir, command)));
}

/** The Wine environment every run under our prefix uses. */
export function wineEnv(): Record<string, string> {
  return { WINEPREFIX, WINEDEBUG: "-all" };
}

const STUB_DLL_NAME = "bcryptprimitives.dll";

/**
 * Makes the Wine prefix usable for Bun's Windows binary: creates it on first use (~10 s), and
 * builds the `bcryptprimitives.dll` stand-in into its `system32` whenever the C source is newer.
 * Idempotent; safe to call before every run.
 */
export async function prepareWine(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (!onPath(WINE)) {
    return { ok: false, reason: `Wine not found at ${WINE} (apt-get install wine64)` };
  }
  const system32 = join(WINEPREFIX, "drive_c", "windows", "system32");
  if (!existsSync(join(WINEPREFIX, "system.reg")) || !existsSync(system32)) {
    await mkdir(WINEPREFIX, { recursive: true });
    const boot = await exec(WINE, ["wineboot", "--init"], wineEnv(), 300_000);
    if (boot.code !== 0 || !existsSync(system32)) {
      return { ok: false, reason: `wineboot --init failed: ${boot.output.trim().slice(-500)}` };
    }
  }
  const dll = join(system32, STUB_DLL_NAME);
  const fresh = existsSync(dll) && statSync(dll).mtimeMs >= statSync(STUB_DLL_SOURCE).mtimeMs;
  if (!fresh) {
    if (!onPath(MINGW_GCC)) {
      return {
        ok: false,
        reason:
          `${MINGW_GCC} not found to build ${STUB_DLL_NAME} (apt-get install gcc-mingw-w64-x86-64)`,
      };
    }
    // Build beside the target, then rename: a half-written DLL never sits in system32.
    const temp = `${dll}.${process.pid}.tmp`;
    const cc = await exec(MINGW_GCC, [
      "-shared",
      "-O2",
      "-s",
      "-o",
      temp,
      STUB_DLL_SOURCE,
      "-ladvapi32",
    ]);
    if (cc.code !== 0) {
      return { ok: false, reason: `building ${STUB_DLL_NAME} failed: ${cc.output}` };
    }
    await rename(temp, dll);
  }
  return { ok: true };
}

/** Checks qemu and the arm64 sysroot Bun's linux-arm64 binary loads its libc from. */
export function prepareQemu(): { ok: true } | { ok: false; reason: string } {
  if (!onPath(QEMU)) {
    return { ok: false, reason: `${QEMU} not found (apt-get install qemu-user-static)` };
  }
  if (!existsSync(join(QEMU_SYSROOT, "lib", "ld-linux-aarch64.so.1"))) {
    return {
      ok: false,
      reason: `no arm64 libc under ${QEMU_SYSROOT} ` +
        "(apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross)",
    };
  }
  return { ok: true };
}

/**
 * Readies the emulator a target needs, then runs `BIN --version` through it: `ok` only when the
 * binary really starts. `env` is what the black-box tests need (`OAI_CLI_BIN`, `OAI_CLI_WRAPPER`
 * and, for Wine, `WINEPREFIX`/`WINEDEBUG`).
 *
 * @example
 * const ready = await prepareBinaryEnv(target);
 * if (!ready.ok) console.log(`skipped: ${ready.reason}`);
 */
export async function prepareBinaryEnv(target: BinaryTarget): Promise<Readiness> {
  if (!existsSync(target.binPath)) {
    return { ok: false, reason: `${target.binPath} is not built (deno task build)` };
  }
  let env: Record<string, string> = {};
  if (target.runner === "qemu") {
    const qemu = prepareQemu();
    if (!qemu.ok) return qemu;
  } else if (target.runner === "wine") {
    const wine = await prepareWine();
    if (!wine.ok) return wine;
    env = wineEnv();
  }
  const run = await exec(target.wrapper[0] ?? target.binPath, [
    ...target.wrapper.slice(1),
    ...(target.wrapper.length ? [target.binPath] : []),
    "--version",
  ], env);
  if (run.code !== 0 || !/oai-compliance-logs \d/.test(run.output)) {
    return {
      ok: false,
      reason: `${target.name}: --version exited ${run.code}: ${run.output.trim().slice(-500)}`,
    };
  }
  return {
    ok: true,
    env: { ...env, OAI_CLI_BIN: target.binPath, OAI_CLI_WRAPPER: target.wrapper.join(" ") },
  };
}

if (import.meta.main) {
  for (const target of runnableTargets()) {
    const started = Date.now();
    const ready = await prepareBinaryEnv(target);
    const ms = Date.now() - started;
    if (ready.ok) {
      console.log(`${target.name}: ready in ${ms} ms; ${target.testFiles.length} test files`);
      console.log(`  ${Object.entries(ready.env).map(([k, v]) => `${k}='${v}'`).join(" ")}`);
    } else {
      console.log(`${target.name}: not ready: ${ready.reason}`);
      process.exitCode = 1;
    }
  }
}
