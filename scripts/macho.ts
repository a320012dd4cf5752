/**
 * Reads, verifies and ad-hoc signs 64-bit Mach-O executables, so that macOS binaries built on
 * Linux can be checked (and repaired) without Apple's `codesign`.
 *
 * macOS kills an executable whose code pages do not hash to the values in its CodeDirectory
 * ("Code Signature Invalid"), and on Apple silicon an unsigned executable does not start at all.
 * An ad-hoc signature (`codesign -s -`) carries no identity, only those hashes, so it can be
 * written anywhere: {@link adHocSign} writes the same blobs `codesign -s -` writes.
 *
 * Layout reference: Apple's `xnu` (`osfmk/kern/cs_blobs.h`) and `cctools` (`loader.h`).
 *
 * @example
 * const bytes = await Deno.readFile("dist/oai-compliance-logs-darwin-arm64");
 * const report = verifyCodeSignature(bytes);
 * if (!report.ok) console.error(report.problems.join("\n"));
 */
import { createHash } from "node:crypto";

/** `MH_MAGIC_64`: a little-endian 64-bit Mach-O (every current macOS target). */
export const MH_MAGIC_64 = 0xfeedfacf;
export const FAT_MAGIC = 0xcafebabe;
export const MH_EXECUTE = 2;
export const CPU_TYPE_X86_64 = 0x01000007;
export const CPU_TYPE_ARM64 = 0x0100000c;

export const LC_SEGMENT_64 = 0x19;
export const LC_CODE_SIGNATURE = 0x1d;

export const CSMAGIC_REQUIREMENTS = 0xfade0c01;
export const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
export const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
export const CSMAGIC_EMBEDDED_ENTITLEMENTS = 0xfade7171;
export const CSMAGIC_EMBEDDED_DER_ENTITLEMENTS = 0xfade7172;
export const CSMAGIC_BLOBWRAPPER = 0xfade0b01;

export const CSSLOT_CODEDIRECTORY = 0;
export const CSSLOT_INFOSLOT = 1;
export const CSSLOT_REQUIREMENTS = 2;
export const CSSLOT_RESOURCEDIR = 3;
export const CSSLOT_APPLICATION = 4;
export const CSSLOT_ENTITLEMENTS = 5;
export const CSSLOT_DER_ENTITLEMENTS = 7;
export const CSSLOT_ALTERNATE_CODEDIRECTORIES = 0x1000;
export const CSSLOT_SIGNATURESLOT = 0x10000;

export const CS_HASHTYPE_SHA1 = 1;
export const CS_HASHTYPE_SHA256 = 2;
export const CS_HASHTYPE_SHA256_TRUNCATED = 3;
export const CS_HASHTYPE_SHA384 = 4;

/** CodeDirectory flag: signed without an identity. */
export const CS_ADHOC = 0x2;
/** CodeDirectory flag: signed by the linker (ad-hoc, no requirements); `codesign` replaces it. */
export const CS_LINKER_SIGNED = 0x20000;
/** execSegFlags: this is the main executable. */
export const CS_EXECSEG_MAIN_BINARY = 0x1;

/** Version that carries execSeg fields; what `codesign` writes for current macOS. */
const CD_VERSION_EXECSEG = 0x20400;
const PAGE_SHIFT = 12;

/** A segment from an `LC_SEGMENT_64` command. */
export interface Segment {
  name: string;
  /** Byte offset of the load command in the file. */
  commandOffset: number;
  vmaddr: bigint;
  vmsize: bigint;
  fileoff: number;
  filesize: number;
}

/** What the header and load commands of a thin 64-bit Mach-O say. */
export interface MachO {
  cputype: number;
  cpusubtype: number;
  filetype: number;
  ncmds: number;
  sizeofcmds: number;
  flags: number;
  segments: Segment[];
  /** The `LC_CODE_SIGNATURE` command, when there is one. */
  codeSignature?: { commandOffset: number; dataoff: number; datasize: number };
}

