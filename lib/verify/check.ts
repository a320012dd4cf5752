/**
 * Verifies an archive against its manifests: reads every manifest and checks each job's chain
 * (links, sequence, closing lines, signatures), re-reads every stored object (decompressing
 * `.gz`) and compares it with what the manifests recorded, notes on the way which event ids
 * appear more than once (information: lib/verify/duplicate_events.ts), and works out which time
 * ranges no run listed. Consequences are grouped under their cause: a removed manifest is one chain break,
 * and the stored files and the window it held are listed under it, not again as unexpected
 * files and holes.
 *
 * @example
 * ```ts
 * import { LocalArchiveStore } from "../manifest/local_store.ts";
 * const result = await checkArchive(new LocalArchiveStore("logs"), {});
 * result.findings.filter((f) => f.severity === "problem").length; // 0 when intact
 * ```
 */
import { type Damage, linkOf, parseManifest, type Segment, walkChains } from "../manifest/chain.ts";
import type { EntryLine, FileLine } from "../manifest/format.ts";
import { hashObject } from "../manifest/hash_object.ts";
import { readManifests } from "../manifest/read_ahead.ts";
import type { SignatureChecker } from "../manifest/signing.ts";
import type { ArchiveStore } from "../manifest/store.ts";
import { STORED_PATH } from "../manifest/writer.ts";
import { toMicros } from "../time.ts";
import type { ChainHead, Finding, Interval, TypeFigures } from "./model.ts";
import { DuplicateEvents, plainReader } from "./duplicate_events.ts";

export interface CheckOptions {
  publicKey?: SignatureChecker;
  /** Told after each object is read: its bytes (for progress). */
  onProgress?: (files: number, bytes: number) => void;
}

/** A recorded file, with where it was recorded. */
export interface RecordedFile {
  line: FileLine;
  manifest: string;
  status?: "verified" | "altered" | "missing";
}

export interface CheckResult {
  findings: Finding[];
  types: Map<string, TypeFigures>;
  chains: ChainHead[];
  principals: string[];
  manifests: number;
  /** Every id the manifests recorded per event type (files, gone, skipped). */
  recordedIds: Map<string, Map<string, EntryLine>>;
  /** Stored objects no manifest names, by event type and id (for `--against-api`). */
  unrecordedIds: Map<string, Set<string>>;
}

/** The event type folder a path is under (`AUTH_LOG/...` or `event_type=AUTH_LOG/...`). */
const TYPE_FOLDER = /^(?:event_type=)?([A-Z0-9_]+)\//;

/** A removed stretch of a job's chain: the break, and the window per type it took with it. */
interface MissingStretch {
  finding: Finding;
  eventTypes: string[];
  /** Per event type; `from` undefined: from the beginning. */
  windows: Map<string, { from?: string; to?: string }>;
}

