/*
 * A stand-in for Windows' bcryptprimitives.dll, for running Rust test
 * executables under Wine releases that lack it (Debian 12's Wine 8).
 *
 * Rust's standard library gets its random bytes (HashMap seeds and the like)
 * from ProcessPrng in bcryptprimitives.dll, which such Wine releases do not
 * provide, so every Rust .exe fails to start. This DLL exports ProcessPrng,
 * implemented with RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 *
 * Built by .ci/windows with the mingw-w64 compiler into the Wine prefix's
 * system32; used by CI only, never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
