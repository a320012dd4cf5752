/**
 * The container image's file system (scripts/image.ts, packed as the tar the Dockerfile ADDs) is
 * enough to run the tool: the tar holds /home/nonroot owned by the image's user and everything
 * else root's, the build context is that tar alone, and (with chroot, which needs root, and the
 * linux-x64 binary from dist/) the binary runs in the unpacked tar with only what a container
 * runtime adds (/proc, /dev), reads the key the ways the README shows (a Kubernetes Secret with
 * fsGroup, `docker run --user` as the key file's owner) and downloads from the emulator byte for
 * byte into the user's home. The GitHub workflow also builds and runs the real image.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmod, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import {
  assembleRootfs,
  IMAGE_BINARY,
  IMAGE_HOME,
  IMAGE_UID,
  packRootfs,
} from "../../scripts/image.ts";
import { REPO_ROOT, TARGETS } from "../../scripts/targets.ts";
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

/** A dynamically linked program of this machine, to stand in for the tool's binary. */
const STAND_IN = ["/bin/true", "/usr/bin/true"].find((p) => existsSync(p));

function tarListing(tar: string): Map<string, string> {
  const list = spawnSync("tar", ["--numeric-owner", "-tvf", tar], { encoding: "utf8" });
  assert.equal(list.status, 0, list.stderr);
  // `drwx------ 65532/65532 0 1970-01-01 00:00 home/nonroot/` -> "home/nonroot/" => "drwx------ 65532/65532"
  const entries = new Map<string, string>();
  for (const line of list.stdout.trim().split("\n")) {
    const [mode, owner, , , , ...path] = line.split(/\s+/);
    entries.set(path.join(" "), `${mode} ${owner}`);
  }
  return entries;
}

test(
  "the image's tar gives /home/nonroot to its user, keeps /tmp sticky, and everything else is root's",
  {
    skip: process.platform !== "linux" || !STAND_IN
      ? "needs Linux (ldd) and a dynamically linked /bin/true"
      : spawnSync("tar", ["--version"]).status !== 0
      ? "tar is not installed"
      : false,
  },
  async () => {
    await withDir("oai-image-tar-", async (dir) => {
      const root = await assembleRootfs({ binary: STAND_IN!, out: join(dir, "rootfs") });
      const entries = tarListing(await packRootfs(root, join(dir, "rootfs.tar")));
      assert.equal(entries.get(`${IMAGE_HOME.slice(1)}/`), `drwx------ ${IMAGE_UID}/${IMAGE_UID}`);
      assert.equal(entries.get("tmp/"), "drwxrwxrwt 0/0");
      assert.equal(entries.get(IMAGE_BINARY.slice(1)), "-rwxr-xr-x 0/0");
      assert.match(entries.get("etc/passwd") ?? "", / 0\/0$/);
      const others = [...entries].filter(([path]) => path !== `${IMAGE_HOME.slice(1)}/`);
      assert.deepEqual(others.filter(([, how]) => !how.endsWith(" 0/0")), []);
      assert.ok(!entries.has("bin/sh"), "no shell in the image");
    });
  },
);

test("the build context is the image's tar alone, and the Dockerfile ADDs it (not COPY: owners)", async () => {
  const ignore = (await readFile(join(REPO_ROOT, ".dockerignore"), "utf8"))
    .split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  assert.deepEqual(ignore, ["*", "!dist/image-rootfs.tar"]);
  const dockerfile = await readFile(join(REPO_ROOT, "Dockerfile"), "utf8");
  const sources = [...dockerfile.matchAll(/^(ADD|COPY)\s+(\S+)\s+(\S+)$/gm)];
  assert.deepEqual(sources.map((m) => [m[1], m[2], m[3]]), [["ADD", "dist/image-rootfs.tar", "/"]]);
  assert.match(dockerfile, /^USER 65532:65532$/m);
});

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

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The tool in `root` as `user` (`uid:gid`), as `docker run --user` or a pod's runAsUser runs it. */
function runIn(root: string, user: string, args: string[], env: Record<string, string>) {
  // Not spawnSync: the emulator answers from this very process.
  return new Promise<Run>((resolve, reject) => {
    const child = spawn("chroot", [`--userspec=${user}`, root, IMAGE_BINARY, ...args], {
      env: {
        PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", // to find chroot
        TMPDIR: "/tmp",
        HOME: IMAGE_HOME,
        ...env,
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
  });
}

test(
  "the unpacked image runs the tool as its user, reads the key as the README shows, writes to its home",
  {
    ...SLOW,
    skip: whyNot(),
  },
  async () => {
    assert.equal(dist.buildError, undefined, dist.buildError);
    await withDir("oai-image-", async (dir) => {
      const assembled = await assembleRootfs({
        binary: dist.path(LINUX_X64),
        out: join(dir, "rootfs"),
      });
      const tar = await packRootfs(assembled, join(dir, "rootfs.tar"));
      // The image as ADD unpacks it: with the tar's owners.
      const root = join(dir, "image");
      await mkdir(root);
      const untar = spawnSync("tar", ["--numeric-owner", "-xpf", tar, "-C", root], {
        encoding: "utf8",
      });
      assert.equal(untar.status, 0, untar.stderr);
      assert.ok(!existsSync(join(root, "bin", "sh")), "no shell in the image");
      await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
        const secrets = join(root, "run", "secrets");
        await mkdir(secrets, { recursive: true });
        const key = join(secrets, "key");
        await writeFile(key, emulator.key + "\n");
        const env = {
          COMPLIANCE_API_KEY_FILE: "/run/secrets/key",
          COMPLIANCE_API_BASE: emulator.apiBase,
        };
        const expected = await expectedStream(emulator, idsOf(emulator));
        const image = `${IMAGE_UID}:${IMAGE_UID}`;

        // A Kubernetes Secret with defaultMode 0440 and fsGroup 65532: root's file, the pod's group.
        await chown(key, 0, IMAGE_UID);
        await chmod(key, 0o440);
        const output = `${IMAGE_HOME}/auth.jsonl`;
        const k8s = await withMounts(
          root,
          () => runIn(root, image, [PRINCIPAL, "AUTH_LOG", "2", AFTER, "-o", output], env),
        );
        assert.equal(k8s.code, 0, k8s.stderr);
        assert.deepEqual(new Uint8Array(await readFile(join(root, output))), expected);

        // A key file readable only by its owner (uid 1000), as the README advises: the image's
        // own user cannot read it, and `docker run --user 1000:1000` can.
        await chown(key, 1000, 1000);
        await chmod(key, 0o600);
        const refused = await withMounts(
          root,
          () => runIn(root, image, [PRINCIPAL, "AUTH_LOG", "2", AFTER], env),
        );
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /\/run\/secrets\/key/);
        const asOwner = await withMounts(
          root,
          () => runIn(root, "1000:1000", [PRINCIPAL, "AUTH_LOG", "2", AFTER], env),
        );
        assert.equal(asOwner.code, 0, asOwner.stderr);
        assert.deepEqual(new Uint8Array(asOwner.stdout), expected);
      });
    });
  },
);
