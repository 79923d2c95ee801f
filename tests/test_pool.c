/* The thread pool: every worker runs each job exactly once with a distinct
 * tid, the caller is tid 0, thousands of back-to-back runs do not lose a
 * wake-up, and an idle pool sleeps instead of burning a core. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

#include "check.h"
#include "runtime/pool.h"

typedef struct {
    atomic_int hits[8];
    pthread_t caller;
    atomic_int caller_is_0;
} job;

static void work(void *ctx, int tid, int n) {
    job *j = ctx;
    (void)n;
    atomic_fetch_add(&j->hits[tid], 1);
    if (tid == 0 && pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->caller_is_0, 1);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int main(void) {
    for (int n = 1; n <= 4; n++) {
        loom_pool *p = loom_pool_new(n);
        CHECK(p && loom_pool_size(p) == n, "pool of %d", n);
        job j = {.caller = pthread_self()};
        const int runs = 1000;
        for (int r = 0; r < runs; r++) loom_pool_run(p, work, &j);
        for (int t = 0; t < n; t++) CHECK(atomic_load(&j.hits[t]) == runs, "n=%d tid %d ran %d of %d", n, t, atomic_load(&j.hits[t]), runs);
        for (int t = n; t < 8; t++) CHECK(atomic_load(&j.hits[t]) == 0, "n=%d tid %d must not exist", n, t);
        CHECK(atomic_load(&j.caller_is_0) == runs, "caller is tid 0");
        if (n == 4) {
            /* idle: workers must fall asleep, not spin */
            double c0 = cpu_seconds();
            struct timespec ts = {0, 300 * 1000 * 1000};
            nanosleep(&ts, NULL);
            double used = cpu_seconds() - c0;
            CHECK(used < 0.1, "idle pool of 4 used %.3f s of CPU in 0.3 s", used);
            printf("idle pool of 4: %.4f s CPU over 0.3 s wall\n", used);
        }
        loom_pool_free(p);
    }
    CHECK(loom_cpu_count() >= 1, "cpu count");
    TEST_END();
}
