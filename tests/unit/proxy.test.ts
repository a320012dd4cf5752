import { test } from "node:test";
import assert from "node:assert/strict";
import { bypassesProxy, proxyFor } from "../../lib/proxy.ts";

const bypass = (url: string, noProxy: string) => bypassesProxy(new URL(url), noProxy);

test("NO_PROXY=* matches every host, IP addresses included", () => {
  for (const url of ["https://127.0.0.1:8443/", "https://[::1]/", "https://api.openai.com/"]) {
    assert.equal(bypass(url, "*"), true, url);
    assert.equal(bypass(url, "example.com, *"), true, url);
  }
});

test("a NO_PROXY name matches itself and its subdomains, with or without a leading dot", () => {
  for (const entry of ["corp.example", ".corp.example", "*.corp.example", "CORP.EXAMPLE"]) {
    assert.equal(bypass("https://corp.example/", entry), true, entry);
    assert.equal(bypass("https://logs.corp.example/", entry), true, entry);
    assert.equal(bypass("https://notcorp.example/", entry), false, entry);
  }
});

test("NO_PROXY IP addresses match exactly, and IPv4 ranges by CIDR", () => {
  assert.equal(bypass("https://127.0.0.1/", "127.0.0.1"), true);
  assert.equal(bypass("https://127.0.0.2/", "127.0.0.1"), false);
  assert.equal(bypass("https://10.0.0.1/", "0.0.1"), false);
  assert.equal(bypass("https://10.1.2.3/", "10.0.0.0/8"), true);
  assert.equal(bypass("https://11.1.2.3/", "10.0.0.0/8"), false);
  assert.equal(bypass("https://[::1]:8443/", "::1"), true);
  assert.equal(bypass("https://[::1]:8443/", "[::1]"), true);
  assert.equal(bypass("https://[::1]:8443/", "1"), false);
});

test("a NO_PROXY entry with a port matches only that port (443 and 80 by default)", () => {
  assert.equal(bypass("https://127.0.0.1:8443/", "127.0.0.1:8443"), true);
  assert.equal(bypass("https://127.0.0.1:8443/", "127.0.0.1:9000"), false);
  assert.equal(bypass("https://api.example/", "api.example:443"), true);
  assert.equal(bypass("http://api.example/", "api.example:443"), false);
  assert.equal(bypass("https://[::1]:8443/", "[::1]:8443"), true);
});

test("blank or empty NO_PROXY entries match nothing", () => {
  assert.equal(bypass("https://api.openai.com/", ""), false);
  assert.equal(bypass("https://api.openai.com/", " , ,"), false);
});

test("proxyFor picks the variable for the scheme, lower case first, and honours NO_PROXY", () => {
  const https = new URL("https://api.openai.com/");
  assert.equal(proxyFor(https, {}), undefined);
  assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1" }), "http://a:1");
  assert.equal(
    proxyFor(https, { https_proxy: "http://b:1", HTTPS_PROXY: "http://a:1" }),
    "http://b:1",
  );
  assert.equal(proxyFor(https, { HTTP_PROXY: "http://a:1" }), undefined);
  assert.equal(proxyFor(https, { ALL_PROXY: "http://c:1" }), "http://c:1");
  const remote = new URL("http://logs.corp.example:8080/");
  assert.equal(proxyFor(remote, { HTTP_PROXY: "http://a:1" }), "http://a:1");
  assert.equal(proxyFor(remote, { HTTP_PROXY: "http://a:1", no_proxy: "*" }), undefined);
  assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1", NO_PROXY: "openai.com" }), undefined);
});

test("plain http to a loopback or link-local host never goes through a proxy (tokens in clear)", () => {
  const proxied = { HTTP_PROXY: "http://proxy:3128", ALL_PROXY: "http://proxy:3128" };
  for (
    const url of [
      "http://127.0.0.1:8080/",
      "http://[::1]:9200/",
      "http://localhost:8088/",
      "http://169.254.170.2/v2/credentials",
      "http://169.254.169.254/latest/api/token",
      "http://[fd00:ec2::254]/latest/api/token",
    ]
  ) {
    assert.equal(proxyFor(new URL(url), proxied), undefined, url);
  }
  // https to loopback still honours the proxy settings (a TLS tunnel hides what it carries).
  assert.equal(
    proxyFor(new URL("https://127.0.0.1:8443/"), { HTTPS_PROXY: "http://p:1" }),
    "http://p:1",
  );
});
