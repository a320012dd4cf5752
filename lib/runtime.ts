/**
 * The runtime adapter: the only module that touches `Deno` or `Bun` globals. Everything else is
 * written against web APIs and the `node:` built-ins both runtimes implement.
 */
import { fstatSync, readFileSync } from "node:fs";
import process from "node:process";
import { CliError } from "./errors.ts";

// deno-lint-ignore no-explicit-any
const deno = (globalThis as any).Deno;
// deno-lint-ignore no-explicit-any
const bun = (globalThis as any).Bun;

/** Raised when stdout's reader has gone away (e.g. `| head`): the run ends quietly with exit 0. */
export class BrokenPipeError extends Error {
  constructor() {
    super("stdout closed by its reader");
    this.name = "BrokenPipeError";
  }
}

function isWouldBlock(error: unknown): boolean {
  // deno-lint-ignore no-explicit-any
  const e = error as any;
  return e?.code === "EAGAIN" || e?.name === "WouldBlock" ||
    (deno && e instanceof deno.errors.WouldBlock);
}

function isBrokenPipe(error: unknown): boolean {
  // deno-lint-ignore no-explicit-any
  const e = error as any;
  return e?.code === "EPIPE" || e?.name === "BrokenPipe" ||
    (deno && e instanceof deno.errors.BrokenPipe);
}

/** Writes all of `chunk` to stdout, resolving once the OS has taken it. */
export async function writeStdout(chunk: Uint8Array): Promise<void> {
  try {
    if (deno) {
      const out = denoStdout();
      let offset = 0;
      while (offset < chunk.length) offset += await out.write(chunk.subarray(offset));
    } else if (bun) {
      await bun.write(bun.stdout, chunk);
    } else {
      await new Promise<void>((resolve, reject) =>
        process.stdout.write(chunk, (e) => e ? reject(e) : resolve())
      );
    }
  } catch (error) {
    if (isBrokenPipe(error)) throw new BrokenPipeError();
    if (deno && isWouldBlock(error)) {
      // Only when denoStdout() could not reopen the pipe (no access to /proc/self).
      throw new CliError(
        "io",
        "stdout is a non-blocking pipe that is full, and Deno cannot wait on one: the file being " +
          "written was cut short and the checkpoint stays before it; give the tool a blocking " +
          "pipe, or run it with --allow-all (or use the released binary)",
        { cause: error },
      );
    }
    throw error;
  }
}

let stdoutPipe: boolean | undefined;

/** Whether stdout is a pipe (how a SIEM shipper usually reads us). */
function stdoutIsPipe(): boolean {
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
function stdoutNonBlocking(): boolean | undefined {
  try {
    const flags = /^flags:\s*([0-7]+)\s*$/m.exec(readFileSync("/proc/self/fdinfo/1", "utf8"))?.[1];
    return flags === undefined ? undefined : (parseInt(flags, 8) & O_NONBLOCK) !== 0;
  } catch {
    return undefined;
  }
}

// deno-lint-ignore no-explicit-any
let denoOut: any;

/**
 * Deno's stdout; when that is a non-blocking pipe, the same pipe opened again in blocking mode.
 * (Some parents leave a pipe non-blocking, e.g. a Node.js program that wrote to it before us.) On a
 * full non-blocking pipe, Deno's write throws WouldBlock after writing part of the bytes without
 * saying how many: no retry could then avoid losing or repeating bytes. Deno lets only
 * `--allow-all` read /proc/self, so `deno compile`'s narrower grants keep Deno's stdout.
 */
// deno-lint-ignore no-explicit-any
function denoStdout(): any {
  if (denoOut) return denoOut;
  denoOut = deno.stdout;
  if (stdoutIsPipe() && stdoutNonBlocking()) {
    try {
      denoOut = deno.openSync("/proc/self/fd/1", { write: true });
    } catch {
      // Left as it is: nothing better can be done.
    }
  }
  return denoOut;
}

/**
 * Copies the whole file at `path` (`length` bytes, checked by the caller) to stdout inside the
 * kernel (sendfile/splice), when stdout is a pipe and the runtime can: into a pipe that is ~3x
 * faster than reading and writing 1 MiB at a time. Resolves false, having written nothing, when
 * it does not apply; the caller copies the bytes itself then.
 *
 * Only under Bun on Linux, only into a blocking pipe. Bun 1.4.5 copies to a regular file with
 * copy_file_range, which fails on an `>>` (O_APPEND) stdout; on a non-blocking pipe it gives up
 * with EAGAIN once the pipe is full, halfway through; and it ignores `Bun.file(path).slice()`
 * here, so the file must hold exactly the bytes to deliver.
 */
export async function copyFileToStdout(path: string, length: number): Promise<boolean> {
  if (!bun || process.platform !== "linux" || !stdoutIsPipe() || stdoutNonBlocking() !== false) {
    return false;
  }
  let copied: number;
  try {
    copied = await bun.write(bun.stdout, bun.file(path));
  } catch (error) {
    if (isBrokenPipe(error)) throw new BrokenPipeError();
    throw error;
  }
  if (copied !== length) throw new Error(`copied ${copied} bytes to stdout instead of ${length}`);
  return true;
}

/** Writes a line to stderr; a closed stderr is ignored (progress is best effort). */
export function writeStderr(text: string): void {
  try {
    process.stderr.write(text);
  } catch {
    // Nobody is reading progress; the data on stdout or disk is what matters.
  }
}

/** Whether stderr is an interactive terminal (for the live progress line). */
export function stderrIsTerminal(): boolean {
  if (deno) return deno.stderr.isTerminal();
  return Boolean(process.stderr.isTTY);
}

export type StopSignal = "SIGINT" | "SIGTERM";

/**
 * Calls `handler` on SIGINT or SIGTERM; returns a function that removes the listeners. Signals the
 * OS cannot deliver (SIGTERM on Windows under Deno) are skipped rather than fatal.
 */
export function onStopSignal(handler: (signal: StopSignal) => void): () => void {
  const removers: Array<() => void> = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const listener = () => handler(signal);
    try {
      process.on(signal, listener);
      removers.push(() => process.off(signal, listener));
    } catch {
      // Not supported on this OS/runtime.
    }
  }
  return () => removers.forEach((remove) => remove());
}

/** Ends the process once stdout and stderr have drained. */
export function exit(code: number): never {
  process.exit(code);
}

/** Which runtime runs us, for `--version`. */
export function runtimeName(): string {
  if (deno) return `deno ${deno.version.deno}`;
  if (bun) return `bun ${bun.version}`;
  return `node ${process.versions.node}`;
}
