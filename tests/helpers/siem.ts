/**
 * What the SIEM tests (HEC, Elasticsearch, syslog, an archive with a SIEM) share: the records a
 * served file must arrive as, a SIEM emulator started beside the API emulator for one test, a run
 * into `-o TARGET`, and the kill -9 test's two halves (a run killed mid-delivery, and the files
 * its checkpoint had passed by then).
 *
 * @example
 * ```ts
 * import { startHecEmulator } from "../siem/hec_emulator.ts";
 * import { hourlyFiles, idsOf } from "./fixtures.ts";
 * await withSiem(hourlyFiles(3), () => startHecEmulator({ tokens: { t: {} } }), async (hec, emulator) => {
 *   const r = await runInto(emulator, hec.target, [], { SPLUNK_HEC_TOKEN: "t" });
 *   console.log(r.code, (await recordsOf(emulator, idsOf(emulator))).length, hec.events.length);
 * });
 * ```
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Emulator, FileSpec } from "../emulator/mod.ts";
import { type CliResult, runCli } from "./cli.ts";
import { AFTER, envFor, PRINCIPAL, withEmulator } from "./fixtures.ts";

const decoder = new TextDecoder();

/**
 * The records the emulator serves for `ids`, in order: every line that is not blank, without its
 * line ending (`\n` or `\r\n`). What a SIEM must receive, one event per record.
 */
export async function recordsOf(emulator: Emulator, ids: string[]): Promise<string[]> {
  const records: string[] = [];
  for (const id of ids) {
    for (const line of decoder.decode(await emulator.contentOf(id)).split("\n")) {
      const record = line.replace(/\r$/, "");
      if (record.trim() !== "") records.push(record);
    }
  }
  return records;
}

/** The `event_id` of every record the emulator serves for `ids`, in order (each record JSON). */
export async function eventIdsOf(emulator: Emulator, ids: string[]): Promise<string[]> {
  return (await recordsOf(emulator, ids)).map((record) => JSON.parse(record).event_id as string);
}

/** The `error:` line of a run's stderr (all of stderr, marked, when there is none). */
export function errorLine(stderr: string): string {
  return stderr.split("\n").find((l) => l.startsWith("error:")) ?? `(no error line) ${stderr}`;
}

/** Serves `files` from the API emulator, starts a SIEM emulator, runs `fn`, and closes both. */
export async function withSiem<S extends { close(): Promise<void> }, T>(
  files: FileSpec[],
  start: () => Promise<S>,
  fn: (siem: S, emulator: Emulator) => Promise<T>,
): Promise<T> {
  return await withEmulator({ files }, async (emulator) => {
    const siem = await start();
    try {
      return await fn(siem, emulator);
    } finally {
      await siem.close();
    }
  });
}

/**
 * A run of AUTH_LOG into `-o target` (`extra` arguments after it), with `env` (the SIEM's
 * credentials; a variable set to undefined is left unset) and SIEM retries 10 ms apart.
 */
export function runInto(
  emulator: Emulator,
  target: string,
  extra: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<CliResult> {
  return runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", target, ...extra], {
    env: { ...envFor(emulator), OAI_COMPLIANCE_SIEM_BACKOFF_MS: "10", ...env },
    timeoutMs: 90_000,
  });
}

/**
 * The arguments of a kill -9 test's runs: AUTH_LOG into `-o target`, 5 files a page, with the
 * checkpoint `state` (the killed run and its re-run share it), then `extra`.
 */
export function checkpointedArgs(target: string, state: string, extra: string[] = []): string[] {
  return [PRINCIPAL, "AUTH_LOG", "5", AFTER, "-o", target, "--state", state, ...extra];
}

/**
 * Runs the CLI and kills it with SIGKILL as soon as `due()` holds (asked every 5 ms); fails
 * unless the run was indeed killed (it must not have finished first).
 */
export async function runKilledWhen(
  args: string[],
  env: Record<string, string>,
  due: () => boolean,
): Promise<CliResult> {
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    const killed = await runCli(args, {
      env,
      onSpawn: (child) => {
        timer = setInterval(() => {
          if (due()) child.kill("SIGKILL");
        }, 5);
      },
    });
    assert.equal(killed.signal, "SIGKILL", `the run was killed mid-delivery: ${killed.stderr}`);
    return killed;
  } finally {
    clearInterval(timer);
  }
}

/** The AUTH_LOG cursor of a checkpoint file, if it has one. */
export interface Cursor {
  after: string;
  seen: string[];
}

/**
 * Which of `ids` the checkpoint at `state` has passed (ended before its cursor, or seen at it),
 * and the cursor itself (undefined when the killed run never wrote one: nothing passed).
 */
export async function passedFiles(
  emulator: Emulator,
  state: string,
  ids: string[],
): Promise<{ passed: string[]; cursor?: Cursor }> {
  return passedBy(emulator, await readFile(state, "utf8").catch(() => "{}"), ids);
}

/** `passedFiles`, read at once (for a kill condition polled while the run goes on). */
export function passedFilesNow(
  emulator: Emulator,
  state: string,
  ids: string[],
): { passed: string[]; cursor?: Cursor } {
  try {
    return passedBy(emulator, readFileSync(state, "utf8"), ids);
  } catch {
    return { passed: [] }; // Not written yet.
  }
}

function passedBy(
  emulator: Emulator,
  text: string,
  ids: string[],
): { passed: string[]; cursor?: Cursor } {
  const cursor: Cursor | undefined = JSON.parse(text).cursors?.AUTH_LOG;
  const passed = ids.filter((id) => {
    if (!cursor) return false;
    const end = Date.parse(emulator.files.find((f) => f.id === id)!.endTime);
    return end < Date.parse(cursor.after) || cursor.seen.includes(id);
  });
  return { passed, cursor };
}
