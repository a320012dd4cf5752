#!/usr/bin/env -S deno run --allow-net --allow-env --allow-read --allow-write --allow-sys --allow-run
/**
 * oai-compliance-logs: downloads OpenAI Compliance Logs Platform files for a SIEM or data lake.
 * This file only reads argv and env, runs the CLI, and maps errors to an exit code and one line.
 */
import process from "node:process";
import { cli } from "./lib/cli.ts";
import { USAGE } from "./lib/args.ts";
import { colorize, colorOnStderr } from "./lib/reporter.ts";
import { CliError, exitCodeFor, messageOf, redact } from "./lib/errors.ts";
import { BrokenPipeError, exit, writeStderr } from "./lib/runtime.ts";
import { escapeControls } from "./lib/terminal.ts";

async function main(): Promise<number> {
  try {
    await cli(process.argv.slice(2), process.env);
    return 0;
  } catch (error) {
    // The reader of stdout went away (`| head`): that is how pipelines end, not a failure.
    if (error instanceof BrokenPipeError) return 0;
    if (error instanceof CliError) {
      if (error.message === USAGE) writeStderr(USAGE + "\n");
      else if (!error.reported) {
        // Messages quote server bodies and user input: control characters are made visible.
        const line = escapeControls(
          `error: ${error.message}\n${error.detail ? error.detail + "\n" : ""}`,
        );
        writeStderr(redact(colorOnStderr(process.env) ? colorize(line) : line));
      }
      return exitCodeFor(error);
    }
    writeStderr(redact(escapeControls(`error: unexpected failure: ${messageOf(error)}\n`)));
    if (process.env.OAI_COMPLIANCE_DEBUG) {
      writeStderr(redact(escapeControls(String((error as Error)?.stack))) + "\n");
    }
    return 1;
  }
}

exit(await main());
