/**
 * The `run` command, what runs when no command is named: downloads every file of the asked event
 * types to stdout, one `-o` file or an `--output-dir` tree, keeping the quickstart scripts'
 * positional interface `<workspace_or_org_id> <event_type> <limit> <after>`. This module only
 * parses and checks; the run itself (lib/session.ts) is imported when one starts, so `--help`
 * loads almost nothing.
 *
 * @example
 * await command.main(["ws-1", "AUTH_LOG", "100", "24h", "-o", "out.jsonl"], env);
 */
import type { Command, Env } from "./contract.ts";
import {
  DEFAULT_API_BASE,
  parseInteger,
  parseOptions,
  parseSelection,
  positiveDuration,
  type Selection,
  SELECTION_OPTIONS,
  usage,
} from "./_arguments.ts";
import { usageError } from "../errors.ts";
// Type-only: erased, so `--help` still loads nothing of the pass.
import type { Output } from "../pass.ts";

export type { Output };

/** A run, parsed and checked: what to list (see `Selection`), where it goes, and how often. */
export interface RunSettings extends Selection {
  output: Output;
  concurrency: number;
  follow: boolean;
  intervalMs: number;
}

const OPTIONS = {
  ...SELECTION_OPTIONS,
  output: { type: "string", short: "o" },
  "output-dir": { type: "string" },
  gzip: { type: "boolean" },
  concurrency: { type: "string" },
  follow: { type: "boolean" },
  interval: { type: "string" },
} as const;

export const HELP =
  `Usage: oai-compliance-logs [options] <workspace_or_org_id> <event_type> <limit> <after>
       oai-compliance-logs [options] --after <time> <workspace_or_org_id> <event_type> [limit]
       oai-compliance-logs [options] --state <file> <workspace_or_org_id> <event_type> [limit]

Downloads OpenAI Compliance Logs Platform files and writes their JSON Lines to stdout (or files).
The key is read from COMPLIANCE_API_KEY, or from the file named by COMPLIANCE_API_KEY_FILE.
A key has 20 or more letters, digits and - _ . ~; anything else is refused as truncated or mangled.

Arguments:
  workspace_or_org_id  ChatGPT workspace id, or API Platform organization id (org-...)
  event_type           AUTH_LOG, AUDIT_LOG, ...; several as AUTH_LOG,AUDIT_LOG; or 'all'
  limit                files per page, 1..100 (default 100 when omitted)
  after                ISO 8601 time with zone, a date (UTC midnight), or relative: 90m, 24h, 7d;
                       optional once --state holds a cursor; older than ~30 days only warns

Options:
  --after TIME           start time (replaces the <after> positional)
  --before TIME          only files whose end_time is earlier than TIME (sent to the API)
  --limit N              files per page (replaces the <limit> positional; default 100)
  --event-type LIST      event types (replaces the <event_type> positional)
  -o, --output FILE      write to FILE (appears only complete) instead of stdout
  --output-dir DIR       one file per log: DIR/<event_type>/<YYYY-MM-DD>/<id>.jsonl, exactly once
  --gzip                 with --output-dir, write .jsonl.gz
  --state FILE           durable checkpoint, one cursor per event type: resume where the last
                         run stopped (read or reset it with 'state show|reset FILE')
  --concurrency N        parallel downloads, output stays in order (default 4)
  --retries N            retries for rate limits, 5xx and network errors (default 5)
  --timeout SECONDS      connect and idle-body timeout (default 30)
  --backoff SECONDS      first retry delay, doubled each retry, with jitter (default 1)
  --max-retry-wait SECS  cap on any single wait, including Retry-After (default 300)
  --list                 print one JSON line per log file instead of downloading (the same as
                         the 'list' command, which takes only its own options)
  --follow               keep polling for new files (needs --state), until SIGINT/SIGTERM
  --interval DURATION    time between polls with --follow (default 5m)
  --settle DURATION      skip files whose end_time is more recent, until a later poll
                         (default 2m with --follow, else 0)
                         Durations: 30s, 5m, 2h, 7d or seconds (fractions round to whole ms);
                         each at most 2147483 s (~24.8 days, what timers hold), else refused
  --api-base URL         API base (default ${DEFAULT_API_BASE}, or COMPLIANCE_API_BASE)
  --log-format FORMAT    plain (default) or json: one JSON object per event on stderr (page,
                         file, retry, warning, error, summary); a live line when stderr is a tty
  -q, --quiet            no progress on stderr, only errors
  -v, --verbose          more detail on stderr
  -h, --help             this help

Examples:
  export COMPLIANCE_API_KEY=<KEY>
  oai-compliance-logs f7f33107-5fb9-4ee1-8922-3eae76b5b5a0 AUTH_LOG 100 "$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)" > output.jsonl
  oai-compliance-logs org-p13k3klgno5cqxbf0q8hpgrk AUTH_LOG 100 2026-07-01 -o output.jsonl
  oai-compliance-logs --after 24h --state state.json --output-dir logs/ org-p13k3klgno5cqxbf0q8hpgrk AUTH_LOG,AUDIT_LOG
  oai-compliance-logs --follow --after 7d --state s.json --output-dir logs/ --log-format json org-p13k3klgno5cqxbf0q8hpgrk all

Environment:
  COMPLIANCE_API_KEY, COMPLIANCE_API_KEY_FILE  the key, or a file holding it (trimmed)
  COMPLIANCE_API_BASE    same as --api-base
  HTTPS_PROXY, NO_PROXY  proxy for HTTPS (http://user:password@host:port) and hosts to reach direct
  NODE_EXTRA_CA_CERTS    PEM file of extra CAs to trust (DENO_CERT also works under Deno)
  NO_COLOR               no colour on stderr

Exit codes: 0 done, 1 API/network/integrity/file error, 2 usage error, 130/143 interrupted.`;

