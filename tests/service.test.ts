// deno-lint-ignore-file no-control-regex -- the terminal tests match escape sequences
/**
 * Black-box tests of running the tool as a service: time windows, several event types in one run,
 * `--list`, `--follow` (new files, signals, outages, settle), progress and machine-readable logs,
 * the summary, the key from a file, and `state show|reset`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { cliCommand, type CliResult, concat, lines, runCli, RUNS_WINDOWS } from "./helpers/cli.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";
import type { Emulator } from "./emulator/mod.ts";
import { withDir } from "./helpers/mod.ts";
import { WORKSPACE_EVENT_TYPES } from "../lib/event_types.ts";

const decoder = new TextDecoder();
/** What `all` asks a workspace for: the route's types, in the reference's order. */
const KNOWN_TYPES = WORKSPACE_EVENT_TYPES;
/** Fast retries for every run that may meet a fault. */
const FAST = ["--backoff", "0.01", "--max-retry-wait", "0.05"];

/** `YYYY-MM-DDTHH:MM:SSZ`, `ms` from now. */
function isoFromNow(ms: number): string {
  return new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Runs `fn` in a fresh temp directory (tests/helpers/mod.ts). */
const withTempDir = <T>(fn: (dir: string) => Promise<T>) => withDir("oai-service-", fn);

/**
 * The exit status a shell or systemd sees: the code, or 128 + the signal number. Deno ends a
 * process that handled SIGTERM/SIGINT by re-raising the signal once it exits, so a parent sees
 * "killed by SIGTERM" where Bun reports exit code 143; `$?` is 143 in both cases.
 */
function shellStatus(r: CliResult): number | null {
  if (r.signal === "SIGTERM") return 143;
  if (r.signal === "SIGINT") return 130;
  return r.code;
}

function listRequests(emulator: Emulator) {
  return emulator.requests.filter((q) => q.server === "api" && q.path.endsWith("/logs"));
}

function storageRequests(emulator: Emulator) {
  return emulator.requests.filter((q) => q.server === "storage");
}

/** A CLI run in the background, watched while it runs (for --follow). */
interface Background {
  done: Promise<CliResult>;
  child(): ChildProcess;
  stdout(): Uint8Array;
  stderr(): string;
  /** Resolves once `ready()` holds; fails (showing stderr) after `ms`. */
  waitFor(what: string, ready: () => boolean | Promise<boolean>, ms?: number): Promise<void>;
}

function background(args: string[], env: Record<string, string>): Background {
  let child: ChildProcess | undefined;
  const out: Uint8Array[] = [];
  let err = "";
  const stream = new TextDecoder();
  const done = runCli(args, {
    env,
    timeoutMs: 60_000,
    onSpawn: (c) => {
      child = c;
      c.stdout!.on("data", (chunk: Uint8Array) => out.push(chunk));
      c.stderr!.on("data", (chunk: Uint8Array) => (err += stream.decode(chunk, { stream: true })));
    },
  });
  return {
    done,
    child: () => child!,
    stdout: () => concat(out),
    stderr: () => err,
    async waitFor(what, ready, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (!(await ready())) {
        if (Date.now() > deadline) {
          child?.kill("SIGKILL");
          throw new Error(`timed out waiting for ${what}; stderr so far:\n${err}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

function includesBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).includes(Buffer.from(needle));
}

test("--help documents every service option and the environment it reads", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  const text = decoder.decode(help.stdout);
  for (
    const word of [
      "--after TIME",
      "--before TIME",
      "--limit N",
      "AUTH_LOG,AUDIT_LOG",
      "'all'",
      "--list",
      "--follow",
      "--interval DURATION",
      "--settle DURATION",
      "--log-format FORMAT",
      "--quiet",
      "--verbose",
      "state show|reset",
      "COMPLIANCE_API_KEY_FILE",
      "HTTPS_PROXY, NO_PROXY",
      "NODE_EXTRA_CA_CERTS",
      "DENO_CERT",
      "NO_COLOR",
    ]
  ) {
    assert.ok(text.includes(word), `--help mentions ${word}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Time windows

test("--after alone makes <limit> optional: 100 per page, relative times count back from now", async () => {
  const files = hourlyFiles(5, { start: isoFromNow(-10 * 3_600_000) });
  await withEmulator({ files }, async (emulator) => {
    const sent = Date.now();
    const r = await runCli(["--after", "24h", PRINCIPAL, "AUTH_LOG"], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, await expectedStream(emulator, idsOf(emulator)));
    const [list] = listRequests(emulator);
    assert.equal(list.query.limit, "100");
    assert.equal(list.query.event_type, "AUTH_LOG");
    const after = Date.parse(list.query.after);
    assert.ok(Math.abs(after - (sent - 86_400_000)) < 60_000, list.query.after);
    assert.doesNotMatch(r.stderr, /30 days/);
    // The page size can still be given, as the positional or as --limit.
    const sized = await runCli(["--after", "24h", PRINCIPAL, "AUTH_LOG", "7"], {
      env: envFor(emulator),
    });
    assert.equal(sized.code, 0, sized.stderr);
    assert.equal(listRequests(emulator).at(-1)!.query.limit, "7");
  });
});

test("--before is sent to the API and bounds the window; a date alone is UTC midnight", async () => {
  await withEmulator({ files: hourlyFiles(30) }, async (emulator) => {
    const r = await runCli(
      [PRINCIPAL, "AUTH_LOG", "--after", "2026-07-02T05:00:00+02:00", "--before", "2026-07-03"],
      { env: envFor(emulator) },
    );
    assert.equal(r.code, 0, r.stderr);
    const lists = listRequests(emulator);
    assert.equal(lists[0].query.after, "2026-07-02T05:00:00+02:00"); // ISO with a zone: verbatim
    assert.ok(lists.every((q) => q.query.before === "2026-07-03T00:00:00Z"));
    const inWindow = emulator.files
      .filter((f) => f.endTime > "2026-07-02T03:00:00Z" && f.endTime < "2026-07-03T00:00:00Z")
      .map((f) => f.id!);
    assert.equal(inWindow.length, 20);
    assert.deepEqual(r.stdout, await expectedStream(emulator, inWindow));

    const backwards = await runCli(
      [PRINCIPAL, "AUTH_LOG", "--after", "2026-07-03", "--before", "2026-07-02"],
      { env: envFor(emulator) },
    );
    assert.equal(backwards.code, 2);
    assert.match(backwards.stderr, /--before \(2026-07-02T00:00:00Z\) must be later than after/);
  });
});

test("without <after>, --after or a checkpoint cursor, a run is a usage error before any request", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const state = join(dir, "new.state.json");
      const cases: Array<[string[], RegExp]> = [
        [[PRINCIPAL, "AUTH_LOG"], /missing <after>: give a start time as <after> or --after/],
        [[PRINCIPAL, "AUTH_LOG", "100"], /missing <after>/],
        [[PRINCIPAL, "AUTH_LOG", "--state", state], /state file .* does not exist yet/],
      ];
      for (const [args, message] of cases) {
        const r = await runCli(args, { env: envFor(emulator) });
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.equal(lines(r.stderr).length, 1, r.stderr);
      }
      assert.equal(existsSync(state), false, "a refused run creates no state file");
      assert.equal(emulator.requests.length, 0);
    });
  });
});

test("an <after> older than the API's 30 days of retention warns but still runs", async () => {
  const files = hourlyFiles(2, { start: isoFromNow(-40 * 86_400_000) });
  await withEmulator({ files }, async (emulator) => {
    const old = await runCli([PRINCIPAL, "AUTH_LOG", "100", "45d"], { env: envFor(emulator) });
    assert.equal(old.code, 0, old.stderr);
    assert.match(
      old.stderr,
      /^warning: after \S+ is more than 30 days ago; the API keeps about 30 days of files/m,
    );
    assert.deepEqual(old.stdout, await expectedStream(emulator, idsOf(emulator)));
    const recent = await runCli([PRINCIPAL, "AUTH_LOG", "100", "29d"], { env: envFor(emulator) });
    assert.equal(recent.code, 0, recent.stderr);
    assert.doesNotMatch(recent.stderr, /30 days/);
  });
});

// ---------------------------------------------------------------------------------------------
// Several event types

test("several event types: one run, one cursor each in the state file, one folder each", async () => {
  const files = [
    ...hourlyFiles(5, { eventType: "AUTH_LOG" }),
    ...hourlyFiles(3, { eventType: "AUDIT_LOG", start: "2026-07-02T00:30:00Z" }),
    ...hourlyFiles(2, { eventType: "APP_LOG" }),
  ];
  await withTempDir(async (dir) => {
    await withEmulator({ files }, async (emulator) => {
      const state = join(dir, "state.json");
      const out = join(dir, "logs");
      const r = await runCli(
        [PRINCIPAL, "AUTH_LOG,AUDIT_LOG", "2", AFTER, "--state", state, "--output-dir", out],
        { env: envFor(emulator) },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((await readdir(out)).sort(), ["AUDIT_LOG", "AUTH_LOG", "_manifest"]);
      for (const type of ["AUTH_LOG", "AUDIT_LOG"]) {
        const stored = await readdir(join(out, type, "2026-07-02"));
        assert.deepEqual(stored.sort(), idsOf(emulator, type).map((id) => `${id}.jsonl`).sort());
        for (const id of idsOf(emulator, type)) {
          assert.deepEqual(
            new Uint8Array(await readFile(join(out, type, "2026-07-02", `${id}.jsonl`))),
            await emulator.contentOf(id),
          );
        }
      }
      const saved = JSON.parse(await readFile(state, "utf8"));
      assert.deepEqual(saved.eventTypes, ["AUDIT_LOG", "AUTH_LOG"]);
      assert.match(saved.cursors.AUTH_LOG.after, /^2026-07-02T04:00:00(\.0+)?Z$/);
      assert.match(saved.cursors.AUDIT_LOG.after, /^2026-07-02T02:30:00(\.0+)?Z$/);

      // New files of both types: the next run (no <after> needed) fetches only those, each type
      // listed from its own cursor.
      emulator.addFiles([
        ...hourlyFiles(1, { eventType: "AUTH_LOG", start: "2026-07-05T00:00:00Z" }).map((f) => ({
          ...f,
          id: "eclf_new_auth",
        })),
        ...hourlyFiles(1, { eventType: "AUDIT_LOG", start: "2026-07-05T00:00:00Z" }).map((f) => ({
          ...f,
          id: "eclf_new_audit",
        })),
      ]);
      const listedBefore = listRequests(emulator).length;
      const storageBefore = storageRequests(emulator).length;
      const again = await runCli(
        [PRINCIPAL, "AUTH_LOG,AUDIT_LOG", "--state", state, "--output-dir", out],
        { env: envFor(emulator) },
      );
      assert.equal(again.code, 0, again.stderr);
      assert.equal(storageRequests(emulator).length - storageBefore, 2);
      const lists = listRequests(emulator).slice(listedBefore);
      const firstAfter = (type: string) =>
        lists.find((q) => q.query.event_type === type)!.query.after;
      assert.equal(firstAfter("AUTH_LOG"), saved.cursors.AUTH_LOG.after);
      assert.equal(firstAfter("AUDIT_LOG"), saved.cursors.AUDIT_LOG.after);
      assert.ok(existsSync(join(out, "AUTH_LOG", "2026-07-05", "eclf_new_auth.jsonl")));
      assert.ok(existsSync(join(out, "AUDIT_LOG", "2026-07-05", "eclf_new_audit.jsonl")));
    });
  });
});

test("--event-type all asks for the route's every type; --list prints one JSON line per file", async () => {
  const files = [
    ...hourlyFiles(2, { eventType: "AUTH_LOG" }),
    ...hourlyFiles(2, { eventType: "CODEX_LOG" }),
    ...hourlyFiles(1, { eventType: "CONVERSATION_MESSAGE" }),
  ];
  await withEmulator({ files }, async (emulator) => {
    const r = await runCli(["--event-type", "all", "--list", "--after", AFTER, PRINCIPAL], {
      env: envFor(emulator),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listRequests(emulator).map((q) => q.query.event_type), KNOWN_TYPES);
    const listed = decoder.decode(r.stdout).trimEnd().split("\n").map((l) => JSON.parse(l));
    const expected = KNOWN_TYPES.flatMap((type) => idsOf(emulator, type));
    assert.deepEqual(listed.map((f) => f.id), expected);
    for (const entry of listed) {
      const spec = emulator.files.find((f) => f.id === entry.id)!;
      assert.deepEqual(Object.keys(entry), [
        "id",
        "event_type",
        "end_time",
        "file_name",
        "file_size",
        "file_sha256",
      ]);
      assert.equal(entry.event_type, spec.eventType);
      assert.equal(entry.end_time, spec.endTime);
      assert.equal(entry.file_size, spec.size);
      assert.equal(entry.file_sha256, await emulator.sha256Of(entry.id));
    }
    // Nothing was downloaded.
    assert.equal(storageRequests(emulator).length, 0);
    assert.ok(!emulator.requests.some((q) => /\/logs\/[^/]+$/.test(q.path)));
  });
});

test("--list pages exactly as a download does and never moves or creates the checkpoint", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(7) }, async (emulator) => {
      const state = join(dir, "state.json");
      const args = [PRINCIPAL, "AUTH_LOG", "3", AFTER, "--state", state];
      const listed = await runCli([...args, "--list"], { env: envFor(emulator) });
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(decoder.decode(listed.stdout).trimEnd().split("\n").length, 7);
      assert.equal(existsSync(state), false);
      const listPages = listRequests(emulator).map((q) => q.query);
      assert.equal(listPages.length, 3);

      const downloaded = await runCli(args, { env: envFor(emulator) });
      assert.equal(downloaded.code, 0, downloaded.stderr);
      assert.deepEqual(listRequests(emulator).slice(3).map((q) => q.query), listPages);

      // With a checkpoint, --list shows what the next run would fetch: here nothing.
      const saved = await readFile(state, "utf8");
      const next = await runCli([PRINCIPAL, "AUTH_LOG", "--state", state, "--list"], {
        env: envFor(emulator),
      });
      assert.equal(next.code, 0, next.stderr);
      assert.equal(next.stdout.length, 0);
      assert.equal(await readFile(state, "utf8"), saved);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// --follow

test("--follow delivers a file added while it sleeps on the next poll, then SIGTERM exits 143", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      const state = join(dir, "state.json");
      const run = background(
        [
          PRINCIPAL,
          "AUTH_LOG",
          "--after",
          AFTER,
          "--state",
          state,
          "--follow",
          "--interval",
          "0.3",
        ],
        envFor(emulator),
      );
      const first = await expectedStream(emulator, idsOf(emulator));
      await run.waitFor("the first poll", () => run.stdout().length === first.length);
      await run.waitFor("the first sleep", () => run.stderr().includes("before the next poll"));
      emulator.addFiles([{
        id: "eclf_arrived_later",
        eventType: "AUTH_LOG",
        endTime: "2026-07-04T00:00:00Z",
        size: 700,
      }]);
      const later = await emulator.contentOf("eclf_arrived_later");
      await run.waitFor("the new file", () => includesBytes(run.stdout(), later));
      run.child().kill("SIGTERM");
      const r = await run.done;
      assert.equal(shellStatus(r), 143, r.stderr);
      assert.deepEqual(r.stdout, await expectedStream(emulator, idsOf(emulator)));
      const saved = JSON.parse(await readFile(state, "utf8"));
      assert.match(saved.cursors.AUTH_LOG.after, /^2026-07-04T00:00:00(\.0+)?Z$/);
    });
  });
});

