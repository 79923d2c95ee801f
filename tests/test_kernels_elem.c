/* Elementwise, softmax, dropout, batch norm and structure kernels:
 * forwards against hand-worked values, backwards against central finite
 * differences of L = sum(y * r) with a fixed random r, and every backward
 * checked to ACCUMULATE into its gradients rather than overwrite them. */
#include "check.h"

#include <stdint.h>
#include "kernels/kernels.h"
#include "kernels/rng.h"

static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

/* Run a backward once into zeros (g0) and once on top of `base` (g1), then
 * require g1 == base + g0: the kernel must add, not assign. */
static void check_accumulated(const char *name, const float *g0, const float *g1,
                              const float *base, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(g1[i] - (base[i] + g0[i])) > 1e-5f * (1.0f + fabsf(g0[i]))) bad++;
    CHECK(bad == 0, "%s: %d of %zu gradients were overwritten, not accumulated", name,
          bad, n);
}

/* ---- elementwise activations ---------------------------------------------- */

typedef void (*unary_fwd)(const float *x, float *y, size_t len);
/* backward in one shape for all: gets both x and y, uses whichever it needs */
typedef void (*unary_bwd)(const float *x, const float *y, const float *dy, float *dx,
                          size_t len);

static void lrelu_fwd(const float *x, float *y, size_t len) {
    loom_k_leaky_relu_fwd(x, y, len, 0.1f);
}
static void relu_bwd(const float *x, const float *y, const float *dy, float *dx,
                     size_t len) {
    (void)y;
    loom_k_relu_bwd(x, dy, dx, len);
}
static void lrelu_bwd(const float *x, const float *y, const float *dy, float *dx,
                      size_t len) {
    (void)y;
    loom_k_leaky_relu_bwd(x, dy, dx, len, 0.1f);
}
static void sigmoid_bwd(const float *x, const float *y, const float *dy, float *dx,
                        size_t len) {
    (void)x;
    loom_k_sigmoid_bwd(y, dy, dx, len);
}
static void tanh_bwd(const float *x, const float *y, const float *dy, float *dx,
                     size_t len) {
    (void)x;
    loom_k_tanh_bwd(y, dy, dx, len);
}

typedef struct {
    unary_fwd fwd;
    float *x, *y;
    const float *r;
    size_t len;
} unary_ctx;

static double unary_loss(void *p) {
    unary_ctx *c = p;
    c->fwd(c->x, c->y, c->len);
    return dot(c->y, c->r, c->len);
}

/* Piecewise-linear kernels have a kink at 0; keep every input more than
 * 2*eps away from it so the finite difference never straddles it. */
static void away_from_zero(float *x, size_t n, float gap) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < gap) x[i] = x[i] < 0 ? -gap - fabsf(x[i]) : gap + x[i];
}

static void grad_unary(const char *name, unary_fwd fwd, unary_bwd bwd, int kinked) {
    enum { N = 97 };
    float x[N], y[N], r[N], dx[N], dx2[N], base[N];
    t_fill(x, N, 1, -3.0f, 3.0f);
    t_fill(r, N, 2, -1.0f, 1.0f);
    t_fill(base, N, 3, -1.0f, 1.0f);
    const float eps = 1e-2f;
    if (kinked) away_from_zero(x, N, 5 * eps);
    unary_ctx c = {fwd, x, y, r, N};
    fwd(x, y, N);
    zero(dx, N);
    bwd(x, y, r, dx, N);
    t_gradcheck(name, unary_loss, &c, x, dx, N, eps, 1e-4, 1e-3);
    fwd(x, y, N); /* gradcheck leaves y from its last perturbed input */
    memcpy(dx2, base, sizeof dx2);
    bwd(x, y, r, dx2, N);
    check_accumulated(name, dx, dx2, base, N);
}

