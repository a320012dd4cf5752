/**
 * Progress on stderr. Three shapes of the same events: the quickstart scripts' plain lines (the
 * default, what cron mails and CI logs show), one JSON object per event (`--log-format json`),
 * and a live one-line status when stderr is a terminal.
 */
import { redact, redactValues } from "./errors.ts";
import { escapeControls, escapeJsonControls } from "./terminal.ts";
import type { RetryNotice } from "./retry.ts";
import { stderrIsTerminal, writeStderr } from "./runtime.ts";
import { toLocalHuman } from "./time.ts";

export interface Summary {
  files: number;
  bytes: number;
  pages: number;
  retries: number;
  skipped: number;
  durationMs: number;
  /** The cursor reached per event type (null when nothing was listed). */
  cursors: Record<string, string | null>;
  /** How the run ended, and the exit code it ends with (for `--log-format json`). */
  status?: "ok" | "failed" | "interrupted";
  exitCode?: number;
}

export interface ReporterOptions {
  verbosity: "quiet" | "normal" | "verbose";
  format: "plain" | "json";
  /** Live status line instead of per-file lines (default: when stderr is a terminal). */
  live?: boolean;
  /** Red `error:` and yellow `warning:` prefixes (see `colorOnStderr`). */
  color?: boolean;
  now?: () => Date;
}

/** How often, at most, the live line is redrawn. */
const LIVE_REFRESH_MS = 100;

/**
 * Whether stderr gets colour: a terminal that is not `TERM=dumb`, and no `NO_COLOR` (any
 * non-empty value, see no-color.org).
 */
export function colorOnStderr(env: Record<string, string | undefined>): boolean {
  return stderrIsTerminal() && !env.NO_COLOR && env.TERM !== "dumb";
}

/** Whether stderr can show the live line: a terminal that understands `\r` and erase-line. */
export function liveOnStderr(env: Record<string, string | undefined>): boolean {
  return stderrIsTerminal() && env.TERM !== "dumb";
}

