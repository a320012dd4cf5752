/**
 * Black-box tests against a malicious API and storage host (tests/hostile/): redirects to local
 * files, `data:` URLs or plain http, a look-alike loopback `--api-base`, NO_PROXY for IP
 * addresses, and listings whose cursors or event types would corrupt the checkpoint. Each case
 * must end in one error line, nothing written for the bad file, and no checkpoint past it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliResult, lines, runCli } from "./helpers/cli.ts";
import { startConnectProxy } from "./helpers/proxy.ts";
import { makeTestPki, STRICT, whyNoPki } from "./helpers/tls.ts";
import { SLOW } from "./helpers/mod.ts";
import {
  type Hostile,
  type HostileOptions,
  type HostileScript,
  logFile,
  page,
  redirect,
  startHostile,
} from "./hostile/mod.ts";

const PRINCIPAL = "ws-0f0e0d0c-demo";
const AFTER = "2026-07-01T00:00:00Z";
const FILE_ID = "eclf_auth_log_0001";
const END = "2026-07-02T00:00:00Z";
const BODY = '{"event":"login"}\n';

const noPki = whyNoPki();
if (noPki && STRICT) throw new Error(`hostile TLS tests need openssl in CI: ${noPki}`);
const skipTls = noPki ? `skipped: ${noPki}` : false;

/** A temp dir for the test, removed afterwards, with the hostile server running. */
async function withHostile(
  script: HostileScript,
  fn: (h: Hostile, dir: string) => Promise<void>,
  options: HostileOptions = {},
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "oai-hostile-"));
  const h = await startHostile(script, options);
  try {
    await fn(h, dir);
  } finally {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function run(
  h: Hostile,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return runCli(
    [PRINCIPAL, "AUTH_LOG", "10", AFTER, "--retries", "1", "--backoff", "0.01", ...args],
    { env: h.env(env), timeoutMs: 60_000 },
  );
}

/** Every regular file under `dir` (none when it does not exist). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map((p) => join(dir, String(p)))
    .filter((p) => statSync(p).isFile());
}

/** Exit 1, exactly one stderr line, matching `pattern`, never the generic `unexpected failure`. */
function assertOneLineError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const errors = lines(r.stderr).filter((l) => l.startsWith("error:"));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], pattern);
  assert.doesNotMatch(r.stderr, /unexpected failure/);
}

/** The saved cursor of AUTH_LOG, or undefined when the state file has none. */
function savedCursor(statePath: string): string | undefined {
  if (!existsSync(statePath)) return undefined;
  return JSON.parse(readFileSync(statePath, "utf8")).cursors?.AUTH_LOG?.after;
}

const oneFile: HostileScript["list"] = () => page([logFile(FILE_ID, END)]);

test(
  "a redirect to a file: URL is refused: no local file reaches stdout or --output-dir",
  SLOW,
  async () => {
    await withHostile({ list: oneFile }, async (h, dir) => {
      const marker = `SECRET-LOCAL-FILE-${crypto.randomUUID()}`;
      const secret = join(dir, "secret.txt");
      writeFileSync(secret, `${marker}\n`);
      const location = `file://${secret}`;
      h.requests.length = 0;
      const script = { list: oneFile, download: () => redirect(location) };
      await withHostile(script, async (h2) => {
        const toStdout = await run(h2);
        assertOneLineError(toStdout, /'file:'/);
        assert.ok(!new TextDecoder().decode(toStdout.stdout).includes(marker));
        assert.ok(!toStdout.stderr.includes(marker));

        const out = join(dir, "out");
        const toDir = await run(h2, ["--output-dir", out]);
        assertOneLineError(toDir, /'file:'/);
        for (const path of filesUnder(out)) {
          assert.ok(!path.includes(FILE_ID), path);
          assert.ok(!readFileSync(path, "utf8").includes(marker), path);
        }
        // Nothing was fetched from storage, and the key never left the API.
        assert.equal(h2.requests.filter((q) => q.server === "storage").length, 0);
      });
    });
  },
);

