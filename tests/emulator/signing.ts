/**
 * Signed storage URLs: `/files/{id}?expires=<ms epoch>&sig=<hmac hex>`, HMAC-SHA256 over id and
 * expiry with a secret that lives only as long as one emulator.
 *
 * @example
 * const signer = new UrlSigner(300_000);
 * const url = signer.sign("http://127.0.0.1:9000", "eclf_1");
 * signer.verify("eclf_1", url.searchParams); // "ok"
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export type Verdict = "ok" | "bad-signature" | "expired";

export class UrlSigner {
  readonly #secret = randomBytes(32);
  readonly #ttlMs: number;

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  #mac(id: string, expires: string): string {
    return createHmac("sha256", this.#secret).update(`${id}\n${expires}`).digest("hex");
  }

  /** A URL on `origin` for file `id`, valid for the TTL (or already expired when `expired`). */
  sign(origin: string, id: string, expired = false): URL {
    const expires = String(expired ? Date.now() - 1000 : Date.now() + this.#ttlMs);
    const url = new URL(`/files/${encodeURIComponent(id)}`, origin);
    url.searchParams.set("expires", expires);
    url.searchParams.set("sig", this.#mac(id, expires));
    return url;
  }

  /** Checks signature first (a forged URL learns nothing about expiry), then expiry. */
  verify(id: string, query: URLSearchParams): Verdict {
    const expires = query.get("expires") ?? "";
    const sig = query.get("sig") ?? "";
    const want = Buffer.from(this.#mac(id, expires), "hex");
    const got = /^[0-9a-f]{64}$/i.test(sig) ? Buffer.from(sig, "hex") : Buffer.alloc(0);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return "bad-signature";
    if (!/^\d+$/.test(expires) || Number(expires) <= Date.now()) return "expired";
    return "ok";
  }
}
