/**
 * The release files in `dist/`: one binary per target in its OS's executable format for its CPU,
 * `SHA256SUMS` matching them, and the host's binary printing the version from `deno.json`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import denoConfig from "../../deno.json" with { type: "json" };
import { DIST_DIR, fileName, hostTarget, TARGETS } from "../../scripts/targets.ts";
import { checkBinary, parseChecksums, sha256File } from "../../scripts/verify-binary.ts";
import { distFor } from "./_dist.ts";

const dist = await distFor(TARGETS);
if (dist.skip) console.error(`release checks skipped: ${dist.skip}`);

/** Far above today's ~90-115 MB: a jump past this means something unintended got bundled. */
const MAX_BYTES = 160e6;

for (const target of TARGETS) {
  test(`${fileName(target)} is a ${target.os} executable for ${target.arch}`, {
    skip: dist.skip,
  }, async () => {
    if (dist.buildError) assert.fail(dist.buildError);
    const bytes = new Uint8Array(await readFile(dist.path(target)));
    assert.deepEqual(checkBinary(target, bytes), []);
    assert.ok(bytes.length < MAX_BYTES, `${bytes.length} bytes`);
    // Windows file systems keep no execute bit to check.
    if (target.os !== "windows" && process.platform !== "win32") {
      assert.ok((await stat(dist.path(target))).mode & 0o100, "not executable");
    }
  });
}

test("SHA256SUMS lists every binary with its digest, in sha256sum -c format", {
  timeout: 120_000,
  skip: dist.skip,
}, async () => {
  if (dist.buildError) assert.fail(dist.buildError);
  const sums = parseChecksums(await readFile(join(DIST_DIR, "SHA256SUMS"), "utf8"));
  for (const target of TARGETS) {
    assert.equal(sums.get(fileName(target)), await sha256File(dist.path(target)), target.name);
  }
});

const host = hostTarget(process.platform, process.arch);

test("the binary for this machine prints the version written in deno.json", {
  skip: dist.skip ??
    (host ? undefined : `no release target for ${process.platform}-${process.arch}`),
}, () => {
  if (dist.buildError) assert.fail(dist.buildError);
  const run = spawnSync(dist.path(host!), ["--version"], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  assert.match(
    run.stdout,
    new RegExp(`^oai-compliance-logs ${denoConfig.version.replaceAll(".", "\\.")}\\b`),
  );
});