test("a redirect to a data: URL is refused and its content never delivered", SLOW, async () => {
  const injected = `INJECTED-${crypto.randomUUID()}`;
  const script = {
    list: oneFile,
    download: () => redirect(`data:text/plain,${injected}`),
  };
  await withHostile(script, async (h, dir) => {
    const r = await run(h);
    assertOneLineError(r, /'data:'/);
    assert.ok(!new TextDecoder().decode(r.stdout).includes(injected));
    const out = join(dir, "out");
    assertOneLineError(await run(h, ["--output-dir", out]), /'data:'/);
    assert.deepEqual(filesUnder(out).filter((p) => p.includes(FILE_ID)), []);
  });
});

test("a redirect from storage to another scheme is refused the same way", SLOW, async () => {
  const script: HostileScript = {
    list: oneFile,
    storage: (req) => req.id === FILE_ID ? redirect("file:///etc/passwd", 302) : { body: "x" },
  };
  await withHostile(script, async (h) => {
    const r = await run(h);
    assertOneLineError(r, /'file:'/);
    assert.ok(!new TextDecoder().decode(r.stdout).includes("root:"));
  });
});

test("a Location that is not a URL is a one-line API error naming it", SLOW, async () => {
  await withHostile({ list: oneFile, download: () => redirect("http://[::1") }, async (h) => {
    const r = await run(h);
    assertOneLineError(r, /"http:\/\/\[::1".*not a URL/);
    // Final, not retried: the same server would answer the same.
    assert.equal(h.requests.filter((q) => q.path.endsWith(`/logs/${FILE_ID}`)).length, 1);
  });
});

test(
  "an https API redirecting to http storage is refused (no downgrade)",
  { ...SLOW, skip: skipTls },
  async () => {
    const pkiDir = await mkdtemp(join(tmpdir(), "oai-hostile-pki-"));
    try {
      const pki = makeTestPki(pkiDir, ["127.0.0.1", "localhost"]);
      await withHostile({ list: oneFile, storage: () => ({ body: BODY }) }, async (h) => {
        assert.match(h.apiBase, /^https:/);
        assert.match(h.storageOrigin, /^http:/);
        const r = await run(h, [], { NODE_EXTRA_CA_CERTS: pki.caPath });
        assertOneLineError(r, /'http:'.*downgrade/);
        assert.equal(r.stdout.length, 0);
        assert.equal(h.requests.filter((q) => q.server === "storage").length, 0);
      }, { apiTls: pki });
    } finally {
      await rm(pkiDir, { recursive: true, force: true });
    }
  },
);

test(
  "--api-base over http to a name that only starts with 127. is a usage error",
  SLOW,
  async () => {
    for (const base of ["http://127.evil.example/v1", "http://127.0.0.1.nip.io/v1"]) {
      const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "--api-base", base], {
        env: { COMPLIANCE_API_KEY: "k", DENO_NO_UPDATE_CHECK: "1" },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--api-base must use https/);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
    }
  },
);

test(
  "NO_PROXY=* and IP:port entries bypass the proxy for 127.0.0.1 in every runtime",
  { ...SLOW, skip: skipTls },
  async () => {
    const pkiDir = await mkdtemp(join(tmpdir(), "oai-hostile-pki-"));
    const proxy = await startConnectProxy();
    try {
      const pki = makeTestPki(pkiDir, ["127.0.0.1", "localhost"]);
      const tls = { apiTls: pki, storageTls: pki };
      await withHostile({ list: oneFile, storage: () => ({ body: BODY }) }, async (h) => {
        const ports = [h.apiOrigin, h.storageOrigin].map((o) => new URL(o).port);
        const proxied = {
          HTTPS_PROXY: proxy.url,
          HTTP_PROXY: proxy.url,
          NODE_EXTRA_CA_CERTS: pki.caPath,
        };
        for (
          const noProxy of [
            "*",
            "127.0.0.1",
            ports.map((p) => `127.0.0.1:${p}`).join(","),
            "127.0.0.0/8",
          ]
        ) {
          const r = await run(h, [], { ...proxied, NO_PROXY: noProxy });
          assert.equal(r.code, 0, `NO_PROXY=${noProxy}: ${r.stderr}`);
          assert.equal(new TextDecoder().decode(r.stdout), BODY);
          assert.deepEqual(proxy.connects, [], `NO_PROXY=${noProxy}`);
          assert.deepEqual(proxy.plain, [], `NO_PROXY=${noProxy}`);
        }
        // Entries for another port, host or domain do not match: the proxy is used.
        const r = await run(h, [], { ...proxied, no_proxy: "127.0.0.1:1,example.com,.0.0.1" });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(proxy.connects.includes(`127.0.0.1:${ports[0]}`), proxy.connects.join(" "));
        assert.ok(proxy.connects.includes(`127.0.0.1:${ports[1]}`), proxy.connects.join(" "));
      }, tls);
    } finally {
      await proxy.close();
      await rm(pkiDir, { recursive: true, force: true });
    }
  },
);

