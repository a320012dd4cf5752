/**
 * Where a long run stands, worked out from the events the reporter is told and nothing else:
 * pages say how many files they list, `file` events carry bytes, `skip` and `gone` events finish
 * a listed file without bytes. The rate is over the last minute, so a run paced to the download
 * limit, or one that waited out a 429, shows what it does now rather than its average.
 *
 * @example
 * ```ts
 * const progress = new Progress(Date.now);
 * progress.observe({ event: "file", id: "eclf_1", bytes: 1500, durationMs: 12 });
 * progress.figures().filesDone; // 1
 * ```
 */
import type { ProgressEvent, ReportEvent } from "./events.ts";

/** The figures of a `progress` event, without its name. */
export type ProgressFigures = Omit<ProgressEvent, "event">;

/** The rate is measured over this much of the recent past. */
const RATE_WINDOW_MS = 60_000;
/** Below this much measured time a rate is noise (the first file of a run), not a figure. */
const MIN_RATE_SPAN_MS = 2_000;

/** Samples closer together than this are merged. */
const SAMPLE_SPACING_MS = 250;

interface Sample {
  at: number;
  files: number;
  bytes: number;
}

export class Progress {
  #filesDone = 0;
  #filesListed = 0;
  #bytes = 0;
  /** Per event type, whether its last listed page said more follow. */
  readonly #moreToList = new Map<string, boolean>();
  /** Cumulative counts at each change, oldest first. */
  #samples: Sample[] = [];
  /** Bumped on every change, so a periodic reporter can tell whether anything moved. */
  #version = 0;

  constructor(private readonly now: () => number) {}

  /** Counts `event` in; true when it changed the figures. */
  observe(event: ReportEvent): boolean {
    switch (event.event) {
      case "pageStart":
        // The clock starts with the first request, not when the process did.
        if (this.#samples.length === 0) this.#sample();
        return false;
      case "page":
        this.#filesListed += event.files;
        this.#moreToList.set(event.eventType, event.hasMore);
        break;
      case "file":
        this.#filesDone++;
        this.#bytes += event.bytes;
        break;
      case "skip":
      case "gone":
        this.#filesDone++;
        break;
      case "completed":
        // A pass is over: what it listed and did not do (too recent for --settle) is not coming.
        this.#filesListed = this.#filesDone;
        this.#moreToList.set(event.eventType, false);
        break;
      default:
        return false;
    }
    this.#filesListed = Math.max(this.#filesListed, this.#filesDone);
    this.#sample();
    this.#version++;
    return true;
  }

  /** A number that changes whenever the figures do. */
  get version(): number {
    return this.#version;
  }

  /** The figures now, rounded as a person reads them (whole bytes/s, files/min to a tenth). */
  figures(): ProgressFigures {
    const now = this.now();
    const rate = this.#rate(now);
    const remaining = this.#filesListed - this.#filesDone;
    const filesPerMinute = rate ? Math.round(rate.filesPerMs * 60_000 * 10) / 10 : null;
    return {
      filesDone: this.#filesDone,
      filesListed: this.#filesListed,
      listingComplete: ![...this.#moreToList.values()].some(Boolean),
      bytes: this.#bytes,
      bytesPerSecond: rate ? Math.round(rate.bytesPerMs * 1000) : null,
      filesPerMinute,
      etaSeconds: remaining === 0
        ? 0
        : rate && rate.filesPerMs > 0
        ? Math.round(remaining / rate.filesPerMs / 1000)
        : null,
    };
  }

  #sample(): void {
    const now = this.now();
    const sample = { at: now, files: this.#filesDone, bytes: this.#bytes };
    // Thousands of small files a second need no sample each: the newest moves forward instead.
    if (this.#samples.length > 1 && this.#samples.at(-1)!.at > now - SAMPLE_SPACING_MS) {
      this.#samples[this.#samples.length - 1] = sample;
    } else {
      this.#samples.push(sample);
    }
    // Only the last sample at or before the window's start is needed from before it.
    while (this.#samples.length > 1 && this.#samples[1].at <= now - RATE_WINDOW_MS) {
      this.#samples.shift();
    }
  }

  /** Files and bytes per millisecond over the window up to `now`; undefined when too short. */
  #rate(now: number): { filesPerMs: number; bytesPerMs: number } | undefined {
    const windowStart = now - RATE_WINDOW_MS;
    // The counts at the window's start are those of the last sample at or before it (counts
    // change only at samples); a run younger than the window is measured from its first sample.
    const before = this.#samples.filter((s) => s.at <= windowStart).at(-1);
    const base = before ?? this.#samples[0];
    if (!base) return undefined;
    const span = now - (before ? windowStart : base.at);
    if (span < MIN_RATE_SPAN_MS) return undefined;
    return {
      filesPerMs: (this.#filesDone - base.files) / span,
      bytesPerMs: (this.#bytes - base.bytes) / span,
    };
  }
}
