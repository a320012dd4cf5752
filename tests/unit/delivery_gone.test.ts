/**
 * Gone, skipped and quiet event types in the delivery (lib/delivery.ts), with a stub API client
 * and the real checkpoint: a file the API no longer has is recorded as gone in listing order and
 * the run goes on; an unexplained 404 or a persistent integrity failure stops the run naming
 * `state skip`; three unavailable files in a row trip the breaker with the checkpoint before the
 * first; a skipped id is never downloaded; a listing with nothing new still leaves a cursor.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ListPage, ListQuery, LogFile } from "../../lib/log_file.ts";
import { Checkpoint, skipFile } from "../../lib/checkpoint/model.ts";
import { deliverEventType, type DeliveryReporter, GONE_BREAKER } from "../../lib/delivery.ts";
import type { Destination, Parcel, Spool } from "../../lib/destinations/contract.ts";
import { CliError, GoneFileError, type GoneReason } from "../../lib/errors.ts";
import type { ReportEvent } from "../../lib/reporter/events.ts";
import { RunStats } from "../../lib/run_stats.ts";
import { withDir } from "../helpers/mod.ts";

const AFTER = "2026-07-01T00:00:00Z";
const NOW = Date.parse("2026-07-20T12:00:00Z");
const PER_PAGE = 2;

const files = (count: number): LogFile[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `f${i}`,
    event_type: "AUTH_LOG",
    end_time: `2026-07-01T${String(i + 1).padStart(2, "0")}:00:00Z`,
  }));

/** Pages of PER_PAGE; `faults` makes a download fail (a gone reason, or "integrity"). */
function stubClient(list: LogFile[], faults: Record<string, GoneReason | "integrity"> = {}) {
  const downloads: string[] = [];
  const pages: string[] = [];
  const self = {
    downloads,
    pages,
    listPage(query: ListQuery): Promise<ListPage> {
      pages.push(query.after);
      const first = list.findIndex((f) => f.end_time > query.after);
      const data = first < 0 ? [] : list.slice(first, first + PER_PAGE);
      const hasMore = first >= 0 && first + PER_PAGE < list.length;
      return Promise.resolve({
        data,
        has_more: hasMore,
        last_end_time: data.at(-1)?.end_time ?? null,
      });
    },
    withSignal: () => self,
    download(file: LogFile): Promise<{ bytes: number }> {
      downloads.push(file.id);
      const fault = faults[file.id];
      if (fault === "integrity") {
        return Promise.reject(
          new CliError("integrity", `log file ${file.id} failed verification 3 times: sha256`),
        );
      }
      if (fault) {
        return Promise.reject(
          new GoneFileError(file, fault, `HTTP error 404 while downloading log id=${file.id}:`, {
            detail: '{"detail":"no longer available"}',
          }),
        );
      }
      return Promise.resolve({ bytes: 10 });
    },
  };
  return self;
}

/** Takes every file at once and confirms it. */
class TakeAll implements Destination {
  readonly guarantee = "confirmed";
  readonly delivered: string[] = [];
  alreadyStored(): Promise<boolean> {
    return Promise.resolve(false);
  }
  spool(): Promise<Spool> {
    const ignore = () => Promise.resolve();
    return Promise.resolve({ write: ignore, restart: ignore, discard: ignore });
  }
  deliver(parcel: Parcel): Promise<void> {
    this.delivered.push(parcel.file.id);
    parcel.receipt.confirm();
    return Promise.resolve();
  }
  finish(): Promise<void> {
    return Promise.resolve();
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }
}

async function deliver(
  dir: string,
  client: ReturnType<typeof stubClient>,
  options: { types?: string[] | "all"; eventType?: string; settleMs?: number } = {},
) {
  const path = join(dir, "s.json");
  const eventType = options.eventType ?? "AUTH_LOG";
  const store = await Checkpoint.open(path, "ws-1", options.types ?? [eventType]);
  const stats = new RunStats();
  const events: ReportEvent[] = [];
  const reporter: DeliveryReporter = { emit: (event) => events.push(event) };
  const destination = new TakeAll();
  const saved = store.cursor(eventType);
  stats.startEventType(eventType, saved?.after ?? null);
  let failure: unknown;
  try {
    const confirmations = await deliverEventType({
      eventType,
      start: { after: saved?.after ?? AFTER, seen: new Set(saved?.seen ?? []) },
      client,
      destination,
      checkpoint: store,
      stats,
      reporter,
      signal: new AbortController().signal,
      settings: {
        concurrency: 3,
        limit: PER_PAGE,
        settleMs: options.settleMs ?? 0,
        now: () => NOW,
      },
    });
    await confirmations.settled({ complete: true });
  } catch (error) {
    failure = error;
  } finally {
    await store.close();
  }
  const data = JSON.parse(await readFile(path, "utf8"));
  return { failure, stats, events, destination, data, path };
}

