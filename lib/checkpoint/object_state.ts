/**
 * A checkpoint kept in object storage (`--state s3://BUCKET/KEY`, `--state az://CONTAINER/KEY`
 * or `--state https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY`), so that a Kubernetes
 * CronJob or a CI job needs no volume. The local file's guarantees, by the store's own means:
 *
 * - the lock is a lease at `KEY.lock` (lib/destinations/_lease.ts): created only if absent,
 *   renewed while the run lasts, taken over once expired (its holder died);
 * - every write is conditional: the first `If-None-Match: *`, each later one `If-Match` the ETag
 *   last read or written, so two writers can never both move the checkpoint (where the store
 *   ignores `If-None-Match: *`, the probe in `lock()` says so: the lease then works by `If-Match`
 *   alone and the first write, made under it, is unconditional). A failed condition
 *   stops the run with a "state" error, and nothing is moved;
 * - credentials are the destinations' (the same environment variables, redacted alike).
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const store = objectStateStore("s3://jobs/openai/auth.state.json", env);
 * const found = await store.read();
 * ```
 */
import { hostname } from "node:os";
import process from "node:process";
import { BlobClient } from "../azure/blob_client.ts";
import { AZURE_SECRET_ENV, azureAccountFrom } from "../azure/credentials.ts";
import type { ObjectAccess } from "../destinations/_object_access.ts";
import { describeLease, takeLease } from "../destinations/_lease.ts";
import {
  checkConditionalWrites,
  createCondition,
  probeName,
} from "../destinations/_conditional_probe.ts";
import { storeRetryPolicy } from "../destinations/_object_store.ts";
import { AzureBlobStore } from "../destinations/azure_blob.ts";
import { s3Kind, s3Store } from "../destinations/s3.ts";
import { CliError, registerSecret, usage } from "../errors.ts";
import type { RetryPolicy } from "../retry.ts";
import { withRetries } from "../retry.ts";
import type { Env } from "../settings.ts";
import type { StateLock, StateStore, StoredState } from "./store.ts";

/** A checkpoint is a few kilobytes; the local file's cap holds here too. */
const MAX_STATE_BYTES = 16 * 1024 * 1024;

