/**
 * The destination registry: a destination is one module that the registry resolves by URL
 * scheme; the commands, the session and the pass take any kind they are given. Proved with a
 * throwaway destination defined in one file (tests/fixtures/memory_destination.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { parseRunArgs } from "../../lib/commands/run.ts";
import { DESTINATIONS, destinationSecrets } from "../../lib/destinations/mod.ts";
import { runSession } from "../../lib/session.ts";
import { delivered, memoryKind } from "../fixtures/memory_destination.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "../helpers/fixtures.ts";

const KINDS = [...DESTINATIONS, memoryKind];
const env = { COMPLIANCE_API_KEY: "sk-unit-test-0123456789abcdef" };

test("a destination added in one file is chosen by its scheme, with its own option", () => {
  const settings = parseRunArgs(
    ["ws-1", "AUTH_LOG", "5", "1h", "-o", "mem://a", "--mem-label", "L"],
    env,
    new Date(),
    KINDS,
  );
  assert.equal(settings?.destination.label, "-o mem://a (L)");
  // Without it in the registry, the same scheme is unknown.
  assert.throws(
    () => parseRunArgs(["ws-1", "AUTH_LOG", "5", "1h", "-o", "mem://a"], env),
    /no destination takes mem:\/\/ URLs/,
  );
});

test("a destination's own option needs it, and its declared conflicts are refused", () => {
  assert.throws(
    () => parseRunArgs(["ws-1", "AUTH_LOG", "5", "1h", "--mem-label", "L"], env, new Date(), KINDS),
    /--mem-label needs -o \(memory\)/,
  );
  assert.throws(
    () =>
      parseRunArgs(
        ["ws-1", "AUTH_LOG", "5", "1h", "-o", "mem://a", "--follow", "--state", "s.json"],
        env,
        new Date(),
        KINDS,
      ),
    /-o mem:\/\/a cannot be used with --follow: memory forgets/,
  );
});

test("a destination's secrets are found by the environment variables it declares", () => {
  const secretEnv = { MEM_SECRET: "s3cr3t-value", OTHER: "not-a-secret" };
  assert.deepEqual(destinationSecrets(secretEnv, KINDS), ["s3cr3t-value"]);
  assert.deepEqual(destinationSecrets(secretEnv), []);
});

test("a whole run delivers to the new destination and moves the checkpoint past it", async () => {
  await withEmulator({ files: hourlyFiles(5, { eventType: "AUDIT_LOG" }) }, async (emulator) => {
    const dir = await mkdtemp(join(tmpdir(), "oai-registry-"));
    try {
      const state = join(dir, "state.json");
      const e = envFor(emulator);
      const argv = [
        PRINCIPAL,
        "AUDIT_LOG",
        "100",
        AFTER,
        "-o",
        "mem://run1",
        "--state",
        state,
        "-q",
      ];
      const settings = parseRunArgs(argv, e, new Date(), KINDS)!;
      await runSession(settings, e);
      const ids = idsOf(emulator, "AUDIT_LOG");
      assert.ok(ids.length > 0);
      assert.deepEqual(delivered.get("run1")?.map((f) => f.id), ids);
      for (const file of delivered.get("run1")!) {
        assert.deepEqual(file.bytes, await emulator.contentOf(file.id));
      }
      const saved = JSON.parse(await readFile(state, "utf8"));
      assert.ok(saved.cursors.AUDIT_LOG, "the checkpoint moved");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
