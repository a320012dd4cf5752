/**
 * `--from-archive DIR` (issue 19, "One download, several destinations"): a SIEM fed from an
 * archive the tool wrote, without the API. Black-box: the emulator fills a local `--output-dir`
 * (plain and `--gzip`), then `--from-archive` feeds `-o FILE` and the Splunk HEC emulator with
 * their own `--state`, with no key in the environment, while the Compliance API emulator's request
 * log shows that nothing reached it. A stored file that no longer matches its manifest fails the
 * run with the checkpoint before it; files the archive recorded as gone are passed over.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { gzipSync } from "node:zlib";
import type { Emulator } from "./emulator/mod.ts";
import { lines, runCli, summaryOf } from "./helpers/cli.ts";
import {
  AFTER,
  envFor,
  expectedStream,
  hourlyFiles,
  idsOf,
  PRINCIPAL,
  withEmulator,
} from "./helpers/fixtures.ts";
import { listTree } from "./helpers/compare.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import { startHecEmulator } from "./siem/hec_emulator.ts";
import { CEPH_SKIP, createBucket, s3Request, startCeph } from "./servers/ceph.ts";
import { azuriteSkip, startAzurite } from "./servers/azurite.ts";

const TOKEN = "9a1d7c3e-2b4f-4e6a-8c0d-5f7b9e1a3c52";

/** Stores the emulator's files in `archive` through the API, as a scheduled job would. */
function archiveFromApi(
  emulator: Emulator,
  archive: string,
  extra: string[] = [],
  options: { eventTypes?: string; env?: Record<string, string> } = {},
) {
  return runCli(
    [PRINCIPAL, options.eventTypes ?? "AUTH_LOG", "10", AFTER, "--output-dir", archive, ...extra],
    {
      env: envFor(emulator, { OAI_COMPLIANCE_GONE_RETRY_MS: "5", ...options.env }),
      timeoutMs: 120_000,
    },
  );
}

/**
 * A `--from-archive` run with no key at all, and the API base pointed at the emulator: a request
 * it made would be in the emulator's log.
 */
function fromArchive(
  emulator: Emulator,
  archive: string,
  args: string[],
  options: {
    env?: Record<string, string>;
    eventTypes?: string;
    limit?: string;
    onSpawn?: (child: ChildProcess) => void;
  } = {},
) {
  const { eventTypes = "AUTH_LOG", limit = "10" } = options;
  return runCli(
    ["--from-archive", archive, ...args, PRINCIPAL, eventTypes, limit, AFTER],
    {
      env: {
        COMPLIANCE_API_BASE: emulator.apiBase,
        OAI_COMPLIANCE_SIEM_BACKOFF_MS: "10",
        ...options.env,
      },
      timeoutMs: 90_000,
      onSpawn: options.onSpawn,
    },
  );
}

/** Every record (non-blank line) of the emulator's files, in listing order. */
async function recordsOf(emulator: Emulator, ids: string[]): Promise<string[]> {
  const text = new TextDecoder().decode(await expectedStream(emulator, ids));
  return text.split("\n").filter((line) => line.trim() !== "");
}

function errorLines(stderr: string): string[] {
  return lines(stderr).filter((line) => line.startsWith("error:"));
}

