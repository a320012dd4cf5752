/**
 * The API listener: `GET /v1/compliance/{workspaces|organizations}/{principal}/logs` (list) and
 * `.../logs/{id}` (307 to a signed storage URL), with Bearer auth, the event types of each route
 * (400 for a type of the other route), per-type key scopes (403), retention (files past it are
 * not listed and answer 404), the download limit (429 with `Retry-After`) and list/download faults.
 *
 * @example
 * http.createServer((req, res) => handleApi(ctx, req, res));
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { routeNoun, routeOnlyOf, type Scope, scopeForType } from "../../lib/event_types.ts";
import type { DownloadLimiter, KeyGrants } from "./access.ts";
import type { StoredFile } from "./dataset.ts";
import type { Fault, FaultQueue } from "./faults.ts";
import { type Page, type PageOptions, parseListQuery, selectPage } from "./listing.ts";
import { parseTarget, sendBody, sleep } from "./respond.ts";
import type { UrlSigner } from "./signing.ts";
import { formatMicros, formatPythonIso } from "./_time.ts";

export interface ApiContext {
  grants: KeyGrants;
  /** The download endpoint's limit per key, when enforced. */
  limiter?: DownloadLimiter;
  /** Files whose end_time is older than this are gone: not listed, 404 on download. */
  retentionMs?: number;
  principals: readonly string[];
  files: ReadonlyMap<string, StoredFile>;
  faults: FaultQueue;
  signer: UrlSigner;
  storageOrigin: string;
  closing: AbortSignal;
  page: PageOptions;
}

const ROUTE = /^\/v1\/compliance\/(workspaces|organizations)\/([^/]+)\/logs(?:\/([^/]+))?\/?$/;
const JSON_TYPE = { "content-type": "application/json" };

function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function openAiError(message: string, type: string, code: string | null) {
  return { error: { message, type, param: null, code } };
}

async function sendJson(
  ctx: ApiContext,
  res: ServerResponse,
  status: number,
  value: unknown,
  fault?: Fault,
  extraHeaders: Record<string, string> = {},
): Promise<void> {
  const body = typeof value === "string" ? new TextEncoder().encode(value) : jsonBytes(value);
  await sendBody(
    res,
    status,
    { ...JSON_TYPE, ...extraHeaders, "content-length": String(body.length) },
    [body],
    {
      closing: ctx.closing,
      cutAfterBytes: fault?.cutAfterBytes,
      pauseBeforeCutMs: fault?.pauseBeforeCutMs,
      stallAfterBytes: fault?.stallAfterBytes,
    },
  );
}

/** The answer a `status` fault asks for; a plausible error body unless one is given. */
function injectedStatus(ctx: ApiContext, res: ServerResponse, fault: Fault): Promise<void> {
  const status = fault.status!;
  const body = fault.body ?? JSON.stringify(
    status === 429
      ? openAiError(
        "Rate limit reached for compliance API requests.",
        "rate_limit_error",
        "rate_limit_exceeded",
      )
      : openAiError(`Injected failure (HTTP ${status}).`, "server_error", null),
  );
  return sendJson(ctx, res, status, body, undefined, fault.headers);
}

/** The key the request carries when the emulator knows it, else why not. */
function authorized(ctx: ApiContext, req: IncomingMessage): { key: string } | "missing" | "wrong" {
  const header = req.headers.authorization;
  if (!header) return "missing";
  const m = /^Bearer\s+(.+)$/i.exec(header);
  const key = m?.[1].trim();
  return key && ctx.grants.knows(key) ? { key } : "wrong";
}

/** The reference's 404 for a listed file that expired before it was fetched. */
export const GONE_DETAIL = "The log file was not found or is no longer available";

/** Whether `file` is past retention now. */
function pastRetention(ctx: ApiContext, file: StoredFile): boolean {
  return ctx.retentionMs !== undefined && file.endMicros / 1000 < Date.now() - ctx.retentionMs;
}

/** 403 for a key that lacks the per-type scopes of `types`. */
function refuseScopes(
  ctx: ApiContext,
  res: ServerResponse,
  key: string,
  types: readonly string[],
): Promise<void> | undefined {
  const refused = ctx.grants.refusedTypes(key, types);
  if (!refused.length) return undefined;
  const missing = refused.map(scopeForType);
  return sendJson(
    ctx,
    res,
    403,
    openAiError(
      `This API key is not authorized for event type ${refused.join(", ")}. ` +
        `Missing scopes: ${missing.join(", ")}.`,
      "invalid_request_error",
      "insufficient_scope",
    ),
  );
}

/** The reference's 400 for a type the other route carries ("AUTH_LOG is a workspace-scoped ..."). */
function foreignTypeDetail(scope: Scope, types: readonly string[]): string | undefined {
  for (const type of types) {
    const only = routeOnlyOf(type);
    if (only !== undefined && only !== scope) {
      const noun = routeNoun(only);
      return `${type} is ${/^[aeiou]/.test(noun) ? "an" : "a"} ${noun}-scoped event type`;
    }
  }
  return undefined;
}

function listItem(file: StoredFile, sha: string) {
  const { spec } = file;
  const item: Record<string, unknown> = {
    id: spec.id,
    event_type: spec.eventType,
    end_time: spec.endTime,
    file_name: `${spec.eventType}_${formatPythonIso(file.endMicros)}.jsonl`,
  };
  const size = spec.advertise && "fileSize" in spec.advertise ? spec.advertise.fileSize : spec.size;
  if (size !== null && size !== undefined) item.file_size = size;
  const hash = spec.advertise && "fileSha256" in spec.advertise ? spec.advertise.fileSha256 : sha;
  if (hash !== null && hash !== undefined) item.file_sha256 = hash;
  return item;
}