static void test_activation_values(void) {
    const float x[5] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f};
    float y[5];
    loom_k_relu_fwd(x, y, 5);
    const float relu[5] = {0, 0, 0, 0.5f, 3.0f};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], relu[i], 0, "relu");
    loom_k_leaky_relu_fwd(x, y, 5, 0.1f);
    const float lrelu[5] = {-0.2f, -0.05f, 0, 0.5f, 3.0f};
    for (int i = 0; i < 5; i++) CHECK_NEAR(y[i], lrelu[i], 1e-7, "leaky relu");

    /* relu passes dy where x > 0 and nothing at or below 0 */
    float dy[5] = {1, 1, 1, 1, 1}, dx[5] = {0};
    loom_k_relu_bwd(x, dy, dx, 5);
    CHECK(dx[0] == 0 && dx[2] == 0 && dx[3] == 1 && dx[4] == 1, "relu bwd mask");

    /* sigmoid(0) = 1/2; sigmoid(2) = 1/(1+e^-2) = 0.880797078;
     * sigmoid(-2) = 1 - sigmoid(2); at +-100 exp must not overflow */
    const float sx[5] = {0.0f, 2.0f, -2.0f, 100.0f, -100.0f};
    float sy[5];
    loom_k_sigmoid_fwd(sx, sy, 5);
    CHECK_NEAR(sy[0], 0.5, 1e-7, "sigmoid(0)");
    CHECK_NEAR(sy[1], 0.880797078, 1e-6, "sigmoid(2)");
    CHECK_NEAR(sy[2], 0.119202922, 1e-6, "sigmoid(-2)");
    CHECK(sy[3] == 1.0f, "sigmoid(100) = %g", sy[3]);
    CHECK(sy[4] >= 0.0f && sy[4] < 1e-40f && !isnan(sy[4]), "sigmoid(-100) = %g", sy[4]);
    /* far tail keeps relative precision: sigmoid(-20) = e^-20/(1+e^-20) = 2.0611536e-9 */
    float t = -20.0f, st;
    loom_k_sigmoid_fwd(&t, &st, 1);
    CHECK_NEAR(st / 2.0611536e-9, 1.0, 1e-5, "sigmoid(-20) relative");

    /* tanh(0) = 0, tanh(1) = 0.761594156, odd, saturates to +-1 */
    const float tx[4] = {0.0f, 1.0f, -1.0f, 50.0f};
    float ty[4];
    loom_k_tanh_fwd(tx, ty, 4);
    CHECK_NEAR(ty[0], 0.0, 0, "tanh(0)");
    CHECK_NEAR(ty[1], 0.761594156, 1e-6, "tanh(1)");
    CHECK_NEAR(ty[2], -0.761594156, 1e-6, "tanh(-1)");
    CHECK_NEAR(ty[3], 1.0, 0, "tanh(50)");
}

/* ---- softmax ---------------------------------------------------------------- */

static void test_softmax_values(void) {
    /* softmax([1,2,3]) = e^i / (e + e^2 + e^3) = [0.0900306, 0.2447285, 0.6652410];
     * the second row is the first + 1000: max subtraction makes it identical
     * instead of inf/inf = NaN. The third row is constant: uniform 1/4. */
    const float x[3 * 4] = {1, 2, 3, -1e30f, 1001, 1002, 1003, -1e30f, 5, 5, 5, 5};
    float y[12];
    loom_k_softmax_fwd(x, y, 3, 4);
    const double want[4] = {0.0900305732, 0.2447284711, 0.6652409558, 0.0};
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 4; j++) CHECK_NEAR(y[r * 4 + j], want[j], 1e-6, "softmax");
    for (int j = 0; j < 4; j++) CHECK_NEAR(y[8 + j], 0.25, 1e-7, "softmax uniform");
}

typedef struct {
    float *x, *y;
    const float *r;
    int rows, k;
} softmax_ctx;

static double softmax_loss(void *p) {
    softmax_ctx *c = p;
    loom_k_softmax_fwd(c->x, c->y, c->rows, c->k);
    return dot(c->y, c->r, (size_t)c->rows * c->k);
}

static void grad_softmax(void) {
    enum { R = 5, K = 7, N = R * K };
    float x[N], y[N], r[N], dx[N], dx2[N], base[N];
    t_fill(x, N, 11, -3.0f, 3.0f);
    t_fill(r, N, 12, -1.0f, 1.0f);
    t_fill(base, N, 13, -1.0f, 1.0f);
    softmax_ctx c = {x, y, r, R, K};
    loom_k_softmax_fwd(x, y, R, K);
    zero(dx, N);
    loom_k_softmax_bwd(y, r, dx, R, K);
    t_gradcheck("softmax dx", softmax_loss, &c, x, dx, N, 1e-2f, 1e-4, 1e-3);
    loom_k_softmax_fwd(x, y, R, K);
    memcpy(dx2, base, sizeof dx2);
    loom_k_softmax_bwd(y, r, dx2, R, K);
    check_accumulated("softmax dx", dx, dx2, base, N);
}

