/**
 * Runs a composite GitHub Action (`action.yml`) here, the way the Actions runner would, for tests:
 * inputs with their defaults, `${{ }}` expressions (contexts `inputs`, `steps`, `github`, `runner`,
 * `env`; operators `== != && || !`; `always() success() failure() cancelled()`), each `run:` step
 * in bash (`bash --noprofile --norc -eo pipefail`, as `shell: bash` does) with its own
 * GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY files, `if:` conditions, and the
 * action's outputs. A `uses:` step runs a stand-in from `uses` (e.g. `fakeActionsCache`) or is
 * recorded and skipped.
 *
 * The YAML reader takes the subset action.yml is written in: block mappings and sequences,
 * `|` / `|-` block scalars, plain, 'single' and "double" quoted scalars, comments. Anything else
 * (flow collections, anchors, `>` folding) is an error, never a silent misreading.
 *
 * @example
 * const run = await runCompositeAction({ actionDir: REPO_ROOT, inputs: { principal: "ws-1" }, workspace, runnerTemp });
 * assert.equal(run.outputs.status, "ok");
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import process from "node:process";

// ---------------------------------------------------------------------------------------------
// YAML subset

export type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  number: number;
}

/** Parses the YAML subset described above; throws with the line number on anything else. */
export function parseYaml(source: string): Yaml {
  const lines: Line[] = source.split(/\r?\n/).map((raw, i) => {
    if (/^\s*\t/.test(raw)) throw new Error(`line ${i + 1}: tab in indentation`);
    const text = raw.replace(/^ +/, "");
    return { indent: raw.length - text.length, text, number: i + 1 };
  });
  let at = 0;
  const isBlank = (line: Line) => line.text === "" || line.text.startsWith("#");
  const skipBlank = () => {
    while (at < lines.length && isBlank(lines[at])) at++;
  };
  const fail = (line: Line, why: string): never => {
    throw new Error(`line ${line.number}: ${why}: ${line.text}`);
  };

  function scalar(text: string, line: Line): string | null {
    if (text.startsWith('"')) {
      const end = closingQuote(text, '"');
      if (end < 0) fail(line, "unterminated string");
      rest(text.slice(end + 1), line);
      return JSON.parse(text.slice(0, end + 1));
    }
    if (text.startsWith("'")) {
      const end = closingQuote(text, "'");
      if (end < 0) fail(line, "unterminated string");
      rest(text.slice(end + 1), line);
      return text.slice(1, end).replaceAll("''", "'");
    }
    const plain = text.replace(/(^|\s+)#.*$/, "").trim();
    if (/^[[{&*!%@`>]/.test(plain)) fail(line, "unsupported YAML");
    if (plain === "" || plain === "~" || plain === "null") return null;
    return plain;
  }

  function rest(text: string, line: Line) {
    if (text.trim() !== "" && !text.trim().startsWith("#")) fail(line, "text after a string");
  }

  function blockScalar(header: string, parentIndent: number, line: Line): string {
    if (!/^\|[-+]?\s*(#.*)?$/.test(header)) fail(line, "unsupported block scalar");
    const body: Line[] = [];
    while (at < lines.length && (lines[at].text === "" || lines[at].indent > parentIndent)) {
      body.push(lines[at++]);
    }
    while (body.length && body[body.length - 1].text === "") body.pop();
    const indent = Math.min(...body.filter((l) => l.text !== "").map((l) => l.indent));
    const text = body.map((l) => l.text === "" ? "" : " ".repeat(l.indent - indent) + l.text)
      .join("\n");
    return header.startsWith("|-") ? text : text + "\n";
  }

  /** The value after `key:` or `- `: inline, a block scalar, or a nested block. */
  function value(inline: string, indent: number, line: Line): Yaml {
    if (inline.startsWith("|") || inline.startsWith(">")) return blockScalar(inline, indent, line);
    if (inline.trim() !== "" && !inline.trim().startsWith("#")) return scalar(inline, line);
    skipBlank();
    if (at >= lines.length) return null;
    const next = lines[at];
    if (next.indent > indent) return block(next.indent);
    // A sequence may sit at its key's own indentation.
    if (next.indent === indent && /^-( |$)/.test(next.text)) return sequence(indent);
    return null;
  }

  function mapping(indent: number): { [key: string]: Yaml } {
    const out: { [key: string]: Yaml } = {};
    for (skipBlank(); at < lines.length && lines[at].indent === indent; skipBlank()) {
      const line = lines[at];
      if (/^-( |$)/.test(line.text)) break;
      const match = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s'"#:][^:#]*?)\s*:(?:\s+(.*))?$/.exec(
        line.text,
      );
      if (!match) fail(line, "expected 'key: value'");
      const key = scalar(match![1], line) ?? "";
      if (Object.hasOwn(out, key)) fail(line, `duplicate key '${key}'`);
      at++;
      out[key] = value(match![2] ?? "", indent, line);
    }
    if (at < lines.length && lines[at].indent > indent) fail(lines[at], "bad indentation");
    return out;
  }

  function sequence(indent: number): Yaml[] {
    const out: Yaml[] = [];
    for (skipBlank(); at < lines.length && lines[at].indent === indent; skipBlank()) {
      const line = lines[at];
      const match = /^-( +|$)(.*)$/.exec(line.text);
      if (!match) break;
      const content = match[2];
      if (/^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s'"#:][^:#]*?)\s*:(\s|$)/.test(content)) {
        // `- key: value ...`: a mapping indented where its first key starts.
        lines[at] = { ...line, indent: indent + 1 + match[1].length, text: content };
        out.push(mapping(indent + 1 + match[1].length));
      } else {
        at++;
        out.push(value(content, indent, line));
      }
    }
    return out;
  }

  function block(indent: number): Yaml {
    skipBlank();
    if (at >= lines.length) return null;
    return /^-( |$)/.test(lines[at].text) ? sequence(indent) : mapping(indent);
  }

  skipBlank();
  const root = at < lines.length ? block(lines[at].indent) : null;
  skipBlank();
  if (at < lines.length) fail(lines[at], "unexpected text");
  return root;
}

function closingQuote(text: string, quote: string): number {
  for (let i = 1; i < text.length; i++) {
    if (quote === '"' && text[i] === "\\") i++;
    else if (text[i] === quote) {
      if (quote === "'" && text[i + 1] === "'") i++;
      else return i;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Expressions

type Value = string | number | boolean | null | { [key: string]: Value };

export interface Contexts {
  inputs: Record<string, string>;
  steps: Record<string, { outputs: Record<string, string>; outcome: string; conclusion: string }>;
  github: Record<string, string>;
  runner: Record<string, string>;
  env: Record<string, string>;
  /** Whether a step before has failed (for success() / failure()). */
  failed: boolean;
}

/** Evaluates one expression (the text inside `${{ }}`). */
export function evaluate(expression: string, contexts: Contexts): Value {
  const tokens = expression.match(
    /\s*('(?:[^']|'')*'|==|!=|&&|\|\||[!()]|-?\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_.-]*)\s*/g,
  );
  if (!tokens || tokens.join("").trim().length !== expression.trim().length) {
    throw new Error(`unsupported expression: ${expression}`);
  }
  const list = tokens.map((t) => t.trim()).filter(Boolean);
  let i = 0;
  const peek = () => list[i];
  const take = (expected?: string) => {
    const token = list[i++];
    if (expected !== undefined && token !== expected) {
      throw new Error(`expected ${expected} in: ${expression}`);
    }
    return token;
  };

  function or(): Value {
    let left = and();
    while (peek() === "||") {
      take();
      const right = and();
      left = truthy(left) ? left : right;
    }
    return left;
  }
  function and(): Value {
    let left = compare();
    while (peek() === "&&") {
      take();
      const right = compare();
      left = truthy(left) ? right : left;
    }
    return left;
  }
  function compare(): Value {
    const left = unary();
    if (peek() === "==" || peek() === "!=") {
      const op = take();
      const same = equal(left, unary());
      return op === "==" ? same : !same;
    }
    return left;
  }
  function unary(): Value {
    if (peek() === "!") {
      take();
      return !truthy(unary());
    }
    return primary();
  }
  function primary(): Value {
    const token = take();
    if (token === undefined) throw new Error(`incomplete expression: ${expression}`);
    if (token === "(") {
      const inner = or();
      take(")");
      return inner;
    }
    if (token.startsWith("'")) return token.slice(1, -1).replaceAll("''", "'");
    if (/^-?\d/.test(token)) return Number(token);
    if (token === "true" || token === "false") return token === "true";
    if (token === "null") return null;
    if (peek() === "(") {
      if (!["always", "success", "failure", "cancelled"].includes(token)) {
        throw new Error(`unsupported function ${token}()`);
      }
      take("(");
      take(")");
      switch (token) {
        case "always":
          return true;
        case "success":
          return !contexts.failed;
        case "failure":
          return contexts.failed;
        case "cancelled":
          return false;
      }
      throw new Error(`unsupported function ${token}()`);
    }
    const [root, ...path] = token.split(".");
    if (!["inputs", "steps", "github", "runner", "env"].includes(root)) {
      throw new Error(`unknown context '${root}' in: ${expression}`);
    }
    // Missing properties are null, as on GitHub.
    let current: Value = contexts[root as keyof Contexts] as Value;
    for (const key of path) {
      current = current && typeof current === "object" ? (current[key] ?? null) : null;
    }
    return current;
  }

  const result = or();
  if (i !== list.length) throw new Error(`unexpected '${list[i]}' in: ${expression}`);
  return result;
}

function truthy(value: Value): boolean {
  return !(value === null || value === false || value === "" || value === 0);
}

/** GitHub compares strings ignoring case, and converts mixed types to numbers. */
function equal(a: Value, b: Value): boolean {
  if (typeof a === "string" && typeof b === "string") return a.toLowerCase() === b.toLowerCase();
  if (typeof a === typeof b) return a === b;
  const number = (v: Value) =>
    v === null
      ? 0
      : typeof v === "boolean"
      ? Number(v)
      : typeof v === "string"
      ? Number(v || 0)
      : NaN;
  return number(a) === number(b);
}

function asString(value: Value): string {
  if (value === null) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Replaces each `${{ expr }}` in `text` with its value. */
export function substitute(text: string, contexts: Contexts): string {
  return text.replace(
    /\$\{\{(.*?)\}\}/g,
    (_, expression: string) => asString(evaluate(expression, contexts)),
  );
}

/** An `if:` condition: an expression, with or without `${{ }}`; none means success(). */
function condition(text: Yaml | undefined, contexts: Contexts): boolean {
  if (text === undefined || text === null) return !contexts.failed;
  const trimmed = String(text).trim();
  const wrapped = /^\$\{\{(.*)\}\}$/s.exec(trimmed);
  return truthy(evaluate(wrapped ? wrapped[1] : trimmed, contexts));
}

// ---------------------------------------------------------------------------------------------
// Running

export interface StepRecord {
  id?: string;
  name: string;
  kind: "run" | "uses";
  /** `success`, `failure` or `skipped`. */
  outcome: string;
  outputs: Record<string, string>;
  /** For `uses:` steps: the action and its evaluated `with:`. */
  uses?: string;
  with?: Record<string, string>;
  /** For `run:` steps: the script as run (after substitution), and what it printed. */
  script?: string;
  env?: Record<string, string>;
  stdout?: string;
  stderr?: string;
  exitCode?: number | null;
}

/** A stand-in for a `uses:` action: returns its outputs, or throws to fail the step. */
export type UsesHandler = (
  withInputs: Record<string, string>,
  context: { workspace: string; log: (line: string) => void },
) => Promise<Record<string, string>>;

export interface CompositeRunOptions {
  /** Directory holding action.yml (GITHUB_ACTION_PATH). */
  actionDir: string;
  inputs: Record<string, string>;
  /** The job's working directory (GITHUB_WORKSPACE). */
  workspace: string;
  /** RUNNER_TEMP; the per-step command files go in here. */
  runnerTemp: string;
  /** Variables of the job (e.g. COMPLIANCE_API_BASE); PATH and HOME come from this process. */
  env?: Record<string, string>;
  /** `github` context values; run_id, run_attempt, repository, action_ref... have defaults. */
  github?: Record<string, string>;
  /** Stand-ins for `uses:` steps, by action name without `@ref` (e.g. `actions/cache/restore`). */
  uses?: Record<string, UsesHandler>;
}

export interface CompositeRun {
  /** The action's outputs (its `outputs:` evaluated at the end). */
  outputs: Record<string, string>;
  /** Whether a step failed: the job step that used the action would fail. */
  failed: boolean;
  steps: StepRecord[];
  /** Everything written to GITHUB_STEP_SUMMARY, in order. */
  summary: string;
  /** `::error::` / `::warning::` / `::notice::` lines the steps printed. */
  annotations: string[];
  /** Lines the `uses:` stand-ins logged, plus the steps' output. */
  log: string;
}

/** Reads a GITHUB_OUTPUT / GITHUB_ENV file: `name=value` and `name<<DELIMITER` blocks. */
export function parseCommandFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) body.push(lines[i]);
      if (i >= lines.length) throw new Error(`unterminated ${heredoc[1]}<<${heredoc[2]}`);
      out[heredoc[1]] = body.join("\n");
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`bad command file line: ${line}`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

function asRecord(value: Yaml | undefined, what: string): Record<string, Yaml> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what} is not a mapping`);
  }
  return value;
}

/** Reads `action.yml` (or `action.yaml`) from `dir`. */
export async function readAction(dir: string): Promise<Record<string, Yaml>> {
  const path = existsSync(join(dir, "action.yml"))
    ? join(dir, "action.yml")
    : join(dir, "action.yaml");
  return asRecord(parseYaml(await readFile(path, "utf8")), path);
}

function runBash(
  script: string,
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => stdout += chunk);
    child.stderr.on("data", (chunk) => stderr += chunk);
    child.on("error", reject);
    const timer = setTimeout(() => child.kill("SIGKILL"), 110_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Runs the composite action's steps in order, as the Actions runner would. */
export async function runCompositeAction(options: CompositeRunOptions): Promise<CompositeRun> {
  const action = await readAction(options.actionDir);
  const runs = asRecord(action.runs, "runs");
  if (runs.using !== "composite") throw new Error(`not a composite action: using ${runs.using}`);
  const declared = asRecord(action.inputs, "inputs");
  for (const name of Object.keys(options.inputs)) {
    if (!Object.hasOwn(declared, name)) throw new Error(`action.yml has no input '${name}'`);
  }
  const inputs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    inputs[name] = options.inputs[name] ?? String(asRecord(spec, `input ${name}`).default ?? "");
  }

  const github: Record<string, string> = {
    run_id: "1000",
    run_attempt: "1",
    repository: "example/oai-compliance-logs",
    action_repository: "",
    action_ref: "",
    workspace: options.workspace,
    action_path: options.actionDir,
    ...options.github,
  };
  const runner = {
    temp: options.runnerTemp,
    os: process.platform === "darwin" ? "macOS" : "Linux",
  };
  const jobEnv: Record<string, string> = { ...options.env };
  const pathAdditions: string[] = [];
  const contexts: Contexts = { inputs, steps: {}, github, runner, env: jobEnv, failed: false };
  const result: CompositeRun = {
    outputs: {},
    failed: false,
    steps: [],
    summary: "",
    annotations: [],
    log: "",
  };
  const commandDir = join(options.runnerTemp, "_runner_file_commands");
  await mkdir(commandDir, { recursive: true });

  const steps = runs.steps;
  if (!Array.isArray(steps)) throw new Error("runs.steps is not a list");
  for (const [index, raw] of steps.entries()) {
    const step = asRecord(raw, `step ${index + 1}`);
    const id = step.id == null ? undefined : String(step.id);
    const record: StepRecord = {
      id,
      name: String(step.name ?? step.uses ?? `step ${index + 1}`),
      kind: step.uses != null ? "uses" : "run",
      outcome: "skipped",
      outputs: {},
    };
    result.steps.push(record);
    const publish = () => {
      if (id) {
        contexts.steps[id] = {
          outputs: record.outputs,
          outcome: record.outcome,
          conclusion: record.outcome,
        };
      }
    };
    if (!condition(step.if, contexts)) {
      publish();
      continue;
    }
    const stepEnv: Record<string, string> = {};
    for (const [name, value] of Object.entries(asRecord(step.env, "env"))) {
      stepEnv[name] = substitute(String(value ?? ""), contexts);
    }

    if (step.uses != null) {
      const uses = String(step.uses);
      const withInputs: Record<string, string> = {};
      for (const [name, value] of Object.entries(asRecord(step.with, "with"))) {
        withInputs[name] = substitute(String(value ?? ""), contexts);
      }
      record.uses = uses;
      record.with = withInputs;
      const handler = options.uses?.[uses.replace(/@.*$/, "")];
      if (!handler) {
        result.log += `(skipped ${uses})\n`;
        publish();
        continue;
      }
      try {
        record.outputs = await handler(withInputs, {
          workspace: options.workspace,
          log: (line) => result.log += `[${uses}] ${line}\n`,
        });
        record.outcome = "success";
      } catch (error) {
        result.log += `[${uses}] failed: ${(error as Error).message}\n`;
        record.outcome = "failure";
      }
    } else {
      if (step.shell == null) {
        throw new Error(`step ${record.name}: a composite run step needs shell:`);
      }
      if (step.shell !== "bash") {
        throw new Error(`step ${record.name}: only shell: bash is run here`);
      }
      const files = {
        GITHUB_OUTPUT: join(commandDir, `set_output_${randomUUID()}`),
        GITHUB_ENV: join(commandDir, `set_env_${randomUUID()}`),
        GITHUB_PATH: join(commandDir, `add_path_${randomUUID()}`),
        GITHUB_STEP_SUMMARY: join(commandDir, `step_summary_${randomUUID()}`),
      };
      for (const path of Object.values(files)) await writeFile(path, "");
      const script = substitute(String(step.run ?? ""), contexts);
      const scriptPath = join(options.runnerTemp, `${randomUUID()}.sh`);
      await writeFile(scriptPath, script);
      const env: Record<string, string> = {
        PATH: [...pathAdditions, process.env.PATH ?? ""].join(delimiter),
        HOME: process.env.HOME ?? options.workspace,
        CI: "true",
        GITHUB_ACTIONS: "true",
        GITHUB_ACTION_PATH: options.actionDir,
        GITHUB_WORKSPACE: options.workspace,
        GITHUB_RUN_ID: github.run_id,
        GITHUB_RUN_ATTEMPT: github.run_attempt,
        GITHUB_REPOSITORY: github.repository,
        GITHUB_ACTION_REPOSITORY: github.action_repository,
        GITHUB_ACTION_REF: github.action_ref,
        RUNNER_TEMP: options.runnerTemp,
        RUNNER_OS: runner.os,
        ...jobEnv,
        ...stepEnv,
        ...files,
      };
      const cwd = step["working-directory"] == null
        ? options.workspace
        : join(options.workspace, String(step["working-directory"]));
      const run = await runBash(scriptPath, env, cwd);
      await rm(scriptPath, { force: true });
      Object.assign(record, {
        script,
        env: stepEnv,
        stdout: run.stdout,
        stderr: run.stderr,
        exitCode: run.code,
      });
      result.log += run.stdout + run.stderr;
      for (const line of run.stdout.split("\n")) {
        if (/^::(error|warning|notice)\b/.test(line)) result.annotations.push(line);
      }
      record.outputs = parseCommandFile(await readFile(files.GITHUB_OUTPUT, "utf8"));
      Object.assign(jobEnv, parseCommandFile(await readFile(files.GITHUB_ENV, "utf8")));
      const added = (await readFile(files.GITHUB_PATH, "utf8")).split(/\r?\n/).filter(Boolean);
      pathAdditions.unshift(...added.reverse());
      result.summary += await readFile(files.GITHUB_STEP_SUMMARY, "utf8");
      record.outcome = run.code === 0 ? "success" : "failure";
    }
    if (record.outcome === "failure" && step["continue-on-error"] !== "true") {
      contexts.failed = true;
      result.failed = true;
    }
    publish();
  }

  for (const [name, spec] of Object.entries(asRecord(action.outputs, "outputs"))) {
    result.outputs[name] = substitute(
      String(asRecord(spec, `output ${name}`).value ?? ""),
      contexts,
    );
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// actions/cache, with a local directory as the cache service

/**
 * `actions/cache/restore` and `actions/cache/save` stand-ins keeping entries in `dir`. Like the
 * real ones: keys are immutable (saving an existing key only warns), `restore-keys` are prefixes
 * matched newest first, and a missing path is a warning, not a failure. One path per entry.
 * Pass `handlers` as `uses`; `keys()` lists the saved keys, oldest first.
 */
export function fakeActionsCache(
  dir: string,
): { handlers: Record<string, UsesHandler>; keys(): string[] } {
  const saved: string[] = [];
  const entry = (key: string) => join(dir, encodeURIComponent(key));
  const resolvePath = (workspace: string, path: string) =>
    isAbsolute(path) ? path : join(workspace, path);
  const handlers: Record<string, UsesHandler> = {
    "actions/cache/restore": async (
      inputs,
      { workspace, log },
    ): Promise<Record<string, string>> => {
      const path = resolvePath(workspace, inputs.path.trim());
      const key = inputs.key;
      if (!key) throw new Error("Input required and not supplied: key");
      if (key.includes(",")) throw new Error(`Key Validation Error: ${key} cannot contain commas.`);
      let matched = saved.includes(key) ? key : undefined;
      for (const prefix of (inputs["restore-keys"] ?? "").split("\n").map((s) => s.trim())) {
        if (matched || !prefix) continue;
        matched = [...saved].reverse().find((k) => k.startsWith(prefix));
      }
      if (!matched) {
        log(`Cache not found for input keys: ${key}`);
        return { "cache-hit": "false", "cache-primary-key": key };
      }
      await mkdir(dirname(path), { recursive: true });
      await cp(entry(matched), path, { recursive: true });
      log(`Cache restored from key: ${matched}`);
      return {
        "cache-hit": String(matched === key),
        "cache-primary-key": key,
        "cache-matched-key": matched,
      };
    },
    "actions/cache/save": async (inputs, { workspace, log }) => {
      const path = resolvePath(workspace, inputs.path.trim());
      const key = inputs.key;
      if (!key) throw new Error("Input required and not supplied: key");
      if (key.includes(",")) throw new Error(`Key Validation Error: ${key} cannot contain commas.`);
      if (!existsSync(path)) {
        log(
          "Warning: Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.",
        );
        return {};
      }
      if (saved.includes(key)) {
        log(
          `Warning: Failed to save: Unable to reserve cache with key ${key}, another job may be creating this cache.`,
        );
        return {};
      }
      await mkdir(dir, { recursive: true });
      await cp(path, entry(key), { recursive: true });
      saved.push(key);
      log(`Cache saved with key: ${key}`);
      return {};
    },
  };
  return { handlers, keys: () => [...saved] };
}
