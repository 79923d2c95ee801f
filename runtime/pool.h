/* loom — a thread pool made once and reused for every step: the calling
 * thread is worker 0, idle workers spin briefly and then sleep. */
#ifndef LOOM_POOL_H
#define LOOM_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_pool loom_pool;
typedef void (*loom_pool_fn)(void *ctx, int tid, int nthreads);

/* A pool of nthreads workers (nthreads-1 threads plus the caller); 0 = online cores. */
loom_pool *loom_pool_new(int nthreads);
void loom_pool_free(loom_pool *p);
int loom_pool_size(const loom_pool *p);
/* Run fn(ctx, tid, n) on every worker, tid 0 on the caller; returns when all are done. */
void loom_pool_run(loom_pool *p, loom_pool_fn fn, void *ctx);
/* Number of online cores. */
int loom_cpu_count(void);

/* One pause in a spin-wait (x86 PAUSE: the sibling hyperthread runs on; nothing elsewhere). */
static inline void loom_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#ifdef __cplusplus
}
#endif
#endif
