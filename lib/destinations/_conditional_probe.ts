/**
 * The check of which conditional writes a store honours, which leases
 * (lib/destinations/_lease.ts), the manifest lock and "a manifest is never overwritten" rely on.
 * A probe key is created twice with `If-None-Match: *` (the second must conflict), then replaced
 * `If-Match` its current ETag (must succeed) and `If-Match` the ETag it just replaced (must
 * conflict). Three outcomes:
 *
 * - both honoured: `"both"`, the leases' conditional create and write-once manifests;
 * - only `If-Match` honoured (Ceph 16 on a versioned, Object Lock, bucket ignores
 *   `If-None-Match: *`): `"if-match-only"`, where the lease never relies on a create (its object,
 *   once made, always exists and is taken `If-Match`) and what has a unique key or is created
 *   under the lease is written without `If-None-Match` (`createCondition`);
 * - `If-Match` ignored: refused before anything is written that would need it.
 *
 * The outcome is kept for the `ObjectAccess` probed (`conditionalWrites`), the one place the
 * lease, the archive's manifests and live marks, and a `--state` checkpoint read it from.
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * await checkConditionalWrites(access, `openai/_manifest/${probeName()}`, "s3://archive/openai/");
 * conditionalWrites(access); // "both" or "if-match-only"
 * ```
 */
import { CliError } from "../errors.ts";
import type { ObjectAccess } from "./_object_access.ts";

/**
 * Which conditional writes a store honours. "none" (Ceph 16's versioned buckets refuse every
 * If-Match and ignore If-None-Match) is accepted only where the caller allows it (an archive,
 * whose run then warns): there a condition is checked by reading before and after the write
 * (`emulatedPut`), which keeps apart runs that do not write in the same moment, and no more.
 */
export type ConditionalWrites = "both" | "if-match-only" | "none";

/** What the probe found, for each access probed; unprobed ones are taken to honour both. */
const found = new WeakMap<ObjectAccess, ConditionalWrites>();

/**
 * What the probe found for `access` ("both" when it was never probed).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * if (conditionalWrites(access) === "if-match-only") console.log("leases by If-Match alone");
 * ```
 */
export function conditionalWrites(access: ObjectAccess): ConditionalWrites {
  return found.get(access) ?? "both";
}

/**
 * Records what `access` honours without probing it (tests, or an owner that probed another
 * access to the same store).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * recordConditionalWrites(access, "if-match-only");
 * ```
 */
export function recordConditionalWrites(access: ObjectAccess, mode: ConditionalWrites): void {
  found.set(access, mode);
}

/**
 * The condition of a create of a key that is unique to its run or written under a lease:
 * `If-None-Match: *` where the store honours it, none where it ignores it (a condition it
 * ignores protects nothing, and such keys never meet another run's anyway).
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * await access.putSmall("k", new Uint8Array(), {
 *   contentType: "application/json",
 *   condition: createCondition(access),
 * });
 * ```
 */
export function createCondition(access: ObjectAccess): { ifNoneMatch: "*" } | undefined {
  return conditionalWrites(access) === "both" ? { ifNoneMatch: "*" } : undefined;
}

/** A probe's own name (a random part, so that two runs' probes never meet). */
export function probeName(): string {
  return `.conditional-probe-${crypto.randomUUID()}`;
}

/**
 * Probes `key` (one attempt each write: the caller retries the whole check), records and returns
 * what the store honours, then deletes it (a failed delete, as credentials that may not delete
 * give, leaves only the probe). Refuses a store that ignores `If-Match`. `shown` names the store
 * in the message.
 */
