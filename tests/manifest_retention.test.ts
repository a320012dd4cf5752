/**
 * Under `--retain-days`, the archive's manifests are as write-once as its objects (issue 17's
 * retention, issue 18's manifest): each manifest is written with the run's retention, while the
 * manifest lock and the live marks never are (they must be deleted or replaced).
 *
 * - s3 (Ceph RGW, a bucket with Object Lock): the manifest's retention reads back (`GET
 *   ?retention`), a DELETE of its version is refused, the lock's and the mark's versions carry
 *   none and can be deleted; a second run takes the lock again and verify exits 0.
 * - azure (the immutability stand-in, tests/servers/azure_immutability_standin.ts: Azurite has
 *   no immutability policies): the headers the manifest's Put Blob sent, and none on the lock's
 *   and the mark's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW } from "./helpers/mod.ts";
import type { Emulator } from "./emulator/mod.ts";
import { type Ceph, CEPH_SKIP, createBucket, s3Request, startCeph } from "./servers/ceph.ts";
import { startImmutabilityStandin } from "./servers/azure_immutability_standin.ts";

const DAY_MS = 86_400_000;

function run(emulator: Emulator, target: string, env: Record<string, string>, extra: string[]) {
  return runCli(
    [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", target, ...extra],
    {
      env: envFor(emulator, { OAI_COMPLIANCE_STORE_BACKOFF_MS: "50", ...env }),
      timeoutMs: 120_000,
    },
  );
}

interface Version {
  key: string;
  versionId: string;
}

/** Every version (not delete markers) of every key under `prefix` (ListObjectVersions). */
async function versionsUnder(ceph: Ceph, bucket: string, prefix: string): Promise<Version[]> {
  const answer = await s3Request(ceph, "GET", `/${bucket}`, {
    query: `prefix=${encodeURIComponent(prefix)}&versions=`,
  });
  assert.equal(answer.status, 200, answer.text);
  return [...answer.text.matchAll(/<Version>([\s\S]*?)<\/Version>/g)].map((m) => ({
    key: /<Key>([^<]*)<\/Key>/.exec(m[1])![1],
    versionId: /<VersionId>([^<]*)<\/VersionId>/.exec(m[1])![1],
  }));
}

function retentionOf(ceph: Ceph, bucket: string, version: Version) {
  return s3Request(ceph, "GET", `/${bucket}/${version.key}`, {
    query: `retention=&versionId=${encodeURIComponent(version.versionId)}`,
  });
}

test(
  "s3 (Ceph RGW): under --retain-days each manifest gets the objects' Object Lock retention; its version cannot be deleted; the lock and live marks get none",
  { skip: CEPH_SKIP, timeout: 240_000 },
  async () => {
    const ceph = await startCeph();
    const bucket = `t-manifest-lock-${crypto.randomUUID().slice(0, 8)}`;
    await createBucket(ceph, bucket, true);
    const target = `s3://${bucket}/p`;
    const retain = ["--retain-days", "2", "--retain-mode", "governance"];
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const before = Date.now();
      const first = await run(emulator, target, ceph.env, retain);
      assert.equal(first.code, 0, first.stderr);
      // Nothing new: an empty manifest, written after taking the lock again.
      const second = await run(emulator, target, ceph.env, retain);
      assert.equal(second.code, 0, second.stderr);
      const after = Date.now();

      const versions = await versionsUnder(ceph, bucket, "p/_manifest/");
      const manifests = versions.filter((v) => /\/_manifest\/[^/.][^/]*\.jsonl$/.test(v.key));
      assert.equal(manifests.length, 2, JSON.stringify(versions));
      for (const manifest of manifests) {
        const retention = await retentionOf(ceph, bucket, manifest);
        assert.equal(retention.status, 200, `${manifest.key}: ${retention.text}`);
        assert.match(retention.text, /<Mode>GOVERNANCE<\/Mode>/);
        const until = Date.parse(/<RetainUntilDate>([^<]+)</.exec(retention.text)![1]);
        assert.ok(
          until >= before + 2 * DAY_MS - 2000 && until <= after + 2 * DAY_MS + 2000,
          `${manifest.key} retained until ${new Date(until).toISOString()}`,
        );
        // Without a governance bypass, its version cannot be deleted.
        const path = `/${bucket}/${manifest.key}`;
        const query = `versionId=${encodeURIComponent(manifest.versionId)}`;
        const deleted = await s3Request(ceph, "DELETE", path, { query });
        assert.equal(deleted.status, 403, `DELETE of a retained manifest: ${deleted.text}`);
        assert.match(deleted.text, /AccessDenied/);
        const still = await s3Request(ceph, "GET", path, { query });
        assert.equal(still.status, 200, "the manifest's version is still there");
      }

      // The lock and the live marks were written (and deleted) without retention.
      const others = versions.filter((v) => !manifests.includes(v));
      const names = others.map((v) => v.key.slice("p/_manifest/".length));
      assert.ok(names.includes(".lock"), `the lock's versions: ${names}`);
      assert.ok(names.some((n) => n.startsWith(".live-")), `the live marks' versions: ${names}`);
      for (const version of others) {
        const retention = await retentionOf(ceph, bucket, version);
        assert.doesNotMatch(retention.text, /<Mode>/, `${version.key} has no retention`);
        const deleted = await s3Request(ceph, "DELETE", `/${bucket}/${version.key}`, {
          query: `versionId=${encodeURIComponent(version.versionId)}`,
        });
        assert.equal(deleted.status, 204, `${version.key} can be deleted: ${deleted.text}`);
      }

      const verified = await runCli(["verify", target], { env: ceph.env, timeoutMs: 120_000 });
      assert.equal(verified.code, 0, verified.stderr);
    });
  },
);

