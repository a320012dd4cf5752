/**
 * AWS credentials and settings from the standard sources, in the standard order (as the AWS
 * SDKs and CLI look for them):
 *
 * 1. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`);
 * 2. a profile, `AWS_PROFILE` (else `default` where the files have one), from
 *    `~/.aws/credentials` and `~/.aws/config` (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`);
 * 3. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN` (and
 *    `AWS_ROLE_SESSION_NAME`), exchanged at STS with `AssumeRoleWithWebIdentity` (an EKS pod's
 *    IRSA); STS at `AWS_ENDPOINT_URL_STS` when set;
 * 4. container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (at 169.254.170.2) or
 *    `_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `_TOKEN`;
 * 5. EC2 instance metadata, IMDSv2 (a session token first), at
 *    `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default 169.254.169.254); off with
 *    `AWS_EC2_METADATA_DISABLED=true`.
 *
 * Temporary credentials (3 to 5, and a profile's session token) are fetched again before they
 * expire (`REFRESH_BEFORE_MS`), so a long `--follow` keeps signing. Region: `AWS_REGION`,
 * `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`.
 *
 * @example
 * ```ts
 * declare const env: Record<string, string | undefined>;
 * const provider = credentialProvider(env);
 * const credentials = await provider.get();
 * ```
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CliError, reason, registerSecret, usage } from "../errors.ts";
import { isLiteralLoopback } from "../urls.ts";
import { request } from "../http.ts";
import type { Env } from "../settings.ts";
import type { AwsCredentials } from "./sigv4.ts";

/** Temporary credentials are fetched again this long before they expire. */
export const REFRESH_BEFORE_MS = 5 * 60_000;
/** The container credentials' link-local host for `_RELATIVE_URI`. */
export const CONTAINER_HOST = "http://169.254.170.2";
export const IMDS_ENDPOINT = "http://169.254.169.254";
const FETCH_TIMEOUT_MS = 5_000;

/** One INI file as sections of `name = value`. */
export type IniFile = Record<string, Record<string, string>>;

/**
 * An AWS INI file (`[section]`, `name = value`, `#` and `;` comments); nested values (indented
 * lines) are kept as their text.
 *
 * @example
 * ```ts
 * parseIni("[default]\nregion = eu-west-1\n").default.region; // "eu-west-1"
 * ```
 */
export function parseIni(text: string): IniFile {
  const out: IniFile = {};
  let section: Record<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^\s+|\s+$/g, "");
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (header) {
      section = out[header[1]] ??= {};
      continue;
    }
    const at = line.indexOf("=");
    if (section && at > 0) {
      section[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    }
  }
  return out;
}

