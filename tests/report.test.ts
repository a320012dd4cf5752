/**
 * The HTML evidence report: self-contained (nothing to fetch, no script), the verdict first,
 * special characters escaped; and in a real browser (headless Chromium, when installed: Debian
 * `chromium`), a demo archive's report renders to PNG and PDF without console errors, its DOM
 * holds the verdict and the figures, and a damaged archive's report shows its problem rows
 * before anything else but the verdict. The browser test runs under Deno only (it is slow).
 *
 * `OAI_VERIFY_REPORT_PNG=docs/verify-report.png` also keeps the clean report's picture (and
 * `...-damaged.png` beside it), as the docs show it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { runCli } from "./helpers/cli.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { demoDataset, startEmulator } from "./emulator/mod.ts";
import { findChromium, renderWith } from "./servers/chromium.ts";
import { renderHtml } from "../lib/verify/html.ts";
import type { VerifyReport } from "../lib/verify/model.ts";

const DEMO_PRINCIPAL = "ws-0f0e0d0c-demo";

function sampleReport(intact: boolean): VerifyReport {
  const problem = {
    kind: "altered" as const,
    severity: "problem" as const,
    message: "AUTH_LOG/2026-07-02/<script>x</script>.jsonl: SHA-256 differs",
    eventType: "AUTH_LOG",
  };
  return {
    tool: { name: "oai-compliance-logs", version: "9.9.9" },
    command: "oai-compliance-logs verify logs --report r.html",
    archive: "logs",
    verifiedAt: "2026-07-03T00:00:00.000Z",
    intact,
    verdict: intact ? "Intact: all 2 files match." : "NOT intact: 1 problem found.",
    principals: ["ws-1"],
    period: { from: "2026-07-01T00:00:00Z", to: "2026-07-02T12:00:00Z" },
    manifests: 2,
    againstApi: false,
    types: [{
      eventType: "AUTH_LOG",
      files: 2,
      bytes: 2048,
      events: 17,
      firstEndTime: "2026-07-02T00:00:00Z",
      lastEndTime: "2026-07-02T01:00:00Z",
      verified: intact ? 2 : 1,
      problems: intact ? 0 : 1,
      covered: [{ from: "2026-07-01T00:00:00Z", to: "2026-07-02T12:00:00Z" }],
      holes: [],
      gone: [],
      damaged: intact ? [] : ["2026-07-02T00:00:00Z"],
      archivedHours: { "2026-07-02T00": 1, "2026-07-02T01": 1 },
    }],
    chains: [{ job: "ws-1/AUTH_LOG", manifests: 2, head: "ab".repeat(32), signature: "unsigned" }],
    findings: intact ? [] : [problem],
    counts: { problem: intact ? 0 : 1, explained: 0, info: 0 },
  };
}

test("the report is one self-contained page: no script, nothing fetched, verdict first", () => {
  for (const intact of [true, false]) {
    const html = renderHtml(sampleReport(intact));
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\((?!#)/i);
    assert.doesNotMatch(html, /(src|href)=/i);
    assert.doesNotMatch(html, /https?:\/\//);
    const body = html.slice(html.indexOf("<body>") + "<body>".length).trimStart();
    assert.match(body, /^<h1 class="verdict/);
    assert.match(html, /<svg class="timeline"/);
    assert.match(html, /9\.9\.9/);
    assert.match(html, /oai-compliance-logs verify logs --report r\.html/);
  }
  const damaged = renderHtml(sampleReport(false));
  assert.match(damaged, /&lt;script&gt;x&lt;\/script&gt;/, "messages are escaped");
  assert.ok(
    damaged.indexOf('id="problems"') < damaged.indexOf('id="types"'),
    "problems come right after the verdict",
  );
});

test(
  "headless Chromium renders a demo archive's report: PNG, PDF, DOM, no console errors",
  { ...SLOW, skip: skipBrowser() },
  async () => {
    const browser = findChromium()!;
    const emulator = await startEmulator({ files: demoDataset() });
    try {
      await withDir("oai-report-", async (dir) => {
        // The checker itself: a page that logs an error is caught.
        const bad = join(dir, "bad.html");
        await writeFile(bad, '<html><body><script>console.error("boom")</script></body></html>');
        const caught = await renderWith(browser, bad, ["--dump-dom"]);
        assert.equal(caught.consoleLines.length, 1, caught.stderr);

        const out = join(dir, "logs");
        const env = { COMPLIANCE_API_KEY: emulator.key, COMPLIANCE_API_BASE: emulator.apiBase };
        const base = [
          DEMO_PRINCIPAL,
          "AUTH_LOG,AUDIT_LOG",
          "--after",
          "3d",
          "--output-dir",
          out,
          "--gzip",
          "--state",
          join(dir, "s.json"),
          "--max-downloads-per-minute",
          "5000",
        ];
        const dayAgo = new Date(Date.now() - 24 * 3_600_000).toISOString();
        for (const extra of [["--before", dayAgo], []]) {
          const run = await runCli([...base, ...extra], { env, timeoutMs: 120_000 });
          assert.equal(run.code, 0, run.stderr);
        }
        const files = emulator.files.filter((f) =>
          f.principal === DEMO_PRINCIPAL && ["AUTH_LOG", "AUDIT_LOG"].includes(f.eventType)
        ).length;

        const clean = join(dir, "clean.html");
        const verified = await runCli(["verify", "logs", "--report", clean], {
          cwd: dir,
          timeoutMs: 120_000,
        });
        assert.equal(verified.code, 0, verified.stderr);
        const png = join(dir, "clean.png");
        const shot = await renderWith(browser, clean, [`--screenshot=${png}`]);
        assert.deepEqual(shot.consoleLines, [], shot.stderr);
        assert.deepEqual([...(await readFile(png)).subarray(1, 4)], [0x50, 0x4e, 0x47]); // PNG
        const pdf = join(dir, "clean.pdf");
        const printed = await renderWith(browser, clean, [
          `--print-to-pdf=${pdf}`,
          "--no-pdf-header-footer",
        ]);
        assert.deepEqual(printed.consoleLines, [], printed.stderr);
        assert.equal(new TextDecoder().decode((await readFile(pdf)).subarray(0, 5)), "%PDF-");
        const dom = await renderWith(browser, clean, ["--dump-dom"]);
        assert.deepEqual(dom.consoleLines, [], dom.stderr);
        assert.match(
          dom.stdout,
          new RegExp(`<h1 class="verdict intact"[^>]*>.*Intact: all ${files} files`),
        );
        assert.match(dom.stdout, /<td>AUTH_LOG<\/td><td class="n">\d+<\/td>/);
        assert.match(dom.stdout, /<svg class="timeline"/);
        const keep = process.env.OAI_VERIFY_REPORT_PNG;
        if (keep) {
          await copyFile(png, keep);
        }

        // Damage it: one altered file, one deleted, one stray.
        const report = JSON.parse(new TextDecoder().decode(
          (await runCli(["verify", out, "--json", "--quiet"])).stdout,
        )) as VerifyReport;
        assert.equal(report.intact, true);
        const manifest = (await readFile(
          join(
            out,
            "_manifest",
            (await import("node:fs")).readdirSync(join(out, "_manifest"))
              .filter((n) =>
                n.endsWith(".jsonl")
              ).sort()[0],
          ),
          "utf8",
        )).trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.type === "file");
        await writeFile(join(out, manifest[0].path), "not what was stored\n");
        await rm(join(out, manifest[1].path));
        await writeFile(join(out, "AUTH_LOG", "stray.jsonl"), "{}\n");
        const damaged = join(dir, "damaged.html");
        const failed = await runCli(["verify", "logs", "--report", damaged], {
          cwd: dir,
          timeoutMs: 120_000,
        });
        assert.equal(failed.code, 3, failed.stderr);
        const damagedDom = await renderWith(browser, damaged, ["--dump-dom"]);
        assert.deepEqual(damagedDom.consoleLines, [], damagedDom.stderr);
        const rows = damagedDom.stdout.match(/<tr class="problem">/g) ?? [];
        assert.equal(rows.length, 3, damagedDom.stdout);
        assert.match(damagedDom.stdout, /<h1 class="verdict broken"[^>]*>.*NOT intact: 3 problems/);
        assert.ok(
          damagedDom.stdout.indexOf('class="problem"') < damagedDom.stdout.indexOf('id="types"'),
        );
        const damagedPng = join(dir, "damaged.png");
        const damagedShot = await renderWith(browser, damaged, [`--screenshot=${damagedPng}`]);
        assert.deepEqual(damagedShot.consoleLines, []);
        if (keep) await copyFile(damagedPng, keep.replace(/\.png$/, "-damaged.png"));
      });
    } finally {
      await emulator.close();
    }
  },
);

/** Skipped without a browser, and under Bun (one runtime is enough for a slow test). */
function skipBrowser(): string | false {
  if (!("Deno" in globalThis)) return "the browser test runs under Deno only";
  if (!findChromium()) return "no chromium on PATH (apt-get install chromium)";
  return false;
}