test("gone files are recorded in listing order, counted and reported; the run goes on", async () => {
  await withDir("oai-gone-", async (dir) => {
    const list = files(5);
    const client = stubClient(list, { f1: "expired", f3: "unavailable" });
    const r = await deliver(dir, client);
    assert.equal(r.failure, undefined, String(r.failure));
    assert.deepEqual(r.destination.delivered, ["f0", "f2", "f4"]);
    assert.deepEqual(
      r.data.gone.AUTH_LOG.map((g: { id: string; reason: string }) => [g.id, g.reason]),
      [
        ["f1", "expired"],
        ["f3", "unavailable"],
      ],
    );
    assert.equal(r.data.cursors.AUTH_LOG.after, list[4].end_time);
    assert.equal(r.stats.files, 3);
    assert.deepEqual(r.stats.goneFiles(), [
      { eventType: "AUTH_LOG", id: "f1", endTime: list[1].end_time, reason: "expired" },
      { eventType: "AUTH_LOG", id: "f3", endTime: list[3].end_time, reason: "unavailable" },
    ]);
    const snapshot = r.stats.snapshot("incomplete", 4);
    assert.equal(snapshot.gone, 2);
    assert.equal(snapshot.goneFiles.length, 2);
    const gone = r.events.filter((e) => e.event === "gone");
    assert.deepEqual(gone.map((e) => e.event === "gone" && e.id), ["f1", "f3"]);

    // The next run does not ask for them again: the cursor has passed them.
    const next = await deliver(dir, client);
    assert.equal(next.failure, undefined);
    assert.equal(client.downloads.filter((id) => id === "f1").length, 1);
  });
});

test("an unexplained 404 fails the run before the file, naming state skip", async () => {
  await withDir("oai-gone-", async (dir) => {
    const list = files(4);
    const r = await deliver(dir, stubClient(list, { f2: "unexplained" }));
    assert.ok(r.failure instanceof GoneFileError, String(r.failure));
    assert.equal(r.failure.kind, "api");
    assert.match(
      r.failure.message,
      new RegExp(
        `^HTTP error 404 while downloading log id=f2; to pass this file on purpose, run ` +
          "`oai-compliance-logs state skip \\S+s\\.json AUTH_LOG f2 --reason TEXT`:$",
      ),
    );
    assert.equal(r.failure.detail, '{"detail":"no longer available"}');
    // The first page (f0, f1) is done; f2 opens the second: the checkpoint is before it.
    assert.equal(r.data.cursors.AUTH_LOG.after, list[1].end_time);
    assert.deepEqual(r.data.cursors.AUTH_LOG.seen, ["f1"]);
    assert.deepEqual(r.data.gone, {});
    assert.deepEqual(r.stats.goneFiles(), []);
  });
});

test("a persistent integrity failure names state skip; after the skip the run passes the file", async () => {
  await withDir("oai-gone-", async (dir) => {
    const list = files(4);
    const client = stubClient(list, { f1: "integrity" });
    const r = await deliver(dir, client);
    assert.ok(r.failure instanceof CliError && r.failure.kind === "integrity", String(r.failure));
    assert.match(
      r.failure.message,
      /sha256; to pass this file on purpose, run `.*state skip .* AUTH_LOG f1 --reason TEXT`$/,
    );
    assert.equal(r.data.cursors.AUTH_LOG.after, AFTER);
    assert.deepEqual(r.data.cursors.AUTH_LOG.seen, ["f0"]);

    await skipFile(r.path, "AUTH_LOG", "f1", "sha256 never matches (ticket 9)");
    const downloadsBefore = client.downloads.length;
    const again = await deliver(dir, client);
    assert.equal(again.failure, undefined, String(again.failure));
    assert.ok(!client.downloads.slice(downloadsBefore).includes("f1"), "f1 is not downloaded");
    assert.deepEqual(again.destination.delivered, ["f2", "f3"]);
    assert.equal(again.data.cursors.AUTH_LOG.after, list[3].end_time);
    const skip = again.events.find((e) => e.event === "skip" && e.id === "f1");
    assert.ok(skip && skip.event === "skip" && /operator.*ticket 9/.test(skip.reason));
  });
});

