/**
 * The README's options tables and event types are generated from the tables `--help` is made of
 * (scripts/readme.ts); these tests fail when the README was not regenerated after a change, so
 * the two can never disagree again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { generatedParts, normalizeTable, partsIn, README } from "../scripts/readme.ts";

test("the README's generated parts are what the option tables and route types say", async () => {
  const readme = await readFile(README, "utf8");
  const found = partsIn(readme);
  for (const [name, expected] of Object.entries(generatedParts())) {
    assert.ok(name in found, `README has the generated part ${name}`);
    assert.equal(
      normalizeTable(found[name]),
      normalizeTable(expected),
      `README part ${name} is stale: run \`deno task readme\` then \`deno fmt README.md\``,
    );
  }
});

test("every option of run and list appears in the README with the help text of --help", async () => {
  const { OPTIONS: RUN } = await import("../lib/commands/run.ts");
  const readme = await readFile(README, "utf8");
  for (const [name, spec] of Object.entries(RUN)) {
    if (!spec.help) continue;
    assert.ok(readme.includes(`--${name}`), `README mentions --${name}`);
  }
});
