/**
 * syslog (rsyslog): `-o syslog+tcp://`, `syslog+tls://` and `syslog+relp://` end to end against a
 * real rsyslogd (tests/servers/rsyslog.ts): every record arrives exactly as sent, with the header
 * fields set as documented; a record too large fails clearly; a refused connection is refused
 * before any download; a run killed with SIGKILL and run again sends again only what the
 * checkpoint had not passed (RELP); a connection dropped mid-file is made again (TCP, against a
 * small server in this file that drops its first connection).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { checkpointedArgs, passedFiles, recordsOf, runKilledWhen } from "./helpers/siem.ts";
import { OctetFrameReader } from "../lib/syslog/message.ts";
import { type ReceivedMessage, rsyslogSkip, startRsyslog } from "./servers/rsyslog.ts";

const skip = rsyslogSkip();
const RSYSLOG = { ...SLOW, skip };
const decoder = new TextDecoder();

/** A file whose lines test the edges: CRLF, blank lines, non-ASCII, a tab, no final newline. */
const EDGES = [
  '{"event_id":"edge-1","type":"AUTH_LOG","timestamp":"2026-07-02T05:00:00.000001Z","note":"crlf"}',
  "",
  "   ",
  '{"event_id":"edge-2","type":"AUTH_LOG","timestamp":"2026-07-02T05:00:01+02:00","city":"Reykjavík €"}',
  '{"event_id":"edge-3","type":"AUTH_LOG","timestamp":"2026-07-02T05:00:02Z",\t"tab":"before"}',
  "not json at all: sent as it is",
].join("\r\n");

function files() {
  return [
    ...hourlyFiles(6, { sizes: [3000, 0, 20_000, 700] }),
    { id: "eclf_edges", eventType: "AUTH_LOG", endTime: "2026-07-02T07:30:00Z", content: EDGES },
  ];
}

function timestampOf(record: string): string | undefined {
  try {
    const value = JSON.parse(record).timestamp as string;
    return new Date(Date.parse(value)).toISOString().slice(0, 19);
  } catch {
    return undefined;
  }
}

function assertHeaders(messages: ReceivedMessage[], facility: number, severity: number) {
  for (const m of messages) {
    assert.equal(m.app, "oai-compliance-logs");
    assert.equal(m.msgid, "AUTH_LOG");
    assert.equal(m.facility, String(facility));
    assert.equal(m.severity, String(severity));
    assert.match(m.procid, /^\d+$/);
    const expected = timestampOf(m.msg);
    // rsyslog prints the reported time in its own zone form: compare the instant.
    if (expected) {
      assert.equal(new Date(Date.parse(m.timestamp)).toISOString().slice(0, 19), expected);
    }
  }
}

const CASES = [
  { input: "tcp", scheme: "syslog+tcp", facility: 1, guarantee: "best effort" },
  { input: "tls", scheme: "syslog+tls", facility: 2, guarantee: "best effort" },
  { input: "relp", scheme: "syslog+relp", facility: 3, guarantee: "confirmed" },
  { input: "mtls", scheme: "syslog+tls", facility: 4, guarantee: "best effort" },
] as const;

for (const c of CASES) {
  test(
    `syslog (rsyslog): every record arrives exactly as sent over ${
      c.input === "mtls" ? "mutual TLS" : c.input.toUpperCase()
    }`,
    RSYSLOG,
    async () => {
      const rsyslog = await startRsyslog();
      const tlsArgs = c.input === "tls" ? ["--ca-file", rsyslog.caFile] : c.input === "mtls"
        ? [
          "--ca-file",
          rsyslog.caFile,
          "--client-cert",
          rsyslog.clientCert,
          "--client-key",
          rsyslog.clientKey,
        ]
        : [];
      await withEmulator({ files: files() }, async (emulator) => {
        const r = await runCli([
          PRINCIPAL,
          "AUTH_LOG",
          "10",
          AFTER,
          "-o",
          `${c.scheme}://127.0.0.1:${rsyslog.ports[c.input]}`,
          "--syslog-facility",
          String(c.facility),
          "--syslog-severity",
          "notice",
          ...tlsArgs,
        ], { env: envFor(emulator) });
        assert.equal(r.code, 0, r.stderr);
        const expected = await recordsOf(emulator, idsOf(emulator));
        const got = await rsyslog.waitFor(c.input, c.facility, expected.length);
        assert.deepEqual(got.map((m) => m.msg), expected);
        assertHeaders(got, c.facility, 5);
        assert.deepEqual(
          await rsyslog.settle(c.input, c.facility, 300),
          got,
          "nothing more arrives",
        );
      });
    },
  );
}

