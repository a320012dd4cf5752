/**
 * A real rsyslogd for the syslog tests (Debian's `rsyslog`, `rsyslog-openssl`, `rsyslog-relp`):
 * started once per test process in the foreground on loopback, on free ports, with a plain TCP
 * input, a TLS input (RFC 5425, anonymous clients), a TLS input that requires a client
 * certificate (mutual TLS) and a RELP input. Every message is written as one JSON line (APP-NAME,
 * MSGID, PROCID, HOSTNAME, facility, severity, TIMESTAMP, MSG) to a file per input and facility,
 * so tests running side by side each use their own facility. Stopped when the process exits.
 *
 * When rsyslogd is not installed, `rsyslogSkip()` gives the reason to skip, and with `CI=true`
 * the tests fail with a message naming the install line instead.
 *
 * @example
 * ```ts
 * const rsyslog = await startRsyslog();
 * // run the CLI with -o syslog+tcp://127.0.0.1:${rsyslog.ports.tcp} --syslog-facility 3
 * const messages = await rsyslog.waitFor("tcp", 3, 10);
 * ```
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

export const RSYSLOG_INSTALL =
  "apt-get install -y --no-install-recommends rsyslog rsyslog-openssl rsyslog-relp";

/** The server's largest message (rsyslog's global maxMessageSize). */
export const RSYSLOG_MAX_MESSAGE = 1024 * 1024;

export type RsyslogInput = "tcp" | "tls" | "mtls" | "relp";

/** One message as rsyslog parsed it. */
export interface ReceivedMessage {
  app: string;
  msgid: string;
  procid: string;
  hostname: string;
  facility: string;
  severity: string;
  timestamp: string;
  msg: string;
}

export interface Rsyslog {
  ports: Record<RsyslogInput, number>;
  dir: string;
  /** PEM files: the CA the server's certificate is signed by, and a client certificate and key. */
  caFile: string;
  clientCert: string;
  clientKey: string;
  /** Every message `input` received with `facility` so far. */
  messages(input: RsyslogInput, facility: number): ReceivedMessage[];
  /** Waits (bounded) until `input` holds at least `count` messages of `facility`. */
  waitFor(
    input: RsyslogInput,
    facility: number,
    count: number,
    timeoutMs?: number,
  ): Promise<ReceivedMessage[]>;
  /** Waits a moment more and returns what arrived, to see that nothing else comes. */
  settle(input: RsyslogInput, facility: number, ms?: number): Promise<ReceivedMessage[]>;
}

function rsyslogdPath(): string | undefined {
  for (const path of ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]) if (existsSync(path)) return path;
  const found = spawnSync("rsyslogd", ["-v"], { stdio: "ignore" });
  return !found.error && found.status === 0 ? "rsyslogd" : undefined;
}

/** Why the rsyslog tests cannot run here, or undefined when they can. Throws on CI without it. */
export function rsyslogSkip(): string | undefined {
  const path = rsyslogdPath();
  const relp = existsSync("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so") ||
    existsSync("/usr/lib/aarch64-linux-gnu/rsyslog/imrelp.so") ||
    existsSync("/usr/lib/rsyslog/imrelp.so");
  if (path && relp) return undefined;
  const why = `rsyslogd with imrelp is not installed (${RSYSLOG_INSTALL})`;
  if (process.env.CI === "true") throw new Error(`syslog (rsyslog) tests cannot run on CI: ${why}`);
  return why;
}

let started: Promise<Rsyslog> | undefined;

