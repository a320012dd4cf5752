/**
 * Assembles the container image's whole file system in `dist/image-rootfs/` and packs it as
 * `dist/image-rootfs.tar` for the `Dockerfile` (`FROM scratch`, `ADD dist/image-rootfs.tar /`):
 * the linux-x64 binary, the few shared libraries it loads (glibc's, found with `ldd` on the build
 * machine), the CA certificates, and a non-root user with a home it owns. Nothing else: no shell,
 * no package manager. Built offline, so the image needs no base image.
 *
 * Why a tar: `COPY` makes every file root's, and an image with no shell has no `RUN chown`; `ADD`
 * unpacks a local tar as `tar -x` does, owners included, so /home/nonroot is the user's (written
 * here without root, whoever builds it).
 *
 * Usage: deno task image [--binary dist/oai-compliance-logs-linux-x64] [--out dist/image-rootfs]
 *
 * @example
 * ```ts
 * const root = await assembleRootfs({ binary: "dist/oai-compliance-logs-linux-x64", out: "dist/image-rootfs" });
 * await packRootfs(root, "dist/image-rootfs.tar");
 * ```
 */
import { spawnSync } from "node:child_process";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rm,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { DIST_DIR } from "./targets.ts";

/** The image's user: distroless's `nonroot`, which Kubernetes' `runAsNonRoot` accepts. */
export const IMAGE_UID = 65532;
export const IMAGE_BINARY = "/usr/local/bin/oai-compliance-logs";
/** The user's home: owned by it (in the tar), so a program that writes there can. */
export const IMAGE_HOME = "/home/nonroot";
/** Where Debian and Ubuntu keep the CA bundle; the binary's runtime looks there too. */
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/** The absolute paths of the shared libraries (and the loader) `binary` needs, from `ldd`. */
export function sharedLibraries(binary: string): string[] {
  const ldd = spawnSync("ldd", [binary], { encoding: "utf8" });
  if (ldd.status !== 0) throw new Error(`ldd ${binary} failed: ${ldd.stderr || ldd.stdout}`);
  const paths = new Set<string>();
  for (const line of ldd.stdout.split("\n")) {
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (path) paths.add(path);
  }
  return [...paths];
}

/** Copies `from` to `root + to`, creating directories, following symlinks (the file, not the link). */
async function place(root: string, from: string, to: string = from, mode?: number) {
  const target = join(root, to);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(await realpath(from), target);
  if (mode !== undefined) await chmod(target, mode);
}

/** Writes the image's file system into `out` (emptied first); resolves with `out`. */
export async function assembleRootfs(options: { binary: string; out: string }): Promise<string> {
  const { binary, out } = options;
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await place(out, binary, IMAGE_BINARY, 0o755);
  for (const lib of sharedLibraries(binary)) await place(out, lib);
  await place(out, CA_BUNDLE);
  await mkdir(join(out, "etc"), { recursive: true });
  await writeFile(
    join(out, "etc", "passwd"),
    `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${IMAGE_UID}:${IMAGE_UID}:nonroot:/home/nonroot:/sbin/nologin\n`,
  );
  await writeFile(join(out, "etc", "group"), `root:x:0:\nnonroot:x:${IMAGE_UID}:\n`);
  // The spools go to TMPDIR; a home for the user. Both writable by it: sticky /tmp as usual,
  // and the home owned by the user in the tar (packRootfs), 0700 as distroless has it.
  await mkdir(join(out, "tmp"), { recursive: true });
  await chmod(join(out, "tmp"), 0o1777);
  await mkdir(join(out, IMAGE_HOME), { recursive: true });
  await chmod(join(out, IMAGE_HOME), 0o700);
  return out;
}

/** Owners in the image's tar by path (relative, no leading `/`); everything else is root's. */
export const IMAGE_OWNERS: Readonly<Record<string, { uid: number; gid: number }>> = {
  [IMAGE_HOME.slice(1)]: { uid: IMAGE_UID, gid: IMAGE_UID },
};

const BLOCK = 512;

/** `value` as a NUL-terminated octal field of `width` bytes. */
function octal(value: number, width: number): string {
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new Error(`${value} does not fit a tar field`);
  return digits.padStart(width - 1, "0") + "\0";
}

/** A ustar header for `name` (a directory's ends in `/`). */
function tarHeader(
  name: string,
  entry: { mode: number; uid: number; gid: number; size: number; directory: boolean },
): Uint8Array {
  const header = new Uint8Array(BLOCK);
  const encoder = new TextEncoder();
  const put = (offset: number, text: string) => header.set(encoder.encode(text), offset);
  let prefix = "";
  let short = name;
  if (encoder.encode(name).length > 100) {
    // Long paths are split at a `/` into the 155-byte prefix and the 100-byte name.
    const cut = name.lastIndexOf("/", name.length - 2);
    prefix = name.slice(0, cut);
    short = name.slice(cut + 1);
    if (cut < 0 || prefix.length > 155 || short.length > 100) {
      throw new Error(`${name}: too long for a tar`);
    }
  }
  put(0, short);
  put(100, octal(entry.mode & 0o7777, 8));
  put(108, octal(entry.uid, 8));
  put(116, octal(entry.gid, 8));
  put(124, octal(entry.size, 12));
  put(136, octal(0, 12)); // mtime: a fixed one, so the same inputs make the same tar
  put(148, "        "); // the checksum counts its own field as spaces
  put(156, entry.directory ? "5" : "0");
  put(257, "ustar\0");
  put(263, "00");
  put(345, prefix);
  const sum = header.reduce((total, byte) => total + byte, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return header;
}

/** Every directory and file under `root`, parents first, as `/`-separated relative paths. */
async function walk(root: string, relative = ""): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await readdir(join(root, relative))).sort()) {
    const path = relative ? `${relative}/${name}` : name;
    const info = await lstat(join(root, path));
    if (info.isDirectory()) found.push(path + "/", ...await walk(root, path));
    else if (info.isFile()) found.push(path);
    else throw new Error(`${join(root, path)}: only directories and regular files go in the image`);
  }
  return found;
}

/**
 * Packs the file system in `root` as the ustar archive `tarPath`, keeping each file's mode, with
 * every entry owned by root except those `owners` names (by default the user's home).
 */
export async function packRootfs(
  root: string,
  tarPath: string,
  owners: Readonly<Record<string, { uid: number; gid: number }>> = IMAGE_OWNERS,
): Promise<string> {
  const out = await open(tarPath, "w");
  try {
    for (const path of await walk(root)) {
      const directory = path.endsWith("/");
      const info = await lstat(join(root, path));
      const owner = owners[directory ? path.slice(0, -1) : path] ?? { uid: 0, gid: 0 };
      const data = directory ? new Uint8Array(0) : await readFile(join(root, path));
      await out.write(tarHeader(path, { mode: info.mode, ...owner, size: data.length, directory }));
      if (data.length > 0) {
        await out.write(data);
        const padding = (BLOCK - (data.length % BLOCK)) % BLOCK;
        if (padding > 0) await out.write(new Uint8Array(padding));
      }
    }
    await out.write(new Uint8Array(BLOCK * 2)); // the end of the archive
  } finally {
    await out.close();
  }
  return tarPath;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { binary: { type: "string" }, out: { type: "string" } },
  });
  const binary = values.binary ?? join(DIST_DIR, "oai-compliance-logs-linux-x64");
  const out = values.out ?? join(DIST_DIR, "image-rootfs");
  await assembleRootfs({ binary, out });
  const tar = await packRootfs(out, `${out}.tar`);
  console.log(`image file system in ${tar}; build with: docker build -t oai-compliance-logs .`);
}
