import { test } from "node:test";
import assert from "node:assert/strict";
import { parseApiBase } from "../../lib/commands/_arguments.ts";
import { CliError } from "../../lib/errors.ts";
import { followable, isLiteralLoopback } from "../../lib/urls.ts";

test("only 127.0.0.0/8, [::1] and localhost are literal loopback", () => {
  for (
    const url of [
      "http://127.0.0.1/",
      "http://127.1.2.3:80/",
      "http://[::1]:9/",
      "http://localhost/",
      "http://LOCALHOST/",
      "http://127.1/",
    ]
  ) {
    assert.equal(isLiteralLoopback(new URL(url)), true, url);
  }
  for (
    const url of [
      "http://127.evil.com/",
      "http://127.0.0.1.nip.io/",
      "http://localhost.evil.com/",
      "http://128.0.0.1/",
      "http://[::2]/",
      "http://10.0.0.1/",
    ]
  ) {
    assert.equal(isLiteralLoopback(new URL(url)), false, url);
  }
});

const httpsApi = new URL("https://api.example/v1/compliance");
const localApi = new URL("http://127.0.0.1:8080/v1/compliance");
const what = "downloading log id=f1";

function refusal(fn: () => unknown): CliError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof CliError);
    assert.equal(error.kind, "api");
    return error;
  }
  assert.fail("expected a CliError");
}

test("https redirects are followed, resolved against the current URL", () => {
  assert.equal(
    followable("https://s.example/f?sig=1", httpsApi, httpsApi, what).href,
    "https://s.example/f?sig=1",
  );
  assert.equal(
    followable("/other", new URL("https://s.example/f"), httpsApi, what).href,
    "https://s.example/other",
  );
});

test("http redirects are followed only from a plain-http loopback API to loopback", () => {
  assert.equal(
    followable("http://127.0.0.1:9/f", localApi, localApi, what).href,
    "http://127.0.0.1:9/f",
  );
  assert.match(
    refusal(() => followable("http://s.example/f", httpsApi, httpsApi, what)).message,
    /'http:'.*downgrade/,
  );
  assert.match(
    refusal(() => followable("http://s.example/f", localApi, localApi, what)).message,
    /'http:'/,
  );
});

test("file:, data: and other schemes are refused naming the scheme", () => {
  for (
    const [location, scheme] of [["file:///etc/passwd", "file:"], ["data:text/plain,x", "data:"], [
      "ftp://x/",
      "ftp:",
    ]]
  ) {
    const error = refusal(() => followable(location, localApi, localApi, what));
    assert.match(error.message, new RegExp(`'${scheme}'`));
    assert.ok(!error.message.includes("\n"));
  }
});

test("a Location that is not a URL is named, on one line", () => {
  const error = refusal(() => followable("http://[::1\n\x1b[2J", httpsApi, httpsApi, what));
  assert.match(error.message, /not a URL/);
  assert.ok(!error.message.includes("\n"));
  assert.ok(!error.message.includes("\x1b"));
});

test("--api-base over plain http needs a literal loopback host", () => {
  assert.equal(parseApiBase("http://127.0.0.1:8080/v1/").href, "http://127.0.0.1:8080/v1");
  assert.equal(parseApiBase("http://[::1]:8080/v1").hostname, "[::1]");
  for (
    const base of [
      "http://127.evil.example/v1",
      "http://127.0.0.1.nip.io/v1",
      "http://localhost.evil/v1",
    ]
  ) {
    assert.throws(
      () => parseApiBase(base),
      (e: unknown) => e instanceof CliError && e.kind === "usage",
      base,
    );
  }
});
