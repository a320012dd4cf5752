/**
 * `verify`'s `duplicate_event` finding: an `event_id` stored in two files (or twice in one) is
 * reported with the ids and the files as information, and verify still exits 0; lines without
 * an `event_id`, or not JSON at all, are not events and do not trip it. The id reader is also
 * tested alone, with every chunk boundary a network read could put in a line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { DuplicateEvents, EventIdScanner } from "../lib/verify/duplicate_events.ts";
import type { Finding, VerifyReport } from "../lib/verify/model.ts";

const encoder = new TextEncoder();

function record(id: string, extra = ""): string {
  return JSON.stringify({
    event_id: id,
    type: "AUTH_LOG",
    timestamp: "2026-07-01T23:08:40.650461Z",
    principal: { id: PRINCIPAL, type: "CHATGPT_WORKSPACE" },
    note: extra,
  });
}

/** The ids `scanner` reads from `text` cut into pieces of `size` bytes. */
function idsIn(text: string, size: number): string[] {
  const ids: string[] = [];
  const decoder = new TextDecoder();
  const scanner = new EventIdScanner((bytes, start, end) => {
    ids.push(decoder.decode(bytes.subarray(start, end)));
  });
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length; at += size) scanner.push(bytes.slice(at, at + size));
  scanner.end();
  return ids;
}

test("the id reader takes each line's first event_id, wherever a chunk boundary falls", () => {
  const text = [
    record("evt-a"),
    "not json at all",
    "",
    '{"type":"AUTH_LOG","no_id":true}',
    '{ "event_id" : "evt-\\u0062" , "x": 1}\r',
    record("evt-c", 'a value that says "event_id":"evt-not-this" inside'),
    '{"event_id": 42}',
    '{"event_id":"' + "x".repeat(300) + '"}',
    record("evt-d"),
  ].join("\n");
  const expected = ["evt-a", "evt-b", "evt-c", "evt-d"];
  for (const size of [1, 2, 3, 5, 7, 9, 10, 11, 13, 64, 100, 1 << 20]) {
    assert.deepEqual(idsIn(text, size), expected, `chunks of ${size} bytes`);
  }
  // A long line before the id's key, cut many times.
  const long = `{"a":"${"y".repeat(5000)}","event_id":"evt-late"}\n${record("evt-e")}`;
  for (const size of [7, 4096, 4999, 5006]) {
    assert.deepEqual(idsIn(long, size), ["evt-late", "evt-e"], `chunks of ${size} bytes`);
  }
});

test("the second pass confirms exact ids and groups them by the files holding them", async () => {
  const files: Record<string, string> = {
    "AUTH_LOG/2026-07-02/a.jsonl": [record("evt-1"), record("evt-2"), record("evt-3")].join("\n"),
    "AUTH_LOG/2026-07-02/b.jsonl": [record("evt-2"), record("evt-3"), record("evt-4")].join("\n"),
    "AUTH_LOG/2026-07-02/c.jsonl": [record("evt-5"), "garbage", record("evt-5")].join("\n"),
    "AUDIT_LOG/2026-07-02/d.jsonl": record("evt-1"), // another type: not a duplicate
  };
  const duplicates = new DuplicateEvents();
  for (const [path, text] of Object.entries(files)) {
    const scan = duplicates.file(path.split("/")[0], path);
    scan.push(encoder.encode(text));
    scan.end();
  }
  const read = async function* (path: string) {
    yield encoder.encode(files[path]);
  };
  const findings = await duplicates.findings(read);
  const summary = findings.map((f) => ({ ids: f.eventIds, paths: f.paths, severity: f.severity }))
    .sort((a, b) => a.ids![0].localeCompare(b.ids![0]));
  assert.deepEqual(summary, [
    {
      ids: ["evt-2", "evt-3"],
      paths: ["AUTH_LOG/2026-07-02/a.jsonl", "AUTH_LOG/2026-07-02/b.jsonl"],
      severity: "info",
    },
    { ids: ["evt-5"], paths: ["AUTH_LOG/2026-07-02/c.jsonl"], severity: "info" },
  ]);
  assert.ok(findings.every((f) => f.kind === "duplicate_event"));
  assert.match(
    findings.find((f) => f.id === "evt-5")!.message,
    /evt-5 appears 2 times in .*c\.jsonl/,
  );
});

