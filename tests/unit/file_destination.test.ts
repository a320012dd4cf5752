/**
 * `-o FILE` (lib/destinations/file.ts): replaced whole without `--state`, appended to with it.
 * Appending confirms only once fsynced, leaves FILE untouched (bytes and mtime) when a pass has
 * nothing to write, and after a crash mid-append cuts at most the incomplete last line.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { lstat, open, readdir, readFile, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { cutToLastLine, openForAppend } from "../../lib/destinations/append_file.ts";
import { createFileDestination } from "../../lib/destinations/file.ts";
import type { FileDestinationOptions } from "../../lib/destinations/file.ts";
import type { LogFile } from "../../lib/log_file.ts";
import { CliError } from "../../lib/errors.ts";
import { withDir as withTempDir } from "../helpers/mod.ts";

const POSIX = process.platform !== "win32";
const withDir = (fn: (dir: string) => Promise<void>) => withTempDir("oai-file-dest-", fn);
const encoder = new TextEncoder();
const APPEND: FileDestinationOptions = { append: true };

/** One pass: each body delivered as a file, then finish; resolves with when each was confirmed. */
async function pass(path: string, options: FileDestinationOptions, bodies: string[]) {
  const destination = await createFileDestination(path, options);
  const confirmed: boolean[] = [];
  const beforeFinish: boolean[] = [];
  for (const [i, body] of bodies.entries()) {
    const file: LogFile = { id: `f${i}`, event_type: "AUTH_LOG", end_time: "2026-07-01T01:00:00Z" };
    const spool = await destination.spool();
    const bytes = encoder.encode(body);
    await spool.write(bytes);
    confirmed[i] = false;
    await destination.deliver({
      file,
      eventType: "AUTH_LOG",
      spool,
      downloaded: { bytes: bytes.length, lastByte: bytes.at(-1) },
      receipt: { confirm: () => confirmed[i] = true, reject: (error) => assert.fail(`${error}`) },
    });
    beforeFinish[i] = confirmed[i];
  }
  await destination.finish();
  return { confirmed, beforeFinish };
}

test("appending: each pass adds its files to the end, confirmed only once synced", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    const first = await pass(out, { append: true, syncEveryMs: 3600_000 }, [
      '{"a":1}\n',
      '{"b":2}',
    ]);
    assert.deepEqual(first.beforeFinish, [false, false], "nothing confirmed before the sync");
    assert.deepEqual(first.confirmed, [true, true]);
    await pass(out, APPEND, ['{"c":3}\n{"d":4}\n']);
    assert.equal(await readFile(out, "utf8"), '{"a":1}\n{"b":2}\n{"c":3}\n{"d":4}\n');
    assert.deepEqual(await readdir(dir), ["out.jsonl"], "no temp, no lock file");
  });
});

test("appending: a long pass syncs and confirms mid-pass, so a crash repeats little", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    const { beforeFinish } = await pass(out, { append: true, syncEveryMs: 0 }, [
      '{"a":1}\n',
      '{"b":2}\n',
    ]);
    assert.deepEqual(beforeFinish, [true, true], "each confirmed once synced, before the end");
    // Without a mid-pass sync due, nothing is confirmed before the pass ends.
    const late = await pass(out, { append: true, syncEveryMs: 3600_000 }, ['{"c":3}\n']);
    assert.deepEqual(late.beforeFinish, [false]);
    assert.equal(await readFile(out, "utf8"), '{"a":1}\n{"b":2}\n{"c":3}\n');
  });
});

test("without append, -o still replaces the file whole", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    await writeFile(out, '{"old":1}\n');
    await pass(out, { append: false }, ['{"a":1}\n']);
    await pass(out, { append: false }, ['{"b":2}\n']);
    assert.equal(await readFile(out, "utf8"), '{"b":2}\n');
  });
});

test("a pass with nothing to write leaves the file byte-identical, its mtime unchanged", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    // Ending in an incomplete line too: only a pass that appends cuts it.
    const before = '{"a":1}\n{"b":';
    await writeFile(out, before);
    const then = new Date(Date.now() - 3600_000);
    await utimes(out, then, then);
    const { mtimeMs } = await stat(out);
    for (const bodies of [[], ["", ""]]) {
      await pass(out, APPEND, bodies);
      assert.equal(await readFile(out, "utf8"), before);
      assert.equal((await stat(out)).mtimeMs, mtimeMs);
    }
    // And a missing file is not created by an empty pass.
    const none = join(dir, "none.jsonl");
    await pass(none, APPEND, []);
    await assert.rejects(stat(none), /ENOENT/);
  });
});

