/**
 * RFC 5424 syslog messages and their octet-counting frames (RFC 6587 section 3.4.1), as the
 * syslog destination sends them: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, with
 * APP-NAME `oai-compliance-logs`, MSGID the event type, TIMESTAMP the record's `timestamp`, no
 * structured data, and the record's bytes, untouched, as MSG.
 *
 * MSG carries no UTF-8 byte order mark: RFC 5424 allows MSG-ANY, and rsyslog (like most
 * receivers) would keep a BOM as the first bytes of the message, so the record a SIEM parses
 * would no longer be the JSON that was sent.
 *
 * @example
 * ```ts
 * const header = syslogHeader({ priority: priorityOf(13, 6), hostname: "h", procId: "7", msgId: "AUTH_LOG" });
 * const record = new TextEncoder().encode('{"timestamp":"2026-07-01T00:00:00Z"}');
 * const { timestamp } = recordFacts(record); // "2026-07-01T00:00:00.000000Z"
 * const frame = syslogFrame(header, timestamp, record);
 * // "106 <110>1 2026-07-01T00:00:00.000000Z h oai-compliance-logs 7 AUTH_LOG - {...}"
 * ```
 */
import { toMicros } from "../time.ts";
import { isoInstant } from "../destinations/lines.ts";

export const SYSLOG_APP_NAME = "oai-compliance-logs";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** RFC 5424 facility names (section 6.2.1), by code. */
export const FACILITIES = [
  "kern",
  "user",
  "mail",
  "daemon",
  "auth",
  "syslog",
  "lpr",
  "news",
  "uucp",
  "cron",
  "authpriv",
  "ftp",
  "ntp",
  "audit",
  "alert",
  "clock",
  "local0",
  "local1",
  "local2",
  "local3",
  "local4",
  "local5",
  "local6",
  "local7",
] as const;

/** RFC 5424 severity names, by code. */
export const SEVERITIES = [
  "emerg",
  "alert",
  "crit",
  "err",
  "warning",
  "notice",
  "info",
  "debug",
] as const;

/** Other spellings users type (`security` is RFC 3164's name for auth, `error` for err). */
const ALIASES: Record<string, string> = {
  security: "auth",
  error: "err",
  warn: "warning",
  panic: "emerg",
  emergency: "emerg",
  critical: "crit",
  informational: "info",
};

/**
 * The code of a facility or severity given by name (`local0`, `info`) or number, or undefined
 * when it is neither.
 *
 * @example
 * ```ts
 * codeOf("local3", FACILITIES); // 19
 * codeOf("6", SEVERITIES); // 6
 * ```
 */
export function codeOf(text: string, names: readonly string[]): number | undefined {
  const word = text.trim().toLowerCase();
  if (/^\d+$/.test(word)) {
    const n = Number(word);
    return n < names.length ? n : undefined;
  }
  const index = names.indexOf(ALIASES[word] ?? word);
  return index === -1 ? undefined : index;
}

/** PRI: facility times 8 plus severity. */
export function priorityOf(facility: number, severity: number): number {
  return facility * 8 + severity;
}

/** What stays the same in every message of a run but the MSGID and the timestamp. */
export interface HeaderFields {
  priority: number;
  hostname: string;
  procId: string;
  msgId: string;
}

/** A header field as RFC 5424 allows it: printable US-ASCII, no spaces, at most `max` long. */
export function headerField(text: string, max: number): string {
  const cleaned = text.replace(/[^\x21-\x7e]/g, "_").slice(0, max);
  return cleaned === "" ? "-" : cleaned;
}

/**
 * The part of a message before TIMESTAMP, and the part after it up to MSG, for one event type:
 * `<PRI>1 ` and ` HOSTNAME APP-NAME PROCID MSGID - `.
 */
export interface SyslogHeader {
  head: Uint8Array;
  tail: Uint8Array;
}

export function syslogHeader(fields: HeaderFields): SyslogHeader {
  return {
    head: encoder.encode(`<${fields.priority}>1 `),
    tail: encoder.encode(
      ` ${headerField(fields.hostname, 255)} ${SYSLOG_APP_NAME} ${
        headerField(fields.procId, 128)
      } ${headerField(fields.msgId, 32)} - `,
    ),
  };
}

