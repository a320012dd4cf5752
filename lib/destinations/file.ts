/**
 * `-o FILE`: every file, in listing order, into one file that appears only complete (a temp file
 * beside it, fsynced and renamed into place when the pass ends). Confirmed: nothing is confirmed
 * before that commit, so the checkpoint moves only once the file is there, and a failed run
 * leaves neither output nor checkpoint move.
 *
 * @example
 * const destination = await createFileDestination("out.jsonl");
 */
import { basename, dirname } from "node:path";
import { createTempBeside, removeStaleTemps } from "../atomic.ts";
import { StreamDestination } from "./_stream.ts";

/** The `-o` destination for a regular file (or one not there yet); see stream_file.ts for FIFOs. */
export async function createFileDestination(path: string): Promise<StreamDestination> {
  // The temp of a run killed before its commit holds a partial copy of compliance data.
  await removeStaleTemps(dirname(path), { finalName: basename(path) });
  const temp = await createTempBeside(path);
  return await StreamDestination.create("confirmed", {
    write: (chunk) => temp.write(chunk),
    commit: () => temp.commit(),
    discard: () => temp.discard(),
  });
}
