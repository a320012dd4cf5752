/**
 * A release download server on 127.0.0.1 for the install-script and action tests: serves files
 * by path (from disk, streamed, or bytes held in memory) and records what was asked for. It can
 * flip one byte of a file as it streams it, to serve a tampered binary without copying 100 MB.
 *
 * As a command it serves a directory (e.g. `dist/`) until interrupted and prints
 * `RELEASE_URL=http://127.0.0.1:<port>`: the CI workflow points `download-url` /
 * `OAI_COMPLIANCE_LOGS_DOWNLOAD_URL` at it.
 *
 * Usage: deno run -A tests/helpers/release_server.ts <dir> [--port N]
 *
 * @example
 * const server = await startReleaseServer({ files: await releaseDir("dist") });
 * try {
 *   // OAI_COMPLIANCE_LOGS_DOWNLOAD_URL=server.url sh install.sh
 * } finally {
 *   await server.close();
 * }
 */
import { spawnSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { copyFile, readdir, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import process from "node:process";
import { DIST_DIR, fileName, type Target } from "../../scripts/targets.ts";
import { formatChecksums, sha256File } from "../../scripts/verify-binary.ts";

/** A file on disk (by path) or bytes in memory. */
export type Served = string | Uint8Array;

export interface ReleaseServerOptions {
  /** URL path without the leading `/` (e.g. `SHA256SUMS`, `o/r/releases/download/v1/x`) to file. */
  files: Record<string, Served>;
  /** Serve this file with the byte at `offset` inverted (the length stays the same). */
  flip?: { path: string; offset: number };
  port?: number;
}

export interface ReleaseServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  url: string;
  /** Paths requested, in order, without the leading `/`. */
  requests: string[];
  close(): Promise<void>;
}

/** Every regular file directly in `dir`, served under its own name (optionally under `prefix/`). */
export async function releaseDir(dir: string, prefix = ""): Promise<Record<string, Served>> {
  const files: Record<string, Served> = {};
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await stat(path)).isFile()) files[prefix ? `${prefix}/${name}` : name] = resolve(path);
  }
  return files;
}

/**
 * A release directory in `into` holding a copy of `target`'s binary from `dist/` and a
 * SHA256SUMS for it, written the way the build writes it. `dist/` is shared: another build may be
 * rewriting it, and a test serving it directly would see a binary that no longer matches its
 * SHA256SUMS. The copy is taken again (up to a minute) until it is whole and runs `--version`.
 */
export async function snapshotDist(target: Target, into: string): Promise<Record<string, Served>> {
  const name = fileName(target);
  const copy = join(into, name);
  let problem = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    if (attempt > 0) await new Promise((done) => setTimeout(done, 3_000));
    const before = (await stat(join(DIST_DIR, name))).size;
    await copyFile(join(DIST_DIR, name), copy);
    const after = (await stat(join(DIST_DIR, name))).size;
    const run = spawnSync(copy, ["--version"], { encoding: "utf8" });
    if (before === after && (await stat(copy)).size === after && run.status === 0) {
      await writeFile(
        join(into, "SHA256SUMS"),
        formatChecksums([{ name, sha256: await sha256File(copy) }]),
      );
      return releaseDir(into);
    }
    problem = run.error?.message ?? `${run.stderr}`.trim();
  }
  throw new Error(`${join(DIST_DIR, name)} does not run (is a build writing it?): ${problem}`);
}

export function startReleaseServer(options: ReleaseServerOptions): Promise<ReleaseServer> {
  const requests: string[] = [];
  const server: Server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).slice(1);
    requests.push(path);
    const source = Object.hasOwn(options.files, path) ? options.files[path] : undefined;
    if (source === undefined || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not Found\n");
      return;
    }
    const headers = { "content-type": "application/octet-stream" };
    if (typeof source !== "string") {
      const body = flipped(source, options.flip?.path === path ? options.flip.offset : -1);
      res.writeHead(200, { ...headers, "content-length": String(body.length) });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    let size: number;
    try {
      size = (await stat(source)).size;
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not Found\n");
      return;
    }
    res.writeHead(200, { ...headers, "content-length": String(size) });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const flipAt = options.flip?.path === path ? options.flip.offset : -1;
    let position = 0;
    const stream = createReadStream(source);
    stream.on("data", (chunk) => {
      const bytes = chunk as Uint8Array;
      const out = flipAt >= position && flipAt < position + bytes.length
        ? flipped(bytes, flipAt - position)
        : bytes;
      position += bytes.length;
      if (!res.write(out)) {
        stream.pause();
        res.once("drain", () => stream.resume());
      }
    });
    stream.on("end", () => res.end());
    stream.on("error", () => res.destroy());
    res.on("close", () => stream.destroy());
  });
  return new Promise((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolvePromise({
        url: `http://127.0.0.1:${port}`,
        requests,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

/** A copy of `bytes` with the byte at `offset` inverted; `bytes` itself when offset is -1. */
function flipped(bytes: Uint8Array, offset: number): Uint8Array {
  if (offset < 0 || offset >= bytes.length) return bytes;
  const copy = new Uint8Array(bytes);
  copy[offset] ^= 0xff;
  return copy;
}

if (import.meta.main) {
  const [dir, flag, value] = process.argv.slice(2);
  if (!dir || (flag !== undefined && (flag !== "--port" || !/^\d+$/.test(value ?? "")))) {
    console.error("usage: tests/helpers/release_server.ts <dir> [--port N]");
    process.exit(2);
  }
  const server = await startReleaseServer({
    files: await releaseDir(dir),
    port: flag ? Number(value) : 0,
  });
  console.log(`RELEASE_URL=${server.url}`);
  console.error(`Serving ${resolve(dir)} on ${server.url}. Ctrl-C to stop.`);
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
