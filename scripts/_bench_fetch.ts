/**
 * The benchmark's floor for a JavaScript downloader: the bare `fetch` loop the tool is built on,
 * reading a URL to the end and discarding it, optionally with the SHA-256 the tool verifies.
 * No spool, no retries, no output. Run under the tool's runtime, it shows how much of the gap to
 * curl is the runtime's receive path and the hash rather than the tool's design.
 *
 * Usage (by bench.ts only): bun scripts/_bench_fetch.ts URL [--sha256]
 */
import { createHash } from "node:crypto";
import process from "node:process";

const [url, option] = process.argv.slice(2);
const hash = option === "--sha256" ? createHash("sha256") : undefined;
const response = await fetch(url);
if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} from ${url}`);
let bytes = 0;
for await (const chunk of response.body) {
  hash?.update(chunk);
  bytes += chunk.length;
}
process.stderr.write(`${bytes} bytes${hash ? `, sha256 ${hash.digest("hex")}` : ""}\n`);