export async function checkConditionalWrites(
  access: ObjectAccess,
  key: string,
  shown: string,
  signal?: AbortSignal,
  options: { allowNone?: boolean } = {},
): Promise<ConditionalWrites> {
  // Probed as it is: an earlier "none" would make these writes emulated, and pass.
  found.delete(access);
  // Each write's bytes differ, so that each version's ETag does (S3's is their MD5).
  const write = (n: number, condition: { ifNoneMatch: "*" } | { ifMatch: string }) =>
    access.putSmall(key, new TextEncoder().encode(`probe ${n}\n`), {
      contentType: "text/plain",
      condition,
    }, signal);
  let createHonoured: boolean;
  let matchHonoured: boolean;
  let matchFound: string;
  try {
    const first = await write(1, { ifNoneMatch: "*" });
    const second = await write(2, { ifNoneMatch: "*" });
    createHonoured = second === "conflict";
    const current = createHonoured ? first : second;
    const replaced = current === "conflict" ? "conflict" : await write(3, { ifMatch: current });
    const stale = current === "conflict" ? "written" : await write(4, { ifMatch: current });
    matchHonoured = replaced !== "conflict" && stale === "conflict";
    matchFound = replaced === "conflict"
      ? "a write If-Match its current ETag was refused"
      : "a write If-Match a replaced ETag was not refused";
  } finally {
    await access.deleteKey(key, undefined, signal).catch(() => {});
  }
  if (!matchHonoured && options.allowNone) {
    found.set(access, "none");
    return "none";
  }
  if (!matchHonoured) {
    throw new CliError(
      "usage",
      `${shown}: the store ignores conditional writes (probing ${key}: ${matchFound}` +
        `${createHonoured ? "" : ", and a second create with If-None-Match: * was not refused"}` +
        `), which the manifest lock, leases and checkpoints rely on; use a store (or proxy) that ` +
        `honours If-Match`,
    );
  }
  const mode: ConditionalWrites = createHonoured ? "both" : "if-match-only";
  found.set(access, mode);
  return mode;
}

/** An ETag without its quotes or weak mark (stores and proxies send one form or another). */
export function bareEtag(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/**
 * A write with `condition` on a store that honours none ("none" above): the condition checked by
 * a read before, the write made without it, and a read after that must find these bytes. Two runs
 * writing in the same moment can both pass; that is why such a store only ever gets a warning
 * and `--state` refuses it. `write` makes the unconditional write.
 *
 * @example
 * ```ts
 * import type { ObjectAccess } from "./_object_access.ts";
 * declare const access: ObjectAccess;
 * const bytes = new TextEncoder().encode("{}");
 * await emulatedPut(access, "k.lock", bytes, { ifNoneMatch: "*" }, () =>
 *   access.putSmall("k.lock", bytes, { contentType: "application/json" }));
 * ```
 */
export async function emulatedPut(
  access: ObjectAccess,
  key: string,
  bytes: Uint8Array,
  condition: { ifNoneMatch: "*" } | { ifMatch: string },
  write: () => Promise<string | "conflict">,
  signal?: AbortSignal,
): Promise<string | "conflict"> {
  const maxBytes = Math.max(bytes.length, 1024 * 1024);
  const before = await access.get(key, { signal, maxBytes });
  if (
    "ifNoneMatch" in condition
      ? before
      : !before || bareEtag(before.etag) !== bareEtag(condition.ifMatch)
  ) {
    return "conflict";
  }
  const written = await write();
  if (written === "conflict") return written;
  const after = await access.get(key, { signal, maxBytes });
  if (!after || after.bytes.length !== bytes.length) return "conflict";
  for (let i = 0; i < bytes.length; i++) if (after.bytes[i] !== bytes[i]) return "conflict";
  return after.etag;
}

/** A delete If-Match on such a store: the version read first, then the delete without it. */
export async function emulatedDelete(
  access: ObjectAccess,
  key: string,
  condition: { ifMatch: string },
  remove: () => Promise<void | "conflict">,
  signal?: AbortSignal,
): Promise<void | "conflict"> {
  const before = await access.get(key, { signal });
  if (before && bareEtag(before.etag) !== bareEtag(condition.ifMatch)) return "conflict";
  return await remove();
}