test(
  "README example: an archive feeds -o FILE and Splunk HEC without the API or a key; a second run sends nothing",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(6) }, async (emulator) => {
      const hec = await startHecEmulator({ tokens: { [TOKEN]: { ack: true } } });
      try {
        await withDir("oai-from-archive-", async (dir) => {
          const archive = join(dir, "logs");
          const stored = await archiveFromApi(emulator, archive);
          assert.equal(stored.code, 0, stored.stderr);
          const ids = idsOf(emulator);
          const apiRequests = emulator.requests.length;

          // oai-compliance-logs --from-archive logs/ -o hec+https://splunk:8088 --state siem.state.json ...
          const siemState = join(dir, "siem.state.json");
          const env = { SPLUNK_HEC_TOKEN: TOKEN };
          const toHec = ["-o", hec.target, "--state", siemState, "--log-format", "json"];
          const first = await fromArchive(emulator, archive, toHec, { env });
          assert.equal(first.code, 0, first.stderr);
          const want = await recordsOf(emulator, ids);
          assert.equal(hec.events.length, want.length, "every record arrived once");
          assert.deepEqual(
            hec.events.map((e) => JSON.stringify(e.event.event)).sort(),
            want.map((line) => JSON.stringify(JSON.parse(line))).sort(),
          );
          const summary = summaryOf(first);
          assert.equal(summary.files, ids.length);
          assert.equal(summary.source, `archive ${archive}`);
          const pages = lines(first.stderr).map((l) => JSON.parse(l))
            .filter((e) => e.event === "page");
          assert.ok(pages.length > 0 && pages.every((e) => e.source === `archive ${archive}`));
          const cursor = JSON.parse(await readFile(siemState, "utf8")).cursors.AUTH_LOG;
          assert.equal(Date.parse(cursor.after), Date.parse(emulator.files.at(-1)!.endTime));

          // -o FILE: the records in listing order, byte for byte as the API served them.
          const out = join(dir, "out.jsonl");
          const fileState = join(dir, "file.state.json");
          const toFile = ["-o", out, "--state", fileState];
          const plain = await fromArchive(emulator, archive, toFile);
          assert.equal(plain.code, 0, plain.stderr);
          assert.deepEqual(
            new Uint8Array(await readFile(out)),
            await expectedStream(emulator, ids),
          );
          assert.match(plain.stderr, new RegExp(`read from the archive ${archive}, not the API`));

          const again = await fromArchive(emulator, archive, toHec, { env });
          assert.equal(again.code, 0, again.stderr);
          assert.equal(summaryOf(again).files, 0);
          assert.equal(hec.events.length, want.length, "the second run sent nothing");
          const plainAgain = await fromArchive(emulator, archive, toFile);
          assert.equal(plainAgain.code, 0, plainAgain.stderr);
          assert.deepEqual(
            new Uint8Array(await readFile(out)),
            await expectedStream(emulator, ids),
          );

          assert.equal(emulator.requests.length, apiRequests, "no request reached the API");
        });
      } finally {
        await hec.close();
      }
    });
  },
);

test("a --gzip archive is read back decompressed, verified, in order", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
    await withDir("oai-from-archive-gz-", async (dir) => {
      const archive = join(dir, "logs");
      const stored = await archiveFromApi(emulator, archive, ["--gzip"]);
      assert.equal(stored.code, 0, stored.stderr);
      const apiRequests = emulator.requests.length;
      const out = join(dir, "out.jsonl");
      const r = await fromArchive(emulator, archive, ["-o", out]);
      assert.equal(r.code, 0, r.stderr);
      const ids = idsOf(emulator);
      assert.deepEqual(new Uint8Array(await readFile(out)), await expectedStream(emulator, ids));
      assert.equal(emulator.requests.length, apiRequests, "no request reached the API");
    });
  });
});

