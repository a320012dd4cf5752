/**
 * The emulator's own contract: what the CLI tests rely on. Runs under `deno test` and `bun test`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Agent, get as httpGet, type IncomingMessage } from "node:http";
import { test } from "node:test";
import {
  demoDataset,
  type Emulator,
  type EmulatorOptions,
  type FileSpec,
  generateDataset,
  GONE_DETAIL,
  PortInUseError,
  REFERENCE_DOWNLOAD_LIMIT,
  startEmulator,
} from "./mod.ts";

const WS = "ws-0f0e0d0c-demo";
const ORG = "org-demoorg123";
const MICROS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** Runs `body` against a fresh emulator and always closes it. */
async function withEmulator(
  options: EmulatorOptions,
  body: (emu: Emulator) => Promise<void>,
): Promise<void> {
  const emu = await startEmulator(options);
  try {
    await body(emu);
  } finally {
    await emu.close();
  }
}

function auth(emu: Emulator): Record<string, string> {
  return { authorization: `Bearer ${emu.key}` };
}

function listUrl(emu: Emulator, params: Record<string, string>, principal = WS): string {
  const scope = principal.startsWith("org-") ? "organizations" : "workspaces";
  return `${emu.apiBase}/${scope}/${principal}/logs?${new URLSearchParams(params)}`;
}

interface ListBody {
  data: {
    id: string;
    event_type: string;
    end_time: string;
    file_name: string;
    file_size?: number;
    file_sha256?: string;
  }[];
  has_more: boolean;
  last_end_time: string | null;
}

async function listPage(
  emu: Emulator,
  params: Record<string, string>,
  principal = WS,
): Promise<ListBody> {
  const res = await fetch(listUrl(emu, { limit: "100", ...params }, principal), {
    headers: auth(emu),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return await res.json();
}

/** Every file id of one event type, following `last_end_time` page by page. */
async function listAll(emu: Emulator, eventType: string, limit = 100): Promise<string[]> {
  const ids: string[] = [];
  let after = "2000-01-01T00:00:00Z";
  for (let pages = 0; pages < 1000; pages++) {
    const page = await listPage(emu, { event_type: eventType, after, limit: String(limit) });
    ids.push(...page.data.map((d) => d.id));
    if (!page.has_more) return ids;
    after = page.last_end_time!;
  }
  throw new Error("pagination did not end");
}

/** The signed storage URL the API redirects to for `id`. */
async function signedUrl(emu: Emulator, id: string, principal = WS): Promise<string> {
  const res = await fetch(`${emu.apiBase}/workspaces/${principal}/logs/${id}`, {
    headers: auth(emu),
    redirect: "manual",
  });
  await res.body?.cancel();
  assert.equal(res.status, 307);
  return res.headers.get("location")!;
}

async function download(emu: Emulator, id: string, headers: Record<string, string> = {}) {
  const res = await fetch(await signedUrl(emu, id), { headers });
  return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const oneFile = (extra: Partial<FileSpec> = {}): FileSpec => ({
  eventType: "AUTH_LOG",
  endTime: "2026-07-09T13:00:00Z",
  ...extra,
});

type Outcome = "ended" | "error" | "stalled";

/**
 * GETs with node:http (fetch in Bun drops bytes already received when the connection resets) and
 * reads until the body ends, errors, or `quietMs` pass with nothing new.
 */
function rawGet(
  url: string,
  quietMs: number,
): Promise<{ status: number; bytes: number; outcome: Outcome }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false }, (res) => {
      let bytes = 0;
      let outcome: Outcome = "error";
      let timer = setTimeout(stall, quietMs);
      function stall() {
        outcome = "stalled";
        req.destroy();
      }
      res.on("data", (chunk: Uint8Array) => {
        bytes += chunk.length;
        clearTimeout(timer);
        timer = setTimeout(stall, quietMs);
      });
      res.on("error", () => {});
      res.on("end", () => (outcome = "ended"));
      res.on("close", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, bytes, outcome });
      });
    });
    req.on("error", reject);
  });
}

// --- authentication, validation, scope ---

test("rejects a missing or wrong Bearer key with 401 and an OpenAI-style error", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_auth" })] }, async (emu) => {
    const url = listUrl(emu, { limit: "10", event_type: "AUTH_LOG", after: "2026-01-01" });
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer nope" },
      { authorization: emu.key },
    ];
    for (const headers of attempts) {
      const res = await fetch(url, { headers });
      assert.equal(res.status, 401);
      const body = await res.json();
      assert.equal(body.error.type, "invalid_request_error");
      assert.equal(body.error.code, "invalid_api_key");
      assert.equal(typeof body.error.message, "string");
    }
    const res = await fetch(`${emu.apiBase}/workspaces/${WS}/logs/eclf_auth`, {
      redirect: "manual",
    });
    await res.body?.cancel();
    assert.equal(res.status, 401);
  });
});

test("rejects limit outside 1..100 or not an integer with 422 and a FastAPI detail array", async () => {
  await withEmulator({}, async (emu) => {
    for (
      const [limit, type] of [
        ["0", "greater_than_equal"],
        ["101", "less_than_equal"],
        ["ten", "int_parsing"],
        ["1.5", "int_parsing"],
      ]
    ) {
      const res = await fetch(
        listUrl(emu, { limit, event_type: "AUTH_LOG", after: "2026-01-01" }),
        {
          headers: auth(emu),
        },
      );
      assert.equal(res.status, 422);
      const body = await res.json();
      assert.deepEqual(body.detail.map((d: { type: string }) => d.type), [type]);
      assert.deepEqual(body.detail[0].loc, ["query", "limit"]);
    }
    for (const limit of ["1", "100"]) {
      const page = await listPage(emu, { limit, event_type: "AUTH_LOG", after: "2026-01-01" });
      assert.deepEqual(page.data, []);
    }
  });
});

test("requires event_type and a parsable after, reporting every problem at once (422)", async () => {
  await withEmulator({}, async (emu) => {
    const res = await fetch(`${emu.apiBase}/workspaces/${WS}/logs?limit=500`, {
      headers: auth(emu),
    });
    assert.equal(res.status, 422);
    const { detail } = await res.json();
    assert.deepEqual(detail.map((d: { loc: string[] }) => d.loc[1]), [
      "limit",
      "event_type",
      "after",
    ]);
    for (const after of ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30"]) {
      const bad = await fetch(listUrl(emu, { limit: "5", event_type: "AUTH_LOG", after }), {
        headers: auth(emu),
      });
      assert.equal(bad.status, 422, after);
      assert.deepEqual((await bad.json()).detail[0].loc, ["query", "after"]);
    }
    const badBefore = await fetch(
      listUrl(emu, { limit: "5", event_type: "AUTH_LOG", after: "2026-01-01", before: "soon" }),
      { headers: auth(emu) },
    );
    assert.equal(badBefore.status, 422);
    await badBefore.body?.cancel();
  });
});

