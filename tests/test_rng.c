/* Counter-based RNG: known answers from an independent implementation,
 * independence of keys, and the moments of each distribution within 4-5
 * standard errors.
 * Everything is seeded, so a pass is reproducible, and the bounds are loose
 * enough that a correct generator would fail them about once in 10^4 seeds. */
#include "check.h"
#include "util.h"
#include "kernels/rng.h"

#include <stdint.h>

enum { DRAWS = 1000000 };

/* Known answers from an independent Python implementation of the same
 * functions (tools/gen_rng_fixtures.py, written once to tests/data/
 * rng_known.txt): keys, raw bits, uniform and normal draws, bounded draws
 * (rejection included: n = 2^32 - 1) and a permutation. A changed mixing
 * constant, a swapped shift or a lost rejection step shows here. */
static void test_known_answers(void) {
    FILE *f = fopen(t_data_path("rng_known.txt"), "r");
    CHECK(f != NULL, "cannot open %s", t_data_path("rng_known.txt"));
    if (!f) return;
    char kind[16];
    int lines = 0, bad = 0;
    while (fscanf(f, "%15s", kind) == 1) {
        unsigned long long k, c, v, a, b, cc, n;
        double x;
        lines++;
        if (!strcmp(kind, "key") && fscanf(f, "%llu %llu %llu %llu %llu", &c, &a, &b, &cc, &v) == 5) {
            bad += loom_rng_key(c, a, b, cc) != v;
        } else if (!strcmp(kind, "u64") && fscanf(f, "%llu %llu %llu", &k, &c, &v) == 3) {
            bad += loom_rng_u64(k, c) != v;
        } else if (!strcmp(kind, "uniform") && fscanf(f, "%llu %llu %lf", &k, &c, &x) == 3) {
            bad += loom_rng_uniform(k, c) != (float)x;
        } else if (!strcmp(kind, "normal") && fscanf(f, "%llu %llu %lf", &k, &c, &x) == 3) {
            /* libm's log and cos may differ in the last bit between machines */
            bad += fabs(loom_rng_normal(k, c) - x) > 1e-6 * (1 + fabs(x));
        } else if (!strcmp(kind, "below") && fscanf(f, "%llu %llu %llu %llu", &k, &c, &n, &v) == 4) {
            bad += loom_rng_below(k, c, (uint32_t)n) != v;
        } else if (!strcmp(kind, "perm") && fscanf(f, "%llu %llu", &k, &n) == 2 && n == 10) {
            uint32_t p[10];
            loom_rng_permutation(k, p, 10);
            for (int i = 0; i < 10; i++) {
                unsigned want;
                if (fscanf(f, "%u", &want) != 1 || p[i] != want) bad++;
            }
        } else {
            CHECK(0, "rng_known.txt line %d: cannot read '%s'", lines, kind);
            break;
        }
    }
    fclose(f);
    CHECK(lines > 100 && bad == 0, "%d of %d known answers differ", bad, lines);
    printf("rng: %d known answers from an independent implementation, %d differ\n", lines, bad);
}

