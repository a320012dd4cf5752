/**
 * TEST-ONLY forward proxy on 127.0.0.1: tunnels `CONNECT host:port` (what HTTPS through
 * `HTTPS_PROXY` uses) and records every target it was asked for. Names are resolved through
 * `hosts` (so a test can use names such as `api.compliance.test` that only the proxy knows: a
 * client that bypassed the proxy could not reach them at all). Plain-HTTP proxy requests
 * (`GET http://...`) are recorded and refused.
 *
 * @example
 * const proxy = await startConnectProxy({ hosts: { "api.compliance.test": "127.0.0.1" } });
 * // HTTPS_PROXY=proxy.url ... then:
 * assert.deepEqual(proxy.connects, ["api.compliance.test:443"]);
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>` (add credentials yourself for an authenticating proxy). */
  url: string;
  port: number;
  /** `host:port` of every CONNECT, in arrival order, including refused ones. */
  connects: string[];
  /** Request lines of plain (non-CONNECT) proxy requests, all refused. */
  plain: string[];
  /** Proxy-Authorization values received (raw). */
  authorizations: string[];
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** Name -> address the proxy connects to; names not listed are used as they are. */
  hosts?: Record<string, string>;
  /** When set, CONNECTs without these Basic credentials get 407. */
  credentials?: { user: string; password: string };
}

/** Starts the proxy on an ephemeral loopback port. */
export function startConnectProxy(options: ProxyOptions = {}): Promise<ConnectProxy> {
  const connects: string[] = [];
  const plain: string[] = [];
  const authorizations: string[] = [];
  const sockets = new Set<Socket>();
  const expected = options.credentials &&
    `Basic ${btoa(`${options.credentials.user}:${options.credentials.password}`)}`;

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > 64 * 1024) client.destroy();
        return;
      }
      client.off("data", onData);
      const lines = head.subarray(0, end).toString("latin1").split("\r\n");
      const rest = head.subarray(end + 4);
      const [method, target] = lines[0].split(" ");
      const auth = lines.find((l) => /^proxy-authorization:/i.test(l))?.replace(/^[^:]*:\s*/, "");
      if (auth !== undefined) authorizations.push(auth);
      if (method !== "CONNECT") {
        plain.push(lines[0]);
        client.end("HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
        return;
      }
      connects.push(target);
      if (expected && auth !== expected) {
        client.end(
          "HTTP/1.1 407 Proxy Authentication Required\r\n" +
            'proxy-authenticate: Basic realm="test"\r\ncontent-length: 0\r\n\r\n',
        );
        return;
      }
      const split = target.lastIndexOf(":");
      const host = target.slice(0, split).replace(/^\[|\]$/g, "");
      const port = Number(target.slice(split + 1));
      const upstream = connect({ host: options.hosts?.[host] ?? host, port });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.once("connect", () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      upstream.on("error", () => {
        if (client.writable) client.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    };
    client.on("data", onData);
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        connects,
        plain,
        authorizations,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}
