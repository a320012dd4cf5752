/**
 * The words a new user tries first: `help`, `help <command>`, and `--version` anywhere on the
 * command line (before `--`), rather than only as the first word.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAIN_TS, REPO_ROOT, runCli, RUNS_BINARY } from "./helpers/cli.ts";

const decoder = new TextDecoder();
const env = { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" };

test("help prints the top-level help; help <command> that command's", async () => {
  const top = await runCli(["help"], { env });
  assert.equal(top.code, 0, top.stderr);
  assert.match(decoder.decode(top.stdout), /Commands \(each with its own --help\)/);
  const list = await runCli(["help", "list"], { env });
  assert.equal(list.code, 0, list.stderr);
  assert.match(decoder.decode(list.stdout), /^Usage: oai-compliance-logs list /);
  const unknown = await runCli(["help", "nosuch"], { env });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /help takes one command name \(run, list, state, verify\)/);
});

test("--version is answered wherever it stands, but not after --", async () => {
  for (const argv of [["--version"], ["ws-1", "AUTH_LOG", "-V"], ["list", "--version"]]) {
    const r = await runCli(argv, { env });
    assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
    assert.match(decoder.decode(r.stdout), /^oai-compliance-logs \d+\.\d+\.\d+ \(/);
  }
  const after = await runCli(["ws-1", "AUTH_LOG", "1", "1h", "--", "--version"], { env });
  assert.equal(after.code, 2, after.stderr);
});

test("main.ts is executable in git and runs from any directory by its absolute path", {
  skip: RUNS_BINARY && "a binary has no main.ts",
}, async () => {
  const { execFileSync } = await import("node:child_process");
  const { tmpdir } = await import("node:os");
  let mode: string;
  try {
    mode = execFileSync("git", ["ls-files", "-s", "main.ts"], { cwd: REPO_ROOT }).toString();
  } catch {
    return; // Not a git checkout (an unpacked release): nothing to check.
  }
  assert.match(mode, /^100755 /, "the shebang works only with the exec bit");
  // The README's alias names main.ts by its absolute path; from elsewhere it still runs.
  const r = await runCli(["--version"], { env, cwd: tmpdir() });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(MAIN_TS.startsWith("/") || /^[A-Za-z]:/.test(MAIN_TS));
});