/* ---- dropout ------------------------------------------------------------------ */

static void test_dropout_identity(void) {
    enum { N = 3, P = 50 };
    float x[N * P], y[N * P], m[N * P];
    t_fill(x, N * P, 21, -1.0f, 1.0f);
    loom_k_dropout_fwd(x, y, m, N, P, 0.0f, 7, 0);
    int bad = 0;
    for (int i = 0; i < N * P; i++) bad += m[i] != 1.0f || y[i] != x[i];
    CHECK(bad == 0, "p = 0 must be the identity, %d elements differ", bad);

    /* p = 1 drops everything, without an infinite scale leaking into y */
    loom_k_dropout_fwd(x, y, m, N, P, 1.0f, 7, 0);
    bad = 0;
    for (int i = 0; i < N * P; i++) bad += m[i] != 0.0f || y[i] != 0.0f;
    CHECK(bad == 0, "p = 1 must drop everything, %d elements kept", bad);
}

static void test_dropout_statistics(void) {
    enum { N = 100, P = 1000, LEN = N * P };
    static float x[LEN], y[LEN], m[LEN];
    const float p = 0.3f;
    const float scale = 1.0f / (1.0f - p);
    for (int i = 0; i < LEN; i++) x[i] = 1.0f;
    uint64_t key = loom_rng_key(42, LOOM_RNG_DROPOUT, 0, 0);
    loom_k_dropout_fwd(x, y, m, N, P, p, key, 0);

    size_t kept = 0, odd = 0;
    double ysum = 0.0;
    for (int i = 0; i < LEN; i++) {
        kept += m[i] != 0.0f;
        odd += m[i] != 0.0f && m[i] != scale;
        ysum += y[i];
    }
    CHECK(odd == 0, "%zu mask values are neither 0 nor 1/(1-p)", odd);
    /* kept ~ Binomial(LEN, 1-p): 5 standard deviations is sqrt(p(1-p)/LEN)*5 ~ 0.0072 */
    double frac = (double)kept / LEN;
    double sd = sqrt(p * (1.0 - p) / LEN);
    CHECK_NEAR(frac, 1.0 - p, 5 * sd, "dropout keep fraction");
    /* E[y] = x: each y is scale with prob 1-p, so sd of the mean is scale*sd */
    CHECK_NEAR(ysum / LEN, 1.0, 5 * scale * sd, "dropout preserves the mean");

    /* the mask is exactly the documented function of (key, sample, element) */
    int bad = 0;
    for (int j = 0; j < N; j += 17)
        for (int i = 0; i < P; i += 31) {
            float u = loom_rng_uniform(loom_rng_key(key, (uint64_t)j, 0, 0), (uint64_t)i);
            bad += m[(size_t)j * P + i] != (u >= p ? scale : 0.0f);
        }
    CHECK(bad == 0, "%d mask values differ from the documented rule", bad);
}

static void test_dropout_shards(void) {
    enum { N = 4, P = 300 };
    float x[N * P], y[N * P], whole[N * P], parts[N * P], one[P];
    t_fill(x, N * P, 31, -1.0f, 1.0f);
    const float p = 0.5f;
    uint64_t key = 0x1234;
    loom_k_dropout_fwd(x, y, whole, N, P, p, key, 0);
    /* the same batch cut into two shards of two samples */
    loom_k_dropout_fwd(x, y, parts, 2, P, p, key, 0);
    loom_k_dropout_fwd(x + 2 * P, y + 2 * P, parts + 2 * P, 2, P, p, key, 2);
    CHECK(memcmp(whole, parts, sizeof whole) == 0, "mask depends on the shard cut");
    /* and a shard of one sample at global index 3 */
    loom_k_dropout_fwd(x + 3 * P, y, one, 1, P, p, key, 3);
    CHECK(memcmp(whole + 3 * P, one, sizeof one) == 0, "sample 3 alone differs");
    /* samples must not share a mask, and another key must give another mask */
    CHECK(memcmp(whole, whole + P, P * sizeof(float)) != 0, "samples 0 and 1 share a mask");
    loom_k_dropout_fwd(x, y, parts, N, P, p, key + 1, 0);
    CHECK(memcmp(whole, parts, sizeof whole) != 0, "key does not change the mask");
}

