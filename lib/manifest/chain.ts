/**
 * Reading manifests back: a manifest's text split into its runs (a header, its entries, its
 * closing line), each line's hash, and the links inside it that do not hold; and the head of a
 * job's chain in an archive (the hash of the last line of its latest manifest, and its sequence
 * number), where the next manifest of that job links on.
 *
 * @example
 * ```ts
 * import type { ArchiveStore } from "./store.ts";
 * declare const store: ArchiveStore;
 * const head = await jobHead(store, "ws-1/AUTH_LOG"); // { hash, sequence } or undefined
 * ```
 */
import {
  type CloseLine,
  type EntryLine,
  type HeaderLine,
  lineHash,
  type ManifestLine,
  parseLine,
} from "./format.ts";
import { readManifests } from "./read_ahead.ts";
import type { ArchiveStore } from "./store.ts";

/** One line as read: its text's hash and what it says. */
export interface ReadLine<L extends ManifestLine = ManifestLine> {
  /** 1-based line number in its manifest. */
  number: number;
  hash: string;
  line: L;
}

/** One run's part of a manifest: its header, entries and closing line (if it has one). */
export interface Segment {
  manifest: string;
  header: ReadLine<HeaderLine>;
  entries: ReadLine<EntryLine>[];
  close?: ReadLine<CloseLine>;
  /** The hash of the segment's last line: what the next manifest of its job links to. */
  lastHash: string;
}

/** A link inside one manifest that does not hold, or a line that cannot be read. */
export interface Damage {
  manifest: string;
  line: number;
  why: string;
}

export interface ParsedManifest {
  name: string;
  segments: Segment[];
  damage: Damage[];
}

/**
 * Splits manifest `text` into segments, checking that each line after a header links to the one
 * before it (a header's own link is to another manifest: checked by the chain).
 */
export function parseManifest(name: string, text: string): ParsedManifest {
  const segments: Segment[] = [];
  const damage: Damage[] = [];
  const texts = text.split("\n");
  if (texts.at(-1) === "") texts.pop();
  let current: Segment | undefined;
  let previousHash: string | undefined;
  texts.forEach((lineText, index) => {
    const number = index + 1;
    const hash = lineHash(lineText);
    let line: ManifestLine;
    try {
      line = parseLine(lineText);
    } catch (error) {
      damage.push({ manifest: name, line: number, why: `unreadable: ${(error as Error).message}` });
      previousHash = hash;
      return;
    }
    if (line.type === "header") {
      current = { manifest: name, header: { number, hash, line }, entries: [], lastHash: hash };
      segments.push(current);
    } else if (!current) {
      damage.push({ manifest: name, line: number, why: "a line before any header" });
    } else {
      if (line.prev !== previousHash) {
        damage.push({
          manifest: name,
          line: number,
          why: "its prev does not match the line before it (a line was changed, removed or " +
            "inserted)",
        });
      }
      if (current.close) {
        damage.push({ manifest: name, line: number, why: "a line after the closing line" });
      } else if (line.type === "close") {
        current.close = { number, hash, line };
        if (line.head !== previousHash || line.lines !== number - current.header.number) {
          damage.push({
            manifest: name,
            line: number,
            why: "the closing line does not name the lines before it",
          });
        }
      } else current.entries.push({ number, hash, line });
      current.lastHash = hash;
    }
    previousHash = hash;
  });
  return { name, segments, damage };
}

/**
 * The heads of every job's chain in a store, kept up to date by reading only the manifests that
 * appeared since the last look (a `--follow` job writes one an hour, for years). The head is the
 * last line of a job's segment with the highest sequence: names sort by start time, but a run
 * that started earlier may write later.
 *
 * @example
 * ```ts
 * import type { ArchiveStore } from "./store.ts";
 * declare const store: ArchiveStore;
 * const heads = new ChainHeads();
 * const head = await heads.of(store, "ws-1/AUTH_LOG"); // { hash, sequence } or undefined
 * ```
 */
export class ChainHeads {
  readonly #seen = new Set<string>();
  readonly #heads = new Map<string, { hash: string; sequence: number }>();

  /** Takes in one manifest's segments (already read elsewhere, e.g. by a recovery). */
  add(parsed: ParsedManifest): void {
    this.#seen.add(parsed.name);
    for (const segment of parsed.segments) {
      const { job, sequence } = segment.header.line;
      const head = this.#heads.get(job);
      if (head && head.sequence >= sequence) continue;
      this.#heads.set(job, { hash: segment.lastHash, sequence });
    }
  }

