/**
 * The API's refusals point at the common mistakes: a key that is not a Compliance API key (401), a
 * principal the key was not issued for (403), an id of the wrong kind (404 on the listing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";
import { AFTER, envFor, hourlyFiles, PRINCIPAL, withEmulator } from "./helpers/fixtures.ts";
import { SLOW } from "./helpers/mod.ts";

const CASES = [
  { status: 401, hint: /hint: .*must be a Compliance API key \(a Platform admin key/ },
  { status: 403, hint: /hint: .*the one the key was issued for.*compliance access/ },
  { status: 404, hint: /hint: .*no such workspace or organization.*org-/ },
];

for (const { status, hint } of CASES) {
  test(
    `an HTTP ${status} on the listing says what is usually wrong, in plain and JSON logs`,
    SLOW,
    async () => {
      await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
        for (const format of ["plain", "json"]) {
          emulator.inject({ target: "list", status, body: '{"error":{"message":"no"}}' });
          const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER, "--log-format", format], {
            env: envFor(emulator),
          });
          assert.equal(r.code, 1, r.stderr);
          assert.match(r.stderr, new RegExp(`HTTP error ${status} while listing logs`));
          assert.match(r.stderr, hint);
        }
      });
    },
  );
}

test("a 404 for one file is not taken for an unknown workspace", SLOW, async () => {
  await withEmulator({ files: hourlyFiles(2) }, async (emulator) => {
    emulator.inject({ target: "download", status: 404, body: '{"error":"gone"}' });
    const r = await runCli([PRINCIPAL, "AUTH_LOG", "10", AFTER], { env: envFor(emulator) });
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /no such workspace/);
  });
});
