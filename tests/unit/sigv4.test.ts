// AWS Signature Version 4 against the published AWS test suite (tests/fixtures/sigv4/SOURCE.md):
// the canonical request, the string to sign and the signature of each vector.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { amzDate, EMPTY_SHA256, signRequest, uriEncode } from "../../lib/aws/sigv4.ts";

const VECTORS = fileURLToPath(new URL("../fixtures/sigv4/", import.meta.url));

interface Context {
  credentials: { access_key_id: string; secret_access_key: string; token?: string };
  region: string;
  service: string;
  sign_body: boolean;
  timestamp: string;
}

/** `request.txt`: `METHOD PATH HTTP/1.1`, `Name:value` lines, a blank line, the body. */
function parseRequest(text: string) {
  const [head, ...rest] = text.split("\n\n");
  const [first, ...headerLines] = head.split("\n");
  const match = /^(\S+) (.*) HTTP\/1\.1$/.exec(first)!;
  const headers = headerLines.filter((line) => line !== "").map((line) => {
    const at = line.indexOf(":");
    return [line.slice(0, at), line.slice(at + 1)] as [string, string];
  });
  return { method: match[1], target: match[2], headers, body: rest.join("\n\n") };
}

const names = readdirSync(VECTORS).filter((n) => statSync(VECTORS + n).isDirectory()).sort();

test("sigv4: the fixture holds the test-suite vectors", () => {
  assert.ok(names.length >= 15, `only ${names.length} vectors in ${VECTORS}`);
});

for (const name of names) {
  test(`sigv4: test-suite vector ${name}`, () => {
    const read = (file: string) => readFileSync(VECTORS + name + "/" + file, "utf8");
    const context = JSON.parse(read("context.json")) as Context;
    const request = parseRequest(read("request.txt"));
    const host = request.headers.find(([n]) => n.toLowerCase() === "host")![1];
    // The suite's paths are raw (a space, UTF-8): encode them as a request line would carry them.
    const [path, query] = request.target.split("?");
    const url = new URL(
      `https://${host}${path.split("/").map((s) => uriEncode(s)).join("/")}` +
        (query === undefined ? "" : `?${query}`),
    );
    const payloadSha256 = createHash("sha256").update(request.body).digest("hex");
    const headers = [...request.headers];
    if (context.sign_body) headers.push(["X-Amz-Content-Sha256", payloadSha256]);
    const signed = signRequest({
      method: request.method,
      url,
      headers,
      payloadSha256,
      credentials: {
        accessKeyId: context.credentials.access_key_id,
        secretAccessKey: context.credentials.secret_access_key,
        sessionToken: context.credentials.token,
      },
      region: context.region,
      service: context.service,
      now: new Date(context.timestamp),
    });
    assert.equal(signed.canonicalRequest, read("header-canonical-request.txt"));
    assert.equal(signed.stringToSign, read("header-string-to-sign.txt"));
    assert.equal(signed.signature, read("header-signature.txt").trim());
    assert.match(signed.headers.authorization, new RegExp(`Signature=${signed.signature}$`));
  });
}

test("sigv4: a changed payload hash changes the signature", () => {
  const input = {
    method: "PUT",
    url: new URL("http://127.0.0.1:9000/bucket/a%20b.jsonl"),
    headers: [] as Array<[string, string]>,
    credentials: { accessKeyId: "AKID", secretAccessKey: "secret" },
    region: "us-east-1",
    service: "s3",
    now: new Date("2026-01-01T00:00:00Z"),
  };
  const a = signRequest({ ...input, payloadSha256: EMPTY_SHA256 });
  const b = signRequest({ ...input, payloadSha256: "0".repeat(64) });
  assert.notEqual(a.signature, b.signature);
  assert.equal(a.headers["x-amz-date"], "20260101T000000Z");
  assert.equal(a.canonicalRequest.split("\n")[1], "/bucket/a%20b.jsonl");
  assert.equal(amzDate(new Date("2015-08-30T12:36:00.123Z")), "20150830T123600Z");
});
