/**
 * Test helper, run as its own process: takes the exclusive lock of lib/runtime.ts on the file
 * named by its argument, prints `held` (or `none`), and keeps it until killed. Lets tests prove
 * that a lock of a live process, whatever its pid, is never taken for abandoned.
 *
 * @example
 * const child = spawn(process.execPath, [HOLD_LOCK_SCRIPT, join(spool, "lock")]);
 */
import process from "node:process";
import { holdExclusiveLock } from "../../lib/runtime.ts";

const lock = await holdExclusiveLock(process.argv[2]);
process.stdout.write(lock ? "held\n" : "none\n");
setInterval(() => {}, 60_000);
