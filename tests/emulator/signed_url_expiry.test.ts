/**
 * Black-box: the signed URL the API hands out "expires shortly after issuance" (5 minutes, the
 * reference says). A download cut mid-body whose resume comes only after the URL expired must ask
 * the API's download endpoint for a fresh URL and still deliver the file whole. The emulator's
 * TTL is scaled down to a second and the cut is held open past it, so the resume cannot be early.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { assertSameBytes } from "../helpers/compare.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "../helpers/fixtures.ts";
import { SLOW } from "../helpers/mod.ts";

const TTL_MS = 1000;
const CUT_AT = 60_000;

test(
  "a download cut mid-body and resumed after its signed URL expired gets a fresh URL from the API and arrives whole",
  SLOW,
  async () => {
    const files = hourlyFiles(3, { sizes: [1500, 200_000, 700] });
    const big = files[1].id;
    await withEmulator({ files, signedUrlTtlMs: TTL_MS }, async (emulator) => {
      // The cut comes only after the URL has expired, so whatever the tool's backoff, its resume
      // meets an expired URL.
      emulator.inject({
        target: "storage",
        id: big,
        cutAfterBytes: CUT_AT,
        pauseBeforeCutMs: TTL_MS + 500,
      });
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER, "--backoff", "0.01"], {
        env: envFor(emulator),
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assertSameBytes(r.stdout, await expectedStream(emulator, idsOf(emulator)));
      assert.equal(emulator.faultsRemaining(), 0);

      // Two download-endpoint requests for that file: the first URL, and a fresh one after it expired.
      const resolves = emulator.downloadRequests(big);
      assert.equal(resolves.length, 2, JSON.stringify(resolves.map((q) => q.status)));
      assert.deepEqual(resolves.map((q) => q.status), [307, 307]);
      assert.ok(resolves[1].time - resolves[0].time >= TTL_MS);
      // Storage saw the cut download, the expired URL refused, then the resume on the fresh URL.
      const storage = emulator.requests.filter((q) =>
        q.server === "storage" && q.path === `/files/${big}`
      );
      assert.deepEqual(storage.map((q) => q.status), [200, 403, 206]);
      assert.equal(storage[1].query.sig, storage[0].query.sig);
      assert.notEqual(storage[2].query.sig, storage[0].query.sig);
      const resumedFrom = Number(/^bytes=(\d+)-$/.exec(storage[2].headers.range ?? "")?.[1]);
      assert.ok(resumedFrom > 0 && resumedFrom <= CUT_AT, storage[2].headers.range);
      // The other files needed one URL each.
      for (const id of [files[0].id, files[2].id]) {
        assert.equal(emulator.downloadRequests(id).length, 1);
      }
    });
  },
);
