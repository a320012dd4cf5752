/**
 * What a shared access signature allows, read from its own fields before the first download: a
 * SAS token carries its permissions (`sp`) and expiry (`se`) in the clear, so a token that cannot
 * read and write blobs, or has expired, is refused up front instead of after the downloads.
 * (Whether the signature itself is valid only the service can say: the destination's check asks
 * it.)
 *
 * @example
 * ```ts
 * checkSasToken("sv=2021-12-02&sp=rcwl&se=2030-01-01T00:00:00Z&sig=abc", "AZURE_STORAGE_SAS_TOKEN");
 * ```
 */
import { CliError } from "../errors.ts";

/**
 * Throws an `auth` error naming `source` when the token's `sp` lacks read (`r`, for the re-run's
 * check of what is stored), write/create (`w` or `c`) or list (`l`, for the manifests), or its
 * `se` is past.
 */
export function checkSasToken(token: string, source: string, nowMs: number = Date.now()): void {
  const params = new URLSearchParams(token.replace(/^\?/, ""));
  if (!params.get("sig")) {
    throw new CliError("auth", `${source} is not a SAS token (it has no sig=); generate it again`);
  }
  const permissions = params.get("sp");
  if (permissions !== null) {
    const missing = [
      ...(permissions.includes("r") ? [] : ["read (r)"]),
      ...(permissions.includes("w") || permissions.includes("c") ? [] : ["write (w)"]),
      // The archive's manifests in PREFIX/_manifest/ are listed (lib/manifest/object_store.ts).
      ...(permissions.includes("l") ? [] : ["list (l)"]),
    ];
    if (missing.length) {
      throw new CliError(
        "auth",
        `${source} does not allow ${
          missing.join(" or ")
        } (its permissions are sp=${permissions}); ` +
          `the Blob destination needs read, create, write and list: generate a SAS with sp=rcwl`,
      );
    }
  }
  const expiry = params.get("se");
  const at = expiry === null ? NaN : Date.parse(expiry);
  if (Number.isFinite(at) && at <= nowMs) {
    throw new CliError(
      "auth",
      `${source} expired at ${new Date(at).toISOString()}; generate a new SAS token`,
    );
  }
}