test(
  "a damaged stored file fails the run naming it, with the checkpoint before it; verify says the same",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
      await withDir("oai-from-archive-damaged-", async (dir) => {
        const archive = join(dir, "logs");
        const stored = await archiveFromApi(emulator, archive);
        assert.equal(stored.code, 0, stored.stderr);
        const ids = idsOf(emulator);
        // The third file (40,000 bytes): one byte changed, the size kept.
        const damaged = `AUTH_LOG/2026-07-02/${ids[2]}.jsonl`;
        const bytes = new Uint8Array(await readFile(join(archive, damaged)));
        bytes[100] = bytes[100] === 0x41 ? 0x42 : 0x41;
        await writeFile(join(archive, damaged), bytes);

        // Into another archive, which confirms file by file: the checkpoint shows where it stopped.
        const state = join(dir, "copy.state.json");
        const copy = join(dir, "copy");
        const r = await fromArchive(emulator, archive, ["--output-dir", copy, "--state", state]);
        assert.equal(r.code, 1, r.stderr);
        const errors = errorLines(r.stderr);
        assert.equal(errors.length, 1, r.stderr);
        assert.ok(errors[0].includes(`${archive}/${damaged}`), errors[0]);
        assert.match(errors[0], /SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
        assert.match(errors[0], /oai-compliance-logs verify /);
        const cursor = JSON.parse(await readFile(state, "utf8")).cursors.AUTH_LOG;
        assert.deepEqual(cursor.seen, [ids[0], ids[1]], "the checkpoint stays before it");
        assert.deepEqual(
          (await listTree(copy)).filter((p) => !p.startsWith("_manifest")),
          [ids[0], ids[1]].map((id) => `AUTH_LOG/2026-07-02/${id}.jsonl`),
        );

        const verified = await runCli(["verify", archive], { timeoutMs: 60_000 });
        assert.notEqual(verified.code, 0, verified.stderr);
        assert.match(verified.stderr, new RegExp(`${damaged}: altered since it was stored`));

        // The way past it the error names: `state skip` on the feed's own checkpoint.
        const skip = /run `oai-compliance-logs (state skip \S+ AUTH_LOG \S+) --reason TEXT`/
          .exec(errors[0]);
        assert.ok(skip, errors[0]);
        const skipped = await runCli([...skip[1].split(" "), "--reason", "damaged in the archive"]);
        assert.equal(skipped.code, 0, skipped.stderr);
        const resumed = await fromArchive(emulator, archive, [
          "--output-dir",
          copy,
          "--state",
          state,
        ]);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.deepEqual(
          (await listTree(copy)).filter((p) => !p.startsWith("_manifest")),
          [ids[0], ids[1], ids[3], ids[4]].map((id) => `AUTH_LOG/2026-07-02/${id}.jsonl`),
        );
      });
    });
  },
);

test("files the archive recorded as gone are passed over; the rest arrive", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
    await withDir("oai-from-archive-gone-", async (dir) => {
      const archive = join(dir, "logs");
      const ids = idsOf(emulator);
      // Two in a row: the API pass's breaker for "unavailable" ones does not apply to a record.
      emulator.inject({ target: "download", id: ids[1], gone: "unavailable", times: Infinity });
      emulator.inject({ target: "download", id: ids[2], gone: "plain", times: Infinity });
      const stored = await archiveFromApi(emulator, archive);
      assert.equal(stored.code, 4, stored.stderr);
      const out = join(dir, "out.jsonl");
      const state = join(dir, "s.json");
      const r = await fromArchive(emulator, archive, [
        "-o",
        out,
        "--state",
        state,
        "--log-format",
        "json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        new Uint8Array(await readFile(out)),
        await expectedStream(emulator, [ids[0], ids[3]]),
      );
      const skips = lines(r.stderr).map((l) => JSON.parse(l)).filter((e) => e.event === "skip");
      assert.deepEqual(skips.map((e) => e.id), [ids[1], ids[2]]);
      assert.ok(skips.every((e) => /recorded as gone/.test(e.reason)), r.stderr);
    });
  });
});

test("refused before any work: the same archive as --output-dir, or no archive there", async () => {
  await withEmulator({ files: hourlyFiles(1) }, async (emulator) => {
    await withDir("oai-from-archive-usage-", async (dir) => {
      const archive = join(dir, "logs");
      const same = await fromArchive(emulator, archive, ["--output-dir", `${archive}/`]);
      assert.equal(same.code, 2, same.stderr);
      assert.match(same.stderr, /are the same archive/);
      const missing = await fromArchive(emulator, archive, ["-o", join(dir, "out.jsonl")]);
      assert.equal(missing.code, 2, missing.stderr);
      assert.match(missing.stderr, /--from-archive/);
      // The same directory under another name.
      await mkdir(archive);
      await symlink(archive, join(dir, "link"));
      const linked = await fromArchive(emulator, join(dir, "link"), ["--output-dir", archive]);
      assert.equal(linked.code, 2, linked.stderr);
      assert.match(linked.stderr, /are the same directory/);
      assert.equal(emulator.requests.length, 0);
    });
  });
});

