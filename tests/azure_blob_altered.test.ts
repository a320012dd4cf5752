/**
 * azure: a blob altered out of band, found by a re-run, is kept as evidence before the listed file
 * is written over it, and reported as kept aside (a warning, `kept_aside` in the summary, a line
 * in the run's manifest, an explained alteration for `verify`):
 *
 * - on Azurite (tests/servers/azurite.ts), which keeps no blob versions: copied within the
 *   account with Copy Blob to `<key>.altered-<UTC time>` beside it;
 * - on the stand-in that keeps versions (tests/servers/azure_immutability_standin.ts; Azurite
 *   implements none): kept as the version Get Blob Properties named (`x-ms-version-id`), reported
 *   as `az://C/P/KEY?versionid=...` with the size and SHA-256 read back from that version.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { LogFile } from "../lib/log_file.ts";
import { BlobClient } from "../lib/azure/blob_client.ts";
import { azureAccountFrom, DEVELOPMENT_ACCOUNT } from "../lib/azure/credentials.ts";
import { relativeKey } from "../lib/destinations/layout.ts";
import { AzureBlobStore } from "../lib/destinations/azure_blob.ts";
import type { Emulator } from "./emulator/mod.ts";
import { type CliResult, lines, runCli, summaryOf } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW } from "./helpers/mod.ts";
import { accountSas, azuriteSkip, connectionStringFor, startAzurite } from "./servers/azurite.ts";
import { startFaultProxy } from "./servers/azure_fault_proxy.ts";
import { startImmutabilityStandin } from "./servers/azure_immutability_standin.ts";

const AZURITE = { ...SLOW, skip: azuriteSkip() };
const NAMING = { gzip: false, layout: "plain" as const };
const FORGED = new TextEncoder().encode('{"event_id":"forged","type":"not what the API served"}\n');

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function run(target: string, env: Record<string, string>, command: string[] = []) {
  const args = command.length
    ? [...command, target, "--json"]
    : [PRINCIPAL, "AUTH_LOG", "100", AFTER, "--output-dir", target, "--log-format", "json"];
  return runCli(args, { env, timeoutMs: 90_000 });
}

/** The listed file of `id` and its key under `prefix`, with the bytes the API serves. */
async function listed(emulator: Emulator, id: string, prefix: string) {
  const spec = emulator.files.find((f) => f.id === id)!;
  const file: LogFile = { id, event_type: "AUTH_LOG", end_time: spec.endTime };
  const relative = relativeKey(file, "AUTH_LOG", NAMING);
  return { relative, key: prefix + relative, content: await emulator.contentOf(id) };
}

/** The "kept aside" warnings of a `--log-format json` run. */
function keptAsideWarnings(r: CliResult): string[] {
  return lines(r.stderr).map((l) => JSON.parse(l))
    .filter((e) => e.event === "warning").map((e) => e.message as string)
    .filter((m) => m.includes("kept aside"));
}

/** The `kept_aside` lines of the manifests among `blobs` (name to bytes). */
function keptAsideLines(blobs: Array<[string, Uint8Array]>): Array<Record<string, unknown>> {
  return blobs.filter(([name]) => /\/_manifest\/[^/]+\.jsonl$/.test(name)).flatMap((
    [, bytes],
  ) =>
    new TextDecoder().decode(bytes).trim().split("\n").map((l) => JSON.parse(l))
      .filter((l) => l.type === "kept_aside")
  );
}

/** `verify --json` exits 0 and explains the alteration of `id`, with no problem. */
async function assertVerifiedWithExplanation(
  target: string,
  env: Record<string, string>,
  id: string,
): Promise<void> {
  const verified = await run(target, env, ["verify"]);
  assert.equal(verified.code, 0, verified.stderr);
  const report = JSON.parse(new TextDecoder().decode(verified.stdout)) as {
    findings: Array<{ kind: string; severity: string; id?: string }>;
  };
  assert.ok(
    report.findings.some((f) => f.kind === "kept_aside" && f.id === id),
    JSON.stringify(report.findings),
  );
  assert.ok(
    !report.findings.some((f) => f.severity === "problem"),
    JSON.stringify(report.findings),
  );
}

