/**
 * Who may ask for what, as the API's reference describes it: keys authorized per event type (a
 * refused type answers 403 naming the scope to add), and the download endpoint's limit of 50
 * requests a minute per key (429 with `Retry-After` beyond it), counted over a rolling window.
 *
 * @example
 * ```ts
 * const grants = new KeyGrants("sk-full", [{ key: "sk-auth-only", eventTypes: ["AUTH_LOG"] }]);
 * grants.missingScopes("sk-auth-only", ["AUTH_LOG", "AUDIT_LOG"]);
 * // ["chatgpt.enterprise.compliance_logs_platform.audit_log.read"]
 * const limiter = new DownloadLimiter(REFERENCE_DOWNLOAD_LIMIT);
 * limiter.admit("sk-full", Date.now()); // { ok: true }
 * ```
 */
import { scopeForType } from "../../lib/event_types.ts";

/** A key the emulator accepts that may read only some event types. */
export interface ScopedKey {
  key: string;
  /** The types this key holds a per-type scope for; any other type answers 403. */
  eventTypes: string[];
}

/** The download endpoint's limit: `requests` per rolling `windowMs`, per key. */
export interface DownloadLimit {
  requests: number;
  windowMs: number;
}

/** What the reference documents: 50 requests per minute per endpoint per API key. */
export const REFERENCE_DOWNLOAD_LIMIT: DownloadLimit = { requests: 50, windowMs: 60_000 };

/** The accepted keys: one with every scope, and any number limited to some types. */
export class KeyGrants {
  readonly #types = new Map<string, ReadonlySet<string> | "all">();

  constructor(fullKey: string, scoped: readonly ScopedKey[] = []) {
    this.#types.set(fullKey, "all");
    for (const { key, eventTypes } of scoped) {
      if (this.#types.has(key)) throw new TypeError("a scoped key repeats another key");
      if (!key) throw new TypeError("a scoped key needs a key");
      this.#types.set(key, new Set(eventTypes));
    }
  }

  /** Whether `key` is one the emulator accepts. */
  knows(key: string): boolean {
    return this.#types.has(key);
  }

  /** The types of `eventTypes` that `key` may not read, in their order (empty: all granted). */
  refusedTypes(key: string, eventTypes: readonly string[]): string[] {
    const types = this.#types.get(key);
    if (types === "all") return [];
    return eventTypes.filter((type) => !types?.has(type));
  }

  /** The per-type scopes `key` lacks for `eventTypes` (empty: all granted). */
  missingScopes(key: string, eventTypes: readonly string[]): string[] {
    return this.refusedTypes(key, eventTypes).map(scopeForType);
  }
}

/** What the limiter says about one request. */
export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Counts download-endpoint requests per key over a rolling window. Only admitted requests take a
 * place in the window, so `Retry-After` says exactly when the next one will be admitted.
 */
export class DownloadLimiter {
  readonly #admitted = new Map<string, number[]>();
  #refused = 0;

  constructor(readonly limit: DownloadLimit) {
    if (!(limit.requests >= 1) || !(limit.windowMs > 0)) {
      throw new RangeError(`bad download limit ${limit.requests} per ${limit.windowMs} ms`);
    }
  }

  /** Admits a request of `key` at `now` (epoch ms), or says how long to wait. */
  admit(key: string, now: number): Admission {
    const times = (this.#admitted.get(key) ?? []).filter((t) => t > now - this.limit.windowMs);
    this.#admitted.set(key, times);
    if (times.length < this.limit.requests) {
      times.push(now);
      return { ok: true };
    }
    this.#refused++;
    const freeAt = times[times.length - this.limit.requests] + this.limit.windowMs;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((freeAt - now) / 1000)) };
  }

  /** How many 429s the limit has answered. */
  refused(): number {
    return this.#refused;
  }
}
