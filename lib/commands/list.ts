/**
 * The `list` command (also `--list` on a run's command line): prints one JSON line per log file
 * the next run would download, without downloading anything. It reads the checkpoint's cursor
 * but never moves it: no destination, no spool directory, no lock. Imported only when asked for.
 *
 * @example
 * await command.main(["ws-1", "AUTH_LOG", "--after", "24h"], env);
 */
import type { Command, Env } from "./contract.ts";
import {
  DEFAULT_API_BASE,
  parseOptions,
  parseSelection,
  requireStart,
  type Selection,
  SELECTION_OPTIONS,
} from "./_arguments.ts";
import { existsSync } from "node:fs";
import { ComplianceClient, type LogFile } from "../api.ts";
import { Checkpoint } from "../checkpoint/model.ts";
import { BrokenPipeError, outcomeOf, redact, registerSecret, usageError } from "../errors.ts";
import { listEntries, startingPoint } from "../listing.ts";
import { colorOnStderr, liveOnStderr, Reporter } from "../reporter/mod.ts";
import { RunStats } from "../run_stats.ts";
import { writeStdout } from "../runtime.ts";

export const HELP =
  `Usage: oai-compliance-logs list [options] <workspace_or_org_id> <event_type> [limit] [after]
       oai-compliance-logs list [options] --state <file> <workspace_or_org_id> <event_type>

Prints one JSON line per log file (id, event_type, end_time, file_name, file_size, file_sha256)
on stdout, in listing order, without downloading any. With --state, lists from the checkpoint's
cursors: what the next run would fetch; the checkpoint is read, never changed or locked.
The key is read from COMPLIANCE_API_KEY, or from the file named by COMPLIANCE_API_KEY_FILE.

Arguments:
  workspace_or_org_id  ChatGPT workspace id, or API Platform organization id (org-...)
  event_type           AUTH_LOG, AUDIT_LOG, ...; several as AUTH_LOG,AUDIT_LOG; or 'all'
  limit                files per page, 1..100 (default 100 when omitted)
  after                ISO 8601 time with zone, a date (UTC midnight), or relative: 90m, 24h, 7d;
                       optional once --state holds a cursor

Options:
  --after TIME           start time (replaces the <after> positional)
  --before TIME          only files whose end_time is earlier than TIME (sent to the API)
  --limit N              files per page (replaces the <limit> positional; default 100)
  --event-type LIST      event types (replaces the <event_type> positional)
  --state FILE           start each event type at this checkpoint's cursor (read only)
  --settle DURATION      leave out files whose end_time is more recent (default 0)
  --retries N            retries for rate limits, 5xx and network errors (default 5)
  --timeout SECONDS      connect and idle-body timeout (default 30)
  --backoff SECONDS      first retry delay, doubled each retry, with jitter (default 1)
  --max-retry-wait SECS  cap on any single wait, including Retry-After (default 300)
  --api-base URL         API base (default ${DEFAULT_API_BASE}, or COMPLIANCE_API_BASE)
  --log-format FORMAT    plain (default) or json: one JSON object per event on stderr
  -q, --quiet            no progress on stderr, only errors
  -v, --verbose          more detail on stderr
  -h, --help             this help

Exit codes: 0 done, 1 API/network/file error, 2 usage error.`;

/**
 * Parses and checks a listing's command line; `undefined` for `--help`.
 *
 * @example
 * const selection = parseListArgs(["ws-1", "AUTH_LOG", "--after", "24h"], env);
 */
export function parseListArgs(argv: string[], env: Env, now?: Date): Selection | undefined {
  const { values, positionals } = parseOptions(argv, SELECTION_OPTIONS);
  if (values.help) return undefined;
  if (positionals.length === 0) throw usageError(HELP);
  return parseSelection(values, positionals, env, { defaultSettleMs: 0, now });
}

/** One JSON line per listed file: the listing's own fields, nothing of the download. */
function listedLine(file: LogFile): string {
  const { id, event_type, end_time, file_name, file_size, file_sha256 } = file;
  return JSON.stringify({ id, event_type, end_time, file_name, file_size, file_sha256 });
}