export async function checkArchive(
  store: ArchiveStore,
  options: CheckOptions,
): Promise<CheckResult> {
  const findings: Finding[] = [];
  const names = await store.manifests();
  const segments: Segment[] = [];
  for await (const { name, text } of readManifests(store, names)) {
    const parsed = parseManifest(name, text);
    segments.push(...parsed.segments);
    for (const damage of parsed.damage) findings.push(damageFinding(damage));
  }

  const { chains, stretches } = await checkChains(segments, findings, options.publicKey);
  const types = new Map<string, TypeFigures>();
  const figures = (eventType: string): TypeFigures => {
    let entry = types.get(eventType);
    if (!entry) {
      entry = {
        eventType,
        files: 0,
        bytes: 0,
        events: 0,
        firstEndTime: null,
        lastEndTime: null,
        verified: 0,
        problems: 0,
        covered: [],
        holes: [],
        gone: [],
        damaged: [],
        archivedHours: {},
      };
      types.set(eventType, entry);
    }
    return entry;
  };

  // What the manifests recorded.
  const recorded = new Map<string, RecordedFile>();
  const recordedIds = new Map<string, Map<string, EntryLine>>();
  const windows = new Map<string, Interval[]>();
  /** Altered files a run kept aside (explained, not unexpected). */
  const keptAside = new Set<string>();
  for (const segment of segments) {
    for (const [type, window] of Object.entries(segment.header.line.windows ?? {})) {
      figures(type);
      const list = windows.get(type) ?? [];
      list.push({ from: window.from, to: window.to });
      windows.set(type, list);
    }
    for (const { line } of segment.entries) {
      const type = line.event_type;
      const ids = recordedIds.get(type) ?? new Map<string, EntryLine>();
      recordedIds.set(type, ids);
      const earlier = ids.get(line.id);
      if (line.type === "file" && earlier?.type === "file") {
        findings.push({
          kind: "duplicate",
          severity: "problem",
          message: `${line.id} (${type}) is recorded as stored twice: at ${earlier.path} and ` +
            `at ${line.path} (${segment.manifest})`,
          eventType: type,
          id: line.id,
          path: line.path,
          manifest: segment.manifest,
        });
        figures(type).problems++;
      }
      if (!earlier || line.type === "file") ids.set(line.id, line);
      if (line.type === "file") {
        recorded.set(line.path, { line, manifest: segment.manifest });
        const f = figures(type);
        f.files++;
        f.bytes += line.file_size ?? 0;
        f.events += line.lines ?? 0;
        const hour = line.end_time.slice(0, 13);
        f.archivedHours[hour] = (f.archivedHours[hour] ?? 0) + 1;
        f.firstEndTime = earliest(f.firstEndTime, line.end_time);
        f.lastEndTime = latest(f.lastEndTime, line.end_time);
      } else if (line.type === "gone") {
        figures(type).gone.push(line.end_time);
        findings.push({
          kind: "gone",
          severity: "explained",
          message: `${line.id} (${type}, end_time ${line.end_time}) was listed but the API no ` +
            `longer had it (${line.reason}); recorded by the run, ${segment.manifest}`,
          eventType: type,
          id: line.id,
          manifest: segment.manifest,
        });
      } else if (line.type === "kept_aside") {
        // The file stored again after this is the one to check: not a duplicate of the first.
        ids.delete(line.id);
        keptAside.add(line.aside);
        findings.push({
          kind: "kept_aside",
          severity: "explained",
          message: `${line.path} (${line.id}, ${type}) no longer matched its listing when a run ` +
            `found it (${line.aside_size} bytes, sha256 ${line.aside_sha256}): kept aside as ` +
            `${line.aside} and stored again; recorded by ${segment.manifest}`,
          eventType: type,
          id: line.id,
          path: line.aside,
          manifest: segment.manifest,
        });
      } else {
        findings.push({
          kind: "skipped",
          severity: "explained",
          message: `${line.id} (${type}, end_time ${line.end_time}) was skipped by the operator ` +
            `(state skip): ${line.reason}`,
          eventType: type,
          id: line.id,
          manifest: segment.manifest,
        });
      }
    }
  }

  // What the archive holds (a run at work has stored files its manifest does not name yet).
  const live = new Set((await store.liveRuns()).flat());
  let files = 0;
  let bytes = 0;
  const seen = new Set<string>();
  const unrecordedIds = new Map<string, Set<string>>();
  /** Event ids seen in more than one place (information: delivery is at least once). */
  const duplicates = new DuplicateEvents();
  for await (const object of store.objects()) {
    if (object.temp === "live") continue; // A run at work: its file is not stored yet.
    if (keptAside.has(object.path)) continue; // Reported above, with both names and hashes.
    const record = recorded.get(object.path);
    if (!record) {
      const parsed = STORED_PATH.exec(object.path);
      if (parsed && !object.temp) {
        const set = unrecordedIds.get(parsed[1]) ?? new Set<string>();
        set.add(parsed[3]);
        unrecordedIds.set(parsed[1], set);
      }
      const finding: Finding = {
        kind: "unexpected",
        severity: "problem",
        message: object.temp
          ? `${object.path}: a temp file of a run that died (safe to delete)`
          : `${object.path}: in the archive, but in no manifest`,
        path: object.path,
        eventType: parsed?.[1] ?? TYPE_FOLDER.exec(object.path)?.[1],
      };
      const stretch = parsed && !object.temp
        ? stretchOf(stretches, parsed[1], parsed[2])
        : undefined;
      if (stretch) {
        finding.severity = "info";
        finding.message = `${object.path}: stored, in no remaining manifest (it was recorded in ` +
          `the missing one, most likely)`;
        stretch.finding.consequences!.push(finding);
      } else if (parsed && !object.temp && live.has(parsed[1])) {
        finding.severity = "info";
        finding.message = `${object.path}: stored by a run still at work, which records it in ` +
          "its manifest when its pass ends";
        findings.push(finding);
      } else {
        findings.push(finding);
        if (parsed) figures(parsed[1]).problems++;
      }
      continue;
    }
    seen.add(object.path);
    const { line } = record;
    const scan = duplicates.file(line.event_type, object.path);
    const hashed = await hashObject(store, object.path, object.path.endsWith(".gz"), (n) => {
      bytes += n;
    }, (chunk) => scan.push(chunk));
    scan.end();
    files++;
    options.onProgress?.(files, bytes);
    const storedSize = line.stored_size ?? line.file_size;
    const storedSha = line.stored_sha256 ?? line.file_sha256;
    const why: string[] = [];
    if (storedSize !== undefined && hashed.storedBytes !== storedSize) {
      why.push(`size ${hashed.storedBytes} bytes, the manifest says ${storedSize}`);
    } else if (storedSha !== undefined && hashed.storedSha256 !== storedSha) {
      why.push(`SHA-256 ${hashed.storedSha256}, the manifest says ${storedSha}`);
    }
    if (!hashed.ok) why.push(hashed.why);
    else if (line.stored_sha256 !== undefined && why.length === 0) {
      if (line.file_sha256 !== undefined && hashed.plainSha256 !== line.file_sha256) {
        why.push(
          `decompressed SHA-256 ${hashed.plainSha256}, the listing said ${line.file_sha256}`,
        );
      }
    }
    const f = figures(line.event_type);
    if (why.length > 0) {
      record.status = "altered";
      f.problems++;
      f.damaged.push(line.end_time);
      findings.push({
        kind: "altered",
        severity: "problem",
        message: `${object.path}: altered since it was stored: ${why.join("; ")} ` +
          `(${record.manifest})`,
        path: object.path,
        eventType: line.event_type,
        id: line.id,
        manifest: record.manifest,
      });
    } else {
      record.status = "verified";
      f.verified++;
    }
  }
  findings.push(...await duplicates.findings(plainReader(store)));
  for (const [path, record] of recorded) {
    if (seen.has(path)) continue;
    record.status = "missing";
    const f = figures(record.line.event_type);
    f.problems++;
    f.damaged.push(record.line.end_time);
    findings.push({
      kind: "missing",
      severity: "problem",
      message: `${path}: recorded in ${record.manifest}, not in the archive`,
      path,
      eventType: record.line.event_type,
      id: record.line.id,
      manifest: record.manifest,
    });
  }

  // What no run listed.
  for (const [type, list] of windows) {
    const f = figures(type);
    f.covered = merge(list);
    for (let i = 1; i < f.covered.length; i++) {
      const hole = { from: f.covered[i - 1].to, to: f.covered[i].from };
      const stretch = stretches.find((s) => s.eventTypes.includes(type) && covers(s, type, hole));
      const finding: Finding = {
        kind: "window_hole",
        severity: "problem",
        message: `${type}: no run listed ${hole.from} to ${hole.to}`,
        eventType: type,
        ...hole,
      };
      if (stretch) {
        finding.severity = "info";
        finding.message = `${type}: the window ${hole.from} to ${hole.to} was in the missing ` +
          "manifest";
        stretch.finding.consequences!.push(finding);
      } else {
        f.holes.push(hole);
        f.problems++;
        findings.push(finding);
      }
    }
  }
  const principals = [...new Set(segments.map((s) => s.header.line.principal))].sort();
  return {
    findings,
    types,
    chains,
    principals,
    manifests: names.length,
    recordedIds,
    unrecordedIds,
  };
}