static void test_keys_differ(void) {
    /* every argument of loom_rng_key must matter, and nearby keys or counters
     * must not give equal or trivially related outputs */
    uint64_t base = loom_rng_key(5, 1, 2, 3);
    CHECK(base != loom_rng_key(6, 1, 2, 3), "seed ignored");
    CHECK(base != loom_rng_key(5, 2, 2, 3), "a ignored");
    CHECK(base != loom_rng_key(5, 1, 3, 3), "b ignored");
    CHECK(base != loom_rng_key(5, 1, 2, 4), "c ignored");
    CHECK(loom_rng_key(5, 1, 2, 3) != loom_rng_key(5, 2, 1, 3), "a and b commute");

    int same = 0;
    for (uint64_t s = 0; s < 1000; s++) {
        uint64_t k1 = loom_rng_key(s, LOOM_RNG_TEST, 0, 0);
        uint64_t k2 = loom_rng_key(s + 1, LOOM_RNG_TEST, 0, 0);
        same += loom_rng_u64(k1, 0) == loom_rng_u64(k2, 0);
        same += loom_rng_u64(k1, s) == loom_rng_u64(k1, s + 1);
    }
    CHECK(same == 0, "%d collisions between neighbouring keys/counters", same);

    /* avalanche: flipping one key bit flips ~32 of 64 output bits on average */
    uint64_t k = loom_rng_key(9, LOOM_RNG_TEST, 0, 0);
    double flips = 0;
    for (int bit = 0; bit < 64; bit++)
        for (uint64_t c = 0; c < 64; c++)
            flips += __builtin_popcountll(loom_rng_u64(k, c) ^ loom_rng_u64(k ^ (1ull << bit), c));
    /* 4096 samples of Binomial(64, 1/2): sd of the mean = 4/64 */
    CHECK_NEAR(flips / 4096, 32.0, 5 * 4.0 / 64, "key avalanche");
}

static void test_uniform(void) {
    uint64_t k = loom_rng_key(2, LOOM_RNG_TEST, 0, 0);
    double s = 0, ss = 0;
    int out = 0;
    for (uint64_t i = 0; i < DRAWS; i++) {
        double u = loom_rng_uniform(k, i);
        out += !(u >= 0.0 && u < 1.0);
        s += u;
        ss += (u - 0.5) * (u - 0.5);
    }
    CHECK(out == 0, "%d uniforms outside [0, 1)", out);
    /* mean: var 1/12, sd of mean sqrt(1/12/N) = 2.89e-4.
     * variance: (u-1/2)^2 has variance 1/80 - 1/144 = 1/180, sd of mean 7.45e-5 */
    CHECK_NEAR(s / DRAWS, 0.5, 4 * sqrt(1.0 / 12 / DRAWS), "uniform mean");
    CHECK_NEAR(ss / DRAWS, 1.0 / 12, 4 * sqrt(1.0 / 180 / DRAWS), "uniform variance");
}

static void test_normal(void) {
    uint64_t k = loom_rng_key(3, LOOM_RNG_TEST, 0, 0);
    double s = 0, ss = 0, s4 = 0;
    int bad = 0;
    for (uint64_t i = 0; i < DRAWS; i++) {
        double z = loom_rng_normal(k, i);
        bad += !isfinite(z);
        s += z;
        ss += z * z;
        s4 += z * z * z * z;
    }
    CHECK(bad == 0, "%d non-finite normals", bad);
    /* mean: sd 1/sqrt(N); E[z^2] = 1 with variance 2; E[z^4] = 3 with variance 96 */
    CHECK_NEAR(s / DRAWS, 0.0, 4 / sqrt((double)DRAWS), "normal mean");
    CHECK_NEAR(ss / DRAWS, 1.0, 4 * sqrt(2.0 / DRAWS), "normal variance");
    CHECK_NEAR(s4 / DRAWS, 3.0, 4 * sqrt(96.0 / DRAWS), "normal fourth moment");
}

/* Pearson chi-square of `draws` values of loom_rng_below(., n) in n bins. */
static double chi_square_below(uint64_t key, uint32_t n, int draws, int *out_of_range) {
    enum { MAXBINS = 64 };
    double count[MAXBINS] = {0};
    *out_of_range = 0;
    for (int i = 0; i < draws; i++) {
        uint32_t v = loom_rng_below(key, (uint64_t)i, n);
        if (v >= n) {
            (*out_of_range)++;
            continue;
        }
        count[v]++;
    }
    double e = (double)draws / n, chi = 0;
    for (uint32_t b = 0; b < n; b++) chi += (count[b] - e) * (count[b] - e) / e;
    return chi;
}

