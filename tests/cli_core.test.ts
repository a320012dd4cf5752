/**
 * Black-box tests of the drop-in behaviour: the quickstart scripts' interface, output and
 * progress, validation before any request, and the key never leaving the API's origin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync, readSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import {
  concat,
  lines,
  runCli,
  RUNS_WINDOWS,
  RUNS_WITH_COMPILE_PERMISSIONS,
} from "./helpers/cli.ts";
import { assertSameBytes } from "./helpers/compare.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  ORG,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";

const decoder = new TextDecoder();

test("no arguments prints usage with examples on stderr and exits 2", async () => {
  const r = await runCli([], { env: { COMPLIANCE_API_KEY: "k-secret-value" } });
  assert.equal(r.code, 2);
  assert.equal(r.stdout.length, 0);
  assert.match(
    r.stderr,
    /Usage: oai-compliance-logs .*<workspace_or_org_id> <event_type> <limit> <after>/,
  );
  assert.match(r.stderr, /Examples:/);
  assert.doesNotMatch(r.stderr, /k-secret-value/);
});

test("a wrong number of positionals is a usage error with exit 2", async () => {
  for (const args of [[PRINCIPAL], [PRINCIPAL, "AUTH_LOG", "10", AFTER, "extra"]]) {
    const r = await runCli(args, { env: { COMPLIANCE_API_KEY: "k" } });
    assert.equal(r.code, 2, `args ${args.join(" ")}: ${r.stderr}`);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
  }
});

test("--help goes to stdout with exit 0 and --version prints deno.json's version", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(decoder.decode(help.stdout), /--output-dir DIR/);
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(
    decoder.decode(version.stdout),
    new RegExp(`^oai-compliance-logs ${denoConfig.version} `),
  );
});

test("a missing or empty COMPLIANCE_API_KEY is a clear usage error before any request", async () => {
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    for (const key of [undefined, "", "   "]) {
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER], {
        env: { COMPLIANCE_API_BASE: emulator.apiBase, COMPLIANCE_API_KEY: key },
      });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /COMPLIANCE_API_KEY environment variable is required/);
      assert.equal(lines(r.stderr).length, 1);
    }
    assert.equal(emulator.requests.length, 0);
  });
});

test("bad arguments are refused with one line and exit 2 before any request", async () => {
  const cases: Array<[string[], RegExp]> = [
    [[PRINCIPAL, "AUTH_LOG", "0", AFTER], /limit must be an integer from 1 to 100; got '0'/],
    [[PRINCIPAL, "AUTH_LOG", "101", AFTER], /limit must be an integer from 1 to 100; got '101'/],
    [[PRINCIPAL, "AUTH_LOG", "ten", AFTER], /limit must be an integer/],
    [[PRINCIPAL, "AUTH_LOG", "10", "yesterday"], /after must be an ISO 8601 time with a zone/],
    [[PRINCIPAL, "AUTH_LOG", "10", "2026-07-01T00:00:00"], /after must be an ISO 8601 time/],
    [[PRINCIPAL, "AUTH_LOG", "10", "2026-02-30T00:00:00Z"], /after must be an ISO 8601 time/],
    [[PRINCIPAL, "auth_log", "10", AFTER], /event_type must look like AUTH_LOG/],
    [["ws/../other", "AUTH_LOG", "10", AFTER], /workspace_or_org_id must be/],
    [["ws?x=1", "AUTH_LOG", "10", AFTER], /workspace_or_org_id must be/],
    [["ws 1", "AUTH_LOG", "10", AFTER], /workspace_or_org_id must be/],
    [[PRINCIPAL, "AUTH_LOG", "10", AFTER, "--bogus"], /bogus/],
  ];
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    for (const [args, message] of cases) {
      const r = await runCli(args, { env: envFor(emulator) });
      assert.equal(r.code, 2, `${args.join(" ")} -> ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.equal(r.stdout.length, 0);
    }
    assert.equal(emulator.requests.length, 0);
  });
});

test("multi-page data is streamed to stdout in listing order with script-style progress", async () => {
  await withEmulator({ files: hourlyFiles(23) }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    const ids = idsOf(emulator);
    assert.deepEqual(r.stdout, await expectedStream(emulator, ids));
    const err = lines(r.stderr);
    assert.equal(err.filter((l) => l.startsWith("Fetching page ")).length, 3);
    // Windows (and Wine) name the UTC zone GMT; the instant is what must be right.
    const zone = RUNS_WINDOWS ? "(UTC|GMT)" : "UTC";
    const first = new RegExp(
      `^Fetching page 1 with after='${AFTER}' \\(local: 2026-07-01 00:00:00 ${zone}\\)$`,
    );
    assert.ok(err.some((l) => first.test(l)), r.stderr);
    for (const id of ids) assert.ok(err.includes(`Fetching logs for ID: ${id}`), id);
    const done = err.find((l) => l.startsWith("Completed downloading 23 log files up to "));
    assert.ok(done, r.stderr);
    assert.match(done, new RegExp(`\\(local: 2026-07-02 22:00:00 ${zone}\\)$`));
    const lists = emulator.requests.filter((q) => q.server === "api" && q.path.endsWith("/logs"));
    assert.ok(lists.every((q) => q.path === `/v1/compliance/workspaces/${PRINCIPAL}/logs`));
    assert.deepEqual(lists.map((q) => q.query.limit), ["10", "10", "10"]);
    assert.equal(lists[0].query.after, AFTER);
    assert.equal(lists[0].query.event_type, "AUTH_LOG");
  });
});

test("stdout redirected to a file, with > or >>, gets exactly the data, large files too", async () => {
  // Pipes are copied in the kernel where the runtime can; a file (O_APPEND above all) must not
  // be, and must still receive every byte once.
  const files = hourlyFiles(4, { sizes: [3_000_000, 0, 1500, 2_500_000] });
  await withEmulator({ files }, async (emulator) => {
    const dir = await mkdtemp(join(tmpdir(), "oai-stdout-file-"));
    try {
      const expected = await expectedStream(emulator, idsOf(emulator));
      const path = join(dir, "siem.jsonl");
      const args = [PRINCIPAL, "AUTH_LOG", "100", AFTER];
      const truncating = await runCli(args, {
        env: envFor(emulator),
        stdoutFile: { path },
      });
      assert.equal(truncating.code, 0, truncating.stderr);
      assert.deepEqual(new Uint8Array(await readFile(path)), expected);

      const appending = await runCli(args, {
        env: envFor(emulator),
        stdoutFile: { path, append: true },
      });
      assert.equal(appending.code, 0, appending.stderr);
      const both = new Uint8Array(await readFile(path));
      assert.equal(both.length, expected.length * 2);
      assert.deepEqual(both.subarray(expected.length), expected);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Sets O_NONBLOCK on stdout, then runs the rest of its arguments: what a Node.js program that
 * wrote to the same pipe before us leaves behind. (Spawning from Node, Deno or Bun clears the flag
 * on the child's stdio, so the test needs a stand-in: perl-base is in every Debian.)
 */
