/**
 * Option tables: each option a command or destination takes, declared once with its help line,
 * so that parsing (`parseOptions`, strict: an unknown option is a usage error with a suggestion)
 * and the `--help` text (`optionHelp`) come from the same table and cannot drift apart.
 *
 * @example
 * ```ts
 * const table = {
 *   gzip: { type: "boolean", help: "write .jsonl.gz" },
 *   concurrency: { type: "string", arg: "N", help: "parallel downloads (default 4)" },
 * } as const satisfies OptionTable;
 * const { values } = parseOptions(["--gzip"], table);
 * console.log(values.gzip, optionHelp(table));
 * ```
 */
import { parseArgs } from "node:util";
import { messageOf, usage } from "./errors.ts";

/** One option: its kind, short letter, the name of its value in help, and its help text. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** The value's name in the help (`--limit N`). */
  arg?: string;
  /** Help text; `\n` starts a continuation line. Empty: not listed (an alias). */
  help: string;
}

export type OptionTable = Record<string, OptionSpec>;

/** The parsed values of `T`: strings and booleans, undefined when not given. */
export type OptionValues<T extends OptionTable> = {
  [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string;
};

/** Where help text starts after the option names. */
const HELP_COLUMN = 25;

/**
 * The `Options:` lines of a help text for `table`, aligned, in the table's order.
 *
 * @example
 * ```ts
 * optionHelp({ quiet: { type: "boolean", short: "q", help: "errors only" } });
 * // "  -q, --quiet            errors only"
 * ```
 */
export function optionHelp(table: OptionTable): string {
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(table)) {
    if (!spec.help) continue;
    const names = `${spec.short ? `-${spec.short}, ` : ""}--${name}${
      spec.arg ? ` ${spec.arg}` : ""
    }`;
    const [first, ...rest] = spec.help.split("\n");
    const head = `  ${names}`;
    lines.push(
      head.length < HELP_COLUMN - 1
        ? head.padEnd(HELP_COLUMN) + first
        : `${head}\n${" ".repeat(HELP_COLUMN)}${first}`,
    );
    for (const line of rest) lines.push(" ".repeat(HELP_COLUMN) + line);
  }
  return lines.join("\n");
}

/**
 * The rows of a Markdown table of `table` (the README's options table is generated from the same
 * tables as `--help`, so that the two cannot disagree).
 *
 * @example
 * ```ts
 * optionMarkdown({ quiet: { type: "boolean", short: "q", help: "errors only" } });
 * // "| `-q, --quiet` | errors only |"
 * ```
 */
export function optionMarkdown(table: OptionTable): string {
  return Object.entries(table).filter(([, spec]) => spec.help).map(([name, spec]) => {
    const names = `${spec.short ? `-${spec.short}, ` : ""}--${name}${
      spec.arg ? ` ${spec.arg}` : ""
    }`;
    const escape = (text: string) => text.replaceAll("|", "\\|");
    return `| \`${escape(names)}\` | ${escape(spec.help.split("\n").join(" "))} |`;
  }).join("\n");
}

/** Edit distance, for suggesting the option a typo meant. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

/** `--name` of the table closest to `given` (a typo), or undefined when none is close. */
function closest(given: string, table: OptionTable): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of Object.keys(table)) {
    const d = distance(given, name);
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(given.length / 3))
    ? best
    : undefined;
}

/** One usage line for what `parseArgs` refused, in words a user can act on. */
function refusal(message: string, argv: string[], table: OptionTable): string {
  const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(message);
  if (unknown) {
    const [, dashes, name] = unknown;
    // A negative number where a positional belongs (`<limit>` -5) is not an option at all.
    if (/^\d+$/.test(name) && dashes === "-") {
      return `-${name} is not valid here: arguments that are numbers must not be negative`;
    }
    const near = dashes === "--" ? closest(name, table) : undefined;
    return `unknown option ${dashes}${name}` + (near ? `; did you mean --${near}?` : "");
  }
  const ambiguous = /^Option '(?:-\w, )?--([\w-]+)' argument is ambiguous/.exec(message);
  if (ambiguous) {
    const name = ambiguous[1];
    const index = argv.findIndex((word) => word === `--${name}`);
    const next = index >= 0 ? argv[index + 1] : undefined;
    return next !== undefined && /^-\d/.test(next)
      ? `--${name} must not be negative; got '${next}'`
      : `--${name} needs a value`;
  }
  const missing = /^Option '(?:-\w, )?--([\w-]+) <value>' argument missing/.exec(message);
  if (missing) return `--${missing[1]} needs a value`;
  return message.split("\n")[0].replace(/\.$/, "");
}

/**
 * `argv` read against `table`, strictly: an unknown option (with the nearest known one
 * suggested), a missing value or a negative number given as a value is a one-line usage error.
 *
 * @example
 * ```ts
 * const table = { quiet: { type: "boolean", short: "q", help: "errors only" } } as const;
 * const { values, positionals } = parseOptions(["-q", "ws-1"], table);
 * ```
 */
export function parseOptions<T extends OptionTable>(
  argv: string[],
  table: T,
): { values: OptionValues<T>; positionals: string[] } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, spec] of Object.entries(table)) {
    options[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  }
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as OptionValues<T>, positionals };
  } catch (error) {
    throw usage(refusal(messageOf(error), argv, table));
  }
}
