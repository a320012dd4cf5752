/**
 * Outputs and the checkpoint under hostile or mistaken inputs: two destinations that are one file,
 * `-o` onto a directory, a FIFO or a device, a full disk, a file size limit, a reader that closes
 * stdout early, and the summary of a run that fails or is interrupted after delivering files.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { link, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { Emulator } from "./emulator/mod.ts";
import {
  cliCommand,
  type CliResult,
  lines,
  runCli,
  RUNS_WINDOWS,
  summaryOf,
} from "./helpers/cli.ts";
import { assertSameBytes } from "./helpers/compare.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";

/** POSIX-only cases: FIFOs, /dev/full, ulimit. */
const POSIX = { ...SLOW, skip: (RUNS_WINDOWS || process.platform === "win32") && "POSIX only" };
const FILES = hourlyFiles(6, { sizes: [1500, 700, 40_000, 333] });
const ARGS = [PRINCIPAL, "AUTH_LOG", "2", AFTER, "--backoff", "0.01", "--timeout", "2"];

function run(
  emulator: Emulator,
  extra: string[],
  options: { wrapper?: string[]; env?: Record<string, string> } = {},
) {
  const env = { ...envFor(emulator), ...options.env };
  return runCli([...ARGS, ...extra], { timeoutMs: 30_000, ...options, env });
}

/**
 * Runs a command under a file size limit of `kib` KiB. Deno writes its own caches (SQLite files
 * of megabytes in DENO_DIR) before the tool's code runs and would meet the limit first; with a
 * DENO_DIR it cannot create, it keeps them in memory. Bun and the binaries ignore DENO_DIR.
 */
function sizeLimited(kib: number) {
  return {
    wrapper: ["bash", "-c", `ulimit -f ${kib} && exec "$@"`, "limited"],
    env: { DENO_DIR: "/dev/null/deno" },
  };
}

/** The one `error:` line a failed run printed (and that there is exactly one). */
function errorLine(r: CliResult): string {
  const errors = lines(r.stderr).filter((l) => l.startsWith("error:"));
  assert.equal(errors.length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /unexpected failure/);
  return errors[0];
}

test("-o and --state naming one file is a usage error before any request", SLOW, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const same = join(dir, "x.json");
      const r = await run(emulator, ["-o", same, "--state", same]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /same file/);
      assert.equal(emulator.requests.length, 0);
      await assert.rejects(stat(same), "nothing was created");
    });
  });
});

test("-o through a symlink or a hard link to the state file is a usage error", SLOW, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const state = join(dir, "state.json");
      const first = await run(emulator, ["--state", state, "-o", join(dir, "first.jsonl")]);
      assert.equal(first.code, 0, first.stderr);
      const before = await readFile(state, "utf8");
      const requests = emulator.requests.length;
      const aliases = [join(dir, "hard.json")];
      await link(state, aliases[0]);
      if (!RUNS_WINDOWS) {
        aliases.push(join(dir, "soft.json"));
        await symlink(state, aliases[1]);
        // A link that dangles now would be written through by the rename's target check too.
        aliases.push(join(dir, "dangling.json"));
        await symlink(join(dir, "later-state.json"), aliases[2]);
      }
      for (const alias of aliases) {
        const stateFor = alias.endsWith("dangling.json") ? join(dir, "later-state.json") : state;
        const r = await run(emulator, ["--state", stateFor, "-o", alias]);
        assert.equal(r.code, 2, `${alias}: ${r.stderr}`);
        assert.match(errorLine(r), /same file/);
      }
      assert.equal(emulator.requests.length, requests, "no request for a refused run");
      assert.equal(await readFile(state, "utf8"), before, "the checkpoint is untouched");
    });
  });
});

test("-o onto a directory is a usage error before any request", SLOW, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const r = await run(emulator, ["-o", dir]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /is a directory.*--output-dir/);
      assert.equal(emulator.requests.length, 0);
      assert.deepEqual(await readdir(dir), []);
    });
  });
});