const S3_URL = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/;
const BUCKET = /^[a-z0-9][a-z0-9.\-_]{1,254}$/i;
const AZ_URL = /^az:\/\/([^/?#]*)(?:\/([^?#]*))?$/;
const AZURE_HTTPS_URL =
  /^https:\/\/([a-z0-9]{3,24})\.blob\.core\.windows\.net\/([^/?#]*)(?:\/([^?#]*))?$/;
const CONTAINER = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;

/** Where a `--state` URL keeps the checkpoint. */
export type StateUrl =
  | { store: "s3"; bucket: string; key: string }
  | { store: "azure"; account?: string; container: string; key: string };

/**
 * The bucket or container and key of a `--state` URL: `s3://BUCKET/KEY`, `az://CONTAINER/KEY`
 * or `https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY`; a usage error for anything else.
 *
 * @example
 * ```ts
 * parseStateUrl("s3://jobs/openai/auth.state.json");
 * // { store: "s3", bucket: "jobs", key: "openai/auth.state.json" }
 * ```
 */
export function parseStateUrl(text: string): StateUrl {
  const s3 = S3_URL.exec(text);
  if (s3) {
    if (!BUCKET.test(s3[1])) throw usage(`--state ${text}: '${s3[1]}' is not a bucket name`);
    return { store: "s3", bucket: s3[1], key: stateKey(text, s3[2]) };
  }
  const https = AZURE_HTTPS_URL.exec(text);
  const az = https ? [text, https[2], https[3]] : AZ_URL.exec(text);
  if (az) {
    if (!CONTAINER.test(az[1])) {
      throw usage(`--state ${text}: '${az[1]}' is not a valid container name`);
    }
    return { store: "azure", account: https?.[1], container: az[1], key: stateKey(text, az[2]) };
  }
  throw usage(
    `--state ${text}: a checkpoint in a store is s3://BUCKET/KEY, az://CONTAINER/KEY or ` +
      `https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY`,
  );
}

/** The object key of a `--state` URL's path: no empty, `.` or `..` segment, no trailing `/`. */
function stateKey(text: string, path: string | undefined): string {
  const segments = (path ?? "").split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) {
    throw usage(
      `--state ${text}: name the checkpoint's object as s3://BUCKET/KEY or az://CONTAINER/KEY ` +
        `(a key with no empty, '.' or '..' segment and no trailing '/')`,
    );
  }
  return path!;
}

/** The store and key a `--state` URL names. */
function accessOf(text: string, env: Env): { access: ObjectAccess; key: string } {
  const url = parseStateUrl(text);
  if (url.store === "s3") return { access: s3Store(`s3://${url.bucket}`, env), key: url.key };
  const client = new BlobClient(azureAccountFrom(env, url.account));
  return { access: new AzureBlobStore(client, url.container, ""), key: url.key };
}

/**
 * The store of a `--state` URL, with the destinations' credentials from `env` (its secrets
 * registered for redaction here too: `state show` runs without a run's harness).
 */
export function objectStateStore(text: string, env: Env): StateStore {
  for (const name of [...s3Kind.secretEnv, ...AZURE_SECRET_ENV]) {
    const value = env[name];
    if (value) registerSecret(value);
  }
  const { access, key } = accessOf(text, env);
  return new ObjectStateStore(text, access, key, storeRetryPolicy(env));
}

class ObjectStateStore implements StateStore {
  constructor(
    readonly shown: string,
    private readonly access: ObjectAccess,
    private readonly key: string,
    private readonly policy: RetryPolicy,
  ) {}

  private retried<T>(what: string, attempt: (n: number) => Promise<T>): Promise<T> {
    return withRetries(`${what} ${this.shown}`, this.policy, attempt, () => {});
  }

  prepare(): Promise<void> {
    return Promise.resolve(); // The first read says whether the bucket and credentials work.
  }

  async read(): Promise<StoredState | undefined> {
    const found = await this.retried(
      "reading the checkpoint",
      () => this.access.get(this.key, { maxBytes: MAX_STATE_BYTES }),
    );
    if (!found) return undefined;
    return { text: new TextDecoder().decode(found.bytes), version: found.etag };
  }

  async write(text: string, expected: string | undefined): Promise<string> {
    const bytes = new TextEncoder().encode(text);
    let tries = 0;
    const tag = await this.retried("writing the checkpoint", () => {
      tries++;
      return this.access.putSmall(this.key, bytes, {
        contentType: "application/json",
        // Created under the lease: without If-None-Match where the store ignores it (Ceph 16 on
        // a versioned bucket), where the lease alone keeps a second writer out.
        condition: expected === undefined ? createCondition(this.access) : { ifMatch: expected },
      });
    });
    if (tag !== "conflict") return tag;
    // A retried write whose first try landed (its answer lost) conflicts with itself.
    if (tries > 1) {
      const now = await this.read();
      if (now?.text === text) return now.version;
    }
    throw new CliError(
      "state",
      `the checkpoint ${this.shown} was changed by another writer since this run read it ` +
        `(its ETag is no longer ${expected ?? "absent"}); stopping without moving it: the ` +
        `files confirmed so far are recorded, and another run may be using the same --state`,
    );
  }

  async remove(expected: string | undefined): Promise<void> {
    const done = await this.retried(
      "deleting the checkpoint",
      () => this.access.deleteKey(this.key, expected ? { ifMatch: expected } : undefined),
    );
    if (done === "conflict") {
      throw new CliError(
        "state",
        `the checkpoint ${this.shown} was changed by another writer meanwhile; not deleted`,
      );
    }
  }

  async lock(): Promise<StateLock> {
    // Only a run that will write takes the lock: a read-only open (`--list`, `state show`)
    // stays free of writes. The lease and the checkpoint's moves need conditional writes; the
    // probe records for this access whether they work by If-Match alone (the lease reads it).
    await this.retried(
      "checking conditional writes on",
      () =>
        checkConditionalWrites(this.access, `${this.key}${probeName()}`, `--state ${this.shown}`),
    );
    return await takeLease(this.access, `${this.key}.lock`, {
      owner: `run ${crypto.randomUUID().slice(0, 8)}, pid ${process.pid} on ${hostName()}`,
      what: `the checkpoint ${this.shown}`,
      policy: this.policy,
    });
  }

  describeLock(): Promise<string> {
    return describeLease(this.access, `${this.key}.lock`, this.policy);
  }
}

function hostName(): string {
  try {
    return hostname();
  } catch {
    return "an unknown host";
  }
}
