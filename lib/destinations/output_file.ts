/**
 * `-o FILE` on the registry: a regular file (or one not there yet) gets every file of the run,
 * replaced whole when the run ends, or appended to when a checkpoint remembers what it already
 * holds (file.ts); a FIFO or character device is streamed into (stream_file.ts). Which of the two
 * is decided by looking at the path before the first request.
 *
 * @example
 * ```ts
 * declare const context: import("./mod.ts").DestinationContext;
 * const destination = outputFileKind.configure("out.jsonl", {}, context);
 * await destination.check();
 * ```
 */
import { inspectOutputFile } from "../output_checks.ts";
import { createFileDestination } from "./file.ts";
import { OUTPUT_MODE_OPTION, parseOutputMode } from "./output_mode.ts";
import type { DestinationKind } from "./kind.ts";
import { createStreamFileDestination } from "./stream_file.ts";

export const outputFileKind: DestinationKind = {
  name: "file",
  flag: "output",
  schemes: [],
  options: { ...OUTPUT_MODE_OPTION },
  secretEnv: [],
  conflicts: {},
  configure(path, values, context) {
    const mode = parseOutputMode(values["output-mode"]);
    // With a checkpoint, each run (and each poll) appends what is new: a scheduled run never
    // replaces what the last one wrote before a shipper read it.
    const append = context.statePath !== undefined;
    let stream = false;
    return {
      label: `-o ${path}`,
      get guarantee() {
        return stream ? "best-effort" : "confirmed";
      },
      localFiles: [["-o", path]],
      async check() {
        stream = await inspectOutputFile(path);
      },
      open: () =>
        stream ? createStreamFileDestination(path) : createFileDestination(path, { append, mode }),
    };
  },
};