test("SIGTERM or SIGINT while --follow sleeps stops at once with the checkpoint intact", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      const state = join(dir, "state.json");
      const args = [PRINCIPAL, "AUTH_LOG", "2", AFTER, "--state", state, "--follow"];
      for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
        const run = background([...args, "--interval", "1h"], envFor(emulator));
        await run.waitFor("the sleep", () => run.stderr().includes("Waiting 3600s"));
        const sent = Date.now();
        run.child().kill(signal);
        const r = await run.done;
        assert.equal(shellStatus(r), code, r.stderr);
        assert.ok(Date.now() - sent < 3_000, `took ${Date.now() - sent} ms to stop`);
        assert.match(r.stderr, new RegExp(`Received ${signal}`));
        assert.match(r.stderr, /^Summary: /m);
        const saved = JSON.parse(await readFile(state, "utf8"));
        assert.match(saved.cursors.AUTH_LOG.after, /^2026-07-02T03:00:00(\.0+)?Z$/);
        assert.equal(existsSync(`${state}.lock`), false, "the lock is released");
      }
      // The second run resumed from the checkpoint: every file was downloaded once.
      assert.equal(storageRequests(emulator).length, 4);
    });
  });
});

test("SIGTERM mid-poll leaves only whole files and a checkpoint a next run completes", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(8), latencyMs: 120 }, async (emulator) => {
      const state = join(dir, "state.json");
      const out = join(dir, "logs");
      const stored = async () => {
        try {
          return await readdir(join(out, "AUTH_LOG", "2026-07-02"));
        } catch {
          return [];
        }
      };
      const args = [PRINCIPAL, "AUTH_LOG", "2", AFTER, "--state", state, "--output-dir", out];
      const run = background([...args, "--follow", "--concurrency", "2"], envFor(emulator));
      await run.waitFor("a few files", async () => (await stored()).length >= 2);
      run.child().kill("SIGTERM");
      const r = await run.done;
      assert.equal(shellStatus(r), 143, r.stderr);
      const afterKill = await stored();
      assert.ok(afterKill.length < 8, "stopped before the end");
      assert.ok(afterKill.every((name) => /^eclf_\w+\.jsonl$/.test(name)), afterKill.join(" "));

      const rest = await runCli(args, { env: envFor(emulator) });
      assert.equal(rest.code, 0, rest.stderr);
      assert.deepEqual(
        (await stored()).sort(),
        idsOf(emulator).map((id) => `${id}.jsonl`).sort(),
      );
      for (const id of idsOf(emulator)) {
        assert.deepEqual(
          new Uint8Array(await readFile(join(out, "AUTH_LOG", "2026-07-02", `${id}.jsonl`))),
          await emulator.contentOf(id),
        );
      }
    });
  });
});

