// Placeholder entry point: replaced by the real CLI as the core lands.
import process from "node:process";
import { VERSION } from "./lib/version.ts";

if (process.argv.includes("--version")) {
  console.log(`oai-compliance-logs ${VERSION}`);
  process.exit(0);
}
console.error("oai-compliance-logs: not implemented yet");
process.exit(1);