test(
  "azure (Azurite): a blob altered out of band is copied aside with Copy Blob to <key>.altered-<time>, reported, and the listed file written over it",
  AZURITE,
  async () => {
    const azurite = await startAzurite();
    const container = `t${randomBytes(6).toString("hex")}`;
    await azurite.createContainer(container);
    const proxy = await startFaultProxy(`http://127.0.0.1:${azurite.port}`);
    try {
      await withEmulator({ files: hourlyFiles(2, { sizes: [1500, 900] }) }, async (emulator) => {
        const env = envFor(emulator, {
          AZURE_STORAGE_CONNECTION_STRING: connectionStringFor(
            `${proxy.origin}/${DEVELOPMENT_ACCOUNT}`,
          ),
          OAI_COMPLIANCE_STORE_BACKOFF_MS: "10",
        });
        const target = `az://${container}/p`;
        assert.equal((await run(target, env)).code, 0);
        const [id, other] = idsOf(emulator);
        const { relative, key, content } = await listed(emulator, id, "p/");
        // Altered out of band, its metadata too (as a careless re-upload would leave it).
        await azurite.client.putBlob(container, key, FORGED, md5(FORGED), {
          "x-ms-meta-size": "1",
          "x-ms-meta-note": "forged",
        });

        const before = Date.now();
        const downloads = emulator.downloadRequests(id).length;
        proxy.requests.length = 0;
        const again = await run(target, env);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(summaryOf(again).kept_aside, 1);
        assert.equal(emulator.downloadRequests(id).length, downloads + 1, "downloaded again");
        assert.equal(emulator.downloadRequests(other).length, 1, "the whole one is not");

        const blobs = await azurite.listBlobs(container, "p/");
        const asides = blobs.filter((b) => b.name.startsWith(`${key}.altered-`));
        assert.equal(asides.length, 1, JSON.stringify(blobs.map((b) => b.name)));
        const asideKey = asides[0].name;
        const stamp = /\.altered-(\d{8}T\d{6}\.\d{3}Z)$/.exec(asideKey)?.[1];
        assert.ok(stamp, asideKey);
        const at = Date.parse(
          stamp.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)/, "$1-$2-$3T$4:$5:$6"),
        );
        assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `${stamp} is the re-run's time`);
        // A server-side copy (Copy Blob of the key, on the ETag seen), not an upload of bytes.
        const copies = proxy.requests.filter((r) => r.headers["x-ms-copy-source"]);
        assert.equal(copies.length, 1, JSON.stringify(proxy.requests.map((r) => r.url)));
        assert.equal(copies[0].method, "PUT");
        assert.ok(copies[0].url.endsWith(`/${container}/${asideKey}`), copies[0].url);
        assert.ok(copies[0].headers["x-ms-copy-source"].endsWith(`/${container}/${key}`));
        assert.ok(copies[0].headers["x-ms-source-if-match"], "the copy names the ETag seen");
        assert.equal(copies[0].bodyBytes, 0);

        const [warning] = keptAsideWarnings(again);
        assert.ok(warning.includes(`az://${container}/p/${relative}`), warning);
        assert.ok(warning.includes(`az://${container}/${asideKey}`), warning);
        assert.equal(sha256(await azurite.blobBytes(container, asideKey)), sha256(FORGED));
        assert.equal(asides[0].metadata.note, "forged", "the evidence keeps its metadata");
        assert.equal(sha256(await azurite.blobBytes(container, key)), sha256(content));
        assert.equal(
          blobs.find((b) => b.name === key)?.metadata.sha256,
          await emulator.sha256Of(id),
        );

        const manifests: Array<[string, Uint8Array]> = [];
        for (const blob of blobs) {
          if (blob.name.includes("/_manifest/")) {
            manifests.push([blob.name, await azurite.blobBytes(container, blob.name)]);
          }
        }
        const recorded = keptAsideLines(manifests);
        assert.equal(recorded.length, 1, JSON.stringify(manifests.map(([n]) => n)));
        assert.equal(recorded[0].id, id);
        assert.equal(recorded[0].path, relative);
        assert.equal(recorded[0].aside, asideKey.slice("p/".length));
        assert.equal(recorded[0].aside_size, FORGED.length);
        assert.equal(recorded[0].aside_sha256, sha256(FORGED));
        await assertVerifiedWithExplanation(target, env, id);

        // A third run finds the key whole: nothing more is copied or written.
        const third = await run(target, env);
        assert.equal(third.code, 0, third.stderr);
        assert.equal(summaryOf(third).kept_aside ?? 0, 0);
        const after = (await azurite.listBlobs(container, "p/"))
          .filter((b) => b.name.startsWith(`${key}.altered-`)).map((b) => b.name);
        assert.deepEqual(after, [asideKey]);
      });
    } finally {
      await proxy.close();
    }
  },
);

