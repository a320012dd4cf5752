// `--layout plain|hive` for every --output-dir (the local one here; the bucket's in
// s3_ceph.test.ts), and the s3:// URL's checks, which need no store.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { listTree } from "./helpers/compare.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { withDir } from "./helpers/mod.ts";
import { parseLayout, relativeKey } from "../lib/destinations/layout.ts";
import { keyPrefix } from "../lib/destinations/_object_store.ts";
import { parseS3Url } from "../lib/destinations/s3.ts";

test("layout: plain and hive keys", () => {
  const file = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-02T23:59:59.999999Z" };
  assert.equal(
    relativeKey(file, "AUTH_LOG", { gzip: false, layout: "plain" }),
    "AUTH_LOG/2026-07-02/eclf_1.jsonl",
  );
  assert.equal(
    relativeKey(file, "AUTH_LOG", { gzip: true, layout: "hive" }),
    "event_type=AUTH_LOG/date=2026-07-02/eclf_1.jsonl.gz",
  );
  assert.equal(parseLayout(undefined), "plain");
  assert.throws(() => parseLayout("flat"), /--layout must be plain or hive/);
});

test("layout: s3:// URLs name a bucket and a clean prefix", () => {
  assert.deepEqual(parseS3Url("s3://archive"), { bucket: "archive", prefix: "" });
  assert.deepEqual(parseS3Url("s3://archive//a/b/"), { bucket: "archive", prefix: "a/b/" });
  assert.throws(() => parseS3Url("s3:///nobucket"), /name an S3 bucket/);
  assert.throws(() => keyPrefix("a/../b"), /'\.' or '\.\.'/);
});

test("layout: --layout hive for a local --output-dir", async () => {
  await withDir("hive-", async (dir) => {
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      const out = join(dir, "out");
      const result = await runCli(
        [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--output-dir", out, "--layout", "hive"],
        { env: envFor(emulator) },
      );
      assert.equal(result.code, 0, result.stderr);
      const tree = await listTree(out);
      assert.ok(tree.length >= 3, tree.join(","));
      // (A run manifest, `_manifest/`, is another feature's.)
      for (const path of tree.filter((p) => !p.startsWith("_manifest/"))) {
        assert.match(path, /^event_type=AUTH_LOG\/date=2026-07-02\/eclf_auth_log_000\d\.jsonl$/);
      }
      const bad = await runCli(
        [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--output-dir", out, "--layout", "flat"],
        { env: envFor(emulator) },
      );
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--layout must be plain or hive/);
    });
  });
});
