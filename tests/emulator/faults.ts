/**
 * Fault injection: a FIFO queue of misbehaviours, each used by the next `times` matching requests.
 *
 * @example
 * emu.inject({ target: "storage", cutAfterBytes: 1000 });
 * emu.inject({ target: "list", status: 429, headers: { "retry-after": "2" } });
 * emu.inject({ target: "download", id: "eclf_1", gone: "unavailable", times: Infinity });
 */

/** The list endpoint, the `logs/{id}` endpoint of the API, or a GET on the storage host. */
export type FaultTarget = "list" | "download" | "storage";

export interface Fault {
  target: FaultTarget;
  /** Only requests concerning this file id (download/storage). */
  id?: string;
  /** Default 1; Infinity allowed. */
  times?: number;
  // Exactly one action:
  /** Answer with this status (and optional headers and body) instead. */
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Send headers and this many body bytes, then reset the connection. */
  cutAfterBytes?: number;
  /**
   * With `cutAfterBytes`: wait this long after those bytes before the reset, e.g. so that the
   * resume comes after the signed URL has expired.
   */
  pauseBeforeCutMs?: number;
  /** Send headers and this many body bytes, then nothing until the client goes away. */
  stallAfterBytes?: number;
  /** Wait this long before answering normally. */
  stallBeforeHeadersMs?: number;
  /** storage: answer 200 with the full body even when Range was sent. */
  ignoreRange?: boolean;
  /** storage: the right length with some bytes flipped. */
  corruptBytes?: boolean;
  /**
   * storage: the file as a gzip object (`Content-Encoding: gzip`, as a store holding compressed
   * objects sends them); ranges count compressed bytes. Bytes from `gzipOf` in storage.ts. An
   * action alone, or with `cutAfterBytes`, `stallAfterBytes` or `ignoreRange` (then in bytes of
   * the gzip object).
   */
  gzip?: boolean;
  /** storage: 403 "Request has expired"; download: redirect to an already expired URL. */
  expireUrl?: boolean;
  /**
   * download: 404 for a file the listing names. "unavailable": with the reference's text ("The
   * log file was not found or is no longer available"); "plain": FastAPI's bare "Not Found".
   */
  gone?: "unavailable" | "plain";
  /** list: has_more true and last_end_time equal to the request's `after`. */
  repeatCursor?: boolean;
  /** list: has_more true and last_end_time one hour before `after`. */
  backwardsCursor?: boolean;
  /** list: has_more true, no data, last_end_time one second past `after`. */
  emptyPageAdvance?: boolean;
  /** list: the JSON document twice, separated by a newline. */
  multiDocument?: boolean;
}

type Action = Exclude<
  keyof Fault,
  "target" | "id" | "times" | "headers" | "body" | "gzip" | "pauseBeforeCutMs"
>;

/** The actions `gzip` may shape. */
const WITH_GZIP: readonly Action[] = ["cutAfterBytes", "stallAfterBytes", "ignoreRange"];

/** Which targets each action makes sense for. */
const ACTIONS: Record<Action, readonly FaultTarget[]> = {
  status: ["list", "download", "storage"],
  cutAfterBytes: ["list", "download", "storage"],
  stallAfterBytes: ["list", "download", "storage"],
  stallBeforeHeadersMs: ["list", "download", "storage"],
  ignoreRange: ["storage"],
  corruptBytes: ["storage"],
  expireUrl: ["download", "storage"],
  gone: ["download"],
  repeatCursor: ["list"],
  backwardsCursor: ["list"],
  emptyPageAdvance: ["list"],
  multiDocument: ["list"],
};

/** Throws when a fault has no action, several, or one its target cannot do. */
export function validateFault(fault: Fault): void {
  if (!["list", "download", "storage"].includes(fault.target)) {
    throw new TypeError(`unknown fault target ${fault.target}`);
  }
  validatePause(fault);
  const actions = (Object.keys(ACTIONS) as Action[]).filter((a) =>
    fault[a] !== undefined && fault[a] !== false
  );
  if (fault.gzip) {
    if (fault.target !== "storage") throw new TypeError("gzip applies to target storage only");
    if (actions.length === 0 || (actions.length === 1 && WITH_GZIP.includes(actions[0]))) {
      return validateTimes(fault);
    }
    throw new TypeError(`gzip goes alone or with one of ${WITH_GZIP.join(", ")}`);
  }
  if (actions.length !== 1) {
    throw new TypeError(`a fault needs exactly one action, got ${actions.join(", ") || "none"}`);
  }
  if (!ACTIONS[actions[0]].includes(fault.target)) {
    throw new TypeError(`${actions[0]} does not apply to target ${fault.target}`);
  }
  if ((fault.headers || fault.body !== undefined) && actions[0] !== "status") {
    throw new TypeError("headers and body go with status");
  }
  validateTimes(fault);
}

function validatePause(fault: Fault): void {
  if (fault.pauseBeforeCutMs === undefined) return;
  if (fault.cutAfterBytes === undefined) {
    throw new TypeError("pauseBeforeCutMs goes with cutAfterBytes");
  }
  if (!(fault.pauseBeforeCutMs >= 0)) throw new TypeError("pauseBeforeCutMs must be >= 0");
}

function validateTimes(fault: Fault): void {
  const times = fault.times ?? 1;
  if (!(times >= 1)) throw new TypeError(`fault.times must be >= 1, got ${times}`);
}

/** The queue. `take` hands out the first fault matching a request and counts it used. */
export class FaultQueue {
  #queue: { fault: Fault; left: number }[] = [];
  #used = 0;

  push(fault: Fault): void {
    validateFault(fault);
    this.#queue.push({ fault: { ...fault }, left: fault.times ?? 1 });
  }

  clear(): void {
    this.#queue = [];
  }

  /** The first queued fault for this target (and file id, when the fault names one). */
  take(target: FaultTarget, id?: string): Fault | undefined {
    const i = this.#queue.findIndex((q) =>
      q.fault.target === target &&
      (q.fault.id === undefined || target === "list" || q.fault.id === id)
    );
    if (i < 0) return undefined;
    const entry = this.#queue[i];
    entry.left--;
    this.#used++;
    if (entry.left <= 0) this.#queue.splice(i, 1);
    return entry.fault;
  }

  /** Faults still queued (a fault with uses left counts once). */
  remaining(): number {
    return this.#queue.length;
  }

  /** How many times any fault has been applied so far. */
  used(): number {
    return this.#used;
  }
}