test(`${GONE_BREAKER} unavailable files in a row trip the breaker, checkpoint before the first`, async () => {
  await withDir("oai-gone-", async (dir) => {
    // f1..f3 span a page end (pages of 2): the page end after f2 is held back with them.
    const list = files(6);
    const r = await deliver(
      dir,
      stubClient(list, { f1: "unavailable", f2: "unavailable", f3: "unavailable" }),
    );
    assert.ok(r.failure instanceof CliError && r.failure.kind === "api", String(r.failure));
    assert.match(r.failure.message, /3 AUTH_LOG files in a row .*\(f1, f2, f3\)/);
    assert.match(r.failure.message, /checkpoint stays before f1/);
    assert.ok(!r.failure.message.includes("\n"));
    assert.deepEqual(r.data.cursors.AUTH_LOG, {
      ...r.data.cursors.AUTH_LOG,
      after: AFTER,
      seen: ["f0"],
    });
    assert.deepEqual(r.data.gone, {}, "none recorded");
    assert.deepEqual(r.stats.goneFiles(), []);
    assert.equal(r.events.filter((e) => e.event === "gone").length, 0);
  });
});

test("unavailable files broken up by a delivered or expired one do not trip the breaker", async () => {
  await withDir("oai-gone-", async (dir) => {
    const list = files(7);
    const r = await deliver(
      dir,
      stubClient(list, {
        f0: "unavailable",
        f1: "unavailable",
        f3: "unavailable",
        f4: "unavailable",
        f5: "expired",
        f6: "unavailable",
      }),
    );
    assert.equal(r.failure, undefined, String(r.failure));
    assert.deepEqual(r.destination.delivered, ["f2"]);
    assert.deepEqual(
      r.data.gone.AUTH_LOG.map((g: { id: string }) => g.id),
      ["f0", "f1", "f3", "f4", "f5", "f6"],
      "recorded in listing order, the last ones at the listing's end",
    );
    assert.equal(r.data.cursors.AUTH_LOG.after, list[6].end_time);
    assert.equal(r.stats.snapshot("incomplete", 4).gone, 6);
  });
});

test("an event type that lists nothing gets a cursor: the listing time less its publication delay", async () => {
  await withDir("oai-gone-", async (dir) => {
    // Nothing at all: COSTS (5 h late) and AUTH_LOG (30 min) of an `all` job.
    const costs = await deliver(dir, stubClient([]), { types: "all", eventType: "COSTS" });
    assert.equal(costs.failure, undefined, String(costs.failure));
    assert.equal(costs.data.cursors.COSTS.after, new Date(NOW - 5 * 3_600_000).toISOString());
    assert.deepEqual(costs.data.cursors.COSTS.seen, []);
    assert.equal(costs.stats.cursors.COSTS, costs.data.cursors.COSTS.after);
    const auth = await deliver(dir, stubClient([]), { types: "all", eventType: "AUTH_LOG" });
    assert.equal(auth.data.cursors.AUTH_LOG.after, new Date(NOW - 30 * 60_000).toISOString());
  });
});

test("an event type that has a cursor keeps it when nothing new is listed; --settle holds a new one back", async () => {
  await withDir("oai-gone-", async (dir) => {
    const list = files(2);
    const first = await deliver(dir, stubClient(list));
    assert.equal(first.data.cursors.AUTH_LOG.after, list[1].end_time);
    // Listed again with nothing new: the cursor stays where the delivered data put it.
    const again = await deliver(dir, stubClient(list));
    assert.equal(again.failure, undefined);
    assert.deepEqual(again.data.cursors.AUTH_LOG, first.data.cursors.AUTH_LOG);
  });
  await withDir("oai-gone-", async (dir) => {
    const r = await deliver(dir, stubClient([]), { settleMs: 7 * 3_600_000 });
    assert.equal(r.data.cursors.AUTH_LOG.after, new Date(NOW - 7 * 3_600_000).toISOString());
  });
});
