/* loom tests — a tiny harness: CHECK counts, gradcheck compares analytic
 * gradients with central finite differences, TEST_END prints
 * "N passed, M failed" and sets the exit status. Header-only on purpose. */
#ifndef LOOM_TEST_CHECK_H
#define LOOM_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass_, t_fail_;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            t_pass_++;                                                          \
        } else {                                                                \
            t_fail_++;                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol, what)                                             \
    do {                                                                        \
        double a_ = (a), b_ = (b);                                              \
        CHECK(fabs(a_ - b_) <= (tol), "%s: %.9g vs %.9g (tol %g)", (what), a_, b_, (double)(tol)); \
    } while (0)

/* A test that cannot run here says why and exits 77, which ctest reports as
 * skipped (SKIP_RETURN_CODE), never as passed. */
#define TEST_SKIP(...)                                                          \
    do {                                                                        \
        printf("SKIPPED: ");                                                    \
        printf(__VA_ARGS__);                                                    \
        printf("\n");                                                           \
        return 77;                                                              \
    } while (0)

#define TEST_END()                                                              \
    do {                                                                        \
        printf("%d passed, %d failed\n", t_pass_, t_fail_);                     \
        return t_fail_ ? 1 : 0;                                                 \
    } while (0)

/* Deterministic test data: uniform in [lo, hi) from a simple LCG (tests only). */
static inline void t_fill(float *p, size_t n, unsigned seed, float lo, float hi) {
    unsigned long long s = 0x9E3779B97F4A7C15ull * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = lo + (hi - lo) * (float)((s >> 40) & 0xFFFFFF) / 16777216.0f;
    }
}

/* A scalar loss of the current state, computed in double (e.g. sum(out * r)). */
typedef double (*t_loss_fn)(void *ctx);

/* Check analytic[i] against (L(p+eps) - L(p-eps)) / 2eps for every p[i].
 * |a - num| <= atol + rtol * max(|a|, |num|). Counts one CHECK per tensor and
 * prints the worst element. Returns the number of mismatching elements. */
static inline int t_gradcheck(const char *name, t_loss_fn loss, void *ctx, float *p,
                              const float *analytic, size_t n, float eps, double atol,
                              double rtol) {
    int bad = 0;
    double worst = 0;
    size_t worst_i = 0;
    double worst_a = 0, worst_num = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + eps;
        double lp = loss(ctx);
        p[i] = keep - eps;
        double lm = loss(ctx);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * (double)eps);
        double a = analytic[i];
        double err = fabs(a - num);
        double lim = atol + rtol * fmax(fabs(a), fabs(num));
        if (err > lim) bad++;
        if (err / lim > worst) {
            worst = err / lim;
            worst_i = i;
            worst_a = a;
            worst_num = num;
        }
    }
    CHECK(bad == 0, "gradcheck %s: %d of %zu elements differ; worst [%zu] analytic %.6g numeric %.6g",
          name, bad, n, worst_i, worst_a, worst_num);
    printf("gradcheck %-40s %5zu elements  %s (worst err/tol %.3f)\n", name, n,
           bad ? "FAIL" : "ok", worst);
    return bad;
}

#endif
