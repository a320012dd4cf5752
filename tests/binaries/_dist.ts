/**
 * Finds the built binaries in `dist/` for the release checks. Outside CI a missing `dist/` skips
 * those checks with the reason shown; in CI (`CI=true`) nothing is skipped: missing binaries are
 * built first, and a build that fails fails the test.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { buildBinaries } from "../../scripts/build.ts";
import { DIST_DIR, fileName, type Target, TARGETS } from "../../scripts/targets.ts";

export const IN_CI = process.env.CI === "true";

export interface DistState {
  /** Why the checks cannot run (outside CI only). */
  skip?: string;
  /** Why building the missing binaries failed (CI only): every check then fails with it. */
  buildError?: string;
  path(target: Target): string;
}

/** Makes sure the binaries for `targets` exist (building them in CI), or says why not. */
export async function distFor(targets: readonly Target[] = TARGETS): Promise<DistState> {
  const path = (target: Target) => join(DIST_DIR, fileName(target));
  const missing = targets.filter((t) => !existsSync(path(t)));
  if (missing.length === 0) return { path };
  const names = missing.map((t) => t.name).join(", ");
  if (!IN_CI) {
    return { path, skip: `dist/ has no ${names} binary: run 'deno task build' first` };
  }
  try {
    await buildBinaries({ targets: missing, log: () => {} });
    return { path };
  } catch (error) {
    return { path, buildError: `building ${names} failed: ${(error as Error).message}` };
  }
}