test(
  "syslog (rsyslog): TLS without the server's CA fails before any download, naming --ca-file",
  RSYSLOG,
  async () => {
    const rsyslog = await startRsyslog();
    await withEmulator({ files: files() }, async (emulator) => {
      const target = `syslog+tls://127.0.0.1:${rsyslog.ports.tls}`;
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", target], {
        env: envFor(emulator),
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /certificate is not trusted .*--ca-file/);
      assert.equal(emulator.requests.length, 0, "nothing was asked of the API");
    });
  },
);

test(
  "syslog (rsyslog): mutual TLS without a client certificate fails before any download, naming --client-cert",
  RSYSLOG,
  async () => {
    const rsyslog = await startRsyslog();
    await withEmulator({ files: files() }, async (emulator) => {
      const target = `syslog+tls://127.0.0.1:${rsyslog.ports.mtls}`;
      const r = await runCli(
        [PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", target, "--ca-file", rsyslog.caFile],
        { env: envFor(emulator) },
      );
      assert.equal(r.code, 1, r.stderr);
      // The refusal arrives in the handshake or right after it, by timing: either names the flags.
      assert.match(
        r.stderr,
        /(refused|closed) the TLS session.*--client-cert(,| and) --client-key/,
      );
      assert.equal(emulator.requests.length, 0, "nothing was asked of the API");
    });
  },
);

for (const scheme of ["syslog+tcp", "syslog+relp"]) {
  test(
    `syslog (rsyslog): a refused connection (${scheme}) is one clear line, exit 1, before any download`,
    SLOW,
    async () => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as { port: number }).port;
      await new Promise((resolve) => server.close(resolve)); // Nothing listens there now.
      await withEmulator({ files: files() }, async (emulator) => {
        const target = `${scheme}://127.0.0.1:${port}`;
        const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", target], {
          env: envFor(emulator),
        });
        assert.equal(r.code, 1, r.stderr);
        const errors = r.stderr.split("\n").filter((line) => /error/i.test(line));
        assert.equal(errors.length, 1, r.stderr);
        assert.match(
          errors[0],
          new RegExp(
            `cannot connect to .* at 127\\.0\\.0\\.1:${port} \\(-o ${
              target.replace("+", "\\+")
            }\\): connection refused`,
          ),
        );
        assert.equal(emulator.requests.length, 0, "nothing was asked of the API");
      });
    },
  );
}

const BIG_RECORD =
  `{"event_id":"big-one","type":"CONVERSATION_MESSAGE","timestamp":"2026-07-02T01:00:00Z","text":"${
    "w".repeat(100_000)
  }"}`;