/**
 * Lists every event type of `selection` from its checkpoint cursor (else `<after>`) to the end,
 * printing each file as a JSON line; the summary counts the files listed.
 */
async function printListing(selection: Selection, env: Env): Promise<void> {
  registerSecret(selection.key);
  const reporter = new Reporter({
    verbosity: selection.verbosity,
    format: selection.logFormat,
    live: liveOnStderr(env),
    color: colorOnStderr(env),
  });
  for (const warning of selection.warnings) {
    reporter.emit({ event: "warning", message: warning.replace(/^warning: /, "") });
  }
  const run = new RunStats();
  const client = new ComplianceClient({
    apiBase: selection.apiBase,
    key: selection.key,
    principal: selection.principal,
    scope: selection.scope,
    policy: {
      retries: selection.retries,
      backoffMs: selection.backoffMs,
      maxWaitMs: selection.maxRetryWaitMs,
    },
    timeoutMs: selection.timeoutMs,
    onRetry: (notice) => {
      run.retried();
      reporter.emit({ event: "retry", ...notice });
    },
  });
  const observer = {
    pageStarted: (eventType: string, page: number, after: string) =>
      reporter.emit({ event: "pageStart", eventType, page, after }),
    pageListed: (
      eventType: string,
      page: number,
      after: string,
      files: number,
      hasMore: boolean,
    ) => {
      run.pageListed();
      reporter.emit({ event: "page", eventType, page, after, files, hasMore });
    },
    skipped: (id: string, why: string) => {
      run.skippedFile();
      reporter.emit({ event: "skip", id, reason: why });
    },
  };
  const settings = {
    limit: selection.limit,
    before: selection.before?.iso,
    settleMs: selection.settleMs,
  };
  const encoder = new TextEncoder();
  const { statePath } = selection;
  let checkpoint: Checkpoint | undefined;
  let listed = 0;
  let started = false;
  let failure: unknown;
  try {
    // Read only: an unlocked open neither creates the file nor waits for a running job.
    checkpoint = statePath === undefined
      ? undefined
      : await Checkpoint.open(statePath, selection.principal, selection.eventTypes, {
        lock: false,
      });
    const exists = statePath !== undefined && existsSync(statePath);
    requireStart(
      selection.after,
      statePath,
      exists ? selection.eventTypes.filter((type) => !checkpoint?.cursor(type)) : undefined,
    );
    started = true;
    for (const eventType of selection.eventTypes) {
      const saved = checkpoint?.cursor(eventType);
      const start = startingPoint(saved, selection.after?.iso, eventType);
      run.startEventType(eventType, saved?.after ?? null);
      let files = 0;
      let reached: string | null = null;
      for await (const entry of listEntries(client, eventType, start, settings, observer)) {
        if (entry.kind === "pageEnd") {
          reached = entry.nextAfter;
          run.reached(eventType, reached);
          continue;
        }
        // file_name is free text from the server: it could echo the key.
        await writeStdout(encoder.encode(redact(listedLine(entry.file)) + "\n"));
        files++;
        reached = entry.file.end_time;
        run.reached(eventType, reached);
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
  } catch (error) {
    failure = error;
  } finally {
    await checkpoint?.close();
  }
  // A closed stdout (`| head`) is how a listing's reader says it has enough: no summary then.
  if (failure instanceof BrokenPipeError) return;
  const { status, exitCode } = outcomeOf(failure);
  const summary = { ...run.snapshot(status, exitCode), files: listed };
  reporter.end(summary, failure, { beforeStart: !started });
  if (failure !== undefined) throw failure;
}

export const command: Command = {
  name: "list",
  summary: "print one JSON line per log file, without downloading (also: --list)",
  help: HELP,
  async main(argv, env) {
    const selection = parseListArgs(argv, env);
    if (!selection) return writeStdout(new TextEncoder().encode(HELP + "\n"));
    await printListing(selection, env);
  },
};
