/**
 * The API's documented limits, end to end against the emulator that enforces them: the download
 * budget keeps a run under the limit (no 429), an error outranks a gone file in the exit code,
 * and under `--follow` a gone file is a warning while polling goes on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { lines, runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

test(
  "13 files under an enforced limit of 10 per 2 s: paced, no 429, all delivered",
  SLOW,
  async () => {
    const limit = { requests: 10, windowMs: 2_000 };
    await withEmulator({ files: hourlyFiles(13), downloadLimit: limit }, async (emulator) => {
      const started = Date.now();
      const r = await runCli(
        [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--max-downloads-per-minute", "10"],
        // The tool's "minute" shortened to the emulator's window, as its test-only variable allows.
        { env: envFor(emulator, { OAI_COMPLIANCE_PACE_WINDOW_MS: "2000" }) },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(emulator.rateLimited(), 0, "the emulator answered no 429");
      assert.equal(lines(new TextDecoder().decode(r.stdout)).length > 0, true);
      assert.equal(emulator.downloadRequests().length, 13);
      // 13 requests at 10 per window cannot all start within one window.
      assert.ok(Date.now() - started >= limit.windowMs, `${Date.now() - started} ms`);
    });
  },
);

test("an error outranks a gone file: exit 1, not 4", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
    const ids = idsOf(emulator);
    emulator.inject({ target: "download", id: ids[0], gone: "plain", times: Infinity });
    emulator.inject({ target: "storage", id: ids[2], corruptBytes: true, times: Infinity });
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /recorded as gone/);
    assert.match(r.stderr, /failed verification/);
  });
});

test("under --follow a gone file is a warning and polling goes on", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
    await withDir("oai-follow-gone-", async (dir) => {
      const ids = idsOf(emulator);
      emulator.inject({ target: "download", id: ids[1], gone: "plain", times: Infinity });
      const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--follow", "--interval", "1s"];
      const r = await runCli([...args, "--state", join(dir, "s.json"), "--log-format", "json"], {
        env: envFor(emulator),
        onSpawn: (child) => {
          // Two polls at least, then the stop a supervisor sends.
          const poll = setInterval(() => {
            const lists = emulator.requests.filter((q) => q.path.endsWith("/logs")).length;
            if (lists >= 2) {
              clearInterval(poll);
              child.kill("SIGTERM");
            }
          }, 50);
        },
        timeoutMs: 30_000,
      });
      assert.ok(r.code === 143 || r.signal === "SIGTERM", r.stderr);
      const events = lines(r.stderr).map((l) => JSON.parse(l));
      assert.equal(events.filter((e) => e.event === "gone").length, 1, r.stderr);
      assert.ok(events.some((e) => e.event === "sleep"), "it went on polling");
    });
  });
});
