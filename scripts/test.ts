/**
 * Runs every suite and prints one closing line `N passed, N failed, N skipped` summing them all:
 * formatting, lint and type checks; the test suite under Deno and under Bun; and the end-to-end
 * tests against each standalone binary (built first, with the pinned Bun through npx when `bun`
 * is not on PATH). A suite that cannot run here is named at the end with the one command that
 * installs what it needs.
 *
 * Usage: deno task test [--no-binaries]
 * With CI=true, missing tools for a suite are a failure, not a skip.
 */
import { spawn } from "node:child_process";
import { bunCommand } from "./bun.ts";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const strict = process.env.CI === "true";

interface Counts {
  passed: number;
  failed: number;
  /** Tests the runner skipped (Deno says "ignored"). */
  skipped: number;
}

interface SuiteResult extends Counts {
  name: string;
}

/** Runs a command with output shown live and also captured for counting. */
function runShown(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const show = (stream: NodeJS.WriteStream) => (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
      stream.write(chunk);
    };
    child.stdout!.on("data", show(process.stdout));
    child.stderr!.on("data", show(process.stderr));
    child.on("error", (e) => resolve({ code: 127, output: String(e) }));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

// deno-lint-ignore no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

/** Counts from `deno test`'s closing line: `ok | 12 passed | 0 failed | 3 ignored`. */
export function denoCounts(output: string): Counts | undefined {
  const m =
    /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \| (\d+) ignored)?/
      .exec(stripAnsi(output));
  return m ? { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3] ?? 0) } : undefined;
}

/** Counts from `bun test`'s closing lines: ` 12 pass`, ` 3 skip`, ` 0 fail`. */
export function bunCounts(output: string): Counts | undefined {
  const text = stripAnsi(output);
  const count = (word: string) => new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(text)?.[1];
  const passed = count("pass");
  if (passed === undefined) return undefined;
  return {
    passed: Number(passed),
    failed: Number(count("fail") ?? 0),
    skipped: Number(count("skip") ?? 0),
  };
}

async function check(name: string, argv: string[]): Promise<SuiteResult> {
  console.log(`\n=== ${name}: ${argv.join(" ")}`);
  const { code } = await runShown(argv);
  return { name, passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, skipped: 0 };
}

/** A test run: its own counts, plus one failure if it exited non-zero without reporting any. */
async function testSuite(
  name: string,
  argv: string[],
  parse: (output: string) => Counts | undefined,
  env: Record<string, string> = {},
): Promise<SuiteResult> {
  console.log(`\n=== ${name}: ${argv.join(" ")}`);
  const { code, output } = await runShown(argv, env);
  const counts = parse(output) ?? { passed: 0, failed: 0, skipped: 0 };
  if (code !== 0 && counts.failed === 0) counts.failed = 1;
  return { name, ...counts };
}

function denoCommand(): string {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  return deno ? deno.execPath() : "deno";
}

async function main(): Promise<number> {
  const deno = denoCommand();
  const bun = await bunCommand();
  const results: SuiteResult[] = [];
  results.push(await check("format", [deno, "fmt", "--check"]));
  results.push(await check("lint", [deno, "lint"]));
  results.push(await check("types", [deno, "check", "main.ts", "lib/", "scripts/", "tests/"]));
  // The ```ts blocks of every doc comment, so an @example cannot drift from the code.
  results.push(await check("doc examples", [deno, "check", "--doc", "main.ts", "lib/"]));
  results.push(
    await testSuite("deno tests", [deno, "test", "--allow-all", "tests/"], denoCounts),
  );
  results.push(
    await testSuite("bun tests", [...bun, "test", "--timeout", "120000", "tests/"], bunCounts),
  );

  const notRun: Array<{ name: string; why: string }> = [];
  if (process.argv.includes("--no-binaries")) {
    notRun.push({ name: "binary suites", why: "--no-binaries was given" });
  } else {
    const { binarySuites } = await import("./binary-suites.ts");
    for (const suite of await binarySuites({ strict, deno, bun })) {
      if ("skip" in suite) {
        console.log(`\n=== ${suite.name}: skipped (${suite.skip})`);
        notRun.push({ name: suite.name, why: suite.skip });
        continue;
      }
      results.push(await testSuite(suite.name, suite.argv, bunCounts, suite.env));
    }
  }

  console.log("\n=== results");
  for (const r of results) {
    console.log(`${r.name}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
  }
  // Said last, so a green line cannot hide a suite that never ran; each reason names its fix.
  for (const suite of notRun) console.log(`${suite.name}: NOT RUN: ${suite.why}`);
  const sum = (key: keyof Counts) => results.reduce((n, r) => n + r[key], 0);
  console.log(`${sum("passed")} passed, ${sum("failed")} failed, ${sum("skipped")} skipped`);
  return sum("failed") === 0 ? 0 : 1;
}

if (import.meta.main) process.exit(await main());
