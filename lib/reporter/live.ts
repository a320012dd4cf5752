/**
 * The live one-line status on a terminal, redrawn in place as pages start and files finish:
 *
 *   AUTH_LOG page 3 | 120 of 300+ files | 4.2 MB | 1.2 MB/s, 48 files/min | 3m 45s+ left
 *
 * files done of the files listed so far (`+`: the listing has more pages), bytes, the rate over
 * the last minute and the time left for what is listed (`progress.ts`), each rounded for a person.
 * Every other event is a plain line, written after the status line is cleared so that the two
 * never share a row.
 */
import { writeStderr } from "../runtime.ts";
import type { Renderer, ReportEvent } from "./events.ts";
import {
  formatByteRate,
  formatBytes,
  formatCount,
  formatDuration,
  formatFileRate,
} from "./human.ts";
import { PlainRenderer } from "./plain.ts";
import { Progress, type ProgressFigures } from "./progress.ts";
import { realTicker, type Ticker } from "./ticker.ts";

/** How often, at most, the live line is redrawn. */
const LIVE_REFRESH_MS = 100;
/** While a pass runs, the line is redrawn this often even when nothing happens (a paced wait). */
const LIVE_TICK_MS = 1_000;

export interface LiveOptions {
  color: boolean;
  /** The clock (tests pass a fake one). */
  now?: () => number;
  /** The terminal's width: a longer line is cut, since a wrapped one cannot be redrawn. */
  columns?: () => number | undefined;
  /** The timer that redraws the line while a pass waits (tests pass a manual one). */
  ticker?: Ticker;
}

/**
 * The status line for `figures` while `eventType`'s page `page` is listed.
 *
 * @example
 * ```ts
 * const figures = {
 *   filesDone: 120, filesListed: 300, listingComplete: false, bytes: 4_200_000,
 *   bytesPerSecond: 1_234_567, filesPerMinute: 48, etaSeconds: 225,
 * };
 * statusLine("AUTH_LOG", 3, figures);
 * // "AUTH_LOG page 3 | 120 of 300+ files | 4.2 MB | 1.2 MB/s, 48 files/min | 3m 45s+ left"
 * ```
 */
export function statusLine(eventType: string, page: number, figures: ProgressFigures): string {
  const more = figures.listingComplete ? "" : "+";
  const parts = [`${eventType} page ${page}`];
  parts.push(
    figures.filesDone === 0 && figures.bytes === 0
      ? `${formatCount(figures.filesListed)}${more} files listed`
      : `${formatCount(figures.filesDone)} of ${formatCount(figures.filesListed)}${more} files`,
  );
  parts.push(formatBytes(figures.bytes));
  if (figures.bytesPerSecond !== null && figures.filesPerMinute !== null) {
    parts.push(
      `${formatByteRate(figures.bytesPerSecond)}, ${formatFileRate(figures.filesPerMinute)}`,
    );
  }
  const left = figures.filesListed - figures.filesDone;
  if (left > 0 && figures.etaSeconds !== null) {
    parts.push(`${formatDuration(figures.etaSeconds)}${more} left`);
  }
  return parts.join(" | ");
}

export class LiveRenderer implements Renderer {
  private readonly plain: PlainRenderer;
  private readonly now: () => number;
  private readonly progress: Progress;
  private shown = false;
  private drawnAt = -Infinity;
  private eventType = "";
  private page = 0;
  /** Stops the redraw timer; set while a pass runs. */
  private stopTicking?: () => void;

  constructor(private readonly options: LiveOptions) {
    this.now = options.now ?? Date.now;
    this.progress = new Progress(this.now);
    this.plain = new PlainRenderer({
      verbose: false,
      color: options.color,
      beforeLine: () => this.clear(),
    });
  }

  render(event: ReportEvent): void {
    this.progress.observe(event);
    switch (event.event) {
      case "pageStart":
        this.eventType = event.eventType;
        this.page = event.page;
        this.stopTicking ??= (this.options.ticker ?? realTicker)(
          () => this.draw(true),
          LIVE_TICK_MS,
        );
        return this.draw(true);
      case "page":
        return this.draw(true);
      case "file":
      case "skip":
        return this.draw(false);
      case "fileStart":
        return;
      case "completed":
      case "sleep":
      case "summary":
        // A pass is over: nothing moves until the next one starts.
        this.stopTicking?.();
        this.stopTicking = undefined;
        return this.plain.render(event);
      default:
        this.plain.render(event);
    }
  }

  private clear(): void {
    if (!this.shown) return;
    writeStderr("\r\x1b[K");
    this.shown = false;
  }

  private draw(force: boolean): void {
    // Thousands of small files would otherwise redraw the line thousands of times a second.
    const now = this.now();
    if (!force && now - this.drawnAt < LIVE_REFRESH_MS) return;
    this.drawnAt = now;
    let line = statusLine(this.eventType, this.page, this.progress.figures());
    const columns = this.options.columns?.();
    if (columns && columns > 1 && line.length >= columns) line = line.slice(0, columns - 1);
    writeStderr(`\r\x1b[K${line}`);
    this.shown = true;
  }
}