test("a file ending in an incomplete line is cut back to its last newline, then appended", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    await writeFile(out, '{"a":1}\n{"b":2}\n{"c":');
    await pass(out, APPEND, ['{"c":3}\n']);
    assert.equal(await readFile(out, "utf8"), '{"a":1}\n{"b":2}\n{"c":3}\n');
    // A file with no newline at all is one incomplete line.
    await writeFile(out, '{"half');
    await pass(out, APPEND, ['{"x":1}\n']);
    assert.equal(await readFile(out, "utf8"), '{"x":1}\n');
  });
});

test("cutToLastLine finds the last newline across chunk boundaries", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "f");
    const line = "x".repeat(100_000) + "\n"; // longer than the 64 KiB the tail is read in
    const cases: Array<[string, string]> = [
      ["", ""],
      ["a\n", "a\n"],
      ["a\nb", "a\n"],
      [line + "y".repeat(150_000), line],
      [line + line, line + line],
      ["z".repeat(200_000), ""],
    ];
    for (const [content, kept] of cases) {
      await writeFile(path, content);
      const handle = await open(path, "r+");
      try {
        assert.equal(await cutToLastLine(handle, content.length), kept.length);
      } finally {
        await handle.close();
      }
      assert.equal(await readFile(path, "utf8"), kept);
    }
  });
});

test("a process killed mid-append leaves complete lines, and the next pass appends whole lines", {
  skip: !POSIX && "SIGKILL",
}, async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    await writeFile(out, '{"earlier":1}\n');
    const module = new URL("../../lib/destinations/append_file.ts", import.meta.url).href;
    const code = `
      const { openForAppend } = await import(${JSON.stringify(module)});
      const file = await openForAppend(${JSON.stringify(out)}, 0o600);
      await file.write(new TextEncoder().encode('{"f0":1}\\n{"f0":2}\\n{"f0":'));
      console.log("written");
      setTimeout(() => file.close(), 60000);`;
    const args = process.versions.deno ? ["eval", code] : ["-e", code];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((done) => child.on("exit", done));
    await new Promise((done) => child.stdout!.once("data", done));
    child.kill("SIGKILL");
    await exited;
    const size = (await stat(out)).size;

    // The re-run delivers the same file again (the checkpoint never passed it), then the next.
    await pass(out, APPEND, ['{"f0":1}\n{"f0":2}\n{"f0":3}\n', '{"f1":1}\n']);
    const text = await readFile(out, "utf8");
    assert.ok(text.length >= size - '{"f0":'.length, "never shorter than its complete lines");
    assert.ok(text.endsWith("\n"));
    const lines = text.split("\n").slice(0, -1);
    for (const line of lines) JSON.parse(line); // every line whole
    assert.deepEqual(lines, [
      '{"earlier":1}',
      '{"f0":1}',
      '{"f0":2}', // written before the kill: kept, and so seen twice (at least once)
      '{"f0":1}',
      '{"f0":2}',
      '{"f0":3}',
      '{"f1":1}',
    ]);
  });
});

test("a second run appending to the same file at the same time is refused", {
  skip: !POSIX && "locks on the output file are POSIX only",
}, async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out.jsonl");
    const first = await openForAppend(out, 0o600);
    await first.write(encoder.encode('{"a":1}\n'));
    try {
      const second = await openForAppend(out, 0o600);
      await assert.rejects(second.write(encoder.encode('{"b":1}\n')), (error) => {
        assert.ok(error instanceof CliError);
        assert.match(error.message, /another run is appending to -o .*out\.jsonl/);
        return true;
      });
      await second.close();
    } finally {
      await first.close();
    }
    assert.equal(await readFile(out, "utf8"), '{"a":1}\n');
  });
});

test(
  "the output mode applies to a file -o creates, in either way; an existing file keeps its own",
  {
    skip: !POSIX && "modes",
  },
  async () => {
    await withDir(async (dir) => {
      for (const append of [false, true]) {
        const out = join(dir, `out-${append}.jsonl`);
        await pass(out, { append, mode: 0o640 }, ['{"a":1}\n']);
        assert.equal((await stat(out)).mode & 0o777, 0o640, `append: ${append}`);
      }
      const existing = join(dir, "existing.jsonl");
      await writeFile(existing, "", { mode: 0o600 });
      await pass(existing, { append: true, mode: 0o640 }, ['{"a":1}\n']);
      assert.equal((await stat(existing)).mode & 0o777, 0o600);
    });
  },
);

test("appending follows our own symlink to the file and keeps the link", {
  skip: !POSIX && "symlinks",
}, async () => {
  await withDir(async (dir) => {
    const real = join(dir, "real.jsonl");
    const link = join(dir, "link.jsonl");
    await writeFile(real, '{"a":1}\n');
    await symlink(real, link);
    await pass(link, APPEND, ['{"b":2}\n']);
    assert.equal(await readFile(real, "utf8"), '{"a":1}\n{"b":2}\n');
    assert.ok((await lstat(link)).isSymbolicLink());
  });
});
