/**
 * Time and size limits against hostile servers, black-box: a listing or error body trickled a
 * byte at a time ends at the answer deadline; a gzip bomb listing fails in bounded memory; a file
 * whose listing gives no size stops at the cap; storage that sends gzip objects is verified in
 * whichever form the listing describes; a key echoed in an error body never leaks a fragment.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Emulator, type FileSpec, gzipOf } from "./emulator/mod.ts";
import { type CliOptions, type CliResult, runCli } from "./helpers/cli.ts";
import { assertSameBytes } from "./helpers/compare.ts";
import { AFTER, envFor, expectedStream, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir as withTempDir } from "./helpers/mod.ts";
import { answer, gzipBomb, sendGzip, startHostile, trickle } from "./hostile/bodies.ts";

/** Keys are at least 24 characters of [A-Za-z0-9_-]. */
const KEY = "sk-hostile_Limits-0123456789abcdefghijKLMN";
/** With `--timeout 1`, an API answer's deadline is 5 s (5 x --timeout). */
const FAST = ["--timeout", "1", "--backoff", "0.01"];

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The CLI against a hostile API base. */
function runAgainst(
  apiBase: string,
  extra: string[],
  options: CliOptions = {},
): Promise<CliResult> {
  return runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, ...FAST, ...extra], {
    timeoutMs: 30_000,
    ...options,
    env: { COMPLIANCE_API_KEY: KEY, COMPLIANCE_API_BASE: apiBase, ...options.env },
  });
}

/** A valid empty listing page padded with spaces to `length` bytes (JSON allows them). */
function paddedListing(length: number): string {
  const doc = JSON.stringify({ data: [], has_more: false, last_end_time: null });
  return doc + " ".repeat(Math.max(0, length - doc.length));
}

test(
  "a listing trickled a byte every 100 ms ends with exit 1 at the answer deadline, retried once",
  SLOW,
  async () => {
    // 600 bytes at 100 ms each would take a minute; every byte resets the 1 s idle timeout.
    const server = await startHostile((_req, res) => trickle(res, 200, paddedListing(600), 100));
    try {
      const r = await runAgainst(server.apiBase, ["--retries", "1"]);
      assert.equal(r.code, 1, r.stderr);
      const host = new URL(server.apiBase).host;
      assert.match(r.stderr, new RegExp(`error: ${host} did not finish its answer within 5s`));
      assert.match(r.stderr, /while listing logs/);
      assert.doesNotMatch(r.stderr, /stalled/);
      assert.equal(server.requests, 2, "the deadline is retried like any network failure");
      assert.ok(r.ms >= 9_000 && r.ms < 25_000, `ran ${r.ms} ms`);
    } finally {
      await server.close();
    }
  },
);

test(
  "an error body trickled a byte every 100 ms is cut at the deadline: exit 1",
  SLOW,
  async () => {
    const body = JSON.stringify({ error: { message: "x".repeat(600) } });
    const server = await startHostile((_req, res) => trickle(res, 401, body, 100));
    try {
      const r = await runAgainst(server.apiBase, []);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error: HTTP error 401 while listing logs/m);
      assert.ok(r.ms >= 4_000 && r.ms < 20_000, `ran ${r.ms} ms`);
    } finally {
      await server.close();
    }
  },
);

/**
 * Peak RSS of the CLI in KiB: from `/usr/bin/time -v` when present (into a file: the CLI may
 * leave the shared stderr pipe non-blocking, which can cut time's own report short), else by
 * polling VmHWM, which may miss the last milliseconds.
 */
async function runMeasured(
  apiBase: string,
  extra: string[],
): Promise<{ r: CliResult; peakKiB: number }> {
  if (existsSync("/usr/bin/time")) {
    return await withDir(async (dir) => {
      const report = join(dir, "time.txt");
      const r = await runAgainst(apiBase, extra, {
        wrapper: ["/usr/bin/time", "-v", "-o", report],
      });
      const text = await readFile(report, "utf8");
      const peak = /Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1];
      assert.ok(peak, text);
      return { r, peakKiB: Number(peak) };
    });
  }
  let peakKiB = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const r = await runAgainst(apiBase, extra, {
    onSpawn: (child) => {
      timer = setInterval(async () => {
        try {
          const status = await readFile(`/proc/${child.pid}/status`, "utf8");
          peakKiB = Math.max(peakKiB, Number(/VmHWM:\s*(\d+)/.exec(status)?.[1] ?? 0));
        } catch {
          // Exited.
        }
      }, 20);
    },
  });
  clearInterval(timer);
  return { r, peakKiB };
}

test(
  "a gzip bomb listing (1 MB inflating to 1.1 GB) fails with exit 1 under 300 MB of memory",
  SLOW,
  async () => {
    const bomb = gzipBomb(1100);
    const server = await startHostile((_req, res) => sendGzip(res, bomb.parts));
    try {
      const { r, peakKiB } = await runMeasured(server.apiBase, ["--retries", "2"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /is larger than 32 MiB decoded; stopped reading it/);
      assert.equal(server.requests, 1, "an oversized answer is not asked for again");
      assert.ok(peakKiB > 0 && peakKiB < 300 * 1024, `peak RSS ${peakKiB} KiB`);
    } finally {
      await server.close();
    }
  },
);

test(
  "a key echoed across the 4000-character cut of an error body leaks no fragment",
  SLOW,
  async () => {
    // The key starts 20 characters before the cut: cutting first would keep a 20-character prefix.
    const body = "x".repeat(3980) + KEY + " was refused";
    const server = await startHostile((_req, res) => answer(res, 400, body));
    try {
      const r = await runAgainst(server.apiBase, []);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /HTTP error 400 while listing logs/);
      for (let i = 0; i + 16 <= KEY.length; i++) {
        assert.ok(!r.stderr.includes(KEY.slice(i, i + 16)), `key characters ${i}.. leaked`);
      }
    } finally {
      await server.close();
    }
  },
);

