#!/usr/bin/env -S deno run --allow-net --allow-env --allow-read --allow-write --allow-sys --allow-run --v8-flags=--max-semi-space-size=1,--max-old-space-size=768
/**
 * oai-compliance-logs: downloads OpenAI Compliance Logs Platform files for a SIEM or data lake.
 * This file only reads argv and env, runs the CLI, and maps errors to an exit code and one line.
 * It imports nothing else up front, so that `--version` and `--help` start fast.
 */
import process from "node:process";
import { cli } from "./lib/cli.ts";

async function main(): Promise<number> {
  try {
    await cli(process.argv.slice(2), process.env);
    return 0;
  } catch (error) {
    const [{ exitCodeOf }, { reportFatal }] = await Promise.all([
      import("./lib/errors.ts"),
      import("./lib/reporter/fatal.ts"),
    ]);
    // Shown once: not again when a command's reporter already showed it in its log format.
    reportFatal(error, process.env);
    return exitCodeOf(error);
  }
}

process.exit(await main());
