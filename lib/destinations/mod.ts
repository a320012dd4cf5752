/**
 * Where files go. This folder holds one module per destination, the delivery contract they all
 * keep (`contract.ts`), what they share (spools, line splitting, confirmations in listing order)
 * and this registry, the one place that knows them all.
 *
 * Each destination module exports a `DestinationKind`: the option it serves (`-o` or
 * `--output-dir`, or none for stdout), the URL schemes it takes (none: a local path), its own
 * options with their help, the environment variables that hold its secrets (for redaction), the
 * run options it cannot be combined with, and `configure`, which checks its value and options
 * and returns a `ConfiguredDestination` that can check itself before the first download
 * (paths, credentials, reachability) and open. Adding a destination is one new file and one line
 * in `DESTINATIONS` below; the commands, the session and the pass never name a kind.
 *
 * @example
 * ```ts
 * import type { DestinationContext } from "./kind.ts";
 * declare const context: DestinationContext;
 * const [destination] = resolveDestinations({ "output-dir": "logs" }, context);
 * await destination.check();
 * const opened = await destination.open({ retry() {}, warn() {}, keptAside() {} });
 * ```
 */
import { parseLocation } from "../locations.ts";
import type { OptionTable, OptionValues } from "../options.ts";
import { usage } from "../errors.ts";
import type { Env } from "../settings.ts";
import type {
  ConfiguredDestination,
  DestinationContext,
  DestinationFlag,
  DestinationKind,
} from "./kind.ts";
import { azureBlobKind } from "./azure_blob.ts";
import { directoryKind } from "./directory.ts";
import { elasticsearchKind } from "./elasticsearch.ts";
import { outputFileKind } from "./output_file.ts";
import { splunkHecKind } from "./splunk_hec.ts";
import { s3Kind } from "./s3.ts";
import { stdoutKind } from "./stdout.ts";
import { syslogKind } from "./syslog.ts";

export type * from "./kind.ts";

/** Every destination. One line each; the order is the order of `--help`. */
export const DESTINATIONS: readonly DestinationKind[] = [
  stdoutKind,
  outputFileKind,
  directoryKind,
  s3Kind,
  azureBlobKind,
  splunkHecKind,
  elasticsearchKind,
  syslogKind,
];

/** The option's spelling on the command line. */
export function flagName(flag: DestinationFlag): string {
  return flag === "output" ? "-o" : "--output-dir";
}

/**
 * Every destination's own options, merged into one table for the run command's parser (an option
 * several kinds take, such as a file mode, is declared alike by each).
 *
 * @example
 * ```ts
 * import { SHARED_OPTIONS } from "../commands/_arguments.ts";
 * const table = { ...SHARED_OPTIONS, ...destinationOptions() }; // as `run` builds its own
 * ```
 */
export function destinationOptions(kinds: readonly DestinationKind[] = DESTINATIONS): OptionTable {
  return Object.assign({}, ...kinds.map((kind) => kind.options));
}

/** The kind that takes `value` for `flag`: by URL scheme, else the flag's local-path kind. */
function kindFor(
  flag: DestinationFlag,
  value: string,
  kinds: readonly DestinationKind[],
): DestinationKind {
  const location = parseLocation(value);
  const candidates = kinds.filter((kind) => kind.flag === flag);
  const kind = location.kind === "url"
    ? candidates.find((k) => k.schemes.includes(location.scheme) && (k.takes?.(value) ?? true))
    : candidates.find((k) => k.schemes.length === 0);
  if (kind) return kind;
  const schemes = candidates.flatMap((k) => k.schemes.map((s) => `${s}://`));
  const name = flagName(flag);
  const what = location.kind === "url"
    // A scheme some kind has, but only for its own hosts (`takes`): this URL is not one of them.
    ? (schemes.includes(`${location.scheme}://`)
      ? `this ${location.scheme}:// URL`
      : `${location.scheme}:// URLs`)
    : "local paths";
  const takes = [
    ...(candidates.some((k) => k.schemes.length === 0) ? ["a local path"] : []),
    ...(schemes.length ? [`a URL of ${schemes.join(", ")}`] : []),
  ];
  throw usage(
    `${name} ${value}: no destination takes ${what}; ${name} takes ${takes.join(" or ")}` +
      (schemes.length ? "" : " (no URL schemes are supported yet)"),
  );
}

/**
 * The destinations a command line names (`-o`, `--output-dir`; stdout when neither), each
 * configured, after the checks every kind shares: its URL scheme is registered, no option of a
 * kind that was not chosen is given, and no option it conflicts with is. Usage errors, and nothing
 * is created. `kinds` are the destinations to choose from (the registry's, unless a test adds one).
 *
 * @example
 * ```ts
 * import type { DestinationContext } from "./kind.ts";
 * declare const context: DestinationContext;
 * resolveDestinations({ output: "out.jsonl" }, context); // [the -o destination]
 * ```
 */
export function resolveDestinations(
  values: OptionValues<OptionTable>,
  context: DestinationContext,
  kinds: readonly DestinationKind[] = DESTINATIONS,
): ConfiguredDestination[] {
  const named: Array<{ kind: DestinationKind; target: string }> = [];
  for (const flag of ["output", "output-dir"] as const) {
    const value = values[flag];
    if (value === undefined) continue;
    if (value === "") throw usage(`${flagName(flag)} needs a path`);
    named.push({ kind: kindFor(flag, value as string, kinds), target: value as string });
  }
  if (named.length === 0) named.push({ kind: stdoutKind, target: "" });
  const chosen = named.map((n) => n.kind);
  for (const kind of kinds) {
    for (const option of Object.keys(kind.options)) {
      if (values[option] === undefined || chosen.some((k) => option in k.options)) continue;
      const owners = kinds.filter((k) => option in k.options && k.flag)
        .map((k) => `${flagName(k.flag!)} (${k.name})`);
      throw usage(`--${option} needs ${owners.join(" or ")}`);
    }
  }
  return named.map(({ kind, target }) => {
    for (const [option, why] of Object.entries(kind.conflicts)) {
      const value: unknown = values[option];
      if (value === undefined || value === false) continue;
      const label = kind.flag ? `${flagName(kind.flag)} ${target}` : kind.name;
      throw usage(`${label} cannot be used with --${option}: ${why}`);
    }
    return kind.configure(target, values, context);
  });
}

/** The values of every registered destination's secret environment variables that are set. */
export function destinationSecrets(
  env: Env,
  kinds: readonly DestinationKind[] = DESTINATIONS,
): string[] {
  return kinds.flatMap((kind) => kind.secretEnv.map((name) => env[name]))
    .filter((value): value is string => Boolean(value));
}