/** Runs `fn` in a fresh temp directory (tests/helpers/mod.ts). */
const withDir = <T>(fn: (dir: string) => Promise<T>) => withTempDir("oai-hostile-", fn);

function runEmulated(emulator: Emulator, extra: string[], env: Record<string, string> = {}) {
  return runCli([PRINCIPAL, "AUTH_LOG", "1", AFTER, ...FAST, ...extra], {
    env: envFor(emulator, env),
    timeoutMs: 30_000,
  });
}

const TWO_FILES: FileSpec[] = [
  { id: "eclf_small", eventType: "AUTH_LOG", endTime: "2026-07-02T00:00:00Z", size: 1500 },
  {
    id: "eclf_unlisted",
    eventType: "AUTH_LOG",
    endTime: "2026-07-02T01:00:00Z",
    size: 40_000,
    advertise: { fileSize: null, fileSha256: null },
  },
];

test(
  "a file the listing gives no size for stops at the cap: exit 1, nothing written, checkpoint before it",
  SLOW,
  async () => {
    await withEmulator({ key: KEY, files: TWO_FILES }, async (emulator) => {
      await withDir(async (dir) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out");
        const r = await runEmulated(emulator, ["--state", state, "--output-dir", out], {
          OAI_COMPLIANCE_MAX_UNLISTED_BYTES: "10000",
        });
        assert.equal(r.code, 1, r.stderr);
        assert.match(
          r.stderr,
          /^error: log file eclf_unlisted is larger than 10000 bytes, .*checkpoint stays before it; to pass this file on purpose, run `oai-compliance-logs state skip .* AUTH_LOG eclf_unlisted --reason TEXT`$/m,
        );
        const written = await readdir(out, { recursive: true });
        assert.ok(written.some((p) => String(p).endsWith("eclf_small.jsonl")), written.join());
        assert.ok(!written.some((p) => String(p).includes("eclf_unlisted")), written.join());
        const cursor = JSON.parse(await readFile(state, "utf8")).cursors.AUTH_LOG;
        assert.ok(Date.parse(cursor.after) < Date.parse("2026-07-02T01:00:00Z"), cursor.after);
        assert.ok(!cursor.seen.includes("eclf_unlisted"));
      });
    });
  },
);

/** Explicit JSON Lines content, so a test can list its gzip object's size and hash. */
function jsonl(tag: string, lines: number): Uint8Array {
  const text = Array.from(
    { length: lines },
    (_, i) =>
      JSON.stringify({ id: `${tag}-${i}`, type: "AUTH_LOG", actor: "user@example.com" }) + "\n",
  ).join("");
  return new TextEncoder().encode(text);
}

test(
  "gzip storage: files listed by decoded or by stored bytes both verify, deliver decoded JSONL, and -v says which",
  SLOW,
  async () => {
    const decodedListed = jsonl("plain", 300);
    const storedListed = jsonl("stored", 200);
    const stored = gzipOf(storedListed);
    const files: FileSpec[] = [
      {
        id: "eclf_gz_decoded",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T00:00:00Z",
        content: decodedListed,
      },
      {
        id: "eclf_gz_stored",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T01:00:00Z",
        content: storedListed,
        advertise: { fileSize: stored.length, fileSha256: sha256(stored) },
      },
    ];
    await withEmulator({ key: KEY, files }, async (emulator) => {
      // The stored-listed file's first GET is cut: an encoded body starts over from byte 0.
      emulator.inject({ target: "storage", id: "eclf_gz_stored", gzip: true, cutAfterBytes: 300 });
      emulator.inject({ target: "storage", gzip: true, times: Infinity });
      const r = await runEmulated(emulator, ["-v"]);
      assert.equal(r.code, 0, r.stderr);
      assertSameBytes(
        r.stdout,
        await expectedStream(emulator, ["eclf_gz_decoded", "eclf_gz_stored"]),
        "stdout",
      );
      assert.match(r.stderr, /eclf_gz_decoded came gzip-encoded; verified its decoded bytes/);
      assert.match(
        r.stderr,
        /eclf_gz_stored came gzip-encoded; verified its stored \(compressed\) bytes/,
      );
      const gets = emulator.requests.filter((q) =>
        q.server === "storage" && q.path === "/files/eclf_gz_stored"
      );
      assert.equal(gets.length, 2);
      assert.equal(gets[1].headers.range, undefined, "no Range into an encoded body");
    });
  },
);

test(
  "gzip storage matching the listing in neither form fails with exit 1, nothing delivered",
  SLOW,
  async () => {
    const files: FileSpec[] = [{
      id: "eclf_gz_bad",
      eventType: "AUTH_LOG",
      endTime: "2026-07-02T00:00:00Z",
      content: jsonl("bad", 100),
      advertise: { fileSha256: "0".repeat(64) },
    }];
    await withEmulator({ key: KEY, files }, async (emulator) => {
      emulator.inject({ target: "storage", gzip: true, times: Infinity });
      const r = await runEmulated(emulator, []);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^error: log file eclf_gz_bad failed verification 3 times: neither its decoded bytes \(sha256 .*\) nor its stored gzip bytes \(.*\) match; nothing was written/m,
      );
      assert.equal(r.stdout.length, 0);
    });
  },
);