test("-o onto a FIFO streams into it and leaves it a FIFO", POSIX, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const fifo = join(dir, "pipe");
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
      const reader = spawn("cat", [fifo], { stdio: ["ignore", "pipe", "ignore"] });
      const got: Uint8Array[] = [];
      reader.stdout.on("data", (c: Uint8Array) => got.push(c));
      const closed = new Promise((done) => reader.on("close", done));
      const r = await run(emulator, ["-o", fifo]);
      // A tool that replaced the FIFO never opens it, and `cat` would wait forever.
      const stuck = setTimeout(() => reader.kill(), 10_000);
      await closed;
      clearTimeout(stuck);
      assert.equal(r.code, 0, r.stderr);
      assertSameBytes(
        new Uint8Array(Buffer.concat(got)),
        await expectedStream(emulator, idsOf(emulator)),
        "what the FIFO's reader got",
      );
      assert.ok((await stat(fifo)).isFIFO(), "still a FIFO");
    });
  });
});

/**
 * A private copy of /dev/full (a device that answers every write with ENOSPC), so that a tool
 * that wrongly renamed over its `-o` target would replace the copy, never the system's device.
 * Undefined where device nodes cannot be made (not root, or a nodev temp directory).
 */
function fullDeviceIn(dir: string): string | undefined {
  const path = join(dir, "full");
  const made = spawnSync("mknod", ["-m", "666", path, "c", "1", "7"]).status === 0;
  return made && spawnSync("sh", ["-c", `printf x > '${path}'`]).status !== 0 ? path : undefined;
}

test("a full disk is one line naming the destination, exit 1", POSIX, async () => {
  await withDir("oai-out-", async (dir) => {
    const full = fullDeviceIn(dir);
    if (full === undefined) {
      // Without a device of our own, the stdout case still runs against /dev/full itself.
      console.log("skipping -o onto a full device: mknod is not allowed here");
    }
    await withEmulator({ files: FILES }, async (emulator) => {
      if (full !== undefined) {
        const viaO = await run(emulator, ["-o", full]);
        assert.equal(viaO.code, 1, viaO.stderr);
        assert.match(errorLine(viaO), /cannot write .*full: no space left on device \(ENOSPC\)/);
        assert.ok((await stat(full)).isCharacterDevice(), "still the device");
      }
      const viaStdout = await runCli([...ARGS], {
        env: envFor(emulator),
        stdoutFile: { path: full ?? "/dev/full" },
      });
      assert.equal(viaStdout.code, 1, viaStdout.stderr);
      assert.match(errorLine(viaStdout), /cannot write to stdout: no space left on device/);
    });
  });
});

test(
  "a file size limit (ulimit -f) is an EFBIG error naming the file, not SIGXFSZ",
  POSIX,
  async () => {
    await withDir("oai-out-", async (dir) => {
      await withEmulator({ files: FILES }, async (emulator) => {
        const state = join(dir, "state.json");
        const out = join(dir, "out.jsonl");
        // 32 KiB: the spools and the state file fit, the 40 KB log file does not.
        const replaced = await run(emulator, ["-o", out], sizeLimited(32));
        assert.equal(replaced.signal, null, "not killed by a signal");
        assert.equal(replaced.code, 1, replaced.stderr);
        assert.match(errorLine(replaced), /file too large \(EFBIG\).*ulimit -f/);
        await assert.rejects(stat(out), "no partial -o file");

        // With --state -o appends: what it appended stays as whole lines, confirmed by nothing.
        const r = await run(emulator, ["-o", out, "--state", state], sizeLimited(32));
        assert.equal(r.signal, null, "not killed by a signal");
        assert.equal(r.code, 1, r.stderr);
        assert.match(errorLine(r), /file too large \(EFBIG\).*ulimit -f/);
        const text = await readFile(out, "utf8");
        assert.ok(text === "" || text.endsWith("\n"), "no incomplete last line");
        const want = new TextDecoder().decode(await expectedStream(emulator, idsOf(emulator)));
        assert.ok(want.startsWith(text), "the files in listing order, up to the limit");
        // Appended files are confirmed once synced (every few seconds): never the one that failed.
        const saved = JSON.parse(await readFile(state, "utf8"));
        const cursor = saved.cursors.AUTH_LOG;
        const failed = FILES.find((f) => f.size === 40_000)!;
        assert.ok(!cursor || Date.parse(cursor.after) < Date.parse(failed.endTime), cursor?.after);
      });
    });
  },
);

