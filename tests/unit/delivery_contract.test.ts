/**
 * The delivery contract (lib/destinations/contract.ts) proved with an in-memory destination that
 * behaves like a batching SIEM: it reads each spool line by line in bounded batches, and confirms
 * late, out of order, and partially (it can reject a file). The checkpoint (a recording
 * DeliveryCheckpoint) only ever moves past confirmed files, in listing order; a rejection stops the run
 * with the checkpoint before the rejected file; the statistics count only confirmed files.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ListPage, ListQuery, LogFile } from "../../lib/log_file.ts";
import { deliverEventType, type DeliveryReporter } from "../../lib/delivery.ts";
import type { DeliveryCheckpoint, Destination, Parcel } from "../../lib/destinations/contract.ts";
import { BatchStream, LineSplitStream } from "../../lib/destinations/lines.ts";
import { type FileSpool, RunSpools } from "../../lib/destinations/spool.ts";
import { RunStats } from "../../lib/run_stats.ts";

const AFTER = "2026-07-01T00:00:00Z";
const PER_PAGE = 3;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** File i ends at hour i + 1 and holds i + 1 JSON lines (the last file without a final newline). */
function fixture(count: number) {
  const files: LogFile[] = [];
  const bodies = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const id = `f${i}`;
    const hour = String(i + 1).padStart(2, "0");
    files.push({ id, event_type: "AUTH_LOG", end_time: `2026-07-01T${hour}:00:00Z` });
    const lines = Array.from({ length: i + 1 }, (_, n) => `{"file":"${id}","n":${n}}\r\n`);
    bodies.set(id, lines.join("").slice(0, i === count - 1 ? -2 : undefined));
  }
  return { files, bodies };
}

/** Pages of PER_PAGE files, each asked for with the previous page's last end_time. */
function client(files: LogFile[], bodies: Map<string, string>) {
  const self = {
    listPage(query: ListQuery): Promise<ListPage> {
      const first = query.after === AFTER ? 0 : files.findIndex((f) => f.end_time > query.after);
      const data = files.slice(first, first + PER_PAGE);
      const hasMore = first + PER_PAGE < files.length;
      return Promise.resolve({ data, has_more: hasMore, last_end_time: data.at(-1)!.end_time });
    },
    withSignal: () => self,
    async download(file: LogFile, spool: { write(chunk: Uint8Array): Promise<void> }) {
      const bytes = encoder.encode(bodies.get(file.id)!);
      // In two chunks that cut a line, as a network would.
      await spool.write(bytes.subarray(0, 7));
      await spool.write(bytes.subarray(7));
      return { bytes: bytes.length, lastByte: bytes.at(-1) };
    },
  };
  return self;
}

/**
 * A SIEM-like destination: sends each file as batches of at most 2 lines, and acknowledges the
 * files of every group of 3 in reverse order, a few milliseconds later; `refuse` names a file it
 * rejects.
 */
class IndexDestination implements Destination<FileSpool> {
  readonly guarantee = "confirmed";
  readonly batches: string[][] = [];
  readonly confirmed = new Set<string>();
  #unacked: Parcel<FileSpool>[] = [];
  #timers: Promise<void>[] = [];

  private constructor(private readonly folder: RunSpools, private readonly refuse?: string) {}

  static async create(refuse?: string): Promise<IndexDestination> {
    return new IndexDestination(await RunSpools.create(), refuse);
  }

  alreadyStored(): Promise<boolean> {
    return Promise.resolve(false);
  }

  spool(): Promise<FileSpool> {
    return this.folder.next();
  }

  async deliver(parcel: Parcel<FileSpool>): Promise<void> {
    const batches = parcel.spool.stream()
      .pipeThrough(new LineSplitStream())
      .pipeThrough(new BatchStream({ count: 2, bytes: 1 << 16, waitMs: 1000 }));
    for await (const batch of batches) this.batches.push(batch.map((l) => decoder.decode(l)));
    await parcel.spool.discard();
    this.#unacked.push(parcel);
    if (this.#unacked.length === 3) this.#acknowledge();
  }

  /** Settles the files sent so far, the last one first, each a little later than the one after. */
  #acknowledge(): void {
    const group = this.#unacked;
    this.#unacked = [];
    group.forEach(({ file, receipt }, i) => {
      this.#timers.push(
        new Promise((done) =>
          setTimeout(() => {
            if (file.id === this.refuse) receipt.reject(new Error(`index refused ${file.id}`));
            else {
              this.confirmed.add(file.id);
              receipt.confirm();
            }
            done();
          }, 2 + 4 * (group.length - i))
        ),
      );
    });
  }

  /** Waits until every acknowledgement sent so far has arrived. */
  async idle(): Promise<void> {
    while (this.#timers.length > 0) await this.#timers.shift();
  }

  async finish(): Promise<void> {
    this.#acknowledge();
    await this.idle();
    await this.folder.remove();
  }

  async abort(): Promise<void> {
    await this.idle();
    await this.folder.remove();
  }
}

