/**
 * The test suites `scripts/test.ts` runs against the standalone binaries: builds `dist/` when it
 * is missing or older than the source, readies qemu and Wine, and returns one `bun test` run per
 * binary this machine can run (or why it cannot).
 *
 * @example
 * for (const suite of await binarySuites({ strict: false, deno: "deno", bun: ["bun"] })) {
 *   if ("skip" in suite) console.log(`${suite.name}: skipped (${suite.skip})`);
 *   else spawn(suite.argv[0], suite.argv.slice(1), { env: { ...process.env, ...suite.env } });
 * }
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildBinaries } from "./build.ts";
import { blackBoxTestFiles, prepareBinaryEnv, runnableTargets } from "./binary-targets.ts";
import { DENO_PERMISSION_FLAGS } from "./compile.ts";
import { DIST_DIR, fileName, MAIN_TS, REPO_ROOT, TARGETS } from "./targets.ts";

export type BinarySuite =
  | { name: string; argv: string[]; env: Record<string, string> }
  | { name: string; skip: string };

export interface BinarySuiteOptions {
  /** CI: a binary that cannot be built or run is a failed suite, not a skip. */
  strict: boolean;
  /** The Deno executable (used to report a failure as a suite that fails). */
  deno: string;
  /** argv prefix that runs Bun (`["bun"]` or `["npx", "-y", "bun@1.4.5"]`). */
  bun: string[];
  /** Where the binaries are; default `dist/`. */
  distDir?: string;
}

/** Per-test timeout for emulated runs: one CLI start under qemu takes about 1.5 s. */
const EMULATED_TIMEOUT_MS = 120_000;
const NATIVE_TIMEOUT_MS = 60_000;

/** Sources a binary is built from: if any is newer than a binary, that binary is stale. */
const SOURCES = ["main.ts", "deno.json", "lib", "scripts/build.ts", "scripts/macho.ts"];

function newestMtime(path: string): number {
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newestMtime(join(path, name))), 0);
}

/** Why `dist/` must be (re)built, or undefined when every binary is newer than the source. */
export function staleReason(distDir: string = DIST_DIR): string | undefined {
  const paths = TARGETS.map((t) => join(distDir, fileName(t)));
  const missing = paths.find((p) => !existsSync(p));
  if (missing) return `${missing} is missing`;
  const source = Math.max(
    ...SOURCES.map((s) => join(REPO_ROOT, s)).filter(existsSync).map(newestMtime),
  );
  const oldest = Math.min(...paths.map((p) => statSync(p).mtimeMs));
  return oldest < source ? "the source is newer than the binaries" : undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A `bun test -t` pattern matching every test name except those `gaps` name. */
export function excludingPattern(gaps: readonly { test: string }[]): string {
  return `^(?!.*(?:${gaps.map((g) => escapeRegExp(g.test)).join("|")}))`;
}

function failing(deno: string, name: string, reason: string): BinarySuite {
  return {
    name,
    argv: [deno, "eval", `console.error(${JSON.stringify(`${name}: ${reason}`)}); Deno.exit(1)`],
    env: {},
  };
}

/**
 * `deno compile` cannot run here, but the permissions it bakes in can be proved: this suite runs
 * every black-box test against `deno run` with exactly `compile.ts`'s flags, so a grant the CLI
 * needs and the flags lack fails here (Deno refuses with `--no-prompt`).
 */
export function denoPermissionsSuite(options: BinarySuiteOptions): BinarySuite {
  return {
    name: "deno compile permissions",
    argv: [...options.bun, "test", "--timeout", String(NATIVE_TIMEOUT_MS), ...blackBoxTestFiles()],
    env: {
      OAI_CLI_BIN: MAIN_TS,
      OAI_CLI_WRAPPER: [options.deno, "run", "--quiet", ...DENO_PERMISSION_FLAGS].join(" "),
      OAI_CLI_PERMISSIONS: "deno-compile",
    },
  };
}

/**
 * Builds what is stale, readies each runnable binary and returns the suites to run. A target
 * that cannot run here is a skip, or with `strict` a suite that fails with the reason.
 */
export async function binarySuites(options: BinarySuiteOptions): Promise<BinarySuite[]> {
  const distDir = options.distDir ?? DIST_DIR;
  const unavailable = (name: string, reason: string): BinarySuite =>
    options.strict ? failing(options.deno, name, reason) : { name, skip: reason };
  const stale = staleReason(distDir);
  if (stale) {
    console.log(`\n=== binaries: building (${stale})`);
    try {
      await buildBinaries({ outDir: distDir });
    } catch (error) {
      return [unavailable("binaries: build", (error as Error).message)];
    }
  }
  const suites: BinarySuite[] = [denoPermissionsSuite(options)];
  for (const target of runnableTargets(distDir)) {
    const name = `binary ${target.name}`;
    const ready = await prepareBinaryEnv(target);
    if (!ready.ok) {
      suites.push(unavailable(name, ready.reason));
      continue;
    }
    if (target.testFiles.length === 0) {
      suites.push(unavailable(name, "no black-box test files found"));
      continue;
    }
    const timeout = target.runner === "native" ? NATIVE_TIMEOUT_MS : EMULATED_TIMEOUT_MS;
    const argv = [...options.bun, "test", "--timeout", String(timeout)];
    for (const gap of target.knownEmulatorGaps) {
      console.log(`${name}: leaving out "${gap.test}": ${gap.reason}`);
    }
    if (target.knownEmulatorGaps.length) {
      argv.push("-t", excludingPattern(target.knownEmulatorGaps));
    }
    suites.push({ name, argv: [...argv, ...target.testFiles], env: ready.env });
  }
  return suites;
}