  /** `job`'s head after reading the manifests not seen yet. */
  async of(
    store: ArchiveStore,
    job: string,
  ): Promise<{ hash: string; sequence: number } | undefined> {
    const unseen = (await store.manifests()).filter((name) => !this.#seen.has(name));
    for await (const { name, text } of readManifests(store, unseen)) {
      this.add(parseManifest(name, text));
    }
    return this.#heads.get(job);
  }

  /** Forgets `name` (a file rewritten in place, such as `--manifest FILE`). */
  forget(name: string): void {
    this.#seen.delete(name);
  }
}

/** The head of `job`'s chain in `store` (see `ChainHeads`). */
export function jobHead(
  store: ArchiveStore,
  job: string,
): Promise<{ hash: string; sequence: number } | undefined> {
  return new ChainHeads().of(store, job);
}

/** What a manifest's run says of its place in its job's chain. */
export interface ChainLink {
  manifest: string;
  job: string;
  sequence: number;
  /** The header's `prev`: the hash of the previous manifest's last line in the job (or null). */
  prev: string | null;
  /** The hash of this run's last line. */
  lastHash: string;
}

/** A segment's place in its job's chain. */
export function linkOf(segment: Segment): ChainLink {
  const { job, sequence, prev } = segment.header.line;
  return { manifest: segment.manifest, job, sequence, prev, lastHash: segment.lastHash };
}

/** What breaks a job's chain at one run's place in it. */
export type ChainFault =
  /** `missing` manifests, sequences `expected` on, are not there before it (removed). */
  | { kind: "gap"; expected: number; missing: number }
  /** Its sequence is already the previous run's (or lower): two runs wrote one place, a fork. */
  | { kind: "fork" }
  /** Its `prev` is not the previous run's last line (or, for the first, not null). */
  | { kind: "unlinked" };

/** One run's place in its job's chain, as the walk found it. */
export interface ChainStep<L extends ChainLink = ChainLink> {
  link: L;
  /** The run before it in sequence order (not necessarily one it links to). */
  previous?: L;
  /** What breaks the chain here, if anything. */
  fault?: ChainFault;
}

/**
 * The one rule of a job's chain across manifests, for `verify` (every break, with its place)
 * and `--from-archive` (`chainBreaks`) alike: each job's runs in sequence order (then by
 * manifest name), each of which must come next (a gap is a manifest removed, a repeat a fork)
 * and link to the last line of the one before (null for the first). The walk goes on past a
 * break, each run judged against the one before it in order. Jobs come in the order first given.
 * A missing last manifest cannot be seen here. Extra fields of a link (e.g. its segment) are
 * kept.
 *
 * @example
 * ```ts
 * declare const links: ChainLink[];
 * for (const [job, steps] of walkChains(links)) {
 *   const broken = steps.filter((step) => step.fault !== undefined);
 *   console.log(job, steps.length, broken.map((step) => step.link.manifest));
 * }
 * ```
 */
export function walkChains<L extends ChainLink>(links: Iterable<L>): Map<string, ChainStep<L>[]> {
  const jobs = new Map<string, L[]>();
  for (const link of links) {
    const list = jobs.get(link.job) ?? [];
    list.push(link);
    jobs.set(link.job, list);
  }
  const walked = new Map<string, ChainStep<L>[]>();
  for (const [job, list] of jobs) {
    list.sort((a, b) => a.sequence - b.sequence || a.manifest.localeCompare(b.manifest));
    walked.set(job, list.map((link, i) => stepOf(link, list[i - 1])));
  }
  return walked;
}

function stepOf<L extends ChainLink>(link: L, previous: L | undefined): ChainStep<L> {
  const expected = (previous?.sequence ?? 0) + 1;
  let fault: ChainFault | undefined;
  if (link.sequence > expected) {
    fault = { kind: "gap", expected, missing: link.sequence - expected };
  } else if (link.sequence < expected) fault = { kind: "fork" };
  else if (link.prev !== (previous?.lastHash ?? null)) fault = { kind: "unlinked" };
  return { link, previous, fault };
}

/**
 * Where a job's chain across manifests does not hold (`walkChains`), first break per job: all
 * `--from-archive` needs to refuse an archive.
 *
 * @example
 * ```ts
 * declare const links: ChainLink[];
 * chainBreaks(links); // [] when every job's chain holds
 * ```
 */
export function chainBreaks(links: Iterable<ChainLink>): Array<{ job: string; why: string }> {
  const breaks: Array<{ job: string; why: string }> = [];
  for (const [job, steps] of walkChains(links)) {
    const broken = steps.find((step) => step.fault !== undefined);
    if (broken) breaks.push({ job, why: breakWhy(broken) });
  }
  return breaks;
}

/** A break in words, for `--from-archive`'s one line. */
function breakWhy({ link, previous, fault }: ChainStep): string {
  switch (fault?.kind) {
    case "gap": {
      const { expected, missing } = fault;
      const after = previous ? `after ${previous.manifest}` : "before it";
      return `${missing} manifest${missing === 1 ? " is" : "s are"} missing ${after} and before ` +
        `${link.manifest} (sequence ${expected}${missing > 1 ? `-${link.sequence - 1}` : ""})`;
    }
    case "fork":
      return `${link.manifest} has sequence ${link.sequence}, already taken by ` +
        `${previous!.manifest}: the chain forks`;
    default:
      return previous
        ? `${link.manifest} does not link to ${previous.manifest} (one of them was changed or ` +
          "replaced)"
        : `${link.manifest} is the first manifest but links to an earlier one`;
  }
}
