/**
 * The drop-in promise, checked against the original: OpenAI's bash quickstart script and this
 * tool run against the same emulator must yield the same records in the same order.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { cliCommand, concat, runCli, RUNS_WINDOWS } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";

const SCRIPT = new URL("./fixtures/download_compliance_files.sh", import.meta.url);
const hasTools = !RUNS_WINDOWS && process.platform !== "win32" &&
  ["bash", "curl", "jq"].every((t) =>
    spawnSync(t, ["--version"], { stdio: "ignore" }).status === 0
  );

function runScript(args: string[], env: Record<string, string>, script: string) {
  return new Promise<{ code: number | null; stdout: Uint8Array }>((resolve, reject) => {
    const child = spawn("bash", [script, ...args], {
      env: { PATH: process.env.PATH ?? "", TZ: "UTC", ...env },
      stdio: ["ignore", "pipe", "ignore"],
    });
    const out: Uint8Array[] = [];
    child.stdout!.on("data", (c: Uint8Array) => out.push(c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: concat(out) }));
  });
}

const nonBlankLines = (bytes: Uint8Array) =>
  new TextDecoder().decode(bytes).split("\n").filter((l) => l !== "");

test("records equal the bash quickstart script's non-blank lines on multi-page data", {
  skip: hasTools ? false : "needs bash, curl and jq (Linux/macOS)",
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "oai-parity-"));
  try {
    await withEmulator({ files: hourlyFiles(17) }, async (emulator) => {
      const script = join(dir, "download_compliance_files.sh");
      const original = await readFile(SCRIPT, "utf8");
      await writeFile(
        script,
        original.replace(/^API_BASE=.*$/m, `API_BASE="${emulator.apiBase}"`),
      );
      const args = [PRINCIPAL, "AUTH_LOG", "5", AFTER];
      const theirs = await runScript(args, { COMPLIANCE_API_KEY: emulator.key }, script);
      assert.equal(theirs.code, 0);
      const ours = await runCli(args, { env: envFor(emulator) });
      assert.equal(ours.code, 0, ours.stderr);
      assert.ok(nonBlankLines(theirs.stdout).length > 17);
      assert.deepEqual(nonBlankLines(ours.stdout), nonBlankLines(theirs.stdout));
      // Ours has no blank lines: every line is a JSON record.
      const text = new TextDecoder().decode(ours.stdout);
      assert.ok(text.endsWith("\n"));
      for (const line of text.slice(0, -1).split("\n")) JSON.parse(line);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("piping into head ends quietly with exit 0 and no stack trace", {
  skip: hasTools ? false : "needs bash",
}, async () => {
  await withEmulator({ files: hourlyFiles(8, { sizes: [300_000] }) }, async (emulator) => {
    const command = cliCommand().map((a) => `'${a}'`).join(" ");
    const err = join(tmpdir(), `oai-head-${process.pid}-${Date.now()}.txt`);
    // Async spawn: the emulator runs in this process and must keep serving meanwhile.
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn("bash", [
        "-c",
        `set -o pipefail; ${command} ${PRINCIPAL} AUTH_LOG 100 ${AFTER} 2>${err} | head -n 2 >/dev/null; ` +
        `echo "status=\${PIPESTATUS[0]}"; cat ${err}; rm -f ${err}`,
      ], { env: { ...process.env, ...envFor(emulator), NO_COLOR: "1" } });
      let text = "";
      child.stdout.on("data", (c: Uint8Array) => text += new TextDecoder().decode(c));
      child.on("error", reject);
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("close", () => {
        clearTimeout(timer);
        resolve(text);
      });
    });
    assert.match(output, /^status=0\n/, output);
    assert.doesNotMatch(output, /error|Error|at .*\.ts:\d+/);
  });
});
