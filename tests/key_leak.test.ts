/**
 * The key never leaks: under every fault the reliability tests inject, and under the errors that
 * end a run, the Compliance API key appears nowhere the tool writes: not on stdout, not on stderr
 * (plain or JSON, normal or verbose), not in the state file, its lock, the outputs, or any temp or
 * spool file seen while the run is going, and never in a request to the storage host.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Emulator, EmulatorOptions, Fault, FileSpec } from "./emulator/mod.ts";
import { runCli } from "./helpers/cli.ts";
import { readTree } from "./helpers/compare.ts";
import { AFTER, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW } from "./helpers/mod.ts";

/** Bun's default of 5 s per test is too short on a busy 2-core CI machine or an emulated CPU. */

const KEY = "sk-compliance-Zq8LEAKCHECKx7f3a9c2e5b41d";
/** Also caught when only part of the key is printed (a truncated or masked echo). */
const KEY_PARTS = [KEY, KEY.slice(14, 30)];
const FILES: FileSpec[] = hourlyFiles(8, { sizes: [1500, 0, 120_000, 333] });
const BIG = FILES[2].id!;

interface Case {
  name: string;
  faults?: Fault[];
  emulator?: EmulatorOptions;
  files?: FileSpec[];
  /** Expected exit code (default 0). */
  code?: number;
}

const CASES: Case[] = [
  { name: "no fault" },
  {
    name: "429 with Retry-After in seconds",
    faults: [{ target: "list", status: 429, headers: { "retry-after": "0" } }],
  },
  {
    name: "429 with Retry-After as an HTTP date",
    faults: [{
      target: "list",
      status: 429,
      headers: { "retry-after": new Date(Date.now() - 5000).toUTCString() },
    }],
  },
  {
    name: "a burst of 5xx on list, download and storage",
    faults: [500, 502, 503, 504].flatMap((status) => [
      { target: "list" as const, status },
      { target: "download" as const, id: BIG, status },
      { target: "storage" as const, id: BIG, status },
    ]),
  },
  { name: "a reset mid-body", faults: [{ target: "storage", id: BIG, cutAfterBytes: 50_000 }] },
  { name: "a listing cut mid-body", faults: [{ target: "list", cutAfterBytes: 30 }] },
  {
    name: "a stall after the headers",
    faults: [{ target: "storage", id: BIG, stallAfterBytes: 0 }],
  },
  {
    name: "a server that ignores Range",
    faults: [
      { target: "storage", id: BIG, cutAfterBytes: 60_000 },
      { target: "storage", id: BIG, ignoreRange: true },
    ],
  },
  { name: "an expired signed URL", faults: [{ target: "storage", id: BIG, expireUrl: true }] },
  {
    name: "an already expired signed URL",
    faults: [{ target: "download", id: BIG, expireUrl: true }],
  },
  { name: "corrupted bytes", faults: [{ target: "storage", id: BIG, corruptBytes: true }] },
  {
    name: "a persistently wrong hash",
    files: FILES.map((f) => f.id === BIG ? { ...f, advertise: { fileSha256: "0".repeat(64) } } : f),
    code: 1,
  },
  { name: "a duplicate id across pages", emulator: { inclusiveAfter: true } },
  {
    name: "a cursor that does not advance",
    faults: [{ target: "list", repeatCursor: true }],
    code: 1,
  },
  {
    name: "a cursor that moves backwards",
    faults: [{ target: "list", backwardsCursor: true }],
    code: 1,
  },
  {
    name: "an empty page with an advanced cursor",
    faults: [{ target: "list", emptyPageAdvance: true }],
  },
  {
    name: "a list answer of two JSON documents",
    faults: [{ target: "list", multiDocument: true }],
  },
  ...[400, 403, 404, 422].map((status) => ({
    name: `HTTP ${status} from the API`,
    faults: [{ target: "list" as const, status }],
    code: 1,
  })),
  {
    name: "a 401 whose body echoes the key",
    faults: [{
      target: "list",
      status: 401,
      body: JSON.stringify({
        error: { message: `Incorrect API key provided: ${KEY}.`, code: "invalid_api_key" },
      }),
    }],
    code: 1,
  },
  {
    name: "a storage error whose body echoes the key",
    faults: [{
      target: "storage",
      id: BIG,
      status: 400,
      body:
        `<Error><Code>InvalidArgument</Code><Message>Authorization: Bearer ${KEY}</Message></Error>`,
    }],
    code: 1,
  },
  {
    name: "retries running out",
    faults: [{ target: "list", status: 503, times: Infinity }],
    code: 1,
  },
];

