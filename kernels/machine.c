/* What the machine has, for checks before work: its memory. */
#include "kernels/kernels.h"

#include <unistd.h>

double loom_k_memory_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

/* (the CPU model is read by a constructor of the compiler's runtime: no state here, no race between workers) */
int loom_k_avx2_fma(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}
