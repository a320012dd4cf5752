/**
 * Bounded memory (issue 19): a 2 GiB log file delivered into Elasticsearch line by line from the
 * spool, in bounded batches, must not raise the CLI's peak RSS above 150 MB. Heavy: one runtime
 * (Bun; skipped under Deno, whose run of the same code paths the other tests cover), against the
 * `_bulk` emulator in count-only mode, with the Compliance emulator's generated 2 GiB file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { runCli, RUNS_BINARY } from "./helpers/cli.ts";
import { AFTER, envFor, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { withDir } from "./helpers/mod.ts";
import { startElasticEmulator } from "./siem/elastic_emulator.ts";

const API_KEY = "bWVtb3J5LXRlc3Qta2V5OnNlY3JldC0wMTIzNDU2Nzg5";
const SIZE = 2 * 1024 ** 3;
const isBun = Boolean(process.versions.bun);

test(
  "a 2 GiB log file into _bulk keeps peak RSS under 150 MB",
  {
    timeout: 900_000,
    // Measured from source under Bun, whose runtime the binaries carry: the binary suites and
    // Deno (with deno compile's grants) would measure another runtime for the same code.
    skip: !isBun || RUNS_BINARY
      ? "heavy: measured from source under Bun only"
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
            env: envFor(emulator, { ELASTIC_API_KEY: API_KEY }),
            wrapper: ["/usr/bin/time", "-v", "-o", report],
            timeoutMs: 880_000,
          });
          assert.equal(r.code, 0, r.stderr);
          const text = await readFile(report, "utf8");
          const peakKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1]);
          assert.ok(es.documentCount() > 2_000_000, `${es.documentCount()} documents`);
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