test(
  "azure (stand-in): under --retain-days each manifest's Put Blob carries the blobs' immutability policy; the lock's and live mark's carry none",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const standin = await startImmutabilityStandin({ container: "worm", versionLevelWorm: true });
      try {
        const env = { AZURE_STORAGE_CONNECTION_STRING: standin.connectionString };
        const target = "az://worm/sec";
        const before = Date.now();
        const r = await run(emulator, target, env, [
          "--retain-days",
          "7",
          "--retain-mode",
          "compliance",
        ]);
        assert.equal(r.code, 0, r.stderr);
        const after = Date.now();

        const puts = standin.requests.filter((q) =>
          q.method === "PUT" && q.path.includes("/sec/_manifest/")
        );
        const manifestPuts = puts.filter((q) => /\/_manifest\/[^/.][^/]*\.jsonl$/.test(q.path));
        assert.equal(manifestPuts.length, 1, puts.map((q) => q.path).join(", "));
        const [manifest] = manifestPuts;
        assert.equal(manifest.status, 201);
        assert.equal(manifest.headers["x-ms-immutability-policy-mode"], "Locked");
        const until = Date.parse(manifest.headers["x-ms-immutability-policy-until-date"]);
        // An RFC 1123 date has whole seconds.
        assert.ok(
          until >= before + 7 * DAY_MS - 2000 && until <= after + 7 * DAY_MS + 2000,
          manifest.headers["x-ms-immutability-policy-until-date"],
        );
        const name = decodeURIComponent(manifest.path.split("/").slice(3).join("/"));
        assert.equal(standin.versions.get(name)?.[0].policy?.mode, "Locked");

        // The objects' Put Blob sent the same policy; the lock's and the mark's sent none.
        const others = puts.filter((q) => !manifestPuts.includes(q));
        assert.ok(others.some((q) => q.path.endsWith("/_manifest/.lock")), "the lock was taken");
        assert.ok(others.some((q) => q.path.includes("/_manifest/.live-")), "the run was marked");
        for (const q of others) {
          assert.equal(q.headers["x-ms-immutability-policy-mode"], undefined, q.path);
          assert.equal(q.headers["x-ms-immutability-policy-until-date"], undefined, q.path);
        }
        const deletes = standin.requests.filter((q) =>
          q.method === "DELETE" && q.path.includes("/_manifest/")
        );
        assert.ok(deletes.length >= 2 && deletes.every((q) => q.status === 202), "let go of");
      } finally {
        await standin.close();
      }
    });
  },
);
