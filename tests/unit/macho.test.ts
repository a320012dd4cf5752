/**
 * Unit tests of the Mach-O reader, verifier and ad-hoc signer (`scripts/macho.ts`) on a small
 * synthetic executable built here: header, __PAGEZERO, __TEXT, __LINKEDIT, LC_CODE_SIGNATURE.
 * Page hashes are re-derived with Web Crypto, independently of the `node:crypto` code under test.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  adHocSign,
  CPU_TYPE_ARM64,
  CPU_TYPE_X86_64,
  CS_ADHOC,
  CSMAGIC_EMBEDDED_ENTITLEMENTS,
  CSMAGIC_EMBEDDED_SIGNATURE,
  CSSLOT_ENTITLEMENTS,
  CSSLOT_REQUIREMENTS,
  CSSLOT_SIGNATURESLOT,
  LC_CODE_SIGNATURE,
  LC_SEGMENT_64,
  MachOError,
  parseMachO,
  parseSignature,
  verifyCodeSignature,
} from "../../scripts/macho.ts";

const PAGE = 4096;
const TEXT_SIZE = 3 * PAGE; // header page + two code pages
const LINKEDIT_DATA = 0x130; // symbol-table stand-in before the signature

/** Offsets of the load commands in the synthetic file. */
const LINKEDIT_CMD = 32 + 72 * 2;
const CODESIG_CMD = 32 + 72 * 3;

function segment(
  dv: DataView,
  at: number,
  name: string,
  vmaddr: bigint,
  vmsize: bigint,
  fileoff: number,
  filesize: number,
): void {
  dv.setUint32(at, LC_SEGMENT_64, true);
  dv.setUint32(at + 4, 72, true);
  new Uint8Array(dv.buffer).set(new TextEncoder().encode(name), at + 8);
  dv.setBigUint64(at + 24, vmaddr, true);
  dv.setBigUint64(at + 32, vmsize, true);
  dv.setBigUint64(at + 40, BigInt(fileoff), true);
  dv.setBigUint64(at + 48, BigInt(filesize), true);
}

/**
 * A minimal MH_EXECUTE with room for a signature but none in it yet (datasize 0), as a linker
 * leaves it with `-no_adhoc_codesign`, plus code pages of deterministic noise.
 */
function syntheticMachO(
  options: { cputype?: number; signature?: boolean; extraCode?: number } = {},
): Uint8Array {
  const textSize = TEXT_SIZE + (options.extraCode ?? 0);
  const linkeditOff = textSize;
  const dataoff = linkeditOff + LINKEDIT_DATA;
  const bytes = new Uint8Array(dataoff);
  for (let i = 512; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  const dv = new DataView(bytes.buffer);
  const ncmds = options.signature === false ? 3 : 4;
  dv.setUint32(0, 0xfeedfacf, true);
  dv.setInt32(4, options.cputype ?? CPU_TYPE_ARM64, true);
  dv.setUint32(12, 2, true); // MH_EXECUTE
  dv.setUint32(16, ncmds, true);
  dv.setUint32(20, 72 * 3 + (ncmds === 4 ? 16 : 0), true);
  dv.setUint32(24, 0x00200085, true);
  segment(dv, 32, "__PAGEZERO", 0n, 0x100000000n, 0, 0);
  segment(dv, 32 + 72, "__TEXT", 0x100000000n, BigInt(textSize), 0, textSize);
  segment(
    dv,
    LINKEDIT_CMD,
    "__LINKEDIT",
    0x100000000n + 0x10000n,
    0x4000n,
    linkeditOff,
    LINKEDIT_DATA,
  );
  if (ncmds === 4) {
    dv.setUint32(CODESIG_CMD, LC_CODE_SIGNATURE, true);
    dv.setUint32(CODESIG_CMD + 4, 16, true);
    dv.setUint32(CODESIG_CMD + 8, dataoff, true);
    dv.setUint32(CODESIG_CMD + 12, 0, true);
  }
  return bytes;
}

function signed(options: Parameters<typeof syntheticMachO>[0] = {}): Uint8Array {
  return adHocSign(syntheticMachO(options), { identifier: "synthetic" });
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(data)));
}