/**
 * An RFC 3339 instant as an RFC 5424 TIMESTAMP in UTC with microseconds
 * (`2026-07-01T12:00:00.123456Z`), or `-` (NILVALUE) when it is not one.
 *
 * @example
 * ```ts
 * syslogTimestamp("2026-07-01T14:00:00.5+02:00"); // "2026-07-01T12:00:00.500000Z"
 * ```
 */
export function syslogTimestamp(value: unknown): string {
  if (typeof value !== "string") return "-";
  const last = value.charCodeAt(value.length - 1);
  if (last === 0x5a || last === 0x7a) {
    // In UTC already: the instant's own digits, once they are known to be a valid instant.
    const instant = isoInstant(value);
    if (instant !== undefined) {
      const fraction = String(instant.micros);
      return `${value.slice(0, 10)}T${value.slice(11, 19)}.${
        "000000".slice(fraction.length)
      }${fraction}Z`;
    }
  }
  const micros = toMicros(value);
  if (micros === undefined || micros < 0n) return "-";
  const ms = Number(micros / 1000n);
  const date = new Date(ms);
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() > 9999) return "-";
  const fraction = String(micros % 1_000_000n).padStart(6, "0");
  return `${date.toISOString().slice(0, 19)}.${fraction}Z`;
}

/** What a record says about itself, for its header and for messages. */
export interface RecordFacts {
  timestamp: string;
  eventId?: string;
}

/** The record's `timestamp` (as a TIMESTAMP) and `event_id`, when it is a JSON object. */
export function recordFacts(record: Uint8Array): RecordFacts {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(record));
  } catch {
    return { timestamp: "-" };
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return { timestamp: "-" };
  const fields = parsed as Record<string, unknown>;
  return {
    timestamp: syslogTimestamp(fields.timestamp),
    eventId: typeof fields.event_id === "string" ? fields.event_id : undefined,
  };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const TIMESTAMP_KEY = encoder.encode("timestamp");

/** Whether `bytes[from, to)` are exactly `word`. */
function bytesEqual(bytes: Uint8Array, from: number, to: number, word: Uint8Array): boolean {
  if (to - from !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (bytes[from + i] !== word[i]) return false;
  return true;
}

/** The index of the quote that ends the string starting after `from`, or -1. */
function stringEnd(bytes: Uint8Array, from: number): number {
  for (let i = from; i < bytes.length; i++) {
    if (bytes[i] === BACKSLASH) i++;
    else if (bytes[i] === QUOTE) return i;
  }
  return -1;
}

/**
 * The record's top-level `timestamp` as a TIMESTAMP, found by scanning its bytes (no JSON
 * parse: a fifth of the cost per record): keys are read only at the top level of an object, so
 * a nested `timestamp` is never taken for it. `-` when there is none.
 *
 * @example
 * ```ts
 * const record = new TextEncoder().encode('{"a":{"timestamp":"x"},"timestamp":"2026-07-01T00:00:00Z"}');
 * recordTimestamp(record); // "2026-07-01T00:00:00.000000Z"
 * ```
 */
export function recordTimestamp(bytes: Uint8Array): string {
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      const end = stringEnd(bytes, i + 1);
      if (end === -1) return "-";
      if (depth === 1 && expectKey && bytesEqual(bytes, i + 1, end, TIMESTAMP_KEY)) {
        let at = end + 1;
        while (bytes[at] === 0x20 || bytes[at] === 0x09) at++;
        if (bytes[at++] !== 0x3a) return "-";
        while (bytes[at] === 0x20 || bytes[at] === 0x09) at++;
        if (bytes[at] !== QUOTE) return "-";
        const valueEnd = stringEnd(bytes, at + 1);
        if (valueEnd === -1 || valueEnd - at > 64) return "-";
        return syslogTimestamp(decoder.decode(bytes.subarray(at + 1, valueEnd)));
      }
      expectKey = false;
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      expectKey = c === 0x7b && depth === 1;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    } else if (c === 0x2c) {
      if (depth === 1) expectKey = true;
    } else if (depth === 0 && c !== 0x20 && c !== 0x09) {
      return "-"; // Not a JSON object.
    }
  }
  return "-";
}

