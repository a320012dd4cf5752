/**
 * `-o FILE`, a regular file (or one not there yet), in one of two ways:
 *
 * - **replace** (without `--state`): every file, in listing order, into one file that appears
 *   only complete (a temp file beside it, fsynced and renamed into place when the pass ends).
 *   Nothing is confirmed before that commit, so a failed run leaves neither output nor
 *   checkpoint move.
 * - **append** (with `--state`, so from cron and with `--follow`): each pass appends its files to
 *   FILE and confirms them only once fsynced (every few seconds, and when the pass ends), so the
 *   checkpoint moves only past bytes on disk. A
 *   pass with nothing to write never opens FILE (not even its mtime changes). FILE never shrinks
 *   below what a line-reading shipper may have read: a pass that finds FILE ending in an
 *   incomplete line (a crash mid-append) cuts only that line, keeps every complete one (so a file
 *   the crash cut may appear again in part: at least once), and appends from there.
 *
 * @example
 * ```ts
 * const replaced = await createFileDestination("out.jsonl");
 * const appended = await createFileDestination("/var/log/oai/audit.jsonl", {
 *   append: true,
 *   mode: 0o640,
 * });
 * ```
 */
import { basename, dirname } from "node:path";
import { createTempBeside, OWNER_ONLY_FILE_MODE, removeStaleTemps } from "../atomic.ts";
import { openForAppend } from "./append_file.ts";
import { StreamDestination } from "./_stream.ts";

export interface FileDestinationOptions {
  /** Append each pass's files to FILE instead of replacing it whole (with `--state`). */
  append: boolean;
  /** The mode of the file when this creates it (owner-only by default). */
  mode?: number;
  /** Appending: how often FILE is fsynced and its files confirmed mid-pass (tests). */
  syncEveryMs?: number;
}

/** The `-o` destination for a regular file (or one not there yet); see stream_file.ts for FIFOs. */
export async function createFileDestination(
  path: string,
  options: FileDestinationOptions = { append: false },
): Promise<StreamDestination> {
  const mode = options.mode ?? OWNER_ONLY_FILE_MODE;
  // The temp of a run killed before its commit holds a partial copy of compliance data.
  await removeStaleTemps(dirname(path), { finalName: basename(path) });
  if (options.append) {
    const file = await openForAppend(path, mode);
    return await StreamDestination.create("confirmed", {
      write: (chunk) => file.write(chunk),
      sync: () => file.sync(),
      commit: () => file.sync(),
      discard: () => file.cutIncompleteLine(),
      close: () => file.close(),
    }, { syncEveryMs: options.syncEveryMs });
  }
  const temp = await createTempBeside(path, mode);
  return await StreamDestination.create("confirmed", {
    write: (chunk) => temp.write(chunk),
    commit: () => temp.commit(),
    discard: () => temp.discard(),
  });
}
