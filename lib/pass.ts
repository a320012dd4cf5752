/**
 * One pass over every event type: opens the client and the destination, delivers each event type
 * in turn (lib/delivery.ts), then finishes the destination (or aborts it on failure). The session
 * (lib/session.ts) runs one pass, or with `--follow` one per poll.
 *
 * @example
 * await runPass(settings, { reporter, signal, store: checkpoint, stats });
 */
import { type ClientOptions, ComplianceClient } from "./api.ts";
import type { RunStats } from "./run_stats.ts";
import { deliverEventType, type DeliveryReporter, type DeliverySettings } from "./delivery.ts";
import type { CursorStore, Destination } from "./destinations/contract.ts";
import { createStdoutDestination } from "./destinations/stdout.ts";
import { createFileDestination } from "./destinations/file.ts";
import { createStreamFileDestination } from "./destinations/stream_file.ts";
import { DirectoryDestination } from "./destinations/directory.ts";
import type { Confirmations } from "./destinations/confirmations.ts";
import { startingPoint } from "./listing.ts";

/** Where files go: stdout, one `-o` file (`stream`: a FIFO or device), or an `--output-dir` tree. */
export type Output =
  | { kind: "stdout" }
  | { kind: "file"; path: string; stream?: boolean }
  | { kind: "dir"; path: string; gzip: boolean };

/** What the API client needs: where, who, and how hard to retry (its hooks come from the pass). */
export type ClientSettings = Omit<ClientOptions, "onRetry" | "signal">;

export interface PassSettings {
  eventTypes: string[];
  /** `<after>` as ISO text: where event types without a checkpoint cursor start. */
  after?: string;
  output: Output;
  client: ClientSettings;
  delivery: DeliverySettings;
}

export interface PassContext {
  reporter: DeliveryReporter;
  /** Aborted on SIGINT/SIGTERM; the pass then stops and throws its reason. */
  signal: AbortSignal;
  /** The checkpoint; none without `--state`. */
  store?: CursorStore;
  /** The run's statistics, updated where the destination confirms and the checkpoint moves. */
  stats: RunStats;
}

/**
 * Lists, downloads and delivers every event type once, moving the checkpoint past what the
 * destination confirmed. Throws on the first failure after aborting the destination; `stats`
 * then still counts what was confirmed before it.
 *
 * @example
 * const stats = new RunStats();
 * await runPass({ eventTypes: ["AUTH_LOG"], after, output: { kind: "stdout" }, client, delivery },
 *   { reporter, signal, store, stats });
 */
export async function runPass(settings: PassSettings, context: PassContext): Promise<void> {
  const { reporter, signal, store, stats } = context;
  const client = new ComplianceClient({
    ...settings.client,
    onRetry: (notice) => {
      stats.retried();
      reporter.emit({ event: "retry", ...notice });
    },
    signal,
  });
  const destination = await createDestination(settings.output);
  // Event types whose files wait for the destination's finish (the -o file) are reported after.
  const awaiting: Array<{ eventType: string; startAfter: string; confirmations: Confirmations }> =
    [];
  try {
    for (const eventType of settings.eventTypes) {
      const saved = store?.cursor(eventType);
      const start = startingPoint(saved, settings.after, eventType);
      stats.startEventType(eventType, saved?.after ?? null);
      const confirmations = await deliverEventType({
        eventType,
        start,
        client,
        destination,
        store,
        stats,
        reporter,
        signal,
        settings: settings.delivery,
      });
      if (confirmations.pending === 0) reportCompleted(eventType, start.after, context);
      else awaiting.push({ eventType, startAfter: start.after, confirmations });
    }
    await destination.finish();
    for (const { eventType, startAfter, confirmations } of awaiting) {
      await confirmations.settled({ complete: true });
      reportCompleted(eventType, startAfter, context);
    }
  } catch (error) {
    await destination.abort();
    // Whatever was confirmed before the failure is on the checkpoint before the store closes.
    await Promise.all(awaiting.map(({ confirmations }) => confirmations.settled().catch(() => {})));
    throw error;
  }
}

/** The destination for `output`; each kind is one module of lib/destinations/. */
export function createDestination(output: Output): Promise<Destination> {
  switch (output.kind) {
    case "stdout":
      return createStdoutDestination();
    case "file":
      return output.stream
        ? createStreamFileDestination(output.path)
        : createFileDestination(output.path);
    case "dir":
      return Promise.resolve(new DirectoryDestination(output.path, output.gzip));
  }
}

function reportCompleted(eventType: string, startAfter: string, context: PassContext): void {
  const { files, movedTo } = context.stats.pass(eventType);
  context.reporter.emit({
    event: "completed",
    eventType,
    files,
    cursor: movedTo,
    initialAfter: startAfter,
  });
}
