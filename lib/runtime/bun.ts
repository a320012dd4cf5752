/**
 * The Bun adapter: the `Bun` global as a typed interface, and the operations that differ under
 * Bun (`Bun.write` to stdout and its in-kernel file copy, locks through `bun:ffi`, `fetch`'s
 * `decompress` and `proxy` options).
 *
 * @example
 * ```ts
 * const bun = (globalThis as { Bun?: BunLike }).Bun; // undefined under other runtimes
 * const platform = bun && bunPlatform(bun);
 * ```
 */
import { closeSync, existsSync, openSync } from "node:fs";
import process from "node:process";
import { stdoutIsPipe, stdoutNonBlocking } from "./_stdout_fd.ts";
import { errorCode, errorName, type HeldLock, once, type Platform } from "./platform.ts";

/** The parts of the `Bun` global this tool uses. */
export interface BunLike {
  version: string;
  /** Bun's stdout, a `BunFile`. */
  stdout: unknown;
  /** Resolves with the bytes written. */
  write(destination: unknown, input: Uint8Array | unknown): Promise<number>;
  file(path: string): unknown;
  /** A garbage collection; synchronous (and full) when `synchronous`. */
  gc(synchronous: boolean): void;
}

/** A foreign function as `bun:ffi`'s `dlopen` declares it. */
interface FfiDeclaration {
  args: string[];
  returns: string;
}

/** `bun:ffi`'s `dlopen`, typed as far as this tool uses it. */
export type Dlopen = (
  name: string,
  symbols: Record<string, FfiDeclaration>,
) => { symbols: Record<string, (...args: unknown[]) => unknown> };

// bun:ffi named through a variable so that `deno check` does not try to resolve it; `bun build
// --compile` still bundles it (the binary's lock tests prove it).
const BUN_FFI = "bun:ffi";

/** Loads `bun:ffi` (replaced by a stand-in in tests). */
export async function loadFfi(): Promise<{ dlopen: Dlopen }> {
  return await import(BUN_FFI);
}

export interface BunPlatformOptions {
  /** `process.platform`. */
  os?: string;
  /** Where `dlopen` comes from. */
  ffi?: () => Promise<{ dlopen: Dlopen }>;
  /** Whether stdout is a pipe, and whether it is non-blocking (see `_stdout_fd.ts`). */
  stdoutIsPipe?: () => boolean;
  stdoutNonBlocking?: () => boolean | undefined;
}

/** The Bun platform over `bun` (the real global, or a stand-in in tests). */
export function bunPlatform(bun: BunLike, options: BunPlatformOptions = {}): Platform {
  const os = options.os ?? process.platform;
  const ffi = options.ffi ?? loadFfi;
  const isPipe = options.stdoutIsPipe ?? stdoutIsPipe;
  const nonBlocking = options.stdoutNonBlocking ?? stdoutNonBlocking;
  const locks = new BunLocks(os, ffi);

  return {
    name: `bun ${bun.version}`,
    fullCollection: () => bun.gc(true),
    async writeStdout(chunk) {
      await bun.write(bun.stdout, chunk);
    },
    /**
     * Into a pipe, sendfile/splice is ~3x faster than reading and writing 1 MiB at a time. Only on
     * Linux, only into a blocking pipe: Bun 1.4.5 copies to a regular file with copy_file_range,
     * which fails on an `>>` (O_APPEND) stdout; on a non-blocking pipe it gives up with EAGAIN
     * once the pipe is full, halfway through; and it ignores `Bun.file(path).slice()` here, so
     * the file must hold exactly the bytes to deliver.
     */
    async copyFileToStdout(path) {
      if (os !== "linux" || !isPipe() || nonBlocking() !== false) return undefined;
      return await bun.write(bun.stdout, bun.file(path));
    },
    stderrIsTerminal: () => Boolean(process.stderr.isTTY),
    ignoreFileSizeSignal() {
      // Bun already ignores SIGXFSZ.
    },
    lock: (path, create) => locks.take(path, create),
    isBrokenPipe: (error) => errorCode(error) === "EPIPE" || errorName(error) === "BrokenPipe",
    // Bun waits on a full pipe itself.
    isUnwaitableFullPipe: () => false,
    isNotFound: (error) => errorCode(error) === "ENOENT",
    // Bun decodes whatever arrives unless told `decompress: false`.
    fetchInit: (proxy) => proxy ? { decompress: false, proxy: proxy.href } : { decompress: false },
  };
}