function be32(value: number): number[] {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

/** Replaces the signature with a SuperBlob of `blobs`, fixing LC_CODE_SIGNATURE and __LINKEDIT. */
function withSignature(bytes: Uint8Array, blobs: [number, Uint8Array][]): Uint8Array {
  const macho = parseMachO(bytes);
  const dataoff = macho.codeSignature!.dataoff;
  const index = 12 + blobs.length * 8;
  const length = index + blobs.reduce((n, [, b]) => n + b.length, 0);
  const out = new Uint8Array(dataoff + length);
  out.set(bytes.subarray(0, dataoff));
  const head = [...be32(CSMAGIC_EMBEDDED_SIGNATURE), ...be32(length), ...be32(blobs.length)];
  let at = index;
  blobs.forEach(([slot, blob]) => {
    head.push(...be32(slot), ...be32(at));
    out.set(blob, dataoff + at);
    at += blob.length;
  });
  out.set(head, dataoff);
  const dv = new DataView(out.buffer);
  dv.setUint32(CODESIG_CMD + 12, length, true);
  const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT")!;
  dv.setBigUint64(LINKEDIT_CMD + 48, BigInt(dataoff + length - linkedit.fileoff), true);
  return out;
}

function blob(magic: number, payload: string): Uint8Array {
  const body = new TextEncoder().encode(payload);
  return new Uint8Array([...be32(magic), ...be32(8 + body.length), ...body]);
}

test("ad-hoc signing writes SHA-256 page hashes over everything before the signature", async () => {
  const bytes = signed();
  const macho = parseMachO(bytes);
  const sig = parseSignature(bytes, macho)!;
  const cd = sig.codeDirectories[0];
  const dataoff = macho.codeSignature!.dataoff;
  assert.equal(cd.codeLimit, dataoff);
  assert.equal(cd.pageSize, 12);
  assert.equal(cd.nCodeSlots, Math.ceil(dataoff / PAGE));
  assert.equal(cd.flags, CS_ADHOC);
  assert.equal(cd.identifier, "synthetic");
  for (const page of [0, cd.nCodeSlots - 1]) {
    const end = Math.min((page + 1) * PAGE, dataoff);
    const stored = bytes.subarray(
      cd.offset + cd.hashOffset + page * 32,
      cd.offset + cd.hashOffset + (page + 1) * 32,
    );
    assert.deepEqual(stored, await sha256(bytes.subarray(page * PAGE, end)), `page ${page}`);
  }
  const report = verifyCodeSignature(bytes, { cpu: "arm64" });
  assert.deepEqual(report.problems, []);
  assert.equal(report.ok, true);
  assert.deepEqual(report.pages, [{
    hashType: "sha256",
    total: cd.nCodeSlots,
    matched: cd.nCodeSlots,
  }]);
});

test("the signature has what codesign -s - writes: CodeDirectory, empty requirements, empty CMS", () => {
  const bytes = signed();
  const sig = parseSignature(bytes, parseMachO(bytes))!;
  assert.deepEqual(sig.blobs.map((b) => b.slot), [0, CSSLOT_REQUIREMENTS, CSSLOT_SIGNATURESLOT]);
  assert.deepEqual(sig.blobs.map((b) => b.length).slice(1), [12, 8]);
  const cd = sig.codeDirectories[0];
  assert.equal(cd.version, 0x20400);
  assert.equal(cd.nSpecialSlots, CSSLOT_REQUIREMENTS);
  assert.equal(cd.execSegBase, 0n);
  assert.equal(cd.execSegLimit, BigInt(TEXT_SIZE));
  assert.equal(cd.execSegFlags, 1n);
});

test("the signature is the file's tail and LC_CODE_SIGNATURE and __LINKEDIT cover it", () => {
  for (const identifier of ["x", "a-much-longer-identifier-than-before.example"]) {
    const bytes = adHocSign(signed(), { identifier });
    const macho = parseMachO(bytes);
    const cs = macho.codeSignature!;
    const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT")!;
    assert.equal(cs.dataoff + cs.datasize, bytes.length);
    assert.equal(cs.datasize % 16, 0);
    assert.equal(linkedit.fileoff + linkedit.filesize, bytes.length);
    assert.ok(linkedit.vmsize >= BigInt(linkedit.filesize));
    assert.deepEqual(verifyCodeSignature(bytes).problems, [], identifier);
  }
});

test("signing is deterministic and re-signing a signed file changes nothing", () => {
  const once = signed();
  assert.deepEqual(signed(), once);
  assert.deepEqual(adHocSign(once), once);
});

test("a byte changed after signing fails verification, naming the page", () => {
  const bytes = signed();
  bytes[PAGE + 100] ^= 0xff;
  const report = verifyCodeSignature(bytes);
  assert.equal(report.ok, false);
  assert.match(report.problems.join("\n"), /1 of \d+ page hashes do not match \(first at page 1,/);
});

test("a header edited after signing fails, and re-signing repairs it", () => {
  const bytes = signed();
  // Bun edits load commands (its __BUN segment) after the runtime was signed.
  bytes[32 + 72 + 60] ^= 0x01; // __TEXT maxprot
  assert.match(verifyCodeSignature(bytes).problems.join("\n"), /first at page 0,/);
  assert.deepEqual(verifyCodeSignature(adHocSign(bytes)).problems, []);
});

test("a signature moved by code inserted before it fails on codeLimit until re-signed", () => {
  // What Bun 1.4.5 leaves in darwin-x64: the segment grew, the CodeDirectory still ends at the old
  // offset, so the new pages are not covered at all.
  const old = signed();
  const grown = syntheticMachO({ extraCode: 2 * PAGE });
  const macho = parseMachO(old);
  const sig = old.subarray(macho.codeSignature!.dataoff);
  const moved = new Uint8Array(grown.length + sig.length);
  moved.set(grown);
  moved.set(sig, grown.length);
  const dv = new DataView(moved.buffer);
  dv.setUint32(CODESIG_CMD + 12, sig.length, true);
  dv.setBigUint64(LINKEDIT_CMD + 48, BigInt(LINKEDIT_DATA + sig.length), true);
  const problems = verifyCodeSignature(moved).problems.join("\n");
  assert.match(problems, /codeLimit \d+ is not the signature offset \d+/);
  assert.deepEqual(verifyCodeSignature(adHocSign(moved)).problems, []);
});

test("entitlements survive re-signing and their special slot hash verifies", () => {
  const first = signed({ cputype: CPU_TYPE_X86_64 });
  const sig = parseSignature(first, parseMachO(first))!;
  const cdBlob = first.slice(sig.blobs[0].offset, sig.blobs[0].offset + sig.blobs[0].length);
  const plist = "<plist><dict><key>com.apple.security.cs.allow-jit</key><true/></dict></plist>";
  const entitlements = blob(CSMAGIC_EMBEDDED_ENTITLEMENTS, plist);
  const withEntitlements = withSignature(first, [[0, cdBlob], [CSSLOT_ENTITLEMENTS, entitlements]]);
  // The old CodeDirectory has no hash for the new blob: that alone is a verification failure.
  assert.match(
    verifyCodeSignature(withEntitlements).problems.join("\n"),
    /blob in slot 5 is not covered by CodeDirectory \(sha256\)/,
  );
  const resigned = adHocSign(withEntitlements);
  const after = parseSignature(resigned, parseMachO(resigned))!;
  const kept = after.blobs.find((b) => b.slot === CSSLOT_ENTITLEMENTS)!;
  assert.deepEqual(resigned.subarray(kept.offset, kept.offset + kept.length), entitlements);
  assert.equal(after.codeDirectories[0].nSpecialSlots, CSSLOT_ENTITLEMENTS);
  assert.deepEqual(verifyCodeSignature(resigned, { cpu: "x86_64" }).problems, []);
  resigned[kept.offset + 20] ^= 0x01;
  assert.match(verifyCodeSignature(resigned).problems.join("\n"), /special slot 5 does not match/);
});

test("the CPU is reported and a binary for the other CPU is refused", () => {
  const arm = signed({ cputype: CPU_TYPE_ARM64 });
  assert.equal(verifyCodeSignature(arm).cpu, "arm64");
  assert.deepEqual(verifyCodeSignature(arm, { cpu: "arm64" }).problems, []);
  assert.deepEqual(verifyCodeSignature(arm, { cpu: "x86_64" }).problems, [
    "CPU is arm64, expected x86_64",
  ]);
  assert.equal(verifyCodeSignature(signed({ cputype: CPU_TYPE_X86_64 })).cpu, "x86_64");
});

test("unsigned, truncated and non-Mach-O files are reported as problems, not thrown", () => {
  const unsigned = verifyCodeSignature(syntheticMachO({ signature: false }));
  assert.equal(unsigned.ok, false);
  assert.match(unsigned.problems.join("\n"), /no LC_CODE_SIGNATURE/);
  assert.match(verifyCodeSignature(new Uint8Array(64)).problems[0], /not a 64-bit Mach-O/);
  assert.match(verifyCodeSignature(new Uint8Array(8)).problems[0], /shorter than a Mach-O header/);
  const truncated = signed().subarray(0, TEXT_SIZE + LINKEDIT_DATA + 20);
  assert.match(verifyCodeSignature(truncated).problems[0], /past the end of the file/);
});

test("universal (fat) files and files without room for a signature are refused by the signer", () => {
  const fat = new Uint8Array(64);
  new DataView(fat.buffer).setUint32(0, 0xcafebabe);
  assert.throws(() => parseMachO(fat), MachOError);
  assert.throws(() => adHocSign(syntheticMachO({ signature: false })), /no LC_CODE_SIGNATURE/);
});