const NON_BLOCKING_STDOUT = [
  "perl",
  "-e",
  "use Fcntl; my $f = fcntl(STDOUT, F_GETFL, 0) or die $!; " +
  "fcntl(STDOUT, F_SETFL, $f | O_NONBLOCK) or die $!; exec @ARGV or die $!",
];

test("a non-blocking stdout pipe with a slow reader gets every byte exactly once", {
  skip: process.platform !== "linux" || RUNS_WINDOWS,
}, async () => {
  // A full non-blocking pipe makes writes fail with EAGAIN: Deno's after writing part of the
  // bytes without saying how many, Bun's kernel copy halfway through the file.
  const files = hourlyFiles(3, { sizes: [3_000_000, 1500, 2_000_000] });
  await withEmulator({ files }, async (emulator) => {
    const dir = await mkdtemp(join(tmpdir(), "oai-nonblocking-"));
    const fifo = join(dir, "stdout");
    const reader = { fd: -1 };
    try {
      execFileSync("mkfifo", [fifo]);
      // The reader first: opening a FIFO's write end without blocking needs one.
      reader.fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      const running = runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], {
        env: envFor(emulator),
        stdoutFd: writer,
        wrapper: NON_BLOCKING_STDOUT,
      });
      closeSync(writer); // The CLI holds the only write end now: its exit is our end of file.
      const received = await drainSlowly(reader.fd);
      const r = await running;
      const expected = await expectedStream(emulator, idsOf(emulator));
      if (RUNS_WITH_COMPILE_PERMISSIONS && r.code !== 0) {
        // Deno without access to /proc/self cannot reopen the pipe: it must stop, say why, and
        // have written nothing out of order or twice.
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /^error: stdout is a non-blocking pipe that is full/m);
        assert.ok(received.length < expected.length, `${received.length} bytes`);
        assertSameBytes(received, expected.subarray(0, received.length), "stdout so far");
        return;
      }
      assert.equal(r.code, 0, r.stderr);
      assertSameBytes(received, expected, "stdout");
    } finally {
      if (reader.fd >= 0) closeSync(reader.fd);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Reads a non-blocking descriptor to its end, 64 KiB per millisecond or so, so the pipe fills. */
async function drainSlowly(fd: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65_536);
  while (true) {
    let bytes: number;
    try {
      bytes = readSync(fd, buffer);
    } catch (error) {
      if ((error as { code?: string }).code !== "EAGAIN") throw error;
      bytes = -1; // Nothing yet.
    }
    if (bytes === 0) return concat(chunks);
    if (bytes > 0) chunks.push(buffer.slice(0, bytes));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

test("org- ids are routed to /organizations/", async () => {
  const files = hourlyFiles(3, { principal: ORG, eventType: "COSTS" });
  await withEmulator({ files }, async (emulator) => {
    const r = await runCli([ORG, "COSTS", "100", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, await expectedStream(emulator, idsOf(emulator, "COSTS", ORG)));
    const api = emulator.requests.filter((q) => q.server === "api");
    assert.ok(api.length > 0);
    assert.ok(api.every((q) => q.path.startsWith(`/v1/compliance/organizations/${ORG}/logs`)));
  });
});

test("no files prints the script's 'No results found' line and nothing on stdout", async () => {
  await withEmulator({ files: hourlyFiles(2, { eventType: "AUDIT_LOG" }) }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, 0);
    assert.ok(lines(r.stderr).includes(`No results found for event_type AUTH_LOG after ${AFTER}`));
  });
});

test("empty files add nothing and CRLF and non-ASCII bytes pass through untouched", async () => {
  const files = [
    {
      id: "eclf_crlf",
      eventType: "AUTH_LOG",
      endTime: "2026-07-02T01:00:00Z",
      content: '{"a":"São Paulo"}\r\n{"b":2}\r\n',
    },
    { id: "eclf_empty", eventType: "AUTH_LOG", endTime: "2026-07-02T02:00:00Z", content: "" },
    { id: "eclf_nonl", eventType: "AUTH_LOG", endTime: "2026-07-02T03:00:00Z", content: '{"c":3}' },
    { id: "eclf_nl", eventType: "AUTH_LOG", endTime: "2026-07-02T04:00:00Z", content: '{"d":4}\n' },
  ];
  await withEmulator({ files }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(decoder.decode(r.stdout), '{"a":"São Paulo"}\r\n{"b":2}\r\n{"c":3}\n{"d":4}\n');
  });
});

test("the download redirect to the storage host never carries the key", async () => {
  await withEmulator({ files: hourlyFiles(6) }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    const storage = emulator.requests.filter((q) => q.server === "storage");
    const api = emulator.requests.filter((q) => q.server === "api");
    assert.equal(storage.length, 6);
    for (const q of storage) {
      assert.equal(q.headers.authorization, undefined);
      assert.ok(!JSON.stringify(q).includes(emulator.key));
    }
    assert.ok(api.every((q) => q.headers.authorization === `Bearer ${emulator.key}`));
    assert.ok(!r.stderr.includes(emulator.key));
    assert.ok(!decoder.decode(r.stdout).includes(emulator.key));
  });
});

