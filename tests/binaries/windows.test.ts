/**
 * Windows-only behaviour of the CLI, against the Windows binary (under Wine here, natively on a
 * Windows CI runner) or the source on Windows: drive-letter and backslash paths for `-o`,
 * `--output-dir` and `--state`; `-o` output that is the served bytes exactly (UTF-8, no BOM, no
 * CRLF translation); and starting from cmd.exe and Windows PowerShell 5.1.
 *
 * Elsewhere every test here is skipped with the reason.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { cliCommand, runCli, RUNS_WINDOWS } from "../helpers/cli.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "../helpers/fixtures.ts";
import { withDir as withTempDir } from "../helpers/mod.ts";

const NATIVE_WINDOWS = process.platform === "win32";
const WINDOWS_CLI = RUNS_WINDOWS || NATIVE_WINDOWS;
const UNDER_WINE = RUNS_WINDOWS && !NATIVE_WINDOWS;
const skipUnlessWindows = WINDOWS_CLI ? false : "the CLI under test is not a Windows program";

/**
 * The Windows spelling of a local path: unchanged on Windows; under Wine, drive Z: is the Unix
 * root, so `/tmp/x/y` is `Z:\tmp\x\y`.
 */
function windowsPath(path: string): string {
  return NATIVE_WINDOWS ? path : `Z:${path.replaceAll("/", "\\")}`;
}

/** Runs `fn` in a fresh temp directory (tests/helpers/mod.ts). */
const withDir = <T>(fn: (dir: string) => Promise<T>) => withTempDir("oai-windows-", fn);

const FILES = hourlyFiles(6, { sizes: [1500, 0, 20_000, 333] });
const UTF8_BOM = [0xef, 0xbb, 0xbf];

test("-o with a drive-letter backslash path writes the served bytes: no BOM, no CRLF added", {
  skip: skipUnlessWindows,
}, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir(async (dir) => {
      const out = join(dir, "out.jsonl");
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER, "-o", windowsPath(out)], {
        env: envFor(emulator),
      });
      assert.equal(r.code, 0, r.stderr);
      const written = new Uint8Array(await readFile(out));
      assert.notDeepEqual([...written.subarray(0, 3)], UTF8_BOM, "starts with a UTF-8 BOM");
      assert.deepEqual(written, await expectedStream(emulator, idsOf(emulator)));
      assert.equal(r.stdout.length, 0);
    });
  });
});

test("--output-dir and --state take drive-letter paths, and a second run finds nothing new", {
  skip: skipUnlessWindows,
}, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir(async (dir) => {
      const args = [
        PRINCIPAL,
        "AUTH_LOG",
        "100",
        AFTER,
        "--output-dir",
        windowsPath(join(dir, "logs")),
        "--state",
        windowsPath(join(dir, "state.json")),
      ];
      const first = await runCli(args, { env: envFor(emulator) });
      assert.equal(first.code, 0, first.stderr);
      const days = await readdir(join(dir, "logs", "AUTH_LOG"));
      assert.ok(days.length > 0, "no day directories under logs/AUTH_LOG");
      const state = JSON.parse(await readFile(join(dir, "state.json"), "utf8"));
      assert.ok(state.cursors?.AUTH_LOG, JSON.stringify(state));
      const downloads = () =>
        emulator.requests.filter((q) => q.server !== "api" || /\/logs\/[^/]+$/.test(q.path))
          .length;
      const before = downloads();
      const second = await runCli(args, { env: envFor(emulator) });
      assert.equal(second.code, 0, second.stderr);
      assert.equal(downloads(), before, "the second run downloaded again");
    });
  });
});

test("relative paths with backslashes are relative to the working directory", {
  skip: skipUnlessWindows,
}, async () => {
  await withEmulator({ files: FILES }, async (emulator) => {
    await withDir(async (dir) => {
      const r = await runCli(
        [
          PRINCIPAL,
          "AUTH_LOG",
          "100",
          AFTER,
          "--output-dir",
          "nested\\logs",
          "--state",
          ".\\s.json",
        ],
        { env: envFor(emulator), cwd: dir },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await stat(join(dir, "nested", "logs", "AUTH_LOG"))).isDirectory());
      assert.ok((await stat(join(dir, "s.json"))).isFile());
      assert.deepEqual((await readdir(dir)).sort(), ["nested", "s.json"]);
    });
  });
});

/** Runs `argv` and resolves with its exit code and output (no minimal environment needed). */
function run(argv: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => stdout += c);
    child.stderr.on("data", (c) => stderr += c);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The wrapper (Wine) and the binary, the binary's path spelled for Windows. */
function windowsBinary(): { wrapper: string[]; exe: string } {
  const argv = cliCommand();
  return { wrapper: argv.slice(0, -1), exe: windowsPath(argv[argv.length - 1]) };
}

test("cmd.exe runs the binary and sees its exit code", {
  skip: RUNS_WINDOWS ? false : "needs the Windows binary (OAI_CLI_BIN=...exe)",
}, async () => {
  const { wrapper, exe } = windowsBinary();
  // Separate arguments, so each runtime quotes them into the command line its own way.
  const cmd = [...wrapper, "cmd.exe", "/d", "/c", exe];
  const version = await run([...cmd, "--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^oai-compliance-logs \d+\.\d+\.\d+/);
  const usage = await run(cmd);
  assert.equal(usage.code, 2, usage.stderr);
});

test("Windows PowerShell 5.1 runs the binary and sees its exit code", {
  skip: RUNS_WINDOWS && NATIVE_WINDOWS
    ? false
    : UNDER_WINE
    ? "Wine has no Windows PowerShell; the Windows CI runner covers it"
    : "needs the Windows binary on Windows",
}, async () => {
  const { exe } = windowsBinary();
  const ps = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command"];
  const version = await run([...ps, `& '${exe}' --version; exit $LASTEXITCODE`]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^oai-compliance-logs \d+\.\d+\.\d+/);
  const usage = await run([...ps, `& '${exe}'; exit $LASTEXITCODE`]);
  assert.equal(usage.code, 2, usage.stderr);
});
