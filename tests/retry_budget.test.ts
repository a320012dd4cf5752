/**
 * One request is tried at most `--retries` + 1 times in all: resolving a download URL runs no
 * retry loop of its own inside the download's, so a download endpoint or a signed URL that
 * answers 503 for ever is asked exactly three times with `--retries 2`, and the run fails.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";
import { SLOW } from "./helpers/mod.ts";
import { type HostileScript, logFile, page, startHostile } from "./hostile/mod.ts";

const WORKSPACE = "ws-0f0e0d0c-demo";
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const AFTER = iso(Date.now() - 7 * DAY);
const FILE = logFile("eclf_1", iso(Date.now() - DAY));
const unavailable = () => ({ status: 503, headers: { "retry-after": "0" }, body: "busy" });

async function runWith(script: HostileScript) {
  const h = await startHostile({ list: () => page([FILE]), ...script });
  try {
    const r = await runCli(
      [WORKSPACE, "AUTH_LOG", "10", AFTER, "--retries", "2", "--backoff", "0.01"],
      { env: h.env(), timeoutMs: 60_000 },
    );
    const resolves = h.requests.filter((q) =>
      q.server === "api" && q.path.endsWith("/logs/eclf_1")
    );
    const gets = h.requests.filter((q) => q.server === "storage");
    return { r, resolves: resolves.length, gets: gets.length };
  } finally {
    await h.close();
  }
}

test(
  "a download endpoint answering 503 for ever is asked retries + 1 times, then exit 1",
  SLOW,
  async () => {
    const { r, resolves, gets } = await runWith({ download: unavailable });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(resolves, 3, r.stderr);
    assert.equal(gets, 0);
    assert.match(r.stderr, /error: HTTP error 503 while downloading log id=eclf_1/);
  },
);

test(
  "a signed URL answering 503 for ever is asked retries + 1 times, then exit 1",
  SLOW,
  async () => {
    const { r, resolves, gets } = await runWith({ storage: unavailable });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(gets, 3, r.stderr);
    assert.equal(resolves, 1, "the signed URL is reused while it has not expired");
    assert.match(r.stderr, /error: HTTP error 503 while downloading log id=eclf_1/);
  },
);