function readIni(path: string): IniFile | undefined {
  try {
    return parseIni(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** The profile's settings: the credentials file's `[name]` over the config file's. */
export function profileSettings(env: Env): { name: string; settings?: Record<string, string> } {
  const home = env.HOME ?? env.USERPROFILE ?? homedir();
  const credentials = readIni(env.AWS_SHARED_CREDENTIALS_FILE ?? join(home, ".aws", "credentials"));
  const config = readIni(env.AWS_CONFIG_FILE ?? join(home, ".aws", "config"));
  const name = env.AWS_PROFILE || "default";
  const fromConfig = name === "default"
    ? config?.default ?? config?.["profile default"]
    : config?.[`profile ${name}`];
  const fromCredentials = credentials?.[name];
  if (!fromConfig && !fromCredentials) return { name };
  return { name, settings: { ...fromConfig, ...fromCredentials } };
}

/** The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, else `us-east-1`. */
export function awsRegion(env: Env): string {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || profileSettings(env).settings?.region ||
    "us-east-1";
}

/** Where credentials come from, for messages. */
export type CredentialSourceName =
  | "environment"
  | "profile"
  | "web identity"
  | "container"
  | "instance metadata";

/** One source: fetches a fresh set of credentials. */
export interface CredentialSource {
  readonly name: CredentialSourceName;
  fetch(): Promise<AwsCredentials>;
}

function noCredentials(detail: string): CliError {
  return new CliError(
    "auth",
    `no AWS credentials: ${detail}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ` +
      `AWS_PROFILE with ~/.aws/credentials, or run where a role provides them (IRSA, ECS, EC2)`,
  );
}

/** An ISO date, or undefined when absent or not a date. */
function expiryOf(text: unknown): Date | undefined {
  if (typeof text !== "string") return undefined;
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

function xmlField(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match?.[1].replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}

async function getText(
  url: URL,
  headers: Record<string, string>,
  what: string,
  method = "GET",
): Promise<string> {
  const answer = await request(url, headers, {
    method,
    timeoutMs: FETCH_TIMEOUT_MS,
    what,
    maxBytes: 1024 * 1024,
  });
  if (answer.status !== 200) {
    throw new CliError(
      "auth",
      `HTTP ${answer.status} from ${url.host} while ${what}: ${answer.text.slice(0, 300)}`,
    );
  }
  return answer.text;
}

/** A credential read or received is a secret from then on: no message may print it. */
function registered<T extends string | undefined>(value: T): T {
  if (value) registerSecret(value);
  return value;
}

/**
 * An endpoint that credentials or tokens travel to: https, or plain http only where no network
 * sits in between (a literal loopback address, or the link-local hosts AWS itself serves
 * credentials from). `name` is the variable that named it.
 */
export function secretEndpoint(text: string, name: string, linkLocal: readonly string[] = []): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`${name} must be a URL; got '${text}'`);
  }
  const direct = isLiteralLoopback(url) || linkLocal.includes(url.hostname);
  if (url.protocol === "https:" || (url.protocol === "http:" && direct)) return url;
  throw usage(
    `${name} ${url.origin}: credentials go only over https, or plain http to a loopback ` +
      `address${linkLocal.length ? ` or ${linkLocal.join(", ")}` : ""}`,
  );
}

/** The hosts AWS serves container credentials from (ECS, and EKS Pod Identity). */
const CONTAINER_HOSTS = ["169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"];

/** The JSON credentials of the container and instance-metadata endpoints. */
function fromJson(text: string, where: string): AwsCredentials {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new CliError("auth", `the credentials from ${where} are not JSON`);
  }
  const { AccessKeyId, SecretAccessKey, Token, Expiration } = doc;
  if (typeof AccessKeyId !== "string" || typeof SecretAccessKey !== "string") {
    throw new CliError("auth", `the credentials from ${where} have no AccessKeyId/SecretAccessKey`);
  }
  return {
    accessKeyId: AccessKeyId,
    secretAccessKey: registered(SecretAccessKey),
    sessionToken: registered(typeof Token === "string" ? Token : undefined),
    expiration: expiryOf(Expiration),
  };
}