test("an HTTP error prints the script's message with the JSON body pretty-printed, exit 1", async () => {
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], {
      env: envFor(emulator, { COMPLIANCE_API_KEY: "sk-wrong-key-1234-0a1b2c3d4e" }),
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout.length, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `HTTP error 401 while listing logs \\(after=${AFTER}, event_type=AUTH_LOG, limit=100\\):`,
      ),
    );
    assert.match(r.stderr, /\n {2}"error": \{\n/); // Pretty-printed, not the raw one-line body.
    assert.ok(!r.stderr.includes("wrong-key-1234"));
  });
});

test("a failed download stops with exit 1 naming the file id", async () => {
  await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
    const [first, second] = idsOf(emulator);
    // (A 400, final: a 404 is the gone-file flow, retried over 30 s.)
    emulator.inject({ target: "download", id: second, status: 400, body: '{"error":"bad id"}' });
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`HTTP error 400 while downloading log id=${second}:`));
    // What came before the failure was delivered whole; nothing after it.
    assert.deepEqual(r.stdout, await expectedStream(emulator, [first]));
  });
});

test("a network error is one line naming the host, exit 1", async () => {
  const r = await runCli([
    PRINCIPAL,
    "AUTH_LOG",
    "100",
    AFTER,
    "--retries",
    "1",
    "--backoff",
    "0.01",
  ], {
    env: {
      COMPLIANCE_API_KEY: "sk-net-test-1234-0a1b2c3d4e",
      COMPLIANCE_API_BASE: "http://127.0.0.1:9/v1/compliance",
    },
  });
  assert.equal(r.code, 1);
  const errors = lines(r.stderr).filter((l) => l.startsWith("error:"));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], /network error while listing logs .*cannot reach 127\.0\.0\.1:9/);
});

