/**
 * Ed25519 signing of a manifest's last line hash with WebCrypto (both runtimes and the binaries
 * have it): `--sign-key FILE` is a PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519`),
 * `verify --public-key FILE` its SPKI PEM public key (`openssl pkey -in k.pem -pubout`). A key
 * is named in the manifest by its id: the SHA-256 of its raw 32-byte public key.
 *
 * @example
 * ```ts
 * const signer = await loadSigningKey("manifest-key.pem");
 * const { signature, keyId } = await signer.sign("ab12...");
 * const checker = await loadPublicKey("manifest-key.pub.pem");
 * await checker.verify("ab12...", signature); // true
 * ```
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { CliError, reason } from "../errors.ts";

export interface Signer {
  keyId: string;
  sign(head: string): Promise<{ signature: string; keyId: string }>;
}

export interface SignatureChecker {
  keyId: string;
  verify(head: string, signature: string): Promise<boolean>;
}

const ED25519 = { name: "Ed25519" } as const;

/** The DER bytes of the one PEM block labelled `label` in `text`. */
function pemBody(text: string, label: string, path: string, option: string): Uint8Array {
  const match = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(
    text,
  );
  if (!match) {
    throw new CliError(
      "usage",
      `${option} ${path} holds no "${label}" PEM block; ` +
        (label === "PRIVATE KEY"
          ? "make one with `openssl genpkey -algorithm ed25519 -out FILE`"
          : "make one with `openssl pkey -in PRIVATE.pem -pubout -out FILE`"),
    );
  }
  return Uint8Array.from(atob(match[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

async function readKeyFile(path: string, option: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new CliError("usage", `cannot read ${option} ${path}: ${reason(error)}`, {
      cause: error,
    });
  }
}

function keyIdOf(raw: Uint8Array): string {
  return createHash("sha256").update(raw).digest("hex");
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

/** Reads `--sign-key FILE` (an Ed25519 private key, PKCS#8 PEM); usage errors name the fix. */
export async function loadSigningKey(path: string): Promise<Signer> {
  const der = pemBody(await readKeyFile(path, "--sign-key"), "PRIVATE KEY", path, "--sign-key");
  let key: CryptoKey;
  let raw: Uint8Array;
  try {
    key = await crypto.subtle.importKey("pkcs8", der as Uint8Array<ArrayBuffer>, ED25519, true, [
      "sign",
    ]);
    const jwk = await crypto.subtle.exportKey("jwk", key);
    raw = fromBase64Url(jwk.x!);
  } catch (error) {
    throw new CliError(
      "usage",
      `--sign-key ${path} is not an Ed25519 private key (${reason(error)}); make one with ` +
        "`openssl genpkey -algorithm ed25519 -out FILE`",
      { cause: error },
    );
  }
  const keyId = keyIdOf(raw);
  return {
    keyId,
    async sign(head) {
      const signature = await crypto.subtle.sign(ED25519, key, new TextEncoder().encode(head));
      return { signature: base64(new Uint8Array(signature)), keyId };
    },
  };
}

/** Reads `--public-key FILE` (an Ed25519 public key, SPKI PEM). */
export async function loadPublicKey(path: string): Promise<SignatureChecker> {
  const der = pemBody(
    await readKeyFile(path, "--public-key"),
    "PUBLIC KEY",
    path,
    "--public-key",
  );
  let key: CryptoKey;
  let raw: Uint8Array;
  try {
    key = await crypto.subtle.importKey("spki", der as Uint8Array<ArrayBuffer>, ED25519, true, [
      "verify",
    ]);
    raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
  } catch (error) {
    throw new CliError(
      "usage",
      `--public-key ${path} is not an Ed25519 public key (${reason(error)})`,
      { cause: error },
    );
  }
  return {
    keyId: keyIdOf(raw),
    async verify(head, signature) {
      try {
        const bytes = Uint8Array.from(atob(signature), (c) => c.charCodeAt(0));
        return await crypto.subtle.verify(ED25519, key, bytes, new TextEncoder().encode(head));
      } catch {
        return false;
      }
    },
  };
}
