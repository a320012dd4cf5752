/**
 * The download's steps in isolation: what a storage response means (`classify`), and a whole
 * download against a stand-in `FileSource` (resume, expiry, verification in either form).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import {
  classify,
  downloadFile,
  FileNotFoundError,
  type FileSource,
  GONE_TRIES,
  goneReason,
} from "../../lib/download.ts";
import { CliError, GoneFileError, TransientError } from "../../lib/errors.ts";
import type { LogFile } from "../../lib/log_file.ts";
import type { Opened } from "../../lib/http.ts";
import { concat } from "../helpers/cli.ts";

const FILE: LogFile = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-02T00:00:00Z" };
const h = (init: Record<string, string>) => new Headers(init);

test("classify: a 206 resumes from its range start, a bad range or a resumed gzip starts over", () => {
  const at = (range: string, extra: Record<string, string> = {}) =>
    classify(206, h({ "content-range": range, ...extra }), 100, FILE, false);
  assert.deepEqual(at("bytes 60-199/200"), {
    kind: "body",
    skip: 40,
    coding: undefined,
    stated: 200,
  });
  assert.equal(at("bytes 150-199/200").kind, "startOver");
  assert.equal(at("nonsense").kind, "startOver");
  assert.deepEqual(at("bytes 100-199/200", { "content-encoding": "gzip" }), {
    kind: "startOver",
    why: "storage resumed a gzip body",
    waitMs: 0,
  });
  // An encoding the tool cannot decode is not retried: the body step refuses it.
  assert.equal(at("bytes 100-199/200", { "content-encoding": "br" }).kind, "body");
});

test("classify: 416 at the listed end means whole; expiry and other statuses are told apart", () => {
  const sized = { ...FILE, file_size: 100 };
  assert.equal(classify(416, h({}), 100, sized, false).kind, "whole");
  assert.equal(classify(416, h({}), 50, sized, false).kind, "startOver");
  assert.deepEqual(classify(403, h({}), 0, FILE, true), { kind: "expired", status: 403 });
  assert.equal(classify(403, h({}), 0, FILE, false).kind, "refused");
  assert.equal(classify(503, h({}), 0, FILE, false).kind, "refused");
  assert.deepEqual(classify(200, h({ "content-length": "7" }), 3, FILE, false), {
    kind: "body",
    skip: 3,
    coding: undefined,
    stated: 7,
  });
});

/**
 * A storage stand-in answering each request with the next of `answers`; the API's download
 * endpoint fails with the next of `refusals` while any are left, else hands out a fresh URL.
 */
function source(answers: Array<(offset: number) => Response>, refusals: Error[] = []) {
  const offsets: number[] = [];
  const urls: string[] = [];
  let resolved = 0;
  const files: FileSource = {
    resolveDownload: () => {
      resolved++;
      const refusal = refusals.shift();
      if (refusal) return Promise.reject(refusal);
      return Promise.resolve(new URL(`https://storage.example/${resolved}`));
    },
    openFile: (url, offset) => {
      offsets.push(offset);
      urls.push(url.href);
      const response = answers.shift()!(offset);
      const opened: Opened = { response, url, startedAt: performance.now(), abort: () => {} };
      return Promise.resolve(opened);
    },
    isExpiredUrl: (_url, status) => status === 403,
    httpError: (opened) => Promise.resolve(new CliError("api", `HTTP ${opened.response.status}`)),
  };
  return { files, offsets, urls, resolvedCount: () => resolved };
}

/** A spool that keeps its bytes in memory. */
function memorySpool() {
  let chunks: Uint8Array[] = [];
  return {
    write: (chunk: Uint8Array) => Promise.resolve(void chunks.push(chunk.slice())),
    restart: () => Promise.resolve(void (chunks = [])),
    bytes: () => concat(chunks),
  };
}

const settings = {
  policy: { retries: 3, backoffMs: 1, maxWaitMs: 1 },
  timeoutMs: 5_000,
  onRetry: () => {},
};

