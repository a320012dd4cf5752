/*
 * Stand-in for Windows' bcryptprimitives.dll, which Wine 8 does not ship but Bun's Windows
 * runtime imports for ProcessPrng (its CSPRNG entry point since Windows 10). Test tooling only:
 * it lets the Windows binary start under Wine; it is never shipped.
 *
 * ProcessPrng fills a buffer with cryptographically random bytes and always returns TRUE.
 * RtlGenRandom (exported by advapi32 as SystemFunction036) gives the same guarantee on Wine.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved) {
  (void)instance;
  (void)reason;
  (void)reserved;
  return TRUE;
}
