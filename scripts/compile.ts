/**
 * Builds the standalone binaries with `deno compile` instead of Bun, for machines that can reach
 * Deno's download host (`deno compile --target` fetches a `denort` runtime per target from
 * dl.deno.land; this repository's own sandbox cannot, so there `deno task build` is the way).
 * The binaries get the same checks as Bun's: format, CPU, macOS signature (re-signed ad hoc if
 * needed), and a `SHA256SUMS`.
 *
 * Deno has no Windows-on-ARM runtime, so this builds five of the six targets.
 *
 * Usage: deno task compile [--target linux-x64,...] [--out-dir dist/deno]
 *
 * The permissions below are baked into each binary; the `deno-permissions` test suite (see
 * `binary-suites.ts`) runs every black-box test under exactly these flags, so a missing grant
 * fails the tests here even though `deno compile` itself cannot run here.
 */
import { mkdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { finishBinary, formatSize, run, smokeTest, writeChecksums } from "./build.ts";
import {
  DIST_DIR,
  fileName,
  MAIN_TS,
  REPO_ROOT,
  selectTargets,
  type Target,
  TARGETS,
} from "./targets.ts";

/** Every environment variable the CLI reads (and nothing else: Deno then refuses the rest). */
export const ENV_VARS: readonly string[] = [
  "COMPLIANCE_API_KEY",
  "COMPLIANCE_API_KEY_FILE",
  "COMPLIANCE_API_BASE",
  // Proxy settings, upper and lower case as curl reads them.
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
  "NO_PROXY",
  "no_proxy",
  // Output: colour and the live progress line.
  "NO_COLOR",
  "TERM",
  // os.tmpdir() for the private spool directory (TMPDIR on Unix, TEMP/TMP on Windows).
  "TMPDIR",
  "TMP",
  "TEMP",
  // A private, per-user directory preferred for the spools (lib/destinations/spool_dir.ts).
  "XDG_RUNTIME_DIR",
  "OAI_COMPLIANCE_DEBUG",
  // The cap on a file whose listing gives no size (lib/download.ts), lowered by tests.
  "OAI_COMPLIANCE_MAX_UNLISTED_BYTES",
  // Test-only: a short download-pace window and gone-file retry spacing keep the suites fast, as
  // do short backoffs and timeouts of the destinations, a shifted clock for the skew tests, and a
  // small single-copy limit for the multipart copy of an altered S3 object.
  "OAI_COMPLIANCE_PACE_WINDOW_MS",
  "OAI_COMPLIANCE_GONE_RETRY_MS",
  "OAI_COMPLIANCE_STORE_BACKOFF_MS",
  "OAI_COMPLIANCE_STORE_PART_BYTES",
  "OAI_COMPLIANCE_S3_CLOCK_OFFSET_MS",
  "OAI_COMPLIANCE_S3_MAX_COPY_BYTES",
  "OAI_COMPLIANCE_SIEM_BACKOFF_MS",
  // The home directory, for ~/.aws/credentials and ~/.aws/config.
  "HOME",
  "USERPROFILE",
  // S3: the standard AWS sources of credentials, region and endpoint.
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT",
  "AWS_EC2_METADATA_DISABLED",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
  "AWS_ENDPOINT_URL_STS",
  // Azure Blob.
  "AZURE_STORAGE_CONNECTION_STRING",
  "AZURE_STORAGE_ACCOUNT",
  "AZURE_STORAGE_KEY",
  "AZURE_STORAGE_SAS_TOKEN",
  // Splunk HEC and Elasticsearch/OpenSearch credentials.
  "SPLUNK_HEC_TOKEN",
  "SPLUNK_HEC_TOKEN_FILE",
  "ELASTIC_API_KEY",
  "ELASTIC_API_KEY_FILE",
  "ELASTIC_USERNAME",
  "ELASTIC_USERNAME_FILE",
  "ELASTIC_PASSWORD",
  "ELASTIC_PASSWORD_FILE",
];

/**
 * The least the CLI needs, as `deno compile`/`deno run` flags:
 * - net: any host. The API base is configurable (`--api-base`, proxies, the test emulator) and
 *   downloads follow signed URLs to storage hosts the API chooses, so no fixed list is right.
 * - read/write: any path. `--state`, `-o`, `--output-dir` and `COMPLIANCE_API_KEY_FILE` name
 *   files anywhere, and spools live in the system temp directory.
 * - sys: `hostname` and `osUptime`, which the checkpoint lock records and uses to tell a lock
 *   left before a reboot; `uid`, to use and clean only spool directories and temps we own.
 * - run: `process.kill(pid, 0)`, the check whether the run holding the lock is still alive, is
 *   `Deno.kill`, which Deno grants only with the whole `--allow-run` (a program list does not
 *   cover it). Without it a crashed run's lock would block every later run until a reboot.
 *   The CLI starts no subprocess.
 * - no ffi, no imports at run time; `--no-prompt` so a missing grant fails instead of asking.
 */
export const DENO_PERMISSION_FLAGS: readonly string[] = [
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  `--allow-env=${ENV_VARS.join(",")}`,
  "--allow-sys=hostname,osUptime,uid",
  "--allow-run",
];

/**
 * V8's heap flags for the CLI under Deno, as one `--v8-flags` value (also `DENO_V8_FLAGS`): a
 * 1 MiB young generation instead of V8's default 16 MiB semi-spaces, and an old generation capped
 * at 768 MiB, which makes V8 grow it by a smaller factor, so the garbage of the records (and the
 * external buffers it holds) is collected sooner. A 2 GiB file into `_bulk` peaked at 216-234 MiB
 * RSS without them, 127 MiB with them (BENCHMARKS.md), for some 10-25% more CPU; 24 files at
 * `--concurrency 8`, 187 MiB before, 122-130 MiB. The heap of a 64 MiB record fits many times over.
 */
export const DENO_V8_FLAGS = "--max-semi-space-size=1,--max-old-space-size=768";

/** The `deno compile` argv (after `deno`) that builds `target` into `outPath`. */
export function denoCompileArgs(target: Target, outPath: string): string[] {
  if (!target.deno) throw new Error(`deno compile has no target for ${target.name}`);
  return [
    "compile",
    "--target",
    target.deno,
    "--output",
    outPath,
    ...DENO_PERMISSION_FLAGS,
    `--v8-flags=${DENO_V8_FLAGS}`,
    MAIN_TS,
  ];
}

/** Targets Deno can compile for: all but windows-arm64. */
export const DENO_TARGETS: readonly Target[] = TARGETS.filter((t) => t.deno);

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { target: { type: "string" }, "out-dir": { type: "string" } },
  });
  const outDir = resolve(values["out-dir"] ?? join(DIST_DIR, "deno"));
  const deno = process.env.DENO ?? "deno";
  try {
    const targets = selectTargets(values.target).filter((t) => {
      if (!t.deno) console.error(`skipping ${t.name}: deno compile has no such target`);
      return t.deno;
    });
    await mkdir(outDir, { recursive: true });
    const results = [];
    for (const target of targets) {
      const path = join(outDir, fileName(target));
      await rm(path, { force: true });
      const started = Date.now();
      await run(deno, denoCompileArgs(target, path), { cwd: REPO_ROOT });
      const { resigned } = await finishBinary(target, path);
      const bytes = (await stat(path)).size;
      results.push({ target, path, bytes, ms: Date.now() - started });
      console.error(
        `compiled ${fileName(target)} (${formatSize(bytes)})` +
          (resigned ? `; re-signed ad hoc (${resigned[0]})` : ""),
      );
    }
    const version = await smokeTest(results);
    if (version) console.error(`ran the binary for this machine: ${version}`);
    await writeChecksums(outDir);
    console.error(`wrote ${join(outDir, "SHA256SUMS")}`);
  } catch (error) {
    const message = (error as Error).message;
    console.error(`compile failed: ${message}`);
    if (/dl\.deno\.land|dns error|error sending request/.test(message)) {
      console.error(
        "deno compile downloads its runtime (denort) for each target from dl.deno.land, which " +
          "this machine cannot reach; build with Bun instead: deno task build",
      );
    }
    process.exit(1);
  }
}
