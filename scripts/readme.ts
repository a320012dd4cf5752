/**
 * Writes the README's generated parts from the code they describe: the options tables of `run`
 * and `list` (from the same tables as `--help`) and the event types of each route. Each part sits
 * between `<!-- generated:NAME -->` and `<!-- /generated -->`; tests/readme_help.test.ts fails
 * when one differs from what this would write.
 *
 * Usage: deno task readme   (then `deno fmt README.md` aligns the tables)
 */
import { readFile, writeFile } from "node:fs/promises";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { OPTIONS as LIST_OPTIONS } from "../lib/commands/list.ts";
import { OPTIONS as RUN_OPTIONS } from "../lib/commands/run.ts";
import { ORGANIZATION_EVENT_TYPES, WORKSPACE_EVENT_TYPES } from "../lib/event_types.ts";
import { optionMarkdown } from "../lib/options.ts";

export const README = fileURLToPath(new URL("../README.md", import.meta.url));

const TABLE_HEAD = "| option | meaning |\n| --- | --- |\n";
const code = (types: readonly string[]) => types.map((t) => `\`${t}\``).join(", ");

/** Each generated part of the README, by name. */
export function generatedParts(): Record<string, string> {
  return {
    "run-options": TABLE_HEAD + optionMarkdown(RUN_OPTIONS) +
      "\n| `--list` | the `list` command: one JSON line per log file, without downloading; it " +
      "takes only the `list` options below |",
    "list-options": TABLE_HEAD + optionMarkdown(LIST_OPTIONS),
    "event-types": "| route | event types (`all`) |\n| --- | --- |\n" +
      `| workspaces (\`/workspaces/{uuid}/logs\`) | ${code(WORKSPACE_EVENT_TYPES)} |\n` +
      `| organizations (\`/organizations/org-.../logs\`) | ${code(ORGANIZATION_EVENT_TYPES)} |`,
  };
}

const PART = /<!-- generated:([a-z-]+) -->\n([\s\S]*?)<!-- \/generated -->/g;

/** The README's generated parts as they stand, by name. */
export function partsIn(readme: string): Record<string, string> {
  return Object.fromEntries([...readme.matchAll(PART)].map((m) => [m[1], m[2].trim()]));
}

/** A Markdown table with its cells trimmed and its alignment dashes shortened: as deno fmt leaves it or not. */
export function normalizeTable(text: string): string {
  return text.trim().split("\n").map((row) =>
    row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/^-+$/, "---")).join("|")
  ).join("\n");
}

async function main(): Promise<void> {
  const parts = generatedParts();
  const readme = await readFile(README, "utf8");
  const written = readme.replace(PART, (_whole, name: string) => {
    if (!(name in parts)) throw new Error(`README: unknown generated part ${name}`);
    return `<!-- generated:${name} -->\n${parts[name]}\n<!-- /generated -->`;
  });
  await writeFile(README, written);
  console.log("README.md: generated parts written; run `deno fmt README.md`");
}

if (import.meta.main) {
  await main().catch((error) => {
    console.error(String(error));
    process.exit(1);
  });
}
