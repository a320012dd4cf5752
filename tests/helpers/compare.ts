/**
 * Comparisons for outputs that may be megabytes: a first-difference report instead of the diff
 * `assert.deepEqual` would render (which takes minutes for large byte arrays), and snapshots of
 * a directory tree.
 *
 * @example
 * assertSameBytes(r.stdout, await expectedStream(emulator, ids), "stdout");
 */
import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";

/** Fails with the lengths and the first differing offset when `actual` is not `expected`. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  let first = -1;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      first = i;
      break;
    }
  }
  if (first < 0 && actual.length === expected.length) return;
  if (first < 0) first = n;
  assert.fail(
    `${what}: ${actual.length} bytes instead of ${expected.length}, first difference at ` +
      `offset ${first}`,
  );
}

/** Every regular file under `root` (relative path -> bytes), recursively, sorted by path. */
export async function readTree(root: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      return; // removed meanwhile (a temp directory), or never created
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        const info = await stat(path);
        if (info.isDirectory()) await walk(path);
        else if (info.isFile()) out.set(relative(root, path), new Uint8Array(await readFile(path)));
      } catch {
        // Renamed or deleted between readdir and now: a temp file the run was done with.
      }
    }
  };
  await walk(root);
  return out;
}

/** The relative paths of every file under `root`, sorted. */
export async function listTree(root: string): Promise<string[]> {
  return [...(await readTree(root)).keys()];
}
