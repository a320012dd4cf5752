/**
 * The composite action (`action.yml`) run here by tests/helpers/composite_action.ts, as the
 * Actions runner would run it: its bash steps with the Actions variables and command files,
 * actions/cache stood in for by a local directory, install.sh fetching the binary for this machine
 * from a release server serving a snapshot of it from `dist/` (skipped when dist/ lacks it, built first in CI), and the
 * tool downloading from the emulator. The workflow's `action` job runs the same action with
 * `uses: ./` on GitHub's runners.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createHash } from "node:crypto";
import { jsonLine } from "../../lib/reporter/json.ts";
import type { ReportEvent } from "../../lib/reporter/events.ts";
import { fileName, hostTarget, REPO_ROOT } from "../../scripts/targets.ts";
import type { Emulator } from "../emulator/mod.ts";
import {
  type CompositeRun,
  evaluate,
  fakeActionsCache,
  parseYaml,
  readAction,
  runCompositeAction,
} from "../helpers/composite_action.ts";
import { AFTER, hourlyFiles, PRINCIPAL, withEmulator } from "../helpers/fixtures.ts";
import { snapshotDist, startReleaseServer } from "../helpers/release_server.ts";
import { distFor } from "./_dist.ts";

const TIMEOUT = { timeout: 120_000 };
const host = hostTarget(process.platform, process.arch);
const SKIP = process.platform === "win32"
  ? "the composite-step runner runs bash steps on Linux and macOS (the workflow's action job runs the action on Windows)"
  : !host
  ? `no release target for ${process.platform}-${process.arch}`
  : undefined;
const dist = SKIP ? undefined : await distFor([host!]);

/** A workspace, a RUNNER_TEMP and a cache directory that live for one test. */
async function withJob<T>(
  fn: (dirs: { root: string; cache: string }) => Promise<T>,
): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), "oai-action-"));
  try {
    return await fn({ root, cache: join(root, "cache") });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** One workflow run of the action: its own workspace and RUNNER_TEMP, the shared cache. */
async function runAction(
  root: string,
  runId: number,
  cache: ReturnType<typeof fakeActionsCache>,
  inputs: Record<string, string>,
  env: Record<string, string>,
): Promise<CompositeRun & { workspace: string }> {
  const workspace = join(root, `run-${runId}`, "workspace");
  const runnerTemp = join(root, `run-${runId}`, "temp");
  await mkdir(workspace, { recursive: true });
  await mkdir(runnerTemp, { recursive: true });
  const run = await runCompositeAction({
    actionDir: REPO_ROOT,
    inputs,
    workspace,
    runnerTemp,
    env,
    github: { run_id: String(runId), repository: "example/compliance-jobs" },
    uses: cache.handlers,
  });
  return { ...run, workspace };
}

/** Every file under `dir`, as `/`-separated paths relative to it. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const path = prefix + entry.name;
    // The archive's manifests (tests/verify.test.ts covers them); only log files count here.
    if (path === "_manifest") continue;
    if (entry.isDirectory()) found.push(...await filesUnder(join(dir, entry.name), path + "/"));
    else if (entry.isFile()) found.push(path);
  }
  return found.sort();
}

function sizeOf(emulator: Emulator, ids: string[]): number {
  return emulator.files.filter((f) => ids.includes(f.id!)).reduce((n, f) => n + f.size!, 0);
}

/** Runs `fn` with an emulator holding 5 AUTH_LOG and 3 AUDIT_LOG files and a dist/ server. */
async function withSetup(
  fn: (emulator: Emulator, releaseUrl: string) => Promise<void>,
): Promise<void> {
  const files = [...hourlyFiles(5), ...hourlyFiles(3, { eventType: "AUDIT_LOG" })];
  // A snapshot of this machine's binary: dist/ is shared, and another build may rewrite it.
  const release = await mkdtemp(join(tmpdir(), "oai-action-release-"));
  try {
    const server = await startReleaseServer({ files: await snapshotDist(host!, release) });
    try {
      await withEmulator({ files }, (emulator) => fn(emulator, server.url));
    } finally {
      await server.close();
    }
  } finally {
    await rm(release, { recursive: true, force: true });
  }
}

test(
  "the action downloads into output-dir, reports outputs and a step summary, and resumes from the cached checkpoint",
  {
    ...TIMEOUT,
    skip: SKIP ?? dist?.skip,
  },
  async () => {
    if (dist?.buildError) assert.fail(dist.buildError);
    await withSetup(async (emulator, releaseUrl) => {
      await withJob(async ({ root, cache: cacheDir }) => {
        const cache = fakeActionsCache(cacheDir);
        const inputs = {
          principal: PRINCIPAL,
          "event-types": "AUTH_LOG,AUDIT_LOG",
          after: AFTER,
          "api-key": emulator.key,
          "download-url": releaseUrl,
        };
        const env = { COMPLIANCE_API_BASE: emulator.apiBase };
        const first = await runAction(root, 101, cache, inputs, env);
        assert.equal(first.failed, false, first.log);
        const ids = emulator.files.map((f) => f.id!);
        assert.deepEqual(
          { ...first.outputs, summary: undefined },
          {
            files: "8",
            bytes: String(sizeOf(emulator, ids)),
            status: "ok",
            "exit-code": "0",
            gone: "0",
            summary: undefined,
          },
        );
        const summaryEvent = JSON.parse(first.outputs.summary);
        assert.equal(summaryEvent.event, "summary");
        assert.equal(summaryEvent.files, 8);

        // The files, where output-dir says, and the tool's JSON lines in the step's log.
        const written = await filesUnder(join(first.workspace, "compliance-logs"));
        assert.equal(written.length, 8, written.join("\n"));
        assert.ok(
          written.every((p) => /^(AUTH_LOG|AUDIT_LOG)\/\d{4}-\d{2}-\d{2}\/eclf_.*\.jsonl$/.test(p)),
        );
        const runStep = first.steps.find((s) => s.id === "run")!;
        assert.match(runStep.stdout!, /^\{"time":"[^"]+","event":"summary","files":8,/m);

        // The step summary: the counts and the cursor per event type.
        assert.match(first.summary, /^### oai-compliance-logs: ok$/m);
        assert.ok(
          first.summary.includes(
            `| ${PRINCIPAL} | AUTH_LOG,AUDIT_LOG | 8 | ${
              sizeOf(emulator, ids)
            } | 2 | 0 | 0 | 0 | ok (exit 0) |`,
          ),
          first.summary,
        );
        assert.match(first.summary, /^\| AUTH_LOG \| 2026-07-02T04:00:00\.000000Z \|$/m);
        assert.match(first.summary, /^\| AUDIT_LOG \| 2026-07-02T02:00:00\.000000Z \|$/m);

        // The checkpoint went to the cache, under a key per principal and event types and run.
        const prefix = `oai-compliance-logs-state.${PRINCIPAL}.AUDIT_LOG+AUTH_LOG.`;
        assert.deepEqual(cache.keys(), [`${prefix}101-1`]);
        const restore = first.steps.find((s) => s.uses?.startsWith("actions/cache/restore@"))!;
        assert.deepEqual(restore.with, {
          path: ".oai-compliance-logs/state.json",
          key: `${prefix}101-1`,
          "restore-keys": prefix,
        });
        assert.equal(restore.outputs["cache-hit"], "false");

        // The binary is on PATH for later steps, and the key was in no output, log or summary.
        const install = first.steps.find((s) => s.id === "install")!;
        assert.match(
          install.stdout!,
          /Installed oai-compliance-logs \d+\.\d+\.\d+ .*\(SHA-256 verified\)/,
        );
        for (const text of [first.log, first.summary, JSON.stringify(first.outputs)]) {
          assert.ok(!text.includes(emulator.key), "the key leaked");
        }
        for (const step of first.steps) {
          assert.ok(
            !(step.script ?? "").includes(emulator.key),
            `the key is in ${step.name}'s script`,
          );
          if (step.id !== "run") {
            assert.ok(
              !JSON.stringify(step.env ?? {}).includes(emulator.key),
              `key in ${step.name}'s env`,
            );
          }
        }

        // A later scheduled run: a fresh workspace, the checkpoint from the cache, only new files.
        emulator.addFiles(
          hourlyFiles(2, { start: "2026-07-03T00:00:00Z" }).map((f, i) => ({
            ...f,
            id: `eclf_auth_log_new_${i}`,
          })),
        );
        const second = await runAction(root, 102, cache, inputs, env);
        assert.equal(second.failed, false, second.log);
        assert.equal(
          second.steps.find((s) => s.uses?.startsWith("actions/cache/restore@"))!
            .outputs["cache-matched-key"],
          `${prefix}101-1`,
        );
        assert.equal(second.outputs.files, "2");
        assert.equal(second.outputs.status, "ok");
        assert.deepEqual(
          (await filesUnder(join(second.workspace, "compliance-logs"))).map((p) =>
            p.replace(/^.*\//, "")
          ),
          ["eclf_auth_log_new_0.jsonl", "eclf_auth_log_new_1.jsonl"],
        );
        assert.deepEqual(cache.keys(), [`${prefix}101-1`, `${prefix}102-1`]);
      });
    });
  },
);

test(
  "a failed run fails the step, still sets the outputs and the summary with the error, and saves the checkpoint",
  {
    ...TIMEOUT,
    skip: SKIP ?? dist?.skip,
  },
  async () => {
    if (dist?.buildError) assert.fail(dist.buildError);
    await withSetup(async (emulator, releaseUrl) => {
      await withJob(async ({ root, cache: cacheDir }) => {
        const cache = fakeActionsCache(cacheDir);
        const env = { COMPLIANCE_API_BASE: emulator.apiBase };
        const inputs = {
          principal: PRINCIPAL,
          "event-types": "AUTH_LOG",
          after: AFTER,
          "download-url": releaseUrl,
          state: "ckpt/state.json",
          args: "--gzip --concurrency 2",
        };
        const ok = await runAction(root, 201, cache, { ...inputs, "api-key": emulator.key }, env);
        assert.equal(ok.failed, false, ok.log);
        assert.equal(ok.outputs.files, "5");
        const gz = await filesUnder(join(ok.workspace, "compliance-logs"));
        assert.ok(gz.length === 5 && gz.every((p) => p.endsWith(".jsonl.gz")), gz.join(" "));

        const wrongKey = "sk-wrong-0123456789abcdef0123456789";
        const failed = await runAction(root, 202, cache, { ...inputs, "api-key": wrongKey }, env);
        assert.equal(failed.failed, true);
        assert.deepEqual(
          {
            files: failed.outputs.files,
            status: failed.outputs.status,
            code: failed.outputs["exit-code"],
          },
          { files: "0", status: "failed", code: "1" },
        );
        assert.match(failed.summary, /^### oai-compliance-logs: failed$/m);
        assert.match(failed.summary, /\| 0 \| 0 \| 0 \| 0 \| 0 \| failed \(exit 1\) \|/);
        assert.match(failed.summary, /^\*\*Error:\*\* HTTP error 401 while listing logs/m);
        const save = failed.steps.find((s) => s.uses?.startsWith("actions/cache/save@"))!;
        assert.equal(
          save.outcome,
          "success",
          "the checkpoint restored from the cache is saved again",
        );
        assert.ok(!failed.log.includes(wrongKey) && !failed.summary.includes(wrongKey));
        assert.deepEqual(cache.keys().map((k) => k.replace(/^.*\./, "")), ["201-1", "202-1"]);
      });
    });
  },
);

/**
 * A release whose binary for this machine is a shell script that writes `events` as the tool's
 * JSON lines on stderr and exits with `code` (and answers `--version` as the tool does).
 */
function stubToolRelease(events: ReportEvent[], code: number): Record<string, Uint8Array> {
  const time = new Date("2026-07-09T10:00:00Z");
  const lines = events.map((e) => jsonLine(e, time)).join("\n");
  const script =
    `#!/bin/sh\n[ "$1" = --version ] && { echo "oai-compliance-logs 0.1.0 (stub)"; exit 0; }\n` +
    `cat >&2 <<'EOF'\n${lines}\nEOF\nexit ${code}\n`;
  const bytes = new TextEncoder().encode(script);
  const name = fileName(host!);
  const sum = createHash("sha256").update(bytes).digest("hex");
  return { [name]: bytes, SHA256SUMS: new TextEncoder().encode(`${sum}  ${name}\n`) };
}

test(
  "exit 4 (incomplete): outputs status and exit code, names each gone file, and fails the step",
  {
    ...TIMEOUT,
    skip: SKIP,
  },
  async () => {
    const gone: ReportEvent = {
      event: "gone",
      eventType: "AUDIT_LOG",
      id: "eclf_gone_1",
      endTime: "2026-06-01T00:00:00.000000Z",
      reason: "expired",
    };
    const server = await startReleaseServer({
      files: stubToolRelease([
        { event: "file", id: "eclf_1", bytes: 10, durationMs: 1 },
        gone,
        {
          event: "error",
          message: "done, but 1 listed file was no longer available",
          kind: "incomplete",
          exitCode: 4,
        },
        {
          event: "summary",
          files: 1,
          bytes: 10,
          pages: 1,
          retries: 0,
          skipped: 0,
          gone: 1,
          durationMs: 5,
          cursors: { AUDIT_LOG: "2026-07-09T00:00:00.000000Z" },
          status: "incomplete",
          exitCode: 4,
        },
      ], 4),
    });
    try {
      await withJob(async ({ root, cache: cacheDir }) => {
        const run = await runAction(root, 401, fakeActionsCache(cacheDir), {
          principal: PRINCIPAL,
          "event-types": "AUDIT_LOG",
          "api-key": "sk-stub-0123456789abcdefghij",
          "download-url": server.url,
        }, {});
        assert.equal(run.failed, true, run.log);
        assert.deepEqual(
          [run.outputs.status, run.outputs["exit-code"], run.outputs.gone, run.outputs.files],
          ["incomplete", "4", "1", "1"],
        );
        assert.match(run.outputs.summary, /"status":"incomplete","exit_code":4\}$/);
        assert.deepEqual(run.annotations, [
          "::warning title=oai-compliance-logs::AUDIT_LOG file eclf_gone_1 (end_time " +
          "2026-06-01T00:00:00.000000Z) was no longer available: recorded as gone, the checkpoint " +
          "moved past it",
        ]);
        assert.match(run.summary, /^### oai-compliance-logs: incomplete$/m);
        assert.match(run.summary, /\| 1 \| 10 \| 1 \| 0 \| 0 \| 1 \| incomplete \(exit 4\) \|/);
        assert.match(
          run.summary,
          /^\| eclf_gone_1 \| AUDIT_LOG \| 2026-06-01T00:00:00\.000000Z \|$/m,
        );
        assert.match(
          run.summary,
          /^\*\*Incomplete \(exit 4\):\*\* done, but 1 listed file was no longer available$/m,
        );
      });
    } finally {
      await server.close();
    }
  },
);

test("the action refuses missing inputs with an ::error:: line before installing anything", {
  ...TIMEOUT,
  skip: SKIP,
}, async () => {
  await withJob(async ({ root, cache: cacheDir }) => {
    const cache = fakeActionsCache(cacheDir);
    for (
      const [inputs, message] of [
        [{ "api-key": "sk-x-0123456789abcdefghij" }, /the principal input is required/],
        [{ principal: PRINCIPAL }, /the api-key input is empty: pass the key as a secret/],
      ] as const
    ) {
      const run = await runAction(root, 301, cache, inputs, {});
      assert.equal(run.failed, true);
      assert.equal(run.annotations.length, 1, run.log);
      assert.match(run.annotations[0], /^::error title=oai-compliance-logs::/);
      assert.match(run.annotations[0], message);
      assert.deepEqual(run.steps.map((s) => s.outcome), [
        "failure",
        "skipped",
        "skipped",
        "skipped",
        "skipped",
      ]);
    }
  });
});

test(
  "action.yml passes inputs to scripts only through env, and the key only to the step that runs the tool",
  {
    skip: SKIP,
  },
  async () => {
    const action = await readAction(REPO_ROOT);
    const steps = (action.runs as { steps: Record<string, unknown>[] }).steps;
    for (const step of steps) {
      if (typeof step.run === "string") {
        assert.ok(
          !step.run.includes("${{"),
          `an expression is spliced into the script of ${step.name}`,
        );
      }
      const env = (step.env ?? {}) as Record<string, string>;
      for (const [name, value] of Object.entries(env)) {
        // Elsewhere only whether it is set (true or false); the key itself where the tool runs.
        if (value.includes("inputs.api-key") && value !== "${{ inputs.api-key != '' }}") {
          assert.equal(step.id, "run");
          assert.deepEqual([name, value], ["COMPLIANCE_API_KEY", "${{ inputs.api-key }}"]);
        }
      }
    }
    const text = await readFile(join(REPO_ROOT, "action.yml"), "utf8");
    assert.equal(text.match(/inputs\.api-key \}\}/g)?.length, 1, "inputs.api-key used elsewhere");
  },
);

test("the composite runner's YAML reader and expressions handle the shapes action.yml uses", () => {
  assert.deepEqual(
    parseYaml(
      [
        "# comment",
        "a: plain text # trailing comment",
        'b: "quoted: \\"x\\""',
        "c: 'it''s'",
        "d:",
        "  - e: 1",
        "    f: |",
        "      line one",
        "        indented",
        "",
        "      after a blank",
        "  - plain item",
        "g:",
        "- at key indent",
        "h: ${{ inputs.x != '' }}",
      ].join("\n"),
    ),
    {
      a: "plain text",
      b: 'quoted: "x"',
      c: "it's",
      d: [{ e: "1", f: "line one\n  indented\n\nafter a blank\n" }, "plain item"],
      g: ["at key indent"],
      h: "${{ inputs.x != '' }}",
    },
  );
  assert.throws(() => parseYaml("a: [1, 2]"), /unsupported YAML/);
  assert.throws(() => parseYaml("a: >\n  folded"), /unsupported block scalar/);
  assert.throws(() => parseYaml("a: 1\na: 2"), /duplicate key/);
  const contexts = {
    inputs: { "api-key": "", x: "y" },
    steps: {
      run: { outputs: { "state-exists": "true" }, outcome: "failure", conclusion: "failure" },
    },
    github: { action_repository: "", repository: "o/r" },
    runner: {},
    env: {},
    failed: true,
  };
  assert.equal(evaluate("inputs.api-key != ''", contexts), false);
  assert.equal(evaluate("github.action_repository || github.repository", contexts), "o/r");
  assert.equal(evaluate("always() && steps.run.outputs.state-exists == 'TRUE'", contexts), true);
  assert.equal(evaluate("success() && steps.run.outputs.state-exists == 'true'", contexts), false);
  assert.equal(evaluate("steps.missing.outputs.x", contexts), null);
  assert.throws(() => evaluate("contains(inputs.x, 'y')", contexts), /unsupported expression/);
  assert.throws(() => evaluate("format(inputs.x)", contexts), /unsupported function format/);
});
