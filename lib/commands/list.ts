/**
 * The `list` command (also `--list` on a run's command line): prints one JSON line per log file
 * the next run would download, without downloading anything. It reads the checkpoint's cursor
 * but never moves it: no destination, no spool directory, no lock. It runs on the same harness as
 * `run` (lib/harness.ts). Imported only when asked for.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * await command.main(["ws-1", "AUTH_LOG", "--after", "24h"], env);
 * ```
 */
import type { Command } from "./contract.ts";
import {
  ARGUMENTS_HELP,
  parseCommandSettings,
  parseOptions,
  SHARED_OPTIONS,
} from "./_arguments.ts";
import type { LogFile } from "../log_file.ts";
import { Checkpoint } from "../checkpoint/model.ts";
import { helpInstead, redact } from "../errors.ts";
import { runCommand } from "../harness.ts";
import { listEntries, reportingObserver } from "../listing.ts";
import { optionHelp } from "../options.ts";
import type { CommandSettings, Env } from "../settings.ts";
import { startsOf } from "../start.ts";
import { writeStdout } from "../runtime.ts";

/** Every option `list` takes, as `--help` and the README show them. */
export const OPTIONS = {
  ...SHARED_OPTIONS,
  state: {
    ...SHARED_OPTIONS.state,
    help: "start each event type at this checkpoint's cursor (read only)",
  },
} as const;

export const HELP =
  `Usage: oai-compliance-logs list [options] <workspace_or_org_id> <event_type> [limit] [after]
       oai-compliance-logs list [options] --state <file> <workspace_or_org_id> <event_type>

Prints one JSON line per log file (id, event_type, end_time, file_name, file_size, file_sha256)
on stdout, in listing order, without downloading any. With --state, lists from the checkpoint's
cursors: what the next run would fetch; the checkpoint is read, never changed or locked.
The key is read from COMPLIANCE_API_KEY, or from the file named by COMPLIANCE_API_KEY_FILE.

${ARGUMENTS_HELP}

Options:
${optionHelp(OPTIONS)}

Exit codes: 0 done, 1 API/network/file error, 2 usage error, 130/143 interrupted.`;

/**
 * Parses and checks a listing's command line; `undefined` for `--help`.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const settings = parseListArgs(["ws-1", "AUTH_LOG", "--after", "24h"], env);
 * ```
 */
export function parseListArgs(argv: string[], env: Env, now?: Date): CommandSettings | undefined {
  const { values, positionals } = parseOptions(argv, OPTIONS);
  if (values.help) return undefined;
  if (positionals.length === 0) throw helpInstead(HELP);
  return parseCommandSettings(values, positionals, env, { defaultSettleMs: 0, now });
}

/** One JSON line per listed file: the listing's own fields, nothing of the download. */
function listedLine(file: LogFile): string {
  const { id, event_type, end_time, file_name, file_size, file_sha256 } = file;
  return JSON.stringify({ id, event_type, end_time, file_name, file_size, file_sha256 });
}

/**
 * Lists every event type of `settings` from its checkpoint cursor (else `<after>`) to the end,
 * printing each file as a JSON line; the summary counts the files listed.
 */
function printListing(settings: CommandSettings, env: Env): Promise<void> {
  const { selection, statePath } = settings;
  let listed = 0;
  return runCommand(settings, env, async ({ reporter, stats, client, started }) => {
    // Read only: an unlocked open neither creates the file nor waits for a running job.
    const checkpoint = statePath === undefined ? undefined : await Checkpoint.open(
      statePath,
      selection.principal,
      selection.all ? "all" : selection.eventTypes,
      { lock: false, env },
    );
    try {
      const cursors = statePath === undefined
        ? undefined
        : checkpoint?.existed
        ? { path: statePath, cursor: (type: string) => checkpoint?.cursor(type) }
        : { path: statePath };
      const { starts, warnings } = startsOf(selection.eventTypes, selection.after?.iso, cursors, {
        all: selection.all,
      });
      for (const warning of warnings) {
        reporter.emit({ event: "warning", message: warning.replace(/^warning: /, "") });
      }
      started();
      const encoder = new TextEncoder();
      const observer = reportingObserver(reporter, stats);
      for (const eventType of selection.eventTypes) {
        const start = starts.get(eventType)!;
        stats.startEventType(eventType, checkpoint?.cursor(eventType)?.after ?? null);
        let files = 0;
        let reached: string | null = null;
        for await (
          const entry of listEntries(client, eventType, start, settings.listing, observer)
        ) {
          if (entry.kind === "pageEnd") {
            reached = entry.nextAfter;
            stats.reached(eventType, reached);
            continue;
          }
          // file_name is free text from the server: it could echo the key.
          await writeStdout(encoder.encode(redact(listedLine(entry.file)) + "\n"));
          files++;
          reached = entry.file.end_time;
          stats.reached(eventType, reached);
        }
        listed += files;
        reporter.emit({
          event: "completed",
          eventType,
          files,
          cursor: reached,
          initialAfter: start.after,
          done: "Listed",
        });
      }
    } finally {
      await checkpoint?.close();
    }
  }, {
    // A closed stdout (`| head`) is how a listing's reader says it has enough: no summary then.
    quietOnClosedStdout: true,
    summarize: (summary) => ({ ...summary, files: listed }),
  });
}

export const command: Command = {
  name: "list",
  summary: "print one JSON line per log file, without downloading (also: --list)",
  help: HELP,
  async main(argv, env) {
    const settings = parseListArgs(argv, env);
    if (!settings) return writeStdout(new TextEncoder().encode(HELP + "\n"));
    await printListing(settings, env);
  },
};
