/**
 * Builds the standalone binaries with `bun build --compile` for every release target, checks each
 * one (format, CPU, macOS signature, re-signing ad hoc where Bun leaves it invalid), runs the one
 * this machine can run, and writes `SHA256SUMS`.
 *
 * Bun fetches each target's runtime from the npm registry (`@oven/bun-<os>-<arch>`) and caches it,
 * so cross-building needs nothing but Node's npx (or `bun` on PATH, or `BUN=/path/to/bun`).
 *
 * Usage: deno task build [--target linux-x64,darwin-arm64] [--out-dir dist]
 *
 * @example
 * const results = await buildBinaries({ targets: selectTargets("linux-x64") });
 */
import { spawn } from "node:child_process";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import {
  DIST_DIR,
  fileName,
  hostTarget,
  MAIN_TS,
  REPO_ROOT,
  selectTargets,
  type Target,
  TARGETS,
} from "./targets.ts";
import { bunCommand } from "./bun.ts";
import { checkBinary, ensureValidSignature, formatChecksums, sha256File } from "./verify-binary.ts";

/** Flags every binary is built with; `--target` and `--outfile` are added per target. */
export const BUN_FLAGS: readonly string[] = [
  "build",
  "--compile",
  "--minify",
  "--format=esm",
  // Each module imported with `import()` becomes its own chunk, loaded only when imported: without
  // it, every `node:` built-in any command uses is loaded at start, and `--version` takes ~3x as long.
  "--splitting",
  // A binary must behave the same wherever it is started: never read `.env` or `bunfig.toml`
  // from the user's working directory.
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
];

export interface BuildResult {
  target: Target;
  path: string;
  bytes: number;
  ms: number;
  /** What was wrong with Bun's macOS signature before it was re-signed ad hoc. */
  resigned?: string[];
}

export interface BuildOptions {
  targets?: readonly Target[];
  outDir?: string;
  /** Progress lines; defaults to stderr. */
  log?: (line: string) => void;
}

/** Runs a command, resolving with its output; rejects with that output when it fails. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string | undefined> } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => stdout += chunk);
    child.stderr.on("data", (chunk) => stderr += chunk);
    child.on("error", (error) => reject(new Error(`cannot run ${command}: ${error.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolvePromise({ stdout, stderr });
      else {
        reject(
          new Error(
            `${command} ${args.join(" ")} exited with ${code ?? signal}\n${stdout}${stderr}`.trim(),
          ),
        );
      }
    });
  });
}

/** The version every binary must print: `deno.json` is the one place it is written. */
export const VERSION: string = denoConfig.version;

/**
 * Checks a freshly built binary and, for macOS, makes its signature valid. Shared with
 * `compile.ts` so Deno-compiled binaries pass the same gate.
 */
export async function finishBinary(
  target: Target,
  path: string,
): Promise<{ resigned?: string[] }> {
  let bytes: Uint8Array = new Uint8Array(await readFile(path));
  let resigned: string[] | undefined;
  if (target.os === "darwin") {
    const result = ensureValidSignature(bytes, target.arch === "x64" ? "x86_64" : "arm64");
    if (result.resigned) {
      bytes = result.bytes;
      resigned = result.before;
      await writeFile(path, bytes, { mode: 0o755 });
    }
  }
  const problems = checkBinary(target, bytes);
  if (problems.length) throw new Error(`${path}: ${problems.join("; ")}`);
  return { resigned };
}

/** Runs the binary for this machine, if built, and checks it prints the version. */
export async function smokeTest(results: readonly BuildResult[]): Promise<string | undefined> {
  const host = hostTarget(process.platform, process.arch);
  const built = results.find((r) => r.target === host);
  if (!built) return undefined;
  const { stdout } = await run(built.path, ["--version"]);
  if (!stdout.includes(VERSION)) {
    throw new Error(`${built.path} --version printed '${stdout.trim()}', expected ${VERSION}`);
  }
  return stdout.trim();
}

/** Writes `SHA256SUMS` for every release binary in `outDir` and returns its text. */
export async function writeChecksums(outDir: string): Promise<string> {
  const names = new Set(TARGETS.map(fileName));
  const present = (await readdir(outDir)).filter((name) => names.has(name));
  const sums = await Promise.all(
    present.map(async (name) => ({ name, sha256: await sha256File(join(outDir, name)) })),
  );
  const text = formatChecksums(sums);
  await writeFile(join(outDir, "SHA256SUMS"), text);
  return text;
}

/** Builds, checks and checksums the binaries; resolves with one result per target. */
export async function buildBinaries(options: BuildOptions = {}): Promise<BuildResult[]> {
  const targets = options.targets ?? TARGETS;
  const outDir = resolve(options.outDir ?? DIST_DIR);
  const log = options.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const [bun, ...bunArgs] = await bunCommand();
  await mkdir(outDir, { recursive: true });
  const results: BuildResult[] = [];
  for (const target of targets) {
    const path = join(outDir, fileName(target));
    await rm(path, { force: true });
    const started = Date.now();
    const args = [...bunArgs, ...BUN_FLAGS, `--target=${target.bun}`, MAIN_TS, "--outfile", path];
    await run(bun, args, {
      cwd: REPO_ROOT,
    });
    const { resigned } = await finishBinary(target, path);
    const result = { target, path, bytes: (await stat(path)).size, ms: Date.now() - started };
    results.push(resigned ? { ...result, resigned } : result);
    log(
      `built ${fileName(target)} (${formatSize(result.bytes)}, ${result.ms} ms)` +
        (resigned ? `; re-signed ad hoc: Bun's signature was invalid (${resigned[0]})` : ""),
    );
  }
  const version = await smokeTest(results);
  if (version) {
    log(`ran the ${hostTarget(process.platform, process.arch)!.name} binary: ${version}`);
  }
  await writeChecksums(outDir);
  log(`wrote ${join(outDir, "SHA256SUMS")}`);
  return results;
}

/** `109.2 MB`: sizes in the README and logs are decimal megabytes, as download pages show. */
export function formatSize(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { target: { type: "string" }, "out-dir": { type: "string" } },
  });
  const started = Date.now();
  try {
    const results = await buildBinaries({
      targets: selectTargets(values.target),
      outDir: values["out-dir"],
    });
    console.log("| binary | size |\n| --- | --- |");
    for (const r of results) console.log(`| ${fileName(r.target)} | ${formatSize(r.bytes)} |`);
    console.error(
      `built ${results.length} binaries in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } catch (error) {
    console.error(`build failed: ${(error as Error).message}`);
    process.exit(1);
  }
}
