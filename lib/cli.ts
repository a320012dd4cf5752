/**
 * The dispatch table behind `main.ts`: `--version` and the top-level `--help` answered here, every
 * command imported only when it is asked for. A command line that names no command is a run (the
 * quickstart scripts' interface); `--list` on it is the `list` command.
 *
 * @example
 * ```ts
 * await cli(["list", "ws-1", "AUTH_LOG", "--after", "24h"], process.env);
 * ```
 */
import type { Command, Env } from "./commands/contract.ts";
import { VERSION } from "./version.ts";

/** Every command, by the word that selects it; each module loaded on first use. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./commands/run.ts")).command,
  list: async () => (await import("./commands/list.ts")).command,
  state: async () => (await import("./commands/state.ts")).command,
  verify: async () => (await import("./commands/verify.ts")).command,
};

/** The command a run's command line routes to, and the words it gets. */
function route(argv: string[]): { name: string; argv: string[] } {
  if (argv[0] !== undefined && argv[0] in COMMANDS) {
    return { name: argv[0], argv: argv.slice(1) };
  }
  // `--list` (before any `--`) was a run option; it stays, as the `list` command.
  const end = argv.indexOf("--");
  const list = argv.indexOf("--list");
  if (list >= 0 && (end < 0 || list < end)) {
    return { name: "list", argv: argv.filter((_, i) => i !== list) };
  }
  return { name: "run", argv };
}

/** The top-level help: the run's (what runs without a command), then every command. */
async function topLevelHelp(): Promise<string> {
  const commands = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  const rows = commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`);
  const [run] = commands;
  return `${run.help}\n\nCommands (each with its own --help):\n${rows.join("\n")}\n` +
    `  e.g. oai-compliance-logs state show|reset|skip <state_file> ...; verify <dir>\n` +
    `  help [command]  this help, or a command's\n` +
    `  -V, --version   print the version\n`;
}

async function print(text: string): Promise<void> {
  const { writeStdout } = await import("./runtime.ts");
  await writeStdout(new TextEncoder().encode(text));
}

/** The words before a `--` (after it, everything is an argument). */
function optionWords(argv: string[]): string[] {
  const end = argv.indexOf("--");
  return end < 0 ? argv : argv.slice(0, end);
}

/**
 * Runs the command `argv` asks for; resolves when it is done, throws a `CliError` for main.ts to
 * report (unless a command's reporter already showed it). `--version` is answered wherever it
 * stands; `help [command]` is the top-level help or that command's.
 */
export async function cli(argv: string[], env: Env): Promise<void> {
  const words = optionWords(argv);
  if (words.includes("--version") || words.includes("-V")) {
    const { runtimeName } = await import("./runtime.ts");
    return print(`oai-compliance-logs ${VERSION} (${runtimeName()})\n`);
  }
  const [first, second, ...extra] = argv;
  if (first === "--help" || first === "-h" || (first === "help" && second === undefined)) {
    return print(await topLevelHelp());
  }
  if (first === "help") {
    if (!(second in COMMANDS) || extra.length > 0) {
      const { usage } = await import("./errors.ts");
      throw usage(
        `help takes one command name (${Object.keys(COMMANDS).join(", ")}); got '${
          [second, ...extra].join(" ")
        }'`,
      );
    }
    return print((await COMMANDS[second]()).help + "\n");
  }
  const { name, argv: rest } = route(argv);
  const command = await COMMANDS[name]();
  await command.main(rest, env);
}