test("has_more with a null last_end_time is an API error, not a silent end", SLOW, async () => {
  const script = {
    list: () => page([logFile(FILE_ID, END)], { has_more: true, last_end_time: null }),
    storage: () => ({ body: BODY }),
  };
  await withHostile(script, async (h) => {
    const r = await run(h);
    assertOneLineError(r, /has_more.*last_end_time.*null/);
    assert.equal(r.stdout.length, 0);
  });
});

test(
  "a listed file of another event type is an API error: not filed nor checkpointed",
  SLOW,
  async () => {
    const script = {
      list: () =>
        page([
          logFile(FILE_ID, END),
          logFile("eclf_other_0002", "2026-07-02T01:00:00Z", { event_type: "OTHER_LOG" }),
        ]),
      storage: () => ({ body: BODY }),
    };
    await withHostile(script, async (h, dir) => {
      const out = join(dir, "out");
      const state = join(dir, "state.json");
      const r = await run(h, ["--output-dir", out, "--state", state]);
      assertOneLineError(r, /eclf_other_0002.*"OTHER_LOG"/);
      assert.deepEqual(filesUnder(out).filter((p) => p.includes("eclf_other_0002")), []);
      assert.ok(!filesUnder(out).some((p) => p.includes("OTHER_LOG")));
      const cursor = savedCursor(state);
      assert.ok(cursor === undefined || cursor === AFTER, `cursor moved to ${cursor}`);
    });
  },
);

test("an end_time more than a day in the future is an API error", SLOW, async () => {
  const future = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const script = { list: () => page([logFile(FILE_ID, future)]), storage: () => ({ body: BODY }) };
  await withHostile(script, async (h, dir) => {
    const out = join(dir, "out");
    const state = join(dir, "state.json");
    const r = await run(h, ["--output-dir", out, "--state", state]);
    assertOneLineError(r, /ahead of this machine's clock/);
    assert.deepEqual(filesUnder(out).filter((p) => p.includes(FILE_ID)), []);
    assert.equal(savedCursor(state), undefined);
  });
});

test(
  "a last_end_time more than a day in the future is never saved as the cursor",
  SLOW,
  async () => {
    const future = new Date(Date.now() + 400 * 86_400_000).toISOString();
    await withHostile({ list: () => page([], { last_end_time: future }) }, async (h, dir) => {
      const state = join(dir, "state.json");
      const r = await run(h, ["--state", state]);
      assertOneLineError(r, /last_end_time .* ahead of this machine's clock/);
      assert.equal(savedCursor(state), undefined);
    });
  },
);

test("a state file whose cursor is not a time is a state error with its advice", SLOW, async () => {
  await withHostile({ list: oneFile, storage: () => ({ body: BODY }) }, async (h, dir) => {
    const state = join(dir, "state.json");
    const bogus = "2026-07-01T00:00:00Z&event_type=OTHER_LOG";
    writeFileSync(
      state,
      JSON.stringify({
        version: 1,
        principal: PRINCIPAL,
        eventTypes: ["AUTH_LOG"],
        cursors: { AUTH_LOG: { after: bogus, seen: [], updatedAt: "2026-07-01T00:00:00Z" } },
      }),
    );
    const r = await run(h, ["--state", state]);
    assertOneLineError(r, /state file .*cursors\.AUTH_LOG\.after.*RFC 3339.*state reset/);
    assert.equal(h.requests.length, 0);
    assert.equal(r.stdout.length, 0);
  });
});
