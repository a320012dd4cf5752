/**
 * azure (Azurite): a 2 GiB file goes up as Put Block / Put Block List with bounded memory: the
 * CLI's peak RSS stays under 150 MB. Measured on one runtime (Bun) to keep the suite's time small;
 * the upload path is the same code under Deno.
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
import { azuriteSkip, startAzurite } from "./servers/azurite.ts";

const SIZE = 2 * 1024 * 1024 * 1024;
// Measured from source under Bun, whose runtime the binaries carry (not again per binary suite).
const skip = azuriteSkip() ??
  (process.versions.bun && !RUNS_BINARY ? undefined : "measured from source under Bun only");

test(
  "azure (Azurite): a 2 GiB file is stored in blocks with peak RSS under 150 MB",
  { timeout: 900_000, skip },
  async () => {
    const azurite = await startAzurite();
    await azurite.createContainer("big");
    const files = [{
      id: "eclf_big_2gib",
      eventType: "AUTH_LOG",
      endTime: "2026-07-02T00:00:00Z",
      size: SIZE,
    }];
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-azure-big-", async (dir) => {
        const report = join(dir, "time.txt");
        const timed = existsSync("/usr/bin/time");
        let polledKiB = 0;
        let timer: ReturnType<typeof setInterval> | undefined;
        const r = await runCli(
          [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", "az://big/m"],
          {
            env: envFor(emulator, { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }),
            timeoutMs: 840_000,
            ...(timed ? { wrapper: ["/usr/bin/time", "-v", "-o", report] } : {}),
            onSpawn: (child) => {
              if (timed) return;
              timer = setInterval(async () => {
                const status = await readFile(`/proc/${child.pid}/status`, "utf8").catch(() => "");
                polledKiB = Math.max(polledKiB, Number(/VmHWM:\s*(\d+)/.exec(status)?.[1] ?? 0));
              }, 50);
            },
          },
        );
        clearInterval(timer);
        assert.equal(r.code, 0, r.stderr);
        const peakKiB = timed
          ? Number(
            /Maximum resident set size \(kbytes\): (\d+)/.exec(await readFile(report, "utf8"))?.[1],
          )
          : polledKiB;
        assert.ok(peakKiB > 0 && peakKiB < 150 * 1000, `peak RSS ${peakKiB} KiB`);
        const [blob] = await azurite.listBlobs("big", "m/");
        const file = emulator.files[0];
        assert.equal(blob.name, "m/AUTH_LOG/2026-07-02/eclf_big_2gib.jsonl");
        assert.equal(blob.size, file.size);
        assert.equal(blob.metadata.size, String(file.size));
        assert.equal(blob.metadata.sha256, await emulator.sha256Of(file.id));
      });
    });
  },
);
