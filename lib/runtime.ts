/**
 * The only door to the runtime: picks the adapter for the runtime that runs us once (`Deno`, else
 * `Bun`, else Node.js; see `lib/runtime/`), and offers what the rest of the tool needs on top of
 * it: stdout writes (a kernel copy into pipes where possible), stderr, signals, exit, file locks,
 * and the `fetch` init for undecoded bodies and proxies. Everything else is written against web
 * APIs and the `node:` built-ins both runtimes implement.
 */
import { existsSync } from "node:fs";
import process from "node:process";
import { BrokenPipeError, CliError, reason, type StopSignal } from "./errors.ts";
import { type Env as ProxyEnv, proxyFor } from "./proxy.ts";
import { type BunLike, bunPlatform } from "./runtime/bun.ts";
import { type DenoLike, denoPlatform } from "./runtime/deno.ts";
import { nodePlatform } from "./runtime/node.ts";
import type { HeldLock, Platform } from "./runtime/platform.ts";

export type { HeldLock, StopSignal };

/** The runtime globals, as far as they are looked at: each absent under the other runtimes. */
export interface RuntimeGlobals {
  Deno?: DenoLike;
  Bun?: BunLike;
}

/**
 * The adapter for whichever runtime `globals` belong to.
 *
 * @example
 * ```ts
 * import type { DenoLike } from "./runtime/deno.ts";
 * declare const deno: DenoLike; // its version.deno is "2.1.0"
 * platformFor({ Deno: deno }).name; // "deno 2.1.0"
 * ```
 */
export function platformFor(globals: RuntimeGlobals): Platform {
  if (globals.Deno) return denoPlatform(globals.Deno);
  if (globals.Bun) return bunPlatform(globals.Bun);
  return nodePlatform();
}

const platform = platformFor(globalThis as RuntimeGlobals);

/**
 * The error a failed stdout write becomes: `BrokenPipeError` when the reader went away, else one
 * `io` line naming stdout (ENOSPC on a full disk, EFBIG past `ulimit -f`, EIO...).
 *
 * @example
 * ```ts
 * import type { Platform } from "./runtime/platform.ts";
 * declare const platform: Platform;
 * try {
 *   await platform.writeStdout(new TextEncoder().encode("{}\n"));
 * } catch (error) {
 *   throw stdoutError(error, platform);
 * }
 * ```
 */
export function stdoutError(error: unknown, on: Platform = platform): Error {
  if (on.isBrokenPipe(error)) return new BrokenPipeError();
  if (on.isUnwaitableFullPipe(error)) {
    return new CliError(
      "io",
      "stdout is a non-blocking pipe that is full, and Deno cannot wait on one: the file being " +
        "written was cut short and the checkpoint stays before it; give the tool a blocking " +
        "pipe, or run it with --allow-all (or use the released binary)",
      { cause: error },
    );
  }
  return new CliError(
    "io",
    `cannot write to stdout: ${reason(error)}; the file being written was cut short and ` +
      `the checkpoint stays before it`,
    { cause: error },
  );
}

/** Writes all of `chunk` to stdout, resolving once the OS has taken it. */
export async function writeStdout(chunk: Uint8Array): Promise<void> {
  try {
    await platform.writeStdout(chunk);
  } catch (error) {
    throw stdoutError(error);
  }
}

/**
 * Copies the whole file at `path` (`length` bytes, checked by the caller) to stdout inside the
 * kernel (sendfile/splice), when stdout is a pipe and the runtime can (Bun on Linux, into a
 * blocking pipe). Resolves false, having written nothing, when it does not apply; the caller
 * copies the bytes itself then.
 */
export async function copyFileToStdout(path: string, length: number): Promise<boolean> {
  let copied: number | undefined;
  try {
    copied = await platform.copyFileToStdout(path);
  } catch (error) {
    if (platform.isBrokenPipe(error)) throw new BrokenPipeError();
    throw error;
  }
  if (copied === undefined) return false;
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
  return platform.stderrIsTerminal();
}

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
 * SIGXFSZ, so the run can say which file it was and keep its checkpoint.
 */
