/**
 * The runtime adapters under stand-in globals: the chooser picks by global, each adapter does its
 * runtime's thing (Deno's write loop, locks and proxy clients; Bun's decompress and proxy options,
 * its flock through a stand-in `bun:ffi`), and stdout errors become one clear error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import { BrokenPipeError, CliError } from "../../lib/errors.ts";
import { isLockHeld, platformFor, stdoutError } from "../../lib/runtime.ts";
import { type DenoLike, denoPlatform } from "../../lib/runtime/deno.ts";
import { type BunLike, bunPlatform, type Dlopen } from "../../lib/runtime/bun.ts";
import { withDir } from "../helpers/mod.ts";

class WouldBlock extends Error {}
class BrokenPipe extends Error {}
class NotFound extends Error {}

/** A `Deno` stand-in that records what it was asked. */
function fakeDeno(overrides: Partial<DenoLike> = {}) {
  const written: Uint8Array[] = [];
  const clients: unknown[] = [];
  const deno: DenoLike = {
    version: { deno: "9.9.9" },
    // Takes at most 3 bytes a call, like a pipe that is nearly full.
    stdout: { write: (chunk) => Promise.resolve(written.push(chunk.slice(0, 3)) && 3) },
    stderr: { isTerminal: () => true },
    errors: { WouldBlock, BrokenPipe, NotFound },
    openSync: () => {
      throw new Error("not in this test");
    },
    open: () => Promise.resolve({ tryLock: () => Promise.resolve(false), close() {} }),
    addSignalListener() {},
    createHttpClient: (options) => {
      clients.push(options);
      return { id: clients.length };
    },
    ...overrides,
  };
  return { deno, written, clients };
}

function fakeBun() {
  const writes: Array<[unknown, unknown]> = [];
  const collections: boolean[] = [];
  const bun: BunLike = {
    version: "8.8.8",
    stdout: "<stdout>",
    write: (destination, input) => {
      writes.push([destination, input]);
      return Promise.resolve(5);
    },
    file: (path) => `<file ${path}>`,
    gc: (synchronous) => void collections.push(synchronous),
  };
  return { bun, writes, collections };
}

test("a full collection is offered under Bun (synchronous), not under Deno or Node.js", () => {
  const { bun, collections } = fakeBun();
  const collect = platformFor({ Bun: bun }).fullCollection;
  assert.ok(collect);
  collect();
  assert.deepEqual(collections, [true]);
  assert.equal(platformFor({ Deno: fakeDeno().deno }).fullCollection, undefined);
  assert.equal(platformFor({}).fullCollection, undefined);
});

test("the chooser picks Deno, else Bun, else Node.js, by the globals given", () => {
  assert.equal(platformFor({ Deno: fakeDeno().deno, Bun: fakeBun().bun }).name, "deno 9.9.9");
  assert.equal(platformFor({ Bun: fakeBun().bun }).name, "bun 8.8.8");
  assert.match(platformFor({}).name, /^node /);
});

test("Deno: stdout writes loop until every byte is taken; the terminal check is Deno's", async () => {
  const { deno, written } = fakeDeno();
  const platform = denoPlatform(deno);
  await platform.writeStdout(new TextEncoder().encode("abcdefgh"));
  assert.deepEqual(written.map((c) => new TextDecoder().decode(c)), ["abc", "def", "gh"]);
  assert.equal(platform.stderrIsTerminal(), true);
  assert.equal(await platform.copyFileToStdout("/x"), undefined);
});

test("Deno: a proxy gets one HTTP client, with its credentials as basic auth, not in the URL", () => {
  const { deno, clients } = fakeDeno();
  const platform = denoPlatform(deno);
  const proxy = new URL("http://user:p%40ss@proxy.example:3128");
  const first = platform.fetchInit(proxy);
  assert.deepEqual(platform.fetchInit(proxy), first);
  assert.deepEqual(clients, [{
    proxy: {
      url: "http://proxy.example:3128/",
      basicAuth: { username: "user", password: "p@ss" },
    },
  }]);
  assert.deepEqual(platform.fetchInit(undefined), {});
});

test("Deno: a lock another holder has is refused, and the file is closed again", async () => {
  let closed = 0;
  const { deno } = fakeDeno({
    open: () => Promise.resolve({ tryLock: () => Promise.resolve(false), close: () => closed++ }),
  });
  assert.equal(await denoPlatform(deno).lock("/x", true), undefined);
  assert.equal(closed, 1);
});