type Flock = (fd: number, operation: number) => number;

/**
 * Bun has no lock API: flock from libc through bun:ffi on Linux and macOS; on Windows a kernel32
 * `CreateFileW` handle that shares nothing, so every other open of the file fails while we live.
 */
class BunLocks {
  #flock: Flock | null | undefined;
  #kernel32: Record<string, (...args: unknown[]) => unknown> | undefined;

  constructor(
    private readonly os: string,
    private readonly ffi: () => Promise<{ dlopen: Dlopen }>,
  ) {}

  /** Undefined when another holder has the lock; null when this OS offers no lock to Bun. */
  async take(path: string, create: boolean): Promise<HeldLock | undefined | null> {
    if (this.os === "win32") return await this.windowsExclusiveOpen(path, create);
    const flock = await this.libcFlock();
    if (!flock) return null;
    const fd = openSync(path, create ? "a+" : "r", 0o600);
    const LOCK_EX = 2, LOCK_NB = 4;
    if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      closeSync(fd);
      return undefined;
    }
    return once(() => closeSync(fd)); // flock locks die with the last descriptor of the open file.
  }

  /** libc's flock(2), or null when it cannot be loaded (e.g. a libc of another name). */
  private async libcFlock(): Promise<Flock | null> {
    if (this.#flock !== undefined) return this.#flock;
    this.#flock = null;
    const { dlopen } = await this.ffi();
    const names = this.os === "darwin"
      ? ["/usr/lib/libSystem.B.dylib", "libSystem.B.dylib"]
      : ["libc.so.6", "libc.so"];
    for (const name of names) {
      try {
        const lib = dlopen(name, { flock: { args: ["i32", "i32"], returns: "i32" } });
        this.#flock = (fd, operation) => Number(lib.symbols.flock(fd, operation));
        break;
      } catch {
        // Try the next name.
      }
    }
    return this.#flock;
  }

  /**
   * Opens `path` with a share mode of 0 (FILE_SHARE_NONE): while the handle is open, every other
   * open of the file fails with a sharing violation, and Windows closes it when the process dies.
   * Undefined when the file is open elsewhere (that holder has the lock).
   */
  private async windowsExclusiveOpen(path: string, create: boolean) {
    if (!this.#kernel32) {
      const { dlopen } = await this.ffi();
      this.#kernel32 = dlopen("kernel32.dll", {
        CreateFileW: { args: ["ptr", "u32", "u32", "ptr", "u32", "u32", "ptr"], returns: "i64" },
        CloseHandle: { args: ["i64"], returns: "i32" },
      }).symbols;
    }
    const kernel32 = this.#kernel32;
    const GENERIC_READ = 0x80000000, GENERIC_WRITE = 0x40000000;
    const OPEN_ALWAYS = 4, OPEN_EXISTING = 3, FILE_ATTRIBUTE_NORMAL = 0x80;
    const wide = new Uint16Array(path.length + 1);
    for (let i = 0; i < path.length; i++) wide[i] = path.charCodeAt(i);
    const handle = kernel32.CreateFileW(
      wide,
      (GENERIC_READ | GENERIC_WRITE) >>> 0,
      0,
      null,
      create ? OPEN_ALWAYS : OPEN_EXISTING,
      FILE_ATTRIBUTE_NORMAL,
      null,
    );
    if (Number(handle) === -1) {
      if (!existsSync(path)) {
        throw Object.assign(new Error(`cannot open ${path}`), { code: "ENOENT" });
      }
      return undefined;
    }
    return once(() => kernel32.CloseHandle(handle));
  }
}
