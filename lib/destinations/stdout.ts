/**
 * Stdout: every file's bytes as served, in listing order, plus `\n` when a non-empty file lacks
 * one (JSON Lines stays valid). Best effort: a file counts as delivered once written whole into
 * the pipe, so after a crash the next run may write again the file that was in flight
 * (at-least-once); the pipe never says whether its reader kept the bytes.
 *
 * @example
 * ```ts
 * const destination = await createStdoutDestination();
 * ```
 */
import { copyFileToStdout, writeStdout } from "../runtime.ts";
import { StreamDestination } from "./_stream.ts";
import type { DestinationKind } from "./kind.ts";

/** The stdout destination (a kernel copy straight into a pipe where the runtime can). */
export function createStdoutDestination(): Promise<StreamDestination> {
  return StreamDestination.create("best-effort", {
    write: writeStdout,
    copyFile: copyFileToStdout,
  });
}

/** Stdout: what a run writes to when no destination is named. */
export const stdoutKind: DestinationKind = {
  name: "stdout",
  schemes: [],
  options: {},
  secretEnv: [],
  conflicts: {},
  configure: () => ({
    label: "stdout",
    guarantee: "best-effort",
    localFiles: [],
    check: () => Promise.resolve(),
    open: createStdoutDestination,
  }),
};