test(
  "syslog (rsyslog): a record longer than --syslog-max-bytes fails the run clearly; raised, it arrives whole",
  RSYSLOG,
  async () => {
    const rsyslog = await startRsyslog();
    const facility = 5;
    const spec = [
      {
        id: "eclf_small",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T00:00:00Z",
        content: '{"event_id":"s1"}\n',
      },
      {
        id: "eclf_large",
        eventType: "AUTH_LOG",
        endTime: "2026-07-02T01:00:00Z",
        content: `{"event_id":"b0"}\n${BIG_RECORD}\n`,
      },
    ];
    await withDir("oai-syslog-big-", async (dir) => {
      await withEmulator({ files: spec }, async (emulator) => {
        const state = join(dir, "state.json");
        const args = [
          PRINCIPAL,
          "AUTH_LOG",
          "10",
          AFTER,
          "--state",
          state,
          "-o",
          `syslog+relp://127.0.0.1:${rsyslog.ports.relp}`,
          "--syslog-facility",
          String(facility),
        ];
        const r = await runCli(args, { env: envFor(emulator) });
        assert.equal(r.code, 1, r.stderr);
        const size = new TextEncoder().encode(BIG_RECORD).length;
        assert.match(
          r.stderr,
          new RegExp(`event big-one \\(line 2 of AUTH_LOG file eclf_large\\) is ${size} bytes`),
        );
        assert.match(r.stderr, /--syslog-max-bytes 65536/);
        assert.match(r.stderr, /state skip .*state\.json AUTH_LOG eclf_large --reason TEXT/);
        const cursor = JSON.parse(await readFile(state, "utf8")).cursors.AUTH_LOG;
        assert.ok(
          cursor.seen.includes("eclf_small") && !cursor.seen.includes("eclf_large"),
          JSON.stringify(cursor),
        );
        const first = await rsyslog.settle("relp", facility, 500);
        assert.ok(!first.some((m) => m.msg.includes("big-one")), "never cut, never sent");

        const again = await runCli([...args, "--syslog-max-bytes", "200000"], {
          env: envFor(emulator),
        });
        assert.equal(again.code, 0, again.stderr);
        const got = await rsyslog.waitFor("relp", facility, first.length + 2);
        assert.equal(got.at(-1)!.msg, BIG_RECORD);
        assert.equal(got.at(-1)!.msgid, "AUTH_LOG");
      });
    });
  },
);

for (
  const { input, facility } of [{ input: "relp", facility: 6 }, {
    input: "tcp",
    facility: 9,
  }] as const
) {
  test(
    `syslog (rsyslog): kill -9 mid-run, run again: ${input.toUpperCase()} sends again at most the unconfirmed files`,
    RSYSLOG,
    async () => {
      const rsyslog = await startRsyslog();
      await withDir("oai-syslog-kill-", async (dir) => {
        await withEmulator(
          { files: hourlyFiles(16, { sizes: [30_000] }), latencyMs: 60 },
          async (emulator) => {
            const state = join(dir, "state.json");
            const target = `syslog+${input}://127.0.0.1:${rsyslog.ports[input]}`;
            const args = checkpointedArgs(target, state, [
              "--concurrency",
              "1",
              "--syslog-facility",
              String(facility),
            ]);
            const ids = idsOf(emulator);
            const perFile = await Promise.all(ids.map((id) => recordsOf(emulator, [id])));
            await runKilledWhen(
              args,
              envFor(emulator),
              () => rsyslog.messages(input, facility).length >= perFile[0].length * 5,
            );
            const passed = new Set((await passedFiles(emulator, state, ids)).passed);
            // RELP confirms as acknowledgements come; TCP when a connection closes cleanly (every 2 s).
            assert.ok(passed.size < ids.length, `${passed.size} files passed`);
            if (input === "relp") assert.ok(passed.size > 0, "acknowledged files were confirmed");
            const firstRun = (await rsyslog.settle(input, facility, 500)).length;

            const again = await runCli(args, { env: envFor(emulator) });
            assert.equal(again.code, 0, again.stderr);
            const all = perFile.flat();
            // Wait for every record, not for a count: the re-sent files repeat records the
            // first run's unconfirmed files had already sent, so a count comes too early.
            const wanted = new Set(all);
            const deadline = Date.now() + 30_000;
            const missing = (got: { msg: string }[]) => {
              const have = new Set(got.map((m) => m.msg));
              return all.some((record) => !have.has(record));
            };
            let got = await rsyslog.settle(input, facility, 100);
            while (Date.now() < deadline && missing(got)) {
              got = await rsyslog.settle(input, facility, 200);
            }
            got = await rsyslog.settle(input, facility, 300);
            const resent = got.slice(firstRun).map((m) => m.msg);
            const passedRecords = new Set(ids.flatMap((id, i) => passed.has(id) ? perFile[i] : []));
            assert.ok(resent.length > 0, "the unconfirmed files were sent again");
            for (const record of resent) {
              assert.ok(!passedRecords.has(record), "a confirmed file was sent again");
            }
            assert.deepEqual(
              new Set(got.map((m) => m.msg)),
              wanted,
              "every record at least once",
            );
          },
        );
      });
    },
  );
}

