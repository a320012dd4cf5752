/**
 * The `verify` command: proves an `--output-dir` archive intact (every stored file as its
 * manifest recorded it, every manifest chained to the one before) and complete (no time range
 * that no run listed; with `--against-api`, no file the API lists that the archive lacks).
 * Prints a summary per event type on stderr, `--json` a report on stdout, `--report FILE.html`
 * an evidence report. Exit 0 intact and complete, 3 problems found, 1 could not finish, 2 usage.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * await command.main(["logs", "--report", "evidence.html"], env);
 * ```
 */
import { stat } from "node:fs/promises";
import type { Command } from "./contract.ts";
import { parseCommandSettings, SHARED_OPTIONS } from "./_arguments.ts";
import { CliError, codeOf, helpInstead, reason, registerSecret, usage } from "../errors.ts";
import { parseLocation } from "../locations.ts";
import { optionHelp, parseOptions } from "../options.ts";
import { exit, stderrIsTerminal, writeStderr, writeStdout } from "../runtime.ts";
import type { Env } from "../settings.ts";
import { toMicros } from "../time.ts";

/** Every option `verify` takes. */
export const OPTIONS = {
  "against-api": {
    type: "string",
    arg: "ID",
    help: "also list the API for this workspace or org-id over the window the archive\n" +
      "covers (or --after/--before) and report files it lists that the archive lacks",
  },
  "event-type": {
    ...SHARED_OPTIONS["event-type"],
    help: "with --against-api: the event types to list (default: the archive's)",
  },
  after: { ...SHARED_OPTIONS.after, help: "with --against-api: list from this time" },
  before: { ...SHARED_OPTIONS.before, help: "with --against-api: list until this time" },
  "public-key": {
    type: "string",
    arg: "FILE",
    help: "check the manifests' signatures with this Ed25519 public key (SPKI PEM);\n" +
      "an unsigned or wrongly signed manifest is then a problem",
  },
  report: {
    type: "string",
    arg: "FILE.html",
    help: "write a self-contained HTML evidence report (prints to PDF from a browser)",
  },
  json: { type: "boolean", help: "print the whole report as one JSON object on stdout" },
  "api-base": SHARED_OPTIONS["api-base"],
  retries: SHARED_OPTIONS.retries,
  timeout: SHARED_OPTIONS.timeout,
  quiet: { type: "boolean", short: "q", help: "no summary or progress on stderr" },
  help: SHARED_OPTIONS.help,
} as const;

export const HELP = `Usage: oai-compliance-logs verify [options] <dir>

Checks an --output-dir archive against the manifests its runs wrote in <dir>/_manifest/
(<dir> may be s3://BUCKET/PREFIX or az://CONTAINER/PREFIX, read with the credentials a run
into it uses):
re-reads every stored file (decompressing .gz) and reports files altered, missing or
unexpected, breaks in each job's manifest chain (a changed, removed or unsigned manifest),
time ranges no run listed, duplicates, and the gone and skipped files the runs recorded
(explained gaps, which do not fail it). With --against-api it also lists the API (the key
is read as for a run: COMPLIANCE_API_KEY or COMPLIANCE_API_KEY_FILE).

Options:
${optionHelp(OPTIONS)}

Exit codes: 0 intact and complete, 3 problems found, 1 could not finish (file or API error),
2 usage error.`;

export interface VerifyArgs {
  archive: string;
  againstApi?: string;
  eventTypes?: string;
  after?: string;
  before?: string;
  publicKey?: string;
  report?: string;
  json: boolean;
  quiet: boolean;
  /** The options for the API client, handed to the shared parser with `--against-api`. */
  client: Record<string, string | boolean | undefined>;
  argv: string[];
}