test(
  "azure (stand-in with versions): a blob altered out of band is kept as its version, reported as ?versionid= with what that version holds, and the listed file written as a new version",
  SLOW,
  async () => {
    const standin = await startImmutabilityStandin({ container: "worm", versionLevelWorm: true });
    try {
      await withEmulator({ files: hourlyFiles(2, { sizes: [1500, 900] }) }, async (emulator) => {
        const env = envFor(emulator, {
          AZURE_STORAGE_CONNECTION_STRING: standin.connectionString,
          OAI_COMPLIANCE_STORE_BACKOFF_MS: "10",
        });
        const target = "az://worm/sec";
        const first = await run(target, env);
        assert.equal(first.code, 0, first.stderr);
        const [id] = idsOf(emulator);
        const { relative, key, content } = await listed(emulator, id, "sec/");
        // Altered out of band: a Put Blob of other bytes, which makes a new version.
        const client = new BlobClient(
          azureAccountFrom(
            { AZURE_STORAGE_CONNECTION_STRING: standin.connectionString },
            undefined,
          ),
        );
        const put = await client.putBlob("worm", key, FORGED, md5(FORGED), {});
        const forgedVersion = put.headers.get("x-ms-version-id")!;
        assert.ok(forgedVersion, "the stand-in names the version");
        assert.equal(standin.versions.get(key)!.length, 2);

        standin.requests.length = 0;
        const again = await run(target, env);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(summaryOf(again).kept_aside, 1);
        const [warning] = keptAsideWarnings(again);
        const aside = `${relative}?versionid=${encodeURIComponent(forgedVersion)}`;
        assert.ok(warning.includes(`az://worm/sec/${aside}`), warning);
        // What the version holds was read back from that version, not taken from its metadata.
        assert.ok(
          standin.requests.some((r) =>
            r.method === "GET" && r.query.versionid === forgedVersion && r.status === 200
          ),
          JSON.stringify(standin.requests.map((r) => [r.method, r.path, r.query])),
        );
        assert.ok(!standin.requests.some((r) => r.headers["x-ms-copy-source"]), "no copy");

        const versions = standin.versions.get(key)!;
        assert.equal(versions.length, 3, "the forged version is kept, the listed file is new");
        assert.equal(sha256(versions[1].bytes), sha256(FORGED));
        assert.equal(sha256(versions[2].bytes), sha256(content));
        assert.equal(versions[2].metadata.sha256, await emulator.sha256Of(id));
        assert.deepEqual([...standin.versions.keys()].filter((n) => n.includes(".altered-")), []);

        const recorded = keptAsideLines(
          [...standin.versions].map(([name, list]) => [name, list.at(-1)!.bytes]),
        );
        assert.equal(recorded.length, 1);
        assert.equal(recorded[0].id, id);
        assert.equal(recorded[0].path, relative);
        assert.equal(recorded[0].aside, aside);
        assert.equal(recorded[0].aside_size, FORGED.length);
        assert.equal(recorded[0].aside_sha256, sha256(FORGED));
        await assertVerifiedWithExplanation(target, env, id);
      });
    } finally {
      await standin.close();
    }
  },
);

