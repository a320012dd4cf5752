/**
 * What the checkpoint's unit tests share: a temp directory, a lock file's text, a valid state,
 * and the assertion that a promise is refused with one line of kind "state".
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import process from "node:process";
import { withDir as withTempDir } from "../helpers/mod.ts";
import type { StateData } from "../../lib/checkpoint/format.ts";
import { CliError } from "../../lib/errors.ts";

export const POSIX = process.platform !== "win32";

/** Runs `fn` in a fresh temp directory, removed afterwards. */
export const withDir = (fn: (dir: string) => Promise<void>) => withTempDir("oai-checkpoint-", fn);

/** The text of a lock file as a run with `pid` on `host` writes it. */
export function lockText(
  pid: number,
  host = hostname(),
  startedAt = new Date().toISOString(),
): string {
  return JSON.stringify({ pid, hostname: host, startedAt }) + "\n";
}

/** Asserts `promise` rejects with a one-line CliError of kind "state" whose message matches. */
export async function refused(promise: Promise<unknown>, ...patterns: (RegExp | string)[]) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof CliError, String(error));
    assert.equal(error.kind, "state");
    assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
    for (const p of patterns) {
      if (typeof p === "string") assert.ok(error.message.includes(p), error.message);
      else assert.match(error.message, p);
    }
    return true;
  });
}

/** A version 1 state file's contents, as earlier versions wrote it. */
export interface V1State {
  version: 1;
  principal: string;
  eventTypes: string[];
  cursors: StateData["cursors"];
}

/** A valid version 1 state of principal ws-1 tracking AUTH_LOG, with one delivered id. */
export const state = (overrides: Partial<V1State> = {}): V1State => ({
  version: 1,
  principal: "ws-1",
  eventTypes: ["AUTH_LOG"],
  cursors: {
    AUTH_LOG: { after: "2026-01-01T00:00:00Z", seen: ["f1"], updatedAt: "2026-01-02T03:04:05Z" },
  },
  ...overrides,
});

/** The same state as version 2 writes it (no gone or skipped files unless overridden). */
export const stateV2 = (overrides: Partial<StateData> = {}): StateData => ({
  ...state(),
  version: 2,
  gone: {},
  skipped: {},
  ...overrides,
});
