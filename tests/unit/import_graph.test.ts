/**
 * The layering of lib/ (issue 16): commands depend on lib/, never the other way (only the
 * dispatch table lib/cli.ts names them), and no module imports itself round a cycle, type-only
 * imports included. Read from the sources' import lines, doc examples left out.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) found.push(normalize(path));
  }
  return found;
}

/** Each module's relative imports (static, re-exports and dynamic), by path from the root. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sources("lib")) {
    const text = (await readFile(join(ROOT, file), "utf8")).replace(/\/\*[\s\S]*?\*\//g, "");
    const specifiers = [
      ...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gm),
      ...text.matchAll(/import\("(\.[^"]+)"\)/g),
    ].map((m) => normalize(join(dirname(file), m[1])));
    graph.set(file, specifiers);
  }
  return graph;
}

test("no module under lib/ but the dispatch table imports a command", async () => {
  const graph = await importGraph();
  const upward = [...graph].flatMap(([file, deps]) =>
    file === normalize("lib/cli.ts") || file.startsWith(normalize("lib/commands/"))
      ? []
      : deps.filter((d) => d.startsWith(normalize("lib/commands/"))).map((d) => `${file} -> ${d}`)
  );
  assert.deepEqual(upward, []);
});

test("lib/ has no import cycle, type-only imports included", async () => {
  const graph = await importGraph();
  assert.ok(graph.size > 50, "the whole of lib/ was read");
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const cycles: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    path.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (!graph.has(dep)) continue;
      if (state.get(dep) === "open") {
        cycles.push(
          [...path.slice(path.indexOf(dep)), dep].map((f) => relative("lib", f)).join(" -> "),
        );
      } else if (!state.has(dep)) visit(dep);
    }
    path.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});