test("Deno: SIGXFSZ is ignored through Deno.addSignalListener, except on Windows", () => {
  const seen: string[] = [];
  const { deno } = fakeDeno({ addSignalListener: (signal) => void seen.push(signal) });
  denoPlatform(deno, "linux").ignoreFileSizeSignal();
  denoPlatform(deno, "win32").ignoreFileSizeSignal();
  assert.deepEqual(seen, ["SIGXFSZ"]);
});

test("Deno: a full pipe it cannot wait on and a closed pipe are told apart from other errors", () => {
  const platform = denoPlatform(fakeDeno().deno);
  assert.ok(stdoutError(new BrokenPipe(), platform) instanceof BrokenPipeError);
  const full = stdoutError(new WouldBlock(), platform);
  assert.ok(full instanceof CliError && /non-blocking pipe that is full/.test(full.message));
  const disk = stdoutError(Object.assign(new Error("x"), { code: "ENOSPC" }), platform);
  assert.ok(disk instanceof CliError && disk.kind === "io");
  assert.match(disk.message, /^cannot write to stdout: no space left on device/);
});

test("Bun: bodies stay undecoded, proxies go in fetch's own option, stdout by Bun.write", async () => {
  const { bun, writes } = fakeBun();
  const platform = bunPlatform(bun, { os: "linux" });
  assert.deepEqual(platform.fetchInit(undefined), { decompress: false });
  assert.deepEqual(platform.fetchInit(new URL("http://proxy:3128")), {
    decompress: false,
    proxy: "http://proxy:3128/",
  });
  await platform.writeStdout(new Uint8Array([1]));
  assert.equal(writes[0][0], "<stdout>");
  // Bun waits on a full pipe itself: EAGAIN is an ordinary I/O error.
  const again = stdoutError(Object.assign(new Error("x"), { code: "EAGAIN" }), platform);
  assert.ok(again instanceof CliError && /^cannot write to stdout/.test(again.message));
});

test("Bun: the kernel copy to stdout is used only on Linux into a blocking pipe", async () => {
  const { bun, writes } = fakeBun();
  const into = (os: string, pipe: boolean, nonBlocking: boolean | undefined) =>
    bunPlatform(bun, { os, stdoutIsPipe: () => pipe, stdoutNonBlocking: () => nonBlocking })
      .copyFileToStdout("/spool/f");
  assert.equal(await into("linux", true, false), 5);
  assert.deepEqual(writes, [["<stdout>", "<file /spool/f>"]]);
  for (const [os, pipe, nb] of [["darwin", true, false], ["linux", false, false]] as const) {
    assert.equal(await into(os, pipe, nb), undefined);
  }
  assert.equal(await into("linux", true, true), undefined);
  assert.equal(await into("linux", true, undefined), undefined);
});

test("Bun: locks are flock from libc through bun:ffi, tried by name, loaded once", async () => {
  await withDir("oai-runtime-", async (dir) => {
    const opened: string[] = [];
    let held = false;
    const dlopen: Dlopen = (name) => {
      opened.push(name);
      if (name !== "libc.so") throw new Error("no such library");
      return { symbols: { flock: () => held ? -1 : ((held = true), 0) } };
    };
    const platform = bunPlatform(fakeBun().bun, {
      os: "linux",
      ffi: () => Promise.resolve({ dlopen }),
    });
    const path = join(dir, "lock");
    const lock = await platform.lock(path, true);
    assert.ok(lock);
    assert.equal(await platform.lock(path, true), undefined);
    assert.deepEqual(opened, ["libc.so.6", "libc.so"]);
    lock.release();
    lock.release();
  });
});

test("Bun: with no libc to load, there is no lock, and whether one is held cannot be told", async () => {
  await withDir("oai-runtime-", async (dir) => {
    const dlopen: Dlopen = () => {
      throw new Error("no such library");
    };
    const platform = bunPlatform(fakeBun().bun, {
      os: "linux",
      ffi: () => Promise.resolve({ dlopen }),
    });
    const path = join(dir, "lock");
    await writeFile(path, "");
    assert.equal(await platform.lock(path, true), null);
    assert.equal(await isLockHeld(path, platform), undefined);
  });
});