const duplicateOf = (report: VerifyReport): Finding[] =>
  report.findings.filter((f) => f.kind === "duplicate_event");

test(
  "verify: an event id in two stored files is reported with the ids and files, exit 0",
  SLOW,
  async () => {
    const shared = "5d6f1c2e-0000-4000-8000-00000000dup1";
    const files = [
      {
        id: "eclf_dup_0001",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T01:00:00Z",
        content: [record("evt-only-in-first"), record(shared)].join("\n") + "\n",
      },
      {
        id: "eclf_dup_0002",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T02:00:00Z",
        content: [record(shared), record("evt-only-in-second")].join("\n") + "\n",
      },
      {
        // No event_id, blank and non-JSON lines: not events, no crash.
        id: "eclf_dup_0003",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T03:00:00Z",
        content: '{"type":"AUTH_LOG"}\n\nthis is not json\n{"event_id":\n',
      },
    ];
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-verify-dup-", async (dir) => {
        for (const gzip of [false, true]) {
          const out = join(dir, gzip ? "gz" : "plain");
          const run = await runCli([
            PRINCIPAL,
            "AUTH_LOG",
            "10",
            AFTER,
            "--output-dir",
            out,
            ...(gzip ? ["--gzip"] : []),
          ], { env: envFor(emulator) });
          assert.equal(run.code, 0, run.stderr);
          const report = join(dir, `report-${gzip}.html`);
          const result = await runCli(["verify", out, "--json", "--report", report], {
            timeoutMs: 60_000,
          });
          assert.equal(result.code, 0, result.stderr);
          const json: VerifyReport = JSON.parse(new TextDecoder().decode(result.stdout));
          assert.equal(json.intact, true);
          const found = duplicateOf(json);
          assert.equal(found.length, 1, JSON.stringify(json.findings));
          const suffix = gzip ? ".jsonl.gz" : ".jsonl";
          assert.deepEqual(found[0].eventIds, [shared]);
          assert.deepEqual(found[0].paths, [
            `AUTH_LOG/2026-07-02/eclf_dup_0001${suffix}`,
            `AUTH_LOG/2026-07-02/eclf_dup_0002${suffix}`,
          ]);
          assert.equal(found[0].severity, "info");
          assert.match(result.stderr, new RegExp(`^info: duplicate_event: .*${shared}`, "m"));
          assert.match(result.stderr, /^Intact: /m);
          const html = await readFile(report, "utf8");
          assert.match(html, new RegExp(`<tr class="info"><td>duplicate event</td>.*${shared}`));
        }
      });
    });
  },
);

test("verify: distinct event ids in every file report no duplicate", SLOW, async () => {
  const files = [1, 2, 3].map((n) => ({
    id: `eclf_uniq_000${n}`,
    eventType: "AUTH_LOG",
    endTime: `2026-07-02T0${n}:00:00Z`,
    size: 20_000,
  }));
  await withEmulator({ files }, async (emulator) => {
    await withDir("oai-verify-uniq-", async (dir) => {
      const out = join(dir, "logs");
      const run = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out], {
        env: envFor(emulator),
      });
      assert.equal(run.code, 0, run.stderr);
      const result = await runCli(["verify", out, "--json"], { timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      const json: VerifyReport = JSON.parse(new TextDecoder().decode(result.stdout));
      assert.deepEqual(duplicateOf(json), []);
    });
  });
});

test("many distinct ids (the table grows) and one repeat: exactly that repeat", async () => {
  const duplicates = new DuplicateEvents();
  const texts: string[] = [];
  for (let file = 0; file < 10; file++) {
    const lines = Array.from({ length: 5000 }, (_, i) => record(`evt-${file}-${i}`));
    if (file === 9) lines.push(record("evt-3-1234"));
    texts.push(lines.join("\n") + "\n");
    const scan = duplicates.file("AUTH_LOG", `f${file}`);
    scan.push(encoder.encode(texts[file]));
    scan.end();
  }
  const findings = await duplicates.findings(async function* (path) {
    yield encoder.encode(texts[Number(path.slice(1))]);
  });
  assert.deepEqual(findings.map((f) => [f.eventIds, f.paths]), [[["evt-3-1234"], ["f3", "f9"]]]);
});