/** The fields of a CodeDirectory that signing and verification use. */
export interface CodeDirectory {
  /** Offset of the CodeDirectory within the file. */
  offset: number;
  length: number;
  version: number;
  flags: number;
  hashOffset: number;
  identOffset: number;
  nSpecialSlots: number;
  nCodeSlots: number;
  codeLimit: number;
  hashSize: number;
  hashType: number;
  platform: number;
  pageSize: number;
  teamOffset: number;
  execSegBase: bigint;
  execSegLimit: bigint;
  execSegFlags: bigint;
  identifier: string;
}

/** One blob in the embedded signature's SuperBlob. */
export interface BlobEntry {
  slot: number;
  /** Offset of the blob within the file. */
  offset: number;
  magic: number;
  length: number;
}

/** The embedded signature: its blobs and every CodeDirectory in it. */
export interface Signature {
  offset: number;
  length: number;
  blobs: BlobEntry[];
  codeDirectories: CodeDirectory[];
}

/** Result of {@link verifyCodeSignature}: `ok` when `problems` is empty. */
export interface VerifyReport {
  ok: boolean;
  problems: string[];
  cpu: string;
  /** Pages hashed per CodeDirectory and how many matched. */
  pages: { hashType: string; total: number; matched: number }[];
  identifier?: string;
  flags?: number;
}

/** A malformed or unsupported file. */
export class MachOError extends Error {
  override name = "MachOError";
}

const CPU_NAMES: Record<number, string> = {
  [CPU_TYPE_X86_64]: "x86_64",
  [CPU_TYPE_ARM64]: "arm64",
};