test("--follow survives an outage longer than its retries and catches up on a later poll", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      // Two attempts per poll (--retries 1): the first poll fails, the second succeeds on retry.
      emulator.inject({ target: "list", status: 503, times: 3 });
      const run = background(
        [
          PRINCIPAL,
          "AUTH_LOG",
          "--after",
          AFTER,
          "--state",
          join(dir, "state.json"),
          "--follow",
          "--interval",
          "0.2",
          "--retries",
          "1",
          ...FAST,
        ],
        envFor(emulator),
      );
      const all = await expectedStream(emulator, idsOf(emulator));
      await run.waitFor("the files", () => run.stdout().length === all.length);
      run.child().kill("SIGTERM");
      const r = await run.done;
      assert.equal(shellStatus(r), 143, r.stderr);
      assert.deepEqual(r.stdout, all);
      assert.match(r.stderr, /^error: HTTP error 503 while listing logs/m);
      assert.match(r.stderr, /^Retrying listing logs .* HTTP error 503/m);
      assert.equal(emulator.faultsRemaining(), 0);
    });
  });
});

test("--settle holds back a file whose end_time is too recent until it settles", async () => {
  await withTempDir(async (dir) => {
    const files = [
      { id: "eclf_old", eventType: "AUTH_LOG", endTime: isoFromNow(-3_600_000), size: 300 },
      { id: "eclf_fresh", eventType: "AUTH_LOG", endTime: isoFromNow(0), size: 300 },
    ];
    await withEmulator({ files }, async (emulator) => {
      const fresh = await emulator.contentOf("eclf_fresh");
      const old = await emulator.contentOf("eclf_old");
      // A one-off run skips it too.
      const once = await runCli([PRINCIPAL, "AUTH_LOG", "--after", "2h", "--settle", "10m"], {
        env: envFor(emulator),
      });
      assert.equal(once.code, 0, once.stderr);
      assert.deepEqual(once.stdout, await expectedStream(emulator, ["eclf_old"]));

      const freshEnd = Date.parse(files[1].endTime);
      const run = background(
        [
          PRINCIPAL,
          "AUTH_LOG",
          "--after",
          "2h",
          "--state",
          join(dir, "state.json"),
          "--follow",
          "--interval",
          "0.25",
          "--settle",
          "3s",
        ],
        envFor(emulator),
      );
      await run.waitFor("the first poll", () => run.stderr().includes("before the next poll"));
      assert.ok(includesBytes(run.stdout(), old));
      assert.ok(!includesBytes(run.stdout(), fresh), "held back on the first poll");
      await run.waitFor("the settled file", () => includesBytes(run.stdout(), fresh));
      assert.ok(Date.now() - freshEnd >= 3_000, "delivered only once 3 s old");
      run.child().kill("SIGTERM");
      const r = await run.done;
      assert.equal(shellStatus(r), 143, r.stderr);
      assert.deepEqual(r.stdout, await expectedStream(emulator, ["eclf_old", "eclf_fresh"]));
    });
  });
});