test(
  "azure (Azurite): with a SAS token (sp=rcwl) an altered blob is still copied aside, the token never shown",
  AZURITE,
  async () => {
    const azurite = await startAzurite();
    const container = `t${randomBytes(6).toString("hex")}`;
    await azurite.createContainer(container);
    await withEmulator({ files: hourlyFiles(1, { sizes: [700] }) }, async (emulator) => {
      const token = accountSas("rcwl", new Date(Date.now() + 3_600_000));
      const env = envFor(emulator, {
        AZURE_STORAGE_CONNECTION_STRING:
          `BlobEndpoint=${azurite.blobEndpoint};SharedAccessSignature=${token}`,
        OAI_COMPLIANCE_STORE_BACKOFF_MS: "10",
      });
      const target = `az://${container}/sas`;
      assert.equal((await run(target, env)).code, 0);
      const [id] = idsOf(emulator);
      const { key, content } = await listed(emulator, id, "sas/");
      await azurite.client.putBlob(container, key, FORGED, md5(FORGED), {});
      const again = await run(target, env);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(summaryOf(again).kept_aside, 1);
      const sig = new URLSearchParams(token).get("sig")!;
      assert.ok(!again.stderr.includes(sig) && !again.stderr.includes(encodeURIComponent(sig)));
      const asides = (await azurite.listBlobs(container, "sas/"))
        .filter((b) => b.name.startsWith(`${key}.altered-`));
      assert.equal(asides.length, 1);
      assert.equal(sha256(await azurite.blobBytes(container, asides[0].name)), sha256(FORGED));
      assert.equal(sha256(await azurite.blobBytes(container, key)), sha256(content));
    });
  },
);

/** A blob client whose Copy Blob answers `pending`, then Get Blob Properties says when it is done. */
class PendingCopyClient extends BlobClient {
  polls = 0;
  constructor(private readonly doneAfter: number, private readonly outcome: string) {
    super({
      name: DEVELOPMENT_ACCOUNT,
      endpoint: new URL(`http://127.0.0.1:9/${DEVELOPMENT_ACCOUNT}`),
      auth: { kind: "shared-key", key: "a2V5" },
      source: "the test",
    });
  }
  override copyBlob(): Promise<string> {
    return Promise.resolve("pending");
  }
  override blobProperties(_container: string, blob: string) {
    if (!blob.includes(".altered-")) return Promise.resolve(undefined);
    const done = this.polls++ >= this.doneAfter;
    return Promise.resolve({
      size: FORGED.length,
      metadata: {},
      contentMd5: md5(FORGED),
      copyStatus: done ? this.outcome : "pending",
    });
  }
}

test("azure: a pending Copy Blob is polled with Get Blob Properties until success; a failed one keeps nothing and fails", async () => {
  const seen = { size: FORGED.length, metadata: {}, etag: '"0x1"', md5: md5(FORGED) };
  const done = new PendingCopyClient(2, "success");
  const store = new AzureBlobStore(done, "c", "p/");
  await store.copyAside("p/a.jsonl", "p/a.jsonl.altered-x", seen);
  assert.equal(done.polls, 3, "the first look and a poll pending, then a poll says success");

  const failed = new AzureBlobStore(new PendingCopyClient(1, "failed"), "c", "p/");
  await assert.rejects(
    failed.copyAside("p/a.jsonl", "p/a.jsonl.altered-x", seen),
    /x-ms-copy-status failed; nothing was written over p\/a\.jsonl/,
  );
  const short = new AzureBlobStore(new PendingCopyClient(0, "success"), "c", "p/");
  await assert.rejects(
    short.copyAside("p/a.jsonl", "p/a.jsonl.altered-x", { ...seen, size: 99 }),
    /not the altered blob's 99 bytes/,
  );
});

function md5(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("base64");
}
