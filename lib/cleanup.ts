/**
 * What clean-up of leftovers may touch, shared by the temps beside outputs (lib/atomic.ts) and the
 * spool directories (lib/destinations/spool_dir.ts). The tool often runs as root beside other
 * users, so a leftover is removed only when it is ours (our uid), looked at with lstat (never
 * through a link), and deleted name by name (unlink and rmdir never follow a link). Both prove
 * their owner gone by an OS lock it held (released by the OS when the process dies, however it
 * dies); where no lock can tell, temps fall back to pid and age, spools to age.
 *
 * @example
 * ```ts
 * import { unlink } from "node:fs/promises";
 * const path = "out/.state.json.123.part";
 * const info = await lstatOrUndefined(path);
 * if (info?.isFile() && ownedByUs(info)) await ignoreMissing(unlink(path));
 * ```
 */
import { lstat } from "node:fs/promises";
import type { Stats } from "node:fs";
import process from "node:process";
import { codeOf } from "./errors.ts";

const WINDOWS = process.platform === "win32";

/**
 * Our uid; undefined where there are none (Windows) or we may not ask (Deno without sys uid).
 *
 * @example
 * ```ts
 * currentUid(); // 0 when run as root
 * ```
 */
export function currentUid(): number | undefined {
  try {
    return typeof process.getuid === "function" ? process.getuid() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `info` belongs to our uid: true where there are no uids (Windows), false when our uid
 * cannot be told (never delete what may not be ours).
 *
 * @example
 * ```ts
 * import { lstat, unlink } from "node:fs/promises";
 * const path = "out/.state.json.123.part";
 * if (ownedByUs(await lstat(path))) await unlink(path);
 * ```
 */
export function ownedByUs(info: { uid: number }): boolean {
  if (typeof process.getuid !== "function") return true;
  const uid = currentUid();
  return uid !== undefined && info.uid === uid;
}

/**
 * lstat, or undefined when the path is gone or cannot be looked at.
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * const info = await lstatOrUndefined(join("spool", "lock")); // undefined when there is none
 * ```
 */
export async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch {
    return undefined;
  }
}

/**
 * Awaits `operation`, taking "already gone" (ENOENT) for done.
 *
 * @example
 * ```ts
 * import { unlink } from "node:fs/promises";
 * await ignoreMissing(unlink("out/.state.json.123.part"));
 * ```
 */
export async function ignoreMissing(operation: Promise<void>): Promise<void> {
  try {
    await operation;
  } catch (error) {
    if (codeOf(error) !== "ENOENT") throw error;
  }
}

/** The codes Windows answers while another process (an antivirus, a sweeper) holds a file open. */
const BUSY = ["EBUSY", "EPERM", "EACCES", "ENOTEMPTY"];

/**
 * Runs `operation`, retried briefly on Windows while another process's open handle blocks it
 * (elsewhere those codes are final and thrown at once).
 *
 * @example
 * ```ts
 * import { rename } from "node:fs/promises";
 * await retryWhileBusy(() => rename("out/.state.json.123.part", "out/state.json"));
 * ```
 */
export async function retryWhileBusy(operation: () => Promise<void>): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!WINDOWS || !BUSY.includes(codeOf(error) ?? "") || attempt >= 10) throw error;
      await new Promise((done) => setTimeout(done, 20 * (attempt + 1)));
    }
  }
}