test("serves org- principals only under organizations and others only under workspaces", async () => {
  const files = [
    oneFile({ eventType: "APP_LOG" }),
    oneFile({ eventType: "APP_LOG", principal: ORG, endTime: "2026-07-09T14:00:00Z" }),
  ];
  await withEmulator({ files }, async (emu) => {
    const q = "?limit=10&event_type=APP_LOG&after=2026-01-01T00:00:00Z";
    const cases: [string, number][] = [
      [`/workspaces/${WS}/logs${q}`, 200],
      [`/organizations/${ORG}/logs${q}`, 200],
      [`/organizations/${WS}/logs${q}`, 404],
      [`/workspaces/${ORG}/logs${q}`, 404],
      [`/workspaces/ws-unknown/logs${q}`, 404],
      [`/projects/${WS}/logs${q}`, 404],
    ];
    for (const [path, status] of cases) {
      const res = await fetch(emu.apiBase + path, { headers: auth(emu) });
      assert.equal(res.status, status, path);
      const body = await res.json();
      if (status === 200) assert.equal(body.data.length, 1);
    }
    // A file is downloadable only through its own principal.
    const orgFile = emu.files[1].id;
    const res = await fetch(`${emu.apiBase}/workspaces/${WS}/logs/${orgFile}`, {
      headers: auth(emu),
      redirect: "manual",
    });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });
});

// --- listing ---

test("pages ascending by end time with has_more and last_end_time carrying microseconds", async () => {
  const files = generateDataset({ count: 250, start: "2026-07-01T00:00:00Z", size: 300 });
  await withEmulator({ files }, async (emu) => {
    const first = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-06-01T00:00:00Z" });
    assert.equal(first.data.length, 100);
    assert.equal(first.has_more, true);
    assert.match(first.last_end_time!, MICROS_UTC);
    assert.equal(first.last_end_time, first.data[99].end_time.replace("Z", ".000000Z"));
    const ends = first.data.map((d) => d.end_time);
    assert.deepEqual([...ends].sort(), ends);
    const ids = await listAll(emu, "AUTH_LOG");
    assert.deepEqual(ids, files.map((f) => f.id));
    const last = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-11T08:30:00Z" });
    assert.equal(last.data.length, 1);
    assert.equal(last.has_more, false);
  });
});

test("answers an empty page with has_more false and last_end_time null", async () => {
  await withEmulator({ files: [oneFile()] }, async (emu) => {
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-09T13:00:00Z" });
    assert.deepEqual(page, { data: [], has_more: false, last_end_time: null });
    const other = await listPage(emu, { event_type: "AUDIT_LOG", after: "2026-01-01" });
    assert.deepEqual(other.data, []);
  });
});

test("filters strictly after `after` and strictly before `before`, any ISO offset", async () => {
  const files = generateDataset({ count: 10, start: "2026-07-09T00:00:00Z" });
  await withEmulator({ files }, async (emu) => {
    const page = await listPage(emu, {
      event_type: "AUTH_LOG",
      after: "2026-07-09T02:00:00Z",
      before: "2026-07-09T05:00:00Z",
    });
    assert.deepEqual(page.data.map((d) => d.end_time), [
      "2026-07-09T03:00:00Z",
      "2026-07-09T04:00:00Z",
    ]);
    const offset = await listPage(emu, {
      event_type: "AUTH_LOG",
      after: "2026-07-09T04:00:00+02:00",
      limit: "1",
    });
    assert.equal(offset.data[0].end_time, "2026-07-09T03:00:00Z");
    const micros = await listPage(emu, {
      event_type: "AUTH_LOG",
      after: "2026-07-09T08:59:59.999999Z",
    });
    assert.deepEqual(micros.data.map((d) => d.end_time), ["2026-07-09T09:00:00Z"]);
  });
});

test("inclusiveAfter returns the boundary file again", async () => {
  const files = generateDataset({ count: 3, start: "2026-07-09T00:00:00Z" });
  await withEmulator({ files, inclusiveAfter: true }, async (emu) => {
    const first = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01", limit: "2" });
    assert.equal(first.has_more, true);
    const second = await listPage(emu, { event_type: "AUTH_LOG", after: first.last_end_time! });
    assert.equal(second.data[0].id, first.data[1].id);
    assert.equal(second.data.length, 2);
  });
});

test("pageMaxPlusMicros puts last_end_time just past the last item, below the next file", async () => {
  const files = generateDataset({ count: 5, start: "2026-07-09T00:00:00Z", stepMinutes: 1 });
  await withEmulator({ files, lastEndTimeMode: "pageMaxPlusMicros" }, async (emu) => {
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01", limit: "2" });
    assert.match(page.last_end_time!, MICROS_UTC);
    const cursor = Date.parse(page.last_end_time!);
    const lastItem = Date.parse(page.data[1].end_time);
    assert.ok(page.last_end_time! > page.data[1].end_time.replace("Z", ".000000Z"));
    assert.ok(cursor - lastItem < 1000);
    assert.equal((await listAll(emu, "AUTH_LOG", 2)).length, 5);
  });
});

test("lists each file with file_name, and file_size and file_sha256 of the exact served bytes", async () => {
  const files = [
    oneFile({ size: 5000 }),
    oneFile({ endTime: "2026-07-09T14:00:00Z", size: 0 }),
    oneFile({ endTime: "2026-07-09T15:00:00.250000Z", content: '{"city":"São Paulo"}\n' }),
  ];
  await withEmulator({ files }, async (emu) => {
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01" });
    assert.equal(page.data.length, 3);
    assert.equal(page.data[0].file_name, "AUTH_LOG_2026-07-09T13:00:00+00:00.jsonl");
    assert.equal(page.data[2].file_name, "AUTH_LOG_2026-07-09T15:00:00.250000+00:00.jsonl");
    assert.equal(page.data[2].end_time, "2026-07-09T15:00:00.250000Z");
    for (const item of page.data) {
      const { res, bytes } = await download(emu, item.id);
      assert.equal(res.status, 200);
      assert.equal(item.file_size, bytes.length);
      assert.equal(item.file_sha256, sha256(bytes));
      assert.equal(await emu.sha256Of(item.id), sha256(bytes));
      assert.deepEqual(await emu.contentOf(item.id), bytes);
      assert.equal(emu.files.find((f) => f.id === item.id)!.size, bytes.length);
    }
    assert.equal(page.data[2].file_size, 22); // "ã" is two bytes
  });
});

test("advertise overrides or omits file_size and file_sha256 in the listing only", async () => {
  const files = [
    oneFile({ advertise: { fileSize: 7, fileSha256: "0".repeat(64) } }),
    oneFile({ endTime: "2026-07-09T14:00:00Z", advertise: { fileSize: null, fileSha256: null } }),
  ];
  await withEmulator({ files }, async (emu) => {
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01" });
    assert.equal(page.data[0].file_size, 7);
    assert.equal(page.data[0].file_sha256, "0".repeat(64));
    assert.ok(!("file_size" in page.data[1]));
    assert.ok(!("file_sha256" in page.data[1]));
    const { bytes } = await download(emu, page.data[0].id);
    assert.equal(bytes.length, emu.files[0].size);
    assert.ok(bytes.length > 7);
  });
});

