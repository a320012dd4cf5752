/**
 * The runtime adapter: the only module that touches `Deno` or `Bun` globals. Everything else is
 * written against web APIs and the `node:` built-ins both runtimes implement.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from "node:fs";
import process from "node:process";
import { CliError, reason } from "./errors.ts";
import { type Env as ProxyEnv, proxyFor } from "./proxy.ts";

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
    // ENOSPC on a full disk, EFBIG past `ulimit -f`, EIO...: one line naming stdout.
    throw new CliError(
      "io",
      `cannot write to stdout: ${reason(error)}; the file being written was cut short and ` +
        `the checkpoint stays before it`,
      { cause: error },
    );
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

/**
 * Makes writing past the file size limit (`ulimit -f`) an EFBIG error instead of death by
 * SIGXFSZ, so the run can say which file it was and keep its checkpoint. Bun already ignores the
 * signal; Deno's `node:process` listener does not stop it, `Deno.addSignalListener` does (and
 * does not keep the process alive). Windows has no such signal.
 */
export function ignoreFileSizeSignal(): void {
  if (!deno || process.platform === "win32") return;
  try {
    deno.addSignalListener("SIGXFSZ", () => {});
  } catch {
    // Not supported here: the default action stays.
  }
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

/** An exclusive OS lock this process holds; the OS releases it when the process dies. */
export interface HeldLock {
  /** Releases the lock and closes the file (idempotent); the file itself stays. */
  release(): void;
}

/**
 * Creates (or opens) `path` and takes an exclusive OS lock on it without waiting, held until
 * `release()` or the end of the process. A lock, unlike a pid, proves that its owner is alive:
 * pids are reused and mean nothing across PID namespaces, hosts, or Wine. Resolves undefined when
 * this runtime or OS offers no lock, or another process holds it.
 *
 * Deno: `FsFile.tryLock` (flock on Unix, LockFileEx on Windows). Bun has no lock API: flock from
 * libc through bun:ffi on Linux and macOS; on Windows a kernel32 `CreateFileW` handle that shares
 * nothing, so every other open of the file fails while we live.
 *
 * @example
 * const lock = await holdExclusiveLock(join(spool, "lock"));
 * try { await work(); } finally { lock?.release(); }
 */
export async function holdExclusiveLock(path: string): Promise<HeldLock | undefined> {
  try {
    if (deno) return await denoLock(path, true);
    if (bun) return (await bunLock(path, true)) ?? undefined;
  } catch {
    // No lock to be had here; callers fall back to judging by age.
  }
  return undefined;
}

/**
 * Whether a live process holds an exclusive lock on `path` (taken with `holdExclusiveLock`):
 * true when held, false when free, undefined when it cannot tell (no such file, no lock mechanism).
 * A file that exists but cannot be opened counts as held: a Windows handle that shares nothing
 * refuses every other open, and a wrong "free" would delete a live run's files.
 *
 * @example
 * if (await isLockHeld(join(spool, "lock")) === false) await sweep(spool);
 */
export async function isLockHeld(path: string): Promise<boolean | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const lock = deno ? await denoLock(path, false) : bun ? await bunLock(path, false) : null;
    if (lock === null) return undefined;
    lock?.release();
    return lock === undefined;
  } catch (error) {
    if ((error as { code?: string })?.code === "ENOENT" || isDenoNotFound(error)) return undefined;
    return existsSync(path) ? true : undefined;
  }
}

function isDenoNotFound(error: unknown): boolean {
  return Boolean(deno && error instanceof deno.errors.NotFound);
}

/** Takes the lock (creating the file when `create`); undefined when another holder has it. */
async function denoLock(path: string, create: boolean): Promise<HeldLock | undefined> {
  const options = create ? { read: true, write: true, create: true } : { read: true };
  const file = await deno.open(path, options);
  if (!(await file.tryLock(true))) {
    file.close();
    return undefined;
  }
  return once(() => file.close()); // Closing the file releases the lock.
}

/**
 * Bun: undefined when another holder has the lock; null when this OS offers no lock to Bun.
 * Throws when the file cannot be opened.
 */
async function bunLock(path: string, create: boolean): Promise<HeldLock | undefined | null> {
  if (process.platform === "win32") return await windowsExclusiveOpen(path, create);
  const flock = await libcFlock();
  if (!flock) return null;
  const fd = openSync(path, create ? "a+" : "r", 0o600);
  const LOCK_EX = 2, LOCK_NB = 4;
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    return undefined;
  }
  return once(() => closeSync(fd)); // flock locks die with the last descriptor of the open file.
}

// bun:ffi named through a variable so that `deno check` does not try to resolve it.
const BUN_FFI = "bun:ffi";

let flockFn: ((fd: number, operation: number) => number) | null | undefined;

