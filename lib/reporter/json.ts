/**
 * `--log-format json`: one JSON object per event and line, `{"time", "event", ...fields}` with the
 * fields in snake_case. The field lists below are the JSON schema, in one place. While files move,
 * a `progress` event at most every 10 s says where the run stands (`progress.ts`).
 */
import { redact, redactValues } from "../errors.ts";
import { writeStderr } from "../runtime.ts";
import { escapeJsonControls } from "../terminal.ts";
import type { JsonEvent, Renderer, ReportEvent } from "./events.ts";
import { Progress } from "./progress.ts";

/** How often a run that moves says where it stands. */
export const PROGRESS_EVERY_MS = 10_000;

/** Per JSON event, its fields in the order they are written. */
const FIELDS: { [E in JsonEvent["event"]]: readonly (keyof Extract<JsonEvent, { event: E }>)[] } = {
  warning: ["message"],
  page: ["eventType", "page", "after", "files", "hasMore"],
  file: ["id", "bytes", "durationMs"],
  skip: ["id", "reason"],
  gone: ["eventType", "id", "endTime", "reason"],
  retry: ["what", "attempt", "of", "waitMs", "reason"],
  error: ["message", "detail", "kind", "exitCode", "willRetry"],
  sleep: ["waitMs"],
  progress: [
    "filesDone",
    "filesListed",
    "listingComplete",
    "bytes",
    "bytesPerSecond",
    "filesPerMinute",
    "etaSeconds",
  ],
  summary: [
    "files",
    "bytes",
    "pages",
    "retries",
    "skipped",
    "gone",
    "durationMs",
    "cursors",
    "status",
    "exitCode",
  ],
};

/**
 * A field's name as JSON output spells it.
 *
 * @example
 * ```ts
 * snakeCase("hasMore"); // "has_more"
 * ```
 */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The JSON line of `event` (without its newline), or undefined for an event JSON output does not
 * have. `JSON.stringify` escapes C0 controls, DEL and C1 are added. Values are redacted before
 * serializing; the line is redacted again (escaped forms of a secret) unless that would split an
 * escape and break the JSON.
 *
 * @example
 * ```ts
 * jsonLine({ event: "sleep", waitMs: 300 }, new Date(0)); // '{"time":"1970-...","event":"sleep","wait_ms":300}'
 * ```
 */
export function jsonLine(event: ReportEvent, time: Date): string | undefined {
  if (!(event.event in FIELDS)) return undefined;
  const record: Record<string, unknown> = { time: time.toISOString(), event: event.event };
  const fields = FIELDS[event.event as JsonEvent["event"]] as readonly string[];
  for (const name of fields) {
    const value = (event as unknown as Record<string, unknown>)[name];
    if (value !== undefined) record[snakeCase(name)] = value;
  }
  const text = escapeJsonControls(JSON.stringify(redactValues(record)));
  const safe = redact(text);
  return safe === text || isJson(safe) ? safe : text;
}

export interface JsonOptions {
  now?: () => Date;
  /** Time between `progress` events (default 10 s). */
  progressEveryMs?: number;
}

export class JsonRenderer implements Renderer {
  readonly #now: () => Date;
  readonly #every: number;
  readonly #progress: Progress;
  #progressAt: number;
  #progressVersion = 0;

  constructor(options: JsonOptions = {}) {
    this.#now = options.now ?? (() => new Date());
    this.#every = options.progressEveryMs ?? PROGRESS_EVERY_MS;
    this.#progress = new Progress(() => this.#now().getTime());
    this.#progressAt = this.#now().getTime();
  }

  render(event: ReportEvent): void {
    this.#write(event);
    // Progress only follows what moves the figures, so the summary stays the last event.
    if (!this.#progress.observe(event) || event.event === "completed") return;
    const now = this.#now().getTime();
    if (now - this.#progressAt < this.#every) return;
    if (this.#progress.version === this.#progressVersion) return;
    this.#progressAt = now;
    this.#progressVersion = this.#progress.version;
    this.#write({ event: "progress", ...this.#progress.figures() });
  }

  #write(event: ReportEvent): void {
    const line = jsonLine(event, this.#now());
    if (line !== undefined) writeStderr(line + "\n");
  }
}