/**
 * Parses and checks a run's command line into its settings, before any request; `undefined` for
 * `--help`. Reads only the key file (named by `COMPLIANCE_API_KEY_FILE`).
 *
 * @example
 * const settings = parseRunArgs(["ws-1", "AUTH_LOG", "100", "24h"], env);
 */
export function parseRunArgs(
  argv: string[],
  env: Env,
  now: Date = new Date(),
): RunSettings | undefined {
  const { values: v, positionals } = parseOptions(argv, OPTIONS);
  if (v.help) return undefined;
  if (positionals.length === 0) throw usageError(HELP);
  if (v.output !== undefined && v["output-dir"] !== undefined) {
    throw usage("-o/--output and --output-dir cannot be used together");
  }
  if (v.gzip && v["output-dir"] === undefined) throw usage("--gzip needs --output-dir");
  if (v.follow && v.output !== undefined) {
    // The -o file appears only when a run ends, and a follow run does not end.
    throw usage("--follow cannot write to -o FILE; use stdout or --output-dir");
  }
  if (v.follow && v.state === undefined) {
    throw usage("--follow needs --state FILE to remember where it is between polls");
  }
  if (v.output === "") throw usage("-o/--output needs a path");
  if (v["output-dir"] === "") throw usage("--output-dir needs a path");
  const selection = parseSelection(v, positionals, env, {
    defaultSettleMs: v.follow ? 120_000 : 0,
    now,
  });
  const output: Output = v["output-dir"] !== undefined
    ? { kind: "dir", path: v["output-dir"], gzip: Boolean(v.gzip) }
    : v.output !== undefined
    ? { kind: "file", path: v.output }
    : { kind: "stdout" };
  return {
    ...selection,
    output,
    concurrency: v.concurrency === undefined
      ? 4
      : parseInteger(v.concurrency, "--concurrency", 1, 64),
    follow: Boolean(v.follow),
    intervalMs: v.interval === undefined ? 300_000 : positiveDuration(v.interval, "--interval"),
  };
}

export const command: Command = {
  name: "run",
  summary: "download log files to stdout, -o FILE or --output-dir DIR (the default)",
  help: HELP,
  async main(argv, env) {
    const settings = parseRunArgs(argv, env);
    if (!settings) {
      const { writeStdout } = await import("../runtime.ts");
      return writeStdout(new TextEncoder().encode(HELP + "\n"));
    }
    const { runSession } = await import("../session.ts");
    return await runSession(settings, env);
  },
};
