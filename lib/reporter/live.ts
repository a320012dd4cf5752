/**
 * The live one-line status on a terminal: `AUTH_LOG page 3 | 120 files | 4.2 MB | 1.1 MB/s`,
 * redrawn in place as pages start and files finish; every other event is a plain line, written
 * after the status line is cleared so that the two never share a row.
 */
import { writeStderr } from "../runtime.ts";
import type { Renderer, ReportEvent } from "./events.ts";
import { formatBytes, PlainRenderer } from "./plain.ts";

/** How often, at most, the live line is redrawn. */
const LIVE_REFRESH_MS = 100;

export class LiveRenderer implements Renderer {
  private readonly plain: PlainRenderer;
  private shown = false;
  private drawnAt = 0;
  private readonly status = { eventType: "", page: 0, files: 0, bytes: 0, started: Date.now() };

  constructor(options: { color: boolean }) {
    this.plain = new PlainRenderer({
      verbose: false,
      color: options.color,
      beforeLine: () => this.clear(),
    });
  }

  render(event: ReportEvent): void {
    switch (event.event) {
      case "pageStart":
        this.status.eventType = event.eventType;
        this.status.page = event.page;
        return this.draw(true);
      case "file":
        this.status.files++;
        this.status.bytes += event.bytes;
        return this.draw(false);
      case "fileStart":
        return;
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
    if (!force && Date.now() - this.drawnAt < LIVE_REFRESH_MS) return;
    this.drawnAt = Date.now();
    const s = this.status;
    const seconds = Math.max(0.001, (Date.now() - s.started) / 1000);
    writeStderr(
      `\r\x1b[K${s.eventType} page ${s.page} | ${s.files} files | ${formatBytes(s.bytes)} | ` +
        `${formatBytes(s.bytes / seconds)}/s`,
    );
    this.shown = true;
  }
}
