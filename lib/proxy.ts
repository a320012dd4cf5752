/**
 * Which proxy a request uses, decided here once for every runtime. Deno and Bun each read
 * HTTPS_PROXY and NO_PROXY themselves, differently (under Deno `NO_PROXY=*` does not cover IP
 * addresses, nor does an entry with a port; Bun does both), so the tool reads them itself with
 * curl's rules and tells the runtime per request (lib/runtime.ts).
 *
 * - https URLs use `https_proxy`, `HTTPS_PROXY`, `all_proxy` or `ALL_PROXY` (the first set);
 *   http URLs `http_proxy`, `HTTP_PROXY`, `all_proxy` or `ALL_PROXY`.
 * - `no_proxy` or `NO_PROXY` is a comma- (or space-) separated list: `*` matches every host; a
 *   name matches itself and its subdomains (a leading `.` or `*.` changes nothing); an IP address
 *   matches only itself, an IPv4 `a.b.c.d/n` its range; `[::1]` and `::1` are the same; an entry
 *   with `:port` matches only that port. Case does not matter.
 * - Plain http to a loopback or link-local address never goes through a proxy.
 */
import { isLiteralLoopback } from "./urls.ts";

export type Env = Record<string, string | undefined>;

/** The first of `names` set to a non-blank value in `env`. */
function first(env: Env, names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

/**
 * The proxy URL `url` should go through, or undefined to go direct.
 *
 * @example
 * ```ts
 * const env = { HTTPS_PROXY: "http://proxy:3128" };
 * proxyFor(new URL("https://api.openai.com/v1"), env); // "http://proxy:3128"
 * proxyFor(new URL("https://127.0.0.1:8443/"), { ...env, NO_PROXY: "*" }); // undefined
 * ```
 */
export function proxyFor(url: URL, env: Env): string | undefined {
  // Plain http goes only to hosts on this machine or its link (a local emulator, the cloud's
  // credential endpoints), with tokens in clear: a proxy would see them, so it is never used.
  if (url.protocol === "http:" && (isLiteralLoopback(url) || isLinkLocal(url))) return undefined;
  const proxy = url.protocol === "https:"
    ? first(env, ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])
    : url.protocol === "http:"
    ? first(env, ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])
    : undefined;
  if (proxy === undefined) return undefined;
  const noProxy = first(env, ["no_proxy", "NO_PROXY"]) ?? "";
  return bypassesProxy(url, noProxy) ? undefined : proxy;
}

/** 169.254.0.0/16 and fe80::/10, and AWS's IPv6 metadata addresses (fd00:ec2::/64). */
function isLinkLocal(url: URL): boolean {
  const host = url.hostname.toLowerCase();
  return /^169\.254\.\d+\.\d+$/.test(host) || /^\[fe[89ab][0-9a-f]:/.test(host) ||
    host.startsWith("[fd00:ec2::");
}

/**
 * Whether `url` matches the NO_PROXY list `noProxy` (rules in the module comment).
 *
 * @example
 * ```ts
 * bypassesProxy(new URL("https://logs.corp.example/"), ".corp.example") // true
 * bypassesProxy(new URL("https://127.0.0.1:8443/"), "127.0.0.1:9000") // false
 * ```
 */
export function bypassesProxy(url: URL, noProxy: string): boolean {
  const host = bare(url.hostname.toLowerCase()).replace(/\.$/, "");
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    const { name, entryPort } = splitPort(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    if (matchesHost(host, name)) return true;
  }
  return false;
}

/** `[::1]` -> `::1` */
function bare(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** `host:port`, `[v6]:port`, or a bare IPv6 address (several colons, so no port). */
function splitPort(entry: string): { name: string; entryPort?: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (v6) return { name: v6[1], entryPort: v6[2] };
  const colons = entry.split(":").length - 1;
  const hostPort = /^(.*):(\d+)$/.exec(entry);
  if (colons === 1 && hostPort) return { name: hostPort[1], entryPort: hostPort[2] };
  return { name: entry };
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function ipv4Number(text: string): number | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

function isIp(host: string): boolean {
  return ipv4Number(host) !== undefined || host.includes(":");
}

function matchesHost(host: string, name: string): boolean {
  const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(name);
  if (cidr) {
    const base = ipv4Number(cidr[1]);
    const addr = ipv4Number(host);
    const bits = Number(cidr[2]);
    if (base === undefined || addr === undefined || bits > 32) return false;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((base & mask) >>> 0) === ((addr & mask) >>> 0);
  }
  // An IP address is not a domain: 10.0.0.1 must not match 0.0.1, nor ::1 match 1.
  if (isIp(name) || isIp(host)) return host === name;
  const domain = name.replace(/^\*?\./, "");
  return domain !== "" && (host === domain || host.endsWith(`.${domain}`));
}
