/**
 * The `run` command, what runs when no command is named: downloads every file of the asked event
 * types to stdout, `-o FILE` or `--output-dir DIR` (any destination of lib/destinations/),
 * keeping the quickstart scripts' positional interface
 * `<workspace_or_org_id> <event_type> <limit> <after>`. This module only parses and checks; the
 * run itself (lib/session.ts) is imported when one starts, so `--help` loads almost nothing.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * await command.main(["ws-1", "AUTH_LOG", "100", "24h", "-o", "out.jsonl"], env);
 * ```
 */
import type { Command } from "./contract.ts";
import {
  ARGUMENTS_HELP,
  parseCommandSettings,
  parseInteger,
  parseOptions,
  positiveDuration,
  SHARED_OPTIONS,
  usage,
} from "./_arguments.ts";
import { helpInstead } from "../errors.ts";
import {
  type DestinationKind,
  destinationOptions,
  DESTINATIONS,
  resolveDestinations,
} from "../destinations/mod.ts";
import { fanOut } from "../destinations/fan_out.ts";
import { optionHelp } from "../options.ts";
import { configureArchiveSource } from "../archive_source.ts";
import type { Env, RunSettings } from "../settings.ts";
import { writeStdout } from "../runtime.ts";

/** The options only `run` takes (besides every destination's own). */
const RUN_OPTIONS = {
  output: {
    type: "string",
    short: "o",
    arg: "FILE",
    help: "write to FILE instead of stdout: it appears only complete; with --state each\n" +
      "run appends what is new (a run with nothing new leaves FILE untouched)",
  },
  "output-dir": {
    type: "string",
    arg: "DIR",
    help: "one file per log: DIR/<event_type>/<YYYY-MM-DD>/<id>.jsonl, exactly once",
  },
  "from-archive": {
    type: "string",
    arg: "DIR",
    help: "read the files from an archive this tool wrote (an --output-dir, local or\n" +
      "a bucket) instead of the API, each verified against its manifest: no key,\n" +
      "no API quota; give it its own --state (e.g. to feed a SIEM added later)",
  },
  concurrency: {
    type: "string",
    arg: "N",
    help: "parallel downloads, 1..64; output stays in order (default 4)",
  },
  "max-downloads-per-minute": {
    type: "string",
    arg: "N",
    help: "download requests per rolling minute, across all downloads (default 50,\n" +
      "the API's documented limit per key)",
  },
  follow: {
    type: "boolean",
    help: "keep polling for new files (needs --state), until SIGINT/SIGTERM",
  },
  interval: {
    type: "string",
    arg: "DURATION",
    help: "time between polls with --follow (default 5m)",
  },
  manifest: {
    type: "string",
    arg: "FILE",
    help: "for -o or stdout: append each run's tamper-evident manifest to FILE\n" +
      "(--output-dir writes its own, in DIR/_manifest/; see 'verify --help')",
  },
  "sign-key": {
    type: "string",
    arg: "FILE",
    help: "sign each manifest with this Ed25519 private key (PKCS#8 PEM, from\n" +
      "openssl genpkey -algorithm ed25519)",
  },
} as const;

/** `run`'s options table: the shared ones, its own, and those of every destination in `kinds`. */
function runOptions(kinds: readonly DestinationKind[]) {
  return { ...SHARED_OPTIONS, ...RUN_OPTIONS, ...destinationOptions(kinds), ...REWORDED };
}

/** Shared options whose help says more for a run. */
const REWORDED = {
  settle: {
    ...SHARED_OPTIONS.settle,
    help: "skip files whose end_time is more recent, until a later poll\n" +
      "(default 2m with --follow, else 0; COSTS files arrive 3-5 h after their\n" +
      "end_time, so a follow job with COSTS needs no more than the default: they are\n" +
      "listed when they appear)\n" +
      "Durations: 30s, 5m, 2h, 7d or seconds (fractions round to whole ms);\n" +
      "each at most 2147483 s (~24.8 days, what timers hold), else refused",
  },
  "log-format": {
    ...SHARED_OPTIONS["log-format"],
    help: "plain (default) or json: one JSON object per event on stderr (page,\n" +
      "file, retry, warning, gone, progress, error, summary); a live line on a tty",
  },
} as const;

/** Every option `run` takes, as `--help` and the README show them. */
export const OPTIONS = runOptions(DESTINATIONS);

/** Destinations by URL scheme, for the help (none but local paths until one registers). */
function destinationsHelp(): string {
  const schemes = DESTINATIONS.flatMap((kind) => kind.schemes.map((s) => `${s}://`));
  return schemes.length ? `URL destinations: ${schemes.join(", ")}\n` : "";
}

