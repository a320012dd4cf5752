/**
 * Download requests are paced to the API's documented limit (50 a minute per endpoint per key),
 * one budget for all concurrent downloads: against a server that records when each request to
 * the download endpoint arrives, no window (shortened by the test-only
 * `OAI_COMPLIANCE_PACE_WINDOW_MS`) ever holds more than 50, yet every file arrives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";
import { SLOW } from "./helpers/mod.ts";
import { logFile, page, redirect, startHostile } from "./hostile/mod.ts";

const WORKSPACE = "ws-0f0e0d0c-demo";
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const LIMIT = 50;
const WINDOW_MS = 4_000;
const COUNT = 60;

test(
  `no more than ${LIMIT} download requests land in any window, and all files arrive`,
  SLOW,
  async () => {
    const start = Date.now() - 2 * DAY;
    const files = Array.from(
      { length: COUNT },
      (_, i) => logFile(`eclf_${String(i).padStart(3, "0")}`, iso(start + i * 60_000)),
    );
    const arrivals: number[] = [];
    const h = await startHostile({
      list: () => page(files),
      download: (r, o) => {
        arrivals.push(performance.now());
        return redirect(`${o.storageOrigin}/files/${r.id}`);
      },
      storage: (r) => ({ body: `{"file":"${r.id}"}\n` }),
    });
    try {
      const r = await runCli(
        [WORKSPACE, "AUTH_LOG", "100", iso(start - DAY), "--concurrency", "8"],
        { env: h.env({ OAI_COMPLIANCE_PACE_WINDOW_MS: String(WINDOW_MS) }), timeoutMs: 90_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const lines = new TextDecoder().decode(r.stdout).trim().split("\n");
      assert.equal(lines.length, COUNT);
      assert.equal(arrivals.length, COUNT);
      arrivals.sort((a, b) => a - b);
      for (let i = 0; i + LIMIT < arrivals.length; i++) {
        const span = arrivals[i + LIMIT] - arrivals[i];
        assert.ok(span >= WINDOW_MS, `requests ${i} and ${i + LIMIT} arrived ${span} ms apart`);
      }
    } finally {
      await h.close();
    }
  },
);
