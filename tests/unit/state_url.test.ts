// What `--state` URLs name (lib/checkpoint/object_state.ts, lib/locations.ts): s3://, az:// and
// the Azure account's https form; anything else, or a URL without a key, is a usage error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStateUrl } from "../../lib/checkpoint/object_state.ts";
import { stateLocation } from "../../lib/locations.ts";
import { CliError } from "../../lib/errors.ts";

const isUsage = (pattern: RegExp) => (error: unknown) =>
  error instanceof CliError && error.kind === "usage" && pattern.test(error.message);

test("--state URLs: bucket or container and key", () => {
  assert.deepEqual(parseStateUrl("s3://jobs/openai/auth.state.json"), {
    store: "s3",
    bucket: "jobs",
    key: "openai/auth.state.json",
  });
  assert.deepEqual(parseStateUrl("az://logs/state/all.json"), {
    store: "azure",
    account: undefined,
    container: "logs",
    key: "state/all.json",
  });
  assert.deepEqual(parseStateUrl("https://acme123.blob.core.windows.net/logs/state/all.json"), {
    store: "azure",
    account: "acme123",
    container: "logs",
    key: "state/all.json",
  });
});

test("--state URLs without a key, with bad segments or bad names are usage errors", () => {
  for (
    const text of ["s3://jobs", "s3://jobs/", "s3://jobs/a/", "s3://jobs/a//b", "s3://jobs/../b"]
  ) {
    assert.throws(() => parseStateUrl(text), isUsage(/s3:\/\/BUCKET\/KEY/), text);
  }
  assert.throws(() => parseStateUrl("az://Bad_Name/k"), isUsage(/not a valid container name/));
  assert.throws(() => parseStateUrl("s3://-x/k"), isUsage(/not a bucket name/));
});

test("stateLocation: paths stay paths; s3, az and Azure's https form are taken; others refused", () => {
  assert.equal(stateLocation("state.json"), "state.json");
  assert.equal(stateLocation("C:\\state\\s.json"), "C:\\state\\s.json");
  assert.equal(stateLocation("s3://b/k.json"), "s3://b/k.json");
  assert.equal(stateLocation("az://c1c/k.json"), "az://c1c/k.json");
  const https = "https://acme123.blob.core.windows.net/logs/k.json";
  assert.equal(stateLocation(https), https);
  for (const text of ["https://example.com/k.json", "gs://b/k.json", "file:///tmp/k.json"]) {
    assert.throws(() => stateLocation(text), isUsage(/URLs are not supported for it/), text);
  }
});
