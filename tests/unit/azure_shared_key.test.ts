/**
 * Azure Shared Key, against the "Authorize with Shared Key" reference: the string to sign built
 * field by field, the reference's own canonicalized-resource examples, and a signature computed
 * independently (`openssl dgst -sha256 -mac HMAC` over the same string with the development key).
 * Azurite checks the same signatures for real in tests/azure_blob.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY } from "../../lib/azure/credentials.ts";
import {
  canonicalizedHeaders,
  canonicalizedResource,
  sharedKeyAuthorization,
  stringToSign,
} from "../../lib/azure/shared_key.ts";

const PUT_URL = new URL("http://127.0.0.1:10000/devstoreaccount1/logs/a%20b/c.jsonl");
const PUT_HEADERS = {
  "Content-Length": "11",
  "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww==",
  "Content-Type": "text/plain",
  "x-ms-version": "2021-12-02",
  "X-MS-Date": "Fri, 01 Jan 2027 00:00:00 GMT",
  "x-ms-meta-sha256": "abc",
  "x-ms-blob-type": "BlockBlob",
};

/** Written out by hand from the reference: verb, the 11 standard headers, x-ms-*, resource. */
const PUT_STRING = [
  "PUT",
  "", // Content-Encoding
  "", // Content-Language
  "11", // Content-Length
  "XrY7u+Ae7tCTyyK7j1rNww==", // Content-MD5
  "text/plain", // Content-Type
  "", // Date
  "", // If-Modified-Since
  "", // If-Match
  "", // If-None-Match
  "", // If-Unmodified-Since
  "", // Range
  "x-ms-blob-type:BlockBlob",
  "x-ms-date:Fri, 01 Jan 2027 00:00:00 GMT",
  "x-ms-meta-sha256:abc",
  "x-ms-version:2021-12-02",
  "/devstoreaccount1/devstoreaccount1/logs/a%20b/c.jsonl",
].join("\n");

test("the string to sign has the reference's fields in order, path-style account twice", () => {
  assert.equal(stringToSign(DEVELOPMENT_ACCOUNT, "put", PUT_URL, PUT_HEADERS), PUT_STRING);
});

test("the signature matches one computed independently with openssl", () => {
  assert.equal(
    sharedKeyAuthorization(DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY, "PUT", PUT_URL, PUT_HEADERS),
    "SharedKey devstoreaccount1:6eILwIeCsrt1ThJyG5ePimU9t1bPHbfEyW/vv9W/c1U=",
  );
});

test("a zero Content-Length is signed blank (version 2015-02-21 and later)", () => {
  const url = new URL("https://acct.blob.core.windows.net/c/b");
  const lines = stringToSign("acct", "PUT", url, { "content-length": "0" }).split("\n");
  assert.equal(lines[3], "");
});

test("canonicalized headers: only x-ms-, lowercased, sorted, whitespace folded", () => {
  assert.equal(
    canonicalizedHeaders({
      "x-ms-version": "2021-12-02",
      "X-Ms-Meta-Size": "  12 ",
      "x-ms-date": "Fri,  01 Jan\t2027 00:00:00 GMT",
      "content-type": "text/plain",
    }),
    "x-ms-date:Fri, 01 Jan 2027 00:00:00 GMT\nx-ms-meta-size:12\nx-ms-version:2021-12-02\n",
  );
});

test("canonicalized resource: the reference's examples", () => {
  // "Get Container Metadata" in the reference.
  assert.equal(
    canonicalizedResource(
      "myaccount",
      new URL(
        "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata",
      ),
    ),
    "/myaccount/mycontainer\ncomp:metadata\nrestype:container",
  );
  // "List Blobs" with a repeated parameter: its values sorted and joined by commas.
  assert.equal(
    canonicalizedResource(
      "myaccount",
      new URL(
        "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list&" +
          "include=snapshots&include=metadata&include=uncommittedblobs",
      ),
    ),
    "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\n" +
      "restype:container",
  );
  // Query values are decoded (a block id is base64, sent percent-encoded).
  assert.equal(
    canonicalizedResource(
      "a",
      new URL("https://a.blob.core.windows.net/c/b?comp=block&blockid=QQ%3D%3D"),
    ),
    "/a/c/b\nblockid:QQ==\ncomp:block",
  );
});
