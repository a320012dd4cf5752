/**
 * The RELP client against a small fake RELP server (in this file) that can drop a session,
 * refuse a message, announce `serverclose` or hold acknowledgements back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import {
  parseResponse,
  RelpClient,
  relpFrame,
  RelpFrameReader,
  RelpProtocolError,
} from "../../lib/syslog/relp.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const POLICY = { retries: 3, backoffMs: 10, maxWaitMs: 40 };

test("relp: frames are TXNR SP COMMAND SP DATALEN [SP DATA] LF, read back across chunks", () => {
  assert.equal(decode(relpFrame(1, "open", "a\nb")), "1 open 3 a\nb\n");
  assert.equal(decode(relpFrame(7, "close")), "7 close 0\n");
  const reader = new RelpFrameReader();
  const bytes = encode("2 rsp 6 200 OK\n0 serverclose 0\n3 rsp 11 500 no room\n");
  const frames = [];
  for (let i = 0; i < bytes.length; i += 5) frames.push(...reader.push(bytes.subarray(i, i + 5)));
  assert.deepEqual(
    frames.map((f) => [f.txnr, f.command, decode(f.data)]),
    [[2, "rsp", "200 OK"], [0, "serverclose", ""], [3, "rsp", "500 no room"]],
  );
  assert.deepEqual(parseResponse(encode("200 OK\nrelp_version=0\ncommands=syslog")), {
    code: 200,
    text: "OK",
    extra: "relp_version=0\ncommands=syslog",
  });
  assert.throws(() => new RelpFrameReader().push(encode("x rsp 1 2\n")), RelpProtocolError);
  assert.throws(() => new RelpFrameReader().push(encode("1 rsp 2 OKX")), RelpProtocolError);
});

interface FakeOptions {
  /** Per session (0-based): drop the connection after receiving this many syslog commands. */
  dropAfter?: (session: number) => number | undefined;
  /** Answer this syslog command (by message text) with this code once. */
  refuseOnce?: string;
  /** Hold every acknowledgement until this many commands are outstanding, then answer all. */
  batchAcks?: number;
  /** Session 0: send `serverclose` after this many. */
  serverCloseAfter?: number;
}

interface Fake {
  port: number;
  server: Server;
  /** Every syslog message received, in order, duplicates included. */
  received: string[];
  /** Messages per session (txnrs too). */
  sessions: Array<Array<[number, string]>>;
  maxOutstanding: number;
  closes: number;
  stop(): Promise<void>;
}

async function fakeRelp(options: FakeOptions = {}): Promise<Fake> {
  const sockets = new Set<Socket>();
  let refused = false;
  const fake: Fake = {
    port: 0,
    server: createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      const session = fake.sessions.length;
      const mine: Array<[number, string]> = [];
      fake.sessions.push(mine);
      const reader = new RelpFrameReader();
      let held: number[] = [];
      socket.on("data", (chunk: Uint8Array) => {
        for (const frame of reader.push(chunk)) {
          if (frame.command === "open") {
            socket.write(relpFrame(frame.txnr, "rsp", "200 OK\nrelp_version=0\ncommands=syslog"));
          } else if (frame.command === "close") {
            fake.closes++;
            socket.write(relpFrame(frame.txnr, "rsp"));
            socket.end();
          } else if (frame.command === "syslog") {
            const text = decode(frame.data);
            mine.push([frame.txnr, text]);
            if (options.refuseOnce === text && !refused) {
              refused = true;
              socket.write(relpFrame(frame.txnr, "rsp", "500 not now"));
              continue;
            }
            fake.received.push(text);
            if (options.dropAfter?.(session) === mine.length) {
              socket.destroy();
              return;
            }
            if (session === 0 && options.serverCloseAfter === mine.length) {
              socket.write(relpFrame(0, "serverclose"));
              socket.end();
              return;
            }
            held.push(frame.txnr);
            fake.maxOutstanding = Math.max(fake.maxOutstanding, held.length);
            if (held.length >= (options.batchAcks ?? 1)) {
              for (const txnr of held) socket.write(relpFrame(txnr, "rsp", "200 OK"));
              held = [];
            }
          }
        }
      });
    }),
    received: [],
    sessions: [],
    maxOutstanding: 0,
    closes: 0,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => fake.server.close(resolve));
    },
  };
  await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve));
  fake.port = (fake.server.address() as { port: number }).port;
  return fake;
}

function clientFor(port: number, extra: Partial<ConstructorParameters<typeof RelpClient>[0]> = {}) {
  return new RelpClient({
    what: `RELP at 127.0.0.1:${port}`,
    connect: () =>
      new Promise<Socket>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
        socket.once("error", reject);
      }),
    policy: POLICY,
    ...extra,
  });
}

