/**
 * The fallback adapter for a runtime that is neither Deno nor Bun (Node.js): `process.stdout`,
 * no OS locks (callers then judge leftovers by age), `fetch` as it is.
 */
import process from "node:process";
import { errorCode, errorName, type Platform } from "./platform.ts";

export function nodePlatform(): Platform {
  return {
    name: `node ${process.versions.node}`,
    writeStdout: (chunk) =>
      new Promise<void>((resolve, reject) =>
        process.stdout.write(chunk, (e) => e ? reject(e) : resolve())
      ),
    copyFileToStdout: () => Promise.resolve(undefined),
    stderrIsTerminal: () => Boolean(process.stderr.isTTY),
    ignoreFileSizeSignal() {},
    lock: () => Promise.resolve(null),
    isBrokenPipe: (error) => errorCode(error) === "EPIPE" || errorName(error) === "BrokenPipe",
    isUnwaitableFullPipe: () => false,
    isNotFound: (error) => errorCode(error) === "ENOENT",
    fetchInit: (proxy) => proxy ? { proxy: proxy.href } : {},
  };
}
