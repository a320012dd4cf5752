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
import { realTicker, type Ticker } from "./ticker.ts";

/** How often a run that moves says where it stands. */
export const PROGRESS_EVERY_MS = 10_000;

/** Per JSON event, its fields in the order they are written. */
const FIELDS: { [E in JsonEvent["event"]]: readonly (keyof Extract<JsonEvent, { event: E }>)[] } = {
  warning: ["message"],
  page: ["eventType", "page", "after", "files", "hasMore", "source"],
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
    "keptAside",
    "gone",
    "guarantee",
    "source",
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
  /** The timer that writes them while a pass waits (tests pass a manual one). */
  ticker?: Ticker;
}

export class JsonRenderer implements Renderer {
  readonly #now: () => Date;
  readonly #every: number;
  readonly #progress: Progress;
  #progressAt: number;
  #progressVersion = 0;
  readonly #ticker: Ticker;
  /** Stops the timer; set while a pass runs. */
  #stopTicking?: () => void;

  constructor(options: JsonOptions = {}) {
    this.#now = options.now ?? (() => new Date());
    this.#every = options.progressEveryMs ?? PROGRESS_EVERY_MS;
    this.#ticker = options.ticker ?? realTicker;
    this.#progress = new Progress(() => this.#now().getTime());
    this.#progressAt = this.#now().getTime();
  }

  render(event: ReportEvent): void {
    this.#write(event);
    const moved = this.#progress.observe(event);
    switch (event.event) {
      case "pageStart":
        // While a pass runs, a wait (the download limit, a 429) still gets its progress events.
        this.#stopTicking ??= this.#ticker(
          () => this.#progressDue(false),
          Math.min(this.#every, 1_000),
        );
        return;
      case "completed":
      case "sleep":
      case "summary":
        // Nothing moves until the next pass, and the summary stays the last event.
        this.#stopTicking?.();
        this.#stopTicking = undefined;
        return;
    }
    if (moved) this.#progressDue(true);
  }

  /** Writes a `progress` event when one is due (after a change only, when `onlyIfMoved`). */
  #progressDue(onlyIfMoved: boolean): void {
    const now = this.#now().getTime();
    if (now - this.#progressAt < this.#every) return;
    if (onlyIfMoved && this.#progress.version === this.#progressVersion) return;
    this.#progressAt = now;
    this.#progressVersion = this.#progress.version;
    this.#write({ event: "progress", ...this.#progress.figures() });
  }

  #write(event: ReportEvent): void {
    const line = jsonLine(event, this.#now());
    if (line !== undefined) writeStderr(line + "\n");
  }
}