/** Sends `count` messages "m0".."mN"; resolves with the error each callback heard. */
async function sendAll(client: RelpClient, count: number) {
  const outcomes: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    let settle!: (value: unknown) => void;
    outcomes.push(new Promise((resolve) => settle = resolve));
    await client.send(encode(`m${i}`), (error) => settle(error ?? "ok"));
  }
  return outcomes;
}

test("relp: every message is acknowledged in order, then the session closes", async () => {
  const fake = await fakeRelp();
  try {
    const client = clientFor(fake.port);
    await client.open();
    const outcomes = await sendAll(client, 50);
    await client.close();
    assert.deepEqual(await Promise.all(outcomes), Array(50).fill("ok"));
    assert.deepEqual(fake.received, Array.from({ length: 50 }, (_, i) => `m${i}`));
    // The open is txnr 1; messages follow from 2.
    assert.deepEqual(fake.sessions[0][0], [2, "m0"]);
    assert.equal(fake.closes, 1);
  } finally {
    await fake.stop();
  }
});

test("relp: a dropped session is reopened and every unacknowledged message sent again", async () => {
  const fake = await fakeRelp({ dropAfter: (session) => session === 0 ? 6 : undefined });
  try {
    const retries: string[] = [];
    const client = clientFor(fake.port, { onRetry: (notice) => retries.push(notice.what) });
    await client.open();
    const outcomes = await sendAll(client, 20);
    await client.close();
    assert.deepEqual(await Promise.all(outcomes), Array(20).fill("ok"));
    assert.equal(fake.sessions.length, 2);
    // Every message arrived; the new session starts again at txnr 2, with the unacknowledged.
    const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
    assert.deepEqual([...new Set(fake.received)].sort(), [...expected].sort());
    assert.equal(fake.sessions[1][0][0], 2);
    const resent = fake.sessions[1].map(([, m]) => m);
    assert.ok(resent.includes("m5"), `m5 (unacknowledged when dropped) was sent again: ${resent}`);
    assert.ok(!resent.includes("m0"), "acknowledged messages are not sent again");
    assert.equal(retries.length, 1);
    assert.match(retries[0], /unacknowledged message\(s\) again to RELP at 127\.0\.0\.1/);
  } finally {
    await fake.stop();
  }
});

test("relp: a refused message (500) and a serverclose each lead to a new session, no loss", async () => {
  for (const options of [{ refuseOnce: "m3" }, { serverCloseAfter: 4 }]) {
    const fake = await fakeRelp(options);
    try {
      const client = clientFor(fake.port);
      await client.open();
      const outcomes = await sendAll(client, 10);
      await client.close();
      assert.deepEqual(await Promise.all(outcomes), Array(10).fill("ok"), JSON.stringify(options));
      assert.deepEqual(
        [...new Set(fake.received)].sort(),
        Array.from({ length: 10 }, (_, i) => `m${i}`).sort(),
      );
      assert.ok(fake.sessions.length >= 2);
    } finally {
      await fake.stop();
    }
  }
});

test("relp: no more than the window is unacknowledged at once", async () => {
  const fake = await fakeRelp({ batchAcks: 8 });
  try {
    const client = clientFor(fake.port, { window: 8 });
    await client.open();
    const outcomes = await sendAll(client, 64);
    await client.close();
    assert.deepEqual(await Promise.all(outcomes), Array(64).fill("ok"));
    assert.equal(fake.maxOutstanding, 8);
  } finally {
    await fake.stop();
  }
});

test("relp: a server gone for good fails every pending message after the retries, clearly", async () => {
  const fake = await fakeRelp({ dropAfter: () => 1 });
  const client = clientFor(fake.port);
  await client.open();
  const outcomes = await sendAll(client, 3);
  await fake.stop(); // Reconnects are refused from now on.
  const errors = await Promise.all(outcomes);
  await assert.rejects(
    client.drain(),
    /still after 4 tries to reconnect; \d message\(s\) were not acknowledged/,
  );
  assert.ok(errors.some((e) => e instanceof Error), String(errors));
  await assert.rejects(client.send(encode("late"), () => {}), /not acknowledged/);
  await client.close().catch(() => {});
});

test("relp: an acknowledgement that never comes reopens the session in bounded time", async () => {
  // The first session acknowledges nothing (it holds 1000 before answering).
  let sessions = 0;
  const fake = await fakeRelp({ batchAcks: 1000 });
  const silent = fake.port;
  const honest = await fakeRelp();
  try {
    const client = clientFor(silent, {
      ackTimeoutMs: 200,
      connect: () =>
        new Promise<Socket>((resolve, reject) => {
          const port = sessions++ === 0 ? silent : honest.port;
          const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
          socket.once("error", reject);
        }),
    });
    await client.open();
    const outcomes = await sendAll(client, 5);
    await client.close();
    assert.deepEqual(await Promise.all(outcomes), Array(5).fill("ok"));
    assert.deepEqual(honest.received, ["m0", "m1", "m2", "m3", "m4"]);
  } finally {
    await fake.stop();
    await honest.stop();
  }
});