/** Which sink and which logging each case uses, in turn, so all of them meet the faults. */
const VARIANTS = [
  { name: "--output-dir, plain log", args: (dir: string) => ["--output-dir", join(dir, "out")] },
  { name: "stdout, verbose", args: () => ["-v"] },
  {
    name: "-o, JSON log",
    args: (dir: string) => ["-o", join(dir, "out.jsonl"), "--log-format", "json"],
  },
  {
    name: "--output-dir, verbose JSON log",
    args: (dir: string) => ["--output-dir", join(dir, "out"), "-v", "--log-format", "json"],
  },
];

function leaked(text: string): string | undefined {
  return KEY_PARTS.find((part) => text.includes(part));
}

CASES.forEach((c, i) => {
  const variant = VARIANTS[i % VARIANTS.length];
  test(
    `the key is in no output, log line or file under ${c.name} (${variant.name})`,
    SLOW,
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "oai-key-"));
      try {
        const spool = join(dir, "tmp");
        await mkdir(spool);
        const options = { files: c.files ?? FILES, key: KEY, ...c.emulator };
        await withEmulator(options, async (emulator: Emulator) => {
          for (const fault of c.faults ?? []) emulator.inject(fault);
          // Everything the run writes, looked at while it runs too: lock, temps, spools.
          const seen = new Map<string, string>();
          let watching = true;
          const watch = (async () => {
            while (watching) {
              for (const [path, bytes] of await readTree(dir)) {
                const found = leaked(new TextDecoder().decode(bytes));
                if (found) seen.set(path, found);
              }
              await new Promise((done) => setTimeout(done, 5));
            }
          })();
          const r = await runCli(
            [
              PRINCIPAL,
              "AUTH_LOG",
              "3",
              AFTER,
              "--state",
              join(dir, "state.json"),
              "--backoff",
              "0.01",
              "--timeout",
              "1",
              // A download's API request and storage GETs share one budget: 4 + 4 faults.
              "--retries",
              "8",
              ...variant.args(dir),
            ],
            {
              env: {
                COMPLIANCE_API_KEY: KEY,
                COMPLIANCE_API_BASE: emulator.apiBase,
                TMPDIR: spool,
                OAI_COMPLIANCE_DEBUG: "1",
              },
              timeoutMs: 30_000,
            },
          );
          watching = false;
          await watch;
          assert.equal(r.code, c.code ?? 0, r.stderr);
          assert.equal(leaked(new TextDecoder().decode(r.stdout)), undefined, "stdout");
          assert.equal(leaked(r.stderr), undefined, `stderr:\n${r.stderr}`);
          for (const [path, bytes] of await readTree(dir)) {
            assert.equal(leaked(new TextDecoder().decode(bytes)), undefined, path);
          }
          assert.deepEqual([...seen.keys()], [], "files seen during the run");
          for (const q of emulator.requests.filter((q) => q.server === "storage")) {
            assert.equal(leaked(JSON.stringify(q)), undefined, `storage request ${q.path}`);
          }
          // The key did reach the API, so the scan above would have seen it had it been copied.
          assert.ok(emulator.requests.some((q) => q.headers.authorization === `Bearer ${KEY}`));
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
