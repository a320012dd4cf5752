/**
 * The state file's format (lib/checkpoint/format.ts): every field checked, one line per refusal
 * naming what to do, the file left byte-identical; what a whole-file reset may delete.
 */
import assert from "node:assert/strict";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Checkpoint } from "../../lib/checkpoint/model.ts";
import { looksLikeState, parseState, writeState } from "../../lib/checkpoint/format.ts";
import { resetState } from "../../lib/checkpoint/model.ts";
import { CliError } from "../../lib/errors.ts";
import { POSIX, refused, state, stateV2, withDir } from "./checkpoint_fixtures.ts";

test("a state file of another principal is refused and left byte-identical", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state(), null, 2);
    await writeFile(path, text);
    await refused(
      Checkpoint.open(path, "ws-2", ["AUTH_LOG"]),
      path,
      "principal ws-1, not ws-2",
      "use another --state file",
      `oai-compliance-logs state reset ${path}`,
    );
    assert.equal(await readFile(path, "utf8"), text);
    assert.deepEqual(await readdir(dir), ["s.json"], "lock released");
  });
});
test("a state file kept for another set of event types is refused and left byte-identical", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify(state(), null, 2);
    await writeFile(path, text);
    for (const types of [["AUDIT_LOG"], ["AUTH_LOG", "AUDIT_LOG"]]) {
      await refused(
        Checkpoint.open(path, "ws-1", types),
        path,
        `tracks event types AUTH_LOG, not ${[...types].sort().join(",")}`,
        "use one --state file per set of event types",
      );
    }
    assert.equal(await readFile(path, "utf8"), text);
    assert.deepEqual(await readdir(dir), ["s.json"]);
  });
});
test("corrupt, truncated, empty and wrongly shaped state files are refused and left byte-identical", async () => {
  const valid = JSON.stringify(state(), null, 2);
  const edit = (fn: (d: Record<string, unknown>) => void) => {
    const d = JSON.parse(valid);
    fn(d);
    return JSON.stringify(d);
  };
  const cases: [string, string, RegExp][] = [
    ["not json", "hello", /is not valid JSON .*it may be truncated/],
    ["a log named by mistake", '{"id":"e1"}\n{"id":"e2"}\n', /is not valid JSON/],
    ["other JSON", '{"some":"other json"}', /"version" must be 1 or 2/],
    ["truncated", valid.slice(0, valid.length / 2), /is not valid JSON/],
    ["empty", "", /it is empty/],
    ["zeroed by a crash", "\0".repeat(64), /is not valid JSON/],
    ["an array", "[]", /it is not a JSON object/],
    ["no version", edit((d) => delete d.version), /"version" must be 1 or 2/],
    ["version as text", edit((d) => d.version = "1"), /"version" must be 1 or 2/],
    ["empty principal", edit((d) => d.principal = ""), /"principal" must be a non-empty string/],
    ["principal a number", edit((d) => d.principal = 7), /"principal"/],
    ["no event types", edit((d) => d.eventTypes = []), /"eventTypes" must be a non-empty array/],
    ["event type twice", edit((d) => d.eventTypes = ["A", "A"]), /lists A twice/],
    ["event type not text", edit((d) => d.eventTypes = [1]), /"eventTypes\[0\]"/],
    ["cursors an array", edit((d) => d.cursors = []), /"cursors" must be an object/],
    [
      "cursor of an untracked type",
      edit((d) => (d.cursors as Record<string, unknown>).X = {}),
      /"cursors.X" is not one of "eventTypes"/,
    ],
    [
      "after empty",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.after = ""),
      /"cursors.AUTH_LOG.after" must be a non-empty string/,
    ],
    [
      "seen holding a number",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.seen = ["a", 2]),
      /"cursors.AUTH_LOG.seen\[1\]" must be a non-empty string/,
    ],
    [
      "seen not an array",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.seen = "a"),
      /"cursors.AUTH_LOG.seen" must be an array/,
    ],
    [
      "updatedAt not a time",
      edit((d) => (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG.updatedAt = "x"),
      /"cursors.AUTH_LOG.updatedAt" must be an ISO 8601 time/,
    ],
    [
      "a misspelt cursor field",
      edit((d) => {
        const c = (d.cursors as Record<string, Record<string, unknown>>).AUTH_LOG;
        c.sen = c.seen;
        delete c.seen;
      }),
      /unknown field "cursors.AUTH_LOG.sen"/,
    ],
    ["an unknown field", edit((d) => d.extra = true), /unknown field "extra"/],
  ];
  await withDir(async (dir) => {
    for (const [name, text, pattern] of cases) {
      const path = join(dir, "s.json");
      await writeFile(path, text);
      await refused(Checkpoint.open(path, "ws-1", ["AUTH_LOG"]), path, pattern).catch((error) => {
        throw new Error(`${name}: ${error.message}`);
      });
      assert.equal(await readFile(path, "utf8"), text, name);
      assert.deepEqual(await readdir(dir), ["s.json"], name);
    }
  });
});