test("addFiles after start shows up in the listing; a duplicate id is refused", async () => {
  await withEmulator({}, async (emu) => {
    emu.addFiles([oneFile({ id: "eclf_added" })]);
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01" });
    assert.deepEqual(page.data.map((d) => d.id), ["eclf_added"]);
    assert.throws(() => emu.addFiles([oneFile({ id: "eclf_added" })]), /duplicate/);
    assert.equal(emu.files.length, 1);
  });
});

// --- download redirect and storage ---

test("download answers 307 to a signed URL on another origin that never needs the key", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_one" })] }, async (emu) => {
    const location = new URL(await signedUrl(emu, "eclf_one"));
    assert.equal(location.origin, emu.storageOrigin);
    assert.notEqual(location.origin, new URL(emu.apiBase).origin);
    assert.equal(location.pathname, "/files/eclf_one");
    assert.match(location.searchParams.get("sig")!, /^[0-9a-f]{64}$/);
    assert.ok(Number(location.searchParams.get("expires")) > Date.now());
    const res = await fetch(location);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/jsonl");
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.equal(Number(res.headers.get("content-length")), emu.files[0].size);
    await res.arrayBuffer();
    const missing = await fetch(`${emu.apiBase}/workspaces/${WS}/logs/eclf_nope`, {
      headers: auth(emu),
      redirect: "manual",
    });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, "not_found");
  });
});

test("storage answers 206 for bytes=N- and bytes=N-M, and 416 past the end", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_r", size: 10_000 })] }, async (emu) => {
    const full = await emu.contentOf("eclf_r");
    const url = await signedUrl(emu, "eclf_r");
    const size = full.length;
    const cases: [string, number, number][] = [
      ["bytes=100-", 100, size],
      ["bytes=100-199", 100, 200],
      ["bytes=0-0", 0, 1],
      [`bytes=${size - 5}-${size + 50}`, size - 5, size],
      ["bytes=-10", size - 10, size],
    ];
    for (const [range, start, end] of cases) {
      const res = await fetch(url, { headers: { range } });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get("content-range"), `bytes ${start}-${end - 1}/${size}`);
      assert.equal(Number(res.headers.get("content-length")), end - start);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), full.slice(start, end));
    }
    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`]) {
      const res = await fetch(url, { headers: { range } });
      assert.equal(res.status, 416, range);
      assert.equal(res.headers.get("content-range"), `bytes */${size}`);
      await res.body?.cancel();
    }
  });
});

test("storage refuses a tampered signature and an expired URL with 403 XML errors", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_x" })], signedUrlTtlMs: 150 }, async (emu) => {
    const url = new URL(await signedUrl(emu, "eclf_x"));
    const tampered = new URL(url);
    tampered.searchParams.set("expires", String(Date.now() + 3_600_000));
    const bad = await fetch(tampered);
    assert.equal(bad.status, 403);
    assert.match(await bad.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
    const unsigned = await fetch(`${emu.storageOrigin}/files/eclf_x`);
    assert.equal(unsigned.status, 403);
    await unsigned.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 250));
    const expired = await fetch(url);
    assert.equal(expired.status, 403);
    assert.match(
      await expired.text(),
      /<Error><Code>AccessDenied<\/Code><Message>Request has expired<\/Message><\/Error>/,
    );
  });
});

test("a file without trailing newline ends with its last JSON line; crlf lines end with CRLF", async () => {
  const specs = (trailingNewline: boolean) => [
    oneFile({ id: "eclf_lf", size: 3000, trailingNewline }),
    oneFile({ id: "eclf_crlf", size: 3000, crlf: true, trailingNewline }),
  ];
  const served = async (trailingNewline: boolean) => {
    const emu = await startEmulator({ files: specs(trailingNewline) });
    try {
      return [
        text((await download(emu, "eclf_lf")).bytes),
        text((await download(emu, "eclf_crlf")).bytes),
      ];
    } finally {
      await emu.close();
    }
  };
  const [lf, crlf] = await served(true);
  const [lfBare, crlfBare] = await served(false);
  assert.ok(lf.endsWith("}\n"));
  assert.ok(lfBare.endsWith("}"));
  assert.equal(lfBare + "\n", lf);
  for (const line of lfBare.split("\n")) JSON.parse(line);
  assert.ok(crlf.endsWith("}\r\n"));
  assert.equal(crlf.split("\r\n").length, crlf.split("\n").length);
  assert.equal(crlfBare + "\r\n", crlf);
});

test("a size-0 file lists and serves as empty", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_empty", size: 0 })] }, async (emu) => {
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01" });
    assert.equal(page.data[0].file_size, 0);
    assert.equal(page.data[0].file_sha256, sha256(new Uint8Array(0)));
    const { res, bytes } = await download(emu, "eclf_empty");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "0");
    assert.equal(bytes.length, 0);
    const ranged = await fetch(await signedUrl(emu, "eclf_empty"), {
      headers: { range: "bytes=0-" },
    });
    assert.equal(ranged.status, 416);
    await ranged.body?.cancel();
  });
});

test("generated content is realistic JSONL, deterministic per seed and id, with non-ASCII text", async () => {
  const spec = (seed: number) => oneFile({ id: "eclf_det", size: 40_000, seed });
  const audit = oneFile({ id: "eclf_audit", eventType: "AUDIT_LOG", size: 40_000 });
  let first: Uint8Array;
  await withEmulator({ files: [spec(1), audit] }, async (emu) => {
    first = await emu.contentOf("eclf_det");
    const lines = text(first).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.ok(lines.length > 20);
    for (const event of lines) {
      assert.equal(event.type, "AUTH_LOG");
      assert.match(
        event.event_id,
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      assert.match(event.timestamp, MICROS_UTC);
      assert.ok(event.timestamp < "2026-07-09T13:00:00.000000Z");
      assert.deepEqual(event.principal, { id: WS, type: "CHATGPT_WORKSPACE" });
      assert.equal(event.actor.type, "ACCOUNT_USER");
      assert.ok(
        ["login_success", "login_failed", "logout_success", "token_issued"].includes(
          event.action_data.action,
        ),
      );
      for (
        const k of [
          "client_ip",
          "client_ip_details",
          "client_user_agent",
          "client_ja3",
          "client_ja4",
        ]
      ) {
        assert.ok(k in event.request_metadata, k);
      }
    }
    assert.ok(first.some((b) => b > 0x7f), "has non-ASCII bytes");
    const auditLines = text(await emu.contentOf("eclf_audit")).trimEnd().split("\n").map((l) =>
      JSON.parse(l)
    );
    for (const event of auditLines) {
      assert.equal(event.type, "AUDIT_LOG");
      assert.ok(["SUCCESS", "BLOCKED"].includes(event.action_result));
      assert.equal(typeof event.action, "string");
      assert.ok(
        "action_privilege" in event && "action_data" in event && "request_metadata" in event,
      );
    }
  });
  await withEmulator({ files: [spec(1)] }, async (emu) => {
    assert.deepEqual(await emu.contentOf("eclf_det"), first!);
  });
  await withEmulator({ files: [spec(2)] }, async (emu) => {
    assert.notDeepEqual(await emu.contentOf("eclf_det"), first!);
  });
});

test("explicit content is served byte for byte", async () => {
  const bytes = new Uint8Array([0x7b, 0x7d, 0x0a, 0xc3, 0xa3, 0x00, 0xff]);
  await withEmulator({ files: [oneFile({ id: "eclf_bin", content: bytes })] }, async (emu) => {
    assert.equal(emu.files[0].size, 7);
    assert.deepEqual((await download(emu, "eclf_bin")).bytes, bytes);
  });
});

test("records every request on both listeners, and the key never reaches storage", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_rec" })] }, async (emu) => {
    await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01", limit: "5" });
    await download(emu, "eclf_rec", { "X-Trace": "abc" });
    const [list, redirect, get] = emu.requests;
    assert.equal(emu.requests.length, 3);
    assert.deepEqual(
      { server: list.server, method: list.method, path: list.path, query: list.query },
      {
        server: "api",
        method: "GET",
        path: `/v1/compliance/workspaces/${WS}/logs`,
        query: { limit: "5", event_type: "AUTH_LOG", after: "2026-07-01" },
      },
    );
    assert.equal(list.headers.authorization, `Bearer ${emu.key}`);
    assert.equal(redirect.path, `/v1/compliance/workspaces/${WS}/logs/eclf_rec`);
    assert.equal(get.server, "storage");
    assert.equal(get.path, "/files/eclf_rec");
    assert.ok("sig" in get.query && "expires" in get.query);
    assert.equal(get.headers["x-trace"], "abc");
    assert.ok(!("authorization" in get.headers));
    assert.ok(typeof get.time === "number" && get.time >= list.time);
  });
});

test("latencyMs delays every response", async () => {
  await withEmulator({ latencyMs: 120 }, async (emu) => {
    const t = performance.now();
    await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01" });
    assert.ok(performance.now() - t >= 110);
  });
});

test("storageBytesPerSecond caps the link that all downloads share; the bytes are unchanged", async () => {
  const files = [
    oneFile({ id: "eclf_a", size: 400_000 }),
    oneFile({ id: "eclf_b", size: 400_000, endTime: "2026-07-09T14:00:00Z" }),
  ];
  // 800 KB over a 4 MB/s link cannot take less than 200 ms, whether sent one after the other
  // or side by side.
  await withEmulator({ files, storageBytesPerSecond: 4_000_000 }, async (emu) => {
    const t = performance.now();
    const both = await Promise.all([download(emu, "eclf_a"), download(emu, "eclf_b")]);
    const elapsed = performance.now() - t;
    const total = both.reduce((sum, { bytes }) => sum + bytes.length, 0);
    assert.ok(total >= 800_000, `${total} bytes`);
    assert.ok(elapsed >= (total / 4_000_000) * 1000 - 10, `${total} bytes in ${elapsed} ms`);
    for (const [i, id] of ["eclf_a", "eclf_b"].entries()) {
      assert.equal(sha256(both[i].bytes), await emu.sha256Of(id));
    }
  });
  await assert.rejects(startEmulator({ storageBytesPerSecond: 0 }), /bad link rate/);
});

// --- faults ---

test("a status fault answers in FIFO order, `times` times, only for its target and file id", async () => {
  const files = [
    oneFile({ id: "eclf_a" }),
    oneFile({ id: "eclf_b", endTime: "2026-07-09T14:00:00Z" }),
  ];
  await withEmulator({ files }, async (emu) => {
    emu.inject({ target: "list", status: 429, headers: { "retry-after": "2" }, times: 2 });
    emu.inject({ target: "list", status: 503, body: "busy" });
    emu.inject({ target: "storage", id: "eclf_b", status: 500 });
    assert.equal(emu.faultsRemaining(), 3);
    const url = listUrl(emu, { limit: "10", event_type: "AUTH_LOG", after: "2026-07-01" });
    const statuses: { status: number; retryAfter: string | null; body: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(url, { headers: auth(emu) });
      statuses.push({
        status: res.status,
        retryAfter: res.headers.get("retry-after"),
        body: await res.text(),
      });
    }
    assert.deepEqual(statuses.map((s) => s.status), [429, 429, 503, 200]);
    assert.equal(statuses[0].retryAfter, "2");
    assert.equal(JSON.parse(statuses[0].body).error.type, "rate_limit_error");
    assert.equal(statuses[2].body, "busy");
    assert.equal(emu.faultsRemaining(), 1);
    assert.equal((await download(emu, "eclf_a")).res.status, 200);
    assert.equal((await download(emu, "eclf_b")).res.status, 500);
    assert.equal((await download(emu, "eclf_b")).res.status, 200);
    assert.equal(emu.faultsRemaining(), 0);
    assert.equal(emu.faultsUsed(), 4);
    emu.inject({ target: "download", status: 502, times: Infinity });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${emu.apiBase}/workspaces/${WS}/logs/eclf_a`, {
        headers: auth(emu),
        redirect: "manual",
      });
      assert.equal(res.status, 502);
      await res.body?.cancel();
    }
    emu.clearFaults();
    assert.equal(emu.faultsRemaining(), 0);
    assert.equal((await download(emu, "eclf_a")).res.status, 200);
  });
});

