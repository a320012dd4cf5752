/**
 * The contract each runtime adapter keeps (`deno.ts`, `bun.ts`, `node.ts`): only the operations
 * whose implementation differs between runtimes. `lib/runtime.ts` picks one adapter, once, and
 * builds everything else on top of it with web APIs and `node:` built-ins.
 */

/** An exclusive OS lock this process holds; the OS releases it when the process dies. */
export interface HeldLock {
  /** Releases the lock and closes the file (idempotent); the file itself stays. */
  release(): void;
}

export interface Platform {
  /** `deno 2.9.6`, `bun 1.4.5`, `node 22.0.0`: for `--version`. */
  readonly name: string;
  /** Writes all of `chunk` to stdout; the runtime's own errors pass through. */
  writeStdout(chunk: Uint8Array): Promise<void>;
  /**
   * Copies the file at `path` to stdout inside the kernel and resolves with the bytes copied, or
   * undefined (having written nothing) when this runtime cannot.
   */
  copyFileToStdout(path: string): Promise<number | undefined>;
  stderrIsTerminal(): boolean;
  /** Makes writing past `ulimit -f` an EFBIG error instead of death by SIGXFSZ, where needed. */
  ignoreFileSizeSignal(): void;
  /**
   * Takes an exclusive lock on `path` without waiting (creating the file when `create`): the lock,
   * undefined when another holder has it, null when this runtime or OS offers no lock. Throws when
   * the file cannot be opened.
   */
  lock(path: string, create: boolean): Promise<HeldLock | undefined | null>;
  isBrokenPipe(error: unknown): boolean;
  /**
   * Whether a stdout write failed on a full non-blocking pipe that this runtime cannot wait on
   * (Deno, when it could not reopen the pipe); such a write may have written part of the bytes.
   */
  isUnwaitableFullPipe(error: unknown): boolean;
  isNotFound(error: unknown): boolean;
  /**
   * Extra `fetch` init: the body arrives exactly as sent (still Content-Encoded, given the request
   * says `accept-encoding: identity`), through `proxy` when one is given, else direct.
   */
  fetchInit(proxy: URL | undefined): Record<string, unknown>;
  /**
   * A full, synchronous garbage collection, where the runtime offers one to scripts (Bun; Deno
   * started with `--v8-flags=--expose-gc`); absent elsewhere (V8 offers none without that flag).
   */
  fullCollection?: () => void;
}

/** A lock released by `release` at most once; errors of an already closed file are ignored. */
export function once(release: () => void): HeldLock {
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

/** The code of a Node-style error (`EPIPE`, `EAGAIN`...), if it has one. */
export function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/** The name of an error (`BrokenPipe`, `WouldBlock`...), if it has one. */
export function errorName(error: unknown): unknown {
  return (error as { name?: unknown } | null)?.name;
}
