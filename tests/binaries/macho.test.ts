/**
 * The macOS binaries cannot run here, so they are checked as macOS would check them before
 * running: a thin 64-bit Mach-O executable for the right CPU whose code signature covers the
 * whole file and whose every page hash matches. macOS kills a binary that fails this on launch.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { parseMachO, parseSignature, verifyCodeSignature } from "../../scripts/macho.ts";
import { TARGETS } from "../../scripts/targets.ts";
import { distFor } from "./_dist.ts";

const darwin = TARGETS.filter((t) => t.os === "darwin");
const dist = await distFor(darwin);
if (dist.skip) console.error(`macOS binary checks skipped: ${dist.skip}`);

for (const target of darwin) {
  const cpu = target.arch === "x64" ? "x86_64" : "arm64";

  test(`the ${target.name} binary is a Mach-O for ${cpu} whose page hashes all verify`, {
    skip: dist.skip,
  }, async () => {
    if (dist.buildError) assert.fail(dist.buildError);
    const bytes = new Uint8Array(await readFile(dist.path(target)));
    const report = verifyCodeSignature(bytes, { cpu });
    assert.deepEqual(report.problems, [], `${dist.path(target)} would be killed by macOS`);
    assert.equal(report.cpu, cpu);
    for (const pages of report.pages) assert.equal(pages.matched, pages.total);
  });

  test(`the ${target.name} signature is ad hoc, with no team and no stale CMS signature`, {
    skip: dist.skip,
  }, async () => {
    if (dist.buildError) assert.fail(dist.buildError);
    const bytes = new Uint8Array(await readFile(dist.path(target)));
    const signature = parseSignature(bytes, parseMachO(bytes))!;
    for (const cd of signature.codeDirectories) {
      assert.ok(cd.flags & 0x2, `CodeDirectory flags 0x${cd.flags.toString(16)} lack CS_ADHOC`);
      assert.equal(cd.teamOffset, 0, "an ad-hoc signature names no team");
    }
    // An ad-hoc signature's CMS slot, when present, is the empty wrapper: a Developer ID CMS
    // signature left over from the runtime would no longer match the rewritten CodeDirectory.
    const cms = signature.blobs.find((b) => b.slot === 0x10000);
    if (cms) assert.equal(cms.length, 8, "CMS blob is not the empty ad-hoc wrapper");
  });
}
