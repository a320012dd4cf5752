/**
 * The pinned Bun that builds the binaries and runs the Bun test suites: `bun` from PATH when it is
 * that version, else the same version through npx (which fetches it from the npm registry), so a
 * fresh machine with only Node and npm builds and tests everything.
 *
 * @example
 * const bun = await bunCommand(); // ["bun"] or ["npx", "-y", "bun@1.4.5"]
 * spawn(bun[0], [...bun.slice(1), "test", "tests/"]);
 */
import { spawn } from "node:child_process";
import process from "node:process";

export const BUN_VERSION = "1.4.5";

/** What `command --version` prints, or undefined when it cannot run. */
function versionOf(command: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let out = "";
    const child = spawn(command, ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    child.stdout.on("data", (chunk) => out += chunk);
    child.on("error", () => resolve(undefined));
    child.on("close", (code) => resolve(code === 0 ? out.trim() : undefined));
  });
}

let cached: Promise<string[]> | undefined;

/** The argv prefix that runs the pinned Bun; `BUN=/path/to/bun` overrides it. */
export function bunCommand(): Promise<string[]> {
  cached ??= (async () => {
    if (process.env.BUN) return [process.env.BUN];
    if ((await versionOf("bun")) === BUN_VERSION) return ["bun"];
    return ["npx", "-y", `bun@${BUN_VERSION}`];
  })();
  return cached;
}