/** A DeliveryCheckpoint that records each move and checks it passes only confirmed files, in order. */
function checkingStore(files: LogFile[], destination: IndexDestination) {
  const moves: string[] = [];
  let next = 0;
  const store: DeliveryCheckpoint = {
    cursor: () => undefined,
    markDelivered(_type, _after, id) {
      assert.equal(id, files[next]?.id, "files move the checkpoint in listing order");
      assert.ok(destination.confirmed.has(id), `${id} moves the checkpoint only once confirmed`);
      next++;
      moves.push(id);
      return Promise.resolve();
    },
    advance(_type, newAfter) {
      assert.equal(newAfter, files[next - 1].end_time, "a page end comes after its last file");
      moves.push(`page@${newAfter}`);
      return Promise.resolve();
    },
    markGone: () => Promise.reject(new Error("no file is gone here")),
    skipReason: () => undefined,
    skipCommand: (type, id) => `skip ${type} ${id}`,
  };
  return { store, moves };
}

const quiet: DeliveryReporter = { emit() {} };

function job(files: LogFile[], bodies: Map<string, string>, extra: {
  destination: IndexDestination;
  checkpoint: DeliveryCheckpoint;
  stats: RunStats;
}) {
  return {
    eventType: "AUTH_LOG",
    start: { after: AFTER, seen: new Set<string>() },
    client: client(files, bodies),
    reporter: quiet,
    signal: new AbortController().signal,
    settings: { concurrency: 3, limit: PER_PAGE, settleMs: 0, now: () => Date.parse("2026-08-01") },
    ...extra,
  };
}

test("confirmations that come late and out of order move the checkpoint in listing order", async () => {
  const { files, bodies } = fixture(8);
  const destination = await IndexDestination.create();
  const { store, moves } = checkingStore(files, destination);
  const stats = new RunStats();
  stats.startEventType("AUTH_LOG", null);
  const confirmations = await deliverEventType(
    job(files, bodies, { destination, checkpoint: store, stats }),
  );
  assert.ok(confirmations.pending > 0, "the last files wait for their acknowledgement");
  await destination.finish();
  await confirmations.settled({ complete: true });

  const ids = files.map((f) => f.id);
  assert.deepEqual(moves, [
    ...ids.slice(0, 3),
    `page@${files[2].end_time}`,
    ...ids.slice(3, 6),
    `page@${files[5].end_time}`,
    ...ids.slice(6),
    `page@${files[7].end_time}`,
  ]);
  assert.equal(stats.files, 8);
  const total = [...bodies.values()].reduce((n, b) => n + encoder.encode(b).length, 0);
  assert.equal(stats.bytes, total);
  assert.equal(stats.cursors.AUTH_LOG, files[7].end_time);
  // Line by line, in bounded batches, byte-exact: CRLF kept, the unterminated last line whole.
  assert.ok(destination.batches.every((b) => b.length >= 1 && b.length <= 2));
  assert.equal(destination.batches.flat().join(""), [...bodies.values()].join(""));
});

test("a rejected file fails the delivery with the checkpoint just before it", async () => {
  const { files, bodies } = fixture(8);
  const destination = await IndexDestination.create("f4");
  const { store, moves } = checkingStore(files, destination);
  const stats = new RunStats();
  stats.startEventType("AUTH_LOG", null);
  await assert.rejects(
    (async () => {
      const confirmations = await deliverEventType(
        job(files, bodies, { destination, checkpoint: store, stats }),
      );
      await destination.finish();
      await confirmations.settled({ complete: true });
    })(),
    /index refused f4/,
  );
  await destination.abort();
  await new Promise((done) => setTimeout(done, 10)); // Releases after the last acknowledgement.
  // f5 was confirmed before f4's rejection arrived, and f3 after it: only f3 may pass.
  assert.ok(destination.confirmed.has("f5") && destination.confirmed.has("f3"));
  assert.deepEqual(moves, ["f0", "f1", "f2", `page@${files[2].end_time}`, "f3"]);
  assert.equal(stats.files, 4, "only confirmed files count");
  assert.equal(stats.cursors.AUTH_LOG, files[3].end_time);
});
