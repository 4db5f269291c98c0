/* bcryptprimitives.dll for Wine 8 (Debian 12), which lacks it: Rust's standard library (1.78 and
 * later) and the getrandom crate take their random bytes from its ProcessPrng. This one forwards to
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. Built and installed into the test
 * Wine prefix by tests/support/with-wine.sh; never part of latchkey itself.
 *
 *     x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll processprng.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Like the real one: fills the whole buffer (RtlGenRandom takes at most 4 GiB a call). */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x80000000u ? 0x80000000u : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
