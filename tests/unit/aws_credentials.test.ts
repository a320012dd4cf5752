// AWS credential sources in the standard order, each against a loopback stand-in (never the
// real link-local addresses): static keys, a profile, web identity (STS), container credentials,
// IMDSv2 (token first), and refresh before expiry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  awsRegion,
  CONTAINER_HOST,
  CredentialProvider,
  credentialSource,
  parseIni,
  REFRESH_BEFORE_MS,
} from "../../lib/aws/credentials.ts";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function withServer(handler: Handler, fn: (base: string) => Promise<void>): Promise<void> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => body += c);
    req.on("end", () => handler(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    await fn(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

const NO_IMDS = { AWS_EC2_METADATA_DISABLED: "true", HOME: "/nonexistent" };
const dir = mkdtempSync(join(tmpdir(), "aws-creds-"));

test("aws credentials: environment keys come first", async () => {
  const source = credentialSource({
    ...NO_IMDS,
    AWS_ACCESS_KEY_ID: "AKIAENV",
    AWS_SECRET_ACCESS_KEY: "envsecret",
    AWS_SESSION_TOKEN: "envtoken",
    AWS_PROFILE: "other",
  });
  assert.equal(source.name, "environment");
  assert.deepEqual(await source.fetch(), {
    accessKeyId: "AKIAENV",
    secretAccessKey: "envsecret",
    sessionToken: "envtoken",
  });
  assert.throws(
    () => credentialSource({ ...NO_IMDS, AWS_ACCESS_KEY_ID: "AKIA" }),
    /AWS_SECRET_ACCESS_KEY is not set/,
  );
});

test("aws credentials: AWS_PROFILE from the credentials and config files, with its region", async () => {
  const credentials = join(dir, "credentials");
  const config = join(dir, "config");
  writeFileSync(
    credentials,
    "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = def\n\n[work]\n# comment\naws_access_key_id = AKIAWORK\naws_secret_access_key = worksecret\naws_session_token = worktoken\n",
  );
  writeFileSync(config, "[default]\nregion = us-west-2\n[profile work]\nregion = eu-central-1\n");
  const env = { ...NO_IMDS, AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: config };
  const work = credentialSource({ ...env, AWS_PROFILE: "work" });
  assert.equal(work.name, "profile");
  assert.deepEqual(await work.fetch(), {
    accessKeyId: "AKIAWORK",
    secretAccessKey: "worksecret",
    sessionToken: "worktoken",
  });
  assert.equal(awsRegion({ ...env, AWS_PROFILE: "work" }), "eu-central-1");
  assert.equal((await credentialSource(env).fetch()).accessKeyId, "AKIADEF");
  assert.equal(awsRegion(env), "us-west-2");
  assert.equal(awsRegion({ ...env, AWS_DEFAULT_REGION: "ap-south-1" }), "ap-south-1");
  assert.equal(
    awsRegion({ ...env, AWS_REGION: "sa-east-1", AWS_DEFAULT_REGION: "x" }),
    "sa-east-1",
  );
  assert.throws(() => credentialSource({ ...env, AWS_PROFILE: "missing" }), /has that profile/);
  assert.deepEqual(parseIni("[a]\n k = v \n"), { a: { k: "v" } });
});

test("aws credentials: web identity is exchanged at STS (AssumeRoleWithWebIdentity)", async () => {
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "eyJ.web.identity\n");
  let form = new URLSearchParams();
  await withServer((_req, body, res) => {
    form = new URLSearchParams(body);
    res.writeHead(200, { "content-type": "text/xml" });
    res.end(`<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>
<AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>websecret</SecretAccessKey>
<SessionToken>webtoken</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>
</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`);
  }, async (base) => {
    const source = credentialSource({
      ...NO_IMDS,
      AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
      AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/archiver",
      AWS_ROLE_SESSION_NAME: "cronjob",
      AWS_ENDPOINT_URL_STS: base,
    });
    assert.equal(source.name, "web identity");
    const got = await source.fetch();
    assert.equal(got.accessKeyId, "ASIAWEB");
    assert.equal(got.sessionToken, "webtoken");
    assert.equal(got.expiration?.toISOString(), "2030-01-01T00:00:00.000Z");
    assert.equal(form.get("Action"), "AssumeRoleWithWebIdentity");
    assert.equal(form.get("RoleArn"), "arn:aws:iam::123456789012:role/archiver");
    assert.equal(form.get("RoleSessionName"), "cronjob");
    assert.equal(form.get("WebIdentityToken"), "eyJ.web.identity");
  });
});

test("aws credentials: container credentials with the authorization token file", async () => {
  const tokenFile = join(dir, "container-token");
  writeFileSync(tokenFile, "pod-identity-token\n");
  let authorization: string | undefined;
  await withServer((req, _body, res) => {
    authorization = req.headers.authorization;
    res.writeHead(req.url === "/creds" ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify({
      AccessKeyId: "ASIACONT",
      SecretAccessKey: "contsecret",
      Token: "conttoken",
      Expiration: "2030-01-01T00:00:00Z",
    }));
  }, async (base) => {
    const source = credentialSource({
      ...NO_IMDS,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${base}/creds`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: "ignored-when-the-file-is-set",
    });
    assert.equal(source.name, "container");
    const got = await source.fetch();
    assert.equal(got.accessKeyId, "ASIACONT");
    assert.equal(got.sessionToken, "conttoken");
    assert.equal(authorization, "pod-identity-token");
  });
  // The relative URI is at the ECS link-local host (not contacted here).
  assert.equal(CONTAINER_HOST, "http://169.254.170.2");
});

test("aws credentials: IMDSv2 asks for a session token first, then the role's credentials", async () => {
  const calls: string[] = [];
  await withServer((req, _body, res) => {
    calls.push(`${req.method} ${req.url}`);
    if (req.method === "PUT" && req.url === "/latest/api/token") {
      assert.equal(req.headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
      res.end("imds-session-token");
      return;
    }
    if (req.headers["x-aws-ec2-metadata-token"] !== "imds-session-token") {
      res.writeHead(401);
      res.end();
      return;
    }
    if (req.url === "/latest/meta-data/iam/security-credentials/") {
      res.end("archiver-role\n");
      return;
    }
    res.end(JSON.stringify({
      Code: "Success",
      AccessKeyId: "ASIAIMDS",
      SecretAccessKey: "imdssecret",
      Token: "imdstoken",
      Expiration: "2030-01-01T00:00:00Z",
    }));
  }, async (base) => {
    const source = credentialSource({
      HOME: "/nonexistent",
      AWS_EC2_METADATA_SERVICE_ENDPOINT: base,
    });
    assert.equal(source.name, "instance metadata");
    assert.equal((await source.fetch()).accessKeyId, "ASIAIMDS");
    assert.deepEqual(calls, [
      "PUT /latest/api/token",
      "GET /latest/meta-data/iam/security-credentials/",
      "GET /latest/meta-data/iam/security-credentials/archiver-role",
    ]);
  });
  assert.throws(() => credentialSource(NO_IMDS), /no AWS credentials/);
});

test("aws credentials: temporary credentials are fetched again before they expire", async () => {
  let now = Date.parse("2030-01-01T00:00:00Z");
  let fetched = 0;
  const provider = new CredentialProvider({
    name: "container",
    fetch: () => {
      fetched++;
      return Promise.resolve({
        accessKeyId: `ASIA${fetched}`,
        secretAccessKey: "s",
        expiration: new Date(now + 3_600_000),
      });
    },
  }, () => now);
  assert.equal((await provider.get()).accessKeyId, "ASIA1");
  now += 3_600_000 - REFRESH_BEFORE_MS - 1000; // Still fresh enough.
  assert.equal((await provider.get()).accessKeyId, "ASIA1");
  now += 2000; // Within the refresh window.
  assert.equal((await provider.get()).accessKeyId, "ASIA2");
  assert.equal(fetched, 2);
});