/** A body that breaks after its first `n` bytes. */
function cutAfter(bytes: Uint8Array, n: number): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(controller) {
      if (sent) return controller.error(new Error("connection reset"));
      sent = true;
      controller.enqueue(bytes.slice(0, n));
    },
  });
}

test("a download cut mid-body resumes from the byte reached and is verified whole", async () => {
  const body = new TextEncoder().encode('{"a":1}\n'.repeat(100));
  const sha = createHash("sha256").update(body).digest("hex");
  const file = { ...FILE, file_size: body.length, file_sha256: sha };
  const { files, offsets } = source([
    () => new Response(cutAfter(body, 300)),
    (offset) =>
      new Response(body.slice(offset), {
        status: 206,
        headers: { "content-range": `bytes ${offset}-${body.length - 1}/${body.length}` },
      }),
  ]);
  const spool = memorySpool();
  const downloaded = await downloadFile(files, file, spool, settings);
  assert.deepEqual(offsets, [0, 300]);
  assert.deepEqual(spool.bytes(), body);
  assert.deepEqual([downloaded.bytes, downloaded.sha256, downloaded.lastByte], [
    body.length,
    sha,
    0x0a,
  ]);
});

test("an expired signed URL is exchanged for a fresh one; a gzip body matches in stored form", async () => {
  const plain = new TextEncoder().encode('{"b":2}\n'.repeat(50));
  const stored = new Uint8Array(gzipSync(plain));
  const file = {
    ...FILE,
    file_size: stored.length,
    file_sha256: createHash("sha256").update(stored).digest("hex"),
  };
  const notes: string[] = [];
  const { files, resolvedCount } = source([
    () => new Response("expired", { status: 403 }),
    () => new Response(stored, { headers: { "content-encoding": "gzip" } }),
  ]);
  const spool = memorySpool();
  const downloaded = await downloadFile(files, file, spool, {
    ...settings,
    onNote: (text) => notes.push(text),
  });
  assert.equal(resolvedCount(), 2);
  assert.deepEqual(spool.bytes(), plain);
  assert.equal(downloaded.matched, "stored");
  assert.match(notes[0], /verified its stored \(compressed\) bytes/);
});

test("a body that never matches its listing is an integrity error after the set attempts", async () => {
  const file = { ...FILE, file_size: 3, file_sha256: "0".repeat(64) };
  const { files, offsets } = source(Array.from({ length: 2 }, () => () => new Response("abc")));
  await assert.rejects(
    downloadFile(files, file, memorySpool(), { ...settings, integrityAttempts: 2 }),
    (error) => error instanceof CliError && error.kind === "integrity",
  );
  assert.deepEqual(offsets, [0, 0]);
});

/** 206 with the rest of `body` from `offset`. */
function rest(body: Uint8Array, offset: number): Response {
  return new Response(body.slice(offset), {
    status: 206,
    headers: { "content-range": `bytes ${offset}-${body.length - 1}/${body.length}` },
  });
}

test("a resume whose signed URL has expired asks the API again and resumes on the fresh URL", async () => {
  const body = new TextEncoder().encode('{"c":3}\n'.repeat(200));
  const sha = createHash("sha256").update(body).digest("hex");
  const file = { ...FILE, file_size: body.length, file_sha256: sha };
  const { files, offsets, urls, resolvedCount } = source([
    () => new Response(cutAfter(body, 500)),
    () => new Response("Request has expired", { status: 403 }),
    (offset) => rest(body, offset),
  ]);
  const spool = memorySpool();
  const downloaded = await downloadFile(files, file, spool, settings);
  assert.equal(resolvedCount(), 2, "the expired URL was exchanged for a fresh one");
  assert.deepEqual(offsets, [0, 500, 500], "the fresh URL resumes from the byte reached");
  assert.deepEqual(urls, [
    "https://storage.example/1",
    "https://storage.example/1",
    "https://storage.example/2",
  ]);
  assert.deepEqual(spool.bytes(), body);
  assert.equal(downloaded.sha256, sha);
});

