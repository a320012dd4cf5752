/**
 * `deno compile`'s binaries get `--allow-env` for a fixed list of variables (scripts/compile.ts):
 * a variable the CLI reads that is missing there makes the binary fail where `deno run -A` works.
 * This test reads every `env.NAME` and `process.env.NAME` in lib/ and checks it is on the list.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ENV_VARS } from "../../scripts/compile.ts";

const LIB = fileURLToPath(new URL("../../lib/", import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found;
}

test("every environment variable lib/ reads is granted to deno compile's binaries", async () => {
  const read = new Set<string>();
  for (const path of await sources(LIB)) {
    const text = await readFile(path, "utf8");
    for (const m of text.matchAll(/\benv(?:\.|\[")([A-Z][A-Z0-9_]+)\b/g)) read.add(m[1]);
    for (const m of text.matchAll(/_ENV\s*=\s*"([A-Z][A-Z0-9_]+)"/g)) read.add(m[1]);
  }
  assert.ok(read.has("COMPLIANCE_API_KEY"), "the scan finds the key's variable");
  const missing = [...read].filter((name) => !ENV_VARS.includes(name)).sort();
  assert.deepEqual(missing, [], `add to ENV_VARS in scripts/compile.ts: ${missing.join(", ")}`);
});
