/**
 * The multipart copy that keeps an altered S3 object aside when it is larger than one CopyObject
 * copies (`S3Store.copyAside`, lib/destinations/s3.ts), against a small loopback stand-in written
 * from the S3 reference (CreateMultipartUpload, UploadPartCopy with `x-amz-copy-source-range` and
 * `x-amz-copy-source-if-match`, CompleteMultipartUpload, AbortMultipartUpload, HEAD): what Ceph
 * 16 cannot show, because it ignores the copy-source condition (a 412) and never sends an error
 * document in a 200. The single-copy limit is lowered with `OAI_COMPLIANCE_S3_MAX_COPY_BYTES`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage } from "node:http";
import { CliError, TransientError } from "../../lib/errors.ts";
import type { StoredObject } from "../../lib/destinations/_object_store.ts";
import { copyPartBytes, s3Settings, s3Store } from "../../lib/destinations/s3.ts";

const MiB = 1024 ** 2;
const SOURCE = "p/a.jsonl";
const ASIDE = "p/a.jsonl.altered-x";
const SOURCE_ETAG = '"0123456789abcdef0123456789abcdef"';
const SIZE = 11 * MiB + 7;

/** What the stand-in answers to the part copy of a part number (default: its CopyPartResult). */
type PartAnswer = "ok" | "412" | "error-in-200";

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: string;
}

/**
 * A one-bucket S3 stand-in for a multipart copy: the source object exists (HEAD) with
 * `SOURCE_ETAG` and `SIZE`; a completed copy is then HEAD-able at its key with `SIZE` bytes.
 */
