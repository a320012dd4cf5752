/**
 * TEST-ONLY malicious API + storage server for security tests; see `server.ts`.
 *
 * @example
 * import { logFile, page, redirect, startHostile } from "./hostile/mod.ts";
 * const h = await startHostile({ list: () => page([logFile("f1", "2026-07-02T00:00:00Z")]) });
 */
export { json, logFile, page, redirect, startHostile } from "./server.ts";
export type {
  Handler,
  Hostile,
  HostileOptions,
  HostileRequest,
  HostileScript,
  Origins,
  Reply,
} from "./server.ts";