/**
 * Each job's segments in sequence (the chain's rule: `walkChains`): links, gaps, forks, closing
 * lines and signatures, every break a finding (a gap also the stretch it took with it).
 */
async function checkChains(
  segments: Segment[],
  findings: Finding[],
  publicKey: SignatureChecker | undefined,
): Promise<{ chains: ChainHead[]; stretches: MissingStretch[] }> {
  const chains: ChainHead[] = [];
  const stretches: MissingStretch[] = [];
  const links = segments.map((segment) => ({ ...linkOf(segment), segment }));
  for (const [job, steps] of walkChains(links)) {
    let signature: ChainHead["signature"] = "unsigned";
    let keyId: string | undefined;
    for (const step of steps) {
      const { segment } = step.link;
      const previous = step.previous?.segment;
      const { header } = segment;
      const where = `${segment.manifest}`;
      const eventTypes = Object.keys(header.line.windows ?? {});
      if (step.fault?.kind === "gap") {
        const { expected, missing: count } = step.fault;
        const windows = new Map<string, { from?: string; to?: string }>();
        for (const type of eventTypes) {
          windows.set(type, {
            from: previous?.header.line.windows?.[type]?.to,
            to: header.line.windows[type]?.from,
          });
        }
        const between = previous
          ? `between ${previous.manifest} and ${where}`
          : `before ${where}, the first one left`;
        const finding: Finding = {
          kind: "chain_break",
          severity: "problem",
          message: `${job}: ${count} manifest${count === 1 ? " is" : "s are"} missing ${between} ` +
            `(sequence ${expected}${count > 1 ? `-${header.line.sequence - 1}` : ""}); ` +
            "what it recorded cannot be verified",
          manifest: segment.manifest,
          consequences: [],
        };
        const first = [...windows.values()][0];
        if (first?.from) finding.from = first.from;
        if (first?.to) finding.to = first.to;
        findings.push(finding);
        stretches.push({ finding, eventTypes, windows });
      } else if (step.fault?.kind === "fork") {
        findings.push({
          kind: "chain_break",
          severity: "problem",
          message: `${job}: ${where} has sequence ${header.line.sequence}, already taken by ` +
            `${previous!.manifest}: the chain forks`,
          manifest: segment.manifest,
        });
      } else if (step.fault?.kind === "unlinked") {
        findings.push({
          kind: "chain_break",
          severity: "problem",
          message: previous
            ? `${job}: ${where} does not link to ${previous.manifest} (its prev is not the ` +
              "hash of that manifest's last line: one of them was changed or replaced)"
            : `${job}: ${where} is the first manifest but links to an earlier one`,
          manifest: segment.manifest,
        });
      }
      const close = segment.close?.line;
      if (!close) {
        findings.push({
          kind: "chain_break",
          severity: "problem",
          message: `${where}: has no closing line (cut short or truncated)`,
          manifest: segment.manifest,
        });
        signature = "unsigned";
      } else if (close.signature === undefined) {
        signature = "unsigned";
        keyId = undefined;
        if (publicKey) {
          findings.push({
            kind: "chain_break",
            severity: "problem",
            message: `${where}: not signed, but a --public-key was given`,
            manifest: segment.manifest,
          });
        }
      } else {
        keyId = close.key_id;
        if (!publicKey) signature = "signed, not checked";
        else if (close.key_id !== undefined && close.key_id !== publicKey.keyId) {
          signature = "invalid";
          findings.push({
            kind: "chain_break",
            severity: "problem",
            message: `${where}: signed by another key (${close.key_id}) than --public-key ` +
              `(${publicKey.keyId})`,
            manifest: segment.manifest,
          });
        } else if (await publicKey.verify(close.head, close.signature)) {
          signature = "verified";
        } else {
          signature = "invalid";
          findings.push({
            kind: "chain_break",
            severity: "problem",
            message: `${where}: its signature does not verify with --public-key`,
            manifest: segment.manifest,
          });
        }
      }
    }
    chains.push({
      job,
      manifests: steps.length,
      head: steps.at(-1)!.link.lastHash,
      signature,
      ...(keyId ? { keyId } : {}),
    });
  }
  return { chains, stretches };
}

