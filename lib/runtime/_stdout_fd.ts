/**
 * What stdout (file descriptor 1) is, asked of the OS through `node:fs` the same way under every
 * runtime: whether it is a pipe, and whether that pipe is in non-blocking mode.
 */
import { fstatSync, readFileSync } from "node:fs";

let stdoutPipe: boolean | undefined;

/** Whether stdout is a pipe (how a SIEM shipper usually reads us). Asked once. */
export function stdoutIsPipe(): boolean {
  try {
    stdoutPipe ??= fstatSync(1).isFIFO();
  } catch {
    stdoutPipe = false;
  }
  return stdoutPipe;
}

const O_NONBLOCK = 0o4000; // Linux, on x64 and arm64 alike.

/**
 * Whether stdout is a non-blocking pipe, from Linux's /proc; undefined when that cannot be told
 * (macOS). Asked anew each time: the mode belongs to the pipe's open file, which a parent may share.
 */
export function stdoutNonBlocking(): boolean | undefined {
  try {
    const flags = /^flags:\s*([0-7]+)\s*$/m.exec(readFileSync("/proc/self/fdinfo/1", "utf8"))?.[1];
    return flags === undefined ? undefined : (parseInt(flags, 8) & O_NONBLOCK) !== 0;
  } catch {
    return undefined;
  }
}