/** STS AssumeRoleWithWebIdentity (unsigned: the token is the proof). */
export function webIdentitySource(env: Env, tokenFile: string, roleArn: string): CredentialSource {
  return {
    name: "web identity",
    async fetch() {
      let token: string;
      try {
        token = registered(readFileSync(tokenFile, "utf8").trim());
      } catch (error) {
        throw new CliError(
          "auth",
          `cannot read AWS_WEB_IDENTITY_TOKEN_FILE ${tokenFile}: ${reason(error)}`,
        );
      }
      const region = awsRegion(env);
      const base = env.AWS_ENDPOINT_URL_STS || env.AWS_ENDPOINT_URL ||
        `https://sts.${region}.amazonaws.com`;
      const url = secretEndpoint(
        base,
        env.AWS_ENDPOINT_URL_STS ? "AWS_ENDPOINT_URL_STS" : "AWS_ENDPOINT_URL",
      );
      const query = new URLSearchParams({
        Action: "AssumeRoleWithWebIdentity",
        Version: "2011-06-15",
        RoleArn: roleArn,
        RoleSessionName: env.AWS_ROLE_SESSION_NAME || `oai-compliance-logs-${Date.now()}`,
        WebIdentityToken: token,
      });
      const answer = await request(url, {
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/xml",
      }, {
        method: "POST",
        body: query.toString(),
        timeoutMs: FETCH_TIMEOUT_MS * 2,
        what: "getting AWS credentials for the web identity (STS AssumeRoleWithWebIdentity)",
        maxBytes: 1024 * 1024,
      });
      if (answer.status !== 200) {
        const code = xmlField(answer.text, "Code") ?? `HTTP ${answer.status}`;
        const message = xmlField(answer.text, "Message") ?? "";
        throw new CliError(
          "auth",
          `STS refused AssumeRoleWithWebIdentity for ${roleArn}: ${code} ${message}`.trim(),
        );
      }
      const accessKeyId = xmlField(answer.text, "AccessKeyId");
      const secretAccessKey = xmlField(answer.text, "SecretAccessKey");
      if (!accessKeyId || !secretAccessKey) {
        throw new CliError("auth", `the STS answer from ${url.host} holds no credentials`);
      }
      return {
        accessKeyId,
        secretAccessKey: registered(secretAccessKey),
        sessionToken: registered(xmlField(answer.text, "SessionToken")),
        expiration: expiryOf(xmlField(answer.text, "Expiration")),
      };
    },
  };
}

/** The container credentials endpoint (ECS, EKS Pod Identity). */
export function containerSource(env: Env): CredentialSource | undefined {
  const relative = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
  const full = env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  if (!relative && !full) return undefined;
  // Only AWS's own credential hosts (or loopback, or https): a planted variable must not send the
  // authorization token anywhere else. A relative path is resolved, never glued, onto the host.
  if (relative && !relative.startsWith("/")) {
    throw usage(`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path starting with /`);
  }
  const url = relative
    ? new URL(relative, CONTAINER_HOST)
    : secretEndpoint(full!, "AWS_CONTAINER_CREDENTIALS_FULL_URI", CONTAINER_HOSTS);
  if (relative && url.origin !== CONTAINER_HOST) {
    throw usage(`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path on ${CONTAINER_HOST}`);
  }
  return {
    name: "container",
    async fetch() {
      const headers: Record<string, string> = {};
      const tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
      // Read each time: the token file is rotated under a long run.
      let token = env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
      if (tokenFile) {
        try {
          token = registered(readFileSync(tokenFile, "utf8").trim());
        } catch (error) {
          throw new CliError(
            "auth",
            `cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ${tokenFile}: ${reason(error)}`,
          );
        }
      }
      if (token) headers.authorization = token;
      const text = await getText(url, headers, "getting AWS credentials from the container");
      return fromJson(text, `the container credentials endpoint ${url.host}`);
    },
  };
}

/** EC2 instance metadata, IMDSv2: a session token, the role's name, then its credentials. */
export function instanceMetadataSource(env: Env): CredentialSource | undefined {
  if ((env.AWS_EC2_METADATA_DISABLED ?? "").toLowerCase() === "true") return undefined;
  // An override may point at a stand-in over loopback or at https; the credentials it returns
  // would sign every request, so no other plain-http host is believed.
  const override = env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  const base = (override
    ? secretEndpoint(override, "AWS_EC2_METADATA_SERVICE_ENDPOINT", [
      "169.254.169.254",
      "[fd00:ec2::254]",
    ]).href
    : IMDS_ENDPOINT).replace(/\/+$/, "");
  return {
    name: "instance metadata",
    async fetch() {
      const what = "getting AWS credentials from the EC2 instance metadata (IMDSv2)";
      const token = registered((await getText(
        new URL(base + "/latest/api/token"),
        { "x-aws-ec2-metadata-token-ttl-seconds": "21600" },
        what,
        "PUT",
      )).trim());
      const headers = { "x-aws-ec2-metadata-token": token };
      const roles = await getText(
        new URL(base + "/latest/meta-data/iam/security-credentials/"),
        headers,
        what,
      );
      const role = roles.split("\n").map((r) => r.trim()).find(Boolean);
      if (!role) throw new CliError("auth", "the EC2 instance has no IAM role attached");
      const text = await getText(
        new URL(base + "/latest/meta-data/iam/security-credentials/" + encodeURIComponent(role)),
        headers,
        what,
      );
      return fromJson(text, "the EC2 instance metadata");
    },
  };
}