test("inject refuses a fault with no action, two actions, or an action its target cannot do", async () => {
  // deno-lint-ignore require-await
  await withEmulator({}, async (emu) => {
    assert.throws(() => emu.inject({ target: "list" }), TypeError);
    assert.throws(
      () => emu.inject({ target: "storage", status: 500, cutAfterBytes: 3 }),
      TypeError,
    );
    assert.throws(() => emu.inject({ target: "storage", repeatCursor: true }), TypeError);
    assert.throws(() => emu.inject({ target: "list", ignoreRange: true }), TypeError);
    assert.throws(() => emu.inject({ target: "list", status: 500, times: 0 }), TypeError);
    assert.equal(emu.faultsRemaining(), 0);
  });
});

test("cutAfterBytes sends the headers and that many bytes, then resets the connection", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_cut", size: 300_000 })] }, async (emu) => {
    emu.inject({ target: "storage", id: "eclf_cut", cutAfterBytes: 1000 });
    assert.deepEqual(await rawGet(await signedUrl(emu, "eclf_cut"), 2000), {
      status: 200,
      bytes: 1000,
      outcome: "error",
    });
    assert.equal((await download(emu, "eclf_cut")).bytes.length, emu.files[0].size);
    emu.inject({ target: "storage", cutAfterBytes: 0 });
    assert.deepEqual(await rawGet(await signedUrl(emu, "eclf_cut"), 2000), {
      status: 200,
      bytes: 0,
      outcome: "error",
    });
    emu.inject({ target: "list", cutAfterBytes: 5 });
    const list = listUrl(emu, { limit: "1", event_type: "AUTH_LOG", after: "2026-07-01" });
    await assert.rejects(fetch(list, { headers: auth(emu) }).then((res) => res.text()));
  });
});

