/**
 * The built-in demo: starts the local Compliance API emulator with a realistic dataset, runs the
 * real CLI against it as a user would (multi-page listing, concurrent verified downloads, JSONL on
 * stdout), then shows what arrived. Nothing leaves this machine.
 *
 * Usage: deno task demo   (or: bun scripts/demo.ts)
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { demoDataset, startEmulator } from "../tests/emulator/mod.ts";
import { cliCommand } from "../tests/helpers/cli.ts";

const OUTPUT = "demo-output.jsonl";

function runCli(args: string[], env: Record<string, string>, stdoutPath: string): Promise<number> {
  const [command, ...prefix] = cliCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.stdout!.pipe(createWriteStream(stdoutPath, { mode: 0o600 }));
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

const emulator = await startEmulator({ files: demoDataset(), latencyMs: 5 });
try {
  const principal = emulator.files[0].principal!;
  const after = new Date(Date.now() - 3 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
  console.error(`Demo: the Compliance API emulator listens on ${emulator.apiBase}`);
  console.error(
    `Running: oai-compliance-logs ${principal} AUTH_LOG 100 ${after} > ${OUTPUT}\n`,
  );
  const code = await runCli(
    [principal, "AUTH_LOG", "100", after],
    { COMPLIANCE_API_KEY: emulator.key, COMPLIANCE_API_BASE: emulator.apiBase },
    OUTPUT,
  );
  if (code !== 0) throw new Error(`the CLI exited with ${code}`);

  const text = await readFile(OUTPUT, "utf8");
  const records = text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
  const listed = emulator.files.filter((f) => f.eventType === "AUTH_LOG");
  let expected = "";
  for (const file of listed) {
    const content = new TextDecoder().decode(await emulator.contentOf(file.id!));
    expected += content + (content === "" || content.endsWith("\n") ? "" : "\n");
  }
  const storageRequestsWithKey = emulator.requests.filter((r) =>
    r.server === "storage" && JSON.stringify(r.headers).includes(emulator.key)
  ).length;
  console.error(`\nDemo result:`);
  console.error(
    `  ${listed.length} AUTH_LOG files listed, ${records.length} JSON records in ${OUTPUT}`,
  );
  console.error(`  output identical to the files served, in listing order: ${text === expected}`);
  console.error(
    `  requests to the storage host that carried the API key: ${storageRequestsWithKey}`,
  );
  console.error(`  first record:\n${JSON.stringify(records[0], null, 2)}`);
  if (text !== expected || storageRequestsWithKey !== 0) {
    process.exitCode = 1;
  }
} finally {
  await emulator.close();
}
