/**
 * Which URLs the tool will talk to: plain http only on a literal loopback address, and which
 * redirect targets it follows. A hostile API (or storage) server must not be able to point a
 * download at `file:`, `data:` or a downgraded `http:` URL (both runtimes' fetch read `file:`).
 */
import { CliError } from "./errors.ts";
import { escapeJsonControls } from "./terminal.ts";

/** 127.0.0.0/8 as a dotted quad (what `new URL` normalises `127.1` or `0x7f.1` to). */
const LOOPBACK_V4 =
  /^127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)$/;

/**
 * Whether `url`'s host is a loopback address by its spelling alone, with no name lookup:
 * 127.0.0.0/8 as a dotted quad, `[::1]`, or exactly `localhost`. `127.evil.com` and
 * `127.0.0.1.nip.io` are names that anyone can point anywhere, so they are not.
 *
 * @example
 * ```ts
 * isLiteralLoopback(new URL("http://127.0.0.1:8080/")) // true
 * isLiteralLoopback(new URL("http://127.0.0.1.nip.io/")) // false
 * ```
 */
export function isLiteralLoopback(url: URL): boolean {
  const host = url.hostname; // lower-cased by the URL parser, IPv6 in brackets
  return host === "localhost" || host === "[::1]" || LOOPBACK_V4.test(host);
}

/**
 * The URL a redirect's `Location` names, resolved against `from`, once it passes the policy:
 * `https:` always; `http:` only when the API base itself is plain http on a literal loopback
 * address (the local emulator) and the target is loopback too. Anything else (`file:`, `data:`,
 * a downgrade from https) is a final API error naming the scheme; nothing is fetched.
 *
 * @example
 * ```ts
 * const apiBase = new URL("https://api.example/v1/");
 * const from = new URL("https://api.example/v1/x");
 * const what = "downloading log id=f";
 * followable("https://storage.example/f?sig=1", from, apiBase, what).host; // "storage.example"
 * ```
 */
export function followable(location: string, from: URL, apiBase: URL, what: string): URL {
  let target: URL;
  try {
    target = new URL(location, from);
  } catch {
    throw new CliError(
      "api",
      `the server redirected to ${
        quoted(location)
      }, which is not a URL, while ${what}; the API may be misconfigured or not the real API, check --api-base`,
    );
  }
  if (target.protocol === "https:") return target;
  const localHttp = target.protocol === "http:" && apiBase.protocol === "http:" &&
    isLiteralLoopback(apiBase) && isLiteralLoopback(target);
  if (localHttp) return target;
  const why = target.protocol === "http:"
    ? "plain http would downgrade the download from https"
    : "only https: redirects are followed";
  throw new CliError(
    "api",
    `refused to follow a redirect to a '${target.protocol}' URL while ${what}: ${why}; ` +
      `the API may be misconfigured or not the real API, check --api-base`,
  );
}

/** At most 200 characters of server text, JSON-quoted so that it stays on one line. */
function quoted(text: string): string {
  return escapeJsonControls(JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text));
}