test("stallAfterBytes sends that many bytes and then nothing, on storage and on the list", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_st", size: 300_000 })] }, async (emu) => {
    emu.inject({ target: "storage", stallAfterBytes: 5000 });
    assert.deepEqual(await rawGet(await signedUrl(emu, "eclf_st"), 400), {
      status: 200,
      bytes: 5000,
      outcome: "stalled",
    });
    emu.inject({ target: "list", stallAfterBytes: 10 });
    const list = await fetch(
      listUrl(emu, { limit: "1", event_type: "AUTH_LOG", after: "2026-07-01" }),
      {
        headers: auth(emu),
      },
    );
    assert.equal(list.status, 200);
    const reader = list.body!.getReader();
    let got = 0;
    const quiet = new Promise<"quiet">((resolve) => setTimeout(() => resolve("quiet"), 400));
    for (;;) {
      const step = await Promise.race([reader.read(), quiet]);
      if (step === "quiet" || step.done) {
        assert.equal(step, "quiet");
        break;
      }
      got += step.value.length;
    }
    await reader.cancel().catch(() => {});
    assert.ok(got <= 10);
    assert.equal(emu.faultsRemaining(), 0);
  });
});

test("stallBeforeHeadersMs delays the answer, which then arrives intact", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_sb" })] }, async (emu) => {
    emu.inject({ target: "storage", stallBeforeHeadersMs: 300 });
    const t = performance.now();
    const { res, bytes } = await download(emu, "eclf_sb");
    assert.ok(performance.now() - t >= 280);
    assert.equal(res.status, 200);
    assert.equal(bytes.length, emu.files[0].size);
    emu.inject({ target: "list", stallBeforeHeadersMs: 200 });
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 50);
    await assert.rejects(
      fetch(listUrl(emu, { limit: "1", event_type: "AUTH_LOG", after: "2026-07-01" }), {
        headers: auth(emu),
        signal: ac.signal,
      }),
    );
    clearTimeout(timer);
  });
});

test("ignoreRange answers 200 with the whole file even when a Range was asked", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_ir", size: 5000 })] }, async (emu) => {
    emu.inject({ target: "storage", ignoreRange: true });
    const { res, bytes } = await download(emu, "eclf_ir", { range: "bytes=100-" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-range"), null);
    assert.deepEqual(bytes, await emu.contentOf("eclf_ir"));
    assert.equal((await download(emu, "eclf_ir", { range: "bytes=100-" })).res.status, 206);
  });
});

test("corruptBytes serves the right length with a wrong hash, once", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_co", size: 20_000 })] }, async (emu) => {
    const good = await emu.sha256Of("eclf_co");
    emu.inject({ target: "storage", corruptBytes: true });
    const bad = (await download(emu, "eclf_co")).bytes;
    assert.equal(bad.length, emu.files[0].size);
    assert.notEqual(sha256(bad), good);
    assert.equal(sha256((await download(emu, "eclf_co")).bytes), good);
  });
});

test("expireUrl makes storage answer 403 expired, and download redirect to an expired URL", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_ex" })] }, async (emu) => {
    emu.inject({ target: "storage", expireUrl: true });
    const first = await download(emu, "eclf_ex");
    assert.equal(first.res.status, 403);
    assert.match(text(first.bytes), /Request has expired/);
    emu.inject({ target: "download", expireUrl: true });
    const url = await signedUrl(emu, "eclf_ex");
    assert.ok(Number(new URL(url).searchParams.get("expires")) < Date.now());
    const res = await fetch(url);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /Request has expired/);
    assert.equal((await download(emu, "eclf_ex")).res.status, 200);
  });
});

test("cursor faults: repeated, backwards, and empty-but-advancing pages", async () => {
  const files = generateDataset({ count: 5, start: "2026-07-09T00:00:00Z" });
  await withEmulator({ files }, async (emu) => {
    const after = "2026-07-09T01:30:00+00:00";
    emu.inject({ target: "list", repeatCursor: true });
    const repeat = await listPage(emu, { event_type: "AUTH_LOG", after, limit: "1" });
    assert.equal(repeat.has_more, true);
    assert.equal(repeat.last_end_time, "2026-07-09T01:30:00.000000Z");
    assert.equal(repeat.data.length, 1);
    emu.inject({ target: "list", backwardsCursor: true });
    const back = await listPage(emu, { event_type: "AUTH_LOG", after, limit: "1" });
    assert.equal(back.has_more, true);
    assert.equal(back.last_end_time, "2026-07-09T00:30:00.000000Z");
    emu.inject({ target: "list", emptyPageAdvance: true });
    const empty = await listPage(emu, { event_type: "AUTH_LOG", after });
    assert.deepEqual(empty, {
      data: [],
      has_more: true,
      last_end_time: "2026-07-09T01:30:01.000000Z",
    });
    const normal = await listPage(emu, { event_type: "AUTH_LOG", after: empty.last_end_time! });
    assert.equal(normal.data.length, 3);
    assert.equal(normal.has_more, false);
  });
});

test("multiDocument sends the list document twice separated by a newline", async () => {
  await withEmulator({ files: [oneFile()] }, async (emu) => {
    emu.inject({ target: "list", multiDocument: true });
    const res = await fetch(
      listUrl(emu, { limit: "10", event_type: "AUTH_LOG", after: "2026-07-01" }),
      {
        headers: auth(emu),
      },
    );
    const body = await res.text();
    const docs = body.split("\n").map((d) => JSON.parse(d));
    assert.equal(docs.length, 2);
    assert.deepEqual(docs[0], docs[1]);
    assert.equal(docs[0].data.length, 1);
    assert.equal(Number(res.headers.get("content-length")), new TextEncoder().encode(body).length);
  });
});

// --- big files, memory, close ---

test("a ~50 MB file streams with the listed size and hash, and a middle range matches", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_big", size: 50_000_000 })] }, async (emu) => {
    const page = await listPage(emu, { event_type: "AUTH_LOG", after: "2026-07-01" });
    const size = emu.files[0].size;
    assert.ok(Math.abs(size - 50_000_000) < 5000);
    assert.equal(page.data[0].file_size, size);
    const res = await fetch(await signedUrl(emu, "eclf_big"));
    const hash = createHash("sha256");
    let total = 0;
    for await (const chunk of res.body!) {
      hash.update(chunk);
      total += chunk.length;
    }
    assert.equal(total, size);
    assert.equal(hash.digest("hex"), page.data[0].file_sha256);
    const full = await emu.contentOf("eclf_big");
    const start = 27_000_003;
    const ranged = await download(emu, "eclf_big", {
      range: `bytes=${start}-${start + 3_000_000}`,
    });
    assert.equal(ranged.res.status, 206);
    assert.deepEqual(ranged.bytes, full.slice(start, start + 3_000_001));
    // Repeated blocks still carry distinct event ids.
    const ids = text(full.slice(0, 20_000_000)).split("\n").slice(0, -1).map((l) =>
      JSON.parse(l).event_id
    );
    assert.equal(new Set(ids).size, ids.length);
  });
});

