// A real Ceph RADOS Gateway on loopback for the S3 tests: one monitor, one OSD on the in-memory
// object store (room for a 2 GiB object) and radosgw, started once per test process (memoized)
// and stopped when the process exits. Adapted from /work/shared/servers/ceph-rgw.sh: free ports,
// cephx off with every messenger mode `crc secure` (else radosgw loops on
// `get_initial_auth_request returned -13`).
//
// Needs: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
// Without them `CEPH_MISSING` says why; tests skip then, and fail when CI=true.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createHash } from "node:crypto";
import { EMPTY_SHA256, signRequest, uriEncode } from "../../lib/aws/sigv4.ts";

export const ACCESS_KEY = "AKIACEPHTEST";
export const SECRET_KEY = "cephtestsecret123";
const BINARIES = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool"];
/** The memstore's cap: a 2 GiB object, its multipart parts and the rest fit. */
const MEMSTORE_BYTES = 6 * 1024 ** 3;

/** Why Ceph cannot run here, or undefined when it can. */
export const CEPH_MISSING: string | undefined = (() => {
  const missing = BINARIES.filter((b) =>
    !["/usr/bin", "/usr/sbin", "/bin"].some((d) => existsSync(join(d, b)))
  );
  return missing.length
    ? `Ceph is not installed (missing ${missing.join(", ")}): apt-get install -y ` +
      `--no-install-recommends ceph-mon ceph-osd radosgw`
    : undefined;
})();

/**
 * The `skip` option of a Ceph test: a reason when Ceph is missing outside CI; in CI a missing
 * Ceph is a failure (the test runs and `startCeph` throws the reason).
 */
export const CEPH_SKIP: string | false = CEPH_MISSING && process.env.CI !== "true"
  ? CEPH_MISSING
  : false;

