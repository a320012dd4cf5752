/**
 * The quickstart scripts' plain lines on stderr (the default: what cron mails and CI logs show).
 * Every line passes `writeLine`: control characters from server bodies or ids are made visible
 * before the colour goes on, and redaction sees the text exactly as it is written.
 */
import { redact } from "../errors.ts";
import { writeStderr } from "../runtime.ts";
import { escapeControls } from "../terminal.ts";
import { toLocalHuman } from "../time.ts";
import type { Renderer, ReportEvent } from "./events.ts";
import { formatBytes } from "./human.ts";

export { formatBytes };

/** `text` with a leading `error:` in red or `warning:` in yellow. */
export function colorize(text: string): string {
  return text.replace(
    /^(error|warning):/,
    (prefix) => prefix === "error:" ? `\x1b[31m${prefix}\x1b[39m` : `\x1b[33m${prefix}\x1b[39m`,
  );
}

/**
 * The plain lines of `event` (none for an event plain output does not show at this verbosity).
 *
 * @example
 * ```ts
 * plainLines({ event: "sleep", waitMs: 300 }, false); // ["Waiting 0.3s before the next poll"]
 * ```
 */
export function plainLines(event: ReportEvent, verbose: boolean): string[] {
  switch (event.event) {
    case "warning":
      return [event.unlabelled ? event.message : `warning: ${event.message}`];
    case "pageStart":
      return [
        `Fetching page ${event.page} with after='${event.after}' ` +
        `(local: ${toLocalHuman(event.after)})`,
      ];
    case "fileStart":
      return [`Fetching logs for ID: ${event.id}`];
    case "file":
      return verbose ? [`Done ${event.id}: ${event.bytes} bytes in ${event.durationMs} ms`] : [];
    case "skip":
      return verbose ? [`Skipping ${event.id}: ${event.reason}`] : [];
    case "gone":
      return [
        `warning: ${event.eventType} file ${event.id} (end_time ${event.endTime}) is no longer ` +
        `available (${
          event.reason === "expired" ? "past the API's 30-day retention" : "the API says so"
        }): recorded as gone, the checkpoint moves past it`,
      ];
    case "note":
      return verbose ? [event.text] : [];
    case "retry":
      return [
        `Retrying ${event.what} in ${(event.waitMs / 1000).toFixed(1)}s ` +
        `(attempt ${event.attempt} of ${event.of}): ${event.reason}`,
      ];
    case "completed":
      return event.files === 0 && event.cursor === null
        ? [`No results found for event_type ${event.eventType} after ${event.initialAfter}`]
        : [
          `${
            event.done ?? "Completed downloading"
          } ${event.files} log files up to ${event.cursor} ` +
          `(local: ${toLocalHuman(event.cursor)})`,
        ];
    case "sleep": {
      const ms = event.waitMs;
      const seconds = ms < 10_000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000);
      return [`Waiting ${seconds}s before the next poll`];
    }
    case "summary": {
      const cursors = Object.entries(event.cursors).map(([t, c]) => `${t}=${c ?? "none"}`)
        .join(" ") || "none";
      const gone = (event.gone ? `, ${event.gone} gone` : "") +
        (event.keptAside ? `, ${event.keptAside} altered kept aside` : "");
      return [
        `Summary: ${event.files} files, ${formatBytes(event.bytes)}, ${event.pages} pages, ` +
        `${event.retries} retries, ${event.skipped} skipped${gone} in ` +
        `${(event.durationMs / 1000).toFixed(1)}s; cursor ${cursors}` +
        (event.guarantee === "best-effort"
          ? "; delivered best effort (the destination cannot confirm what its reader kept)"
          : "") +
        (event.source ? `; read from the ${event.source}, not the API` : ""),
      ];
    }
    case "error": {
      // Exit 4 is not a failure: the run is done, the files it names are gone for good.
      const label = event.kind === "incomplete" ? "warning" : "error";
      const line = `${label}: ${event.message}`;
      return event.detail ? [line, event.detail] : [line];
    }
    case "page":
    case "progress":
      return [];
  }
}

export interface PlainOptions {
  verbose: boolean;
  /** Red `error:` and yellow `warning:` labels. */
  color: boolean;
  /** Called before each line is written (the live renderer clears its status line there). */
  beforeLine?: () => void;
}

export class PlainRenderer implements Renderer {
  constructor(private readonly options: PlainOptions) {}

  render(event: ReportEvent): void {
    for (const line of plainLines(event, this.options.verbose)) this.writeLine(line);
  }

  /** One line on stderr: controls escaped, then coloured, then redacted. */
  writeLine(text: string): void {
    this.options.beforeLine?.();
    const safe = escapeControls(text);
    writeStderr(redact(this.options.color ? colorize(safe) : safe) + "\n");
  }
}
