/**
 * Bounded memory (issue 19): a 2 GiB log file delivered into Elasticsearch line by line from the
 * spool, in bounded batches, must not raise the CLI's peak RSS above 150 MB; nor must many files
 * downloaded at `--concurrency 8`, which outrun the delivery. Heavy: from source only (the
 * binaries carry the same runtimes), under Bun and under Deno with the V8 flags users run it with
 * (`DENO_V8_FLAGS` of scripts/compile.ts, passed as Deno's environment variable of that name),
 * against the `_bulk` emulator in count-only mode, with the Compliance emulator's generated files.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { runCli, RUNS_BINARY } from "./helpers/cli.ts";
import { DENO_V8_FLAGS } from "../scripts/compile.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { withDir } from "./helpers/mod.ts";
import { recordsOf } from "./helpers/siem.ts";
import { normalizeSpec } from "./emulator/dataset.ts";
import { startElasticEmulator } from "./siem/elastic_emulator.ts";

const API_KEY = "bWVtb3J5LXRlc3Qta2V5OnNlY3JldC0wMTIzNDU2Nzg5";
const SIZE = 2 * 1024 ** 3;

test(
  "a 2 GiB log file into _bulk keeps peak RSS under 150 MB",
  {
    timeout: 900_000,
    // Measured from source: the binary suites would measure the same runtimes again.
    skip: RUNS_BINARY
      ? "heavy: measured from source only"
      : !existsSync("/usr/bin/time") && "needs /usr/bin/time",
  },
  async () => {
    await withDir("oai-es-memory-", async (dir) => {
      const files = [{
        id: "eclf_big_2g",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T00:00:00Z",
        size: SIZE,
      }];
      const records = recordCount(files[0]);
      await withEmulator({ files }, async (emulator) => {
        const es = await startElasticEmulator({ apiKeys: [API_KEY], countOnly: true });
        try {
          const report = join(dir, "time.txt");
          const r = await runCli([
            PRINCIPAL,
            "AUTH_LOG",
            "1",
            AFTER,
            "-o",
            es.target,
            ...(process.env.EXTRA_ARGS ?? "").split(" ").filter(Boolean),
          ], {
            env: envFor(emulator, { ELASTIC_API_KEY: API_KEY, DENO_V8_FLAGS }),
            wrapper: ["/usr/bin/time", "-v", "-o", report],
            timeoutMs: 880_000,
          });
          assert.equal(r.code, 0, r.stderr);
          const text = await readFile(report, "utf8");
          const peakKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1]);
          assert.equal(es.documentCount(), records, "every record indexed, once");
          assert.ok(peakKiB < 150 * 1024, `peak RSS ${Math.round(peakKiB / 1024)} MB`);
          console.log(
            `2 GiB into _bulk: ${es.documentCount()} documents in ${r.ms} ms, peak RSS ${
              Math.round(peakKiB / 1024)
            } MB`,
          );
        } finally {
          await es.close();
        }
      });
    });
  },
);

/** The records of a generated file, counted from its content as the emulator serves it. */
function recordCount(spec: { id: string; eventType: string; endTime: string; size: number }) {
  const { content } = normalizeSpec(spec, PRINCIPAL, () => false);
  let lines = 0;
  for (const chunk of content.slice(0, content.size, 1 << 20)) {
    for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) lines++;
  }
  return lines;
}

/** Samples the child's VmHWM (the kernel's high-water mark, so no peak is missed between). */
function watchPeak(child: ChildProcess): () => number {
  let peak = 0;
  const sample = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024);
    } catch {
      // Gone already: the last sample stands.
    }
  };
  const timer = setInterval(sample, 50);
  child.on("exit", () => clearInterval(timer));
  return () => peak;
}

test("many files at --concurrency 8 into _bulk keep peak RSS under 150 MiB", {
  timeout: 300_000,
  skip: RUNS_BINARY
    ? "heavy: measured from source only"
    : !existsSync("/proc/self/status") && "needs /proc",
}, async () => {
  // Downloads far outrun delivery: without a bound on the files held ahead of it, this ran at
  // 190-280 MiB (every spool's buffers, and the runtime's garbage, waiting on the delivery).
  const files = hourlyFiles(24, { sizes: [4 * 1024 * 1024] });
  await withEmulator({ files }, async (emulator) => {
    const records = (await recordsOf(emulator, idsOf(emulator))).length;
    const es = await startElasticEmulator({ apiKeys: [API_KEY], countOnly: true });
    try {
      let peak = () => 0;
      const r = await runCli(
        [PRINCIPAL, "AUTH_LOG", "100", AFTER, "-o", es.target, "--concurrency", "8"],
        {
          env: envFor(emulator, { ELASTIC_API_KEY: API_KEY, DENO_V8_FLAGS }),
          timeoutMs: 280_000,
          onSpawn: (child) => peak = watchPeak(child),
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(es.documentCount(), records, "every record indexed, once");
      assert.ok(peak() > 0, "no RSS sample was taken");
      assert.ok(peak() < 150 * 1024 * 1024, `peak RSS ${(peak() / 1024 ** 2).toFixed(1)} MiB`);
      console.log(
        `24 x 4 MiB into _bulk at --concurrency 8: ${records} documents in ${r.ms} ms, peak RSS ${
          (peak() / 1024 ** 2).toFixed(1)
        } MiB`,
      );
    } finally {
      await es.close();
    }
  });
});

test("the README's `deno run` line, the `cli` task and main.ts's shebang carry the V8 flags the binaries get", async () => {
  // Without them Deno's peak RSS on a 2 GiB file is ~220-235 MiB (BENCHMARKS.md).
  const root = new URL("../", import.meta.url);
  const readme = await readFile(new URL("README.md", root), "utf8");
  const tasks = JSON.parse(await readFile(new URL("deno.json", root), "utf8")).tasks;
  const flag = `--v8-flags=${DENO_V8_FLAGS}`;
  assert.ok(readme.includes(`deno run -A ${flag} main.ts`), `README.md: deno run -A ${flag}`);
  assert.ok(tasks.cli.includes(flag), `deno.json's cli task: ${flag}`);
  const shebang = (await readFile(new URL("main.ts", root), "utf8")).split("\n")[0];
  assert.ok(shebang.startsWith("#!") && shebang.includes(flag), `main.ts's shebang: ${flag}`);
});
