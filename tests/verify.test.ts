/**
 * The manifest and `verify`, black-box against the emulator: a run then `verify` exits 0; an
 * altered, a deleted and a stray file and a removed middle manifest are exactly four findings,
 * each consequence under its cause; two jobs sharing a directory each keep their own chain;
 * `--against-api` finds a file the archive lacks; a recorded gone file is an explained gap;
 * signatures verify with the right key only; a run with nothing new still writes a manifest; a
 * manifest lost in a crash is made good by the next run (its files recorded as recovered).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { cp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, idsOf, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW, withDir } from "./helpers/mod.ts";
import type { Finding, VerifyReport } from "../lib/verify/model.ts";

const MANIFESTS = "_manifest";

async function manifestNames(dir: string): Promise<string[]> {
  return (await readdir(join(dir, MANIFESTS))).filter((n) => n.endsWith(".jsonl")).sort();
}

async function manifestLines(dir: string, name: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(dir, MANIFESTS, name), "utf8");
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

async function verify(
  dir: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<{ code: number | null; report: VerifyReport; stderr: string }> {
  const result = await runCli(["verify", dir, "--json", ...extra], { env, timeoutMs: 60_000 });
  const text = new TextDecoder().decode(result.stdout);
  assert.ok(text.trim().length > 0, `verify printed no report: ${result.stderr}`);
  return { code: result.code, report: JSON.parse(text), stderr: result.stderr };
}

const problemsOf = (report: VerifyReport): Finding[] =>
  report.findings.filter((f) => f.severity === "problem");

test("a run then verify exits 0: every file in the manifest, the chain intact", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(5) }, async (emulator) => {
    await withDir("oai-verify-", async (dir) => {
      const out = join(dir, "logs");
      const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out, "--gzip"];
      const run = await runCli([...args, "--state", join(dir, "s.json")], {
        env: envFor(emulator),
      });
      assert.equal(run.code, 0, run.stderr);
      const [name] = await manifestNames(out);
      assert.match(name, /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{12}\.jsonl$/);
      const lines = await manifestLines(out, name);
      assert.equal(lines[0].type, "header");
      assert.equal(lines[0].principal, PRINCIPAL);
      assert.equal(lines[0].sequence, 1);
      assert.deepEqual(
        lines.filter((l) => l.type === "file").map((l) => l.id),
        idsOf(emulator),
        "one line per file, in confirmation order",
      );
      const first = lines[1];
      assert.equal(first.path, `AUTH_LOG/2026-07-02/${idsOf(emulator)[0]}.jsonl.gz`);
      assert.equal(first.file_sha256, await emulator.sha256Of(idsOf(emulator)[0]));
      assert.equal(typeof first.stored_sha256, "string");
      assert.equal(lines.at(-1)!.type, "close");

      const { code, report, stderr } = await verify(out);
      assert.equal(code, 0, stderr);
      assert.equal(report.intact, true);
      assert.deepEqual(problemsOf(report), []);
      assert.equal(report.types[0].verified, 5);
      assert.match(stderr, /^AUTH_LOG: 5 files, .* 5 verified, 0 problems$/m);
      assert.match(stderr, /^Intact: all 5 files of /m);

      // Nothing new: a manifest still proves the window was asked about.
      const again = await runCli([...args, "--state", join(dir, "s.json")], {
        env: envFor(emulator),
      });
      assert.equal(again.code, 0, again.stderr);
      const names = await manifestNames(out);
      assert.equal(names.length, 2);
      const empty = await manifestLines(out, names[1]);
      assert.deepEqual(empty.map((l) => l.type), ["header", "close"]);
      const window = (empty[0].windows as Record<string, { from: string; to: string }>).AUTH_LOG;
      assert.equal(Date.parse(window.from), Date.parse(emulator.files[4].endTime));
      assert.ok(
        Date.parse(window.to) <= Date.now() - 30 * 60_000,
        `an empty window ends no later than the publication delay allows: ${window.to}`,
      );
      assert.equal(empty[0].sequence, 2);
      assert.equal((await verify(out)).code, 0);
    });
  });
});

test(
  "one altered, one deleted, one stray file and a removed middle manifest: exactly four findings",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(9) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        const ids = idsOf(emulator);
        const base = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out];
        const state = ["--state", join(dir, "s.json")];
        for (
          const before of [["--before", "2026-07-02T02:30:00Z"], [
            "--before",
            "2026-07-02T05:30:00Z",
          ], []]
        ) {
          const run = await runCli([...base, ...state, ...before], { env: envFor(emulator) });
          assert.equal(run.code, 0, run.stderr);
        }
        const names = await manifestNames(out);
        assert.equal(names.length, 3);
        assert.equal((await verify(out)).code, 0);

        const altered = join(out, "AUTH_LOG", "2026-07-02", `${ids[0]}.jsonl`);
        const bytes = await readFile(altered);
        bytes[5] ^= 0x01;
        await writeFile(altered, bytes);
        await rm(join(out, "AUTH_LOG", "2026-07-02", `${ids[7]}.jsonl`));
        await writeFile(join(out, "notes.jsonl"), '{"event_id":"not ours"}\n');
        await rm(join(out, MANIFESTS, names[1]));

        const { code, report, stderr } = await verify(out);
        assert.equal(code, 3, stderr);
        assert.equal(report.intact, false);
        const problems = problemsOf(report);
        assert.deepEqual(
          problems.map((f) => f.kind).sort(),
          ["altered", "chain_break", "missing", "unexpected"],
          stderr,
        );
        const byKind = Object.fromEntries(problems.map((f) => [f.kind, f]));
        assert.match(byKind.altered.path!, new RegExp(`${ids[0]}\\.jsonl$`));
        assert.match(byKind.missing.path!, new RegExp(`${ids[7]}\\.jsonl$`));
        assert.equal(byKind.unexpected.path, "notes.jsonl");
        // The removed manifest's files and window are under the break, not reported again.
        const under = byKind.chain_break.consequences ?? [];
        assert.deepEqual(
          under.filter((c) => c.kind === "unexpected").map((c) => c.path).sort(),
          [3, 4, 5].map((i) => `AUTH_LOG/2026-07-02/${ids[i]}.jsonl`),
        );
        assert.equal(under.filter((c) => c.kind === "window_hole").length, 1);
        assert.match(stderr, /^NOT intact: 4 problems found/m);
      });
    });
  },
);

test(
  "two jobs sharing one directory each keep their own chain, and verify clean",
  SLOW,
  async () => {
    const files = [...hourlyFiles(3), ...hourlyFiles(3, { eventType: "CODEX_LOG" })];
    await withEmulator({ files }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        for (let round = 0; round < 2; round++) {
          for (const type of ["AUTH_LOG", "CODEX_LOG"]) {
            const run = await runCli([
              PRINCIPAL,
              type,
              "10",
              AFTER,
              "--output-dir",
              out,
              "--state",
              join(dir, `${type}.json`),
            ], { env: envFor(emulator) });
            assert.equal(run.code, 0, run.stderr);
          }
        }
        const { code, report, stderr } = await verify(out);
        assert.equal(code, 0, stderr);
        assert.deepEqual(report.chains.map((c) => [c.job, c.manifests]).sort(), [
          [`${PRINCIPAL}/AUTH_LOG`, 2],
          [`${PRINCIPAL}/CODEX_LOG`, 2],
        ]);
        assert.deepEqual(report.types.map((t) => [t.eventType, t.verified]), [
          ["AUTH_LOG", 3],
          ["CODEX_LOG", 3],
        ]);
      });
    });
  },
);

test("each damage alone is exactly one finding of its kind", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(9) }, async (emulator) => {
    await withDir("oai-verify-", async (dir) => {
      const built = join(dir, "built");
      const ids = idsOf(emulator);
      const base = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", built];
      const state = ["--state", join(dir, "s.json")];
      for (
        const before of [
          ["--before", "2026-07-02T02:30:00Z"],
          ["--before", "2026-07-02T05:30:00Z"],
          [],
        ]
      ) {
        const run = await runCli([...base, ...state, ...before], { env: envFor(emulator) });
        assert.equal(run.code, 0, run.stderr);
      }
      const stored = (out: string, i: number) =>
        join(out, "AUTH_LOG", "2026-07-02", `${ids[i]}.jsonl`);
      const cases: Array<[string, (out: string) => Promise<void>]> = [
        ["altered", async (out) => {
          const bytes = await readFile(stored(out, 4));
          bytes[bytes.length - 2] ^= 0x20;
          await writeFile(stored(out, 4), bytes);
        }],
        ["missing", (out) => rm(stored(out, 1))],
        [
          "unexpected",
          (out) => writeFile(join(out, "AUTH_LOG", "2026-07-02", "stray.jsonl"), "{}\n"),
        ],
        ["chain_break", async (out) => rm(join(out, MANIFESTS, (await manifestNames(out))[1]))],
      ];
      for (const [kind, damage] of cases) {
        const out = join(dir, kind);
        await cp(built, out, { recursive: true });
        await damage(out);
        const { code, report, stderr } = await verify(out);
        assert.equal(code, 3, `${kind}: ${stderr}`);
        assert.deepEqual(problemsOf(report).map((f) => f.kind), [kind], stderr);
      }
    });
  });
});

test(
  "--against-api finds a file the archive lacks; a recorded gone file is an explained gap",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        const ids = idsOf(emulator);
        emulator.inject({ target: "download", id: ids[1], gone: "unavailable", times: Infinity });
        const run = await runCli(
          [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out, "--state", join(dir, "s")],
          { env: envFor(emulator) },
        );
        assert.equal(run.code, 4, run.stderr);
        const lines = await manifestLines(out, (await manifestNames(out))[0]);
        assert.deepEqual(
          lines.filter((l) => l.type === "gone").map((l) => [l.id, l.reason]),
          [[ids[1], "expired"]], // July files: far past 29 days
        );

        const clean = await verify(out);
        assert.equal(clean.code, 0, clean.stderr);
        const gone = clean.report.findings.filter((f) => f.kind === "gone");
        assert.equal(gone.length, 1);
        assert.equal(gone[0].severity, "explained");
        assert.equal(gone[0].id, ids[1]);

        // A file published late, inside a window the run listed: the archive never got it.
        emulator.addFiles([{
          id: "eclf_late_one",
          eventType: "AUTH_LOG",
          endTime: "2026-07-02T01:30:00Z",
          size: 900,
        }, {
          // Newer than any window the archive covers: the next run's, not a gap.
          id: "eclf_after_archive",
          eventType: "AUTH_LOG",
          endTime: new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
          size: 900,
        }]);
        const env = envFor(emulator);
        const checked = await verify(out, ["--against-api", PRINCIPAL], env);
        assert.equal(checked.code, 3, checked.stderr);
        const gaps = problemsOf(checked.report);
        assert.deepEqual(gaps.map((f) => [f.kind, f.id]), [["gap", "eclf_late_one"]]);
        assert.equal(checked.report.againstApi, true);
        assert.ok(checked.report.findings.some((f) => f.kind === "gone" && f.id === ids[1]));
      });
    });
  },
);

test(
  "a file skipped with `state skip` is an explained gap, with the operator's reason",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        const ids = idsOf(emulator);
        const state = join(dir, "s.json");
        const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out, "--state", state];
        const first = await runCli([...args, "--before", "2026-07-02T01:30:00Z"], {
          env: envFor(emulator),
        });
        assert.equal(first.code, 0, first.stderr);
        const skip = await runCli([
          "state",
          "skip",
          state,
          "AUTH_LOG",
          ids[2],
          "--reason",
          "ticket 12",
        ]);
        assert.equal(skip.code, 0, skip.stderr);
        const second = await runCli(args, { env: envFor(emulator) });
        assert.equal(second.code, 0, second.stderr);
        const { code, report, stderr } = await verify(
          out,
          ["--against-api", PRINCIPAL],
          envFor(emulator),
        );
        assert.equal(code, 0, stderr);
        const skipped = report.findings.filter((f) => f.kind === "skipped");
        assert.deepEqual(skipped.map((f) => [f.id, f.severity]), [[ids[2], "explained"]]);
        assert.match(skipped[0].message, /ticket 12/);
        assert.equal(report.types[0].verified, 3);
      });
    });
  },
);

test(
  "--sign-key signs each manifest; verify --public-key accepts it and refuses another key",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const [key, pub] = await writeKeyPair(dir, "k");
        const [, otherPub] = await writeKeyPair(dir, "other");
        const out = join(dir, "logs");
        const run = await runCli(
          [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--output-dir", out, "--sign-key", key],
          { env: envFor(emulator) },
        );
        assert.equal(run.code, 0, run.stderr);
        const close = (await manifestLines(out, (await manifestNames(out))[0])).at(-1)!;
        assert.equal(typeof close.signature, "string");

        const good = await verify(out, ["--public-key", pub]);
        assert.equal(good.code, 0, good.stderr);
        assert.equal(good.report.chains[0].signature, "verified");
        const unchecked = await verify(out);
        assert.equal(unchecked.report.chains[0].signature, "signed, not checked");
        const bad = await verify(out, ["--public-key", otherPub]);
        assert.equal(bad.code, 3, bad.stderr);
        assert.deepEqual(problemsOf(bad.report).map((f) => f.kind), ["chain_break"]);
      });
    });
  },
);

test(
  "a manifest lost in a crash: the next run records the stored files as recovered",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        const args = [
          PRINCIPAL,
          "AUTH_LOG",
          "10",
          AFTER,
          "--output-dir",
          out,
          "--state",
          join(dir, "s"),
        ];
        assert.equal((await runCli(args, { env: envFor(emulator) })).code, 0);
        // As if the run had died after storing its files, before writing its manifest.
        await rm(join(out, MANIFESTS), { recursive: true });
        assert.equal((await verify(out)).code, 3, "stored files in no manifest are unexpected");

        const again = await runCli(args, { env: envFor(emulator) });
        assert.equal(again.code, 0, again.stderr);
        const lines = await manifestLines(out, (await manifestNames(out))[0]);
        const recovered = lines.filter((l) => l.recovered === true);
        assert.deepEqual(recovered.map((l) => l.id).sort(), idsOf(emulator));
        assert.equal(recovered[0].file_sha256, await emulator.sha256Of(recovered[0].id as string));
        const { code, stderr } = await verify(out);
        assert.equal(code, 0, stderr);
      });
    });
  },
);

test("--manifest FILE records a -o run, one run after another in one chain", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(3) }, async (emulator) => {
    await withDir("oai-verify-", async (dir) => {
      const manifest = join(dir, "run.manifest.jsonl");
      const args = [
        PRINCIPAL,
        "AUTH_LOG",
        "10",
        AFTER,
        "-o",
        join(dir, "out.jsonl"),
        "--manifest",
        manifest,
        "--state",
        join(dir, "s"),
      ];
      assert.equal((await runCli(args, { env: envFor(emulator) })).code, 0);
      assert.equal((await runCli(args, { env: envFor(emulator) })).code, 0);
      const lines = (await readFile(manifest, "utf8")).trim().split("\n").map((l) => JSON.parse(l));
      const headers = lines.filter((l) => l.type === "header");
      assert.deepEqual(headers.map((h) => h.sequence), [1, 2]);
      assert.equal(lines.filter((l) => l.type === "file").length, 3);
      const refused = await runCli([
        ...args.slice(0, 4),
        "--output-dir",
        join(dir, "d"),
        "--manifest",
        manifest,
      ]);
      assert.equal(refused.code, 2);
    });
  });
});

test(
  "--follow writes a manifest per poll that found files, none for quiet polls",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        let child: ChildProcess | undefined;
        const done = runCli([
          PRINCIPAL,
          "AUTH_LOG",
          "10",
          AFTER,
          "--output-dir",
          out,
          "--state",
          join(dir, "s"),
          "--follow",
          "--interval",
          "0.3",
        ], { env: envFor(emulator), onSpawn: (c) => child = c, timeoutMs: 60_000 });
        const count = async () => (await manifestNames(out).catch(() => [])).length;
        const listings = () => emulator.requests.filter((q) => q.path.endsWith("/logs")).length;
        await waitFor("the first manifest", async () => await count() === 1);
        const polled = listings();
        await waitFor("three quiet polls", () => Promise.resolve(listings() >= polled + 3));
        assert.equal(await count(), 1, "quiet polls within the hour write no manifest");
        emulator.addFiles([{
          id: "eclf_later",
          eventType: "AUTH_LOG",
          endTime: "2026-07-02T05:00:00Z",
          size: 700,
        }]);
        await waitFor("a manifest for the new file", async () => await count() === 2);
        child!.kill("SIGTERM");
        const r = await done;
        assert.ok(r.code === 143 || r.signal === "SIGTERM", `${r.code} ${r.signal}\n${r.stderr}`);
        const names = await manifestNames(out);
        assert.equal(names.length, 2);
        const second = await manifestLines(out, names[1]);
        assert.deepEqual(second.filter((l) => l.type === "file").map((l) => l.id), ["eclf_later"]);
        const { code, stderr } = await verify(out);
        assert.equal(code, 0, stderr);
      });
    });
  },
);

/** Resolves once `ready()` holds; fails after 30 s. */
async function waitFor(what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

test(
  "an archive fed together with -o (one download) records every file it stored",
  SLOW,
  async () => {
    await withEmulator({ files: hourlyFiles(4) }, async (emulator) => {
      await withDir("oai-verify-", async (dir) => {
        const out = join(dir, "logs");
        const args = [PRINCIPAL, "AUTH_LOG", "10", AFTER, "-o", join(dir, "all.jsonl")];
        const run = await runCli([...args, "--output-dir", out, "--state", join(dir, "s")], {
          env: envFor(emulator),
        });
        assert.equal(run.code, 0, run.stderr);
        const lines = await manifestLines(out, (await manifestNames(out))[0]);
        assert.deepEqual(
          lines.filter((l) => l.type === "file").map((l) => l.path),
          idsOf(emulator).map((id) => `AUTH_LOG/2026-07-02/${id}.jsonl`),
        );
        const { code, stderr } = await verify(out);
        assert.equal(code, 0, stderr);
      });
    });
  },
);

test("verify: usage errors exit 2, a missing directory exits 1", async () => {
  assert.equal((await runCli(["verify"])).code, 2);
  assert.equal((await runCli(["verify", "a", "b"])).code, 2);
  assert.equal((await runCli(["verify", "a", "--after", "24h"])).code, 2);
  const missing = await runCli(["verify", "/nonexistent/oai-archive"]);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /no such directory/);
});

/** An Ed25519 key pair as PEM files (private PKCS#8, public SPKI), made with WebCrypto. */
async function writeKeyPair(dir: string, name: string): Promise<[string, string]> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pem = (label: string, der: ArrayBuffer) => {
    const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
    return `-----BEGIN ${label}-----\n${
      b64.match(/.{1,64}/g)!.join("\n")
    }\n-----END ${label}-----\n`;
  };
  const key = join(dir, `${name}.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  await writeFile(key, pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", pair.privateKey)));
  await writeFile(pub, pem("PUBLIC KEY", await crypto.subtle.exportKey("spki", pair.publicKey)));
  return [key, pub];
}
