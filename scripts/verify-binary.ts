/**
 * What must hold of a built binary before it ships, checkable on any OS: the right executable
 * format for its target and CPU, a valid code signature on macOS, and a `SHA256SUMS` line.
 *
 * @example
 * const problems = checkBinary(target, await readFile(path));
 * if (problems.length) throw new Error(problems.join("; "));
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { adHocSign, verifyCodeSignature } from "./macho.ts";
import { type Target, TOOL_NAME } from "./targets.ts";

const ELF_MACHINES: Record<string, number> = { x64: 62, arm64: 183 }; // EM_X86_64, EM_AARCH64
const PE_MACHINES: Record<string, number> = { x64: 0x8664, arm64: 0xaa64 };

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Problems with an ELF executable for `arch` (empty when it is one). */
export function checkElf(bytes: Uint8Array, arch: string): string[] {
  if (bytes.length < 64) return ["too short for an ELF header"];
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    return ["not an ELF file"];
  }
  const problems: string[] = [];
  if (bytes[4] !== 2) problems.push("not a 64-bit ELF");
  if (bytes[5] !== 1) problems.push("not little-endian");
  const dv = dataView(bytes);
  const type = dv.getUint16(16, true);
  if (type !== 2 && type !== 3) problems.push(`ELF type ${type} is not an executable`);
  const machine = dv.getUint16(18, true);
  if (machine !== ELF_MACHINES[arch]) problems.push(`ELF machine ${machine}, expected ${arch}`);
  return problems;
}

/** Problems with a PE (Windows) console executable for `arch` (empty when it is one). */
export function checkPe(bytes: Uint8Array, arch: string): string[] {
  if (bytes.length < 0x40 || bytes[0] !== 0x4d || bytes[1] !== 0x5a) return ["no MZ header"];
  const dv = dataView(bytes);
  const pe = dv.getUint32(0x3c, true);
  if (pe + 24 + 70 > bytes.length || dv.getUint32(pe, true) !== 0x00004550) {
    return ["no PE signature"];
  }
  const problems: string[] = [];
  const machine = dv.getUint16(pe + 4, true);
  if (machine !== PE_MACHINES[arch]) {
    problems.push(`PE machine 0x${machine.toString(16)}, expected ${arch}`);
  }
  const optional = pe + 24;
  if (dv.getUint16(optional, true) !== 0x20b) problems.push("not a PE32+ (64-bit) image");
  const subsystem = dv.getUint16(optional + 68, true);
  // 3 = IMAGE_SUBSYSTEM_WINDOWS_CUI: a console program, so cmd.exe and PowerShell wait for it
  // and connect its stdout/stderr.
  if (subsystem !== 3) problems.push(`PE subsystem ${subsystem} is not a console program`);
  return problems;
}

/** Problems with a built binary for `target`: format, CPU and (macOS) code signature. */
export function checkBinary(target: Target, bytes: Uint8Array): string[] {
  switch (target.os) {
    case "linux":
      return checkElf(bytes, target.arch);
    case "windows":
      return checkPe(bytes, target.arch);
    case "darwin":
      return verifyCodeSignature(bytes, { cpu: target.arch === "x64" ? "x86_64" : "arm64" })
        .problems;
  }
}

/**
 * Makes a macOS binary's signature valid: returns the bytes unchanged when it already verifies,
 * else ad-hoc re-signed (as `codesign -s - -f` would) and verified again. Throws when even the
 * re-signed file does not verify.
 *
 * @example
 * const { bytes, resigned, before } = ensureValidSignature(original);
 */
export function ensureValidSignature(
  bytes: Uint8Array,
  cpu: string,
): { bytes: Uint8Array; resigned: boolean; before: string[] } {
  const before = verifyCodeSignature(bytes, { cpu }).problems;
  if (before.length === 0) return { bytes, resigned: false, before };
  const signed = adHocSign(bytes, { identifier: TOOL_NAME });
  const after = verifyCodeSignature(signed, { cpu }).problems;
  if (after.length) throw new Error(`re-signed binary still fails: ${after.join("; ")}`);
  return { bytes: signed, resigned: true, before };
}

/** Hex SHA-256 of a file, streamed so a 100 MB binary is not held twice. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}

/** `SHA256SUMS` text in the format `sha256sum -c` and `shasum -a 256 -c` read. */
export function formatChecksums(sums: { name: string; sha256: string }[]): string {
  return sums
    .slice()
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((s) => `${s.sha256}  ${s.name}\n`)
    .join("");
}

/** Parses `SHA256SUMS` text into name -> hex digest. */
export function parseChecksums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (match) sums.set(match[2], match[1]);
  }
  return sums;
}
