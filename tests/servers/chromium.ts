/**
 * Headless Chromium (Debian `chromium`) for the report tests: renders a local HTML file to a
 * PNG, a PDF, or its DOM after layout (`--dump-dom`), and says which console messages the page
 * logged (`--enable-logging=stderr --v=0` prints each as an `INFO:CONSOLE` line). Nothing is
 * fetched: the page is a `file://` URL and the profile is a fresh temp directory.
 *
 * @example
 * ```ts
 * const browser = findChromium();
 * if (browser) {
 *   const { stdout, consoleLines } = await renderWith(browser, "/tmp/report.html", ["--dump-dom"]);
 * }
 * ```
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The browser's path, or undefined when none is installed (`apt-get install chromium`). */
export function findChromium(): string | undefined {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
    const path = found.stdout?.trim();
    if (found.status === 0 && path) return path;
  }
  return undefined;
}

export interface Rendered {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every console message the page logged. */
  consoleLines: string[];
}

/** Runs the browser headless on `htmlPath` with `flags` (e.g. `--screenshot=out.png`). */
export async function renderWith(
  browser: string,
  htmlPath: string,
  flags: string[],
  timeoutMs = 60_000,
): Promise<Rendered> {
  const profile = await mkdtemp(join(tmpdir(), "oai-chromium-"));
  try {
    return await new Promise<Rendered>((resolve, reject) => {
      const child = spawn(browser, [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        `--user-data-dir=${profile}`,
        "--window-size=1100,900",
        ...flags,
        pathToFileURL(htmlPath).href,
      ], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (chunk) => stdout += chunk);
      child.stderr!.on("data", (chunk) => stderr += chunk);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        const consoleLines = stderr.split("\n").filter((line) => /:CONSOLE[:(]/.test(line));
        resolve({ code, stdout, stderr, consoleLines });
      });
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}