typedef struct {
    float *x, *y, *mask;
    const float *r;
    int n;
    size_t per;
    float p;
    uint64_t key;
} dropout_ctx;

static double dropout_loss(void *v) {
    dropout_ctx *c = v;
    loom_k_dropout_fwd(c->x, c->y, c->mask, c->n, c->per, c->p, c->key, 5);
    return dot(c->y, c->r, (size_t)c->n * c->per);
}

static void grad_dropout(void) {
    enum { N = 3, P = 29, LEN = N * P };
    float x[LEN], y[LEN], m[LEN], r[LEN], dx[LEN], dx2[LEN], base[LEN];
    t_fill(x, LEN, 41, -2.0f, 2.0f);
    t_fill(r, LEN, 42, -1.0f, 1.0f);
    t_fill(base, LEN, 43, -1.0f, 1.0f);
    dropout_ctx c = {x, y, m, r, N, P, 0.4f, 99};
    dropout_loss(&c);
    zero(dx, LEN);
    loom_k_dropout_bwd(r, m, dx, LEN);
    t_gradcheck("dropout dx (fixed key)", dropout_loss, &c, x, dx, LEN, 1e-2f, 1e-4, 1e-3);
    dropout_loss(&c);
    memcpy(dx2, base, sizeof dx2);
    loom_k_dropout_bwd(r, m, dx2, LEN);
    check_accumulated("dropout dx", dx, dx2, base, LEN);
}

/* ---- batch norm ------------------------------------------------------------------ */

static void test_batchnorm_values(void) {
    /* 1d, one feature, batch [1,2,3,4]: mean 2.5, biased var
     * (2.25+0.25+0.25+2.25)/4 = 1.25, so y = gamma*(x-2.5)/sqrt(1.25+eps) + beta */
    const float x[4] = {1, 2, 3, 4};
    const float gamma = 2.0f, beta = 0.5f, eps = 1e-5f;
    float y[4], mean, invstd;
    loom_k_batchnorm_fwd_train(x, y, 4, 1, 1, &gamma, &beta, eps, &mean, &invstd, NULL);
    CHECK_NEAR(mean, 2.5, 1e-7, "bn mean");
    CHECK_NEAR(invstd, 1.0 / sqrt(1.25 + 1e-5), 1e-6, "bn invstd");
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(y[i], 2.0 * (x[i] - 2.5) / sqrt(1.25 + 1e-5) + 0.5, 1e-5, "bn y");

    /* The same numbers as one channel of a 2d input, n=2, hw=2: same statistics */
    float y2[4], mean2, invstd2;
    loom_k_batchnorm_fwd_train(x, y2, 2, 1, 2, &gamma, &beta, eps, &mean2, &invstd2, NULL);
    CHECK(mean2 == mean && invstd2 == invstd && memcmp(y, y2, sizeof y) == 0,
          "2d layout with hw=2 disagrees with 1d");

    /* running stats, momentum 0.1 from (0, 1): mean 0.9*0 + 0.1*2.5 = 0.25;
     * unbiased var 1.25*4/3 = 5/3, so var 0.9*1 + 0.1*5/3 = 1.0666667 */
    float rm = 0.0f, rv = 1.0f, var = 1.0f / (invstd * invstd) - eps;
    loom_k_batchnorm_update_running(&rm, &rv, 1, &mean, &var, 0.1f, 4);
    CHECK_NEAR(rm, 0.25, 1e-7, "running mean");
    CHECK_NEAR(rv, 0.9 + 0.1 * 1.25 * 4.0 / 3.0, 1e-6, "running var (unbiased)");
}