test(
  "an event type the archive has not listed yet keeps its start: files recorded later still arrive",
  SLOW,
  async () => {
    const files = [
      ...hourlyFiles(2),
      ...hourlyFiles(2, { eventType: "AUDIT_LOG", start: "2026-07-03T00:00:00Z" }),
    ];
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-from-archive-quiet-", async (dir) => {
        const archive = join(dir, "logs");
        assert.equal((await archiveFromApi(emulator, archive)).code, 0);
        const state = join(dir, "s.json");
        const out = join(dir, "out.jsonl");
        const args = ["-o", out, "--state", state];
        const first = await fromArchive(emulator, archive, args, {
          eventTypes: "AUTH_LOG,AUDIT_LOG",
        });
        assert.equal(first.code, 0, first.stderr);
        // No run of the archive listed AUDIT_LOG: its cursor stays where it started, not "now".
        const cursors = JSON.parse(await readFile(state, "utf8")).cursors;
        assert.equal(Date.parse(cursors.AUDIT_LOG.after), Date.parse(AFTER));

        // The archive's own job for AUDIT_LOG runs later; the feed's next run sends its files.
        const audit = await archiveFromApi(emulator, archive, [], { eventTypes: "AUDIT_LOG" });
        assert.equal(audit.code, 0, audit.stderr);
        const second = await fromArchive(emulator, archive, args, {
          eventTypes: "AUTH_LOG,AUDIT_LOG",
        });
        assert.equal(second.code, 0, second.stderr);
        assert.deepEqual(
          new Uint8Array(await readFile(out)),
          await expectedStream(emulator, [...idsOf(emulator), ...idsOf(emulator, "AUDIT_LOG")]),
        );
      });
    });
  },
);

test(
  "s3 (Ceph RGW): an archive in a bucket feeds -o FILE, verified, without the API",
  { skip: CEPH_SKIP, timeout: 240_000 },
  async () => {
    const ceph = await startCeph();
    const bucket = `t-from-archive-${crypto.randomUUID().slice(0, 8)}`;
    await createBucket(ceph, bucket);
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir("oai-from-archive-s3-", async (dir) => {
        const archive = `s3://${bucket}/openai`;
        const env = { ...ceph.env, OAI_COMPLIANCE_STORE_BACKOFF_MS: "50" };
        const stored = await archiveFromApi(emulator, archive, ["--gzip"], { env });
        assert.equal(stored.code, 0, stored.stderr);
        const apiRequests = emulator.requests.length;
        const out = join(dir, "out.jsonl");
        const state = join(dir, "s.json");
        const r = await fromArchive(emulator, archive, ["-o", out, "--state", state], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(
          new Uint8Array(await readFile(out)),
          await expectedStream(emulator, idsOf(emulator)),
        );
        assert.equal(emulator.requests.length, apiRequests, "no request reached the API");

        // An object replaced in the bucket is refused, named as the archive names it.
        const ids = idsOf(emulator);
        const key = `openai/AUTH_LOG/2026-07-02/${ids[2]}.jsonl.gz`;
        const replaced = await s3Request(ceph, "PUT", `/${bucket}/${key}`, {
          body: gzipSync(new TextEncoder().encode('{"event_id":"forged"}\n')),
        });
        assert.equal(replaced.status, 200, replaced.text);
        const again = await fromArchive(emulator, archive, ["-o", join(dir, "again.jsonl")], {
          env,
        });
        assert.equal(again.code, 1, again.stderr);
        const errors = errorLines(again.stderr);
        assert.equal(errors.length, 1, again.stderr);
        assert.ok(errors[0].includes(`s3://${bucket}/${key}`), errors[0]);
      });
    });
  },
);

