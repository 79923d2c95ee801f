/* What the machine has, for checks before work: its memory; and how big buffers are asked for. */
#include "kernels/kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* Activations of a batch of large images stream through hundreds of megabytes per layer: with 4 KiB
 * pages every few kilobytes cost a page walk, and the two cores' walks then compete for memory
 * (docs/BENCHMARKS.md, "Huge pages"). Linux gives transparent huge pages to a region only on request
 * when /sys/kernel/mm/transparent_hugepage/enabled says "madvise" (Debian's default), so big
 * buffers are mapped on a 2 MiB boundary and ask for them. Only whole 2 MiB pages inside the buffer
 * are advised, and fresh mappings are zero without being touched: a page no layer writes (scratch
 * a path does not take, rows of a batch larger than the data) never becomes resident. Small
 * buffers, other systems and sanitizer builds (AddressSanitizer watches heap blocks, not mappings)
 * take the heap; the advice is only a hint either way.
 *
 * Each buffer has a 64-byte header just before it: how it was made and what to give back. */
#define HUGE_BYTES ((size_t)2 << 20)
#define HEAD 64

#if defined(__SANITIZE_ADDRESS__)
#define BIG_HEAP_ONLY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BIG_HEAP_ONLY 1
#endif
#endif

typedef struct {
    void *base;
    size_t len; /* of the mapping; 0: a heap block */
} big_head;

void *loom_k_big_alloc(size_t count, size_t size) {
    if (size && count > ((size_t)-1 - 2 * HUGE_BYTES - HEAD) / size) return NULL;
    size_t bytes = count * size;
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS) && !defined(BIG_HEAP_ONLY)
    if (bytes >= 2 * HUGE_BYTES) {
        size_t len = bytes + HUGE_BYTES + HEAD;
        char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return NULL;
        char *p = (char *)(((uintptr_t)base + HEAD + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES);
        (void)madvise(p, bytes / HUGE_BYTES * HUGE_BYTES, MADV_HUGEPAGE);
        *(big_head *)(p - HEAD) = (big_head){base, len};
        return p;
    }
#endif
    char *base = aligned_alloc(64, (bytes + 63) / 64 * 64 + HEAD);
    if (!base) return NULL;
    memset(base, 0, (bytes + 63) / 64 * 64 + HEAD);
    *(big_head *)base = (big_head){base, 0};
    return base + HEAD;
}

void loom_k_big_free(void *p) {
    if (!p) return;
    big_head h = *(big_head *)((char *)p - HEAD);
#ifdef MAP_ANONYMOUS
    if (h.len) {
        munmap(h.base, h.len);
        return;
    }
#endif
    free(h.base);
}