/** The first source the environment names, in the standard order. */
export function credentialSource(env: Env): CredentialSource {
  const id = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  if (id || secret) {
    if (!id || !secret) {
      throw noCredentials(
        `${id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"} is not set, but ` +
          `${id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY"} is`,
      );
    }
    const credentials = {
      accessKeyId: id,
      secretAccessKey: secret,
      sessionToken: env.AWS_SESSION_TOKEN || undefined,
    };
    return { name: "environment", fetch: () => Promise.resolve(credentials) };
  }
  const profile = profileSettings(env);
  const settings = profile.settings;
  if (settings?.aws_access_key_id && settings.aws_secret_access_key) {
    const credentials = {
      accessKeyId: settings.aws_access_key_id,
      secretAccessKey: registered(settings.aws_secret_access_key),
      sessionToken: registered(settings.aws_session_token || undefined),
    };
    return { name: "profile", fetch: () => Promise.resolve(credentials) };
  }
  if (settings?.web_identity_token_file && settings.role_arn) {
    return webIdentitySource(env, settings.web_identity_token_file, settings.role_arn);
  }
  if (env.AWS_PROFILE && !settings) {
    throw noCredentials(
      `AWS_PROFILE is ${env.AWS_PROFILE}, but neither ~/.aws/credentials nor ~/.aws/config ` +
        `(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE) has that profile`,
    );
  }
  if (env.AWS_PROFILE && settings) {
    throw noCredentials(
      `the profile ${profile.name} has no aws_access_key_id/aws_secret_access_key (SSO and ` +
        `credential_process profiles are not supported: export the keys, e.g. with ` +
        `\`aws configure export-credentials --format env\`)`,
    );
  }
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE) {
    if (!env.AWS_ROLE_ARN) {
      throw noCredentials("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
    }
    return webIdentitySource(env, env.AWS_WEB_IDENTITY_TOKEN_FILE, env.AWS_ROLE_ARN);
  }
  const container = containerSource(env);
  if (container) return container;
  const imds = instanceMetadataSource(env);
  if (imds) return imds;
  throw noCredentials("none of the standard sources is set and AWS_EC2_METADATA_DISABLED=true");
}

/**
 * Credentials from one source, kept while they are good and fetched again `REFRESH_BEFORE_MS`
 * before they expire. A failed refresh keeps the old ones while they still work.
 */
export class CredentialProvider {
  private current?: AwsCredentials;
  private pending?: Promise<AwsCredentials>;

  constructor(
    readonly source: CredentialSource,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<AwsCredentials> {
    const current = this.current;
    if (current && !this.due(current)) return Promise.resolve(current);
    this.pending ??= this.source.fetch().then((fresh) => {
      this.current = fresh;
      return fresh;
    }).catch((error) => {
      if (current?.expiration && current.expiration.getTime() > this.now()) return current;
      throw error instanceof CliError ? error : new CliError(
        "auth",
        `cannot get AWS credentials from the ${this.source.name}: ${reason(error)}`,
        { cause: error },
      );
    }).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private due(credentials: AwsCredentials): boolean {
    return credentials.expiration !== undefined &&
      credentials.expiration.getTime() - REFRESH_BEFORE_MS <= this.now();
  }
}

/**
 * The credentials of the first source the environment names, refreshed as they expire.
 */
export function credentialProvider(env: Env, now?: () => number): CredentialProvider {
  return new CredentialProvider(credentialSource(env), now);
}