test(
  "az (Azurite): an archive in a container feeds -o FILE, every record in order; an altered blob is refused by name",
  { skip: azuriteSkip() ?? false, timeout: 240_000 },
  async () => {
    const azurite = await startAzurite();
    const container = `from-archive-${crypto.randomUUID().slice(0, 8)}`;
    await azurite.createContainer(container);
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir("oai-from-archive-az-", async (dir) => {
        const archive = `az://${container}/openai`;
        const env = {
          AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
          OAI_COMPLIANCE_STORE_BACKOFF_MS: "10",
        };
        const stored = await archiveFromApi(emulator, archive, [], { env });
        assert.equal(stored.code, 0, stored.stderr);
        const apiRequests = emulator.requests.length;
        const ids = idsOf(emulator);
        const out = join(dir, "out.jsonl");
        const state = join(dir, "s.json");
        const json = ["--log-format", "json"];
        const r = await fromArchive(emulator, archive, ["-o", out, "--state", state, ...json], {
          env,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(new Uint8Array(await readFile(out)), await expectedStream(emulator, ids));
        assert.equal(summaryOf(r).files, ids.length);
        assert.equal(emulator.requests.length, apiRequests, "no request reached the API");

        // One byte of a stored blob changed behind the tool's back, its size kept.
        const key = `openai/AUTH_LOG/2026-07-02/${ids[2]}.jsonl`;
        const bytes = await azurite.blobBytes(container, key);
        bytes[10] = bytes[10] === 0x41 ? 0x42 : 0x41;
        const replaced = await azurite.client.send({
          method: "PUT",
          container,
          blob: key,
          headers: { "x-ms-blob-type": "BlockBlob" },
          body: bytes,
          what: `replacing ${key}`,
        });
        assert.equal(replaced.status, 201, replaced.text);
        const again = join(dir, "again.jsonl");
        const refused = await fromArchive(emulator, archive, ["-o", again], { env });
        assert.equal(refused.code, 1, refused.stderr);
        const errors = errorLines(refused.stderr);
        assert.equal(errors.length, 1, refused.stderr);
        assert.ok(errors[0].includes(`az://${container}/${key}`), errors[0]);
        assert.match(errors[0], /SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
        await assert.rejects(readFile(again), "-o FILE is replaced whole only at the end");
      });
    });
  },
);

test(
  "--follow reads the manifests again each poll: files the archive records meanwhile arrive",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      const hec = await startHecEmulator({ tokens: { [TOKEN]: {} } });
      try {
        await withDir("oai-from-archive-follow-", async (dir) => {
          const archive = join(dir, "logs");
          assert.equal((await archiveFromApi(emulator, archive)).code, 0);
          const firstRecords = (await recordsOf(emulator, idsOf(emulator))).length;
          let child: ChildProcess | undefined;
          const following = fromArchive(
            emulator,
            archive,
            ["--follow", "--interval", "1s", "--state", join(dir, "s.json"), "-o", hec.target],
            { env: { SPLUNK_HEC_TOKEN: TOKEN }, onSpawn: (spawned) => child = spawned },
          );
          const until = async (what: string, done: () => boolean) => {
            for (const deadline = Date.now() + 60_000; !done();) {
              assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          };
          await until("the first files", () => hec.events.length >= firstRecords);
          emulator.addFiles(
            hourlyFiles(2, { start: "2026-07-02T02:00:00Z" }).map((f, i) => ({
              ...f,
              id: `eclf_later_${i}`,
            })),
          );
          assert.equal((await archiveFromApi(emulator, archive)).code, 0);
          const all = await recordsOf(emulator, idsOf(emulator));
          await until("the files archived later", () => hec.events.length >= all.length);
          child!.kill("SIGTERM");
          const stopped = await following;
          assert.ok(stopped.code === 143 || stopped.signal === "SIGTERM", stopped.stderr);
          assert.deepEqual(
            hec.events.map((e) => JSON.stringify(e.event.event)).sort(),
            all.map((line) => JSON.stringify(JSON.parse(line))).sort(),
          );
        });
      } finally {
        await hec.close();
      }
    });
  },
);

