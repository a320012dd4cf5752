/**
 * Black-box tests of what the seams and the API's reference change for a user: destinations
 * resolved by URL scheme (an unknown one creates nothing), `--output-dir` onto a file refused
 * before any request, `all` meaning the route's own types (a type the key's scope refuses is
 * skipped with a warning), the other route's type answered in one line, and `list` interrupted
 * like a run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { lines, runCli, summaryOf } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, ORG, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

const ORG_FILES = [
  ...hourlyFiles(3, { eventType: "APP_LOG", principal: ORG }),
  ...hourlyFiles(2, { eventType: "COSTS", principal: ORG }),
  ...hourlyFiles(2, { eventType: "APP_AUTH_LOG", principal: ORG }),
];

test("a URL of an unregistered scheme is exit 2 and creates nothing", SLOW, async () => {
  await withDir("oai-scheme-", async (dir) => {
    for (
      const args of [
        ["--output-dir", "nosuch+scheme://bucket/prefix"],
        ["-o", "gopher://example.com/logs"],
        ["--output-dir", "https://example.com/not-a-storage-account"],
        ["--state", "ftp://host/state.json"],
      ]
    ) {
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, ...args], {
        cwd: dir,
        env: { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /:\/\/.*(no destination takes|takes a local file path)/, r.stderr);
      assert.match(r.stderr, /a URL of [a-z0-9+.-]+:\/\/|local file path/, r.stderr);
      assert.deepEqual(await readdir(dir), [], `${args.join(" ")} created nothing`);
    }
  });
});

test("--output-dir naming a regular file is refused before any request", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    await withDir("oai-outdir-", async (dir) => {
      const file = join(dir, "logs");
      await writeFile(file, "not a directory");
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", file], {
        env: envFor(emulator),
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--output-dir .*logs is not a directory/);
      assert.equal(emulator.requests.length, 0, "no request was made");
    });
  });
});

test("'all' on an organization asks for its own types and delivers every file", SLOW, async () => {
  await withEmulator({ files: ORG_FILES }, async (emulator) => {
    const r = await runCli([ORG, "all", "100", AFTER, "--log-format", "json"], {
      env: envFor(emulator),
    });
    assert.equal(r.code, 0, r.stderr);
    const asked = new Set(
      emulator.requests.filter((q) => q.path.endsWith("/logs")).map((q) => q.query.event_type),
    );
    assert.deepEqual([...asked].sort(), ["APP_AUTH_LOG", "APP_LOG", "COSTS"]);
    assert.equal(summaryOf(r).files, ORG_FILES.length);
  });
});

test(
  "with 'all', a type the key's scope refuses is skipped with one warning naming the scope",
  SLOW,
  async () => {
    const scoped = "sk-scoped-key-0123456789abcdef";
    await withEmulator(
      { files: ORG_FILES, scopedKeys: [{ key: scoped, eventTypes: ["APP_LOG", "APP_AUTH_LOG"] }] },
      async (emulator) => {
        const env = envFor(emulator, { COMPLIANCE_API_KEY: scoped });
        const r = await runCli([ORG, "all", "100", AFTER], { env });
        assert.equal(r.code, 0, r.stderr);
        const warnings = lines(r.stderr).filter((l) => /skipping COSTS/.test(l));
        assert.equal(warnings.length, 1, r.stderr);
        assert.match(warnings[0], /chatgpt\.enterprise\.compliance_logs_platform\.costs\.read/);
        const delivered = lines(new TextDecoder().decode(r.stdout)).length;
        assert.ok(delivered > 0, "the other types were delivered");
        // Named explicitly, the same refusal is an error.
        const named = await runCli([ORG, "COSTS", "100", AFTER], { env });
        assert.equal(named.code, 1, named.stderr);
        assert.match(named.stderr, /HTTP error 403/);
      },
    );
  },
);

test(
  "a type of the other route gets one line naming the types that route carries",
  SLOW,
  async () => {
    await withEmulator({ files: ORG_FILES }, async (emulator) => {
      // The quickstart's own example: AUTH_LOG of an org- id.
      const r = await runCli([ORG, "AUTH_LOG", "100", AFTER], { env: envFor(emulator) });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(lines(r.stderr).filter((l) => l.startsWith("error:")).length, 1, r.stderr);
      assert.match(r.stderr, /AUTH_LOG/);
      assert.match(r.stderr, /APP_LOG, APP_AUTH_LOG, COSTS/);
    });
  },
);

test("list interrupted by SIGINT says so and prints its summary, like a run", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(5), latencyMs: 3_000 }, async (emulator) => {
    const r = await runCli(["list", PRINCIPAL, "AUTH_LOG", "--after", AFTER], {
      env: envFor(emulator),
      onSpawn: (child) => setTimeout(() => child.kill("SIGINT"), 1_500),
    });
    // Deno re-raises a handled SIGINT when it exits; Bun exits 130. A shell sees 130 either way.
    assert.ok(r.code === 130 || r.signal === "SIGINT", r.stderr);
    assert.match(r.stderr, /Received SIGINT/);
    assert.match(r.stderr, /Summary: 0 files/);
    assert.match(r.stderr, /error: interrupted by SIGINT/);
  });
});