test("--follow needs --state; --interval needs --follow", async () => {
  for (
    const [args, message] of [
      [["--follow"], /--follow needs --state FILE/],
      [["--interval", "1m"], /--interval needs --follow/],
    ] as Array<[string[], RegExp]>
  ) {
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "--after", "1h", ...args], {
      env: { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  }
});

// ---------------------------------------------------------------------------------------------
// Progress, logs and the summary

test("--log-format json: every stderr line is a JSON event, down to the summary", async () => {
  await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
    emulator.inject({ target: "list", status: 429, headers: { "retry-after": "0" } });
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "2", AFTER, "--log-format", "json", ...FAST], {
      env: envFor(emulator),
    });
    assert.equal(r.code, 0, r.stderr);
    const events = lines(r.stderr).map((l) => JSON.parse(l));
    for (const e of events) assert.ok(!Number.isNaN(Date.parse(e.time)), JSON.stringify(e));
    const of = (name: string) => events.filter((e) => e.event === name);
    const retry = of("retry");
    assert.equal(retry.length, 1);
    assert.match(retry[0].reason, /HTTP error 429/);
    assert.equal(typeof retry[0].wait_ms, "number");
    assert.deepEqual(of("page").map((e) => [e.page, e.files, e.has_more]), [
      [1, 2, true],
      [2, 2, true],
      [3, 1, false],
    ]);
    const files = of("file");
    assert.deepEqual(files.map((e) => e.id).sort(), idsOf(emulator).sort());
    for (const e of files) {
      assert.equal(e.bytes, emulator.files.find((f) => f.id === e.id)!.size);
      assert.equal(typeof e.duration_ms, "number");
    }
    const summary = events.at(-1);
    assert.equal(summary.event, "summary");
    assert.equal(summary.files, 5);
    assert.equal(summary.bytes, emulator.files.reduce((n, f) => n + f.size!, 0));
    assert.equal(summary.pages, 3);
    assert.equal(summary.retries, 1);
    assert.equal(summary.status, "ok");
    assert.equal(summary.exit_code, 0);
    assert.equal(typeof summary.duration_ms, "number");
    assert.match(summary.cursors.AUTH_LOG, /^2026-07-02T04:00:00/);

    // A failing run ends with an error event and the summary: still JSON only.
    const failed = await runCli([PRINCIPAL, "AUTH_LOG", "2", AFTER, "--log-format", "json"], {
      env: envFor(emulator, { COMPLIANCE_API_KEY: "sk-wrong-key-5678-0a1b2c3d4e" }),
    });
    assert.equal(failed.code, 1);
    const tail = lines(failed.stderr).map((l) => JSON.parse(l));
    assert.deepEqual(tail.slice(-2).map((e) => e.event), ["error", "summary"]);
    assert.match(tail.at(-2).message, /^HTTP error 401 while listing logs/);
    assert.equal(tail.at(-2).kind, "auth");
    assert.deepEqual([tail.at(-1).status, tail.at(-1).exit_code], ["failed", 1]);
    assert.ok(!failed.stderr.includes("wrong-key-5678"));

    // So does a run refused before any request (here: no start time for a new state file).
    const state = join(tmpdir(), "oai-no-such-dir", "state.json");
    const refused = await runCli(
      [PRINCIPAL, "AUTH_LOG", "--state", state, "--log-format", "json"],
      {
        env: envFor(emulator),
      },
    );
    assert.equal(refused.code, 2);
    const [error, last] = lines(refused.stderr).map((l) => JSON.parse(l));
    assert.deepEqual([error.event, error.kind, error.exit_code], ["error", "usage", 2]);
    assert.match(error.message, /^missing <after>/);
    assert.deepEqual([last.event, last.status, last.exit_code, last.files], [
      "summary",
      "failed",
      2,
      0,
    ]);
  });
});