test("the advice for an unusable state file agrees with what state reset then does", async () => {
  const valid = JSON.stringify(state(), null, 2);
  // Whether `state reset` may delete it: a damaged checkpoint yes, anything else never.
  const cases: [string, boolean][] = [
    ["hello", false],
    ['{"id":"e1"}\n{"id":"e2"}\n', false],
    ['{"some":"other json"}', false],
    ["[]", false],
    ["", true],
    ["\0".repeat(64), true],
    [valid.slice(0, valid.length / 2), true],
    [JSON.stringify({ ...state(), version: "1" }), true],
    [JSON.stringify({ ...state(), principal: "" }), true],
    [JSON.stringify({ principal: "ws-1", cursors: {} }), true],
  ];
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    for (const [text, deletable] of cases) {
      await writeFile(path, text);
      const advice = await Checkpoint.open(path, "ws-1", ["AUTH_LOG"]).then(
        () => assert.fail(`accepted ${JSON.stringify(text)}`),
        (error: Error) => error.message,
      );
      const name = JSON.stringify(text.slice(0, 30));
      if (deletable) {
        assert.match(advice, /run `oai-compliance-logs state reset /, name);
        await resetState(path);
        assert.deepEqual(await readdir(dir), [], `${name}: reset deleted it as advised`);
      } else {
        assert.doesNotMatch(advice, /state reset/, name);
        assert.match(advice, /does not look like an oai-compliance-logs state file/, name);
        assert.match(advice, /check the --state path, or delete .* by hand if you are sure/, name);
        await refused(resetState(path), "does not look like");
        assert.equal(await readFile(path, "utf8"), text, `${name}: left as it was`);
        // A one-type reset gives the same advice, never "reset the whole file".
        await assert.rejects(resetState(path, "AUTH_LOG"), (error: Error) => {
          assert.doesNotMatch(error.message, /state reset/, name);
          return true;
        });
      }
    }
  });
});
test("a state file of an unknown version is refused with advice to upgrade", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const text = JSON.stringify({ ...state(), version: 3, somethingNew: [] });
    await writeFile(path, text);
    await refused(
      Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
      path,
      "has version 3",
      "use a newer oai-compliance-logs",
    );
    assert.equal(await readFile(path, "utf8"), text);
  });
});
test("a state file in a missing directory, or that is a directory, is refused clearly", async () => {
  await withDir(async (dir) => {
    const missing = join(dir, "nope", "s.json");
    await refused(
      Checkpoint.open(missing, "ws-1", ["AUTH_LOG"]),
      missing,
      `directory ${join(dir, "nope")} does not exist`,
    );
    await refused(Checkpoint.open(dir, "ws-1", ["AUTH_LOG"]), "is a directory");
    assert.deepEqual(await readdir(dir), []);
  });
});
test("a cursor that is not an RFC 3339 time makes the state file invalid", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    const data = state({ eventTypes: ["AUTH_LOG"] });
    const updatedAt = "2026-01-02T00:00:00Z";
    data.cursors.AUTH_LOG = { after: "yesterday&limit=1", seen: [], updatedAt };
    await writeFile(path, JSON.stringify(data));
    await assert.rejects(
      Checkpoint.open(path, "ws-1", ["AUTH_LOG"]),
      (e: unknown) =>
        e instanceof CliError && e.kind === "state" &&
        /cursors\.AUTH_LOG\.after.*RFC 3339.*state reset/.test(e.message),
    );
  });
});

test("parseState returns the event types sorted and each cursor as written", () => {
  const text = JSON.stringify(state({ eventTypes: ["AUTH_LOG", "AUDIT_LOG"] }));
  const data = parseState(text, "s.json");
  assert.deepEqual(data.eventTypes, ["AUDIT_LOG", "AUTH_LOG"]);
  assert.deepEqual(data.cursors, state().cursors);
});

test("a refusal's advice quotes the state file for a POSIX shell", () => {
  assert.throws(
    () => parseState("", "my state's.json"),
    (e) => e instanceof CliError && e.message.includes(`state reset 'my state'\\''s.json'`),
  );
});

test("a whole-file reset may delete a checkpoint, even truncated, empty or zeroed, but not a log or other JSON", () => {
  const valid = JSON.stringify(state(), null, 2);
  const compact = JSON.stringify(state());
  for (const text of [valid, valid.slice(0, 40), compact.slice(0, 30), "", "\0".repeat(8)]) {
    assert.equal(looksLikeState(text), true, JSON.stringify(text));
  }
  for (const text of ['{"id":"e1"}\n{"id":"e2"}\n', '{"some":"other json"}', "hello", "[]"]) {
    assert.equal(looksLikeState(text), false, text);
  }
});

test("writeState replaces the file owner-only and names the state file when it cannot write", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeFile(path, "old");
    await writeState(path, "s.json", stateV2());
    assert.deepEqual(JSON.parse(await readFile(path, "utf8")), stateV2());
    if (POSIX) assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["s.json"]);
    await refused(
      writeState(join(dir, "nope", "s.json"), "nope/s.json", stateV2()),
      "cannot write state file nope/s.json",
    );
  });
});
