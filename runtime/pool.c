/* Workers wait for a generation counter to change. They spin a little first
 * (a step's two phases follow each other within microseconds) and then sleep
 * on a condition variable, so an idle pool costs no CPU. */
#include "runtime/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "loom/error.h"

#define SPIN 20000

struct loom_pool {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    atomic_uint gen;
    atomic_int pending;
    atomic_int stop;
    loom_pool_fn fn;
    void *ctx;
};

typedef struct {
    loom_pool *p;
    int tid;
} worker_arg;

static worker_arg *args_of(loom_pool *p);

int loom_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void *worker(void *arg) {
    worker_arg *a = arg;
    loom_pool *p = a->p;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop) && spins < SPIN) {
            loom_cpu_relax();
            spins++;
        }
        if (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = atomic_load(&p->gen);
        p->fn(p->ctx, a->tid, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

loom_pool *loom_pool_new(int nthreads) {
    if (nthreads <= 0) nthreads = loom_cpu_count();
    if (nthreads > 4096) {
        loom_fail(LOOM_EINVAL, "thread pool: %d threads (at most 4096)", nthreads);
        return NULL;
    }
    loom_pool *p = calloc(1, sizeof *p);
    if (!p) {
        loom_fail(LOOM_ENOMEM, "thread pool: out of memory");
        return NULL;
    }
    p->n = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    if (nthreads > 1) {
        p->th = calloc((size_t)nthreads, sizeof *p->th + sizeof(worker_arg));
        if (!p->th) {
            free(p);
            loom_fail(LOOM_ENOMEM, "thread pool: out of memory");
            return NULL;
        }
        worker_arg *args = args_of(p);
        for (int i = 1; i < nthreads; i++) {
            args[i].p = p;
            args[i].tid = i;
            if (pthread_create(&p->th[i], NULL, worker, &args[i]) != 0) {
                p->n = i; /* shut down the ones that started */
                loom_pool_free(p);
                loom_fail(LOOM_EIO, "thread pool: cannot start thread %d of %d", i, nthreads);
                return NULL;
            }
        }
    }
    return p;
}

/* The worker arguments live after the thread handles in the same block. */
static worker_arg *args_of(loom_pool *p) { return (worker_arg *)(p->th + p->n); }

void loom_pool_free(loom_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int loom_pool_size(const loom_pool *p) { return p->n; }

void loom_pool_run(loom_pool *p, loom_pool_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int spins = 0; atomic_load(&p->pending) > 0 && spins < SPIN; spins++) loom_cpu_relax();
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
