/**
 * `install.sh` and `install.ps1` against a release server on 127.0.0.1.
 *
 * install.sh runs under dash and bash (and piped from curl, as users run it): which release file
 * it picks for each OS, CPU and libc (with `uname`, `sysctl` and `ldd` stand-ins first on PATH and
 * stub "binaries" that print a version), that it refuses a tampered binary or SHA256SUMS and then
 * installs nothing and leaves an existing copy alone, version pinning against GitHub's URL layout,
 * a clear line for an unsupported platform, wget and shasum fallbacks, and the PATH advice; the
 * route from a clone (`--from dist`, and the one line a clone's copy says without it), the release
 * workflow's fill-in of the repository, and docs without an OWNER placeholder or a version other
 * than the project's. Then it
 * installs the real binary for this machine from `dist/` (skipped when dist/ lacks it, built first
 * in CI, like the release checks).
 *
 * install.ps1 runs only on Windows (the install-scripts job on windows-latest): Windows
 * PowerShell 5.1 and PowerShell 7, piped through `irm | iex`, against the windows-x64 binary.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import denoConfig from "../../deno.json" with { type: "json" };
import { fileName, hostTarget, REPO_ROOT } from "../../scripts/targets.ts";
import { distFor, IN_CI } from "./_dist.ts";
import {
  releaseDir,
  type Served,
  snapshotDist,
  startReleaseServer,
} from "../helpers/release_server.ts";

const INSTALL_SH = join(REPO_ROOT, "install.sh");
const INSTALL_PS1 = join(REPO_ROOT, "install.ps1");
const TOOL = "oai-compliance-logs";
const VERSION = denoConfig.version;
const TIMEOUT = { timeout: 120_000 };
const WINDOWS = process.platform === "win32";

// ---------------------------------------------------------------------------------------------
// Running the scripts

function available(command: string, args: string[] = ["-c", "exit 0"]): boolean {
  const run = spawnSync(command, args, { stdio: "ignore" });
  return !run.error && run.status === 0;
}

/** The POSIX shells install.sh must work under, each with why it cannot run here (if so). */
const SHELLS: { shell: string; skip?: string }[] = ["dash", "bash"].map((name) => {
  if (WINDOWS) {
    return { shell: name, skip: "install.sh is for Linux and macOS (install.ps1 on Windows)" };
  }
  // By absolute path: some tests give install.sh a PATH without the shells on it.
  const shell = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim() ||
    name;
  if (available(shell)) return { shell };
  const reason = `${name} is not installed (Debian: apt-get install ${name})`;
  // In CI a missing shell is a failure, as a missing binary is (see _dist.ts).
  return IN_CI ? { shell } : { shell, skip: reason };
});
const POSIX_SKIP = SHELLS.find((s) => s.skip)?.skip;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with exactly `env` (plus nothing inherited) and collects its output. */
function runWith(argv: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => stdout += chunk);
    child.stderr.on("data", (chunk) => stderr += chunk);
    child.on("error", reject);
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** A scratch directory for one test, removed afterwards. */
async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "oai-install-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface ShOptions {
  /** OAI_COMPLIANCE_LOGS_* and other variables. */
  env?: Record<string, string>;
  /** Directories put first on PATH (stand-ins for uname, sysctl, ldd). */
  pathFirst?: string[];
  /** Replaces PATH entirely. */
  path?: string;
  home: string;
}

