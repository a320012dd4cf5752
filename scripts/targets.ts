/**
 * The release targets: one standalone binary per OS and CPU, and how each compiler names it.
 * `build.ts` (Bun), `compile.ts` (Deno) and `binary-targets.ts` (tests) all read this list.
 *
 * @example
 * for (const t of TARGETS) console.log(t.name, fileName(t)); // linux-x64 oai-compliance-logs-linux-x64
 */
import { fileURLToPath } from "node:url";

export const TOOL_NAME = "oai-compliance-logs";
export const REPO_ROOT: string = fileURLToPath(new URL("../", import.meta.url));
export const MAIN_TS: string = fileURLToPath(new URL("../main.ts", import.meta.url));
export const DIST_DIR: string = fileURLToPath(new URL("../dist/", import.meta.url));

export type Os = "linux" | "darwin" | "windows";
export type Arch = "x64" | "arm64";

export interface Target {
  /** `<os>-<arch>`, the suffix of the file name. */
  name: string;
  os: Os;
  arch: Arch;
  /**
   * `bun build --compile --target=` value. x64 uses Bun's baseline runtime (x86-64-v2: SSE4.2,
   * Nehalem 2008+): the default x64 runtime is built for Haswell (AVX2) and dies with "Illegal
   * instruction" on older CPUs and on VMs with a conservative CPU model, where log shippers often
   * run. The tool waits on the network, so the faster runtime would buy nothing.
   */
  bun: string;
  /** `deno compile --target` value; undefined where Deno has no such target. */
  deno?: string;
  /** The C library it links against: glibc unless said. */
  libc?: "musl";
}

export const TARGETS: readonly Target[] = [
  {
    name: "linux-x64",
    os: "linux",
    arch: "x64",
    bun: "bun-linux-x64-baseline",
    deno: "x86_64-unknown-linux-gnu",
  },
  {
    name: "linux-arm64",
    os: "linux",
    arch: "arm64",
    bun: "bun-linux-arm64",
    deno: "aarch64-unknown-linux-gnu",
  },
  {
    name: "darwin-x64",
    os: "darwin",
    arch: "x64",
    bun: "bun-darwin-x64-baseline",
    deno: "x86_64-apple-darwin",
  },
  {
    name: "darwin-arm64",
    os: "darwin",
    arch: "arm64",
    bun: "bun-darwin-arm64",
    deno: "aarch64-apple-darwin",
  },
  {
    name: "windows-x64",
    os: "windows",
    arch: "x64",
    bun: "bun-windows-x64-baseline",
    deno: "x86_64-pc-windows-msvc",
  },
  // Deno 2.x publishes no Windows-on-ARM runtime to compile against; Bun does.
  { name: "windows-arm64", os: "windows", arch: "arm64", bun: "bun-windows-arm64" },
  // Alpine and other musl systems (no glibc): they need musl's loader and libstdc++ (Alpine's
  // `libstdc++` package). Deno publishes no musl runtime.
  {
    name: "linux-x64-musl",
    os: "linux",
    arch: "x64",
    libc: "musl",
    bun: "bun-linux-x64-musl-baseline",
  },
  {
    name: "linux-arm64-musl",
    os: "linux",
    arch: "arm64",
    libc: "musl",
    bun: "bun-linux-arm64-musl",
  },
];

/** The binary's file name: `oai-compliance-logs-<os>-<arch>`, plus `.exe` on Windows. */
export function fileName(target: Target): string {
  return `${TOOL_NAME}-${target.name}${target.os === "windows" ? ".exe" : ""}`;
}

/** Looks targets up by name (`linux-x64,darwin-arm64`); throws on an unknown name. */
export function selectTargets(names: string | undefined): Target[] {
  if (!names) return [...TARGETS];
  return names.split(",").map((name) => {
    const target = TARGETS.find((t) => t.name === name.trim());
    if (!target) {
      throw new Error(`unknown target '${name}'; known: ${TARGETS.map((t) => t.name).join(", ")}`);
    }
    return target;
  });
}

/** The target this machine runs natively, if it is one of ours. */
export function hostTarget(platform: string, arch: string): Target | undefined {
  const os = platform === "win32" ? "windows" : platform;
  return TARGETS.find((t) => t.os === os && t.arch === arch && t.libc === undefined);
}
