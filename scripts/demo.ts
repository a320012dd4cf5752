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
import {
  demoDataset,
  REFERENCE_DOWNLOAD_LIMIT,
  REFERENCE_RETENTION_DAYS,
  startEmulator,
} from "../tests/emulator/mod.ts";
import { cliCommand } from "../tests/helpers/cli.ts";

const OUTPUT = "demo-output.jsonl";
/**
 * The real API allows 50 downloads a minute per key, and the tool paces itself to that by
 * default: 250 files would take five minutes. The demo's emulator allows more, and the tool is
 * told so, which is what `--max-downloads-per-minute` is for.
 */
const DOWNLOADS_PER_MINUTE = 1500;

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

const emulator = await startEmulator({
  files: demoDataset(),
  latencyMs: 5,
  retentionDays: REFERENCE_RETENTION_DAYS,
  downloadLimit: { requests: DOWNLOADS_PER_MINUTE, windowMs: 60_000 },
});
try {
  const principal = emulator.files[0].principal!;
  const after = new Date(Date.now() - 3 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
  const args = [
    principal,
    "AUTH_LOG",
    "100",
    after,
    "--max-downloads-per-minute",
    String(DOWNLOADS_PER_MINUTE),
  ];
  console.error(`Demo: the Compliance API emulator listens on ${emulator.apiBase}`);
  console.error(
    `  (it allows ${DOWNLOADS_PER_MINUTE} downloads a minute; the real API allows ` +
      `${REFERENCE_DOWNLOAD_LIMIT.requests}, the tool's default pace)`,
  );
  console.error(`Running: oai-compliance-logs ${args.join(" ")} > ${OUTPUT}\n`);
  const code = await runCli(
    args,
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
  console.error(`  answers 429 (over the download limit): ${emulator.rateLimited()}`);
  console.error(`  first record:\n${JSON.stringify(records[0], null, 2)}`);
  if (text !== expected || storageRequestsWithKey !== 0 || emulator.rateLimited() !== 0) {
    process.exitCode = 1;
  }
} finally {
  await emulator.close();
}
