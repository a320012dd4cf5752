/**
 * The Deno adapter: the `Deno` global as a typed interface, and the operations that differ under
 * Deno (stdout writes that may reopen a non-blocking pipe, `FsFile.tryLock`, SIGXFSZ,
 * `Deno.createHttpClient` for proxies).
 *
 * @example
 * ```ts
 * const platform = denoPlatform(globalThis.Deno);
 * ```
 */
import process from "node:process";
import { stdoutIsPipe, stdoutNonBlocking } from "./_stdout_fd.ts";
import { errorCode, errorName, type HeldLock, once, type Platform } from "./platform.ts";

/** A class of error the `Deno.errors` namespace holds. */
type ErrorClass = abstract new (...args: never[]) => Error;

export interface DenoWriter {
  write(chunk: Uint8Array): Promise<number>;
}

export interface DenoFile {
  tryLock(exclusive: boolean): Promise<boolean>;
  close(): void;
}

/** The parts of the `Deno` global this tool uses. */
export interface DenoLike {
  version: { deno: string };
  stdout: DenoWriter;
  stderr: { isTerminal(): boolean };
  errors: { WouldBlock: ErrorClass; BrokenPipe: ErrorClass; NotFound: ErrorClass };
  openSync(path: string, options: { write: boolean }): DenoWriter;
  open(
    path: string,
    options: { read?: boolean; write?: boolean; create?: boolean },
  ): Promise<DenoFile>;
  addSignalListener(signal: "SIGXFSZ", handler: () => void): void;
  createHttpClient(options: {
    proxy: { url: string; basicAuth?: { username: string; password: string } };
  }): unknown;
}

/**
 * The Deno platform over `deno` (the real global, or a stand-in in tests); `os` is
 * `process.platform`.
 */
export function denoPlatform(
  deno: DenoLike,
  os: string = process.platform,
  collector: unknown = (globalThis as { gc?: unknown }).gc,
): Platform {
  let out: DenoWriter | undefined;
  /**
   * Deno's stdout; when that is a non-blocking pipe, the same pipe opened again in blocking mode.
   * (Some parents leave a pipe non-blocking, e.g. a Node.js program that wrote to it before us.) On
   * a full non-blocking pipe, Deno's write throws WouldBlock after writing part of the bytes
   * without saying how many: no retry could then avoid losing or repeating bytes. Deno lets only
   * `--allow-all` read /proc/self, so `deno compile`'s narrower grants keep Deno's stdout.
   */
  const stdout = (): DenoWriter => {
    if (out) return out;
    out = deno.stdout;
    if (stdoutIsPipe() && stdoutNonBlocking()) {
      try {
        out = deno.openSync("/proc/self/fd/1", { write: true });
      } catch {
        // Left as it is: nothing better can be done.
      }
    }
    return out;
  };
  const clients = new Map<string, unknown>();

  return {
    name: `deno ${deno.version.deno}`,
    fullCollection: v8Collection(collector),
    async writeStdout(chunk) {
      const writer = stdout();
      let offset = 0;
      while (offset < chunk.length) offset += await writer.write(chunk.subarray(offset));
    },
    copyFileToStdout: () => Promise.resolve(undefined),
    stderrIsTerminal: () => deno.stderr.isTerminal(),
    ignoreFileSizeSignal() {
      // Deno's `node:process` listener does not stop the signal; `Deno.addSignalListener` does
      // (and does not keep the process alive). Windows has no such signal.
      if (os === "win32") return;
      try {
        deno.addSignalListener("SIGXFSZ", () => {});
      } catch {
        // Not supported here: the default action stays.
      }
    },
    async lock(path, create): Promise<HeldLock | undefined> {
      const options = create ? { read: true, write: true, create: true } : { read: true };
      const file = await deno.open(path, options);
      if (!(await file.tryLock(true))) {
        file.close();
        return undefined;
      }
      return once(() => file.close()); // Closing the file releases the lock.
    },
    isBrokenPipe: (error) =>
      errorCode(error) === "EPIPE" || errorName(error) === "BrokenPipe" ||
      error instanceof deno.errors.BrokenPipe,
    isUnwaitableFullPipe: (error) =>
      errorCode(error) === "EAGAIN" || errorName(error) === "WouldBlock" ||
      error instanceof deno.errors.WouldBlock,
    isNotFound: (error) => errorCode(error) === "ENOENT" || error instanceof deno.errors.NotFound,
    fetchInit(proxy) {
      // Deno decodes only the codings the request accepted: `accept-encoding: identity` suffices.
      if (proxy === undefined) return {};
      let client = clients.get(proxy.href);
      if (!client) {
        const basicAuth = proxy.username
          ? {
            username: decodeURIComponent(proxy.username),
            password: decodeURIComponent(proxy.password),
          }
          : undefined;
        const bare = new URL(proxy.href);
        bare.username = "";
        bare.password = "";
        client = deno.createHttpClient({ proxy: { url: bare.href, basicAuth } });
        clients.set(proxy.href, client);
      }
      return { client };
    },
  };
}

/**
 * V8's full collection, `globalThis.gc`, which exists only when V8 was started with
 * `--v8-flags=--expose-gc`: undefined without it. The flags the tool is run with do not include it
 * (full collections lowered Deno's peak by only ~4 MiB; its heap flags do the work, see
 * `DENO_V8_FLAGS` in scripts/compile.ts), but a user who adds it gets them as under Bun.
 *
 * @example
 * ```ts
 * v8Collection(undefined); // undefined
 * v8Collection(() => {}); // a function that calls it
 * ```
 */
export function v8Collection(collector: unknown): (() => void) | undefined {
  if (typeof collector !== "function") return undefined;
  return () => collector();
}