/** Runs install.sh under `shell` with a clean environment: PATH, HOME, SHELL and `env`. */
function installSh(shell: string, options: ShOptions): Promise<Run> {
  const path = options.path ?? [...(options.pathFirst ?? []), process.env.PATH ?? ""].join(
    delimiter,
  );
  return runWith([shell, INSTALL_SH], {
    PATH: path,
    HOME: options.home,
    SHELL: "/bin/bash",
    ...options.env,
  });
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

/** What an install directory holds: an installer that failed must leave no file, temp or not. */
async function listing(dir: string): Promise<string[]> {
  return (await exists(dir)) ? (await readdir(dir)).sort() : [];
}

// ---------------------------------------------------------------------------------------------
// Stub releases: every release file name, each a tiny script that prints a version

const STUB_NAMES = [
  "linux-x64",
  "linux-arm64",
  "linux-x64-musl",
  "linux-arm64-musl",
  "darwin-x64",
  "darwin-arm64",
  "windows-x64.exe",
  "windows-arm64.exe",
].map((suffix) => `${TOOL}-${suffix}`);

const encoder = new TextEncoder();

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `--version` output of a stub, naming the file it was installed from. */
function stubVersion(name: string, version = VERSION): string {
  return `${TOOL} ${version} (stub ${name})`;
}

/** A release whose binaries are shell scripts printing `stubVersion`, with its SHA256SUMS. */
function stubRelease(
  options: { names?: string[]; version?: string; prefix?: string } = {},
): Record<string, Served> {
  const files: Record<string, Served> = {};
  const sums: string[] = [];
  const at = (name: string) => options.prefix ? `${options.prefix}/${name}` : name;
  for (const name of options.names ?? STUB_NAMES) {
    const bytes = encoder.encode(`#!/bin/sh\necho "${stubVersion(name, options.version)}"\n`);
    files[at(name)] = bytes;
    sums.push(`${sha256(bytes)}  ${name}\n`);
  }
  files[at("SHA256SUMS")] = encoder.encode(sums.join(""));
  return files;
}

interface FakePlatform {
  unameS: string;
  unameM: string;
  /** What `sysctl -n sysctl.proc_translated` prints (Rosetta: 1); absent: the command fails. */
  translated?: string;
  /** `ldd --version`'s first line; the musl one goes to stderr with exit 1, like musl's ldd. */
  ldd?: "glibc" | "musl";
}

/** A directory of `uname`, `sysctl` and `ldd` stand-ins describing another machine. */
async function fakePlatform(dir: string, platform: FakePlatform): Promise<string> {
  const bin = join(dir, "fake-bin");
  await mkdir(bin, { recursive: true });
  const script = async (name: string, body: string) => {
    await writeFile(join(bin, name), `#!/bin/sh\n${body}\n`);
    await chmod(join(bin, name), 0o755);
  };
  await script(
    "uname",
    `case "$1" in -m) echo '${platform.unameM}' ;; *) echo '${platform.unameS}' ;; esac`,
  );
  await script(
    "sysctl",
    platform.translated === undefined
      ? `echo "sysctl: unknown oid '$2'" >&2; exit 1`
      : `[ "$2" = sysctl.proc_translated ] && echo ${platform.translated}`,
  );
  await script(
    "ldd",
    platform.ldd === "musl"
      ? `echo 'musl libc (x86_64)' >&2; echo 'Version 1.2.4' >&2; exit 1`
      : `echo 'ldd (GNU libc) 2.36'`,
  );
  return bin;
}

/** Starts a release server for `files`, runs `fn`, and always stops it. */
async function withServer<T>(
  files: Record<string, Served>,
  fn: (server: Awaited<ReturnType<typeof startReleaseServer>>) => Promise<T>,
  flip?: { path: string; offset: number },
): Promise<T> {
  const server = await startReleaseServer({ files, flip });
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Which file for which machine

const PLATFORMS: {
  what: string;
  platform: FakePlatform;
  env?: Record<string, string>;
  asset: string;
}[] = [
  {
    what: "Linux x86_64, glibc",
    platform: { unameS: "Linux", unameM: "x86_64", ldd: "glibc" },
    asset: "linux-x64",
  },
  {
    what: "Linux aarch64, glibc",
    platform: { unameS: "Linux", unameM: "aarch64", ldd: "glibc" },
    asset: "linux-arm64",
  },
  {
    what: "Linux x86_64, musl (Alpine)",
    platform: { unameS: "Linux", unameM: "x86_64", ldd: "musl" },
    asset: "linux-x64-musl",
  },
  {
    what: "Linux aarch64, musl",
    platform: { unameS: "Linux", unameM: "aarch64", ldd: "musl" },
    asset: "linux-arm64-musl",
  },
  {
    what: "macOS on Intel",
    platform: { unameS: "Darwin", unameM: "x86_64", translated: "0" },
    asset: "darwin-x64",
  },
  {
    what: "macOS on Intel, sysctl without the Rosetta key",
    platform: { unameS: "Darwin", unameM: "x86_64" },
    asset: "darwin-x64",
  },
  {
    what: "macOS on Apple silicon, from a shell under Rosetta",
    platform: { unameS: "Darwin", unameM: "x86_64", translated: "1" },
    asset: "darwin-arm64",
  },
  {
    what: "macOS on Apple silicon",
    platform: { unameS: "Darwin", unameM: "arm64" },
    asset: "darwin-arm64",
  },
  {
    what: "Windows x64 (Git Bash)",
    platform: { unameS: "MINGW64_NT-10.0-20348", unameM: "x86_64" },
    env: { PROCESSOR_ARCHITECTURE: "AMD64" },
    asset: "windows-x64.exe",
  },
  {
    what: "Windows on ARM (emulated Git Bash)",
    platform: { unameS: "MINGW64_NT-10.0-22631", unameM: "x86_64" },
    env: { PROCESSOR_ARCHITECTURE: "AMD64", PROCESSOR_ARCHITEW6432: "ARM64" },
    asset: "windows-arm64.exe",
  },
];

for (const { what, platform, env, asset } of PLATFORMS) {
  test(`install.sh picks ${TOOL}-${asset} on ${what}, under dash and bash`, {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  }, async () => {
    await withServer(stubRelease(), async (server) => {
      for (const { shell } of SHELLS) {
        await withTemp(async (dir) => {
          const into = join(dir, "bin");
          const run = await installSh(shell, {
            home: dir,
            pathFirst: [await fakePlatform(dir, platform)],
            env: {
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: into,
              ...env,
            },
          });
          assert.equal(run.code, 0, `${shell}: ${run.stderr}`);
          const installed = TOOL + (asset.endsWith(".exe") ? ".exe" : "");
          assert.deepEqual(await listing(into), [installed], shell);
          assert.match(
            run.stdout,
            new RegExp(`Installed ${escape(stubVersion(`${TOOL}-${asset}`))} to `),
          );
          assert.equal(server.requests.at(-1), `${TOOL}-${asset}`, shell);
        });
      }
    });
  });
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const UNSUPPORTED: { what: string; platform: FakePlatform; shown: string }[] = [
  { what: "FreeBSD", platform: { unameS: "FreeBSD", unameM: "amd64" }, shown: "FreeBSD amd64" },
  {
    what: "32-bit ARM Linux",
    platform: { unameS: "Linux", unameM: "armv7l", ldd: "glibc" },
    shown: "Linux armv7l",
  },
  {
    what: "32-bit x86 Linux",
    platform: { unameS: "Linux", unameM: "i686", ldd: "glibc" },
    shown: "Linux i686",
  },
  { what: "Solaris", platform: { unameS: "SunOS", unameM: "i86pc" }, shown: "SunOS i86pc" },
];

for (const { what, platform, shown } of UNSUPPORTED) {
  test(
    `install.sh on ${what} says in one line that there is no binary for it, and installs nothing`,
    {
      ...TIMEOUT,
      skip: POSIX_SKIP,
    },
    async () => {
      await withServer(stubRelease(), async (server) => {
        for (const { shell } of SHELLS) {
          await withTemp(async (dir) => {
            const into = join(dir, "bin");
            const run = await installSh(shell, {
              home: dir,
              pathFirst: [await fakePlatform(dir, platform)],
              env: {
                OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
                OAI_COMPLIANCE_LOGS_INSTALL: into,
              },
            });
            assert.notEqual(run.code, 0, shell);
            assert.equal(
              run.stderr,
              `error: no ${TOOL} binary for ${shown}: there are builds for Linux x64 and arm64 (glibc and musl), macOS x64 and arm64, and Windows x64 and arm64; elsewhere, build from source (docs/BINARIES.md)\n`,
              shell,
            );
            assert.deepEqual(await listing(into), [], shell);
            assert.deepEqual(server.requests, [], "nothing downloaded");
          });
        }
      });
    },
  );
}

test("install.sh on musl, with a release that has no musl build, says so and downloads no binary", {
  ...TIMEOUT,
  skip: POSIX_SKIP,
}, async () => {
  const glibcOnly = STUB_NAMES.filter((name) => !name.endsWith("-musl"));
  await withServer(stubRelease({ names: glibcOnly }), async (server) => {
    for (const { shell } of SHELLS) {
      await withTemp(async (dir) => {
        const into = join(dir, "bin");
        const run = await installSh(shell, {
          home: dir,
          pathFirst: [await fakePlatform(dir, { unameS: "Linux", unameM: "x86_64", ldd: "musl" })],
          env: { OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url, OAI_COMPLIANCE_LOGS_INSTALL: into },
        });
        assert.equal(run.code, 1, shell);
        assert.match(
          run.stderr,
          /lists no oai-compliance-logs-linux-x64-musl: this release has no musl build/,
        );
        assert.deepEqual(await listing(into), [], shell);
      });
    }
    assert.ok(server.requests.every((path) => path === "SHA256SUMS"), server.requests.join(" "));
  });
});

test(
  "install.sh refuses a binary that does not run here (checksum OK), with the libstdc++ hint on musl",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    const release = stubRelease();
    const broken = encoder.encode(
      "#!/bin/sh\necho 'Error loading shared library libstdc++.so.6: No such file or directory' >&2\nexit 127\n",
    );
    const name = `${TOOL}-linux-x64-musl`;
    const sums = new TextDecoder().decode(release.SHA256SUMS as Uint8Array)
      .replace(/^[0-9a-f]{64}(?= {2}oai-compliance-logs-linux-x64-musl$)/m, sha256(broken));
    await withServer(
      { ...release, [name]: broken, SHA256SUMS: encoder.encode(sums) },
      async (server) => {
        for (const { shell } of SHELLS) {
          await withTemp(async (dir) => {
            const into = join(dir, "bin");
            const run = await installSh(shell, {
              home: dir,
              pathFirst: [
                await fakePlatform(dir, { unameS: "Linux", unameM: "x86_64", ldd: "musl" }),
              ],
              env: {
                OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
                OAI_COMPLIANCE_LOGS_INSTALL: into,
              },
            });
            assert.equal(run.code, 1, shell);
            assert.equal(
              run.stderr,
              `error: the downloaded ${name} (checksum OK) does not run on this machine (on Alpine it needs libstdc++: apk add libstdc++): Error loading shared library libstdc++.so.6: No such file or directory; nothing was installed\n`,
            );
            assert.deepEqual(await listing(into), []);
          });
        }
      },
    );
  },
);

// ---------------------------------------------------------------------------------------------
// Checksums

const HOST_LIKE: FakePlatform = { unameS: "Linux", unameM: "x86_64", ldd: "glibc" };
const HOST_ASSET = `${TOOL}-linux-x64`;

test(
  "install.sh refuses a binary that does not match SHA256SUMS: checksum message, nothing installed, the old copy kept",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    const release = stubRelease();
    const stub = release[HOST_ASSET] as Uint8Array;
    await withServer(release, async (server) => {
      for (const { shell } of SHELLS) {
        await withTemp(async (dir) => {
          const into = join(dir, "bin");
          await mkdir(into);
          await writeFile(join(into, TOOL), "#!/bin/sh\necho old\n", { mode: 0o755 });
          const run = await installSh(shell, {
            home: dir,
            pathFirst: [await fakePlatform(dir, HOST_LIKE)],
            env: {
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: into,
            },
          });
          assert.equal(run.code, 1, shell);
          const tampered = new Uint8Array(stub);
          tampered[12] ^= 0xff;
          assert.equal(
            run.stderr,
            `error: checksum mismatch for ${HOST_ASSET}: SHA256SUMS says ${
              sha256(stub)
            }, the download is ${
              sha256(tampered)
            }; refusing to install it (nothing was installed)\n`,
          );
          assert.deepEqual(await listing(into), [TOOL], "a temporary file was left behind");
          assert.equal(await readFile(join(into, TOOL), "utf8"), "#!/bin/sh\necho old\n");
        });
      }
    }, { path: HOST_ASSET, offset: 12 });
  },
);

test("install.sh refuses when SHA256SUMS was altered (another digest, or a malformed one)", {
  ...TIMEOUT,
  skip: POSIX_SKIP,
}, async () => {
  const release = stubRelease();
  const sums = new TextDecoder().decode(release.SHA256SUMS as Uint8Array);
  const line = sums.split("\n").find((l) => l.endsWith(`  ${HOST_ASSET}`))!;
  const digest = line.slice(0, 64);
  const other = digest.slice(0, 63) + (digest[63] === "0" ? "1" : "0");
  for (
    const [altered, message] of [
      [
        sums.replace(line, `${other}  ${HOST_ASSET}`),
        /^error: checksum mismatch for oai-compliance-logs-linux-x64: SHA256SUMS says [0-9a-f]{64}, the download is [0-9a-f]{64}; refusing to install it/,
      ],
      [
        sums.replace(line, `${digest.slice(1)}  ${HOST_ASSET}`),
        /^error: .*SHA256SUMS has no valid SHA-256 for oai-compliance-logs-linux-x64; nothing was installed$/m,
      ],
    ] as const
  ) {
    await withServer({ ...release, SHA256SUMS: encoder.encode(altered) }, async (server) => {
      for (const { shell } of SHELLS) {
        await withTemp(async (dir) => {
          const into = join(dir, "bin");
          const run = await installSh(shell, {
            home: dir,
            pathFirst: [await fakePlatform(dir, HOST_LIKE)],
            env: {
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: into,
            },
          });
          assert.equal(run.code, 1, shell);
          assert.match(run.stderr, message, shell);
          assert.match(run.stderr, /SHA-?256|checksum/i);
          assert.deepEqual(await listing(into), [], shell);
        });
      }
    });
  }
});

test("install.sh reads SHA256SUMS with CRLF line ends and binary-mode '*' names", {
  ...TIMEOUT,
  skip: POSIX_SKIP,
}, async () => {
  const release = stubRelease();
  // What `sha256sum -b` on Windows, or an editor there, may leave: upper case, `*name`, CRLF.
  const sums = new TextDecoder().decode(release.SHA256SUMS as Uint8Array)
    .split("\n").filter(Boolean)
    .map((line) => `${line.slice(0, 64).toUpperCase()} *${line.slice(66)}\r\n`).join("");
  await withServer({ ...release, SHA256SUMS: encoder.encode(sums) }, async (server) => {
    await withTemp(async (dir) => {
      const run = await installSh("sh", {
        home: dir,
        pathFirst: [await fakePlatform(dir, HOST_LIKE)],
        env: {
          OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
          OAI_COMPLIANCE_LOGS_INSTALL: join(dir, "bin"),
        },
      });
      assert.equal(run.code, 0, run.stderr + sums);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Versions, locations, tools

test("install.sh pins a version with OAI_COMPLIANCE_LOGS_VERSION against GitHub's release URLs", {
  ...TIMEOUT,
  skip: POSIX_SKIP,
}, async () => {
  const repo = "acme/oai-compliance-logs";
  const files = {
    ...stubRelease({ version: "0.3.0", prefix: `${repo}/releases/latest/download` }),
    ...stubRelease({ version: "0.2.0", prefix: `${repo}/releases/download/v0.2.0` }),
  };
  await withServer(files, async (server) => {
    for (const { shell } of SHELLS) {
      for (
        const [pin, version] of [[undefined, "0.3.0"], ["v0.2.0", "0.2.0"], ["0.2.0", "0.2.0"], [
          "latest",
          "0.3.0",
        ]]
      ) {
        await withTemp(async (dir) => {
          const run = await installSh(shell, {
            home: dir,
            pathFirst: [await fakePlatform(dir, HOST_LIKE)],
            env: {
              OAI_COMPLIANCE_LOGS_REPO: repo,
              OAI_COMPLIANCE_LOGS_GITHUB_URL: `${server.url}/`,
              OAI_COMPLIANCE_LOGS_INSTALL: join(dir, "bin"),
              ...(pin ? { OAI_COMPLIANCE_LOGS_VERSION: pin } : {}),
            },
          });
          assert.equal(run.code, 0, `${shell} ${pin}: ${run.stderr}`);
          assert.match(
            run.stdout,
            new RegExp(`Installed ${escape(stubVersion(HOST_ASSET, version))}`),
          );
        });
      }
      await withTemp(async (dir) => {
        const run = await installSh(shell, {
          home: dir,
          pathFirst: [await fakePlatform(dir, HOST_LIKE)],
          env: {
            OAI_COMPLIANCE_LOGS_REPO: repo,
            OAI_COMPLIANCE_LOGS_GITHUB_URL: server.url,
            OAI_COMPLIANCE_LOGS_INSTALL: join(dir, "bin"),
            OAI_COMPLIANCE_LOGS_VERSION: "v9.9.9",
          },
        });
        assert.equal(run.code, 1);
        assert.match(
          run.stderr,
          new RegExp(
            `error: cannot download ${
              escape(server.url)
            }/acme/oai-compliance-logs/releases/download/v9\\.9\\.9/SHA256SUMS \\(is v9\\.9\\.9 a release\\?\\); nothing was installed`,
          ),
        );
        assert.deepEqual(await listing(join(dir, "bin")), []);
      });
    }
  });
});

test(
  "install.sh refuses a mirror that holds another version than the one pinned, and bad settings",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    await withServer(stubRelease({ version: "0.3.0" }), async (server) => {
      for (const { shell } of SHELLS) {
        const cases: [Record<string, string>, RegExp][] = [
          [
            { OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url, OAI_COMPLIANCE_LOGS_VERSION: "v0.2.0" },
            /^error: asked for v0\.2\.0, but http:\/\/127\.0\.0\.1:\d+ holds oai-compliance-logs 0\.3\.0 \(stub oai-compliance-logs-linux-x64\); nothing was installed\n$/,
          ],
          [
            { OAI_COMPLIANCE_LOGS_VERSION: "../../evil" },
            /^error: OAI_COMPLIANCE_LOGS_VERSION must be a release tag such as v0\.1\.0, got '\.\.\/\.\.\/evil'\n$/,
          ],
          [
            {},
            /^error: this install\.sh is a clone's copy, which names no release to download: build and install from dist\/ \(deno task build, then sh install\.sh --from dist\), or set OAI_COMPLIANCE_LOGS_REPO=<owner>\/<name> or OAI_COMPLIANCE_LOGS_DOWNLOAD_URL\n$/,
          ],
          [
            { OAI_COMPLIANCE_LOGS_REPO: "acme" },
            /^error: OAI_COMPLIANCE_LOGS_REPO must be <owner>\/<name>, got 'acme'\n$/,
          ],
          [
            { OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: `${server.url}/nowhere` },
            /error: cannot download http:\/\/127\.0\.0\.1:\d+\/nowhere\/SHA256SUMS; nothing was installed\n$/,
          ],
        ];
        for (const [env, message] of cases) {
          await withTemp(async (dir) => {
            const into = join(dir, "bin");
            const run = await installSh(shell, {
              home: dir,
              pathFirst: [await fakePlatform(dir, HOST_LIKE)],
              env: { OAI_COMPLIANCE_LOGS_INSTALL: into, ...env },
            });
            assert.equal(run.code, 1, `${shell} ${JSON.stringify(env)}`);
            assert.match(run.stderr, message, `${shell} ${JSON.stringify(env)}`);
            assert.deepEqual(await listing(into), []);
          });
        }
      }
    });
  },
);

test("install.sh installs into ~/.local/bin by default and says how to put it on PATH", {
  ...TIMEOUT,
  skip: POSIX_SKIP,
}, async () => {
  await withServer(stubRelease(), async (server) => {
    for (const { shell } of SHELLS) {
      await withTemp(async (dir) => {
        const fake = await fakePlatform(dir, HOST_LIKE);
        const env = { OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url };
        const first = await installSh(shell, { home: dir, pathFirst: [fake], env });
        assert.equal(first.code, 0, first.stderr);
        const bin = join(dir, ".local", "bin");
        assert.deepEqual(await listing(bin), [TOOL]);
        assert.ok((await stat(join(bin, TOOL))).mode & 0o100, "not executable");
        assert.match(first.stdout, /\.local\/bin is not on your PATH\. Add it with:\n/);
        assert.ok(
          first.stdout.includes(
            `  echo 'export PATH="$HOME/.local/bin:$PATH"' >> ~/.bashrc\n`,
          ),
          first.stdout,
        );
        // Again, now with the directory on PATH: it replaces the copy and says how to run it.
        const second = await installSh(shell, { home: dir, pathFirst: [fake, bin], env });
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stdout, /Run: oai-compliance-logs --help\n$/);
        assert.deepEqual(await listing(bin), [TOOL]);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// From a clone: --from DIR, and the release workflow's copy

/** Writes `files` (a stub release) into `dir` as the build writes dist/. */
async function writeRelease(dir: string, files: Record<string, Served>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    await writeFile(join(dir, name), bytes as Uint8Array);
  }
  return dir;
}

test(
  "install.sh --from DIR installs from a local dist/, with no curl or wget, under dash and bash",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    for (const { shell } of SHELLS) {
      await withTemp(async (dir) => {
        const dist = await writeRelease(join(dir, "clone", "dist"), stubRelease());
        const fake = await fakePlatform(dir, HOST_LIKE);
        const into = join(dir, "bin");
        for (const args of [["--from", dist], [`--from=${dist}`]]) {
          const run = await runWith([shell, INSTALL_SH, ...args], {
            PATH: await restrictedPath(await mkdtemp(join(dir, "path-")), fake, [
              "curl",
              "wget",
            ]),
            HOME: dir,
            OAI_COMPLIANCE_LOGS_INSTALL: into,
            OAI_COMPLIANCE_LOGS_VERSION: `v${VERSION}`,
          });
          assert.equal(run.code, 0, `${shell} ${args}: ${run.stderr}`);
          assert.match(
            run.stdout,
            new RegExp(`Installing ${TOOL} \\(linux-x64\\) from ${escape(dist)}\n`),
          );
          assert.match(run.stdout, new RegExp(`Installed ${escape(stubVersion(HOST_ASSET))} to `));
          assert.deepEqual(await listing(into), [TOOL]);
        }
      });
    }
  },
);

test(
  "install.sh --from names what is missing: the directory, SHA256SUMS, the binary, the argument",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    await withTemp(async (dir) => {
      const fake = await fakePlatform(dir, HOST_LIKE);
      const empty = join(dir, "empty");
      await mkdir(empty);
      const armOnly = await writeRelease(
        join(dir, "arm-only"),
        stubRelease({ names: [`${TOOL}-linux-arm64`] }),
      );
      const cases: [string[], RegExp][] = [
        [
          ["--from", join(dir, "nowhere")],
          /^error: --from .*\/nowhere: no such directory \(build first: deno task build\)\n$/,
        ],
        [
          ["--from", empty],
          /^error: cannot read .*\/empty\/SHA256SUMS \(build first: deno task build\); nothing was installed\n$/,
        ],
        [
          ["--from", armOnly],
          /lists no oai-compliance-logs-linux-x64: this release has no binary for linux-x64 \(build it: deno task build --target linux-x64\); nothing was installed\n$/,
        ],
        [["--from"], /^error: --from needs a directory, e\.g\. --from dist\n$/],
        [
          ["--form", "dist"],
          /^error: unknown argument '--form' \(usage: install\.sh \[--from DIR\]\)\n$/,
        ],
      ];
      for (const [args, message] of cases) {
        const into = join(dir, "bin");
        const run = await runWith([SHELLS[0].shell, INSTALL_SH, ...args], {
          PATH: [fake, process.env.PATH ?? ""].join(delimiter),
          HOME: dir,
          OAI_COMPLIANCE_LOGS_INSTALL: into,
        });
        assert.equal(run.code, 1, `${args}: ${run.stderr}`);
        assert.match(run.stderr, message, args.join(" "));
        assert.deepEqual(await listing(into), []);
      }
      const help = await runWith([SHELLS[0].shell, INSTALL_SH, "--help"], {
        PATH: process.env.PATH ?? "",
      });
      assert.equal(help.code, 0);
      assert.match(help.stdout, /^usage: install\.sh \[--from DIR\]\n/);
    });
  },
);

test(
  "the release workflow writes its repository into install.sh and install.ps1, the one place that names it",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    const workflow = await readFile(join(REPO_ROOT, ".github", "workflows", "ci.yml"), "utf8");
    const sh = await readFile(INSTALL_SH, "utf8");
    const ps1 = await readFile(INSTALL_PS1, "utf8");
    // In the source the repository is named nowhere: one empty line per script, filled at release.
    assert.deepEqual(sh.match(/^DEFAULT_REPO=.*$/gm), ['DEFAULT_REPO=""']);
    assert.deepEqual(ps1.match(/^\$DefaultRepo = .*$/gm), ['$DefaultRepo = ""']);
    assert.ok(
      workflow.includes('s|^DEFAULT_REPO=.*|DEFAULT_REPO=\\"$REPOSITORY\\"|'),
      "workflow sed",
    );
    assert.ok(
      workflow.includes('s|^\\$DefaultRepo = .*|\\$DefaultRepo = \\"$REPOSITORY\\"|'),
      "workflow sed",
    );
    // The release's copy, as that line of the workflow writes it, installs with no setting at all.
    const repo = "acme/oai-compliance-logs";
    const released = sh.replace(/^DEFAULT_REPO=.*$/m, `DEFAULT_REPO="${repo}"`);
    const files = stubRelease({ prefix: `${repo}/releases/latest/download` });
    await withServer(files, async (server) => {
      for (const { shell } of SHELLS) {
        await withTemp(async (dir) => {
          const script = join(dir, "install.sh");
          await writeFile(script, released);
          const run = await runWith([shell, script], {
            PATH: [await fakePlatform(dir, HOST_LIKE), process.env.PATH ?? ""].join(delimiter),
            HOME: dir,
            OAI_COMPLIANCE_LOGS_GITHUB_URL: server.url,
            OAI_COMPLIANCE_LOGS_INSTALL: join(dir, "bin"),
          });
          assert.equal(run.code, 0, `${shell}: ${run.stderr}`);
          assert.match(
            run.stdout,
            new RegExp(
              `from ${escape(server.url)}/acme/oai-compliance-logs/releases/latest/download\n`,
            ),
          );
        });
      }
    });
  },
);

test("the install docs name no OWNER placeholder, and every pinned version is the project's", async () => {
  const docs = [
    "README.md",
    "docs/BINARIES.md",
    "action.yml",
    "install.sh",
    "install.ps1",
    "Dockerfile",
  ];
  for (const path of docs) {
    const text = await readFile(join(REPO_ROOT, path), "utf8");
    assert.doesNotMatch(text, /\bOWNER\b/, path);
    for (const [pin] of text.matchAll(/(?<![\w.])v\d+\.\d+\.\d+\b/g)) {
      assert.equal(pin, `v${VERSION}`, `${path} pins ${pin}, the project is ${VERSION}`);
    }
    // The action is referenced by a tag a release creates: a full version.
    for (const [, action, ref] of text.matchAll(/uses: ([^\s@]+)@(\S+)/g)) {
      if (!action.startsWith("actions/")) assert.equal(ref, `v${VERSION}`, `${path}: ${action}`);
    }
  }
});

/** A PATH of links to the commands install.sh may use, leaving out `without`. */
async function restrictedPath(dir: string, fake: string, without: string[]): Promise<string> {
  const bin = join(dir, "restricted-bin");
  await mkdir(bin);
  const wanted = [
    "cp",
    "mkdir",
    "chmod",
    "mv",
    "rm",
    "awk",
    "tr",
    "cut",
    "sed",
    "getconf",
    "cat",
    "curl",
    "wget",
    "sha256sum",
    "shasum",
    "openssl",
    "perl",
  ];
  for (const name of wanted.filter((n) => !without.includes(n))) {
    const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
    if (found.startsWith("/")) await symlink(found, join(bin, name));
  }
  return [fake, bin].join(delimiter);
}

test(
  "install.sh falls back to wget, and to shasum or openssl, and refuses without any hashing tool",
  {
    ...TIMEOUT,
    skip: POSIX_SKIP,
  },
  async () => {
    const have = (name: string) => available("sh", ["-c", `command -v ${name}`]);
    await withServer(stubRelease(), async (server) => {
      const cases: { without: string[]; needs: string[] }[] = [
        { without: ["curl"], needs: ["wget"] },
        { without: ["sha256sum"], needs: ["shasum"] },
        { without: ["sha256sum", "shasum"], needs: ["openssl"] },
      ];
      for (const { without, needs } of cases) {
        if (!needs.every(have)) {
          if (IN_CI && process.platform === "linux") {
            assert.fail(`${needs.join(", ")} not installed`);
          }
          continue;
        }
        await withTemp(async (dir) => {
          const run = await installSh(SHELLS[0].shell, {
            home: dir,
            path: await restrictedPath(dir, await fakePlatform(dir, HOST_LIKE), without),
            env: {
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: join(dir, "bin"),
            },
          });
          assert.equal(run.code, 0, `without ${without}: ${run.stderr}`);
          assert.deepEqual(await listing(join(dir, "bin")), [TOOL]);
        });
      }
      await withTemp(async (dir) => {
        const run = await installSh(SHELLS[0].shell, {
          home: dir,
          path: await restrictedPath(dir, await fakePlatform(dir, HOST_LIKE), [
            "sha256sum",
            "shasum",
            "openssl",
          ]),
          env: {
            OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
            OAI_COMPLIANCE_LOGS_INSTALL: join(dir, "bin"),
          },
        });
        assert.equal(run.code, 1);
        assert.equal(
          run.stderr,
          "error: cannot verify the checksum: none of sha256sum, shasum or openssl is installed\n",
        );
        assert.deepEqual(await listing(join(dir, "bin")), []);
      });
    });
  },
);

const BUSYBOX = WINDOWS
  ? ""
  : spawnSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).stdout.trim();

test(
  "install.sh in a BusyBox-only userland, as on Alpine (ash, wget, sha256sum; no curl)",
  {
    ...TIMEOUT,
    skip: WINDOWS
      ? POSIX_SKIP
      : BUSYBOX
      ? undefined
      : "busybox is not installed (Debian: apt-get install busybox)",
  },
  async () => {
    await withServer(stubRelease(), async (server) => {
      await withTemp(async (dir) => {
        const applets = join(dir, "busybox-bin");
        await mkdir(applets);
        const list = spawnSync(BUSYBOX, ["--list"], { encoding: "utf8" }).stdout.split("\n");
        for (const applet of list.filter(Boolean)) await symlink(BUSYBOX, join(applets, applet));
        // Alpine's `ldd` is musl's: the only non-BusyBox command in the picture.
        const fake = await fakePlatform(dir, { unameS: "Linux", unameM: "x86_64", ldd: "musl" });
        await rm(join(fake, "uname"));
        await rm(join(fake, "sysctl"));
        const run = await runWith([join(applets, "sh"), INSTALL_SH], {
          PATH: [fake, applets].join(delimiter),
          HOME: dir,
          OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
        });
        assert.equal(run.code, 0, run.stderr);
        assert.match(
          run.stdout,
          /Installed oai-compliance-logs .* \(stub oai-compliance-logs-linux-x64-musl\) to /,
        );
        assert.match(run.stdout, />> ~\/\.profile\n/);
        assert.deepEqual(await listing(join(dir, ".local", "bin")), [TOOL]);
      });
    });
  },
);

// ---------------------------------------------------------------------------------------------
// The real binary for this machine, from dist/

const host = hostTarget(process.platform, process.arch);
const dist = WINDOWS || !host ? undefined : await distFor([host]);
const REAL_SKIP = POSIX_SKIP ??
  (host ? dist?.skip : `no release target for ${process.platform}-${process.arch}`);

/**
 * This machine's binary from dist/ as a release in `dir` (a snapshot: dist/ is shared), with
 * the install scripts next to it as in a GitHub release; `prefix` puts it under a URL path.
 */
async function distRelease(dir: string, prefix = ""): Promise<Record<string, Served>> {
  await snapshotDist(host!, dir);
  const at = (name: string) => prefix ? `${prefix}/${name}` : name;
  return {
    ...(await releaseDir(dir, prefix)),
    [at("install.sh")]: INSTALL_SH,
    [at("install.ps1")]: INSTALL_PS1,
  };
}

/** Runs `fn` with a fresh snapshot of this machine's release from dist/ (see distRelease). */
async function withDistRelease<T>(
  fn: (files: Record<string, Served>, dir: string) => Promise<T>,
  prefix = "",
): Promise<T> {
  return await withTemp(async (dir) => fn(await distRelease(dir, prefix), dir));
}

test(
  "curl -fsSL <release>/install.sh | sh installs the binary from dist/, under dash and bash, and it runs",
  {
    ...TIMEOUT,
    skip: REAL_SKIP,
  },
  async () => {
    if (dist?.buildError) assert.fail(dist.buildError);
    await withDistRelease((release) =>
      withServer(release, async (server) => {
        for (const { shell } of SHELLS) {
          await withTemp(async (dir) => {
            const into = join(dir, "bin");
            const run = await runWith(["sh", "-c", `curl -fsSL "$URL/install.sh" | ${shell}`], {
              PATH: process.env.PATH ?? "",
              HOME: dir,
              URL: server.url,
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: into,
              OAI_COMPLIANCE_LOGS_VERSION: `v${VERSION}`,
            });
            assert.equal(run.code, 0, `${shell}: ${run.stderr}`);
            assert.deepEqual(await listing(into), [TOOL]);
            const installed = join(into, TOOL);
            assert.match(
              run.stdout,
              new RegExp(
                `Installed ${TOOL} ${escape(VERSION)} .* to ${
                  escape(installed)
                } \\(SHA-256 verified\\)`,
              ),
            );
            const version = await runWith([installed, "--version"], {
              PATH: process.env.PATH ?? "",
            });
            assert.equal(version.code, 0, version.stderr);
            assert.match(version.stdout, new RegExp(`^${TOOL} ${escape(VERSION)}\\b`));
            assert.ok(server.requests.includes(fileName(host!)), server.requests.join(" "));
          });
        }
      })
    );
  },
);

test("install.sh refuses the real binary from dist/ with one byte changed in transit", {
  ...TIMEOUT,
  skip: REAL_SKIP,
}, async () => {
  if (dist?.buildError) assert.fail(dist.buildError);
  const asset = fileName(host!);
  await withDistRelease(async (release, snapshot) => {
    const size = (await stat(join(snapshot, asset))).size;
    await withServer(release, async (server) => {
      for (const { shell } of SHELLS) {
        await withTemp(async (dir) => {
          const into = join(dir, "bin");
          const run = await installSh(shell, {
            home: dir,
            env: {
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: into,
            },
          });
          assert.equal(run.code, 1, shell);
          assert.match(
            run.stderr,
            new RegExp(`^error: checksum mismatch for ${escape(asset)}: .*nothing was installed`),
          );
          assert.deepEqual(await listing(into), []);
        });
      }
    }, { path: asset, offset: Math.floor(size / 2) });
  });
});

// ---------------------------------------------------------------------------------------------
// install.ps1 (Windows only)

const POWERSHELLS = WINDOWS
  ? ["powershell.exe", "pwsh.exe"].filter((ps) =>
    available(ps, ["-NoProfile", "-Command", "exit 0"])
  )
  : [];
const PS_SKIP = !WINDOWS
  ? "install.ps1 runs only on Windows (the install-scripts job on windows-latest runs it)"
  : POWERSHELLS.length === 0
  ? "neither powershell.exe nor pwsh.exe runs here"
  : host
  ? undefined
  : `no release target for ${process.platform}-${process.arch}`;
const psDist = PS_SKIP ? undefined : await distFor([host!]);

/** `irm <url>/install.ps1 | iex` in a PowerShell with the OAI_COMPLIANCE_LOGS_* variables set. */
function installPs1(ps: string, url: string, env: Record<string, string>): Promise<Run> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) =>
      v !== undefined && !k.startsWith("OAI_COMPLIANCE_LOGS_")
    ),
  ) as Record<string, string>;
  return runWith(
    [
      ps,
      "-NoProfile",
      "-NonInteractive",
      "-ExecutionPolicy",
      "Bypass",
      "-Command",
      `irm '${url}/install.ps1' | iex`,
    ],
    { ...inherited, ...env },
  );
}

test("irm <release>/install.ps1 | iex installs the Windows binary from dist/, and it runs", {
  ...TIMEOUT,
  skip: PS_SKIP ?? psDist?.skip,
}, async () => {
  if (psDist?.buildError) assert.fail(psDist.buildError);
  await withDistRelease((release) =>
    withServer(release, async (server) => {
      for (const ps of POWERSHELLS) {
        await withTemp(async (dir) => {
          const into = join(dir, "bin");
          const run = await installPs1(ps, server.url, {
            OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
            OAI_COMPLIANCE_LOGS_INSTALL: into,
            OAI_COMPLIANCE_LOGS_VERSION: VERSION,
          });
          assert.equal(run.code, 0, `${ps}: ${run.stdout}${run.stderr}`);
          assert.deepEqual(await listing(into), [`${TOOL}.exe`], ps);
          assert.match(
            run.stdout,
            new RegExp(`Installed ${TOOL} ${escape(VERSION)} .*\\(SHA-256 verified\\)`),
          );
          assert.match(run.stdout, /is not on your PATH/);
          const version = await runWith(
            [join(into, `${TOOL}.exe`), "--version"],
            process.env as Record<string, string>,
          );
          assert.match(version.stdout, new RegExp(`^${TOOL} ${escape(VERSION)}\\b`));
        });
      }
    })
  );
});

test("install.ps1 pins a version against GitHub's release URLs, and refuses an unknown one", {
  ...TIMEOUT,
  skip: PS_SKIP ?? psDist?.skip,
}, async () => {
  if (psDist?.buildError) assert.fail(psDist.buildError);
  const repo = "acme/oai-compliance-logs";
  const prefix = `${repo}/releases/download/v${VERSION}`;
  await withDistRelease(
    (release) =>
      withServer({ ...release, "install.ps1": INSTALL_PS1 }, async (server) => {
        for (const ps of POWERSHELLS) {
          for (const [pin, ok] of [[`v${VERSION}`, true], ["v9.9.9", false]] as const) {
            await withTemp(async (dir) => {
              const into = join(dir, "bin");
              const run = await installPs1(ps, server.url, {
                OAI_COMPLIANCE_LOGS_REPO: repo,
                OAI_COMPLIANCE_LOGS_GITHUB_URL: server.url,
                OAI_COMPLIANCE_LOGS_INSTALL: into,
                OAI_COMPLIANCE_LOGS_VERSION: pin,
              });
              if (ok) {
                assert.equal(run.code, 0, `${ps}: ${run.stdout}${run.stderr}`);
                assert.deepEqual(await listing(into), [`${TOOL}.exe`]);
              } else {
                assert.notEqual(run.code, 0, ps);
                assert.match(
                  run.stderr,
                  /cannot download .*SHA256SUMS \(is v9\.9\.9 a release\?\)/,
                );
                assert.deepEqual(await listing(into), []);
              }
            });
          }
        }
      }),
    prefix,
  );
});

test("install.ps1 refuses a tampered binary or SHA256SUMS: checksum message, nothing installed", {
  ...TIMEOUT,
  skip: PS_SKIP ?? psDist?.skip,
}, async () => {
  if (psDist?.buildError) assert.fail(psDist.buildError);
  const asset = fileName(host!);
  await withDistRelease(async (release, snapshot) => {
    const sums = await readFile(join(snapshot, "SHA256SUMS"), "utf8");
    const line = sums.split("\n").find((l) => l.endsWith(`  ${asset}`))!;
    const digest = line.slice(0, 64);
    const otherSums = sums.replace(
      line,
      `${digest.slice(0, 63)}${digest[63] === "0" ? "1" : "0"}  ${asset}`,
    );
    const size = (await stat(join(snapshot, asset))).size;
    const setups: [Record<string, Served>, { path: string; offset: number } | undefined][] = [
      [release, { path: asset, offset: Math.floor(size / 2) }],
      [{ ...release, SHA256SUMS: encoder.encode(otherSums) }, undefined],
    ];
    for (const [files, flip] of setups) {
      await withServer(files, async (server) => {
        for (const ps of POWERSHELLS) {
          await withTemp(async (dir) => {
            const into = join(dir, "bin");
            const run = await installPs1(ps, server.url, {
              OAI_COMPLIANCE_LOGS_DOWNLOAD_URL: server.url,
              OAI_COMPLIANCE_LOGS_INSTALL: into,
            });
            assert.notEqual(run.code, 0, ps);
            assert.match(run.stderr, /checksum mismatch for oai-compliance-logs-windows-x64\.exe/);
            assert.deepEqual(await listing(into), []);
          });
        }
      }, flip);
    }
  });
});