/** Parses `verify`'s command line; `undefined` for `--help`. */
export function parseVerifyArgs(argv: string[]): VerifyArgs | undefined {
  const { values: v, positionals } = parseOptions(argv, OPTIONS);
  if (v.help) return undefined;
  if (positionals.length === 0) throw helpInstead(HELP);
  if (positionals.length > 1) {
    throw usage(`too many arguments: '${positionals.slice(1).join(" ")}'`);
  }
  const apiOnly = ["event-type", "after", "before"] as const;
  for (const name of apiOnly) {
    if (v[name] !== undefined && v["against-api"] === undefined) {
      throw usage(`--${name} needs --against-api <workspace_or_org_id>`);
    }
  }
  for (const name of ["report", "public-key", "against-api"] as const) {
    if (v[name] === "") throw usage(`--${name} needs a value`);
  }
  if (v.report !== undefined && !/\.html?$/i.test(v.report)) {
    throw usage(`--report ${v.report}: name an .html file`);
  }
  return {
    archive: positionals[0],
    againstApi: v["against-api"],
    eventTypes: v["event-type"],
    after: v.after,
    before: v.before,
    publicKey: v["public-key"],
    report: v.report,
    json: Boolean(v.json),
    quiet: Boolean(v.quiet),
    client: {
      "api-base": v["api-base"],
      retries: v.retries,
      timeout: v.timeout,
      quiet: true,
    },
    argv,
  };
}

/** Runs the verification; resolves with whether the archive is intact. */
export async function verifyArchive(args: VerifyArgs, env: Env): Promise<boolean> {
  const [
    { resolveDestinations, destinationSecrets },
    { checkArchive },
    { buildReport, renderText },
  ] = await Promise.all([
    import("../destinations/mod.ts"),
    import("../verify/check.ts"),
    import("../verify/report.ts"),
  ]);
  // A bucket is read with the credentials a run into it uses: redacted from all output alike.
  for (const secret of destinationSecrets(env)) registerSecret(secret);
  const [destination] = resolveDestinations({ "output-dir": args.archive }, {
    follow: false,
    env,
  });
  const store = destination.archive;
  if (!store) {
    throw usage(`verify cannot read ${args.archive} yet: no archive reader for that kind`);
  }
  if (parseLocation(args.archive).kind !== "url") await refuseMissingDirectory(args.archive);
  else await refuseEmptyPrefix(store);
  const publicKey = args.publicKey === undefined
    ? undefined
    : await (await import("../manifest/signing.ts")).loadPublicKey(args.publicKey);
  const progress = args.quiet || !stderrIsTerminal() ? undefined : progressLine();
  const result = await checkArchive(store, { publicKey, onProgress: progress?.update });
  progress?.end();
  const extra = args.againstApi === undefined ? [] : await againstApi(args, env, result);
  const report = buildReport(result, extra, {
    archive: args.archive,
    command: commandLine(args.argv),
    againstApi: args.againstApi !== undefined,
  });
  if (!args.quiet) writeStderr(renderText(report));
  if (args.report !== undefined) {
    const [{ renderHtml }, { writeFileAtomic }] = await Promise.all([
      import("../verify/html.ts"),
      import("../atomic.ts"),
    ]);
    await writeFileAtomic(args.report, renderHtml(report), 0o644);
  }
  if (args.json) await writeStdout(new TextEncoder().encode(JSON.stringify(report) + "\n"));
  return report.intact;
}