test(
  "syslog: a TCP connection dropped mid-run is made again and every unconfirmed file sent again",
  SLOW,
  async () => {
    const received: string[] = [];
    let connections = 0;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      const n = connections++;
      const reader = new OctetFrameReader();
      let seen = 0;
      socket.on("error", () => {});
      socket.on("data", (chunk: Uint8Array) => {
        for (const message of reader.push(chunk)) {
          // The first connection is the up-front check; the second drops after 10 messages.
          if (n === 1 && ++seen > 10) return void socket.destroy();
          received.push(decoder.decode(message).replace(/^(?:\S+ ){7}/, ""));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await withEmulator({ files: hourlyFiles(3, { sizes: [60_000] }) }, async (emulator) => {
        const r = await runCli(
          [PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", `syslog+tcp://127.0.0.1:${port}`],
          { env: envFor(emulator, { OAI_COMPLIANCE_SIEM_BACKOFF_MS: "20" }) },
        );
        assert.equal(r.code, 0, r.stderr);
        const expected = await recordsOf(emulator, idsOf(emulator));
        const deadline = Date.now() + 10_000;
        while (new Set(received).size < expected.length && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.ok(connections >= 3, `reconnected (${connections} connections)`);
        assert.match(
          r.stderr,
          /sending to syslog over TCP at 127\.0\.0\.1/,
          "the retry is reported",
        );
        const missing = expected.filter((record) => !received.includes(record));
        assert.equal(
          missing.length,
          0,
          `${missing.length} of ${expected.length} records never arrived`,
        );
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  },
);

test(
  "syslog (rsyslog): RELP through a connection reset mid-run: every record arrives, the run succeeds",
  RSYSLOG,
  async () => {
    const rsyslog = await startRsyslog();
    const facility = 10;
    // A proxy to rsyslog's RELP input that resets the second connection (the first is the
    // up-front check) after 40 KB from the tool, mid-stream, acknowledgements in flight.
    let connections = 0;
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const n = connections++;
      const server = connect({ host: "127.0.0.1", port: rsyslog.ports.relp });
      sockets.add(client).add(server);
      let forwarded = 0;
      client.on("data", (chunk: Uint8Array) => {
        forwarded += chunk.length;
        if (n === 1 && forwarded > 40_000) {
          client.resetAndDestroy();
          server.destroy();
          return;
        }
        server.write(chunk);
      });
      server.on("data", (chunk: Uint8Array) => client.write(chunk));
      for (const socket of [client, server]) {
        socket.on("error", () => {});
        socket.on("close", () => {
          client.destroy();
          server.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const port = (proxy.address() as { port: number }).port;
    try {
      await withDir("oai-syslog-reset-", async (dir) => {
        await withEmulator({ files: hourlyFiles(6, { sizes: [30_000] }) }, async (emulator) => {
          const state = join(dir, "state.json");
          const r = await runCli([
            PRINCIPAL,
            "AUTH_LOG",
            "10",
            AFTER,
            "--state",
            state,
            "-o",
            `syslog+relp://127.0.0.1:${port}`,
            "--syslog-facility",
            String(facility),
          ], { env: envFor(emulator, { OAI_COMPLIANCE_SIEM_BACKOFF_MS: "20" }) });
          assert.equal(r.code, 0, r.stderr);
          assert.ok(connections >= 3, `reconnected (${connections} connections)`);
          assert.match(r.stderr, /unacknowledged message\(s\) again to RELP/);
          const expected = await recordsOf(emulator, idsOf(emulator));
          const got = await rsyslog.waitFor("relp", facility, expected.length);
          assert.deepEqual(
            new Set(got.map((m) => m.msg)),
            new Set(expected),
            "every record at least once",
          );
          // In order, but for the few sent again after the reset.
          assert.ok(got.length - expected.length < 100, `${got.length - expected.length} repeats`);
          const cursor = JSON.parse(await readFile(state, "utf8")).cursors.AUTH_LOG;
          assert.equal(cursor.after, emulator.files.at(-1)!.endTime.replace("Z", ".000000Z"));
        });
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  },
);
