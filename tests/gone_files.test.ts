/**
 * Listed files the API no longer has, black-box against the emulator (its `gone` download fault):
 * an expired one is recorded as gone, every other file is delivered, the run exits 4, the next run
 * exits 0 without asking for it, and `state show` lists it; three unavailable files in a row that
 * are not near retention trip the breaker (exit 1, checkpoint before them).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli, summaryOf } from "./helpers/cli.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

/** The tries of a 404 a few milliseconds apart instead of 15 s (a test-only variable). */
const FAST_GONE = { OAI_COMPLIANCE_GONE_RETRY_MS: "5" };

const downloadsOf = (emulator: { requests: { server: string; path: string }[] }, id: string) =>
  emulator.requests.filter((q) => q.server === "api" && q.path.endsWith(`/${id}`)).length;

test(
  "an expired file is recorded as gone: the others are delivered, exit 4, the next run exits 0",
  SLOW,
  async () => {
    // The files end in July 2026: far older than the API's 30 days, so a 404 means expired.
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir("oai-gone-cli-", async (dir) => {
        const state = join(dir, "s.json");
        const ids = idsOf(emulator);
        emulator.inject({ target: "download", id: ids[1], gone: "plain", times: Infinity });
        const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--state", state];
        const env = envFor(emulator, FAST_GONE);
        const first = await runCli([...args, "--log-format", "json"], { env, timeoutMs: 60_000 });
        assert.equal(first.code, 4, first.stderr);
        assert.deepEqual(first.stdout, await expectedStream(emulator, [ids[0], ids[2], ids[3]]));
        const summary = summaryOf(first);
        assert.equal(summary.gone, 1, first.stderr);
        assert.equal(summary.status, "incomplete");
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.deepEqual(
          saved.gone.AUTH_LOG.map((g: { id: string; reason: string }) => [g.id, g.reason]),
          [[ids[1], "expired"]],
        );
        assert.equal(
          Date.parse(saved.cursors.AUTH_LOG.after),
          Date.parse(emulator.files[3].endTime),
        );

        const asked = downloadsOf(emulator, ids[1]);
        const again = await runCli(args, { env, timeoutMs: 60_000 });
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.stdout.length, 0);
        assert.equal(downloadsOf(emulator, ids[1]), asked, "the gone file is not asked for again");

        const show = await runCli(["state", "show", state]);
        assert.match(
          new TextDecoder().decode(show.stdout),
          new RegExp(`^ +gone: ${ids[1]} \\(end_time \\S+, expired, found \\S+\\)$`, "m"),
        );
      });
    });
  },
);

test(
  "three unavailable files in a row not near retention trip the breaker: exit 1, checkpoint before",
  SLOW,
  async () => {
    // Recent files: a 404 saying "no longer available" is not how they expire.
    const start = new Date(Date.now() - 6 * 3_600_000).toISOString();
    await withEmulator({ files: hourlyFiles(5, { start }) }, async (emulator) => {
      await withDir("oai-gone-cli-", async (dir) => {
        const state = join(dir, "s.json");
        const ids = idsOf(emulator);
        for (const id of ids.slice(1, 4)) {
          emulator.inject({ target: "download", id, gone: "unavailable", times: Infinity });
        }
        const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", "1d", "--state", state], {
          env: envFor(emulator, FAST_GONE),
          timeoutMs: 60_000,
        });
        assert.equal(r.code, 1, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`3 AUTH_LOG files in a row .*${ids.slice(1, 4).join(", ")}`),
        );
        assert.match(r.stderr, new RegExp(`checkpoint stays before ${ids[1]}`));
        assert.deepEqual(r.stdout, await expectedStream(emulator, [ids[0]]));
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.deepEqual(saved.gone, {}, "none recorded as gone");
        assert.deepEqual(saved.cursors.AUTH_LOG.seen, [ids[0]]);
      });
    });
  },
);

test(
  "an unexplained 404 of a recent file fails the run naming state skip, checkpoint before it",
  SLOW,
  async () => {
    const start = new Date(Date.now() - 6 * 3_600_000).toISOString();
    await withEmulator({ files: hourlyFiles(3, { start }) }, async (emulator) => {
      await withDir("oai-gone-cli-", async (dir) => {
        const state = join(dir, "s.json");
        const ids = idsOf(emulator);
        emulator.inject({ target: "download", id: ids[1], gone: "plain", times: Infinity });
        const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", "1d", "--state", state], {
          env: envFor(emulator, FAST_GONE),
          timeoutMs: 60_000,
        });
        assert.equal(r.code, 1, r.stderr);
        assert.ok(
          r.stderr.includes(
            `oai-compliance-logs state skip ${state} AUTH_LOG ${ids[1]} --reason TEXT`,
          ),
          r.stderr,
        );
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.deepEqual(saved.cursors.AUTH_LOG.seen, [ids[0]]);
        assert.deepEqual(saved.gone, {});
      });
    });
  },
);
