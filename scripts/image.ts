/**
 * Assembles the container image's whole file system in `dist/image-rootfs/`, for the `Dockerfile`
 * (`FROM scratch`, `COPY dist/image-rootfs/ /`): the linux-x64 binary, the few shared libraries it
 * loads (glibc's, found with `ldd` on the build machine), the CA certificates, and a non-root user.
 * Nothing else: no shell, no package manager. Built offline, so the image needs no base image.
 *
 * Usage: deno task image [--binary dist/oai-compliance-logs-linux-x64] [--out dist/image-rootfs]
 *
 * @example
 * const root = await assembleRootfs({ binary: "dist/oai-compliance-logs-linux-x64", out: "dist/image-rootfs" });
 */
import { spawnSync } from "node:child_process";
import { chmod, copyFile, mkdir, realpath, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { DIST_DIR } from "./targets.ts";

/** The image's user: distroless's `nonroot`, which Kubernetes' `runAsNonRoot` accepts. */
export const IMAGE_UID = 65532;
export const IMAGE_BINARY = "/usr/local/bin/oai-compliance-logs";
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
  // The spools go to TMPDIR; a home for the user. Both writable by it (sticky /tmp as usual).
  await mkdir(join(out, "tmp"), { recursive: true });
  await chmod(join(out, "tmp"), 0o1777);
  await mkdir(join(out, "home", "nonroot"), { recursive: true });
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { binary: { type: "string" }, out: { type: "string" } },
  });
  const binary = values.binary ?? join(DIST_DIR, "oai-compliance-logs-linux-x64");
  const out = values.out ?? join(DIST_DIR, "image-rootfs");
  await assembleRootfs({ binary, out });
  console.log(`image file system in ${out}; build with: podman build -t oai-compliance-logs .`);
}
