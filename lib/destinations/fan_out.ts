/**
 * Several destinations fed by one download (`--output-dir s3://... -o hec+https://...`): each file
 * is downloaded once into a spool of its own, copied into every destination that does not hold it
 * yet, and confirmed only once every destination confirmed it, so the checkpoint never moves past
 * a file one of them lacks. A destination that refuses a file stops the run for all. The API's
 * download budget (50 a minute) is spent once per file, not once per destination.
 *
 * @example
 * ```ts
 * declare const archive: import("./mod.ts").ConfiguredDestination;
 * declare const siem: import("./mod.ts").ConfiguredDestination;
 * const both = fanOut([archive, siem]);
 * await both.check();
 * const destination = await both.open({ retry() {}, warn() {}, keptAside() {} });
 * ```
 */
import type { LogFile } from "../log_file.ts";
import type { Destination, Guarantee, Parcel, Receipt } from "./contract.ts";
import type { ConfiguredDestination } from "./kind.ts";
import type { StoredFacts } from "../manifest/format.ts";
import { type FileSpool, RunSpools } from "./spool.ts";

/** `configured` as one destination: checked, opened and settled together. */
export function fanOut(configured: readonly ConfiguredDestination[]): ConfiguredDestination {
  if (configured.length === 1) return configured[0];
  return {
    label: configured.map((d) => d.label).join(" and "),
    guarantee: weakest(configured.map((d) => d.guarantee)),
    localFiles: configured.flatMap((d) => d.localFiles),
    // The manifest goes with the archive, and records what the archive stored.
    archive: configured.find((d) => d.archive)?.archive,
    async check() {
      for (const destination of configured) await destination.check();
    },
    async open(events) {
      const opened: Destination[] = [];
      try {
        for (const destination of configured) opened.push(await destination.open(events));
      } catch (error) {
        await Promise.all(opened.map((d) => d.abort().catch(() => {})));
        throw error;
      }
      try {
        return new FanOutDestination(opened, await RunSpools.create());
      } catch (error) {
        await Promise.all(opened.map((d) => d.abort().catch(() => {})));
        throw error;
      }
    },
  };
}

/** A file is only as safe as its least safe copy. */
function weakest(guarantees: Guarantee[]): Guarantee {
  return guarantees.includes("best-effort") ? "best-effort" : "confirmed";
}

/** One receipt settled once every part is: confirmed by all, or rejected by the first that refuses. */
function joinedReceipt(receipt: Receipt, parts: number): () => Receipt {
  let confirmed = 0;
  let settled = false;
  let stored: StoredFacts | undefined;
  return () => {
    let done = false;
    return {
      confirm(facts) {
        if (done || settled) return;
        done = true;
        stored ??= facts;
        if (++confirmed === parts) {
          settled = true;
          receipt.confirm(stored);
        }
      },
      reject(error) {
        if (done || settled) return;
        done = true;
        settled = true;
        receipt.reject(error);
      },
    };
  };
}

class FanOutDestination implements Destination<FileSpool> {
  readonly guarantee: Guarantee;
  readonly spoolsAhead?: number;
  /** Which destinations already hold a file, asked once before its download. */
  readonly #holding = new Map<string, boolean[]>();

  constructor(private readonly destinations: Destination[], private readonly spools: RunSpools) {
    this.guarantee = weakest(destinations.map((d) => d.guarantee));
    // The one download feeds them all: it may run only as far ahead as the tightest allows.
    const bounds = destinations.flatMap((d) => d.spoolsAhead === undefined ? [] : [d.spoolsAhead]);
    if (bounds.length > 0) this.spoolsAhead = Math.min(...bounds);
  }

  async alreadyStored(file: LogFile, eventType: string): Promise<boolean> {
    const holding = await Promise.all(
      this.destinations.map((d) => d.alreadyStored(file, eventType)),
    );
    if (holding.every(Boolean)) return true;
    this.#holding.set(file.id, holding);
    return false;
  }

  spool(): Promise<FileSpool> {
    return this.spools.next();
  }

  async deliver(parcel: Parcel<FileSpool>): Promise<void> {
    const { file, eventType, spool, downloaded } = parcel;
    const holding = this.#holding.get(file.id) ?? this.destinations.map(() => false);
    this.#holding.delete(file.id);
    const lacking = this.destinations.filter((_, i) => !holding[i]);
    const part = joinedReceipt(parcel.receipt, lacking.length);
    try {
      for (const destination of lacking) {
        // Its own spool (a temp beside its final path, say), filled from the one download.
        const own = await destination.spool(file, eventType);
        try {
          for await (const chunk of spool.stream()) await own.write(chunk);
        } catch (error) {
          await own.discard();
          throw error;
        }
        await destination.deliver({ file, eventType, spool: own, downloaded, receipt: part() });
      }
    } finally {
      await spool.discard();
    }
  }

  async finish(): Promise<void> {
    for (const destination of this.destinations) await destination.finish();
    await this.spools.remove();
  }

  async abort(): Promise<void> {
    await Promise.all(this.destinations.map((d) => d.abort().catch(() => {})));
    await this.spools.remove();
  }
}
