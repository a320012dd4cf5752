/**
 * Black-box tests of corporate networks: HTTPS through an `HTTPS_PROXY` CONNECT tunnel,
 * `NO_PROXY`, and a private CA trusted through `NODE_EXTRA_CA_CERTS` (and `DENO_CERT` under Deno).
 *
 * The API and storage are reached as `api.compliance.test` and `storage.compliance.test`, names
 * only the test proxy resolves: a run that bypassed the proxy could not reach them at all. Both are
 * HTTPS fronts (a test-only CA made with openssl at test time) for the plain-HTTP emulator.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliResult, runCli, RUNS_BINARY } from "./helpers/cli.ts";
import { AFTER, expectedStream, hourlyFiles, idsOf, PRINCIPAL } from "./helpers/fixtures.ts";
import { type ConnectProxy, type ProxyOptions, startConnectProxy } from "./helpers/proxy.ts";
import { type HttpsFront, makeTestPki, startHttpsFront, STRICT, whyNoPki } from "./helpers/tls.ts";
import { type Emulator, startEmulator } from "./emulator/mod.ts";

const API_HOST = "api.compliance.test";
const STORAGE_HOST = "storage.compliance.test";
const PROXY_USER = "svc-siem";
const PROXY_PASSWORD = "pr0xy-Pa55-never-printed";

const noPki = whyNoPki();
if (noPki && STRICT) throw new Error(`proxy tests need openssl in CI: ${noPki}`);
const skip = noPki ? `skipped: ${noPki}` : false;
if (skip) console.error(`proxy.test.ts: ${skip}`);

interface Setup {
  /** The test-only CA (caPath for NODE_EXTRA_CA_CERTS / DENO_CERT). */
  ca: string;
  emulator: Emulator;
  api: HttpsFront;
  storage: HttpsFront;
  proxy: ConnectProxy;
  apiBase: string;
  /** The proxy URL with credentials when the proxy asks for them. */
  proxyUrl: string;
}

/** Emulator behind two HTTPS fronts named `host` (or the .test names), and a CONNECT proxy. */
async function withHttps<T>(
  options: { host?: string; proxy?: ProxyOptions; files?: number },
  fn: (s: Setup) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "oai-pki-"));
  const pki = makeTestPki(dir, [API_HOST, STORAGE_HOST, "localhost", "127.0.0.1"]);
  const emulator = await startEmulator({ files: hourlyFiles(options.files ?? 5) });
  const storage = await startHttpsFront({
    target: emulator.storageOrigin,
    pki,
    host: options.host ?? STORAGE_HOST,
  });
  const api = await startHttpsFront({
    target: emulator.apiBase,
    pki,
    host: options.host ?? API_HOST,
    rewriteLocation: (location) => location.replace(emulator.storageOrigin, storage.origin),
  });
  const proxy = await startConnectProxy({
    hosts: { [API_HOST]: "127.0.0.1", [STORAGE_HOST]: "127.0.0.1" },
    ...options.proxy,
  });
  const credentials = options.proxy?.credentials;
  const proxyUrl = credentials
    ? proxy.url.replace("http://", `http://${credentials.user}:${credentials.password}@`)
    : proxy.url;
  try {
    return await fn({
      ca: pki.caPath,
      emulator,
      api,
      storage,
      proxy,
      apiBase: `${api.origin}/v1/compliance`,
      proxyUrl,
    });
  } finally {
    await Promise.all([emulator.close(), api.close(), storage.close(), proxy.close()]);
    await rm(dir, { recursive: true, force: true });
  }
}

/** The environment of a run against `s`: the key and base, plus what the test adds. */
function env(s: Setup, extra: Record<string, string>): Record<string, string> {
  return {
    COMPLIANCE_API_KEY: s.emulator.key,
    COMPLIANCE_API_BASE: s.apiBase,
    // Deno's own update check would otherwise show up as a CONNECT to dl.deno.land.
    DENO_NO_UPDATE_CHECK: "1",
    ...extra,
  };
}

function run(args: string[], environment: Record<string, string>): Promise<CliResult> {
  return runCli([PRINCIPAL, "AUTH_LOG", "2", AFTER, ...args], { env: environment });
}

test(
  "HTTPS_PROXY tunnels every request through CONNECT and the key reaches only the API host",
  { skip },
  async () => {
    await withHttps(
      { proxy: { credentials: { user: PROXY_USER, password: PROXY_PASSWORD } } },
      async (s) => {
        const r = await run(
          ["--verbose"],
          env(s, {
            HTTPS_PROXY: s.proxyUrl,
            NODE_EXTRA_CA_CERTS: s.ca,
          }),
        );
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout, await expectedStream(s.emulator, idsOf(s.emulator)));
        // Every connection went through the tunnel, to the two hosts and nowhere else.
        const targets = new Set(s.proxy.connects);
        assert.deepEqual(
          [...targets].sort(),
          [`${API_HOST}:${s.api.port}`, `${STORAGE_HOST}:${s.storage.port}`].sort(),
        );
        assert.deepEqual(s.proxy.plain, []);
        // The proxy's credentials came from the URL, as Basic auth on each CONNECT.
        const basic = `Basic ${btoa(`${PROXY_USER}:${PROXY_PASSWORD}`)}`;
        assert.ok(s.proxy.authorizations.length >= s.proxy.connects.length);
        assert.ok(s.proxy.authorizations.every((a) => a === basic));
        // Inside the tunnels: the key went to the API host only, with SNI naming it.
        assert.ok(s.api.requests.length > 0);
        for (const q of s.api.requests) {
          assert.equal(q.headers.authorization, `Bearer ${s.emulator.key}`);
          assert.equal(q.servername, API_HOST);
        }
        assert.equal(s.storage.requests.length, 5);
        for (const q of s.storage.requests) {
          assert.equal(q.headers.authorization, undefined);
          assert.ok(!JSON.stringify(q).includes(s.emulator.key));
        }
        assert.ok(!r.stderr.includes(PROXY_PASSWORD), r.stderr);
        assert.ok(!r.stderr.includes(s.emulator.key));
      },
    );
  },
);