static void test_batchnorm_infer(void) {
    /* y = gamma * (x - rm) / sqrt(rv + eps) + beta per channel, hw = 3 and hw = 1;
     * c = 70 crosses the kernel's 64-channel blocks */
    enum { N = 2, C = 70, HW = 3 };
    float x[N * C * HW], y[N * C * HW], g[C], b[C], rm[C], rv[C];
    t_fill(x, N * C * HW, 51, -3.0f, 3.0f);
    t_fill(g, C, 52, 0.5f, 2.0f);
    t_fill(b, C, 53, -1.0f, 1.0f);
    t_fill(rm, C, 54, -1.0f, 1.0f);
    t_fill(rv, C, 55, 0.1f, 3.0f);
    const float eps = 1e-3f;
    for (int hw = 1; hw <= HW; hw += HW - 1) {
        loom_k_batchnorm_fwd_infer(x, y, N, C, hw, g, b, eps, rm, rv);
        double worst = 0.0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int s = 0; s < hw; s++) {
                    size_t i = ((size_t)n * C + c) * hw + s;
                    double want = g[c] * (x[i] - rm[c]) / sqrt(rv[c] + eps) + b[c];
                    worst = fmax(worst, fabs(y[i] - want));
                }
        CHECK(worst < 1e-5, "bn inference hw=%d: worst error %g", hw, worst);
    }
}

static void test_batchnorm_update_running(void) {
    /* against mean and unbiased variance computed directly, c = 3 channels of
     * n=4, hw=5 (m = 20), momentum 0.25 */
    enum { N = 4, C = 3, HW = 5, M = N * HW };
    float x[N * C * HW], y[N * C * HW], g[C] = {1, 1, 1}, b[C] = {0, 0, 0};
    float mean[C], invstd[C], rm[C] = {1, -1, 0}, rv[C] = {2, 0.5f, 1};
    t_fill(x, N * C * HW, 61, -2.0f, 4.0f);
    const float eps = 1e-5f, mom = 0.25f;
    loom_k_batchnorm_fwd_train(x, y, N, C, HW, g, b, eps, mean, invstd, NULL);
    float rm0[C], rv0[C];
    memcpy(rm0, rm, sizeof rm);
    memcpy(rv0, rv, sizeof rv);
    float var[C];
    for (int c = 0; c < C; c++) var[c] = 1.0f / (invstd[c] * invstd[c]) - eps;
    loom_k_batchnorm_update_running(rm, rv, C, mean, var, mom, M);
    for (int c = 0; c < C; c++) {
        double s = 0.0, ss = 0.0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) s += x[((size_t)n * C + c) * HW + i];
        double mu = s / M;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) {
                double d = x[((size_t)n * C + c) * HW + i] - mu;
                ss += d * d;
            }
        CHECK_NEAR(rm[c], (1 - mom) * rm0[c] + mom * mu, 1e-6, "update_running mean");
        CHECK_NEAR(rv[c], (1 - mom) * rv0[c] + mom * ss / (M - 1), 1e-5,
                   "update_running var");
    }
}

/* Statistics of a batch cut into unequal parts (as the trainer's shards are)
 * and combined equal those of the whole batch, for both layouts. */
static void test_batchnorm_combine(void) {
    enum { N = 11, C = 5, HW = 7 };
    static const int parts[] = {1, 4, 2, 4}; /* sums to N */
    float x[N * C * HW], y[N * C * HW], g[C], b[C];
    t_fill(x, N * C * HW, 81, -2.0f, 5.0f);
    t_fill(g, C, 82, 0.5f, 1.5f);
    t_fill(b, C, 83, -1.0f, 1.0f);
    for (int hw = 1; hw <= HW; hw += HW - 1) {
        float wm[C], wi[C], wv[C];
        loom_k_batchnorm_fwd_train(x, y, N, C, hw, g, b, 1e-5f, wm, wi, wv);
        float pm[4][C], pi[4][C], pv[4][C];
        const float *ms[4], *vs[4];
        size_t cnt[4];
        int at = 0;
        for (int r = 0; r < 4; r++) {
            loom_k_batchnorm_fwd_train(x + (size_t)at * C * hw, y, parts[r], C, hw, g, b, 1e-5f, pm[r], pi[r],
                                       pv[r]);
            ms[r] = pm[r];
            vs[r] = pv[r];
            cnt[r] = (size_t)parts[r] * (size_t)hw;
            at += parts[r];
        }
        float cm[C], cv[C];
        loom_k_batchnorm_combine(ms, vs, cnt, 4, 0, C, cm, cv);
        for (int c = 0; c < C; c++) {
            CHECK_NEAR(cm[c], wm[c], 1e-6 * (1 + fabs(wm[c])), "combined mean");
            CHECK_NEAR(cv[c], wv[c], 1e-6 * (1 + fabs(wv[c])), "combined variance");
            CHECK_NEAR(1.0 / sqrt(wv[c] + 1e-5), wi[c], 1e-5 * wi[c], "batch_var agrees with invstd");
        }
    }
}

