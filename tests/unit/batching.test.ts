/**
 * The batching core the SIEM destinations share (lib/destinations/_batching.ts), with a scripted
 * protocol: records are lines without LF/CRLF and blank lines are skipped; batches are bounded by
 * count and bytes and gather records across files; a file is confirmed only once all its records
 * are; a 413 halves the batch and a single record too large fails naming its event_id and size;
 * items to send again go alone; a record refused for good rejects only its file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CliError, TransientError } from "../../lib/errors.ts";
import {
  BatchingDestination,
  type BatchItem,
  type BatchProtocol,
  joinItems,
  type SendOutcome,
} from "../../lib/destinations/_batching.ts";
import type { FileSpool } from "../../lib/destinations/spool.ts";

const decoder = new TextDecoder();
const POLICY = { retries: 3, backoffMs: 1, maxWaitMs: 5 };

/** Records each batch as the list of record texts; answers from `script` (default: accepted). */
class ScriptedProtocol implements BatchProtocol {
  readonly name = "the test collector";
  readonly sizeHint = "raise its limit";
  readonly batches: string[][] = [];
  constructor(
    private readonly script: (texts: string[], n: number) => SendOutcome | Error = () => ({
      kind: "accepted",
    }),
  ) {}

  encode(record: string) {
    const id = /"id":"([^"]+)"/.exec(record)?.[1];
    return { text: `${record}\n`, eventId: id };
  }

  send(items: readonly BatchItem[]): Promise<SendOutcome> {
    const texts = decoder.decode(joinItems(items)).split("\n").slice(0, -1);
    this.batches.push(texts);
    const answer = this.script(texts, this.batches.length);
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  }
}

interface Settled {
  state: "pending" | "confirmed" | "rejected";
  error?: unknown;
}

async function deliverAll(
  destination: BatchingDestination,
  files: Record<string, string>,
): Promise<Record<string, Settled>> {
  const settled: Record<string, Settled> = {};
  for (const [id, content] of Object.entries(files)) {
    const spool = await destination.spool();
    await spool.write(new TextEncoder().encode(content));
    const status: Settled = settled[id] = { state: "pending" };
    await destination.deliver({
      file: { id, event_type: "AUTH_LOG", end_time: "2026-07-01T00:00:00Z" },
      eventType: "AUTH_LOG",
      spool: spool as FileSpool,
      downloaded: {
        bytes: content.length,
        lastByte: content.charCodeAt(content.length - 1),
      } as never,
      receipt: {
        confirm: () => {
          if (status.state === "pending") status.state = "confirmed";
        },
        reject: (error) => {
          if (status.state === "pending") Object.assign(status, { state: "rejected", error });
        },
      },
    }).catch(() => {});
  }
  await destination.finish();
  return settled;
}

const rec = (id: string, pad = 0) => `{"id":"${id}","pad":"${"p".repeat(pad)}"}`;

test("lines without LF/CRLF, blank lines skipped, batches bounded by count across files", async () => {
  const protocol = new ScriptedProtocol();
  const destination = await BatchingDestination.create(protocol, {
    maxCount: 3,
    maxBytes: 1 << 20,
    inFlight: 2,
    policy: POLICY,
  });
  const settled = await deliverAll(destination, {
    a: `${rec("a1")}\r\n\r\n${rec("a2")}\n   \n`,
    b: `${rec("b1")}\n${rec("b2")}\r\n${rec("b3")}`,
    empty: "",
  });
  assert.deepEqual(protocol.batches, [
    [rec("a1"), rec("a2"), rec("b1")],
    [rec("b2"), rec("b3")],
  ]);
  assert.deepEqual(Object.values(settled).map((s) => s.state), [
    "confirmed",
    "confirmed",
    "confirmed",
  ]);
});

test("batches bounded by bytes; a 413 halves the batch; a record too large alone fails naming it", async () => {
  const limit = 400;
  const protocol = new ScriptedProtocol((texts) => {
    const bytes = texts.reduce((n, t) => n + t.length + 1, 0);
    return bytes > limit ? { kind: "too-large", limit: `max ${limit}` } : { kind: "accepted" };
  });
  const destination = await BatchingDestination.create(protocol, {
    maxCount: 100,
    maxBytes: 1000,
    inFlight: 1,
    policy: POLICY,
  });
  const small = Array.from({ length: 8 }, (_, i) => rec(`s${i}`, 80)).join("\n");
  const settled = await deliverAll(destination, { small, big: rec("huge", 600) });
  assert.equal(settled.small.state, "confirmed");
  assert.equal(settled.big.state, "rejected");
  assert.match(
    (settled.big.error as Error).message,
    /^event huge \(line 1 of AUTH_LOG file big\) is 6\d\d bytes, larger than the test collector accepts \(max 400\); raise its limit/,
  );
  assert.ok(protocol.batches.every((b) => b.length > 0));
  assert.ok(protocol.batches[0].length <= 10, "at most 1000 bytes a batch");
  assert.equal(protocol.batches[1].length, Math.ceil(protocol.batches[0].length / 2), "halved");
  assert.ok(protocol.batches.length < 20, "never loops");
});

test("a file is confirmed only once every record is; items to retry go alone; a refusal rejects its file", async () => {
  const protocol = new ScriptedProtocol((texts, n) => {
    if (n === 1) return new TransientError("api", "reset");
    const retry = texts.flatMap((t, i) => (t.includes('"a2"') && n < 4 ? [i] : []));
    const failed = texts.flatMap((t, i) =>
      t.includes('"b1"') ? [{ index: i, error: new CliError("api", "refused b1") }] : []
    );
    return { kind: "partial", retry, failed };
  });
  const destination = await BatchingDestination.create(protocol, {
    maxCount: 10,
    maxBytes: 1 << 20,
    inFlight: 1,
    policy: POLICY,
  });
  const settled = await deliverAll(destination, {
    a: `${rec("a1")}\n${rec("a2")}\n`,
    b: `${rec("b1")}\n${rec("b2")}\n`,
    c: `${rec("c1")}\n`,
  });
  assert.equal(settled.a.state, "confirmed");
  assert.equal(settled.b.state, "rejected");
  assert.match((settled.b.error as Error).message, /refused b1/);
  assert.deepEqual(
    protocol.batches.slice(2),
    [[rec("a2")], [rec("a2")]],
    "a2 alone, until accepted",
  );
});

test("retries run out: the batch's files are rejected with the last error", async () => {
  const protocol = new ScriptedProtocol(() => new TransientError("api", "still busy"));
  const destination = await BatchingDestination.create(protocol, {
    maxCount: 10,
    maxBytes: 1 << 20,
    inFlight: 1,
    policy: POLICY,
  });
  const settled = await deliverAll(destination, { a: `${rec("a1")}\n` });
  assert.equal(settled.a.state, "rejected");
  assert.match((settled.a.error as Error).message, /still busy/);
  assert.equal(protocol.batches.length, POLICY.retries + 1);
});
