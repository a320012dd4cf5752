/**
 * What every command module exports. `lib/cli.ts` keeps a table of them, imports the one asked
 * for only when it is asked for, and calls `main`; a command owns its options, its `--help` text
 * and its checks, and refuses any option it does not take.
 *
 * @example
 * ```ts
 * // lib/commands/verify.ts (a coming command), in outline:
 * declare function parseVerifyArgs(argv: string[]): { archive: string };
 * declare function verifyArchive(archive: string, env: Env): Promise<void>; // imported lazily
 * export const command: Command = {
 *   name: "verify",
 *   summary: "check an archive against its manifest",
 *   help: "Usage: oai-compliance-logs verify [options] <dir>\n...",
 *   async main(argv, env) {
 *     const { archive } = parseVerifyArgs(argv);
 *     await verifyArchive(archive, env);
 *   },
 * };
 * ```
 */

import type { Env } from "../settings.ts";

export type { Env };

export interface Command {
  /** The word that selects it (`run` is also what runs when no command is named). */
  readonly name: string;
  /** One line for the list of commands in the top-level help. */
  readonly summary: string;
  /** The whole `--help` text: usage, arguments, and only this command's own options. */
  readonly help: string;
  /** Parses `argv` (the words after the command's name) and runs; throws `CliError`s. */
  main(argv: string[], env: Env): Promise<void>;
}
