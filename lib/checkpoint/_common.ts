/**
 * Helpers shared by the checkpoint's modules (format, lock, model) and by nothing else.
 */
import { open, stat } from "node:fs/promises";
import { CliError, codeOf, reason } from "../errors.ts";

/** The program's name as messages show it, in advice such as "run `... state reset FILE`". */
export const COMMAND = "oai-compliance-logs";

/**
 * The command that discards the state file at `path`, quoted for a POSIX shell, as messages
 * suggest it.
 *
 * @example
 * ```ts
 * resetCommand("my state.json") // "oai-compliance-logs state reset 'my state.json'"
 * ```
 */
export function resetCommand(path: string): string {
  return `${COMMAND} state reset ${shellQuote(path)}`;
}

/**
 * The command that passes file `id` of `eventType` on purpose (a poison file), as messages
 * suggest it; `TEXT` is left for the operator to fill in.
 *
 * @example
 * ```ts
 * skipCommand("s.json", "AUTH_LOG", "eclf_1"); // "oai-compliance-logs state skip s.json AUTH_LOG eclf_1 --reason TEXT"
 * ```
 */
export function skipCommand(path: string, eventType: string, id: string): string {
  return `${COMMAND} state skip ${shellQuote(path)} ${shellQuote(eventType)} ${
    shellQuote(id)
  } --reason TEXT`;
}

/** `path` as a POSIX shell word, for commands suggested in messages. */
function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * The text of the small regular file at `path` (through symlinks), or undefined when there is none.
 * Anything else is a state error naming `what`: a directory, a FIFO (reading it would wait for a
 * writer forever), a device such as /dev/zero (endless), or a file over `maxBytes`. The state
 * file and its lock may sit in a directory others can write to, so their kind and size are not
 * trusted.
 *
 * @example
 * ```ts
 * const text = await readSmallFile("s.json", 16 << 20, "state file s.json");
 * ```
 */
export async function readSmallFile(
  path: string,
  maxBytes: number,
  what: string,
): Promise<string | undefined> {
  let handle;
  try {
    const info = await stat(path);
    if (info.isDirectory()) {
      throw new CliError("state", `${what} is a directory; name a file for --state`);
    }
    if (!info.isFile()) {
      throw new CliError(
        "state",
        `${what} is not a regular file (a FIFO, device or socket); delete it or name another --state file`,
      );
    }
    if (info.size > maxBytes) {
      throw new CliError(
        "state",
        `${what} is too large (${info.size} bytes) to be one; delete it or use another --state file`,
      );
    }
    // Checked again once open: it may have been swapped since the stat.
    handle = await open(path, "r");
    const opened = await handle.stat();
    if (!opened.isFile() || opened.size > maxBytes) {
      throw new CliError("state", `${what} changed while being read; try again`);
    }
    const buffer = new Uint8Array(maxBytes + 1);
    let length = 0;
    while (length <= maxBytes) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) throw new CliError("state", `${what} grew past ${maxBytes} bytes`);
    return new TextDecoder().decode(buffer.subarray(0, length));
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (codeOf(error) === "ENOENT") return undefined;
    throw new CliError("state", `cannot read ${what}: ${reason(error)}`, { cause: error });
  } finally {
    await handle?.close().catch(() => {});
  }
}

/**
 * Whether a parsed JSON value is an object (not null, not an array).
 *
 * @example
 * ```ts
 * isRecord(JSON.parse('{"pid":1}')) // true
 * isRecord(JSON.parse("[]"))        // false
 * ```
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