/* Values around 1000 with spread ~0.6: E[x^2]-E[x]^2 in float would lose
 * all digits; the output must still be zero-mean, unit-variance. */
static void test_batchnorm_large_mean(void) {
    enum { N = 64 };
    float x[N], y[N], g = 1.0f, b = 0.0f, mean, invstd;
    t_fill(x, N, 71, 999.0f, 1001.0f);
    loom_k_batchnorm_fwd_train(x, y, N, 1, 1, &g, &b, 1e-5f, &mean, &invstd, NULL);
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < N; i++) s += y[i];
    for (int i = 0; i < N; i++) ss += (y[i] - s / N) * (y[i] - s / N);
    CHECK_NEAR(s / N, 0.0, 1e-4, "bn large mean: output mean");
    CHECK_NEAR(ss / N, 1.0, 1e-3, "bn large mean: output variance");
}

typedef struct {
    float *x, *g, *b, *y, *mean, *invstd;
    const float *r;
    int n, c, hw;
} bn_ctx;

static double bn_loss(void *v) {
    bn_ctx *k = v;
    loom_k_batchnorm_fwd_train(k->x, k->y, k->n, k->c, k->hw, k->g, k->b, 1e-5f, k->mean,
                               k->invstd, NULL);
    return dot(k->y, k->r, (size_t)k->n * k->c * k->hw);
}

static void grad_batchnorm(const char *tag, int n, int c, int hw) {
    size_t len = (size_t)n * c * hw;
    float *x = malloc(len * sizeof *x), *y = malloc(len * sizeof *y);
    float *r = malloc(len * sizeof *r), *dx = malloc(len * sizeof *dx);
    float *dx2 = malloc(len * sizeof *dx2), *base = malloc(len * sizeof *base);
    float *g = malloc(c * sizeof *g), *b = malloc(c * sizeof *b);
    float *dg = calloc(c, sizeof *dg), *db = calloc(c, sizeof *db);
    float *dg2 = calloc(c, sizeof *dg2), *db2 = calloc(c, sizeof *db2);
    float *mean = malloc(c * sizeof *mean), *invstd = malloc(c * sizeof *invstd);
    t_fill(x, len, 81, -2.0f, 2.0f);
    t_fill(r, len, 82, -1.0f, 1.0f);
    t_fill(base, len, 83, -1.0f, 1.0f);
    t_fill(g, c, 84, 0.5f, 1.5f);
    t_fill(b, c, 85, -0.5f, 0.5f);
    bn_ctx k = {x, g, b, y, mean, invstd, r, n, c, hw};
    bn_loss(&k);
    zero(dx, len);
    loom_k_batchnorm_bwd(x, r, dx, dg, db, n, c, hw, g, mean, invstd);

    char name[64];
    snprintf(name, sizeof name, "batchnorm %s dx", tag);
    t_gradcheck(name, bn_loss, &k, x, dx, len, 1e-3f, 1e-3, 1e-2);
    snprintf(name, sizeof name, "batchnorm %s dgamma", tag);
    t_gradcheck(name, bn_loss, &k, g, dg, c, 1e-3f, 1e-3, 1e-2);
    snprintf(name, sizeof name, "batchnorm %s dbeta", tag);
    t_gradcheck(name, bn_loss, &k, b, db, c, 1e-3f, 1e-3, 1e-2);

    /* accumulation into all three; then dx = NULL must leave dgamma/dbeta alone */
    bn_loss(&k);
    memcpy(dx2, base, len * sizeof *dx2);
    memcpy(dg2, base, c * sizeof *dg2);
    memcpy(db2, base, c * sizeof *db2);
    loom_k_batchnorm_bwd(x, r, dx2, dg2, db2, n, c, hw, g, mean, invstd);
    snprintf(name, sizeof name, "batchnorm %s", tag);
    check_accumulated(name, dx, dx2, base, len);
    check_accumulated(name, dg, dg2, base, c);
    check_accumulated(name, db, db2, base, c);
    zero(dg2, c);
    zero(db2, c);
    loom_k_batchnorm_bwd(x, r, NULL, dg2, db2, n, c, hw, g, mean, invstd);
    CHECK(memcmp(dg, dg2, c * sizeof *dg) == 0 && memcmp(db, db2, c * sizeof *db) == 0,
          "%s: dgamma/dbeta change when dx is NULL", name);

    free(x), free(y), free(r), free(dx), free(dx2), free(base), free(g), free(b);
    free(dg), free(db), free(dg2), free(db2), free(mean), free(invstd);
}