test("the plain summary counts files, bytes, pages, retries and the cursor; -q and -v adjust", async () => {
  await withEmulator({ files: hourlyFiles(4, { sizes: [1000] }) }, async (emulator) => {
    const bytes = emulator.files.reduce((n, f) => n + f.size!, 0);
    emulator.inject({ target: "storage", status: 503 });
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "3", AFTER, ...FAST], { env: envFor(emulator) });
    assert.equal(r.code, 0, r.stderr);
    const summary = lines(r.stderr).at(-1)!;
    assert.match(
      summary,
      new RegExp(
        `^Summary: 4 files, ${(bytes / 1000).toFixed(1)} KB, 2 pages, 1 retries, 0 skipped ` +
          `in \\d+\\.\\ds; cursor AUTH_LOG=2026-07-02T03:00:00\\.0+Z$`,
      ),
    );

    const quiet = await runCli([PRINCIPAL, "AUTH_LOG", "3", AFTER, "-q"], {
      env: envFor(emulator),
    });
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stderr, "");
    const quietFail = await runCli([PRINCIPAL, "AUTH_LOG", "3", AFTER, "--quiet"], {
      env: envFor(emulator, { COMPLIANCE_API_KEY: "sk-nope-nope-nope-0a1b2c3d" }),
    });
    assert.equal(quietFail.code, 1);
    assert.match(quietFail.stderr, /^error: HTTP error 401/);

    const verbose = await runCli([PRINCIPAL, "AUTH_LOG", "3", AFTER, "-v"], {
      env: envFor(emulator),
    });
    assert.equal(verbose.code, 0);
    for (const id of idsOf(emulator)) {
      assert.match(verbose.stderr, new RegExp(`^Done ${id}: \\d+ bytes in \\d+ ms$`, "m"));
    }
  });
});

