/**
 * The container image's file system (scripts/image.ts, copied whole by the Dockerfile) is enough
 * to run the tool: the linux-x64 binary runs in it as the image's non-root user, with only what a
 * container runtime adds (/proc, /dev), and downloads from the emulator byte for byte. Run with
 * chroot, which needs root; the GitHub workflow also builds and runs the real image.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chown, mkdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { assembleRootfs, IMAGE_BINARY, IMAGE_UID } from "../../scripts/image.ts";
import { TARGETS } from "../../scripts/targets.ts";
import { distFor } from "./_dist.ts";
import {
  AFTER,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "../helpers/fixtures.ts";
import { SLOW, withDir } from "../helpers/mod.ts";

const LINUX_X64 = TARGETS.find((t) => t.name === "linux-x64")!;
const dist = await distFor([LINUX_X64]);

function whyNot(): string | false {
  if (process.platform !== "linux" || process.arch !== "x64") return "needs a linux-x64 host";
  if (process.getuid?.() !== 0) return "chroot needs root";
  return dist.skip ?? false;
}

/** Runs `fn` with /proc and /dev mounted inside `root`, as a container runtime would. */
async function withMounts<T>(root: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(join(root, "proc"), { recursive: true });
  await mkdir(join(root, "dev"), { recursive: true });
  const mounted: string[] = [];
  try {
    for (
      const args of [["-t", "proc", "proc", join(root, "proc")], [
        "--rbind",
        "/dev",
        join(root, "dev"),
      ]]
    ) {
      const m = spawnSync("mount", args, { encoding: "utf8" });
      assert.equal(m.status, 0, `mount ${args.join(" ")}: ${m.stderr}`);
      mounted.push(args.at(-1)!);
    }
    return await fn();
  } finally {
    for (const path of mounted.reverse()) spawnSync("umount", ["-l", path]);
  }
}

test("the image's file system runs the tool as its non-root user and downloads byte for byte", {
  ...SLOW,
  skip: whyNot(),
}, async () => {
  assert.equal(dist.buildError, undefined, dist.buildError);
  await withDir("oai-image-", async (dir) => {
    const root = await assembleRootfs({ binary: dist.path(LINUX_X64), out: join(dir, "rootfs") });
    assert.ok(!existsSync(join(root, "bin", "sh")), "no shell in the image");
    await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
      // The key as a Kubernetes Secret file would be: read-only, owned by the image's user.
      await mkdir(join(root, "run", "secrets"), { recursive: true });
      await writeFile(join(root, "run", "secrets", "key"), emulator.key + "\n", { mode: 0o400 });
      await chown(join(root, "run", "secrets", "key"), IMAGE_UID, IMAGE_UID);
      const args = [PRINCIPAL, "AUTH_LOG", "2", AFTER];
      const run = await withMounts(root, () =>
        // Not spawnSync: the emulator answers from this very process.
        new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve, reject) => {
          const child = spawn("chroot", [
            `--userspec=${IMAGE_UID}:${IMAGE_UID}`,
            root,
            IMAGE_BINARY,
            ...args,
          ], {
            env: {
              PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", // to find chroot
              COMPLIANCE_API_KEY_FILE: "/run/secrets/key",
              COMPLIANCE_API_BASE: emulator.apiBase,
              TMPDIR: "/tmp",
              HOME: "/home/nonroot",
            },
            stdio: ["ignore", "pipe", "pipe"],
          });
          const out: Buffer[] = [];
          let stderr = "";
          child.stdout.on("data", (c: Buffer) => out.push(c));
          child.stderr.on("data", (c: Buffer) => (stderr += c));
          const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
          child.on("error", reject);
          child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout: Buffer.concat(out), stderr });
          });
        }));
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        new Uint8Array(run.stdout),
        await expectedStream(emulator, idsOf(emulator)),
      );
    });
  });
});
