/**
 * Write-once retention as the command line asks for it (`--retain-days N`, `--retain-mode
 * governance|compliance`): declared once here for both object stores (`s3.ts`, `azure_blob.ts`),
 * so that their help and their checks cannot differ. Each store turns the result into its own
 * headers (S3 Object Lock, Azure version-level immutability policies).
 *
 * @example
 * ```ts
 * parseRetention({ "retain-days": "2555", "retain-mode": "compliance" });
 * // { days: 2555, mode: "compliance" }
 * parseRetention({}); // undefined
 * ```
 */
import { usage } from "../errors.ts";

/** Days of write-once retention and its mode, as `ObjectStoreSettings.retain` takes them. */
export interface RetentionRequest {
  days: number;
  mode: "governance" | "compliance";
}

/** `--retain-days N` and `--retain-mode governance|compliance`, checked. */
export function parseRetention(values: Record<string, unknown>): RetentionRequest | undefined {
  const days = values["retain-days"];
  const mode = values["retain-mode"];
  if (days === undefined) {
    if (mode !== undefined) throw usage("--retain-mode needs --retain-days");
    return undefined;
  }
  if (typeof days !== "string" || !/^[1-9]\d{0,5}$/.test(days)) {
    throw usage(`--retain-days must be a whole number of days from 1 to 999999, got '${days}'`);
  }
  const chosen = mode ?? "governance";
  if (chosen !== "governance" && chosen !== "compliance") {
    throw usage(`--retain-mode must be governance or compliance, got '${chosen}'`);
  }
  return { days: Number(days), mode: chosen };
}

/** The options the object stores share, declared alike by each. */
export const RETENTION_OPTIONS = {
  "retain-days": {
    type: "string",
    arg: "N",
    help: "with --output-dir s3:// or az://, keep every object write-once\nfor N days " +
      "(Object Lock; the bucket must have it enabled)",
  },
  "retain-mode": {
    type: "string",
    arg: "MODE",
    help: "with --retain-days: governance (default) or compliance",
  },
} as const;
