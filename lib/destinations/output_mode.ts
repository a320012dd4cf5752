/**
 * `--output-mode`: the permission bits of the files a local destination creates (`-o`,
 * `--output-dir`); directories get the same bits plus search (x) wherever read (r) is given.
 * Owner-only (0600) unless asked: a SIEM shipper that runs as another user is the reason to ask
 * for group read (0640), and the trade-off is that everyone in that group can read the logs.
 *
 * @example
 * ```ts
 * parseOutputMode("0640"); // 0o640
 * parseOutputMode(undefined); // 0o600
 * ```
 */
import { OWNER_ONLY_FILE_MODE } from "../atomic.ts";
import { usage } from "../errors.ts";
import type { OptionTable } from "../options.ts";

/** The option, declared alike by each local destination that takes it. */
export const OUTPUT_MODE_OPTION = {
  "output-mode": {
    type: "string",
    arg: "MODE",
    help: "octal mode of created files, e.g. 0640 for a shipper in the group\n" +
      "(directories get x where r is given; default 0600, owner only)",
  },
} as const satisfies OptionTable;

/**
 * The mode `--output-mode` names: octal, with the owner's read and write (appending and replacing
 * reopen the file), and no write for group or others (anyone else could alter the archive).
 */
export function parseOutputMode(text: string | boolean | undefined): number {
  if (text === undefined || typeof text === "boolean") return OWNER_ONLY_FILE_MODE;
  if (!/^0?[0-7]{3}$/.test(text)) {
    throw usage(`--output-mode must be an octal mode such as 0640; got '${text}'`);
  }
  const mode = parseInt(text, 8);
  if ((mode & 0o600) !== 0o600) {
    throw usage(`--output-mode ${text} must let the owner read and write (6 in the first digit)`);
  }
  if ((mode & 0o022) !== 0) {
    throw usage(
      `--output-mode ${text} lets group or others write: they could alter the archive; ` +
        `give read only (e.g. 0640)`,
    );
  }
  if ((mode & 0o111) !== 0) {
    throw usage(`--output-mode ${text} makes log files executable; drop the x bits (e.g. 0640)`);
  }
  return mode;
}