function damageFinding(damage: Damage): Finding {
  return {
    kind: "chain_break",
    severity: "problem",
    message: `${damage.manifest} line ${damage.line}: ${damage.why}`,
    manifest: damage.manifest,
  };
}

/** The missing stretch whose window for `type` takes in `day` (YYYY-MM-DD), if any. */
function stretchOf(
  stretches: MissingStretch[],
  type: string,
  day: string,
): MissingStretch | undefined {
  return stretches.find((stretch) => {
    const window = stretch.windows.get(type);
    if (!window) return false;
    const from = window.from?.slice(0, 10) ?? "0000-00-00";
    const to = window.to?.slice(0, 10) ?? "9999-99-99";
    return from <= day && day <= to;
  });
}

function covers(stretch: MissingStretch, type: string, hole: Interval): boolean {
  const window = stretch.windows.get(type);
  if (!window) return false;
  const from = window.from === undefined ? -Infinity : micros(window.from);
  const to = window.to === undefined ? Infinity : micros(window.to);
  return from <= micros(hole.from) && micros(hole.to) <= to;
}

/** Intervals merged where they touch or overlap, in time order. */
export function merge(list: Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => micros(a.from) - micros(b.from));
  const out: Interval[] = [];
  for (const interval of sorted) {
    const last = out.at(-1);
    if (last && micros(interval.from) <= micros(last.to)) {
      if (micros(interval.to) > micros(last.to)) last.to = interval.to;
    } else out.push({ ...interval });
  }
  return out;
}

function micros(iso: string): number {
  return Number(toMicros(iso) ?? 0n);
}

function earliest(a: string | null, b: string): string {
  return a === null || micros(b) < micros(a) ? b : a;
}

function latest(a: string | null, b: string): string {
  return a === null || micros(b) > micros(a) ? b : a;
}