test("storage streams with backpressure and stops generating when the client goes away", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_bp", size: 200_000_000 })] }, async (emu) => {
    const url = await signedUrl(emu, "eclf_bp");
    const agent = new Agent({ keepAlive: false });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpGet(url, { agent }, resolve);
      req.on("error", reject);
    });
    res.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const whilePaused = emu.storageBytesSent();
    assert.ok(whilePaused < 32 * 1024 * 1024, `wrote ${whilePaused} bytes to a paused client`);
    res.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const afterGone = emu.storageBytesSent();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(emu.storageBytesSent(), afterGone);
    assert.ok(afterGone < 64 * 1024 * 1024);
    agent.destroy();
  });
});

test("a 2 GiB file has an exact size and serves a range at its end without materializing", async () => {
  const size = 2 * 1024 ** 3;
  await withEmulator({ files: [oneFile({ id: "eclf_2g", size })] }, async (emu) => {
    const actual = emu.files[0].size;
    assert.ok(actual >= size && actual < size + 5000);
    const t = performance.now();
    const { res, bytes } = await download(emu, "eclf_2g", { range: "bytes=-100000" });
    assert.equal(res.status, 206);
    assert.equal(
      res.headers.get("content-range"),
      `bytes ${actual - 100000}-${actual - 1}/${actual}`,
    );
    assert.equal(bytes.length, 100000);
    assert.ok(performance.now() - t < 5000);
    const lines = text(bytes).split("\n");
    assert.equal(lines.pop(), "");
    for (const line of lines.slice(1)) assert.equal(JSON.parse(line).type, "AUTH_LOG");
    await assert.rejects(emu.contentOf("eclf_2g"), RangeError);
  });
});

