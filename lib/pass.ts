/**
 * One pass over every event type: works out where each starts (lib/start.ts), opens the
 * destination, delivers each event type in turn (lib/delivery.ts), then finishes the destination
 * (or aborts it on failure). The session (lib/session.ts) runs one pass, or with `--follow` one
 * per poll. It names no destination kind: it opens whatever `ConfiguredDestination` it is given.
 *
 * @example
 * ```ts
 * declare const plan: PassPlan;
 * declare const context: PassContext;
 * await runPass(plan, context);
 * ```
 */
import type { Checkpoint } from "./checkpoint/model.ts";
import { deliverEventType, type DeliveryClient, type DeliveryReporter } from "./delivery.ts";
import type { ConfiguredDestination } from "./destinations/kind.ts";
import type { Confirmations } from "./destinations/confirmations.ts";
import { CliError } from "./errors.ts";
import { COMPLIANCE_READ_SCOPE, scopeForType } from "./event_types.ts";
import type { RunStats } from "./run_stats.ts";
import type { ManifestWriter } from "./manifest/writer.ts";
import type { ListingSettings, Selection } from "./settings.ts";
import { startsOf } from "./start.ts";

/** What one pass does: which event types from where, how they are listed, and where they go. */
export interface PassPlan {
  selection: Selection;
  listing: ListingSettings;
  /** Downloads at once. */
  concurrency: number;
  destination: ConfiguredDestination;
}

export interface PassContext {
  reporter: DeliveryReporter;
  /** Aborted on SIGINT/SIGTERM; the pass then stops and throws its reason. */
  signal: AbortSignal;
  client: DeliveryClient;
  /** The checkpoint; none without `--state`. */
  checkpoint?: Checkpoint;
  /** The run's statistics, updated where the destination confirms and the checkpoint moves. */
  stats: RunStats;
  /** The run's manifest (lib/manifest/), told what each type listed and every file passed. */
  manifest?: ManifestWriter;
}

/**
 * Lists, downloads and delivers every event type once, moving the checkpoint past what the
 * destination confirmed. Throws on the first failure after aborting the destination; `stats`
 * then still counts what was confirmed before it. With `all`, a type the key's scope refuses
 * (403) is skipped with a warning and the others go on.
 */
export async function runPass(plan: PassPlan, context: PassContext): Promise<void> {
  const { reporter, signal, checkpoint, stats, client } = context;
  const { selection } = plan;
  const { starts, warnings } = startsOf(
    selection.eventTypes,
    selection.after?.iso,
    checkpoint && { path: checkpoint.path, cursor: (type) => checkpoint.cursor(type) },
    { all: selection.all },
  );
  for (const warning of warnings) {
    reporter.emit({ event: "warning", message: warning.replace(/^warning: /, "") });
  }
  const destination = await plan.destination.open({
    retry: (notice) => {
      stats.retried();
      reporter.emit({ event: "retry", ...notice });
    },
    warn: (message) => reporter.emit({ event: "warning", message }),
    keptAside: (kept) => {
      stats.keptAsideFile();
      context.manifest?.keptAside(kept);
      reporter.emit({
        event: "warning",
        message: `${kept.path} no longer matches the listing's size and SHA-256: kept aside as ` +
          `${kept.aside}, and the listed file is stored again`,
      });
    },
  });
  // Event types whose files wait for the destination's finish (the -o file) are reported after.
  const awaiting: Array<{ eventType: string; startAfter: string; confirmations: Confirmations }> =
    [];
  try {
    for (const eventType of selection.eventTypes) {
      const start = starts.get(eventType)!;
      stats.startEventType(eventType, checkpoint?.cursor(eventType)?.after ?? null);
      context.manifest?.startEventType(eventType, start.after);
      let confirmations: Confirmations;
      try {
        confirmations = await deliverEventType({
          eventType,
          start,
          client,
          destination,
          checkpoint,
          stats,
          reporter,
          signal,
          settings: { concurrency: plan.concurrency, ...plan.listing },
          listener: context.manifest?.listener(eventType),
        });
      } catch (error) {
        if (!selection.all || signal.aborted || !refusedByScope(error, start.after)) throw error;
        reporter.emit({
          event: "warning",
          message: `skipping ${eventType}: the key's scope does not allow it (HTTP 403); add ` +
            `${scopeForType(eventType)} (or ${COMPLIANCE_READ_SCOPE}) to the key to collect it`,
        });
        continue;
      }
      if (confirmations.pending === 0) {
        await confirmations.settled(); // Its last moves written before the checkpoint closes.
        reportCompleted(eventType, start.after, context);
      } else awaiting.push({ eventType, startAfter: start.after, confirmations });
    }
    await destination.finish();
    for (const { eventType, startAfter, confirmations } of awaiting) {
      await confirmations.settled({ complete: true });
      reportCompleted(eventType, startAfter, context);
    }
  } catch (error) {
    await destination.abort();
    // Whatever was confirmed before the failure is on the checkpoint before it closes.
    await Promise.all(awaiting.map(({ confirmations }) => confirmations.settled().catch(() => {})));
    throw error;
  }
}

/**
 * A 403 to the type's first listing page: keys are authorized per event type, so `all` can be
 * refused one type. A 403 later (a download, a further page) is not a scope refusal: files of the
 * type may already be handed over, and the run fails as any other would.
 */
function refusedByScope(error: unknown, startAfter: string): boolean {
  return error instanceof CliError && error.kind === "auth" &&
    error.message.startsWith(`HTTP error 403 while listing logs (after=${startAfter},`);
}

function reportCompleted(eventType: string, startAfter: string, context: PassContext): void {
  const { files, movedTo } = context.stats.pass(eventType);
  context.manifest?.listed(eventType);
  context.reporter.emit({
    event: "completed",
    eventType,
    files,
    cursor: movedTo,
    initialAfter: startAfter,
  });
}
