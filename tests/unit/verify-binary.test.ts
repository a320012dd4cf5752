/**
 * Unit tests of the release checks that need no built binary: executable headers for each OS and
 * CPU, the SHA256SUMS format, and the target names.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileName, hostTarget, selectTargets, TARGETS } from "../../scripts/targets.ts";
import { checkElf, checkPe, formatChecksums, parseChecksums } from "../../scripts/verify-binary.ts";

function elf(machine: number, bits = 2): Uint8Array {
  const bytes = new Uint8Array(64);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, bits, 1, 1]);
  const dv = new DataView(bytes.buffer);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, machine, true);
  return bytes;
}

function pe(machine: number, subsystem = 3): Uint8Array {
  const bytes = new Uint8Array(512);
  const dv = new DataView(bytes.buffer);
  bytes.set([0x4d, 0x5a]);
  dv.setUint32(0x3c, 0x80, true);
  dv.setUint32(0x80, 0x00004550, true);
  dv.setUint16(0x84, machine, true);
  dv.setUint16(0x98, 0x20b, true); // PE32+
  dv.setUint16(0x98 + 68, subsystem, true);
  return bytes;
}

test("ELF headers are accepted only for the target's CPU", () => {
  assert.deepEqual(checkElf(elf(62), "x64"), []);
  assert.deepEqual(checkElf(elf(183), "arm64"), []);
  assert.deepEqual(checkElf(elf(183), "x64"), ["ELF machine 183, expected x64"]);
  assert.deepEqual(checkElf(elf(62, 1), "x64"), ["not a 64-bit ELF"]);
  assert.deepEqual(checkElf(pe(0x8664), "x64"), ["not an ELF file"]);
});

test("PE headers must be 64-bit console programs for the target's CPU", () => {
  assert.deepEqual(checkPe(pe(0x8664), "x64"), []);
  assert.deepEqual(checkPe(pe(0xaa64), "arm64"), []);
  assert.deepEqual(checkPe(pe(0x8664), "arm64"), ["PE machine 0x8664, expected arm64"]);
  // A GUI-subsystem binary would detach from cmd.exe and lose its stdout.
  assert.deepEqual(checkPe(pe(0x8664, 2), "x64"), ["PE subsystem 2 is not a console program"]);
  assert.deepEqual(checkPe(elf(62), "x64"), ["no MZ header"]);
});

test("SHA256SUMS is written sorted in sha256sum format and read back, CRLF or not", () => {
  const a = "a".repeat(64);
  const b = "b".repeat(64);
  const text = formatChecksums([{ name: "z.exe", sha256: b }, { name: "a", sha256: a }]);
  assert.equal(text, `${a}  a\n${b}  z.exe\n`);
  assert.deepEqual([...parseChecksums(text)], [["a", a], ["z.exe", b]]);
  assert.deepEqual([...parseChecksums(`${a} *a\r\n`)], [["a", a]]);
});

test("eight targets are named <os>-<arch>[-musl], with .exe only on Windows", () => {
  assert.deepEqual(TARGETS.map(fileName), [
    "oai-compliance-logs-linux-x64",
    "oai-compliance-logs-linux-arm64",
    "oai-compliance-logs-darwin-x64",
    "oai-compliance-logs-darwin-arm64",
    "oai-compliance-logs-windows-x64.exe",
    "oai-compliance-logs-windows-arm64.exe",
    "oai-compliance-logs-linux-x64-musl",
    "oai-compliance-logs-linux-arm64-musl",
  ]);
  assert.deepEqual(TARGETS.filter((t) => !t.deno).map((t) => t.name), [
    "windows-arm64",
    "linux-x64-musl",
    "linux-arm64-musl",
  ]);
  // The host's own binary is the glibc one; musl builds are chosen by the installer, not the host.
  assert.equal(hostTarget("linux", "x64")?.name, "linux-x64");
  assert.deepEqual(selectTargets("darwin-arm64, linux-x64").map((t) => t.name), [
    "darwin-arm64",
    "linux-x64",
  ]);
  assert.throws(() => selectTargets("linux-riscv64"), /unknown target 'linux-riscv64'/);
  assert.equal(hostTarget("win32", "x64")?.name, "windows-x64");
  assert.equal(hostTarget("freebsd", "x64"), undefined);
});
