/**
 * Bounded memory of `--from-archive` (issue 19): a 512 MiB stored file in a local archive, read
 * back, checked against its manifest line and copied into `-o FILE`, keeps the CLI's peak RSS
 * (VmHWM of the CLI process, sampled from /proc) under 150 MB, and the output is byte for byte
 * the stored file. The archive is made first by an ordinary run from the emulator (not measured).
 * Heavy: one runtime (Bun, from source, whose runtime the binaries carry; skipped under Deno and
 * the binary suites), as the other memory tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { runCli, RUNS_BINARY } from "./helpers/cli.ts";
import { AFTER, envFor, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { withDir } from "./helpers/mod.ts";

const SIZE = 512 * 1024 ** 2;
const LIMIT_BYTES = 150 * 1024 * 1024;
const skip = !process.versions.bun || RUNS_BINARY
  ? "heavy: measured from source under Bun only"
  : !existsSync("/proc/self/status") && "needs /proc";

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

/** A file's SHA-256, streamed (the test holds no large file in memory either). */
async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk);
  return hash.digest("hex");
}

const mb = (bytes: number) => (bytes / 1024 ** 2).toFixed(1);

test(
  "--from-archive: a 512 MiB stored file into -o FILE keeps peak RSS under 150 MB, byte for byte",
  {
    timeout: 180_000,
    skip,
  },
  async () => {
    const file = {
      id: "eclf_big_512m",
      eventType: "AUTH_LOG",
      endTime: "2026-07-02T00:00:00Z",
      size: SIZE,
    };
    await withEmulator({ files: [file] }, async (emulator) => {
      await withDir("oai-from-archive-memory-", async (dir) => {
        const archive = join(dir, "logs");
        const stored = await runCli(
          [PRINCIPAL, "AUTH_LOG", "1", AFTER, "--output-dir", archive],
          { env: envFor(emulator), timeoutMs: 120_000 },
        );
        assert.equal(stored.code, 0, stored.stderr);
        const storedPath = join(archive, "AUTH_LOG", "2026-07-02", `${file.id}.jsonl`);
        // The generated file's size (about SIZE: whole lines).
        const size = emulator.files[0].size!;
        assert.ok(size >= SIZE, `${size}`);
        assert.equal((await stat(storedPath)).size, size);
        const apiRequests = emulator.requests.length;

        const out = join(dir, "out.jsonl");
        let peak = () => 0;
        const r = await runCli(
          ["--from-archive", archive, "-o", out, PRINCIPAL, "AUTH_LOG", "1", AFTER],
          {
            // No key: nothing may reach the API.
            env: { COMPLIANCE_API_BASE: emulator.apiBase },
            timeoutMs: 120_000,
            onSpawn: (child) => peak = watchPeak(child),
          },
        );
        assert.equal(r.code, 0, r.stderr);
        assert.equal(emulator.requests.length, apiRequests, "no request reached the API");
        assert.ok(peak() > 0, "no RSS sample was taken");
        assert.ok(peak() < LIMIT_BYTES, `peak RSS ${mb(peak())} MiB`);
        assert.equal((await stat(out)).size, size);
        const want = await emulator.sha256Of(file.id);
        assert.equal(await sha256Of(storedPath), want, "the archive holds what the API served");
        assert.equal(await sha256Of(out), want, "-o FILE is the stored file, byte for byte");
        console.log(
          `512 MiB from the archive into -o FILE in ${r.ms} ms, peak RSS ${mb(peak())} MiB`,
        );
      });
    });
  },
);