/** `text` with a leading `error:` in red or `warning:` in yellow. */
export function colorize(text: string): string {
  return text.replace(
    /^(error|warning):/,
    (prefix) => prefix === "error:" ? `\x1b[31m${prefix}\x1b[39m` : `\x1b[33m${prefix}\x1b[39m`,
  );
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export class Reporter {
  private readonly live: boolean;
  private readonly now: () => Date;
  private liveShown = false;
  private liveDrawnAt = 0;
  private status = { eventType: "", page: 0, files: 0, bytes: 0, started: Date.now() };
  retries = 0;

  constructor(private readonly options: ReporterOptions) {
    this.now = options.now ?? (() => new Date());
    this.live = options.format === "plain" && options.verbosity === "normal" &&
      (options.live ?? stderrIsTerminal());
  }

  private get quiet(): boolean {
    return this.options.verbosity === "quiet";
  }

  /**
   * A plain line; clears the live status first so the two never interleave. Every plain line
   * passes here: control characters from server bodies or ids are made visible before the colour
   * goes on, and redaction sees the text exactly as it is written.
   */
  private line(text: string): void {
    if (this.liveShown) {
      writeStderr("\r\x1b[K");
      this.liveShown = false;
    }
    const safe = escapeControls(text);
    writeStderr(redact(this.options.color ? colorize(safe) : safe) + "\n");
  }

  /**
   * One JSON event per line: `JSON.stringify` escapes C0 controls, DEL and C1 are added. Values
   * are redacted before serializing; the line is redacted again (escaped forms of a secret) unless
   * that would split an escape and break the JSON.
   */
  private json(event: string, fields: Record<string, unknown>): void {
    const record = redactValues({ time: this.now().toISOString(), event, ...fields });
    const text = escapeJsonControls(JSON.stringify(record));
    const safe = redact(text);
    writeStderr((safe === text || isJson(safe) ? safe : text) + "\n");
  }

  private refreshLive(force = false): void {
    // Thousands of small files would otherwise redraw the line thousands of times a second.
    if (!force && Date.now() - this.liveDrawnAt < LIVE_REFRESH_MS) return;
    this.liveDrawnAt = Date.now();
    const s = this.status;
    const seconds = Math.max(0.001, (Date.now() - s.started) / 1000);
    writeStderr(
      `\r\x1b[K${s.eventType} page ${s.page} | ${s.files} files | ${formatBytes(s.bytes)} | ` +
        `${formatBytes(s.bytes / seconds)}/s`,
    );
    this.liveShown = true;
  }

  warning(text: string): void {
    if (this.quiet) return;
    if (this.options.format === "json") {
      this.json("warning", { message: text.replace(/^warning: /, "") });
    } else this.line(text);
  }

  page(eventType: string, page: number, after: string): void {
    this.status.eventType = eventType;
    this.status.page = page;
    if (this.quiet || this.options.format === "json") return;
    if (this.live) return this.refreshLive(true);
    this.line(`Fetching page ${page} with after='${after}' (local: ${toLocalHuman(after)})`);
  }

  /** A page has been listed: `files` on it, and whether more follow. */
  pageListed(
    eventType: string,
    page: number,
    after: string,
    files: number,
    hasMore: boolean,
  ): void {
    if (this.quiet || this.options.format !== "json") return;
    this.json("page", { event_type: eventType, page, after, files, has_more: hasMore });
  }

  fileStarted(id: string): void {
    if (this.quiet || this.options.format === "json" || this.live) return;
    this.line(`Fetching logs for ID: ${id}`);
  }

  fileDone(id: string, bytes: number, ms: number): void {
    this.status.files++;
    this.status.bytes += bytes;
    if (this.quiet) return;
    if (this.options.format === "json") return this.json("file", { id, bytes, duration_ms: ms });
    if (this.live) return this.refreshLive();
    if (this.options.verbosity === "verbose") this.line(`Done ${id}: ${bytes} bytes in ${ms} ms`);
  }

  fileSkipped(id: string, why: string): void {
    if (this.options.format === "json" && !this.quiet) {
      return this.json("skip", { id, reason: why });
    }
    if (this.options.verbosity === "verbose") this.line(`Skipping ${id}: ${why}`);
  }

  listed(file: object): void {
    if (this.options.verbosity === "verbose") this.line(`Listed ${JSON.stringify(file)}`);
  }

  /** A detail shown only with `-v`, e.g. which form of a compressed file the listing described. */
  note(text: string): void {
    if (this.options.verbosity === "verbose" && this.options.format !== "json") this.line(text);
  }

  retry(notice: RetryNotice): void {
    this.retries++;
    if (this.quiet) return;
    if (this.options.format === "json") {
      return this.json("retry", {
        what: notice.what,
        attempt: notice.attempt,
        of: notice.of,
        wait_ms: notice.waitMs,
        reason: notice.reason,
      });
    }
    this.line(
      `Retrying ${notice.what} in ${(notice.waitMs / 1000).toFixed(1)}s ` +
        `(attempt ${notice.attempt} of ${notice.of}): ${notice.reason}`,
    );
  }

  completed(eventType: string, files: number, cursor: string | null, initialAfter: string): void {
    if (this.quiet || this.options.format === "json") return;
    if (files === 0 && cursor === null) {
      this.line(`No results found for event_type ${eventType} after ${initialAfter}`);
    } else {
      this.line(
        `Completed downloading ${files} log files up to ${cursor} (local: ${toLocalHuman(cursor)})`,
      );
    }
  }

  polling(nextInMs: number): void {
    if (this.quiet) return;
    if (this.options.format === "json") return this.json("sleep", { wait_ms: nextInMs });
    const seconds = nextInMs < 10_000 ? (nextInMs / 1000).toFixed(1) : Math.round(nextInMs / 1000);
    this.line(`Waiting ${seconds}s before the next poll`);
  }

  summary(s: Summary): void {
    if (this.quiet) return;
    if (this.options.format === "json") {
      return this.json("summary", {
        files: s.files,
        bytes: s.bytes,
        pages: s.pages,
        retries: s.retries,
        skipped: s.skipped,
        duration_ms: s.durationMs,
        cursors: s.cursors,
        ...(s.status ? { status: s.status } : {}),
        ...(s.exitCode !== undefined ? { exit_code: s.exitCode } : {}),
      });
    }
    const cursors = Object.entries(s.cursors).map(([t, c]) => `${t}=${c ?? "none"}`).join(" ") ||
      "none";
    this.line(
      `Summary: ${s.files} files, ${formatBytes(s.bytes)}, ${s.pages} pages, ${s.retries} ` +
        `retries, ${s.skipped} skipped in ${(s.durationMs / 1000).toFixed(1)}s; cursor ${cursors}`,
    );
  }

  /** Errors are shown even with --quiet; `fields` go only into the JSON event. */
  error(message: string, detail?: string, fields: Record<string, unknown> = {}): void {
    if (this.options.format === "json") {
      return this.json("error", {
        message: message.replace(/^error: /, ""),
        ...(detail ? { detail } : {}),
        ...fields,
      });
    }
    this.line(message);
    if (detail) this.line(detail);
  }
}
