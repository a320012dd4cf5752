/**
 * Progress on stderr: the run tells the `Reporter` what happens as typed events (`events.ts`),
 * and one renderer shows them: the quickstart scripts' plain lines (`plain.ts`, the default), one
 * JSON object per event (`json.ts`, `--log-format json`, with periodic `progress` events), or a
 * live one-line status with files, bytes, rate and time left when stderr is a terminal
 * (`live.ts`). `--quiet` keeps errors only.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * declare const after: string;
 * declare const summary: Summary;
 * declare const failure: unknown;
 * const reporter = new Reporter({ verbosity: "normal", format: "plain", live: liveOnStderr(env) });
 * reporter.emit({ event: "pageStart", eventType: "AUTH_LOG", page: 1, after });
 * reporter.end(summary, failure);
 * ```
 */
import process from "node:process";
import { CliError } from "../errors.ts";
import { stderrIsTerminal } from "../runtime.ts";
import type { Renderer, ReportEvent, SummaryEvent } from "./events.ts";
import { errorEvent, firstShowing } from "./fatal.ts";
import { JsonRenderer } from "./json.ts";
import { LiveRenderer } from "./live.ts";
import { PlainRenderer } from "./plain.ts";
import type { Ticker } from "./ticker.ts";

export type * from "./events.ts";
export { colorOnStderr, errorEvent, reportFatal } from "./fatal.ts";

export interface ReporterOptions {
  verbosity: "quiet" | "normal" | "verbose";
  format: "plain" | "json";
  /** Live status line instead of per-file lines (default: when stderr is a terminal). */
  live?: boolean;
  /** Red `error:` and yellow `warning:` labels (see `colorOnStderr`). */
  color?: boolean;
  /** The clock: JSON events' `time`, and the rate and time left of the progress figures. */
  now?: () => Date;
  /** Time between `progress` events in JSON output (default 10 s). */
  progressEveryMs?: number;
  /** The timer that keeps the progress figures moving while a pass waits (tests: a manual one). */
  ticker?: Ticker;
}

/** Whether stderr can show the live line: a terminal that understands `\r` and erase-line. */
export function liveOnStderr(env: Record<string, string | undefined>): boolean {
  return stderrIsTerminal() && env.TERM !== "dumb";
}

/** The summary's fields, without the event's name. */
export type Summary = Omit<SummaryEvent, "event">;

export class Reporter {
  readonly #renderer: Renderer;
  readonly #quiet: boolean;
  readonly #json: boolean;

  constructor(options: ReporterOptions) {
    this.#quiet = options.verbosity === "quiet";
    this.#json = options.format === "json";
    const color = options.color ?? false;
    const now = options.now;
    if (this.#json) {
      this.#renderer = new JsonRenderer({
        now,
        progressEveryMs: options.progressEveryMs,
        ticker: options.ticker,
      });
    } else if (options.verbosity === "normal" && (options.live ?? stderrIsTerminal())) {
      this.#renderer = new LiveRenderer({
        color,
        now: now && (() => now().getTime()),
        columns: () => (process.stderr as { columns?: number }).columns,
        ticker: options.ticker,
      });
    } else {
      this.#renderer = new PlainRenderer({ verbose: options.verbosity === "verbose", color });
    }
  }

  /** Shows `event` (with `--quiet`, only errors). */
  emit(event: ReportEvent): void {
    if (this.#quiet && event.event !== "error") return;
    this.#renderer.render(event);
  }

  /**
   * How the run ended: its summary and, when it failed with a `CliError`, that error, each in the
   * order its format wants. JSON: the error event, then the summary (always: a consumer reads the
   * summary as the last event). Plain: the summary line (unless `beforeStart`: a run refused by
   * its checks says only why), then the `error:` line. Either way `main.ts` adds nothing for it.
   *
   * @example
   * ```ts
   * declare const reporter: Reporter;
   * declare const summary: Summary;
   * reporter.end(summary, new Error("boom"), { beforeStart: false });
   * ```
   */
  end(summary: Summary, failure?: unknown, options: { beforeStart?: boolean } = {}): void {
    const error = failure instanceof CliError && failure.help === undefined ? failure : undefined;
    if (this.#json && error && firstShowing(error)) this.emit(errorEvent(error));
    if (this.#json || !options.beforeStart) this.emit({ event: "summary", ...summary });
    if (!this.#json && error && firstShowing(error)) this.emit(errorEvent(error));
  }
}