/** The conventional name of a Mach-O CPU type (`x86_64`, `arm64`), or its number in hex. */
export function cpuName(cputype: number): string {
  return CPU_NAMES[cputype] ?? `0x${cputype.toString(16)}`;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function cString(bytes: Uint8Array, start: number, max: number): string {
  let end = start;
  while (end < start + max && end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(start, end));
}

function need(ok: boolean, message: string): asserts ok {
  if (!ok) throw new MachOError(message);
}

function toNumber(value: bigint, what: string): number {
  need(value <= BigInt(Number.MAX_SAFE_INTEGER), `${what} is too large`);
  return Number(value);
}

/**
 * Parses the header and the load commands this module needs (segments, code signature).
 *
 * @example
 * parseMachO(bytes).cputype === CPU_TYPE_ARM64
 */
export function parseMachO(bytes: Uint8Array): MachO {
  need(bytes.length >= 32, "file is shorter than a Mach-O header");
  const dv = view(bytes);
  const magic = dv.getUint32(0, true);
  if (dv.getUint32(0, false) === FAT_MAGIC) {
    throw new MachOError("universal (fat) Mach-O files are not supported");
  }
  need(magic === MH_MAGIC_64, `not a 64-bit Mach-O (magic 0x${magic.toString(16)})`);
  const header = {
    cputype: dv.getInt32(4, true),
    cpusubtype: dv.getInt32(8, true),
    filetype: dv.getUint32(12, true),
    ncmds: dv.getUint32(16, true),
    sizeofcmds: dv.getUint32(20, true),
    flags: dv.getUint32(24, true),
  };
  need(32 + header.sizeofcmds <= bytes.length, "load commands run past the end of the file");
  const macho: MachO = { ...header, segments: [] };
  let at = 32;
  for (let i = 0; i < header.ncmds; i++) {
    need(at + 8 <= 32 + header.sizeofcmds, `load command ${i} starts past sizeofcmds`);
    const cmd = dv.getUint32(at, true);
    const cmdsize = dv.getUint32(at + 4, true);
    need(cmdsize >= 8 && at + cmdsize <= 32 + header.sizeofcmds, `load command ${i} is malformed`);
    if (cmd === LC_SEGMENT_64) {
      need(cmdsize >= 72, `LC_SEGMENT_64 ${i} is too short`);
      macho.segments.push({
        name: cString(bytes, at + 8, 16),
        commandOffset: at,
        vmaddr: dv.getBigUint64(at + 24, true),
        vmsize: dv.getBigUint64(at + 32, true),
        fileoff: toNumber(dv.getBigUint64(at + 40, true), "segment fileoff"),
        filesize: toNumber(dv.getBigUint64(at + 48, true), "segment filesize"),
      });
    } else if (cmd === LC_CODE_SIGNATURE) {
      need(cmdsize >= 16, "LC_CODE_SIGNATURE is too short");
      macho.codeSignature = {
        commandOffset: at,
        dataoff: dv.getUint32(at + 8, true),
        datasize: dv.getUint32(at + 12, true),
      };
    }
    at += cmdsize;
  }
  return macho;
}

function parseCodeDirectory(bytes: Uint8Array, offset: number): CodeDirectory {
  const dv = view(bytes);
  need(offset + 44 <= bytes.length, "CodeDirectory runs past the end of the file");
  need(dv.getUint32(offset) === CSMAGIC_CODEDIRECTORY, "CodeDirectory has a wrong magic");
  const version = dv.getUint32(offset + 8);
  const cd: CodeDirectory = {
    offset,
    length: dv.getUint32(offset + 4),
    version,
    flags: dv.getUint32(offset + 12),
    hashOffset: dv.getUint32(offset + 16),
    identOffset: dv.getUint32(offset + 20),
    nSpecialSlots: dv.getUint32(offset + 24),
    nCodeSlots: dv.getUint32(offset + 28),
    codeLimit: dv.getUint32(offset + 32),
    hashSize: dv.getUint8(offset + 36),
    hashType: dv.getUint8(offset + 37),
    platform: dv.getUint8(offset + 38),
    pageSize: dv.getUint8(offset + 39),
    teamOffset: version >= 0x20200 ? dv.getUint32(offset + 48) : 0,
    execSegBase: 0n,
    execSegLimit: 0n,
    execSegFlags: 0n,
    identifier: "",
  };
  need(offset + cd.length <= bytes.length, "CodeDirectory runs past the end of the file");
  if (version >= 0x20300) {
    const codeLimit64 = dv.getBigUint64(offset + 56);
    if (codeLimit64 !== 0n) cd.codeLimit = toNumber(codeLimit64, "codeLimit64");
  }
  if (version >= 0x20400) {
    cd.execSegBase = dv.getBigUint64(offset + 64);
    cd.execSegLimit = dv.getBigUint64(offset + 72);
    cd.execSegFlags = dv.getBigUint64(offset + 80);
  }
  cd.identifier = cString(bytes, offset + cd.identOffset, cd.length - cd.identOffset);
  return cd;
}

/**
 * Parses the embedded signature that `LC_CODE_SIGNATURE` points at; undefined when unsigned.
 *
 * @example
 * parseSignature(bytes, parseMachO(bytes))?.codeDirectories[0].identifier
 */
export function parseSignature(bytes: Uint8Array, macho: MachO): Signature | undefined {
  const cs = macho.codeSignature;
  if (!cs) return undefined;
  need(cs.dataoff + cs.datasize <= bytes.length, "signature runs past the end of the file");
  need(cs.datasize >= 12, "signature is too short for a SuperBlob");
  const dv = view(bytes);
  const base = cs.dataoff;
  const magic = dv.getUint32(base);
  need(magic === CSMAGIC_EMBEDDED_SIGNATURE, `signature has magic 0x${magic.toString(16)}`);
  const length = dv.getUint32(base + 4);
  const count = dv.getUint32(base + 8);
  need(length <= cs.datasize, "SuperBlob is longer than LC_CODE_SIGNATURE says");
  need(12 + count * 8 <= length, "SuperBlob index runs past its length");
  const blobs: BlobEntry[] = [];
  const codeDirectories: CodeDirectory[] = [];
  for (let i = 0; i < count; i++) {
    const slot = dv.getUint32(base + 12 + i * 8);
    const rel = dv.getUint32(base + 16 + i * 8);
    need(rel + 8 <= length, `blob ${i} starts past the SuperBlob`);
    const entry = {
      slot,
      offset: base + rel,
      magic: dv.getUint32(base + rel),
      length: dv.getUint32(base + rel + 4),
    };
    need(rel + entry.length <= length, `blob ${i} runs past the SuperBlob`);
    blobs.push(entry);
    if (entry.magic === CSMAGIC_CODEDIRECTORY) {
      codeDirectories.push(parseCodeDirectory(bytes, entry.offset));
    }
  }
  return { offset: base, length, blobs, codeDirectories };
}

const HASHES: Record<number, { name: string; algorithm: string; size: number }> = {
  [CS_HASHTYPE_SHA1]: { name: "sha1", algorithm: "sha1", size: 20 },
  [CS_HASHTYPE_SHA256]: { name: "sha256", algorithm: "sha256", size: 32 },
  [CS_HASHTYPE_SHA256_TRUNCATED]: { name: "sha256-truncated", algorithm: "sha256", size: 20 },
  [CS_HASHTYPE_SHA384]: { name: "sha384", algorithm: "sha384", size: 48 },
};

function digest(algorithm: string, size: number, data: Uint8Array): Uint8Array {
  const full = createHash(algorithm).update(data).digest();
  return new Uint8Array(full.buffer, full.byteOffset, size);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}

/** The `__TEXT` segment: macOS's execSeg fields describe it. */
function textSegment(macho: MachO): Segment | undefined {
  return macho.segments.find((s) => s.name === "__TEXT");
}

/**
 * Checks what macOS checks before and while it runs an ad-hoc-signed executable: a thin 64-bit
 * Mach-O executable whose signature covers every byte before the signature and whose every page
 * (and special slot) hashes to what its CodeDirectories say.
 *
 * @example
 * const report = verifyCodeSignature(bytes, { cpu: "arm64" });
 * assert.deepEqual(report.problems, []);
 */
export function verifyCodeSignature(
  bytes: Uint8Array,
  expect: { cpu?: string } = {},
): VerifyReport {
  const problems: string[] = [];
  let macho: MachO;
  try {
    macho = parseMachO(bytes);
  } catch (error) {
    return { ok: false, problems: [String((error as Error).message)], cpu: "?", pages: [] };
  }
  const report: VerifyReport = { ok: false, problems, cpu: cpuName(macho.cputype), pages: [] };
  if (expect.cpu && report.cpu !== expect.cpu) {
    problems.push(`CPU is ${report.cpu}, expected ${expect.cpu}`);
  }
  if (macho.filetype !== MH_EXECUTE) problems.push(`filetype is ${macho.filetype}, not MH_EXECUTE`);
  let signature: Signature | undefined;
  try {
    signature = parseSignature(bytes, macho);
  } catch (error) {
    problems.push(String((error as Error).message));
  }
  const cs = macho.codeSignature;
  if (!cs) problems.push("no LC_CODE_SIGNATURE: macOS on Apple silicon refuses unsigned code");
  if (cs && !signature && problems.length === 0) problems.push("signature could not be read");
  if (signature && cs) {
    if (cs.dataoff + cs.datasize !== bytes.length) {
      problems.push(
        `signature ends at ${
          cs.dataoff + cs.datasize
        }, file is ${bytes.length} bytes (data after it)`,
      );
    }
    const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT");
    if (!linkedit || linkedit.fileoff + linkedit.filesize < cs.dataoff + cs.datasize) {
      problems.push("__LINKEDIT does not contain the signature");
    }
    if (signature.codeDirectories.length === 0) problems.push("signature has no CodeDirectory");
    for (const cd of signature.codeDirectories) {
      report.identifier ??= cd.identifier;
      report.flags ??= cd.flags;
      checkCodeDirectory(bytes, macho, signature, cd, report);
    }
  }
  report.ok = problems.length === 0;
  return report;
}

function checkCodeDirectory(
  bytes: Uint8Array,
  macho: MachO,
  signature: Signature,
  cd: CodeDirectory,
  report: VerifyReport,
): void {
  const problems = report.problems;
  const hash = HASHES[cd.hashType];
  if (!hash) {
    problems.push(`CodeDirectory uses unknown hash type ${cd.hashType}`);
    return;
  }
  const label = `CodeDirectory (${hash.name})`;
  if (cd.hashSize !== hash.size) {
    problems.push(`${label} hashSize ${cd.hashSize}, expected ${hash.size}`);
    return;
  }
  const dataoff = macho.codeSignature!.dataoff;
  if (cd.codeLimit !== dataoff) {
    problems.push(`${label} codeLimit ${cd.codeLimit} is not the signature offset ${dataoff}`);
  }
  const pageSize = cd.pageSize === 0 ? 0 : 2 ** cd.pageSize;
  const expectedSlots = pageSize === 0 ? 1 : Math.ceil(cd.codeLimit / pageSize);
  if (cd.nCodeSlots !== expectedSlots) {
    problems.push(`${label} has ${cd.nCodeSlots} code slots, ${expectedSlots} pages need hashing`);
  }
  const hashesEnd = cd.hashOffset + cd.nCodeSlots * cd.hashSize;
  if (cd.hashOffset < cd.nSpecialSlots * cd.hashSize || hashesEnd > cd.length) {
    problems.push(`${label} hash slots lie outside it`);
    return;
  }
  const text = textSegment(macho);
  if (cd.version >= 0x20400 && text) {
    if (cd.execSegBase !== BigInt(text.fileoff) || cd.execSegLimit !== BigInt(text.filesize)) {
      problems.push(`${label} execSeg does not describe __TEXT`);
    }
  }
  let matched = 0;
  let firstBad = -1;
  const slots = Math.min(cd.nCodeSlots, expectedSlots);
  for (let i = 0; i < slots; i++) {
    const start = i * pageSize;
    const end = pageSize === 0 ? cd.codeLimit : Math.min(start + pageSize, cd.codeLimit);
    const want = bytes.subarray(
      cd.offset + cd.hashOffset + i * cd.hashSize,
      cd.offset + cd.hashOffset + (i + 1) * cd.hashSize,
    );
    if (equalBytes(digest(hash.algorithm, hash.size, bytes.subarray(start, end)), want)) {
      matched++;
    } else if (firstBad < 0) firstBad = i;
  }
  report.pages.push({ hashType: hash.name, total: cd.nCodeSlots, matched });
  if (matched !== cd.nCodeSlots) {
    problems.push(
      `${label}: ${cd.nCodeSlots - matched} of ${cd.nCodeSlots} page hashes do not match ` +
        `(first at page ${firstBad}, offset ${firstBad * pageSize})`,
    );
  }
  // A blob the CodeDirectory does not hash (e.g. entitlements added later) is not bound to it.
  for (const blob of signature.blobs) {
    if (
      blob.slot > 0 && blob.slot < CSSLOT_ALTERNATE_CODEDIRECTORIES && blob.slot > cd.nSpecialSlots
    ) {
      problems.push(`blob in slot ${blob.slot} is not covered by ${label}`);
    }
  }
  // Special slot -N holds the hash of the blob in SuperBlob slot N (zero when that blob is absent).
  for (let n = 1; n <= cd.nSpecialSlots; n++) {
    const at = cd.offset + cd.hashOffset - n * cd.hashSize;
    const want = bytes.subarray(at, at + cd.hashSize);
    const blob = signature.blobs.find((b) => b.slot === n);
    if (blob) {
      const got = digest(
        hash.algorithm,
        hash.size,
        bytes.subarray(blob.offset, blob.offset + blob.length),
      );
      if (!equalBytes(got, want)) {
        problems.push(`${label} special slot ${n} does not match its blob`);
      }
    } else if (!isZero(want) && n !== CSSLOT_INFOSLOT && n !== CSSLOT_RESOURCEDIR) {
      // Info.plist and resources live outside a bare executable; anything else must be embedded.
      problems.push(`${label} special slot ${n} has a hash but the signature has no such blob`);
    }
  }
}

/** Options for {@link adHocSign}. */
export interface SignOptions {
  /** The signing identifier; defaults to the existing signature's, else `fallbackIdentifier`. */
  identifier?: string;
  /** Used when neither `identifier` nor an existing signature names one. */
  fallbackIdentifier?: string;
}

function be32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function joinBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Blobs of an existing signature that an ad-hoc re-sign keeps (entitlements). */
function keptBlobs(bytes: Uint8Array, signature: Signature | undefined): Map<number, Uint8Array> {
  const kept = new Map<number, Uint8Array>();
  for (const blob of signature?.blobs ?? []) {
    if (blob.slot === CSSLOT_ENTITLEMENTS || blob.slot === CSSLOT_DER_ENTITLEMENTS) {
      kept.set(blob.slot, bytes.slice(blob.offset, blob.offset + blob.length));
    }
  }
  return kept;
}

/** The empty requirement set `codesign -s -` embeds: `{magic, length 12, count 0}`. */
function emptyRequirements(): Uint8Array {
  return joinBytes([be32(CSMAGIC_REQUIREMENTS), be32(12), be32(0)]);
}

/** The empty CMS wrapper `codesign -s -` embeds where a signed binary has its CMS signature. */
function emptySignatureWrapper(): Uint8Array {
  return joinBytes([be32(CSMAGIC_BLOBWRAPPER), be32(8)]);
}

function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

/**
 * Replaces the embedded signature with a fresh ad-hoc one, as `codesign -s - -f` does: a SHA-256
 * CodeDirectory over every page before the signature, an empty requirement set, the old
 * entitlements (if any), and an empty CMS wrapper. Grows or shrinks the file, `LC_CODE_SIGNATURE`
 * and `__LINKEDIT` to fit. The signature must be the last thing in the file, as a linker leaves it.
 *
 * @example
 * const signed = adHocSign(bytes);
 * assert.ok(verifyCodeSignature(signed).ok);
 */
export function adHocSign(bytes: Uint8Array, options: SignOptions = {}): Uint8Array {
  const macho = parseMachO(bytes);
  need(macho.filetype === MH_EXECUTE, "only executables can be signed");
  const cs = macho.codeSignature;
  need(
    cs !== undefined,
    "no LC_CODE_SIGNATURE to sign into (relink with -headerpad or sign first)",
  );
  const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT");
  need(linkedit !== undefined, "no __LINKEDIT segment");
  need(
    linkedit.fileoff + linkedit.filesize === cs.dataoff + cs.datasize,
    "the signature is not at the end of __LINKEDIT",
  );
  need(cs.dataoff + cs.datasize <= bytes.length, "signature runs past the end of the file");
  need(cs.dataoff % 16 === 0, "signature offset is not 16-byte aligned");
  let old: Signature | undefined;
  try {
    old = parseSignature(bytes, macho);
  } catch {
    old = undefined; // A corrupt old signature is exactly what re-signing replaces.
  }
  const identifier = options.identifier ?? old?.codeDirectories[0]?.identifier ??
    options.fallbackIdentifier;
  need(Boolean(identifier), "no identifier: pass one");

  const codeLimit = cs.dataoff;
  const pageSize = 1 << PAGE_SHIFT;
  const nCodeSlots = Math.ceil(codeLimit / pageSize);
  const kept = keptBlobs(bytes, old);
  const requirements = emptyRequirements();
  const nSpecialSlots = kept.has(CSSLOT_DER_ENTITLEMENTS)
    ? CSSLOT_DER_ENTITLEMENTS
    : kept.has(CSSLOT_ENTITLEMENTS)
    ? CSSLOT_ENTITLEMENTS
    : CSSLOT_REQUIREMENTS;
  const specialBlobs = new Map<number, Uint8Array>([[CSSLOT_REQUIREMENTS, requirements], ...kept]);

  const hashSize = 32;
  const identBytes = new TextEncoder().encode(identifier + "\0");
  const headerSize = 88; // through execSegFlags (version 0x20400)
  const identOffset = headerSize;
  const hashOffset = identOffset + identBytes.length + nSpecialSlots * hashSize;
  const cdLength = hashOffset + nCodeSlots * hashSize;
  const entries: [number, Uint8Array][] = [
    [CSSLOT_CODEDIRECTORY, new Uint8Array(cdLength)],
    [CSSLOT_REQUIREMENTS, requirements],
    ...[...kept].sort((a, b) => a[0] - b[0]),
    [CSSLOT_SIGNATURESLOT, emptySignatureWrapper()],
  ];
  const indexSize = 12 + entries.length * 8;
  const superLength = indexSize + entries.reduce((n, [, b]) => n + b.length, 0);
  // codesign pads the signature to 16 bytes; the segment's file size follows it.
  const datasize = align(superLength, 16);

  // Header edits first: the first page, which holds them, is hashed like any other.
  const out = new Uint8Array(codeLimit + datasize);
  out.set(bytes.subarray(0, codeLimit));
  const odv = view(out);
  odv.setUint32(cs.commandOffset + 12, datasize, true);
  const linkeditSize = codeLimit + datasize - linkedit.fileoff;
  odv.setBigUint64(linkedit.commandOffset + 48, BigInt(linkeditSize), true);
  const vmsize = BigInt(align(linkeditSize, 1 << 14));
  if (vmsize > linkedit.vmsize) odv.setBigUint64(linkedit.commandOffset + 32, vmsize, true);

  const cd = entries[0][1];
  const dv = view(cd);
  const text = textSegment(macho);
  dv.setUint32(0, CSMAGIC_CODEDIRECTORY);
  dv.setUint32(4, cdLength);
  dv.setUint32(8, CD_VERSION_EXECSEG);
  dv.setUint32(12, CS_ADHOC);
  dv.setUint32(16, hashOffset);
  dv.setUint32(20, identOffset);
  dv.setUint32(24, nSpecialSlots);
  dv.setUint32(28, nCodeSlots);
  dv.setUint32(32, codeLimit);
  dv.setUint8(36, hashSize);
  dv.setUint8(37, CS_HASHTYPE_SHA256);
  dv.setUint8(38, 0); // platform
  dv.setUint8(39, PAGE_SHIFT);
  // 40 spare2, 44 scatterOffset, 48 teamOffset, 52 spare3, 56 codeLimit64: all zero.
  dv.setBigUint64(64, BigInt(text?.fileoff ?? 0));
  dv.setBigUint64(72, BigInt(text?.filesize ?? 0));
  dv.setBigUint64(80, BigInt(CS_EXECSEG_MAIN_BINARY));
  cd.set(identBytes, identOffset);
  for (const [slot, blob] of specialBlobs) {
    cd.set(digest("sha256", hashSize, blob), hashOffset - slot * hashSize);
  }
  for (let i = 0; i < nCodeSlots; i++) {
    const page = out.subarray(i * pageSize, Math.min((i + 1) * pageSize, codeLimit));
    cd.set(digest("sha256", hashSize, page), hashOffset + i * hashSize);
  }

  const superBlob = out.subarray(codeLimit);
  const sdv = view(superBlob);
  sdv.setUint32(0, CSMAGIC_EMBEDDED_SIGNATURE);
  sdv.setUint32(4, superLength);
  sdv.setUint32(8, entries.length);
  let at = indexSize;
  entries.forEach(([slot, blob], i) => {
    sdv.setUint32(12 + i * 8, slot);
    sdv.setUint32(16 + i * 8, at);
    superBlob.set(blob, at);
    at += blob.length;
  });
  return out;
}
