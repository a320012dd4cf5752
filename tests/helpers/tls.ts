/**
 * TEST-ONLY TLS: a throwaway certificate authority and a server certificate made with the
 * `openssl` CLI at test time, and an HTTPS front that terminates TLS and forwards to a plain HTTP
 * origin (the emulator), recording what reached it. Nothing here is trusted by anything but the
 * process a test points at it.
 *
 * @example
 * if (whyNoPki()) skip(whyNoPki());
 * const pki = makeTestPki(dir, ["api.compliance.test", "localhost"]);
 * const front = await startHttpsFront({ target: emu.apiBase, pki });
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { request as httpRequest } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import process from "node:process";

export interface TestPki {
  /** PEM of the throwaway CA (what NODE_EXTRA_CA_CERTS / DENO_CERT should name). */
  caPath: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Why tests needing TLS cannot run here (no openssl CLI), or undefined when they can. */
export function whyNoPki(): string | undefined {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return undefined;
  } catch {
    return "the openssl CLI is not installed";
  }
}

/**
 * Creates, in `dir`, a CA and a server certificate for `names` (DNS names; `127.0.0.1` and
 * `::1` become IP entries), valid for a day. Needs the `openssl` CLI.
 */
export function makeTestPki(dir: string, names: string[]): TestPki {
  const run = (args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
  writeFileSync(
    join(dir, "server.ext"),
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n` +
      `extendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  try {
    run([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=oai-compliance-logs TEST-ONLY CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      `/CN=${names[0]}`,
    ]);
    run([
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.pem",
      "-days",
      "1",
      "-extfile",
      "server.ext",
    ]);
  } catch (error) {
    const stderr = String((error as { stderr?: Uint8Array }).stderr ?? error);
    throw new Error(`openssl failed making the test PKI: ${stderr}`);
  }
  return {
    caPath: join(dir, "ca.pem"),
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    certPem: readFileSync(join(dir, "server.pem"), "utf8"),
    keyPem: readFileSync(join(dir, "server.key"), "utf8"),
  };
}

/** True where a missing tool must fail the suite rather than skip (CI). */
export const STRICT = process.env.CI === "true";

export interface FrontRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  /** The SNI name the client asked for. */
  servername: string | undefined;
}

export interface HttpsFront {
  /** `https://<host>:<port>` */
  origin: string;
  port: number;
  requests: FrontRequest[];
  close(): Promise<void>;
}

/**
 * An HTTPS server on 127.0.0.1 forwarding every request to the plain HTTP `target` origin.
 * `host` is the name the origin is reached by (default `localhost`); `rewriteLocation` maps
 * redirect targets (e.g. the emulator's plain storage origin to another front).
 */
export function startHttpsFront(options: {
  target: string;
  pki: TestPki;
  host?: string;
  rewriteLocation?: (location: string) => string;
}): Promise<HttpsFront> {
  const target = new URL(options.target);
  const requests: FrontRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    { cert: options.pki.certPem, key: options.pki.keyPem },
    (req, res) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
      }
      requests.push({
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers,
        // deno-lint-ignore no-explicit-any
        servername: (req.socket as any).servername || undefined,
      });
      const forward = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
        },
        (upstream) => {
          const out = { ...upstream.headers };
          if (typeof out.location === "string" && options.rewriteLocation) {
            out.location = options.rewriteLocation(out.location);
          }
          res.writeHead(upstream.statusCode ?? 502, out);
          upstream.pipe(res);
          upstream.on("error", () => res.destroy());
        },
      );
      forward.on("error", () => {
        if (!res.headersSent) res.writeHead(502).end("front: upstream failed");
        else res.destroy();
      });
      req.pipe(forward);
    },
  );
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // A client that refuses our certificate closes the connection: not an error of the front.
  server.on("tlsClientError", () => {});
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        origin: `https://${options.host ?? "localhost"}:${port}`,
        port,
        requests,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}