export function ignoreFileSizeSignal(): void {
  platform.ignoreFileSizeSignal();
}

/** Ends the process once stdout and stderr have drained. */
export function exit(code: number): never {
  process.exit(code);
}

/**
 * A full garbage collection now, where the runtime offers one (Bun); undefined elsewhere. For a
 * hot loop whose garbage the runtime's own collections let pile up (see `GarbageWatch`).
 */
export function fullCollection(): (() => void) | undefined {
  return platform.fullCollection;
}

/** Which runtime runs us, for `--version`. */
export function runtimeName(): string {
  return platform.name;
}

/**
 * Creates (or opens) `path` and takes an exclusive OS lock on it without waiting, held until
 * `release()` or the end of the process. A lock, unlike a pid, proves that its owner is alive:
 * pids are reused and mean nothing across PID namespaces, hosts, or Wine. Resolves undefined when
 * this runtime or OS offers no lock, or another process holds it.
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * declare function work(): Promise<void>;
 * const spool = "out/.oai-spool";
 * const lock = await holdExclusiveLock(join(spool, "lock"));
 * try { await work(); } finally { lock?.release(); }
 * ```
 */
export async function holdExclusiveLock(
  path: string,
  on: Platform = platform,
): Promise<HeldLock | undefined> {
  try {
    return (await on.lock(path, true)) ?? undefined;
  } catch {
    // No lock to be had here; callers fall back to judging by age.
    return undefined;
  }
}

/**
 * Whether a live process holds an exclusive lock on `path` (taken with `holdExclusiveLock`):
 * true when held, false when free, undefined when it cannot tell (no such file, no lock mechanism).
 * A file that exists but cannot be opened counts as held: a Windows handle that shares nothing
 * refuses every other open, and a wrong "free" would delete a live run's files.
 *
 * @example
 * ```ts
 * import { join } from "node:path";
 * declare function sweep(dir: string): Promise<void>;
 * const spool = "out/.oai-spool";
 * if (await isLockHeld(join(spool, "lock")) === false) await sweep(spool);
 * ```
 */
export async function isLockHeld(
  path: string,
  on: Platform = platform,
): Promise<boolean | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const lock = await on.lock(path, false);
    if (lock === null) return undefined;
    lock?.release();
    return lock === undefined;
  } catch (error) {
    if (on.isNotFound(error)) return undefined;
    return existsSync(path) ? true : undefined;
  }
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

/**
 * The proxy lib/proxy.ts picks for `url`, as a URL, or undefined to go direct. A proxy that is not
 * http(s) is a usage error naming only the variables (credentials stay in the URL, never printed).
 *
 * @example
 * ```ts
 * const proxy = proxyUrl(new URL("https://api.openai.com/"), { HTTPS_PROXY: "proxy:3128" });
 * proxy?.href; // "http://proxy:3128/"
 * ```
 */
export function proxyUrl(url: URL, env: ProxyEnv): URL | undefined {
  const chosen = proxyFor(url, env);
  if (chosen === undefined) return undefined;
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
  return proxy;
}

/**
 * Extra `fetch` init for a request to `url`: the body arrives exactly as sent, still
 * Content-Encoded, given that the request says `accept-encoding: identity` (`lib/http.ts` then
 * decodes it itself, so it can bound what a compressed body inflates to and verify a log file in
 * either form); and the request goes through the proxy lib/proxy.ts picks for it, or direct.
 *
 * @example
 * ```ts
 * const url = new URL("https://api.chatgpt.com/v1/compliance/workspaces/ws-1/logs");
 * await fetch(url, { ...fetchInit(url), headers: { "accept-encoding": "identity" } });
 * ```
 */
export function fetchInit(url: URL): Record<string, unknown> {
  return platform.fetchInit(proxyUrl(url, takeProxyEnv()));
}