test("close() ends keep-alive and stalled connections promptly", async () => {
  const emu = await startEmulator({ files: [oneFile({ id: "eclf_ka", size: 100_000 })] });
  const agent = new Agent({ keepAlive: true });
  try {
    const url = await signedUrl(emu, "eclf_ka");
    await new Promise<void>((resolve, reject) => {
      httpGet(url, { agent }, (res) => {
        res.resume();
        res.on("end", resolve);
      }).on("error", reject);
    });
    emu.inject({ target: "storage", stallAfterBytes: 100 });
    const stalled = rawGet(url, 5000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const t = performance.now();
    await emu.close();
    assert.ok(performance.now() - t < 1000);
    assert.deepEqual(await stalled, { status: 200, bytes: 100, outcome: "error" });
    await assert.rejects(fetch(url));
  } finally {
    agent.destroy();
    await emu.close();
  }
});

test("closing during the first listing of a huge file abandons its hash", async () => {
  const emu = await startEmulator({ files: [oneFile({ size: 1024 ** 3 })] });
  try {
    const url = listUrl(emu, { limit: "1", event_type: "AUTH_LOG", after: "2026-07-01" });
    const listing = fetch(url, { headers: auth(emu) }).then(() => "answered", () => "failed");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const t = performance.now();
    await emu.close();
    assert.equal(await listing, "failed");
    assert.ok(performance.now() - t < 1000);
  } finally {
    await emu.close();
  }
});

// --- datasets ---

test("generateDataset makes count files per event type at a fixed step, with stable ids", () => {
  const a = generateDataset({
    eventTypes: ["AUTH_LOG", "AUDIT_LOG"],
    count: 3,
    start: "2026-07-09T01:00:00Z",
    stepMinutes: 30,
    size: 500,
    seed: 7,
  });
  assert.equal(a.length, 6);
  assert.deepEqual(a.slice(0, 3).map((f) => f.endTime), [
    "2026-07-09T01:00:00Z",
    "2026-07-09T01:30:00Z",
    "2026-07-09T02:00:00Z",
  ]);
  assert.deepEqual(a.map((f) => f.eventType), [
    "AUTH_LOG",
    "AUTH_LOG",
    "AUTH_LOG",
    "AUDIT_LOG",
    "AUDIT_LOG",
    "AUDIT_LOG",
  ]);
  assert.equal(new Set(a.map((f) => f.id)).size, 6);
  for (const f of a) assert.match(f.id, /^eclf_[0-9a-f]{32}$/);
  const b = generateDataset({
    eventTypes: ["AUTH_LOG", "AUDIT_LOG"],
    count: 3,
    start: "2026-07-09T01:00:00Z",
    seed: 7,
  });
  assert.deepEqual(a.map((f) => f.id), b.map((f) => f.id));
});

test("demoDataset gives the first principal three pages of AUTH_LOG and some AUDIT_LOG", async () => {
  const now = Date.parse("2026-07-09T12:34:56Z");
  const specs = demoDataset(now);
  const auth = specs.filter((f) => f.principal === WS && f.eventType === "AUTH_LOG");
  const audit = specs.filter((f) => f.principal === WS && f.eventType === "AUDIT_LOG");
  assert.equal(auth.length, 250);
  assert.equal(audit.length, 40);
  const ends = auth.map((f) => Date.parse(f.endTime));
  assert.ok(Math.max(...ends) <= now - 3 * 60_000);
  assert.ok(Math.min(...ends) >= now - 49 * 3_600_000);
  assert.ok(specs.some((f) => f.size === 0));
  assert.ok(specs.some((f) => (f.size ?? 0) > 100_000));
  assert.ok(specs.some((f) => f.trailingNewline === false));
  await withEmulator({ files: specs }, async (emu) => {
    assert.equal((await listAll(emu, "AUTH_LOG")).length, 250);
  });
});

// --- the API's reference: routes, key scopes, retention, gone files, the download limit ---

/** What the download endpoint answers for `id`, not following the redirect. */
async function downloadAnswer(
  emu: Emulator,
  id: string,
  { principal = WS, key = emu.key }: { principal?: string; key?: string } = {},
) {
  const scope = principal.startsWith("org-") ? "organizations" : "workspaces";
  const res = await fetch(`${emu.apiBase}/${scope}/${principal}/logs/${id}`, {
    headers: { authorization: `Bearer ${key}` },
    redirect: "manual",
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** What the list endpoint answers for these event types (repeated `event_type`). */
async function listAnswer(
  emu: Emulator,
  types: string[],
  { principal = WS, key = emu.key, after = "2026-01-01T00:00:00Z", limit = "100" } = {},
) {
  const scope = principal.startsWith("org-") ? "organizations" : "workspaces";
  const params = new URLSearchParams({ limit, after });
  for (const type of types) params.append("event_type", type);
  const res = await fetch(`${emu.apiBase}/${scope}/${principal}/logs?${params}`, {
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

const isoDaysAgo = (days: number) =>
  new Date(Date.now() - days * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");

test("each route answers 400 for a type only the other route carries, and takes unknown types", async () => {
  const files = [
    oneFile({ eventType: "COSTS", principal: ORG }),
    oneFile({ eventType: "APP_AUTH_LOG", principal: ORG }),
    oneFile({ eventType: "AUDIT_LOG" }),
  ];
  await withEmulator({ files }, async (emu) => {
    for (const type of ["AUTH_LOG", "AUDIT_LOG", "CONVERSATION_MESSAGE", "CODEX_SECURITY_LOG"]) {
      const r = await listAnswer(emu, [type], { principal: ORG });
      assert.equal(r.status, 400, type);
      assert.deepEqual(r.body, { detail: `${type} is a workspace-scoped event type` });
    }
    const costs = await listAnswer(emu, ["COSTS"]);
    assert.equal(costs.status, 400);
    assert.deepEqual(costs.body, { detail: "COSTS is an organization-scoped event type" });
    // One foreign type among several refuses the whole request.
    const mixed = await listAnswer(emu, ["APP_LOG", "AUTH_LOG"], { principal: ORG });
    assert.equal(mixed.status, 400);
    assert.equal((await listAnswer(emu, ["COSTS"], { principal: ORG })).body.data.length, 1);
    assert.equal((await listAnswer(emu, ["AUDIT_LOG"])).body.data.length, 1);
    // The reference's lists end in "etc.": a type neither names is taken on both routes.
    for (const principal of [WS, ORG]) {
      const unknown = await listAnswer(emu, ["NEW_KIND_LOG"], { principal });
      assert.equal(unknown.status, 200, principal);
      assert.deepEqual(unknown.body.data, []);
    }
  });
});

test("a file of a type the principal's route does not carry is refused as a FileSpec", async () => {
  await assert.rejects(
    startEmulator({ files: [oneFile({ eventType: "AUTH_LOG", principal: ORG })] }),
    /org-demoorg123 cannot hold AUTH_LOG files: only workspaces carry that type/,
  );
  await assert.rejects(
    startEmulator({ files: [oneFile({ eventType: "COSTS" })] }),
    /cannot hold COSTS files: only organizations carry that type/,
  );
});

test("a repeated event_type lists the union in end_time order, paging across types", async () => {
  const files = [
    ...generateDataset({ eventTypes: ["AUTH_LOG"], count: 5, start: "2026-07-09T00:00:00Z" }),
    ...generateDataset({ eventTypes: ["AUDIT_LOG"], count: 5, start: "2026-07-09T00:30:00Z" }),
    ...generateDataset({ eventTypes: ["CODEX_LOG"], count: 2, start: "2026-07-09T00:15:00Z" }),
  ];
  await withEmulator({ files }, async (emu) => {
    const seen: { event_type: string; end_time: string }[] = [];
    let after = "2026-07-01T00:00:00Z";
    for (let pages = 0; pages < 10; pages++) {
      const r = await listAnswer(emu, ["AUTH_LOG", "AUDIT_LOG", "AUTH_LOG"], { after, limit: "3" });
      assert.equal(r.status, 200);
      seen.push(...r.body.data);
      if (!r.body.has_more) break;
      after = r.body.last_end_time;
    }
    assert.equal(seen.length, 10);
    assert.deepEqual(
      seen.map((f) => f.end_time),
      seen.map((f) => f.end_time).sort(),
    );
    assert.deepEqual(seen.slice(0, 2).map((f) => f.event_type), ["AUTH_LOG", "AUDIT_LOG"]);
    assert.ok(!seen.some((f) => f.event_type === "CODEX_LOG"));
  });
});

test("records carry principal.type CHATGPT_WORKSPACE or API_PLATFORM_ORG; COSTS are hourly costs", async () => {
  const files = [
    oneFile({ id: "eclf_ws", eventType: "APP_LOG", size: 3000 }),
    oneFile({ id: "eclf_org", eventType: "APP_LOG", principal: ORG, size: 3000 }),
    oneFile({ id: "eclf_costs", eventType: "COSTS", principal: ORG, size: 3000 }),
  ];
  await withEmulator({ files }, async (emu) => {
    const records = async (id: string) =>
      text(await emu.contentOf(id)).trimEnd().split("\n").map((l) => JSON.parse(l));
    for (const r of await records("eclf_ws")) {
      assert.deepEqual(r.principal, { id: WS, type: "CHATGPT_WORKSPACE" });
    }
    for (const id of ["eclf_org", "eclf_costs"]) {
      for (const r of await records(id)) {
        assert.deepEqual(r.principal, { id: ORG, type: "API_PLATFORM_ORG" });
      }
    }
    const costs = await records("eclf_costs");
    assert.ok(costs.length > 1);
    for (const r of costs) {
      assert.equal(r.type, "COSTS");
      const { start_time, end_time, amount, project_id, line_item } = r.cost;
      assert.equal(Date.parse(end_time) - Date.parse(start_time), 3_600_000);
      assert.match(start_time, /T\d{2}:00:00\.000000Z$/);
      assert.ok(Date.parse(start_time) <= Date.parse(r.timestamp));
      assert.ok(Date.parse(r.timestamp) < Date.parse(end_time));
      assert.equal(amount.currency, "usd");
      assert.equal(typeof amount.value, "number");
      assert.match(project_id, /^proj_/);
      assert.equal(typeof line_item, "string");
    }
  });
});

test("a key scoped to some types gets 403 naming the missing scope for others, on list and download", async () => {
  const files = [
    oneFile({ id: "eclf_auth" }),
    oneFile({ id: "eclf_audit", eventType: "AUDIT_LOG" }),
  ];
  const scoped = "sk-emulator-auth-only-7a1c9e";
  await withEmulator(
    { files, scopedKeys: [{ key: scoped, eventTypes: ["AUTH_LOG"] }] },
    async (emu) => {
      assert.equal((await listAnswer(emu, ["AUTH_LOG"], { key: scoped })).body.data.length, 1);
      for (const types of [["AUDIT_LOG"], ["AUTH_LOG", "AUDIT_LOG"]]) {
        const r = await listAnswer(emu, types, { key: scoped });
        assert.equal(r.status, 403, types.join());
        assert.equal(r.body.error.code, "insufficient_scope");
        assert.match(r.body.error.message, /event type AUDIT_LOG\b/);
        assert.match(
          r.body.error.message,
          /Missing scopes: chatgpt\.enterprise\.compliance_logs_platform\.audit_log\.read\./,
        );
        assert.doesNotMatch(r.body.error.message, /auth_log/);
      }
      assert.equal((await downloadAnswer(emu, "eclf_auth", { key: scoped })).status, 307);
      const refused = await downloadAnswer(emu, "eclf_audit", { key: scoped });
      assert.equal(refused.status, 403);
      assert.match(refused.body, /compliance_logs_platform\.audit_log\.read/);
      // The full key reads every type; an unknown key is still 401.
      assert.equal((await downloadAnswer(emu, "eclf_audit")).status, 307);
      assert.equal((await listAnswer(emu, ["AUTH_LOG", "AUDIT_LOG"])).status, 200);
      assert.equal((await listAnswer(emu, ["AUTH_LOG"], { key: "sk-unknown-0000" })).status, 401);
    },
  );
});

test("files past retentionDays are not listed and their downloads answer the reference's 404", async () => {
  const files = [
    oneFile({ id: "eclf_old", endTime: isoDaysAgo(31) }),
    oneFile({ id: "eclf_recent", endTime: isoDaysAgo(29) }),
  ];
  await withEmulator({ files, retentionDays: 30 }, async (emu) => {
    const r = await listAnswer(emu, ["AUTH_LOG"], { after: isoDaysAgo(60) });
    assert.deepEqual(r.body.data.map((f: { id: string }) => f.id), ["eclf_recent"]);
    const gone = await downloadAnswer(emu, "eclf_old");
    assert.equal(gone.status, 404);
    assert.deepEqual(JSON.parse(gone.body), { detail: GONE_DETAIL });
    assert.match(GONE_DETAIL, /no longer available/);
    assert.equal((await downloadAnswer(emu, "eclf_recent")).status, 307);
  });
  // Without retentionDays every file stays, whatever its age.
  await withEmulator({ files }, async (emu) => {
    const r = await listAnswer(emu, ["AUTH_LOG"], { after: isoDaysAgo(60) });
    assert.equal(r.body.data.length, 2);
  });
});

test("a gone fault makes a listed file answer 404, with the reference's text or a plain one", async () => {
  const files = [
    oneFile({ id: "eclf_a" }),
    oneFile({ id: "eclf_b", endTime: "2026-07-09T14:00:00Z" }),
  ];
  await withEmulator({ files }, async (emu) => {
    emu.inject({ target: "download", id: "eclf_a", gone: "unavailable", times: 2 });
    emu.inject({ target: "download", id: "eclf_b", gone: "plain" });
    for (let i = 0; i < 2; i++) {
      const a = await downloadAnswer(emu, "eclf_a");
      assert.equal(a.status, 404);
      assert.deepEqual(JSON.parse(a.body), { detail: GONE_DETAIL });
    }
    assert.equal((await downloadAnswer(emu, "eclf_a")).status, 307);
    const b = await downloadAnswer(emu, "eclf_b");
    assert.equal(b.status, 404);
    assert.deepEqual(JSON.parse(b.body), { detail: "Not Found" });
    assert.doesNotMatch(b.body, /available/);
    // Still listed: the listing does not know.
    assert.equal((await listAnswer(emu, ["AUTH_LOG"])).body.data.length, 2);
  });
  await withEmulator({}, (emu) => {
    assert.throws(() => emu.inject({ target: "storage", gone: "plain" }), /does not apply/);
    assert.throws(() => emu.inject({ target: "storage", pauseBeforeCutMs: 10 }), /cutAfterBytes/);
    return Promise.resolve();
  });
});

test("the download limit answers 429 with Retry-After past N requests per rolling window, per key", async () => {
  const files = [oneFile({ id: "eclf_l" })];
  const other = "sk-emulator-second-key-0b3d";
  const limit = { requests: 3, windowMs: 3000 };
  await withEmulator(
    { files, downloadLimit: limit, scopedKeys: [{ key: other, eventTypes: ["AUTH_LOG"] }] },
    async (emu) => {
      const first = Date.now();
      for (let i = 0; i < 3; i++) assert.equal((await downloadAnswer(emu, "eclf_l")).status, 307);
      const refused = await downloadAnswer(emu, "eclf_l");
      assert.equal(refused.status, 429);
      const retryAfter = Number(refused.headers.get("retry-after"));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 3,
        `${retryAfter}`,
      );
      assert.equal(JSON.parse(refused.body).error.code, "rate_limit_exceeded");
      assert.equal(emu.rateLimited(), 1);
      // Another key has its own budget; the list endpoint is not limited.
      assert.equal((await downloadAnswer(emu, "eclf_l", { key: other })).status, 307);
      for (let i = 0; i < 5; i++) assert.equal((await listAnswer(emu, ["AUTH_LOG"])).status, 200);
      // Once the first requests leave the window, requests are admitted again.
      await new Promise((resolve) =>
        setTimeout(resolve, first + limit.windowMs + 100 - Date.now())
      );
      assert.equal((await downloadAnswer(emu, "eclf_l")).status, 307);
      assert.equal(emu.rateLimited(), 1);
      const log = emu.downloadRequests("eclf_l");
      assert.equal(log.length, 6);
      assert.deepEqual(log.map((r) => r.status), [307, 307, 307, 429, 307, 307]);
      assert.ok(log.every((r, i) => i === 0 || r.time >= log[i - 1].time));
      assert.equal(emu.downloadRequests("eclf_other").length, 0);
      assert.equal(emu.downloadRequests().length, 6);
    },
  );
  assert.deepEqual(REFERENCE_DOWNLOAD_LIMIT, { requests: 50, windowMs: 60_000 });
});

test("signed URLs last 5 minutes by default, signedUrlTtlMs when given", async () => {
  const files = [oneFile({ id: "eclf_t" })];
  for (const [ttl, expected] of [[undefined, 300_000], [2000, 2000]] as const) {
    await withEmulator({ files, signedUrlTtlMs: ttl }, async (emu) => {
      const before = Date.now();
      const expires = Number(new URL(await signedUrl(emu, "eclf_t")).searchParams.get("expires"));
      assert.ok(expires >= before + expected && expires <= Date.now() + expected, `${ttl}`);
    });
  }
});

test("pauseBeforeCutMs holds the connection open after the bytes, then resets it", async () => {
  await withEmulator({ files: [oneFile({ id: "eclf_p", size: 20_000 })] }, async (emu) => {
    emu.inject({ target: "storage", cutAfterBytes: 700, pauseBeforeCutMs: 600 });
    const started = Date.now();
    const r = await rawGet(await signedUrl(emu, "eclf_p"), 10_000);
    assert.equal(r.status, 200);
    assert.equal(r.bytes, 700);
    assert.equal(r.outcome, "error");
    assert.ok(Date.now() - started >= 550, `${Date.now() - started} ms`);
  });
});

test("a taken storage port is named as the storage listener's", async () => {
  const holder = await startEmulator({});
  try {
    const storagePort = Number(new URL(holder.storageOrigin).port);
    await assert.rejects(
      startEmulator({ storagePort }),
      (error: Error) =>
        error instanceof PortInUseError && error.listener === "storage" &&
        error.port === storagePort && /storage listener cannot use port/.test(error.message),
    );
  } finally {
    await holder.close();
  }
});

test("demoDataset gives the organization APP_LOG, APP_AUTH_LOG and hourly, late COSTS only", async () => {
  const now = Date.parse("2026-07-09T12:34:56Z");
  const org = demoDataset(now).filter((f) => f.principal === ORG);
  const count = (type: string) => org.filter((f) => f.eventType === type).length;
  assert.deepEqual([count("APP_LOG"), count("APP_AUTH_LOG"), count("COSTS")], [12, 6, 44]);
  assert.equal(org.length, 62);
  const costs = org.filter((f) => f.eventType === "COSTS").map((f) => Date.parse(f.endTime));
  assert.ok(
    costs.every((t, i) => t % 3_600_000 === 0 && (i === 0 || t - costs[i - 1] === 3_600_000)),
  );
  assert.ok(Math.max(...costs) <= now - 4 * 3_600_000);
  await withEmulator({ files: demoDataset(), retentionDays: 30 }, async (emu) => {
    for (const type of ["APP_LOG", "APP_AUTH_LOG", "COSTS"]) {
      const r = await listAnswer(emu, [type], { principal: ORG, after: isoDaysAgo(3) });
      assert.equal(r.body.data.length, count(type), type);
    }
  });
});