test(
  "a manifest whose lines no longer link fails the run before anything is sent",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      await withDir("oai-from-archive-manifest-", async (dir) => {
        const archive = join(dir, "logs");
        assert.equal((await archiveFromApi(emulator, archive)).code, 0);
        const ids = idsOf(emulator);
        // A file replaced together with its manifest line: the chain of lines gives it away.
        const [name] = (await listTree(join(archive, "_manifest"))).filter((p) =>
          p.endsWith(".jsonl")
        );
        const path = join(archive, "_manifest", name);
        const text = await readFile(path, "utf8");
        const forged = text.split("\n").map((line) =>
          line.includes(`"id":"${ids[1]}"`)
            ? line.replace(/"file_sha256":"[0-9a-f]{64}"/, `"file_sha256":"${"0".repeat(64)}"`)
            : line
        ).join("\n");
        assert.notEqual(forged, text);
        await writeFile(path, forged);
        const out = join(dir, "out.jsonl");
        const r = await fromArchive(emulator, archive, ["-o", out]);
        assert.equal(r.code, 1, r.stderr);
        const errors = errorLines(r.stderr);
        assert.equal(errors.length, 1, r.stderr);
        assert.match(
          errors[0],
          new RegExp(`_manifest/${name} of --from-archive .* is damaged at line \\d+`),
        );
        await assert.rejects(readFile(out), "nothing was written");
      });
    });
  },
);

