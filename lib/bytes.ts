/**
 * Byte pieces joined into one buffer, shared by the record readers (the manifest's line facts,
 * the syslog record reader) that gather a line across chunks.
 *
 * @example
 * ```ts
 * const enc = new TextEncoder();
 * concatBytes([enc.encode("ab"), enc.encode("c")], 3); // "abc" as bytes
 * ```
 */

/** `pieces` as one buffer of `total` bytes (the piece itself when there is only one). */
export function concatBytes(pieces: Uint8Array[], total: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