/** rsyslogd for this process: started by the first call, the same one afterwards. */
export function startRsyslog(): Promise<Rsyslog> {
  started ??= launch();
  return started;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/** A CA, a server certificate for 127.0.0.1 and localhost, and client certificates. */
function makeCertificates(dir: string): void {
  const ca = (name: string) => {
    openssl(dir, [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    ]);
  };
  const signed = (name: string, by: string, cn: string, ext: string) => {
    openssl(dir, [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${by}.pem`,
      "-CAkey",
      `${by}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ]);
  };
  ca("ca");
  signed("server", "ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  signed("client", "ca", "oai-client", "extendedKeyUsage=clientAuth\n");
}

function config(dir: string, ports: Record<RsyslogInput, number>): string {
  const tls = (name: string, port: number, authMode: string) =>
    `input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="${name}" ` +
    `streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="${authMode}" ` +
    `streamDriver.CAFile="${dir}/ca.pem" streamDriver.CertFile="${dir}/server.pem" ` +
    `streamDriver.KeyFile="${dir}/server.key")`;
  const ruleset = (name: string) =>
    `template(name="file_${name}" type="string" string="${dir}/${name}-%syslogfacility%.jsonl")\n` +
    `ruleset(name="${name}") { action(type="omfile" dynaFile="file_${name}" template="json") }`;
  return [
    // Control characters are kept as sent: the test checks every byte.
    `global(workDirectory="${dir}/work" maxMessageSize="${RSYSLOG_MAX_MESSAGE}" ` +
    `parser.escapeControlCharactersOnReceive="off")`,
    `module(load="imtcp" MaxSessions="200")`,
    `module(load="imrelp")`,
    `template(name="json" type="list" option.jsonf="on") {`,
    `  property(outname="app" name="app-name" format="jsonf")`,
    `  property(outname="msgid" name="msgid" format="jsonf")`,
    `  property(outname="procid" name="procid" format="jsonf")`,
    `  property(outname="hostname" name="hostname" format="jsonf")`,
    `  property(outname="facility" name="syslogfacility" format="jsonf")`,
    `  property(outname="severity" name="syslogseverity" format="jsonf")`,
    `  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")`,
    `  property(outname="msg" name="msg" format="jsonf")`,
    `}`,
    ruleset("tcp"),
    ruleset("tls"),
    ruleset("mtls"),
    ruleset("relp"),
    `input(type="imtcp" port="${ports.tcp}" address="127.0.0.1" ruleset="tcp")`,
    tls("tls", ports.tls, "anon"),
    tls("mtls", ports.mtls, "x509/certvalid"),
    `input(type="imrelp" port="${ports.relp}" address="127.0.0.1" ruleset="relp")`,
    "",
  ].join("\n");
}

async function launch(): Promise<Rsyslog> {
  const path = rsyslogdPath();
  if (!path) throw new Error(`rsyslogd is not installed (${RSYSLOG_INSTALL})`);
  const dir = mkdtempSync(join(tmpdir(), "oai-rsyslog-"));
  execFileSync("mkdir", ["-p", join(dir, "work")]);
  makeCertificates(dir);
  const ports = {
    tcp: await freePort(),
    tls: await freePort(),
    mtls: await freePort(),
    relp: await freePort(),
  };
  writeFileSync(join(dir, "rsyslog.conf"), config(dir, ports));
  // A watchdog shell runs rsyslogd and kills it (and removes its directory) once this process
  // is gone: exit hooks do not run everywhere (Deno's test runner), and an orphaned rsyslogd
  // would outlive the tests.
  const watchdog =
    `"$0" -n -f "$1" -i "$2" & r=$!; trap 'kill -9 $r; rm -rf "$3"' EXIT INT TERM; ` +
    `while kill -0 ${process.pid} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done`;
  const child: ChildProcess = spawn(
    "sh",
    ["-c", watchdog, path, join(dir, "rsyslog.conf"), join(dir, "rsyslog.pid"), dir],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk) => stderr += String(chunk));
  const stop = () => {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", stop);
  globalThis.addEventListener?.("unload", stop);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`rsyslogd exited with ${child.exitCode}: ${stderr}`);
    }
    const up = await Promise.all(Object.values(ports).map(accepts));
    if (up.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error(`rsyslogd did not listen within 20s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.unref();
  (child.stderr as unknown as { unref?: () => void })?.unref?.();
  const messages = (input: RsyslogInput, facility: number): ReceivedMessage[] => {
    const file = join(dir, `${input}-${facility}.jsonl`);
    if (!existsSync(file)) return [];
    const text = readFileSync(file, "utf8");
    // A line still being written is read on the next poll.
    const lines = text.split("\n");
    lines.pop();
    return lines.map((line) => JSON.parse(line));
  };
  return {
    ports,
    dir,
    caFile: join(dir, "ca.pem"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client.key"),
    messages,
    async waitFor(input, facility, count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = messages(input, facility);
        if (got.length >= count || Date.now() > deadline) return got;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async settle(input, facility, ms = 1_000) {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return messages(input, facility);
    },
  };
}