test("files of one end_time stay on one page, whatever <limit> says", SLOW, async () => {
  const at = (id: string, endTime: string, size: number) => ({
    id,
    eventType: "AUTH_LOG",
    endTime,
    size,
  });
  const files = [
    at("eclf_tie_a", "2026-07-02T00:00:00Z", 700),
    at("eclf_tie_b", "2026-07-02T00:00:00Z", 900),
    at("eclf_tie_c", "2026-07-02T00:00:00Z", 300),
    at("eclf_next", "2026-07-02T01:00:00Z", 500),
  ];
  await withEmulator({ files }, async (emulator) => {
    await withDir("oai-from-archive-ties-", async (dir) => {
      const archive = join(dir, "logs");
      assert.equal((await archiveFromApi(emulator, archive)).code, 0);
      const out = join(dir, "out.jsonl");
      const r = await fromArchive(emulator, archive, ["-o", out, "--log-format", "json"], {
        limit: "1",
      });
      assert.equal(r.code, 0, r.stderr);
      const recorded = await listTree(join(archive, "_manifest"));
      const manifest = await readFile(
        join(archive, "_manifest", recorded.find((p) => p.endsWith(".jsonl"))!),
        "utf8",
      );
      // The order the archive's run recorded them in: the API's listing order.
      const order = [...manifest.matchAll(/"type":"file","id":"([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(new Uint8Array(await readFile(out)), await expectedStream(emulator, order));
      const pages = lines(r.stderr).map((l) => JSON.parse(l)).filter((e) => e.event === "page");
      assert.deepEqual(pages.map((e) => e.files), [3, 1]);
    });
  });
});

/** The archive's manifest names, oldest first. */
async function manifestsOf(archive: string): Promise<string[]> {
  return (await listTree(join(archive, "_manifest"))).filter((p) => p.endsWith(".jsonl")).sort();
}

/**
 * A manifest's lines changed by `change` and linked again (each `prev`, the closing `head`), as a
 * forger (or an older version's writer) would leave them: the chain of lines holds.
 */
function relinked(text: string, change: (line: Record<string, unknown>) => void): string {
  const out: string[] = [];
  for (const original of text.split("\n").filter((l) => l !== "")) {
    const line = JSON.parse(original);
    change(line);
    if (out.length > 0) {
      line.prev = createHash("sha256").update(out.at(-1)!).digest("hex");
      if (line.type === "close") line.head = line.prev;
    }
    out.push(JSON.stringify(line));
  }
  return out.join("\n") + "\n";
}

test(
  "files a later run records as recovered (a run killed before its manifest) still reach a feed that went past their day's start",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(6) }, async (emulator) => {
      await withDir("oai-from-archive-recovered-", async (dir) => {
        const archive = join(dir, "logs");
        const ids = idsOf(emulator);
        const job = ["--state", join(dir, "archive.state.json")];
        const first = await archiveFromApi(emulator, archive, [
          ...job,
          "--before",
          "2026-07-02T03:00:00Z",
        ]);
        assert.equal(first.code, 0, first.stderr);
        // The next run stores the other three and moves its checkpoint, then dies (kill -9)
        // before its manifest: as if that manifest had never been written.
        const killed = await archiveFromApi(emulator, archive, job);
        assert.equal(killed.code, 0, killed.stderr);
        await rm(join(archive, "_manifest", (await manifestsOf(archive)).at(-1)!));

        const feed = ["--state", join(dir, "feed.state.json")];
        const out1 = join(dir, "out1.jsonl");
        const sent = await fromArchive(emulator, archive, ["-o", out1, ...feed]);
        assert.equal(sent.code, 0, sent.stderr);
        assert.deepEqual(
          new Uint8Array(await readFile(out1)),
          await expectedStream(emulator, ids.slice(0, 3)),
        );

        // The archive's next run finds the three in no manifest and records them as recovered.
        const next = await archiveFromApi(emulator, archive, job);
        assert.equal(next.code, 0, next.stderr);
        const recorded = (await readFile(
          join(archive, "_manifest", (await manifestsOf(archive)).at(-1)!),
          "utf8",
        )).split("\n").filter((l) => l.includes('"recovered":true')).map((l) => JSON.parse(l));
        assert.deepEqual(recorded.map((l) => l.id), ids.slice(3));
        assert.ok(recorded.every((l) => l.end_time === "2026-07-02T00:00:00Z"), "the day start");

        const out2 = join(dir, "out2.jsonl");
        const later = await fromArchive(emulator, archive, ["-o", out2, ...feed]);
        assert.equal(later.code, 0, later.stderr);
        assert.deepEqual(
          new Uint8Array(await readFile(out2)),
          await expectedStream(emulator, ids.slice(3)),
          "the recovered files are sent",
        );
        const json = ["--log-format", "json"];
        const again = await fromArchive(emulator, archive, [
          "-o",
          join(dir, "out3.jsonl"),
          ...feed,
          ...json,
        ]);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(summaryOf(again).files, 0, "sent once");
      });
    });
  },
);

