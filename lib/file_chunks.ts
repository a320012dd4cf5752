/**
 * A file's bytes in fresh 1 MiB chunks, read through one handle: hashing or verifying a 2 GiB
 * file costs no more memory than a small one. Shared by the directory destination (is a file
 * already stored whole?) and the local archive store (`verify` reading files back).
 *
 * @example
 * ```ts
 * let bytes = 0;
 * for await (const chunk of fileChunks("logs/AUTH_LOG/2026-07-02/eclf_1.jsonl")) bytes += chunk.length;
 * ```
 */
import { open } from "node:fs/promises";

export async function* fileChunks(
  path: string,
  chunkBytes = 1024 * 1024,
): AsyncGenerator<Uint8Array> {
  const handle = await open(path, "r");
  try {
    const buffer = new Uint8Array(chunkBytes);
    while (true) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.slice(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