test("NO_PROXY (or no_proxy) sends matching hosts direct, past the proxy", { skip }, async () => {
  await withHttps({ host: "localhost" }, async (s) => {
    const ca = s.ca;
    const exemptions: Record<string, string>[] = [
      { NO_PROXY: "localhost" },
      { no_proxy: "example.com,localhost" },
      { NO_PROXY: "*" },
    ];
    for (const extra of exemptions) {
      const r = await run(
        [],
        env(s, { HTTPS_PROXY: s.proxyUrl, NODE_EXTRA_CA_CERTS: ca, ...extra }),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout, await expectedStream(s.emulator, idsOf(s.emulator)));
    }
    assert.equal(s.proxy.connects.length, 0, s.proxy.connects.join(" "));
    // Without NO_PROXY, loopback names are not exempt: the same run goes through the proxy.
    const proxied = await run([], env(s, { https_proxy: s.proxyUrl, NODE_EXTRA_CA_CERTS: ca }));
    assert.equal(proxied.code, 0, proxied.stderr);
    assert.ok(s.proxy.connects.includes(`localhost:${s.api.port}`), s.proxy.connects.join(" "));
  });
});

test("ALL_PROXY is used for HTTPS too, HTTP_PROXY is not", { skip }, async () => {
  await withHttps({ files: 2 }, async (s) => {
    const all = await run([], env(s, { ALL_PROXY: s.proxyUrl, NODE_EXTRA_CA_CERTS: s.ca }));
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(all.stdout, await expectedStream(s.emulator, idsOf(s.emulator)));
    const tunnels = s.proxy.connects.length;
    assert.ok(tunnels > 0);
    // HTTP_PROXY is for http:// URLs: the https API is then reached direct, and only the proxy
    // can resolve its name.
    const http = await run(
      ["--retries", "0"],
      env(s, { HTTP_PROXY: s.proxyUrl, NODE_EXTRA_CA_CERTS: s.ca }),
    );
    assert.equal(http.code, 1);
    assert.match(http.stderr, /cannot reach api\.compliance\.test/);
    assert.equal(s.proxy.connects.length, tunnels);
  });
});

test(
  "a private CA is refused unless NODE_EXTRA_CA_CERTS names it, with a hint",
  { skip },
  async () => {
    await withHttps({ files: 1 }, async (s) => {
      const r = await run(["--retries", "0"], env(s, { HTTPS_PROXY: s.proxyUrl }));
      assert.equal(r.code, 1);
      assert.equal(r.stdout.length, 0);
      assert.match(r.stderr, new RegExp(`cannot reach ${API_HOST.replaceAll(".", "\\.")}`));
      assert.match(r.stderr, /NODE_EXTRA_CA_CERTS/);
      assert.equal(s.api.requests.length, 0);
    });
  },
);

test(
  "DENO_CERT also trusts the private CA when running under Deno",
  {
    skip: skip ||
      (RUNS_BINARY || !("Deno" in globalThis)
        ? "DENO_CERT is read by the Deno runtime only (binaries are built with Bun)"
        : false),
  },
  async () => {
    await withHttps({ files: 2 }, async (s) => {
      const r = await run(
        [],
        env(s, { HTTPS_PROXY: s.proxyUrl, DENO_CERT: s.ca }),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout, await expectedStream(s.emulator, idsOf(s.emulator)));
    });
  },
);

test(
  "proxy credentials are never printed, when the proxy refuses them or is unreachable",
  { skip },
  async () => {
    await withHttps(
      { files: 1, proxy: { credentials: { user: PROXY_USER, password: "the-right-one" } } },
      async (s) => {
        const ca = s.ca;
        const refused = s.proxy.url.replace("http://", `http://${PROXY_USER}:${PROXY_PASSWORD}@`);
        const down = `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:9`;
        for (const proxyUrl of [refused, down]) {
          const args = ["--retries", "1", "--backoff", "0.01", "--verbose"];
          for (const format of ["plain", "json"]) {
            const r = await run(
              [...args, "--log-format", format],
              env(s, { HTTPS_PROXY: proxyUrl, NODE_EXTRA_CA_CERTS: ca }),
            );
            assert.equal(r.code, 1, r.stderr);
            assert.match(r.stderr, /cannot reach api\.compliance\.test/);
            assert.ok(!r.stderr.includes(PROXY_PASSWORD), r.stderr);
            assert.ok(!r.stderr.includes(encodeURIComponent(PROXY_PASSWORD)), r.stderr);
          }
        }
        assert.equal(s.api.requests.length, 0);
      },
    );
  },
);
