/**
 * One log event per line, shaped like the public descriptions of the Compliance Logs Platform
 * (see COMPLIANCE-API.md): AUTH_LOG, AUDIT_LOG and COSTS in detail, other event types in a generic
 * shape. `principal.type` is CHATGPT_WORKSPACE, or API_PLATFORM_ORG for an `org-` id.
 * Non-ASCII text (cities, names) is deliberate so that byte-exact handling gets exercised.
 *
 * @example
 * const { json } = eventLine("AUTH_LOG", "ws-1", new Rng("x"), Date.now() * 1000);
 */
import { formatMicros } from "./_time.ts";
import { Rng } from "./_random.ts";

/** Byte offset, inside every line, of the last 8 hex digits of `event_id` (see `eventLine`). */
export const EVENT_ID_TAIL_OFFSET = '{"event_id":"'.length + 28;

interface Place {
  country: string;
  region: string;
  city: string;
  asn: number;
  ip: string; // a documentation prefix; the last part is random
}

const PLACES: readonly Place[] = [
  { country: "BR", region: "São Paulo", city: "São Paulo", asn: 28573, ip: "198.51.100." },
  { country: "CH", region: "Zürich", city: "Zürich", asn: 3303, ip: "192.0.2." },
  { country: "PL", region: "Małopolskie", city: "Kraków", asn: 5617, ip: "203.0.113." },
  { country: "CA", region: "Québec", city: "Montréal", asn: 577, ip: "198.51.100." },
  { country: "JP", region: "東京都", city: "東京", asn: 2516, ip: "203.0.113." },
  { country: "DE", region: "Bayern", city: "München", asn: 3320, ip: "192.0.2." },
  { country: "US", region: "New York", city: "New York", asn: 7922, ip: "198.51.100." },
  { country: "US", region: "California", city: "San Francisco", asn: 13335, ip: "203.0.113." },
  { country: "GB", region: "England", city: "London", asn: 2856, ip: "192.0.2." },
  { country: "IE", region: "Leinster", city: "Dublin", asn: 5466, ip: "198.51.100." },
  { country: "IN", region: "Karnataka", city: "Bengaluru", asn: 24560, ip: "203.0.113." },
  { country: "SG", region: "Singapore", city: "Singapore", asn: 9506, ip: "192.0.2." },
  { country: "IS", region: "Höfuðborgarsvæðið", city: "Reykjavík", asn: 6677, ip: "2001:db8:" },
];

const USER_AGENTS = [
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
  "ChatGPT/1.2025.189 (Android 15; SM-S928B; build 2518912)",
  "ChatGPT/1.2025.189 (iOS 18.5; iPhone17,1; build 17521)",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
];

const FIRST = ["ana", "joão", "zoë", "björn", "amélie", "li", "priya", "omar", "sam", "kenji"];
const LAST = ["silva", "müller", "kowalski", "tremblay", "tanaka", "nguyen", "okafor", "smith"];
const ROLES = ["standard-user", "account-admin", "account-owner"] as const;

interface User {
  user_id: string;
  user_email: string;
  name: string;
  role: string;
}

const users = new Map<string, User[]>();

/** The same few dozen users for a principal, every time. */
function usersOf(principal: string): User[] {
  let pool = users.get(principal);
  if (pool) return pool;
  const rng = new Rng(`users:${principal}`);
  pool = [];
  for (let i = 0; i < 24; i++) {
    const first = rng.pick(FIRST);
    const last = rng.pick(LAST);
    const ascii = (s: string) => s.normalize("NFD").replace(/[^a-z]/g, "");
    pool.push({
      user_id: `user-${rng.alnum(24)}`,
      user_email: `${ascii(first)}.${ascii(last)}${i}@example.com`,
      name: `${first[0].toUpperCase()}${first.slice(1)} ${last[0].toUpperCase()}${last.slice(1)}`,
      role: i === 0 ? "account-owner" : i < 3 ? "account-admin" : "standard-user",
    });
  }
  users.set(principal, pool);
  return pool;
}

function eventId(rng: Rng, mask: number): string {
  const variant = "89ab"[rng.int(4)];
  return `${rng.hex(8)}-${rng.hex(4)}-4${rng.hex(3)}-${variant}${rng.hex(3)}-${rng.hex(4)}${
    mask.toString(16).padStart(8, "0")
  }`;
}

function requestMetadata(rng: Rng) {
  const place = rng.pick(PLACES);
  const ip = place.ip.includes(":")
    ? `${place.ip}${rng.hex(4)}::${rng.hex(3)}`
    : `${place.ip}${1 + rng.int(254)}`;
  return {
    client_ip: ip,
    client_ip_details: {
      country: place.country,
      city: place.city,
      region: place.region,
      asn: place.asn,
    },
    client_user_agent: rng.pick(USER_AGENTS),
    client_ja3: rng.hex(32),
    client_ja4: `t13d${1510 + rng.int(20)}h2_${rng.hex(12)}_${rng.hex(12)}`,
  };
}

function actor(rng: Rng, user: User, allowApiKey: boolean) {
  if (allowApiKey && rng.int(8) === 0) {
    return { type: "API_KEY", redacted_id: `sk-...${rng.alnum(4)}` };
  }
  return { type: "ACCOUNT_USER", user_id: user.user_id, user_email: user.user_email };
}