test("a download endpoint failing for ever is asked retries + 1 times in all, not per loop", async () => {
  const refusals = Array.from({ length: 20 }, () => new TransientError("api", "HTTP error 503"));
  const { files, offsets, resolvedCount } = source([], refusals);
  const notices: string[] = [];
  await assert.rejects(
    downloadFile(files, FILE, memorySpool(), {
      ...settings,
      policy: { retries: 2, backoffMs: 1, maxWaitMs: 1 },
      onRetry: (n) => notices.push(`${n.attempt}/${n.of}`),
    }),
    /HTTP error 503/,
  );
  assert.equal(resolvedCount(), 3);
  assert.deepEqual(offsets, []);
  assert.deepEqual(notices, ["2/3", "3/3"]);
});

const DAY = 24 * 3_600_000;
const NOW = Date.parse("2026-12-02T00:00:00Z");
const notFound = (body: string) =>
  new FileNotFoundError("HTTP error 404 while downloading log id=eclf_1:", { detail: body });

/** A download of a file `daysOld` days old whose API answers 404 with `body` `times` times. */
function downloadAfter404s(daysOld: number, body: string, times: number) {
  const file = { ...FILE, end_time: new Date(NOW - daysOld * DAY).toISOString() };
  const refusals = Array.from({ length: times }, () => notFound(body));
  const { files, resolvedCount } = source([() => new Response("ok")], refusals);
  const waits: number[] = [];
  const result = downloadFile(files, file, memorySpool(), {
    ...settings,
    policy: { retries: 0, backoffMs: 1, maxWaitMs: 1 },
    goneRetryMs: 5,
    now: () => NOW,
    onRetry: (n) => waits.push(n.waitMs),
  });
  return { result, resolvedCount, waits, file };
}

test("a listed file near retention answered 404 three times is gone as expired", async () => {
  const { result, resolvedCount, waits, file } = downloadAfter404s(29.5, "{}", 5);
  await assert.rejects(result, (error) => {
    assert.ok(error instanceof GoneFileError);
    assert.equal(error.reason, "expired");
    assert.deepEqual(error.file, file);
    assert.match(error.message, /eclf_1 \(AUTH_LOG, end_time .*\) has expired: .*404 on 3 tries/);
    return true;
  });
  assert.equal(resolvedCount(), GONE_TRIES);
  assert.deepEqual(waits, [5, 5], "the tries are spaced (even with --retries 0)");
});

test("a recent file the API says is no longer available is gone as unavailable", async () => {
  const body = '{\n  "detail": "The log file was not found or is no longer available"\n}';
  const { result } = downloadAfter404s(3, body, 3);
  await assert.rejects(
    result,
    (error) =>
      error instanceof GoneFileError && error.reason === "unavailable" &&
      /no longer available/.test(error.message) && error.detail === body,
  );
});

test("a recent file answered a plain 404 three times is unexplained, not gone", async () => {
  const { result } = downloadAfter404s(3, '{"error":"not found"}', 3);
  await assert.rejects(
    result,
    (error) =>
      error instanceof GoneFileError && error.reason === "unexplained" &&
      /listed but cannot be downloaded/.test(error.message),
  );
});

test("a 404 that clears up on the next try downloads the file after all", async () => {
  const { result, resolvedCount } = downloadAfter404s(3, "{}", 2);
  assert.equal((await result).bytes, 2);
  assert.equal(resolvedCount(), 3);
});

test("goneReason: old files expired, the API's words unavailable, anything else unexplained", () => {
  const at = (days: number) => ({ ...FILE, end_time: new Date(NOW - days * DAY).toISOString() });
  assert.equal(goneReason(at(31), "", NOW), "expired");
  assert.equal(goneReason(at(29.1), "is no longer available", NOW), "expired");
  assert.equal(goneReason(at(28.9), "", NOW), "unexplained");
  assert.equal(goneReason(at(1), "File is No Longer Available.", NOW), "unavailable");
  assert.equal(goneReason(at(1), '{"detail":"Not Found"}', NOW), "unexplained");
});