test(
  "a file the listing gave no size or SHA-256 for is recorded with its own, checked, and a line with no hash is refused",
  SLOW,
  async () => {
    const files = hourlyFiles(3).map((f, i) =>
      i === 2 ? { ...f, advertise: { fileSize: null, fileSha256: null } } : f
    );
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-from-archive-unhashed-", async (dir) => {
        const archive = join(dir, "logs");
        assert.equal((await archiveFromApi(emulator, archive)).code, 0);
        const ids = idsOf(emulator);
        const [name] = await manifestsOf(archive);
        const path = join(archive, "_manifest", name);
        const text = await readFile(path, "utf8");
        const line = text.split("\n").map((l) => l && JSON.parse(l))
          .find((l) => l && l.id === ids[2]);
        assert.equal(line.file_sha256, undefined, "the listing gave none");
        assert.equal(line.stored_sha256, await emulator.sha256Of(ids[2]), "the download's own");
        assert.equal(line.stored_size, (await emulator.contentOf(ids[2])).length);
        const verified = await runCli(["verify", archive], { timeoutMs: 60_000 });
        assert.equal(verified.code, 0, verified.stderr);

        // Its bytes are checked: one byte changed, the size kept, is refused by name.
        const stored = join(archive, `AUTH_LOG/2026-07-02/${ids[2]}.jsonl`);
        const bytes = new Uint8Array(await readFile(stored));
        bytes[5] = bytes[5] === 0x41 ? 0x42 : 0x41;
        await writeFile(stored, bytes);
        const altered = await fromArchive(emulator, archive, ["-o", join(dir, "a.jsonl")]);
        assert.equal(altered.code, 1, altered.stderr);
        assert.match(errorLines(altered.stderr)[0], /SHA-256 [0-9a-f]{64}, the manifest says/);

        // A manifest of an older version recorded no hash of its own: refused, not sent unchecked.
        await writeFile(
          path,
          relinked(text, (l) => {
            if (l.id !== ids[2]) return;
            delete l.stored_sha256;
            delete l.stored_size;
          }),
        );
        const state = join(dir, "s.json");
        const copy = join(dir, "copy");
        const r = await fromArchive(emulator, archive, [
          "--output-dir",
          copy,
          "--state",
          state,
        ]);
        assert.equal(r.code, 1, r.stderr);
        const errors = errorLines(r.stderr);
        assert.equal(errors.length, 1, r.stderr);
        assert.ok(
          errors[0].includes(`records no hash for ${archive}/AUTH_LOG/2026-07-02/${ids[2]}.jsonl`),
          errors[0],
        );
        assert.match(
          errors[0],
          /to pass this file on purpose, run `oai-compliance-logs state skip/,
        );
        const cursor = JSON.parse(await readFile(state, "utf8")).cursors.AUTH_LOG;
        assert.deepEqual(cursor.seen, [ids[0], ids[1]], "the checkpoint stays before it");
        assert.ok(!(await listTree(copy)).some((p) => p.includes(ids[2])), "nothing of it stored");
      });
    });
  },
);

test(
  "a manifest removed from the middle of a job's chain fails the run in one line, pointing to verify",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      await withDir("oai-from-archive-chain-", async (dir) => {
        const archive = join(dir, "logs");
        const job = ["--state", join(dir, "archive.state.json")];
        for (let run = 0; run < 3; run++) {
          const r = await archiveFromApi(emulator, archive, job);
          assert.equal(r.code, 0, r.stderr);
        }
        const names = await manifestsOf(archive);
        assert.equal(names.length, 3);
        const out = join(dir, "out.jsonl");
        const intact = await fromArchive(emulator, archive, ["-o", out]);
        assert.equal(intact.code, 0, intact.stderr);

        // The first run's manifest holds the files: the middle one is removed instead, and then
        // the first, each of which the feed must notice.
        await rm(join(archive, "_manifest", names[1]));
        const r = await fromArchive(emulator, archive, ["-o", join(dir, "out2.jsonl")]);
        assert.equal(r.code, 1, r.stderr);
        const errors = errorLines(r.stderr);
        assert.equal(errors.length, 1, r.stderr);
        assert.ok(
          errors[0].includes(`1 manifest is missing after ${names[0]} and before ${names[2]}`),
          errors[0],
        );
        assert.match(errors[0], /oai-compliance-logs verify /);
        await assert.rejects(readFile(join(dir, "out2.jsonl")), "nothing was written");

        await rm(join(archive, "_manifest", names[0]));
        const first = await fromArchive(emulator, archive, ["-o", join(dir, "out3.jsonl")]);
        assert.equal(first.code, 1, first.stderr);
        assert.match(errorLines(first.stderr)[0] ?? "", /missing before it/);
      });
    });
  },
);
