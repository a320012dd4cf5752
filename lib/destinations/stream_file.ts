/**
 * `-o` naming a FIFO or a character device (`/dev/stdout`, a named pipe a shipper reads): the
 * files stream into it in listing order, as on stdout, and with the same best-effort guarantee.
 * A temp file renamed over it would replace the pipe or device with a regular file, so this
 * destination never renames.
 *
 * @example
 * ```ts
 * const destination = await createStreamFileDestination("/run/shipper.fifo");
 * ```
 */
import { open } from "node:fs/promises";
import { BrokenPipeError, CliError, codeOf, reason } from "../errors.ts";
import { StreamDestination } from "./_stream.ts";

/** Opens `path` (a FIFO waits here for its reader) and streams every file into it. */
export async function createStreamFileDestination(path: string): Promise<StreamDestination> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "w");
  } catch (error) {
    throw new CliError("io", `cannot open ${path} for writing: ${reason(error)}`, {
      cause: error,
    });
  }
  const write = async (chunk: Uint8Array): Promise<void> => {
    let offset = 0;
    try {
      while (offset < chunk.length) {
        offset += (await handle.write(chunk, offset, chunk.length - offset)).bytesWritten;
      }
    } catch (error) {
      // The pipe's reader went away: the same as a closed stdout.
      if (codeOf(error) === "EPIPE") throw new BrokenPipeError();
      throw new CliError(
        "io",
        `cannot write ${path}: ${reason(error)}; the file being written was cut short ` +
          `and the checkpoint stays before it`,
        { cause: error },
      );
    }
  };
  return await StreamDestination.create("best-effort", {
    write,
    close: () => handle.close().catch(() => {}),
  });
}