export interface Ceph {
  endpoint: string;
  /** Environment for the CLI: static keys, the endpoint, a region. */
  env: Record<string, string>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

const pids: number[] = [];
let dir: string | undefined;

function stopAll(): void {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}
process.on("exit", stopAll);
globalThis.addEventListener?.("unload", stopAll);

function run(command: string, args: string[], timeoutMs = 60_000): string {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr || result.error}`);
  }
  return result.stdout;
}

function background(command: string, args: string[], log: string): void {
  const child = spawn("sh", ["-c", `exec ${[command, ...args].join(" ")} > ${log} 2>&1`], {
    stdio: "ignore",
    detached: true,
  });
  child.unref();
  pids.push(child.pid!);
}

async function start(): Promise<Ceph> {
  if (CEPH_MISSING) throw new Error(CEPH_MISSING);
  const [monV2, monV1, rgwPort] = [await freePort(), await freePort(), await freePort()];
  const d = dir = mkdtempSync(join(tmpdir(), "oai-ceph-"));
  for (const sub of ["run", "log", "mon", "osd", "rgw"]) mkdirSync(join(d, sub));
  const fsid = crypto.randomUUID();
  const monAddr = `[v2:127.0.0.1:${monV2},v1:127.0.0.1:${monV1}]`;
  const conf = join(d, "ceph.conf");
  writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = ${monAddr}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms client mode = crc secure
ms mon service mode = crc secure
ms mon cluster mode = crc secure
ms service mode = crc secure
ms cluster mode = crc secure
ms bind ipv6 = false
public network = 127.0.0.0/8
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
debug ms = 0/0
debug rgw = 0/0
debug osd = 0/0
debug memstore = 0/0
debug objecter = 0/0
debug rados = 0/0
debug monc = 0/0
debug auth = 0/0
debug mon = 0/0
debug paxos = 0/0
debug objclass = 0/0
debug filestore = 0/0
debug journal = 0/0
rgw enable ops log = false
rgw enable usage log = false
memstore device bytes = ${MEMSTORE_BYTES}
run dir = ${d}/run
admin socket = ${d}/run/$name.asok
pid file = ${d}/run/$name.pid
log file = ${d}/log/$name.log
mon data = ${d}/mon/$cluster-$id
osd data = ${d}/osd/$cluster-$id
keyring = ${d}/keyring
rgw data = ${d}/rgw/$cluster-$id
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
`,
  );
  const c = ["-c", conf];
  run("ceph-authtool", [
    "--create-keyring",
    join(d, "keyring"),
    "--gen-key",
    "-n",
    "mon.",
    "--cap",
    "mon",
    "allow *",
  ]);
  run("monmaptool", ["--create", "--addv", "a", monAddr, "--fsid", fsid, join(d, "monmap")]);
  run("ceph-mon", [
    ...c,
    "--mkfs",
    "-i",
    "a",
    "--monmap",
    join(d, "monmap"),
    "--keyring",
    join(d, "keyring"),
  ]);
  background("ceph-mon", [...c, "-i", "a", "-f"], join(d, "mon.out"));
  const osdUuid = crypto.randomUUID();
  const id = run("timeout", ["30", "ceph", ...c, "osd", "new", osdUuid]).trim();
  mkdirSync(join(d, "osd", `ceph-${id}`), { recursive: true });
  run("ceph-osd", [...c, "-i", id, "--mkfs", "--osd-uuid", osdUuid]);
  background("ceph-osd", [...c, "-i", id, "-f"], join(d, "osd.out"));
  mkdirSync(join(d, "rgw", "ceph-rgw.a"), { recursive: true });
  background("radosgw", [...c, "-n", "client.rgw.a", "-f"], join(d, "rgw.out"));
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const deadline = Date.now() + 90_000;
  while (true) {
    try {
      const answer = await fetch(endpoint + "/");
      await answer.body?.cancel();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`radosgw did not start; see ${d}/rgw.out`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  run("timeout", [
    "60",
    "radosgw-admin",
    ...c,
    "user",
    "create",
    "--uid=tests",
    "--display-name=tests",
    `--access-key=${ACCESS_KEY}`,
    `--secret=${SECRET_KEY}`,
  ]);
  return {
    endpoint,
    env: {
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: "us-east-1",
      AWS_EC2_METADATA_DISABLED: "true",
    },
  };
}

let started: Promise<Ceph> | undefined;

/** Ceph RGW, started on first use in this process (about 12 s) and stopped at exit. */
export function startCeph(): Promise<Ceph> {
  started ??= start();
  return started;
}

/** One signed S3 request to Ceph with the test user's keys (for setting up and reading back). */
export async function s3Request(
  ceph: Ceph,
  method: string,
  path: string,
  options: { query?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<{ status: number; headers: Headers; text: string; bytes: Uint8Array }> {
  const encoded = path.split("/").map((s) => uriEncode(s)).join("/");
  const url = new URL(`${ceph.endpoint}${encoded}${options.query ? "?" + options.query : ""}`);
  const payloadSha256 = options.body
    ? createHash("sha256").update(options.body).digest("hex")
    : EMPTY_SHA256;
  const headers: Array<[string, string]> = [
    ["x-amz-content-sha256", payloadSha256],
    ...Object.entries(options.headers ?? {}),
  ];
  if (options.body) {
    headers.push(["content-md5", createHash("md5").update(options.body).digest("base64")]);
  }
  const signed = signRequest({
    method,
    url,
    headers,
    payloadSha256,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    region: "us-east-1",
    service: "s3",
    now: new Date(),
  });
  const answer = await fetch(url, {
    method,
    headers: signed.headers,
    body: options.body as BodyInit | undefined,
  });
  const bytes = new Uint8Array(await answer.arrayBuffer());
  return {
    status: answer.status,
    headers: answer.headers,
    text: new TextDecoder().decode(bytes),
    bytes,
  };
}

/** Creates a bucket (with Object Lock when asked). */
export async function createBucket(ceph: Ceph, name: string, objectLock = false): Promise<void> {
  const answer = await s3Request(ceph, "PUT", `/${name}`, {
    headers: objectLock ? { "x-amz-bucket-object-lock-enabled": "true" } : {},
  });
  if (answer.status !== 200) {
    throw new Error(`creating bucket ${name}: ${answer.status} ${answer.text}`);
  }
}

/** Every key under `prefix` in `bucket`, with its size. */
export async function listKeys(
  ceph: Ceph,
  bucket: string,
  prefix = "",
): Promise<Array<{ key: string; size: number }>> {
  const out: Array<{ key: string; size: number }> = [];
  let token = "";
  while (true) {
    const query = `list-type=2&prefix=${uriEncode(prefix)}` +
      (token ? `&continuation-token=${uriEncode(token)}` : "");
    const answer = await s3Request(ceph, "GET", `/${bucket}`, { query });
    if (answer.status !== 200) {
      throw new Error(`listing ${bucket}: ${answer.status} ${answer.text}`);
    }
    for (const m of answer.text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
      const key = /<Key>([^<]*)<\/Key>/.exec(m[1])![1].replace(/&amp;/g, "&");
      out.push({ key, size: Number(/<Size>(\d+)<\/Size>/.exec(m[1])![1]) });
    }
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(answer.text);
    if (!/<IsTruncated>true<\/IsTruncated>/.test(answer.text) || !next) return out;
    token = next[1];
  }
}

/** The unfinished multipart uploads under `prefix`. */
export async function listUploads(ceph: Ceph, bucket: string, prefix = ""): Promise<string[]> {
  const answer = await s3Request(ceph, "GET", `/${bucket}`, {
    query: `uploads=&prefix=${uriEncode(prefix)}`,
  });
  if (answer.status !== 200) throw new Error(`listing uploads: ${answer.status} ${answer.text}`);
  return [...answer.text.matchAll(/<Upload>[\s\S]*?<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
}

/** What the fault proxy does with one request. */
export type Fault =
  | "pass"
  /** An S3 error answer (the request is not forwarded). */
  | { status: number; code: string; retryAfter?: string }
  /** Reads part of the request's body, then cuts the connection. */
  | "reset";

export interface SeenRequest {
  method: string;
  url: string;
  /** Date.now() when it arrived. */
  at: number;
  /** Whether it carried a `Content-MD5`. */
  md5: boolean;
}

export interface FaultProxy {
  endpoint: string;
  /** Every request, in arrival order. */
  seen: SeenRequest[];
  /** Decides each request's fate; default: pass everything. */
  fault: (request: SeenRequest, index: number) => Fault;
  /** Awaited before each request's fate is decided (e.g. to change an object just then). */
  before?: (request: SeenRequest) => Promise<void>;
  close(): Promise<void>;
}

/**
 * A reverse proxy in front of Ceph that records requests and injects faults: S3 error answers
 * (500, 503, SlowDown with Retry-After) and connections cut mid-body. The Host header is passed
 * on as sent, so SigV4 signatures (made for the proxy's address) still verify at Ceph.
 */
export async function startFaultProxy(ceph: Ceph): Promise<FaultProxy> {
  const http = await import("node:http");
  const target = new URL(ceph.endpoint);
  const proxy: FaultProxy = {
    endpoint: "",
    seen: [],
    fault: () => "pass",
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer(async (req, res) => {
    const seen = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      at: Date.now(),
      md5: req.headers["content-md5"] !== undefined,
    };
    const index = proxy.seen.push(seen) - 1;
    await proxy.before?.(seen);
    const fault = proxy.fault(seen, index);
    if (fault === "reset") {
      let got = 0;
      req.on("data", (chunk: Uint8Array) => {
        got += chunk.length;
        if (got > 1024) req.socket.destroy();
      });
      req.on("end", () => req.socket.destroy());
      return;
    }
    if (fault !== "pass") {
      req.resume();
      req.on("end", () => {
        res.writeHead(fault.status, {
          "content-type": "application/xml",
          ...(fault.retryAfter ? { "retry-after": fault.retryAfter } : {}),
        });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code>` +
            `<Message>injected</Message></Error>`,
        );
      });
      return;
    }
    const upstream = http.request({
      host: target.hostname,
      port: Number(target.port),
      method: req.method,
      path: req.url,
      headers: req.headers,
    }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return proxy;
}
