/**
 * Spawns the real CLI the way a user would, and collects what it printed.
 *
 * Which CLI: `OAI_CLI_BIN` names a built binary (optionally run through `OAI_CLI_WRAPPER`, e.g.
 * `qemu-aarch64-static -L /usr/aarch64-linux-gnu` or `/usr/lib/wine/wine64`); otherwise `main.ts`
 * runs under the runtime that runs the tests (Deno or Bun).
 *
 * @example
 * const r = await runCli(["ws-1", "AUTH_LOG", "10", "2026-01-01T00:00:00Z"], { env: { COMPLIANCE_API_KEY: "sk-example-0123456789abcdef" } });
 * assert.equal(r.code, 0);
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: Uint8Array;
  stderr: string;
  /** Milliseconds the process ran. */
  ms: number;
}

export interface CliOptions {
  /** Variables added to a minimal environment (PATH, HOME, TZ, temp dirs are kept). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  stdin?: string | Uint8Array;
  /** Kill the process after this long (default 60 s) so a hang fails the test instead of CI. */
  timeoutMs?: number;
  /** Called with the child once spawned (e.g. to send signals). */
  onSpawn?: (child: import("node:child_process").ChildProcess) => void;
  /**
   * Stdout goes to this file instead of a pipe, like the shell's `>` (or `>>` with append);
   * the result's stdout is then empty.
   */
  stdoutFile?: { path: string; append?: boolean };
  /** Stdout goes to this open descriptor (the caller closes its copy once this returns). */
  stdoutFd?: number;
  /** A command put before the CLI's (it must exec the rest of its arguments). */
  wrapper?: string[];
}

export const MAIN_TS = fileURLToPath(new URL("../../main.ts", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** True when the suite runs against a built binary rather than source. */
export const RUNS_BINARY = Boolean(process.env.OAI_CLI_BIN);
/** True when the CLI runs under Deno with `deno compile`'s grants only (no access to /proc/self). */
export const RUNS_WITH_COMPILE_PERMISSIONS = process.env.OAI_CLI_PERMISSIONS === "deno-compile";
/** True when the binary under test is a Windows .exe run through Wine. */
export const RUNS_WINDOWS = /\.exe$/i.test(process.env.OAI_CLI_BIN ?? "");

/** The argv prefix that starts the CLI under test. */
export function cliCommand(): string[] {
  const bin = process.env.OAI_CLI_BIN;
  if (bin) {
    const wrapper = (process.env.OAI_CLI_WRAPPER ?? "").split(" ").filter(Boolean);
    return [...wrapper, bin];
  }
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  if (deno) return [deno.execPath(), "run", "--allow-all", "--quiet", MAIN_TS];
  return [process.execPath, MAIN_TS];
}

/** Environment passed to the CLI: only what a test asks for, plus what a process needs to run. */
function childEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const keep = [
    "PATH",
    "HOME",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SYSTEMROOT",
    "WINEPREFIX",
    "WINEDEBUG",
    "DENO_DIR",
    "BUN_INSTALL",
  ];
  const env: Record<string, string> = {};
  for (const name of keep) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.TZ = "UTC";
  env.NO_COLOR = "1";
  // The API's 50 downloads a minute would make every suite crawl: a test run counts them per
  // second instead, unless a test of the pace sets its own window.
  env.OAI_COMPLIANCE_PACE_WINDOW_MS = "1000";
  // The AWS credential chain ends at the EC2 instance metadata service, a link-local address:
  // no test may reach beyond loopback, so it is off unless a test points it at a stand-in.
  env.AWS_EC2_METADATA_DISABLED = "true";
  // A listed file's 404 is tried again over 30 s before it counts as gone; tests wait 50 ms.
  env.OAI_COMPLIANCE_GONE_RETRY_MS = "50";
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/**
 * Runs the CLI with `args` and resolves when it exits (never rejects on a non-zero exit).
 *
 * Under Wine (run with `WINEDEBUG=-all`), a process that Wine failed to start exits non-zero
 * without a byte of output, as seen once in a CI run; the tool itself never does (every failure
 * prints its line, and the other suites run the same tests). Such a run is started once more,
 * where that is safe: nothing was written to a file or descriptor, and no test hook saw the child.
 */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await runCliOnce(args, options);
  const silentFailure = result.code !== 0 && result.stderr === "" && result.stdout.length === 0;
  const repeatable = !options.stdoutFile && options.stdoutFd === undefined && !options.onSpawn;
  if (RUNS_WINDOWS && silentFailure && repeatable) {
    console.error(
      `runCli: Wine ended the run with ${result.code} and no output; starting it again`,
    );
    return await runCliOnce(args, options);
  }
  return result;
}

function runCliOnce(args: string[], options: CliOptions): Promise<CliResult> {
  const [command, ...prefix] = [...(options.wrapper ?? []), ...cliCommand()];
  const started = Date.now();
  const file = options.stdoutFile;
  const fileFd = file ? openSync(file.path, file.append ? "a" : "w") : undefined;
  const stdoutFd = fileFd ?? options.stdoutFd;
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], {
      cwd: options.cwd,
      env: childEnv(options.env ?? {}),
      stdio: ["pipe", stdoutFd ?? "pipe", "pipe"],
    });
    if (fileFd !== undefined) closeSync(fileFd); // The child has its own copy.
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    child.stdout?.on("data", (c: Uint8Array) => out.push(c));
    child.stderr!.on("data", (c: Uint8Array) => err.push(c));
    child.on("error", reject);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: concat(out),
        stderr: new TextDecoder().decode(concat(err)),
        ms: Date.now() - started,
      });
    });
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
    else child.stdin!.end();
    options.onSpawn?.(child);
  });
}

/** Joins byte chunks into one array. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  return all;
}

/** Stderr split into lines, without the trailing empty one. */
export function lines(text: string): string[] {
  return text.split(/\r?\n/).filter((l, i, all) => l !== "" || i < all.length - 1);
}

/**
 * The summary event a `--log-format json` run ended with; every stderr line must be JSON.
 *
 * @example
 * assert.equal(summaryOf(r).files, 2);
 */
export function summaryOf(r: CliResult): Record<string, unknown> {
  const events = lines(r.stderr).map((line) => JSON.parse(line));
  const summary = events.at(-1);
  assert.equal(summary?.event, "summary", r.stderr);
  return summary;
}