export const HELP =
  `Usage: oai-compliance-logs [run] [options] <workspace_or_org_id> <event_type> <limit> <after>
       oai-compliance-logs [run] [options] --after <time> <workspace_or_org_id> <event_type> [limit]
       oai-compliance-logs [run] [options] --state <file> <workspace_or_org_id> <event_type> [limit]

Downloads OpenAI Compliance Logs Platform files and writes their JSON Lines to stdout (or files).
The key is read from COMPLIANCE_API_KEY, or from the file named by COMPLIANCE_API_KEY_FILE.
A key has 20 or more letters, digits and - _ . ~; anything else is refused as truncated or mangled.

${ARGUMENTS_HELP}

Options:
${optionHelp(OPTIONS)}
  --list                 print one JSON line per log file instead of downloading: the 'list'
                         command (see 'oai-compliance-logs list --help' for its options)
${destinationsHelp()}
Examples:
  export COMPLIANCE_API_KEY=<KEY>
  oai-compliance-logs f7f33107-5fb9-4ee1-8922-3eae76b5b5a0 AUTH_LOG 100 "$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)" > output.jsonl
  oai-compliance-logs org-p13k3klgno5cqxbf0q8hpgrk APP_LOG 100 2026-07-01 -o output.jsonl
  oai-compliance-logs --after 24h --state state.json --output-dir logs/ org-p13k3klgno5cqxbf0q8hpgrk APP_LOG,COSTS
  oai-compliance-logs --follow --after 7d --state s.json --output-dir logs/ --log-format json org-p13k3klgno5cqxbf0q8hpgrk all
  oai-compliance-logs --from-archive logs/ -o hec+https://splunk:8088 --state siem.state.json org-p13k3klgno5cqxbf0q8hpgrk APP_LOG 100 7d

Environment:
  COMPLIANCE_API_KEY, COMPLIANCE_API_KEY_FILE  the key, or a file holding it (trimmed)
  COMPLIANCE_API_BASE    same as --api-base
  HTTPS_PROXY, NO_PROXY  proxy for HTTPS (http://user:password@host:port) and hosts to reach direct
  NODE_EXTRA_CA_CERTS    PEM file of extra CAs to trust (DENO_CERT also works under Deno)
  NO_COLOR               no colour on stderr

Exit codes: 0 done, 1 API/network/integrity/file error, 2 usage error, 4 done but some listed
files were no longer available (named on stderr; the next run does not ask for them again),
130/143 interrupted.`;

/**
 * Parses and checks a run's command line into its settings, before any request; `undefined` for
 * `--help`. Reads only the key file (named by `COMPLIANCE_API_KEY_FILE`). `kinds` are the
 * destinations it may choose from (the registry's, unless a test adds one).
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const settings = parseRunArgs(["ws-1", "AUTH_LOG", "100", "24h"], env);
 * ```
 */
export function parseRunArgs(
  argv: string[],
  env: Env,
  now: Date = new Date(),
  kinds: readonly DestinationKind[] = DESTINATIONS,
): RunSettings | undefined {
  const { values: v, positionals } = parseOptions(argv, runOptions(kinds));
  if (v.help) return undefined;
  if (positionals.length === 0) throw helpInstead(HELP);
  if (v.follow && v.state === undefined) {
    throw usage("--follow needs --state FILE to remember where it is between polls");
  }
  if (v.interval !== undefined && !v.follow) throw usage("--interval needs --follow");
  const fromArchive = v["from-archive"];
  const settings = parseCommandSettings(v, positionals, env, {
    defaultSettleMs: v.follow ? 120_000 : 0,
    keyless: fromArchive !== undefined,
    now,
    downloadsPerMinute: v["max-downloads-per-minute"] === undefined
      ? undefined
      : parseInteger(v["max-downloads-per-minute"], "--max-downloads-per-minute", 1, 10_000),
  });
  const context = { follow: Boolean(v.follow), statePath: settings.statePath, env };
  // An archive and a SIEM named together are fed by one download (lib/destinations/fan_out.ts).
  const destination = fanOut(resolveDestinations(v, context, kinds));
  return {
    ...settings,
    destination,
    concurrency: v.concurrency === undefined
      ? 4
      : parseInteger(v.concurrency, "--concurrency", 1, 64),
    follow: Boolean(v.follow),
    intervalMs: v.interval === undefined ? 300_000 : positiveDuration(v.interval, "--interval"),
    manifest: manifestOptions(v.manifest, v["sign-key"], destination.archive !== undefined),
    fromArchive: fromArchive === undefined
      ? undefined
      : configureArchiveSource(fromArchive, context, v["output-dir"]),
  };
}

/** `--manifest` and `--sign-key`, checked: an archive writes its own manifests. */
function manifestOptions(
  file: string | undefined,
  signKey: string | undefined,
  archive: boolean,
): RunSettings["manifest"] {
  if (file === "") throw usage("--manifest needs a path");
  if (file !== undefined && archive) {
    throw usage(
      "--manifest is for -o or stdout: --output-dir writes its manifests in DIR/_manifest/",
    );
  }
  if (signKey !== undefined && file === undefined && !archive) {
    throw usage("--sign-key signs a manifest: it needs --output-dir or --manifest FILE");
  }
  return { file, signKey };
}

export const command: Command = {
  name: "run",
  summary: "download log files to stdout, -o FILE or --output-dir DIR (the default)",
  help: HELP,
  async main(argv, env) {
    const settings = parseRunArgs(argv, env);
    if (!settings) return writeStdout(new TextEncoder().encode(HELP + "\n"));
    const { runSession } = await import("../session.ts");
    return await runSession(settings, env);
  },
};