async function startStandin(
  parts: Record<number, PartAnswer> = {},
  options: { completeError?: boolean; sourceEtagAfterParts?: string } = {},
) {
  const seen: Seen[] = [];
  const completed = new Set<string>();
  let partsCopied = 0;
  const server = createServer(async (req, res) => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of req) chunks.push(chunk as Uint8Array);
    const url = new URL(req.url ?? "/", "http://standin");
    const path = decodeURIComponent(url.pathname);
    const body = new TextDecoder().decode(Buffer.concat(chunks));
    seen.push({
      method: req.method ?? "",
      path,
      query: url.searchParams,
      headers: req.headers,
      body,
    });
    const xml = (status: number, text: string) => {
      res.writeHead(status, { "content-type": "application/xml" });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>${text}`);
    };
    const key = path.replace(/^\/bucket\//, "");
    if (req.method === "HEAD") {
      const sourceEtag = partsCopied > 0 && options.sourceEtagAfterParts
        ? options.sourceEtagAfterParts
        : SOURCE_ETAG;
      if (key === SOURCE) {
        res.writeHead(200, { "content-length": String(SIZE), etag: sourceEtag });
      } else if (completed.has(key)) {
        res.writeHead(200, { "content-length": String(SIZE), etag: '"fedcba9876543210-3"' });
      } else res.writeHead(404);
      return res.end();
    }
    if (req.method === "POST" && url.searchParams.has("uploads")) {
      return xml(
        200,
        `<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>`,
      );
    }
    if (req.method === "PUT" && url.searchParams.has("partNumber")) {
      const number = Number(url.searchParams.get("partNumber"));
      partsCopied++;
      switch (parts[number] ?? "ok") {
        case "412":
          return xml(
            412,
            "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
          );
        case "error-in-200":
          return xml(
            200,
            "<Error><Code>InternalError</Code><Message>We encountered an internal error</Message></Error>",
          );
      }
      return xml(
        200,
        `<CopyPartResult><LastModified>2026-12-02T10:00:00.000Z</LastModified>` +
          `<ETag>&quot;part${number}&quot;</ETag></CopyPartResult>`,
      );
    }
    if (req.method === "POST" && url.searchParams.has("uploadId")) {
      if (options.completeError) {
        return xml(200, "<Error><Code>InternalError</Code><Message>late</Message></Error>");
      }
      completed.add(key);
      return xml(
        200,
        `<CompleteMultipartUploadResult><Key>${key}</Key><ETag>"fedcba9876543210-3"</ETag></CompleteMultipartUploadResult>`,
      );
    }
    if (req.method === "DELETE" && url.searchParams.has("uploadId")) {
      res.writeHead(204);
      return res.end();
    }
    xml(400, "<Error><Code>NotImplemented</Code></Error>");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const store = s3Store("s3://bucket/p", {
    AWS_ACCESS_KEY_ID: "AKIDTEST",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_EC2_METADATA_DISABLED: "true",
    OAI_COMPLIANCE_S3_MAX_COPY_BYTES: String(MiB),
  });
  return {
    store,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const SEEN: StoredObject = {
  size: SIZE,
  etag: SOURCE_ETAG,
  metadata: { sha256: "ab".repeat(32), size: "1", note: "forged" },
};

test("a multipart copy: created with the altered object's metadata, 5 MiB ranges copied on its ETag, completed with their ETags", async () => {
  const standin = await startStandin();
  try {
    await standin.store.copyAside(SOURCE, ASIDE, SEEN);
    const calls = standin.seen.map((s) => `${s.method} ${s.path}`);
    assert.deepEqual(calls, [
      "POST /bucket/p/a.jsonl.altered-x",
      "PUT /bucket/p/a.jsonl.altered-x",
      "PUT /bucket/p/a.jsonl.altered-x",
      "PUT /bucket/p/a.jsonl.altered-x",
      "HEAD /bucket/p/a.jsonl", // Still what HEAD saw, for a store that ignores the condition.
      "POST /bucket/p/a.jsonl.altered-x",
      "HEAD /bucket/p/a.jsonl.altered-x", // The copy's size.
    ]);
    const [create, ...rest] = standin.seen;
    assert.equal(create.headers["x-amz-meta-note"], "forged");
    assert.equal(create.headers["x-amz-meta-size"], "1");
    assert.equal(create.headers["x-amz-meta-sha256"], "ab".repeat(32));
    const copies = rest.slice(0, 3);
    assert.deepEqual(copies.map((c) => c.headers["x-amz-copy-source-range"]), [
      `bytes=0-${5 * MiB - 1}`,
      `bytes=${5 * MiB}-${10 * MiB - 1}`,
      `bytes=${10 * MiB}-${SIZE - 1}`,
    ]);
    for (const [i, copy] of copies.entries()) {
      assert.equal(copy.query.get("partNumber"), String(i + 1));
      assert.equal(copy.query.get("uploadId"), "up-1");
      assert.equal(copy.headers["x-amz-copy-source"], "/bucket/p/a.jsonl");
      assert.equal(copy.headers["x-amz-copy-source-if-match"], SOURCE_ETAG.replace(/"/g, ""));
    }
    const complete = standin.seen[5];
    assert.equal(complete.query.get("uploadId"), "up-1");
    assert.equal(
      complete.body,
      "<CompleteMultipartUpload>" +
        [1, 2, 3].map((n) =>
          `<Part><PartNumber>${n}</PartNumber><ETag>&quot;part${n}&quot;</ETag></Part>`
        ).join("") + "</CompleteMultipartUpload>",
    );
  } finally {
    await standin.close();
  }
});

test("a 412 on a part's copy-source ETag is the state error; the upload is aborted, nothing completed", async () => {
  const standin = await startStandin({ 2: "412" });
  try {
    await assert.rejects(standin.store.copyAside(SOURCE, ASIDE, SEEN), (error) => {
      assert.ok(error instanceof CliError && !(error instanceof TransientError), String(error));
      assert.equal(error.kind, "state");
      assert.match(error.message, /changed again while it was being kept aside \(412/);
      assert.match(error.message, /nothing was written over it/);
      return true;
    });
    const calls = standin.seen.map((s) => `${s.method} ${s.query.has("uploadId") ? "upload" : ""}`);
    assert.deepEqual(calls, ["POST ", "PUT upload", "PUT upload", "DELETE upload"]);
  } finally {
    await standin.close();
  }
});

test("a part copy answered 200 with an <Error> document is a retryable failure; the upload is aborted", async () => {
  const standin = await startStandin({ 1: "error-in-200" });
  try {
    await assert.rejects(standin.store.copyAside(SOURCE, ASIDE, SEEN), (error) => {
      assert.ok(error instanceof TransientError, String(error));
      assert.match(error.message, /part 1, bytes 0 to \d+\) failed: InternalError/);
      return true;
    });
    assert.deepEqual(standin.seen.map((s) => s.method), ["POST", "PUT", "DELETE"]);
  } finally {
    await standin.close();
  }
});

test("a completion answered 200 with an <Error> document is a retryable failure; the upload is aborted", async () => {
  const standin = await startStandin({}, { completeError: true });
  try {
    await assert.rejects(
      standin.store.copyAside(SOURCE, ASIDE, SEEN),
      (error) => error instanceof TransientError && /InternalError/.test(error.message),
    );
    assert.equal(standin.seen.at(-1)?.method, "DELETE");
    assert.ok(!standin.seen.some((s) => s.method === "HEAD" && s.path.endsWith(ASIDE)));
  } finally {
    await standin.close();
  }
});

test("a source whose ETag changed while its parts were copied (a store that ignores the condition) is the state error, aborted before completion", async () => {
  const standin = await startStandin({}, {
    sourceEtagAfterParts: '"99999999999999999999999999999999"',
  });
  try {
    await assert.rejects(
      standin.store.copyAside(SOURCE, ASIDE, SEEN),
      (error) =>
        error instanceof CliError && error.kind === "state" &&
        /changed again while it was being kept aside \(its ETag is now/.test(error.message),
    );
    assert.ok(!standin.seen.some((s) => s.method === "POST" && s.query.has("uploadId")));
    assert.equal(standin.seen.at(-1)?.method, "DELETE");
  } finally {
    await standin.close();
  }
});

test("copy part sizes: 512 MiB, at most the single-copy limit but never under 5 MiB, larger past 10,000 parts", () => {
  assert.equal(copyPartBytes(6 * 1024 ** 3), 512 * MiB);
  assert.equal(copyPartBytes(11 * MiB, MiB), 5 * MiB);
  assert.equal(copyPartBytes(100 * MiB, 20 * MiB), 20 * MiB);
  const fiveTiB = 5 * 1024 ** 4;
  const part = copyPartBytes(fiveTiB);
  assert.ok(Math.ceil(fiveTiB / part) <= 10_000 && part > 512 * MiB && part <= 5 * 1024 ** 3);
  assert.equal(part % MiB, 0);
});

test("OAI_COMPLIANCE_S3_MAX_COPY_BYTES sets the single-copy limit; 5 GiB by default", () => {
  const env = { AWS_ACCESS_KEY_ID: "AKIDTEST", AWS_SECRET_ACCESS_KEY: "secret" };
  assert.equal(s3Settings(env).maxCopyBytes, 5 * 1024 ** 3);
  assert.equal(
    s3Settings({ ...env, OAI_COMPLIANCE_S3_MAX_COPY_BYTES: "1048576" }).maxCopyBytes,
    MiB,
  );
  assert.equal(
    s3Settings({ ...env, OAI_COMPLIANCE_S3_MAX_COPY_BYTES: "x" }).maxCopyBytes,
    5 * 1024 ** 3,
  );
});