function authData(rng: Rng, user: User) {
  const r = rng.int(20);
  const action = r < 11
    ? "login_success"
    : r < 14
    ? "login_failed"
    : r < 17
    ? "logout_success"
    : "token_issued";
  const data: Record<string, unknown> = { action, role: user.role };
  if (action === "login_failed") {
    data.reason = rng.pick(["invalid_password", "mfa_failed", "sso_assertion_rejected"]);
  }
  if (action === "login_success") data.method = rng.pick(["sso", "password", "google"]);
  return data;
}

const AUDIT_ACTIONS = [
  "USER_ROLE_UPDATED",
  "INVITE_SEND",
  "LIST_WORKSPACE_LOG_FILES",
  "DOWNLOAD_WORKSPACE_LOG_FILE",
  "WORKSPACE_SETTING_UPDATED",
  "USER_REMOVED",
  "GPT_SHARED",
] as const;

function auditData(rng: Rng, action: string, pool: User[], endMicros: number) {
  const target = rng.pick(pool);
  switch (action) {
    case "USER_ROLE_UPDATED":
      return {
        target_user_id: target.user_id,
        target_user_name: target.name,
        old_role: target.role,
        new_role: rng.pick(ROLES),
      };
    case "INVITE_SEND":
      return { invitee_email: `invitee${rng.int(10000)}@example.org`, role: "standard-user" };
    case "LIST_WORKSPACE_LOG_FILES":
      return {
        event_type: rng.pick(["AUTH_LOG", "AUDIT_LOG"]),
        after: formatMicros(endMicros - 86_400_000_000),
        limit: 100,
      };
    case "DOWNLOAD_WORKSPACE_LOG_FILE":
      return { log_file_id: `eclf_${rng.hex(32)}` };
    case "WORKSPACE_SETTING_UPDATED":
      return {
        setting: rng.pick(["data_retention_days", "sso_enforced", "gpt_sharing"]),
        old_value: "30",
        new_value: "90",
      };
    case "USER_REMOVED":
      return { target_user_id: target.user_id, target_user_name: target.name };
    default:
      return {
        gpt_id: `g-${rng.alnum(9)}`,
        visibility: rng.pick(["workspace", "link", "private"]),
      };
  }
}

const LINE_ITEMS = [
  "gpt-4.1-2025-04-14, input",
  "gpt-4.1-2025-04-14, output",
  "gpt-4o-mini-2024-07-18, cached input",
  "text-embedding-3-large, input",
  "web search tool calls",
  "file search storage",
] as const;
const PROJECTS = ["Default project", "Support bot", "Données clients", "検索"] as const;
const HOUR_MICROS = 3_600_000_000;

/** One line item of the hourly cost of an API organization, as the usage/costs API shapes it. */
function costData(rng: Rng, timestampMicros: number) {
  const start = Math.floor(timestampMicros / HOUR_MICROS) * HOUR_MICROS;
  const project = rng.int(PROJECTS.length);
  return {
    start_time: formatMicros(start),
    end_time: formatMicros(start + HOUR_MICROS),
    project_id: `proj_${new Rng(`project:${project}`).alnum(24)}`,
    project_name: PROJECTS[project],
    line_item: rng.pick(LINE_ITEMS),
    amount: { value: Math.round(rng.next() * 4_000_000) / 1_000_000, currency: "usd" },
  };
}

/**
 * One event of `eventType` as a JSON line (no newline). `event_id` comes first and ends with the
 * 8 hex digits of `idMask`, so repeated blocks of a big file can get distinct ids by rewriting
 * those digits in place (see content.ts).
 */
export function eventLine(
  eventType: string,
  principal: string,
  rng: Rng,
  timestampMicros: number,
): { json: string; idMask: number } {
  const idMask = rng.uint32();
  const pool = usersOf(principal);
  const user = rng.pick(pool);
  const head = {
    event_id: eventId(rng, idMask),
    type: eventType,
    timestamp: formatMicros(timestampMicros),
    principal: {
      id: principal,
      type: principal.startsWith("org-") ? "API_PLATFORM_ORG" : "CHATGPT_WORKSPACE",
    },
  };
  let event: Record<string, unknown>;
  if (eventType === "AUTH_LOG") {
    event = {
      ...head,
      actor: actor(rng, user, false),
      request_metadata: requestMetadata(rng),
      action_data: authData(rng, user),
    };
  } else if (eventType === "AUDIT_LOG") {
    const action = rng.pick(AUDIT_ACTIONS);
    const blocked = rng.int(12) === 0;
    event = {
      ...head,
      actor: actor(rng, user, true),
      action,
      action_result: blocked ? "BLOCKED" : "SUCCESS",
      action_privilege:
        action === "LIST_WORKSPACE_LOG_FILES" || action === "DOWNLOAD_WORKSPACE_LOG_FILE"
          ? "COMPLIANCE_API"
          : user.role === "standard-user"
          ? "WORKSPACE_MEMBER"
          : "WORKSPACE_ADMIN",
      action_data: auditData(rng, action, pool, timestampMicros),
      request_metadata: requestMetadata(rng),
    };
  } else if (eventType === "COSTS") {
    event = { ...head, actor: actor(rng, user, true), cost: costData(rng, timestampMicros) };
  } else {
    event = {
      ...head,
      actor: actor(rng, user, true),
      data: {
        object_id: `${eventType.toLowerCase().split("_")[0]}-${rng.alnum(16)}`,
        operation: rng.pick(["CREATE", "READ", "UPDATE", "DELETE"]),
        summary: rng.pick(["Résumé généré", "plain text", "データ", "ok"]),
      },
      request_metadata: requestMetadata(rng),
    };
  }
  return { json: JSON.stringify(event), idMask };
}