/** The page with a cursor fault applied: the shapes of broken pagination seen or feared. */
function cursorFault(page: Page, afterMicros: number, fault?: Fault): Page {
  if (fault?.repeatCursor) return { ...page, hasMore: true, lastEndMicros: afterMicros };
  if (fault?.backwardsCursor) {
    return { ...page, hasMore: true, lastEndMicros: afterMicros - 3_600_000_000 };
  }
  if (fault?.emptyPageAdvance) {
    return { items: [], hasMore: true, lastEndMicros: afterMicros + 1_000_000 };
  }
  return page;
}

async function list(
  ctx: ApiContext,
  res: ServerResponse,
  request: { scope: Scope; principal: string; key: string },
  url: URL,
  fault?: Fault,
): Promise<void> {
  const parsed = parseListQuery(url.searchParams);
  if ("detail" in parsed) return sendJson(ctx, res, 422, { detail: parsed.detail }, fault);
  const { query } = parsed;
  const foreign = foreignTypeDetail(request.scope, query.eventTypes);
  if (foreign) return sendJson(ctx, res, 400, { detail: foreign }, fault);
  const refused = refuseScopes(ctx, res, request.key, query.eventTypes);
  if (refused) return refused;
  const own = [...ctx.files.values()].filter((f) =>
    f.spec.principal === request.principal && !pastRetention(ctx, f)
  );
  const page = cursorFault(selectPage(own, query, ctx.page), query.afterMicros, fault);
  const data = [];
  for (const file of page.items) {
    const wantsSha = !(file.spec.advertise && "fileSha256" in file.spec.advertise);
    data.push(listItem(file, wantsSha ? await file.content.sha256(ctx.closing) : ""));
  }
  const doc = JSON.stringify({
    data,
    has_more: page.hasMore,
    last_end_time: page.lastEndMicros === null ? null : formatMicros(page.lastEndMicros),
  });
  return sendJson(ctx, res, 200, fault?.multiDocument ? `${doc}\n${doc}` : doc, fault);
}

function download(
  ctx: ApiContext,
  res: ServerResponse,
  request: { principal: string; key: string },
  id: string,
  fault?: Fault,
): Promise<void> {
  const file = ctx.files.get(id);
  if (!file || file.spec.principal !== request.principal) {
    return sendJson(
      ctx,
      res,
      404,
      openAiError(`No log file with id '${id}'.`, "invalid_request_error", "not_found"),
      fault,
    );
  }
  const refused = refuseScopes(ctx, res, request.key, [file.spec.eventType]);
  if (refused) return refused;
  if (fault?.gone === "plain") return sendJson(ctx, res, 404, { detail: "Not Found" });
  if (fault?.gone || pastRetention(ctx, file)) {
    return sendJson(ctx, res, 404, { detail: GONE_DETAIL });
  }
  const location = ctx.signer.sign(ctx.storageOrigin, id, Boolean(fault?.expireUrl));
  return sendJson(ctx, res, 307, "", fault, {
    location: location.href,
    "content-type": "text/plain",
  });
}

/** Handles one request on the API listener. */
export async function handleApi(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = parseTarget(req);
  const route = ROUTE.exec(url.pathname);
  if (!route) return sendJson(ctx, res, 404, { detail: "Not Found" });
  if (req.method !== "GET") {
    return sendJson(ctx, res, 405, { detail: "Method Not Allowed" }, undefined, { allow: "GET" });
  }
  const [, rawScope, rawPrincipal, rawId] = route;
  const scope = rawScope as Scope;
  const principal = decodeURIComponent(rawPrincipal);
  const id = rawId === undefined ? undefined : decodeURIComponent(rawId);
  let fault = ctx.faults.take(id === undefined ? "list" : "download", id);
  if (fault?.stallBeforeHeadersMs !== undefined) {
    if (!(await sleep(fault.stallBeforeHeadersMs, ctx.closing))) return;
    fault = undefined;
  }
  if (fault?.status !== undefined) return injectedStatus(ctx, res, fault);

  const auth = authorized(ctx, req);
  if (typeof auth === "string") {
    const message = auth === "missing"
      ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
      : "Incorrect API key provided.";
    return sendJson(
      ctx,
      res,
      401,
      openAiError(message, "invalid_request_error", "invalid_api_key"),
    );
  }
  const inScope = principal.startsWith("org-") === (scope === "organizations");
  if (!inScope || !ctx.principals.includes(principal)) {
    const kind = scope === "organizations" ? "organization" : "workspace";
    return sendJson(
      ctx,
      res,
      404,
      openAiError(`No ${kind} found with id '${principal}'.`, "invalid_request_error", "not_found"),
    );
  }
  if (id !== undefined && ctx.limiter) {
    const admission = ctx.limiter.admit(auth.key, Date.now());
    if (!admission.ok) {
      return sendJson(
        ctx,
        res,
        429,
        openAiError(
          "Rate limit reached for compliance log file downloads: " +
            `${ctx.limiter.limit.requests} requests per ${ctx.limiter.limit.windowMs / 1000} s ` +
            "per API key.",
          "rate_limit_error",
          "rate_limit_exceeded",
        ),
        undefined,
        { "retry-after": String(admission.retryAfterSeconds) },
      );
    }
  }
  if (id === undefined) return list(ctx, res, { scope, principal, key: auth.key }, url, fault);
  return download(ctx, res, { principal, key: auth.key }, id, fault);
}