test("a summary counts what was delivered before a failure (plain and JSON)", SLOW, async () => {
  await withDir("oai-out-", async (dir) => {
    // The third file's listed hash is wrong, so the run fails there after delivering two.
    const files = FILES.map((f, i) =>
      i === 2 ? { ...f, advertise: { fileSha256: "0".repeat(64) } } : f
    );
    await withEmulator({ files }, async (emulator) => {
      const ids = idsOf(emulator);
      const delivered = [0, 1].map((i) => emulator.files.find((f) => f.id === ids[i])!);
      const bytes = delivered.reduce((n, f) => n + f.size!, 0);
      for (const format of ["json", "plain"]) {
        const out = join(dir, format);
        const r = await run(emulator, [
          "--output-dir",
          out,
          "--concurrency",
          "1",
          "--log-format",
          format,
        ]);
        assert.equal(r.code, 1, r.stderr);
        if (format === "json") {
          const summary = summaryOf(r);
          assert.equal(summary.files, 2, r.stderr);
          assert.equal(summary.bytes, bytes);
          assert.equal(summary.status, "failed");
          const cursors = summary.cursors as Record<string, string>;
          assert.equal(Date.parse(cursors.AUTH_LOG), Date.parse(delivered[1].endTime));
        } else {
          assert.match(r.stderr, /^Summary: 2 files, /m);
          const cursor = /cursor AUTH_LOG=(\S+)/.exec(r.stderr)?.[1] ?? "";
          assert.equal(Date.parse(cursor), Date.parse(delivered[1].endTime), r.stderr);
        }
      }
    });
  });
});

test("a summary after SIGTERM counts the files delivered before it", SLOW, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const ids = idsOf(emulator);
      // The third download stalls, so the run sits there until the signal.
      emulator.inject({ target: "storage", id: ids[2], stallAfterBytes: 10, times: Infinity });
      const out = join(dir, "logs");
      const day = join(out, "AUTH_LOG", "2026-07-02");
      let killed = false;
      const r = await runCli(
        [
          ...ARGS,
          "--output-dir",
          out,
          "--concurrency",
          "1",
          "--timeout",
          "30",
          "--log-format",
          "json",
        ],
        {
          env: envFor(emulator),
          timeoutMs: 60_000,
          onSpawn: (child) => {
            const poll = setInterval(async () => {
              const names = await readdir(day).catch(() => []);
              if (names.filter((n) => n.endsWith(".jsonl")).length >= 2 && !killed) {
                killed = true;
                clearInterval(poll);
                child.kill("SIGTERM");
              }
            }, 25);
            child.on("close", () => clearInterval(poll));
          },
        },
      );
      assert.ok(killed, r.stderr);
      const summary = summaryOf(r);
      assert.equal(summary.status, "interrupted", r.stderr);
      assert.equal(summary.files, 2);
      assert.equal((await readdir(day)).filter((n) => n.endsWith(".jsonl")).length, 2);
    });
  });
});

/** Runs the CLI with stdout read by a reader that closes it after the first chunk. */
function runWithEarlyClose(args: string[], env: Record<string, string>): Promise<CliResult> {
  const [command, ...prefix] = cliCommand();
  return new Promise((resolve) => {
    const child = spawn(command, [...prefix, ...args], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        TZ: "UTC",
        NO_COLOR: "1",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Uint8Array) => (stderr += new TextDecoder().decode(c)));
    child.stdout.once("data", () => child.stdout.destroy());
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: new Uint8Array(), stderr, ms: 0 });
    });
  });
}

test(
  "with --state, a reader closing stdout early is exit 1; without, exit 0 and quiet",
  POSIX,
  async () => {
    await withDir("oai-out-", async (dir) => {
      // Enough bytes that the pipe fills long before the last file.
      const files = hourlyFiles(12, { sizes: [200_000] });
      await withEmulator({ files }, async (emulator) => {
        const state = join(dir, "state.json");
        const withState = await runWithEarlyClose([...ARGS, "--state", state], envFor(emulator));
        assert.equal(withState.code, 1, withState.stderr);
        assert.match(errorLine(withState), /stdout was closed by its reader.*checkpoint/);
        const saved = JSON.parse(await readFile(state, "utf8"));
        const seen: string[] = saved.cursors.AUTH_LOG?.seen ?? [];
        assert.ok(!seen.includes(idsOf(emulator).at(-1)!), "the checkpoint is not at the end");

        const without = await runWithEarlyClose(ARGS, envFor(emulator));
        assert.equal(without.code, 0, without.stderr);
        assert.doesNotMatch(without.stderr, /error:/);
      });
    });
  },
);