/* ---- structure ----------------------------------------------------------------- */

typedef struct {
    float *a, *b, *y;
    const float *r;
    size_t len;
} add_ctx;

static double add_loss(void *v) {
    add_ctx *c = v;
    loom_k_add_fwd(c->a, c->b, c->y, c->len);
    return dot(c->y, c->r, c->len);
}

static void grad_add(void) {
    enum { N = 41 };
    float a[N], b[N], y[N], r[N], da[N], db[N];
    t_fill(a, N, 91, -1.0f, 1.0f);
    t_fill(b, N, 92, -1.0f, 1.0f);
    t_fill(r, N, 93, -1.0f, 1.0f);
    loom_k_add_fwd(a, b, y, N);
    CHECK_NEAR(y[7], (double)a[7] + b[7], 1e-7, "add");
    add_ctx c = {a, b, y, r, N};
    zero(da, N);
    zero(db, N);
    loom_k_accumulate(r, da, N);
    loom_k_accumulate(r, db, N);
    t_gradcheck("add da", add_loss, &c, a, da, N, 1e-2f, 1e-4, 1e-3);
    t_gradcheck("add db", add_loss, &c, b, db, N, 1e-2f, 1e-4, 1e-3);
    float acc[3] = {1, 2, 3};
    const float d[3] = {0.5f, -1, 4};
    loom_k_accumulate(d, acc, 3);
    CHECK(acc[0] == 1.5f && acc[1] == 1.0f && acc[2] == 7.0f, "accumulate adds");
}

static void test_concat_values(void) {
    /* n=2, hw=1: a [2,1] = {1,2}, b [2,2] = {10,11,20,21} -> [2,3] = {1,10,11, 2,20,21} */
    const float a[2] = {1, 2}, b[4] = {10, 11, 20, 21};
    const float *xs[2] = {a, b};
    const int cs[2] = {1, 2};
    float y[6];
    loom_k_concat_fwd(xs, cs, 2, y, 2, 1);
    const float want[6] = {1, 10, 11, 2, 20, 21};
    CHECK(memcmp(y, want, sizeof y) == 0, "concat order");
    /* backward routes slices back, skipping a NULL input gradient */
    float db[4] = {100, 100, 100, 100};
    float *dxs[2] = {NULL, db};
    loom_k_concat_bwd(want, dxs, cs, 2, 2, 1);
    CHECK(db[0] == 110 && db[1] == 111 && db[2] == 120 && db[3] == 121, "concat bwd");
}

typedef struct {
    float *xs[3], *y;
    const int *cs;
    const float *r;
    int n, hw;
    size_t ylen;
} concat_ctx;

static double concat_loss(void *v) {
    concat_ctx *c = v;
    const float *in[3] = {c->xs[0], c->xs[1], c->xs[2]};
    loom_k_concat_fwd(in, c->cs, 3, c->y, c->n, c->hw);
    return dot(c->y, c->r, c->ylen);
}

