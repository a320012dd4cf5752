/**
 * Checks on the paths a run writes, made before any request: `-o` must be somewhere a file can
 * appear whole (or a stream such as a FIFO or `/dev/stdout`), and no two of the files a run
 * touches may be the same file, by name, through a symlink or through a hard link. Otherwise a
 * run could "succeed" while its checkpoint overwrote its output (`-o X --state X`), or its output
 * replaced the key file.
 *
 * @example
 * ```ts
 * const stream = await inspectOutputFile("out.jsonl"); // false: a regular file (or none yet)
 * await refuseSameFiles([["-o", "out.jsonl"], ["--state", "state.json"]]);
 * ```
 */
import { lstat, readlink, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { codeOf, reason, usage } from "./errors.ts";
import { ownedByUs } from "./cleanup.ts";

/**
 * What `-o PATH` is: false for a regular file or a path that does not exist yet (written to a
 * temp file and renamed into place), true for a FIFO or character device (written as a stream:
 * renaming over a device or a pipe would replace it). Anything else is a usage error.
 */
export async function inspectOutputFile(path: string): Promise<boolean> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if (codeOf(error) === "ENOENT") return false;
    throw usage(`cannot use -o ${path}: ${reason(error)}`);
  }
  if (info.isDirectory()) {
    throw usage(`-o ${path} is a directory; name a file, or use --output-dir for one file per log`);
  }
  if (info.isFIFO() || info.isCharacterDevice()) {
    await refuseForeignLink(path);
    return true;
  }
  if (!info.isFile()) {
    throw usage(`-o ${path} is neither a regular file, a FIFO nor a character device; name a file`);
  }
  return false;
}

/**
 * Streaming into a FIFO or device follows a symlink at `-o`, where a rename would have replaced
 * it: so the link must be ours or root's (`/dev/stdout` is root's). A link another user planted
 * in a shared directory could otherwise send the logs to that user's pipe.
 */
async function refuseForeignLink(path: string): Promise<void> {
  const link = await lstat(path);
  if (!link.isSymbolicLink() || link.uid === 0 || ownedByUs(link)) return;
  throw usage(
    `-o ${path} is a symbolic link of another user (uid ${link.uid}) to a FIFO or device; ` +
      `not writing through it: name the FIFO or device itself`,
  );
}

/**
 * An identity for `path`: device and inode when it exists (so symlinks and hard links to one
 * file compare equal), else the real path of its directory plus its name.
 */
async function identity(path: string): Promise<string> {
  try {
    const info = await stat(path);
    // Some file systems (and Windows runtimes) report no inode: fall back to the real path.
    if (info.ino !== 0) return `inode:${info.dev}:${info.ino}`;
    return `path:${await realpath(path)}`;
  } catch {
    return `path:${await wherePathLeads(path)}`;
  }
}

/**
 * The absolute path a file that does not exist yet would be created at: through the real path of
 * its directory and through dangling symlinks (`-o link` where `link -> state.json`, not written
 * yet), up to the kernel's own limit of 40 links.
 */
async function wherePathLeads(path: string): Promise<string> {
  let current = resolve(path);
  for (let hop = 0; hop < 40; hop++) {
    const dir = await realpath(dirname(current)).catch(() => dirname(current));
    current = join(dir, basename(current));
    try {
      if (!(await lstat(current)).isSymbolicLink()) return current;
      current = resolve(dir, await readlink(current));
    } catch {
      return current;
    }
  }
  return current;
}

/**
 * Refuses (usage error) when two of the named paths are the same file. Each entry is
 * `[what the user called it, path]`; undefined paths are ignored.
 */
export async function refuseSameFiles(named: Array<[string, string | undefined]>): Promise<void> {
  const seen = new Map<string, string>();
  for (const [label, path] of named) {
    if (path === undefined) continue;
    const id = await identity(path);
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw usage(
        `${earlier} and ${label} ${path} are the same file; give each a file of its own`,
      );
    }
    seen.set(id, `${label} ${path}`);
  }
}