static void test_below(void) {
    uint64_t k = loom_rng_key(4, LOOM_RNG_TEST, 0, 0);
    int out = 0;
    for (uint64_t i = 0; i < 1000; i++) out += loom_rng_below(k, i, 1) != 0;
    CHECK(out == 0, "below(1) must be 0");

    /* chi-square with d = n-1 degrees of freedom has mean d and sd sqrt(2d);
     * d + 6 sd is far in the tail (p < 1e-5) */
    const uint32_t ns[] = {2, 3, 7, 10, 64};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        uint32_t n = ns[t];
        double chi = chi_square_below(k, n, 200000, &out);
        double d = n - 1;
        CHECK(out == 0, "below(%u): %d values out of range", n, out);
        CHECK(chi < d + 6 * sqrt(2 * d), "below(%u): chi-square %.1f with %g dof", n, chi, d);
    }

    /* n = 3*2^30 rejects a quarter of the raw draws: range and three equal
     * thirds [0,2^30), [2^30,2^31), [2^31,3*2^30) */
    const uint32_t n = 3u << 30;
    double third[3] = {0};
    out = 0;
    for (uint64_t i = 0; i < 300000; i++) {
        uint32_t v = loom_rng_below(k, i, n);
        if (v >= n)
            out++;
        else
            third[v >> 30]++;
    }
    CHECK(out == 0, "below(3*2^30): %d out of range", out);
    double chi = 0;
    for (int b = 0; b < 3; b++) chi += (third[b] - 1e5) * (third[b] - 1e5) / 1e5;
    CHECK(chi < 2 + 6 * 2, "below(3*2^30): chi-square %.1f with 2 dof", chi);
}

static int is_permutation(const uint32_t *p, uint32_t n, unsigned char *seen) {
    memset(seen, 0, n);
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] >= n || seen[p[i]]) return 0;
        seen[p[i]] = 1;
    }
    return 1;
}

static void test_permutation(void) {
    enum { N = 10007 };
    static uint32_t a[N], b[N];
    static unsigned char seen[N];
    uint64_t k = loom_rng_key(8, LOOM_RNG_SHUFFLE, 0, 0);
    loom_rng_permutation(k, a, N);
    loom_rng_permutation(k, b, N);
    CHECK(is_permutation(a, N, seen), "not a permutation");
    CHECK(memcmp(a, b, sizeof a) == 0, "permutation not reproducible");
    uint32_t fixed = 0;
    for (uint32_t i = 0; i < N; i++) fixed += a[i] == i;
    /* fixed points of a random permutation ~ Poisson(1) */
    CHECK(fixed < 10, "%u fixed points: hardly shuffled", fixed);
    loom_rng_permutation(loom_rng_key(8, LOOM_RNG_SHUFFLE, 1, 0), b, N);
    CHECK(is_permutation(b, N, seen), "second epoch not a permutation");
    CHECK(memcmp(a, b, sizeof a) != 0, "epochs give the same permutation");

    /* edge sizes, and every position equally likely: where does 0 land over
     * 6000 permutations of 6 (chi-square, 5 dof) */
    uint32_t one = 99;
    loom_rng_permutation(k, &one, 1);
    CHECK(one == 0, "permutation of 1");
    loom_rng_permutation(k, NULL, 0);
    double pos[6] = {0};
    for (uint64_t e = 0; e < 6000; e++) {
        uint32_t p[6];
        loom_rng_permutation(loom_rng_key(8, LOOM_RNG_SHUFFLE, e, 0), p, 6);
        for (int i = 0; i < 6; i++)
            if (p[i] == 0) pos[i]++;
    }
    double chi = 0;
    for (int i = 0; i < 6; i++) chi += (pos[i] - 1000) * (pos[i] - 1000) / 1000;
    CHECK(chi < 5 + 6 * sqrt(10.0), "position of 0: chi-square %.1f with 5 dof", chi);
}

int main(void) {
    test_known_answers();
    test_keys_differ();
    test_uniform();
    test_normal();
    test_below();
    test_permutation();
    TEST_END();
}
