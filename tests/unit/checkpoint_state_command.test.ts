/**
 * The `state` command (lib/commands/state.ts): its arguments (no option but --help), its help,
 * and what `state show` prints.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { deadPid, withLivePid } from "../helpers/mod.ts";
import { command, parseStateArgs, showState } from "../../lib/commands/state.ts";
import { CliError } from "../../lib/errors.ts";
import { lockText, refused, state, stateV2, withDir } from "./checkpoint_fixtures.ts";

test("state show describes each cursor and the lock", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(path, JSON.stringify(state({ eventTypes: ["AUDIT_LOG", "AUTH_LOG"] })));
    const text = await showState(path);
    assert.match(text, /^state file +.*s\.json$/m);
    assert.match(text, /^principal +ws-1$/m);
    assert.match(text, /^event types +AUDIT_LOG, AUTH_LOG$/m);
    assert.match(text, /^AUTH_LOG +after 2026-01-01T00:00:00Z \(1 id already delivered at it\)$/m);
    assert.match(text, /^ +delivered: f1$/m);
    assert.match(text, /^AUDIT_LOG +not started/m);
    assert.match(text, /^lock +none$/m);

    await withLivePid(async (pid) => {
      await writeFile(`${path}.lock`, lockText(pid));
      assert.match(await showState(path), new RegExp(`^lock +held by pid ${pid} `, "m"));
    });
    await writeFile(`${path}.lock`, lockText(await deadPid()));
    assert.match(await showState(path), /^lock +stale \(.*no longer running\)/m);
  });
});
test("state show refuses a missing or corrupt file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await refused(showState(path), `${path} does not exist`);
    await writeFile(path, "{");
    await refused(showState(path), "is not valid JSON");
  });
});

test("state show escapes control characters from the file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(path, JSON.stringify(state({ principal: "ws-\x1b[2J\n1" })));
    const text = await showState(path);
    assert.match(text, /^principal +ws-\\x1b\[2J\\x0a1$/m);
  });
});

function usageError(argv: string[], pattern: RegExp): void {
  assert.throws(() => parseStateArgs(argv), (e) => {
    assert.ok(e instanceof CliError, String(e));
    assert.equal(e.kind, "usage");
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  }, argv.join(" "));
}

test("state takes show FILE, reset FILE [event_type], --help, and -- before a name starting with -", () => {
  assert.deepEqual(parseStateArgs(["show", "s.json"]), { action: "show", path: "s.json" });
  assert.deepEqual(parseStateArgs(["reset", "s.json"]), {
    action: "reset",
    path: "s.json",
    eventType: undefined,
  });
  assert.deepEqual(parseStateArgs(["reset", "s.json", "AUTH_LOG"]), {
    action: "reset",
    path: "s.json",
    eventType: "AUTH_LOG",
  });
  assert.deepEqual(parseStateArgs(["show", "--", "-s.json"]), { action: "show", path: "-s.json" });
  assert.deepEqual(parseStateArgs(["show", "s.json", "--help"]), { action: "help" });
  assert.deepEqual(parseStateArgs(["-h"]), { action: "help" });
});

test("any option state does not take is a one-line usage error, even beside --help", () => {
  const cases: [string[], RegExp][] = [
    [["show", "s.json", "--gzip"], /^state does not take --gzip \(see .*state --help/],
    [["show", "s.json", "--follow"], /does not take --follow/],
    [["--concurrency", "9", "show", "s.json"], /does not take --concurrency/],
    [["reset", "s.json", "--output-dir", "x"], /does not take --output-dir/],
    [["show", "s.json", "-q"], /does not take -q/],
    [["--help", "--gzip"], /does not take --gzip/],
    [["--help=yes"], /--help takes no value/],
  ];
  for (const [argv, pattern] of cases) usageError(argv, pattern);
});

test("a missing or unknown action, a missing file and extra arguments are usage errors", () => {
  usageError([], /missing what to do: state show FILE, state reset FILE \[event_type\]/);
  usageError(["list", "s.json"], /unknown state command 'list'/);
  usageError(["show"], /state show needs a state file/);
  usageError(["reset", ""], /state reset needs a state file/);
  usageError(["show", "s.json", "AUTH_LOG"], /too many arguments for state show: 'AUTH_LOG'/);
  usageError(["reset", "s.json", "AUTH_LOG", "x"], /too many arguments for state reset: 'x'/);
});

test("state's help describes its own usage and none of a run's options", () => {
  assert.equal(command.name, "state");
  assert.match(command.help, /^Usage: oai-compliance-logs state show <state_file>$/m);
  assert.match(command.help, /oai-compliance-logs state reset <state_file> \[event_type\]$/m);
  assert.match(command.help, /-h, --help/);
  for (const option of ["--concurrency", "--gzip", "--follow", "--output-dir", "--after", "-o,"]) {
    assert.ok(!command.help.includes(option), option);
  }
});

test("state skip takes a file, an event type, an id and a required one-line --reason", () => {
  assert.deepEqual(
    parseStateArgs(["skip", "s.json", "AUTH_LOG", "eclf_1", "--reason", "bad hash, ticket 7"]),
    {
      action: "skip",
      path: "s.json",
      eventType: "AUTH_LOG",
      id: "eclf_1",
      reason: "bad hash, ticket 7",
    },
  );
  assert.deepEqual(parseStateArgs(["skip", "--reason=r", "s.json", "AUTH_LOG", "x"]), {
    action: "skip",
    path: "s.json",
    eventType: "AUTH_LOG",
    id: "x",
    reason: "r",
  });
  usageError(["skip", "s.json", "AUTH_LOG", "x"], /state skip needs --reason TEXT/);
  usageError(["skip", "s.json", "AUTH_LOG", "x", "--reason"], /--reason needs a value/);
  usageError(["skip", "s.json", "AUTH_LOG", "x", "--reason", " "], /--reason must not be empty/);
  usageError(["skip", "s.json", "AUTH_LOG", "x", "--reason", "a\nb"], /one line/);
  usageError(["skip", "s.json", "AUTH_LOG", "x", "--reason", "r".repeat(501)], /longer than 500/);
  usageError(
    ["skip", "s.json", "AUTH_LOG", "--reason", "r"],
    /needs <state_file> <event_type> <id>/,
  );
  usageError(
    ["skip", "s.json", "AUTH_LOG", "x", "y", "--reason", "r"],
    /too many arguments for state skip: 'y'/,
  );
  usageError(["show", "s.json", "--reason", "r"], /state show does not take --reason/);
  assert.match(command.help, /state skip <state_file> <event_type> <id> --reason TEXT$/m);
});

test("state show lists an all job's started types with their gone and skipped files", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const cursor = { after: "2026-01-01T00:00:00Z", seen: [], updatedAt: "2026-01-02T00:00:00Z" };
    const data = stateV2({
      eventTypes: "all",
      cursors: { COSTS: cursor },
      gone: {
        APP_LOG: [{
          id: "g1",
          event_type: "APP_LOG",
          end_time: "2025-12-01T00:00:00Z",
          found_at: "2026-01-02T00:00:00Z",
          reason: "expired",
        }],
      },
      skipped: {
        COSTS: [{ id: "s1", reason: "poison\x1b[2J", skipped_at: "2026-01-03T00:00:00Z" }],
      },
    });
    await writeFile(path, JSON.stringify(data));
    const text = await showState(path);
    assert.match(text, /^event types +all \(the route's types, resolved at each run\)$/m);
    assert.match(text, /^APP_LOG +not started/m);
    assert.match(
      text,
      /^ +gone: g1 \(end_time 2025-12-01T00:00:00Z, expired, found 2026-01-02T00:00:00Z\)$/m,
    );
    assert.match(text, /^COSTS +after 2026-01-01T00:00:00Z \(0 ids already delivered at it\)$/m);
    assert.match(text, /^ +skipped: s1 \(2026-01-03T00:00:00Z: poison\\x1b\[2J\)$/m);
    assert.doesNotMatch(text, /AUTH_LOG/, "only the types that have something recorded");
    assert.ok(text.indexOf("APP_LOG") < text.indexOf("COSTS"));

    await writeFile(path, JSON.stringify(stateV2({ eventTypes: "all", cursors: {} })));
    assert.match(await showState(path), /no event type started/);
  });
});