static void grad_concat(void) {
    enum { N = 3, HW = 4, C0 = 2, C1 = 3, C2 = 1, CT = C0 + C1 + C2 };
    const int cs[3] = {C0, C1, C2};
    float x0[N * C0 * HW], x1[N * C1 * HW], x2[N * C2 * HW], y[N * CT * HW], r[N * CT * HW];
    float d0[N * C0 * HW], d1[N * C1 * HW], d2[N * C2 * HW];
    t_fill(x0, sizeof x0 / sizeof *x0, 101, -1, 1);
    t_fill(x1, sizeof x1 / sizeof *x1, 102, -1, 1);
    t_fill(x2, sizeof x2 / sizeof *x2, 103, -1, 1);
    t_fill(r, sizeof r / sizeof *r, 104, -1, 1);
    zero(d0, sizeof d0 / sizeof *d0);
    zero(d1, sizeof d1 / sizeof *d1);
    zero(d2, sizeof d2 / sizeof *d2);
    concat_ctx c = {{x0, x1, x2}, y, cs, r, N, HW, sizeof y / sizeof *y};
    float *dxs[3] = {d0, d1, d2};
    loom_k_concat_bwd(r, dxs, cs, 3, N, HW);
    t_gradcheck("concat dx0", concat_loss, &c, x0, d0, sizeof x0 / sizeof *x0, 1e-2f, 1e-4, 1e-3);
    t_gradcheck("concat dx1", concat_loss, &c, x1, d1, sizeof x1 / sizeof *x1, 1e-2f, 1e-4, 1e-3);
    t_gradcheck("concat dx2", concat_loss, &c, x2, d2, sizeof x2 / sizeof *x2, 1e-2f, 1e-4, 1e-3);
}

static void test_argmax(void) {
    const float x[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, -7.0f};
    CHECK(loom_k_argmax(x, 6) == 1, "argmax takes the first of ties");
    CHECK(loom_k_argmax(x, 1) == 0, "argmax of one");
    const float neg[3] = {-5.0f, -2.0f, -3.0f};
    CHECK(loom_k_argmax(neg, 3) == 1, "argmax of negatives");
}

/* ---- big buffers ---------------------------------------------------------- */

static void test_big_buffers(void) {
    size_t sizes[] = {0, 1, 100, 4u << 20, (4u << 20) + 12345, 9u << 20};
    for (int round = 0; round < 2; round++) /* the second round may get the first one's memory back */
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            unsigned char *p = loom_k_big_alloc(n, 1);
            CHECK(p && (uintptr_t)p % 64 == 0, "big_alloc(%zu): %p is not 64-byte aligned", n, (void *)p);
            size_t nonzero = 0;
            for (size_t k = 0; p && k < n; k++) nonzero += p[k] != 0;
            CHECK(nonzero == 0, "big_alloc(%zu): %zu bytes not zero", n, nonzero);
            if (p && n) memset(p, 0xab, n); /* all of it writable (AddressSanitizer watches the end) */
            loom_k_big_free(p);
            float *f = loom_k_big_alloc(n / 4 + 1, sizeof(float));
            CHECK(f != NULL, "big_alloc(%zu floats) failed", n / 4 + 1);
            if (f) f[n / 4] = 1.0f;
            loom_k_big_free(f);
        }
    loom_k_big_free(NULL);
    CHECK(loom_k_big_alloc((size_t)-1 / 2, 4) == NULL, "big_alloc: an overflowing count was not refused");
    CHECK(loom_k_big_alloc(1, (size_t)-1 - 100) == NULL, "big_alloc: a size near SIZE_MAX was not refused");
}

int main(void) {
    test_big_buffers();
    test_activation_values();
    grad_unary("relu dx", loom_k_relu_fwd, relu_bwd, 1);
    grad_unary("leaky relu dx", lrelu_fwd, lrelu_bwd, 1);
    grad_unary("sigmoid dx", loom_k_sigmoid_fwd, sigmoid_bwd, 0);
    grad_unary("tanh dx", loom_k_tanh_fwd, tanh_bwd, 0);

    test_softmax_values();
    grad_softmax();

    test_dropout_identity();
    test_dropout_statistics();
    test_dropout_shards();
    grad_dropout();

    test_batchnorm_values();
    test_batchnorm_infer();
    test_batchnorm_update_running();
    test_batchnorm_large_mean();
    test_batchnorm_combine();
    grad_batchnorm("1d n=3 c=5", 3, 5, 1);
    grad_batchnorm("1d n=4 c=67", 4, 67, 1);
    grad_batchnorm("2d n=3 c=5 hw=7", 3, 5, 7);
    grad_batchnorm("2d n=1 c=2 hw=9", 1, 2, 9);

    grad_add();
    test_concat_values();
    grad_concat();
    test_argmax();
    TEST_END();
}
