/**
 * The HTTP layer sends bodies: any method, bytes or text from memory, or a stream of known length
 * made afresh per request, arriving whole with its Content-Length; and the answers to them are
 * read under the same deadlines and size caps as the API's (a local node:http server each time).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { CliError, TransientError } from "../../lib/errors.ts";
import { openRequest, readJson, readText, request, type StreamedBody } from "../../lib/http.ts";

interface Received {
  method: string;
  headers: IncomingMessage["headers"];
  body: Uint8Array;
}

/** A loopback server recording each request whole, answering with `answer`. */
async function withServer(
  answer: (req: Received, res: ServerResponse) => void,
  fn: (base: URL, received: Received[]) => Promise<void>,
): Promise<void> {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const r = {
        method: req.method ?? "",
        headers: req.headers,
        body: new Uint8Array(Buffer.concat(chunks)),
      };
      received.push(r);
      answer(r, res);
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  try {
    await fn(new URL(`http://127.0.0.1:${port}/upload`), received);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((done) => server.close(done));
  }
}

const echoLength = (req: Received, res: ServerResponse) =>
  res.writeHead(201, { "content-type": "application/json" }).end(
    JSON.stringify({ bytes: req.body.length }),
  );

/** `length` bytes of a repeating pattern. */
function pattern(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + 3) % 251);
}

/** A streamed body of `bytes` in chunks of `chunk`, counting how often it was opened. */
function streamed(bytes: Uint8Array, chunk = 16_384): StreamedBody & { opened: number } {
  const body = {
    length: bytes.length,
    opened: 0,
    open() {
      body.opened++;
      let at = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= bytes.length) return controller.close();
          controller.enqueue(bytes.slice(at, at + chunk));
          at += chunk;
        },
      });
    },
  };
  return body;
}

const OPTIONS = { timeoutMs: 5_000, what: "uploading a test body" };

test("a body from memory arrives whole with its method, headers and length", async () => {
  await withServer(echoLength, async (url, received) => {
    const bytes = pattern(100_000);
    const answer = await request(url, { "content-type": "application/octet-stream", "x-a": "1" }, {
      ...OPTIONS,
      method: "PUT",
      body: bytes,
    });
    assert.equal(answer.status, 201);
    assert.deepEqual(JSON.parse(answer.text), { bytes: 100_000 });
    const text = await request(url, { "content-type": "text/plain" }, {
      ...OPTIONS,
      method: "POST",
      body: "héllo\n",
    });
    assert.equal(text.status, 201);
    const [put, post] = received;
    assert.equal(put.method, "PUT");
    assert.equal(put.headers["x-a"], "1");
    assert.equal(put.headers["content-length"], "100000");
    assert.deepEqual(put.body, bytes);
    assert.equal(post.method, "POST");
    assert.equal(post.headers["content-length"], "7");
    assert.equal(new TextDecoder().decode(post.body), "héllo\n");
  });
});

test("a streamed body arrives whole with its Content-Length, not chunked", async () => {
  await withServer(echoLength, async (url, received) => {
    const bytes = pattern(300_001);
    const body = streamed(bytes);
    for (let i = 0; i < 2; i++) {
      const answer = await request(url, { "content-type": "application/x-ndjson" }, {
        ...OPTIONS,
        method: "PUT",
        body,
      });
      assert.equal(answer.status, 201);
    }
    assert.equal(body.opened, 2, "each request reads a fresh stream");
    for (const r of received) {
      assert.equal(r.method, "PUT");
      assert.equal(r.headers["content-length"], "300001");
      assert.equal(r.headers["transfer-encoding"], undefined);
      assert.equal(r.headers["content-type"], "application/x-ndjson");
      assert.deepEqual(r.body, bytes);
    }
  });
});

test("a streamed body shorter or longer than its length is refused as an io error", async () => {
  await withServer(echoLength, async (url) => {
    const bytes = pattern(10_000);
    for (const length of [9_999, 10_001]) {
      const body = { ...streamed(bytes, 1000), length };
      await assert.rejects(
        openRequest(url, {}, { ...OPTIONS, method: "PUT", body }),
        (error) =>
          error instanceof CliError && !(error instanceof TransientError) &&
          error.kind === "io" && /uploading a test body/.test(error.message),
        `length ${length}`,
      );
    }
  });
});

test("an answer whose headers never come hits the timeout as a retryable failure", async () => {
  await withServer(() => {/* never answers */}, async (url) => {
    const started = Date.now();
    await assert.rejects(
      request(url, {}, { timeoutMs: 300, what: "posting events", method: "POST", body: "x" }),
      (error) =>
        error instanceof TransientError && /timed out after 0.3s .* posting events/.test(
          error.message,
        ),
    );
    assert.ok(Date.now() - started < 4_000);
  });
});

test("an answer that stalls mid-body hits the idle timeout", async () => {
  await withServer((_req, res) => {
    res.writeHead(200, { "content-length": "100" });
    res.write("partial");
  }, async (url) => {
    const opened = await openRequest(url, {}, { ...OPTIONS, method: "POST", body: "{}" });
    await assert.rejects(
      readText(opened, { idleMs: 300, what: "posting events" }),
      (error) => error instanceof TransientError && /stalled: no data for 0.3s/.test(error.message),
    );
  });
});

test("an answer that trickles for ever hits the answer's overall deadline", async () => {
  await withServer((_req, res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write("x"), 40);
    res.on("close", () => clearInterval(timer));
  }, async (url) => {
    const opened = await openRequest(url, {}, { ...OPTIONS, method: "POST", body: "{}" });
    await assert.rejects(
      readText(opened, { idleMs: 200, what: "posting events" }),
      (error) =>
        error instanceof TransientError &&
        /did not finish its answer within 1s/.test(error.message),
    );
  });
});

test("an answer past the size cap is refused, or cut with truncate", async () => {
  await withServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" }).end("x".repeat(10_000));
  }, async (url) => {
    await assert.rejects(
      request(url, {}, { ...OPTIONS, method: "PUT", body: "a", maxBytes: 1024 }),
      (error) => error instanceof CliError && /larger than 1 KiB/.test(error.message),
    );
    const cut = await request(url, {}, {
      ...OPTIONS,
      method: "PUT",
      body: "a",
      maxBytes: 1024,
      truncate: true,
    });
    assert.equal(cut.text.length, 1024);
  });
});

test("a redirect is handed to the caller, not followed with the body", async () => {
  await withServer((_req, res) => {
    res.writeHead(307, { location: "http://127.0.0.1:1/elsewhere" }).end();
  }, async (url, received) => {
    const answer = await request(url, {}, {
      ...OPTIONS,
      method: "PUT",
      body: streamed(pattern(10)),
    });
    assert.equal(answer.status, 307);
    assert.equal(answer.headers.get("location"), "http://127.0.0.1:1/elsewhere");
    assert.equal(received.length, 1);
  });
});

test("readJson parses an answer and names a non-JSON one", async () => {
  let reply = '{"ok":true}';
  await withServer((_req, res) => res.end(reply), async (url) => {
    const opened = await openRequest(url, {}, { ...OPTIONS, method: "POST", body: "[]" });
    assert.deepEqual(await readJson(opened, { idleMs: 5_000, what: "bulk indexing" }), {
      ok: true,
    });
    reply = "<html>";
    const again = await openRequest(url, {}, { ...OPTIONS, method: "POST", body: "[]" });
    await assert.rejects(
      readJson(again, { idleMs: 5_000, what: "bulk indexing" }),
      /while bulk indexing is not JSON/,
    );
  });
});