test("relative and date-only times are sent to the API as ISO instants", async () => {
  await withEmulator({ files: [] }, async (emulator) => {
    const before = Date.now();
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "5", "24h"], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    const sent = Date.parse(emulator.requests[0].query.after);
    assert.ok(Math.abs(sent - (before - 86_400_000)) < 120_000, emulator.requests[0].query.after);
    const day = await runCli([PRINCIPAL, "AUTH_LOG", "5", "2026-07-03"], { env: envFor(emulator) });
    assert.equal(day.code, 0, day.stderr);
    assert.equal(emulator.requests[1].query.after, "2026-07-03T00:00:00Z");
  });
});

test("an unknown but well-formed event type warns and still asks the API", async () => {
  await withEmulator({ files: hourlyFiles(1, { eventType: "NEW_KIND_LOG" }) }, async (emulator) => {
    const r = await runCli([PRINCIPAL, "NEW_KIND_LOG", "5", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: event type NEW_KIND_LOG is not one of the known types/);
    assert.deepEqual(r.stdout, await expectedStream(emulator, idsOf(emulator, "NEW_KIND_LOG")));
  });
});

test("-o writes the same bytes to a file that appears only complete, owner-only", async () => {
  const dir = await mkdtemp(join(tmpdir(), "oai-o-"));
  try {
    await withEmulator({ files: hourlyFiles(12) }, async (emulator) => {
      const out = join(dir, "out.jsonl");
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "5", AFTER, "-o", out], {
        env: envFor(emulator),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, 0);
      assert.deepEqual(
        new Uint8Array(await readFile(out)),
        await expectedStream(emulator, idsOf(emulator)),
      );
      assert.deepEqual(await readdir(dir), ["out.jsonl"]);
      if (!RUNS_WINDOWS && process.platform !== "win32") {
        const { stat } = await import("node:fs/promises");
        assert.equal((await stat(out)).mode & 0o777, 0o600);
      }
      // A failing run leaves the earlier complete file untouched and no temp beside it.
      const before = await readFile(out);
      emulator.inject({ target: "download", status: 400, body: "{}" });
      const failed = await runCli([PRINCIPAL, "AUTH_LOG", "5", AFTER, "-o", out], {
        env: envFor(emulator),
      });
      assert.equal(failed.code, 1);
      assert.deepEqual(await readFile(out), before);
      assert.deepEqual(await readdir(dir), ["out.jsonl"]);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Commands: each owns its options and its help

test("state refuses any option it does not take, with one line and exit 2", async () => {
  const dir = await mkdtemp(join(tmpdir(), "oai-state-opts-"));
  try {
    for (
      const args of [
        ["state", "show", join(dir, "s.json"), "--gzip"],
        ["state", "show", join(dir, "s.json"), "--follow", "--concurrency", "9"],
        ["state", "reset", join(dir, "s.json"), "--output-dir", dir],
      ]
    ) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.equal(r.stdout.length, 0);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("list and run refuse an option they do not take, with one line and exit 2", async () => {
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    const cases: Array<[string[], RegExp]> = [
      [["list", PRINCIPAL, "AUTH_LOG", "10", AFTER, "--gzip"], /gzip/],
      [["list", PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", "x"], /output-dir/],
      [["list", PRINCIPAL, "AUTH_LOG", "10", AFTER, "--concurrency", "2"], /concurrency/],
      [[PRINCIPAL, "AUTH_LOG", "10", AFTER, "--list", "-o", "x"], /option -o\b|output/],
      [[PRINCIPAL, "AUTH_LOG", "10", AFTER, "--nonsense"], /nonsense/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args, { env: envFor(emulator) });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
    }
    assert.equal(emulator.requests.length, 0);
  });
});

test("each command's --help describes only its own options", async () => {
  const help = async (args: string[]) => {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    return decoder.decode(r.stdout);
  };
  const top = await help(["--help"]);
  assert.match(top, /--output-dir DIR/);
  assert.match(top, /^ {2}list +/m);
  assert.match(top, /^ {2}state +/m);

  const list = await help(["list", "--help"]);
  assert.match(list, /^Usage: oai-compliance-logs list /);
  assert.match(list, /--after TIME/);
  for (const option of ["--output-dir", "--gzip", "--follow", "--concurrency", "-o, --output"]) {
    assert.ok(!list.includes(option), `list --help does not mention ${option}`);
  }

  const state = await help(["state", "--help"]);
  assert.match(state, /state show/);
  for (const option of ["--output-dir", "--gzip", "--follow", "--after", "--log-format"]) {
    assert.ok(!state.includes(option), `state --help does not mention ${option}`);
  }

  const run = await help([PRINCIPAL, "--help"]);
  assert.match(run, /--output-dir DIR/);
  assert.ok(!run.includes("Commands ("), "the run's help lists no commands");
});

test("list prints the same JSON lines as --list, with no spool directory and no lock", async () => {
  await withEmulator({ files: hourlyFiles(7) }, async (emulator) => {
    const dir = await mkdtemp(join(tmpdir(), "oai-list-"));
    try {
      const tmp = join(dir, "tmp");
      const { mkdir } = await import("node:fs/promises");
      await mkdir(tmp);
      const state = join(dir, "s.json");
      // TMPDIR (and TEMP/TMP on Windows) is where a run puts its spool directory.
      const env = envFor(emulator, { TMPDIR: tmp, TEMP: tmp, TMP: tmp });
      const args = [PRINCIPAL, "AUTH_LOG", "3", AFTER, "--state", state];
      const alias = await runCli([...args, "--list"], { env });
      const command = await runCli(["list", ...args], { env });
      assert.equal(alias.code, 0, alias.stderr);
      assert.equal(command.code, 0, command.stderr);
      assert.deepEqual(command.stdout, alias.stdout);
      const listed = decoder.decode(command.stdout).trimEnd().split("\n");
      assert.deepEqual(listed.map((l) => JSON.parse(l).id), idsOf(emulator));
      // Only ours: Wine keeps its own wine-* directory in the temp directory it is given.
      const ours = (await readdir(tmp)).filter((name) => name.startsWith("oai-compliance-logs"));
      assert.deepEqual(ours, [], "no spool directory");
      assert.deepEqual(await readdir(dir), ["tmp"], "no state file and no lock");
      assert.equal(emulator.requests.filter((q) => q.server === "storage").length, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