/** libc's flock(2), or null when it cannot be loaded (e.g. a libc of another name). */
async function libcFlock(): Promise<((fd: number, operation: number) => number) | null> {
  if (flockFn !== undefined) return flockFn;
  flockFn = null;
  const { dlopen } = await import(BUN_FFI);
  const names = process.platform === "darwin"
    ? ["/usr/lib/libSystem.B.dylib", "libSystem.B.dylib"]
    : ["libc.so.6", "libc.so"];
  for (const name of names) {
    try {
      const lib = dlopen(name, { flock: { args: ["i32", "i32"], returns: "i32" } });
      flockFn = (fd, operation) => lib.symbols.flock(fd, operation);
      break;
    } catch {
      // Try the next name.
    }
  }
  return flockFn;
}

// deno-lint-ignore no-explicit-any
let kernel32: any;

/**
 * Opens `path` with a share mode of 0 (FILE_SHARE_NONE): while the handle is open, every other
 * open of the file fails with a sharing violation, and Windows closes it when the process dies.
 * Undefined when the file is open elsewhere (that holder has the lock).
 */
async function windowsExclusiveOpen(path: string, create: boolean): Promise<HeldLock | undefined> {
  if (!kernel32) {
    const { dlopen } = await import(BUN_FFI);
    kernel32 = dlopen("kernel32.dll", {
      CreateFileW: { args: ["ptr", "u32", "u32", "ptr", "u32", "u32", "ptr"], returns: "i64" },
      CloseHandle: { args: ["i64"], returns: "i32" },
    }).symbols;
  }
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

function once(release: () => void): HeldLock {
  let done = false;
  return {
    release() {
      if (done) return;
      done = true;
      try {
        release();
      } catch {
        // Already closed: the lock is gone either way.
      }
    },
  };
}

// --- Undecoded response bodies (lib/http.ts) ---

/**
 * Extra `fetch` init under which a response body arrives exactly as sent, still Content-Encoded,
 * given that the request says `accept-encoding: identity`. `lib/http.ts` then decodes it itself,
 * so it can bound what a compressed body inflates to and verify a log file in either form.
 * Deno decodes only the codings the request accepted, so the header alone is enough; Bun
 * decodes whatever arrives unless told `decompress: false`.
 *
 * @example
 * await fetch(url, { ...undecodedFetchInit(), headers: { "accept-encoding": "identity" } });
 */
export function undecodedFetchInit(): Record<string, unknown> {
  return bun ? { decompress: false } : {};
}

// --- Proxies (lib/proxy.ts decides; the runtime is told per request) ---

/** Every variable either runtime reads for proxies, taken over by lib/proxy.ts. */
const PROXY_VARS = [
  "https_proxy",
  "HTTPS_PROXY",
  "http_proxy",
  "HTTP_PROXY",
  "all_proxy",
  "ALL_PROXY",
  "no_proxy",
  "NO_PROXY",
];

let proxyEnv: ProxyEnv | undefined;

/**
 * The proxy variables, read once and then removed from this process's environment, before the
 * first request: both runtimes read them (lazily, at the first `fetch`), and each applies its own
 * NO_PROXY rules. With them gone a request goes direct unless it is given a proxy.
 */
function takeProxyEnv(): ProxyEnv {
  if (proxyEnv) return proxyEnv;
  proxyEnv = {};
  for (const name of PROXY_VARS) {
    proxyEnv[name] = process.env[name];
    try {
      delete process.env[name];
    } catch {
      // No permission to change the environment: the runtime's own rules may then add to ours.
    }
  }
  return proxyEnv;
}

// deno-lint-ignore no-explicit-any
const denoClients = new Map<string, any>();

/**
 * Extra `fetch` init that sends `url` through the proxy lib/proxy.ts picks for it, or direct.
 * Deno: a `Deno.createHttpClient` per proxy; Bun: `fetch`'s `proxy` option. Credentials stay in
 * the proxy URL and are never printed (the error names only the variables).
 *
 * @example
 * await fetch(url, { ...proxyFetchInit(url), headers });
 */
export function proxyFetchInit(url: URL): Record<string, unknown> {
  const chosen = proxyFor(url, takeProxyEnv());
  if (chosen === undefined) return {};
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(chosen) ? chosen : `http://${chosen}`);
  } catch {
    proxy = new URL("invalid:");
  }
  if (proxy.protocol !== "http:" && proxy.protocol !== "https:") {
    throw new CliError(
      "usage",
      "the proxy set in HTTPS_PROXY, HTTP_PROXY or ALL_PROXY is not an http:// or https:// URL",
    );
  }
  if (!deno) return { proxy: proxy.href };
  let client = denoClients.get(proxy.href);
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
    denoClients.set(proxy.href, client);
  }
  return { client };
}