/** The `event_id` of a record's first bytes (all that may be read of one too large). */
export function eventIdIn(head: Uint8Array): string | undefined {
  const match = /"event_id"\s*:\s*"((?:[^"\\]|\\.){1,200})"/.exec(decoder.decode(head));
  if (!match) return undefined;
  try {
    return JSON.parse(`"${match[1]}"`);
  } catch {
    return undefined;
  }
}

/** The length a message of `record` takes: header, timestamp and record. */
export function messageLength(header: SyslogHeader, timestamp: string, recordBytes: number) {
  return header.head.length + timestamp.length + header.tail.length + recordBytes;
}

/**
 * One octet-counted frame, `MSG-LEN SP SYSLOG-MSG`, of the message for `record` with `timestamp`.
 *
 * @example
 * ```ts
 * declare const header: SyslogHeader;
 * const frame = syslogFrame(header, "-", new TextEncoder().encode("{}"));
 * ```
 */
export function syslogFrame(header: SyslogHeader, timestamp: string, record: Uint8Array) {
  const length = messageLength(header, timestamp, record.length);
  return framedMessage(`${length} `, header, timestamp, record, "");
}

/**
 * The message for `record` between `prefix` and `suffix` in one buffer (a frame of any protocol:
 * octet counting's `LEN SP`, RELP's `TXNR syslog LEN SP` ... `LF`).
 */
export function framedMessage(
  prefix: string,
  header: SyslogHeader,
  timestamp: string,
  record: Uint8Array,
  suffix: string,
): Uint8Array {
  const length = messageLength(header, timestamp, record.length);
  const frame = new Uint8Array(prefix.length + length + suffix.length);
  let at = writeAscii(prefix, frame, 0);
  frame.set(header.head, at);
  at += header.head.length;
  at = writeAscii(timestamp, frame, at);
  frame.set(header.tail, at);
  at += header.tail.length;
  frame.set(record, at);
  at += record.length;
  writeAscii(suffix, frame, at);
  return frame;
}

/**
 * Writes `text` (ASCII: counts, `syslog`, a TIMESTAMP) into `frame` at `at`, code unit by code
 * unit (an `encodeInto` on a `subarray` per piece cost a tenth of a delivery's CPU); where it
 * ended. Anything else is encoded as UTF-8.
 */
function writeAscii(text: string, frame: Uint8Array, at: number): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return at - i + encoder.encodeInto(text, frame.subarray(at - i)).written;
    frame[at++] = c;
  }
  return at;
}

/** The message itself, without a frame. */
export function syslogMessage(header: SyslogHeader, timestamp: string, record: Uint8Array) {
  return framedMessage("", header, timestamp, record, "");
}

/** `message` framed by its octet count (RFC 6587): `LEN SP MSG`. */
export function octetFrame(message: Uint8Array): Uint8Array {
  const prefix = encoder.encode(`${message.length} `);
  const frame = new Uint8Array(prefix.length + message.length);
  frame.set(prefix);
  frame.set(message, prefix.length);
  return frame;
}

/**
 * Reads octet-counted frames back out of a byte stream (for tests and fake servers): feed it
 * chunks, it returns every whole message so far.
 *
 * @example
 * ```ts
 * const reader = new OctetFrameReader();
 * reader.push(new TextEncoder().encode("3 abc2 d")); // [abc]
 * reader.push(new TextEncoder().encode("e")); // [de]
 * ```
 */
export class OctetFrameReader {
  #buffer = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    const messages: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      const space = joined.indexOf(0x20, at);
      if (space === -1) break;
      const length = Number(decoder.decode(joined.subarray(at, space)));
      if (!Number.isSafeInteger(length) || length < 0) throw new Error("not an octet count");
      if (joined.length < space + 1 + length) break;
      messages.push(joined.slice(space + 1, space + 1 + length));
      at = space + 1 + length;
    }
    this.#buffer = joined.slice(at);
    return messages;
  }
}
