/**
 * `Destination.spoolsAhead`: the delivery lets at most that many downloads run ahead of a
 * destination (in flight or waiting their turn), taken in listing order, so a destination whose
 * `alreadyStored` answers out of order (a fan-out asking a directory and a SIEM) cannot have later
 * files hold every slot while the file it waits for has none; and a fan-out takes the tightest
 * bound of its destinations.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ListPage, LogFile } from "../../lib/log_file.ts";
import { deliverEventType } from "../../lib/delivery.ts";
import type { Destination, Parcel, Spool } from "../../lib/destinations/contract.ts";
import type { ConfiguredDestination } from "../../lib/destinations/kind.ts";
import { fanOut } from "../../lib/destinations/fan_out.ts";
import { RunStats } from "../../lib/run_stats.ts";

const FILES: LogFile[] = Array.from({ length: 6 }, (_, i) => ({
  id: `f${i}`,
  event_type: "AUTH_LOG",
  end_time: `2026-07-01T0${i + 1}:00:00Z`,
}));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Answers `alreadyStored` later for earlier files (out of order); counts downloads ahead. */
class SlowToAnswer implements Destination {
  readonly guarantee = "confirmed";
  readonly delivered: string[] = [];
  ahead = 0;
  mostAhead = 0;
  constructor(readonly spoolsAhead: number | undefined) {}
  async alreadyStored(file: LogFile): Promise<boolean> {
    await sleep(5 * (FILES.length - FILES.indexOf(file)));
    return false;
  }
  spool(): Promise<Spool> {
    this.mostAhead = Math.max(this.mostAhead, ++this.ahead);
    const ignore = () => Promise.resolve();
    return Promise.resolve({ write: ignore, restart: ignore, discard: ignore });
  }
  deliver(parcel: Parcel): Promise<void> {
    this.ahead--;
    this.delivered.push(parcel.file.id);
    parcel.receipt.confirm();
    return Promise.resolve();
  }
  finish = () => Promise.resolve();
  abort = () => Promise.resolve();
}

async function deliverAll(destination: SlowToAnswer): Promise<void> {
  const client = {
    listPage: (): Promise<ListPage> =>
      Promise.resolve({ data: FILES, has_more: false, last_end_time: FILES.at(-1)!.end_time }),
    withSignal: () => client,
    download: () => Promise.resolve({ bytes: 10 }),
  };
  const stats = new RunStats();
  stats.startEventType("AUTH_LOG", null);
  const confirmations = await deliverEventType({
    eventType: "AUTH_LOG",
    start: { after: "2026-07-01T00:00:00Z", seen: new Set() },
    client,
    destination,
    stats,
    reporter: { emit() {} },
    signal: AbortSignal.timeout(20_000),
    settings: { concurrency: 4, limit: 100, settleMs: 0 },
  });
  await confirmations.settled({ complete: true });
}

test("a destination's bound on downloads ahead holds, in listing order, with no deadlock", async () => {
  const bounded = new SlowToAnswer(2);
  await deliverAll(bounded);
  assert.deepEqual(bounded.delivered, FILES.map((f) => f.id));
  assert.equal(bounded.mostAhead, 2, "never more than two downloads ahead");

  const unbounded = new SlowToAnswer(undefined);
  await deliverAll(unbounded);
  assert.deepEqual(unbounded.delivered, FILES.map((f) => f.id));
  assert.ok(unbounded.mostAhead > 2, `--concurrency alone lets more run (${unbounded.mostAhead})`);
});

test("a fan-out bounds its one download by the tightest bound of its destinations", async () => {
  const configured = (spoolsAhead?: number): ConfiguredDestination => ({
    label: `bound ${spoolsAhead}`,
    guarantee: "confirmed",
    localFiles: [],
    check: () => Promise.resolve(),
    open: () => Promise.resolve(new SlowToAnswer(spoolsAhead)),
  });
  const events = { retry() {}, warn() {}, keptAside() {} };
  const unbounded = await fanOut([configured(), configured()]).open(events);
  assert.equal(unbounded.spoolsAhead, undefined);
  await unbounded.abort();
  const bounded = await fanOut([configured(), configured(3), configured(1)]).open(events);
  assert.equal(bounded.spoolsAhead, 1);
  await bounded.abort();
});
