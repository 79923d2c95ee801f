/* What the machine has, for checks before work: its memory. */
#include "kernels/kernels.h"

#include <unistd.h>

double loom_k_memory_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}
