/* The runtime calls sgemm from every worker thread at once with BLAS forced
 * single-threaded (DESIGN.md). This checks that the BLAS build in use gives
 * right answers under exactly that use: 4 threads, many concurrent calls,
 * mixed shapes and transposes, each compared with a double reference. */
#include "check.h"
#include "kernels/kernels.h"

#include <float.h>
#include <pthread.h>

/* OpenBLAS's own query, to confirm the setting took. */
int openblas_get_num_threads(void);

enum { NTHREADS = 4, ROUNDS = 50 };

typedef struct { int m, n, k, ta, tb; float alpha, beta; } gemm_case;

static const gemm_case cases[] = {
    {1, 1, 1, 0, 0, 1.0f, 0.0f},       {7, 13, 5, 0, 0, 1.0f, 0.0f},
    {64, 64, 64, 0, 1, 1.0f, 1.0f},    {33, 129, 65, 1, 0, 0.5f, 0.0f},
    {128, 96, 200, 1, 1, 1.0f, -1.0f}, {250, 31, 17, 0, 1, 2.0f, 0.5f},
    {16, 784, 25, 0, 0, 1.0f, 0.0f},   {6, 25, 784, 0, 1, 1.0f, 1.0f},
    {150, 784, 16, 1, 0, 1.0f, 0.0f},  {32, 1024, 288, 0, 0, 1.0f, 0.0f},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

typedef struct {
    int id;
    pthread_barrier_t *start;
    long calls, bad, unstable;
    double worst; /* largest error / tolerance seen */
} worker;

/* One case's operands, its double reference and its tolerance per element. */
typedef struct {
    float *A, *B, *C0, *C, *first;
    double *ref, *tol;
} operands;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Row-major operand element (i, j) of op(X), X stored with leading dim ld. */
static double at(const float *X, int trans, int ld, int i, int j) {
    return trans ? X[(size_t)j * ld + i] : X[(size_t)i * ld + j];
}

static void prepare(const gemm_case *c, unsigned seed, operands *o) {
    int lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n;
    size_t al = (size_t)c->m * c->k, bl = (size_t)c->k * c->n, cl = (size_t)c->m * c->n;
    o->A = xmalloc(al * sizeof(float));
    o->B = xmalloc(bl * sizeof(float));
    o->C0 = xmalloc(cl * sizeof(float));
    o->C = xmalloc(cl * sizeof(float));
    o->first = xmalloc(cl * sizeof(float));
    o->ref = xmalloc(cl * sizeof(double));
    o->tol = xmalloc(cl * sizeof(double));
    t_fill(o->A, al, seed, -1, 1);
    t_fill(o->B, bl, seed + 1, -1, 1);
    t_fill(o->C0, cl, seed + 2, -1, 1);
    for (int i = 0; i < c->m; i++)
        for (int j = 0; j < c->n; j++) {
            double sum = 0, mag = 0;
            for (int p = 0; p < c->k; p++) {
                double t = at(o->A, c->ta, lda, i, p) * at(o->B, c->tb, ldb, p, j);
                sum += t;
                mag += fabs(t);
            }
            double c0 = o->C0[(size_t)i * c->n + j];
            o->ref[(size_t)i * c->n + j] = c->alpha * sum + c->beta * c0;
            /* The classical worst-case bound for a length-k float dot product. */
            o->tol[(size_t)i * c->n + j] =
                (c->k + 3) * FLT_EPSILON * (fabs(c->alpha) * mag + fabs(c->beta * c0)) + 1e-30;
        }
}

static void release(operands *o) {
    free(o->A), free(o->B), free(o->C0), free(o->C), free(o->first), free(o->ref), free(o->tol);
}

static void *run(void *arg) {
    worker *w = arg;
    operands ops[NCASES];
    for (int i = 0; i < NCASES; i++) prepare(&cases[i], (unsigned)(w->id * 1000 + i * 7), &ops[i]);
    pthread_barrier_wait(w->start);
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < NCASES; i++) {
            /* Threads start on different cases so different shapes overlap. */
            int ci = (i + w->id * 3) % NCASES;
            const gemm_case *c = &cases[ci];
            operands *o = &ops[ci];
            size_t cl = (size_t)c->m * c->n;
            memcpy(o->C, o->C0, cl * sizeof(float));
            loom_k_gemm(c->ta, c->tb, c->m, c->n, c->k, c->alpha, o->A, c->ta ? c->m : c->k,
                        o->B, c->tb ? c->k : c->n, c->beta, o->C, c->n);
            w->calls++;
            long bad = 0;
            for (size_t e = 0; e < cl; e++) {
                double err = fabs(o->C[e] - o->ref[e]) / o->tol[e];
                bad += err > 1;
                if (err > w->worst) w->worst = err;
            }
            w->bad += bad > 0;
            /* The determinism contract needs the same bits every time. */
            if (r == 0)
                memcpy(o->first, o->C, cl * sizeof(float));
            else
                w->unstable += memcmp(o->first, o->C, cl * sizeof(float)) != 0;
        }
    for (int i = 0; i < NCASES; i++) release(&ops[i]);
    return NULL;
}

int main(void) {
    loom_k_blas_single_thread();
    CHECK(openblas_get_num_threads() == 1, "openblas_get_num_threads() = %d",
          openblas_get_num_threads());

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t tid[NTHREADS];
    worker w[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (worker){.id = t, .start = &start};
        CHECK(pthread_create(&tid[t], NULL, run, &w[t]) == 0, "pthread_create %d", t);
    }
    long calls = 0, bad = 0, unstable = 0;
    double worst = 0;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(tid[t], NULL);
        calls += w[t].calls;
        bad += w[t].bad;
        unstable += w[t].unstable;
        if (w[t].worst > worst) worst = w[t].worst;
        CHECK(w[t].bad == 0, "thread %d: %ld of %ld gemms wrong", t, w[t].bad, w[t].calls);
        CHECK(w[t].unstable == 0, "thread %d: %ld gemms not bit-identical to their first run", t,
              w[t].unstable);
    }
    pthread_barrier_destroy(&start);
    CHECK(calls == (long)NTHREADS * ROUNDS * NCASES, "%ld calls", calls);
    printf("%d threads x %d concurrent sgemm calls (%d shapes, all transposes, beta 0/1/other): "
           "%ld wrong, %ld not bit-reproducible, worst error %.3f of the float bound\n",
           NTHREADS, ROUNDS * NCASES, NCASES, bad, unstable, worst);
    TEST_END();
}