/** Lists the API on the command harness and returns the gaps it found. */
async function againstApi(
  args: VerifyArgs,
  env: Env,
  result: import("../verify/check.ts").CheckResult,
): Promise<import("../verify/model.ts").Finding[]> {
  const [{ runCommand }, { apiGaps }] = await Promise.all([
    import("../harness.ts"),
    import("../verify/api_gaps.ts"),
  ]);
  const types = [...result.types.keys()].sort();
  const eventTypes = args.eventTypes ?? types.join(",");
  if (!eventTypes) {
    throw usage("--against-api: the archive records no event type; name them with --event-type");
  }
  // Each type over the window the archive covers (its first start to its last end), unless given.
  const covered = new Map([...result.types.values()].map((t) => [t.eventType, t.covered]));
  const firstStart = [...covered.values()].flatMap((c) => c.map((w) => w.from)).sort()[0];
  const after = args.after ?? firstStart;
  if (after === undefined) {
    throw usage("--against-api: the archive records no window; give --after");
  }
  const settings = parseCommandSettings(
    { ...args.client, "event-type": eventTypes, after, before: args.before } as never,
    [args.againstApi!],
    env,
    { defaultSettleMs: 0 },
  );
  const windows = settings.selection.eventTypes.map((eventType) => {
    const stretches = covered.get(eventType) ?? [];
    return {
      eventType,
      after: args.after === undefined
        ? stretches[0]?.from ?? after
        : settings.selection.after?.iso ?? after,
      // The API's `before` is exclusive: a microsecond past the last end_time listed.
      before: args.before === undefined
        ? stretches.length ? justAfter(stretches.at(-1)!.to) : undefined
        : settings.listing.before,
    };
  });
  let found: import("../verify/model.ts").Finding[] = [];
  await runCommand(settings, env, async ({ client, started }) => {
    started();
    found = await apiGaps(client, result, { windows, limit: settings.listing.limit });
  }, { summarize: (summary) => ({ ...summary, files: found.length }) });
  return found;
}

/** The ISO time one microsecond after `iso`. */
function justAfter(iso: string): string {
  const micros = toMicros(iso)! + 1n;
  const seconds = new Date(Number(micros / 1_000_000n) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${String(micros % 1_000_000n).padStart(6, "0")}Z`;
}

/** A bucket prefix with nothing under it is a mistyped name, not an intact empty archive. */
async function refuseEmptyPrefix(
  store: import("../manifest/store.ts").ArchiveStore,
): Promise<void> {
  if ((await store.manifests()).length > 0) return;
  for await (const _ of store.objects()) return;
  throw new CliError(
    "io",
    `cannot verify ${store.label}: nothing is stored under it; name the --output-dir of a run`,
  );
}

async function refuseMissingDirectory(path: string): Promise<void> {
  try {
    if ((await stat(path)).isDirectory()) return;
  } catch (error) {
    const why = codeOf(error) === "ENOENT" ? "no such directory" : reason(error);
    throw new CliError("io", `cannot verify ${path}: ${why}`, { cause: error });
  }
  throw usage(`verify ${path}: not a directory; name an --output-dir archive`);
}

/** Files and bytes per second on a terminal, redrawn at most 4 times a second. */
function progressLine(): { update: (files: number, bytes: number) => void; end: () => void } {
  const started = Date.now();
  let drawn = 0;
  let shown = false;
  return {
    update(files, bytes) {
      const now = Date.now();
      if (now - drawn < 250) return;
      drawn = now;
      shown = true;
      const seconds = Math.max((now - started) / 1000, 0.001);
      const mb = bytes / 1024 / 1024;
      writeStderr(
        `\rverifying: ${files} files, ${mb.toFixed(1)} MB, ${(files / seconds).toFixed(0)} ` +
          `files/s, ${(mb / seconds).toFixed(1)} MB/s\x1b[K`,
      );
    },
    end() {
      if (shown) writeStderr("\r\x1b[K");
    },
  };
}

/** The command line as typed, quoted where a shell would need it. */
function commandLine(argv: string[]): string {
  const quote = (word: string) =>
    /^[A-Za-z0-9_./:=,@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
  return ["oai-compliance-logs", "verify", ...argv].map(quote).join(" ");
}

export const command: Command = {
  name: "verify",
  summary: "check an --output-dir archive against its manifests (and the API)",
  help: HELP,
  async main(argv, env) {
    const args = parseVerifyArgs(argv);
    if (!args) return writeStdout(new TextEncoder().encode(HELP + "\n"));
    const intact = await verifyArchive(args, env);
    if (!intact) exit(3);
  },
};
