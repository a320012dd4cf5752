/**
 * The event types of each API route, as the API's reference (v2.5.3) lists them, and what follows
 * from a type: which route carries it, the scope a key needs for it, and how late its files are
 * published. The reference's lists end in "etc.", so a well-formed type missing here is still
 * asked for (with a warning); only a type known to belong to the other route alone is suspect.
 *
 * @example
 * ```ts
 * import { eventTypesOf, routeOnlyOf } from "./event_types.ts";
 * eventTypesOf("organizations"); // ["APP_LOG", "APP_AUTH_LOG", "COSTS"]
 * routeOnlyOf("AUTH_LOG"); // "workspaces"
 * ```
 */

/** The two routes: `/workspaces/{uuid}/logs` and `/organizations/org-.../logs`. */
export type Scope = "workspaces" | "organizations";

/** ChatGPT Enterprise/Edu workspaces, in the reference's order. */
export const WORKSPACE_EVENT_TYPES: readonly string[] = [
  "CONVERSATION_MESSAGE",
  "AUDIT_LOG",
  "APP_LOG",
  "APP_AUTH_LOG",
  "AUTH_LOG",
  "CODEX_LOG",
  "CHATGPT_PLUGIN_SPREADSHEET",
  "CODEX_SECURITY_LOG",
  "CUSTOM_AGENTS_LOG",
];

/** API Platform organizations. */
export const ORGANIZATION_EVENT_TYPES: readonly string[] = ["APP_LOG", "APP_AUTH_LOG", "COSTS"];

/** What `all` meant before the routes were told apart: the eight names old state files hold. */
export const LEGACY_ALL_EVENT_TYPES: readonly string[] = [
  "AUTH_LOG",
  "AUDIT_LOG",
  "APP_LOG",
  "APP_AUTH_LOG",
  "CODEX_LOG",
  "CODEX_SECURITY_LOG",
  "CONVERSATION_MESSAGE",
  "CUSTOM_AGENTS_LOG",
];

/** Files appear up to about this long after their `end_time` (the reference's p99). */
export const DEFAULT_PUBLICATION_DELAY_MS = 30 * 60_000;
/** `COSTS` is hourly and arrives 3-5 hours late. */
const PUBLICATION_DELAY_MS: Record<string, number> = { COSTS: 5 * 3_600_000 };

/** The scope of a principal id: `org-` ids are organizations, anything else a workspace. */
export function scopeOf(principal: string): Scope {
  return principal.startsWith("org-") ? "organizations" : "workspaces";
}

/** The types `scope` carries (what `all` means there). */
export function eventTypesOf(scope: Scope): readonly string[] {
  return scope === "organizations" ? ORGANIZATION_EVENT_TYPES : WORKSPACE_EVENT_TYPES;
}

/** Whether `type` is in either route's list. */
export function isKnownEventType(type: string): boolean {
  return WORKSPACE_EVENT_TYPES.includes(type) || ORGANIZATION_EVENT_TYPES.includes(type);
}

/**
 * The one route a known type belongs to, or undefined when both carry it or neither is known
 * to (an unknown type may be on either).
 *
 * @example
 * ```ts
 * import { routeOnlyOf } from "./event_types.ts";
 * routeOnlyOf("COSTS"); // "organizations"
 * routeOnlyOf("APP_LOG"); // undefined: both routes carry it
 * ```
 */
export function routeOnlyOf(type: string): Scope | undefined {
  const workspace = WORKSPACE_EVENT_TYPES.includes(type);
  const organization = ORGANIZATION_EVENT_TYPES.includes(type);
  if (workspace === organization) return undefined;
  return workspace ? "workspaces" : "organizations";
}

/** "workspace" or "organization", for messages. */
export function routeNoun(scope: Scope): string {
  return scope === "organizations" ? "organization" : "workspace";
}

/**
 * One line saying which types `scope` carries, for errors, `--help` and `list`.
 *
 * @example
 * ```ts
 * import { routeTypesLine } from "./event_types.ts";
 * routeTypesLine("organizations"); // "organizations (org-...) carry APP_LOG, APP_AUTH_LOG, COSTS"
 * ```
 */
export function routeTypesLine(scope: Scope): string {
  const who = scope === "organizations" ? "organizations (org-...)" : "workspaces";
  return `${who} carry ${eventTypesOf(scope).join(", ")}`;
}

/** How long after its `end_time` a file of `type` may still be published. */
export function publicationDelayMs(type: string): number {
  return PUBLICATION_DELAY_MS[type] ?? DEFAULT_PUBLICATION_DELAY_MS;
}

/** The scope that lets a key read every type. */
export const COMPLIANCE_READ_SCOPE = "chatgpt.enterprise.compliance_logs_platform.read";

/**
 * The per-type scope that lets a key read `type`.
 *
 * @example
 * ```ts
 * import { scopeForType } from "./event_types.ts";
 * scopeForType("AUTH_LOG"); // "chatgpt.enterprise.compliance_logs_platform.auth_log.read"
 * ```
 */
export function scopeForType(type: string): string {
  return `chatgpt.enterprise.compliance_logs_platform.${type.toLowerCase()}.read`;
}