test("a spool directory on a full or size-limited disk is one line naming it", POSIX, async () => {
  await withDir("oai-out-", async (dir) => {
    await mkdir(join(dir, "tmp"));
    await withEmulator({ files: FILES }, async (emulator) => {
      // 16 KiB: the 40 KB file's spool cannot be written.
      const limited = sizeLimited(16);
      const r = await runCli(ARGS, {
        env: envFor(emulator, { TMPDIR: join(dir, "tmp"), ...limited.env }),
        wrapper: limited.wrapper,
        stdoutFile: { path: "/dev/null" },
        timeoutMs: 30_000,
      });
      assert.equal(r.signal, null);
      assert.equal(r.code, 1, r.stderr);
      assert.match(errorLine(r), /file too large \(EFBIG\)/);
    });
  });
});

test(
  "a FIFO or /dev/zero planted as the state file or its lock is refused at once, not read",
  POSIX,
  async () => {
    await withDir("oai-out-", async (dir) => {
      await withEmulator({ files: FILES }, async (emulator) => {
        const fifo = join(dir, "fifo.json");
        assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
        const zero = join(dir, "zero.json");
        await symlink("/dev/zero", zero);
        const lockedByZero = join(dir, "locked.json");
        await symlink("/dev/zero", `${lockedByZero}.lock`);
        for (
          const [state, what] of [[fifo, "state file"], [zero, "state file"], [
            lockedByZero,
            "lock file",
          ]]
        ) {
          const r = await runCli([...ARGS, "--state", state], {
            env: envFor(emulator),
            timeoutMs: 20_000,
          });
          assert.equal(r.signal, null, `${state}: hung or killed`);
          assert.equal(r.code, 1, r.stderr);
          assert.match(errorLine(r), new RegExp(`${what} .* is not a regular file`));
        }
        assert.equal(emulator.requests.length, 0, "nothing was asked of the API");
        assert.ok(!existsSync("/dev/zero.lock"), "no lock created beside the device");
        assert.ok((await stat(fifo)).isFIFO(), "the FIFO is left as it was");
      });
    });
  },
);

test("-o through another user's symlink to a FIFO is refused, the link left alone", {
  ...POSIX,
  skip: POSIX.skip || (process.getuid?.() !== 0 && "needs root to make another user's link"),
}, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const fifo = join(dir, "neighbour.fifo");
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
      const planted = join(dir, "out.jsonl");
      await symlink(fifo, planted);
      assert.equal(spawnSync("chown", ["-h", "65534:65534", planted]).status, 0);
      const r = await run(emulator, ["-o", planted]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /symbolic link of another user .* not writing through it/);
      assert.equal(emulator.requests.length, 0);
      assert.ok((await lstat(planted)).isSymbolicLink(), "the link is left as it was");
    });
  });
});

test("with --state, -o through another user's symlink is refused: appending would follow it", {
  ...POSIX,
  skip: POSIX.skip || (process.getuid?.() !== 0 && "needs root to make another user's link"),
}, async () => {
  await withDir("oai-out-", async (dir) => {
    await withEmulator({ files: FILES }, async (emulator) => {
      const victim = join(dir, "victim.txt");
      await writeFile(victim, "victim\n");
      const planted = join(dir, "out.jsonl");
      await symlink(victim, planted);
      assert.equal(spawnSync("chown", ["-h", "65534:65534", planted]).status, 0);
      const r = await run(emulator, ["-o", planted, "--state", join(dir, "state.json")]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLine(r), /symbolic link of another user .* not appending through it/);
      assert.equal(emulator.requests.length, 0, "refused before any request");
      assert.equal(await readFile(victim, "utf8"), "victim\n");
      assert.ok((await lstat(planted)).isSymbolicLink(), "the link is left as it was");
    });
  });
});