const SCRIPT = spawnSync("script", ["--version"]).status === 0;
const noPty = process.platform !== "linux" || RUNS_WINDOWS || !SCRIPT
  ? "needs script(1) from util-linux to give the CLI a terminal"
  : false;

/** Runs the CLI with stderr on a pseudo-terminal (stdout to `out`); resolves with the terminal. */
function onTerminal(
  args: string[],
  env: Record<string, string | undefined>,
  out: string,
): Promise<{ code: number | null; terminal: string }> {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [...cliCommand(), ...args].map(quote).join(" ") + ` > ${quote(out)}`;
  const childEnv: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "TMPDIR", "DENO_DIR", "BUN_INSTALL"]) {
    if (process.env[name]) childEnv[name] = process.env[name]!;
  }
  for (const [name, value] of Object.entries({ TZ: "UTC", TERM: "xterm", ...env })) {
    if (value !== undefined) childEnv[name] = value;
  }
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Uint8Array[] = [];
    child.stdout!.on("data", (c: Uint8Array) => chunks.push(c));
    child.stderr!.on("data", (c: Uint8Array) => chunks.push(c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, terminal: decoder.decode(concat(chunks)) }));
  });
}

test("on a terminal, progress is one live line; NO_COLOR and TERM=dumb are honoured", {
  skip: noPty,
}, async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(6) }, async (emulator) => {
      const out = join(dir, "out.jsonl");
      // An unknown event type gives a warning, to see its colour.
      const args = [PRINCIPAL, "AUTH_LOG,NEW_KIND_LOG", "2", AFTER];
      const live = await onTerminal(args, { ...envFor(emulator), NO_COLOR: undefined }, out);
      assert.equal(live.code, 0, live.terminal);
      assert.deepEqual(
        new Uint8Array(await readFile(out)),
        await expectedStream(emulator, idsOf(emulator)),
      );
      assert.match(
        live.terminal,
        /\r\x1b\[KAUTH_LOG page \d+ \| (\d+ of \d+\+? files|\d+\+? files listed) \| [\d.]+ K?B/,
      );
      assert.doesNotMatch(live.terminal, /Fetching logs for ID/);
      assert.match(live.terminal, /\x1b\[33mwarning:\x1b\[39m event type NEW_KIND_LOG/);
      assert.match(live.terminal, /Summary: 6 files/);

      const noColor = await onTerminal(args, { ...envFor(emulator), NO_COLOR: "1" }, out);
      assert.equal(noColor.code, 0, noColor.terminal);
      assert.match(noColor.terminal, /\r\x1b\[KAUTH_LOG page/);
      assert.doesNotMatch(noColor.terminal, /\x1b\[\d+m/);
      assert.match(noColor.terminal, /^warning: event type NEW_KIND_LOG/m);

      const dumb = await onTerminal(args, { ...envFor(emulator), TERM: "dumb" }, out);
      assert.equal(dumb.code, 0, dumb.terminal);
      assert.doesNotMatch(dumb.terminal, /\x1b/);
      assert.match(dumb.terminal, /Fetching logs for ID: /);

      const failed = await onTerminal(
        args,
        {
          ...envFor(emulator, { COMPLIANCE_API_KEY: "sk-wrong-key-0000-0a1b2c3d4e" }),
          NO_COLOR: undefined,
        },
        out,
      );
      assert.equal(failed.code, 1);
      assert.match(failed.terminal, /\x1b\[31merror:\x1b\[39m HTTP error 401/);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The key from a file

test("COMPLIANCE_API_KEY_FILE: trimmed, UTF-16 from PowerShell accepted, never echoed", async () => {
  await withTempDir(async (dir) => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const expected = await expectedStream(emulator, idsOf(emulator));
      const utf16 = new Uint8Array([
        0xff,
        0xfe,
        ...new Uint8Array(
          Uint16Array.from(`${emulator.key}\r\n`, (c) => c.charCodeAt(0)).buffer,
        ),
      ]);
      const variants: Array<[string, string | Uint8Array]> = [
        ["plain", `  ${emulator.key}\n`],
        ["crlf", `${emulator.key}\r\n`],
        ["utf8-bom", `\uFEFF${emulator.key}\r\n`],
        ["utf16le", utf16],
      ];
      for (const [name, content] of variants) {
        const path = join(dir, `key-${name}`);
        await writeFile(path, content, { mode: 0o600 });
        const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], {
          env: { COMPLIANCE_API_BASE: emulator.apiBase, COMPLIANCE_API_KEY_FILE: path },
        });
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        assert.deepEqual(r.stdout, expected);
      }

      const wrong = join(dir, "wrong-key");
      await writeFile(wrong, "sk-wrong-key-from-file-0042\n");
      for (const extra of [[], ["--verbose"], ["--log-format", "json"]]) {
        const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER, ...extra], {
          env: { COMPLIANCE_API_BASE: emulator.apiBase, COMPLIANCE_API_KEY_FILE: wrong },
        });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /HTTP error 401/);
        assert.ok(!r.stderr.includes("sk-wrong-key-from-file-0042"), r.stderr);
      }

      const missing = join(dir, "no-such-key");
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], {
        env: { COMPLIANCE_API_BASE: emulator.apiBase, COMPLIANCE_API_KEY_FILE: missing },
      });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /cannot read COMPLIANCE_API_KEY_FILE '.*no-such-key': ENOENT/);
      const empty = join(dir, "empty-key");
      await writeFile(empty, " \n");
      const e = await runCli([PRINCIPAL, "AUTH_LOG", "100", AFTER], {
        env: { COMPLIANCE_API_BASE: emulator.apiBase, COMPLIANCE_API_KEY_FILE: empty },
      });
      assert.equal(e.code, 2);
      assert.match(e.stderr, /COMPLIANCE_API_KEY_FILE '.*empty-key' is empty/);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// state show | reset

test("state show reads a checkpoint; state reset clears one type or the file, never under a live run", async () => {
  await withTempDir(async (dir) => {
    const files = [
      ...hourlyFiles(3, { eventType: "AUTH_LOG" }),
      ...hourlyFiles(2, { eventType: "AUDIT_LOG" }),
    ];
    await withEmulator({ files }, async (emulator) => {
      const state = join(dir, "state.json");
      const types = "AUTH_LOG,AUDIT_LOG";
      const first = await runCli([PRINCIPAL, types, "--after", AFTER, "--state", state], {
        env: envFor(emulator),
      });
      assert.equal(first.code, 0, first.stderr);

      const show = await runCli(["state", "show", state]);
      assert.equal(show.code, 0, show.stderr);
      const shown = decoder.decode(show.stdout);
      assert.match(shown, new RegExp(`^principal +${PRINCIPAL}$`, "m"));
      assert.match(shown, /^AUTH_LOG +after 2026-07-02T02:00:00(\.0+)?Z/m);
      assert.match(shown, /^AUDIT_LOG +after 2026-07-02T01:00:00(\.0+)?Z/m);
      assert.match(shown, /^lock +none$/m);

      // Reset one type: it must start again from <after>, so a run without one is refused.
      const reset = await runCli(["state", "reset", state, "AUDIT_LOG"]);
      assert.equal(reset.code, 0, reset.stderr);
      assert.match(
        decoder.decode((await runCli(["state", "show", state])).stdout),
        /^AUDIT_LOG +not started/m,
      );
      const requests = emulator.requests.length;
      const refused = await runCli([PRINCIPAL, types, "--state", state], { env: envFor(emulator) });
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /has no cursor for AUDIT_LOG yet/);
      assert.equal(emulator.requests.length, requests);

      // A live --follow run holds the lock: reset is refused and the file kept.
      const run = background(
        [PRINCIPAL, types, "--after", AFTER, "--state", state, "--follow", "--interval", "1h"],
        envFor(emulator),
      );
      await run.waitFor("the sleep", () => run.stderr().includes("Waiting 3600s"));
      const busy = await runCli(["state", "reset", state]);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /another run \(pid \d+.*\) holds/);
      assert.ok(existsSync(state));
      assert.match(
        decoder.decode((await runCli(["state", "show", state])).stdout),
        /^lock +held by pid/m,
      );
      run.child().kill("SIGTERM");
      assert.equal(shellStatus(await run.done), 143);

      const gone = await runCli(["state", "reset", state]);
      assert.equal(gone.code, 0, gone.stderr);
      assert.equal(existsSync(state), false);
      const missing = await runCli(["state", "show", state]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /does not exist/);
    });
  });
});
