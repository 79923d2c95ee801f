/* Losses: values against closed forms on small cases (including logits
 * large enough to overflow a naive exp), gradients against central finite
 * differences of the returned loss, and the scale/accumulate contract. */
#include "check.h"
#include "kernels/kernels.h"

#include <stdint.h>

enum { XENT, MSE, BCE, HINGE };

/* One calling shape for the four kernels: labels are used by XENT/HINGE,
 * targets by MSE/BCE. */
typedef struct {
    int kind;
    float *z;
    const int32_t *labels;
    const float *targets;
    int n, k;
    float margin;
} loss_ctx;

static double run(const loss_ctx *c, float *grad, float scale) {
    switch (c->kind) {
    case XENT: return loom_k_softmax_xent(c->z, c->labels, grad, c->n, c->k, scale);
    case MSE: return loom_k_mse(c->z, c->targets, grad, c->n, c->k, scale);
    case BCE: return loom_k_bce_logits(c->z, c->targets, grad, c->n, c->k, scale);
    default: return loom_k_hinge(c->z, c->labels, grad, c->n, c->k, c->margin, scale);
    }
}

static double loss_only(void *c) { return run(c, NULL, 1.0f); }

/* ---- closed forms ---------------------------------------------------------------- */

static void test_xent_values(void) {
    /* logits [0,0], label 0: log(e^0 + e^0) - 0 = log 2; d = softmax - onehot = [-1/2, 1/2] */
    float z[2] = {0, 0}, d[2] = {0, 0};
    int32_t y = 0;
    CHECK_NEAR(loom_k_softmax_xent(z, &y, d, 1, 2, 1.0f), log(2.0), 1e-7, "xent [0,0]");
    CHECK_NEAR(d[0], -0.5, 1e-7, "xent d[0]");
    CHECK_NEAR(d[1], 0.5, 1e-7, "xent d[1]");

    /* [1,2,3] label 2: log(e + e^2 + e^3) - 3 = 0.4076059645 */
    float z3[3] = {1, 2, 3};
    y = 2;
    CHECK_NEAR(loom_k_softmax_xent(z3, &y, NULL, 1, 3, 1.0f), 0.4076059645, 1e-6,
               "xent [1,2,3]");

    /* [1000, 0]: naive exp(1000) = inf. Label 0: log(1 + e^-1000) = 0;
     * label 1: 1000 + log(1 + e^-1000) - 0 = 1000; d = [1, -1] for label 1 */
    float big[2] = {1000, 0}, db[2] = {0, 0};
    y = 0;
    double l0 = loom_k_softmax_xent(big, &y, NULL, 1, 2, 1.0f);
    y = 1;
    double l1 = loom_k_softmax_xent(big, &y, db, 1, 2, 1.0f);
    CHECK(isfinite(l0) && isfinite(l1) && isfinite(db[0]) && isfinite(db[1]),
          "xent overflow: %g %g %g %g", l0, l1, db[0], db[1]);
    CHECK_NEAR(l0, 0.0, 1e-9, "xent [1000,0] label 0");
    CHECK_NEAR(l1, 1000.0, 1e-9, "xent [1000,0] label 1");
    CHECK_NEAR(db[0], 1.0, 1e-7, "xent big d[0]");
    CHECK_NEAR(db[1], -1.0, 1e-7, "xent big d[1]");

    /* the return value is the SUM over rows: [0,0] label 1 and [1000,1000] label 0
     * are log 2 each */
    float two[4] = {0, 0, 1000, 1000};
    int32_t ys[2] = {1, 0};
    CHECK_NEAR(loom_k_softmax_xent(two, ys, NULL, 2, 2, 1.0f), 2 * log(2.0), 1e-6,
               "xent sums rows");
}

static void test_mse_values(void) {
    /* pred [1,2] target [0,0]: (1 + 4)/2 = 2.5; d = 2(p-t)/k = [1, 2];
     * second row [3,3] vs [3,1]: (0 + 4)/2 = 2 -> total 4.5 */
    float p[4] = {1, 2, 3, 3}, t[4] = {0, 0, 3, 1}, d[4] = {0};
    CHECK_NEAR(loom_k_mse(p, t, d, 2, 2, 1.0f), 4.5, 1e-7, "mse");
    CHECK_NEAR(d[0], 1.0, 1e-7, "mse d0");
    CHECK_NEAR(d[1], 2.0, 1e-7, "mse d1");
    CHECK_NEAR(d[2], 0.0, 1e-7, "mse d2");
    CHECK_NEAR(d[3], 2.0, 1e-7, "mse d3");
}

static void test_bce_values(void) {
    /* per element max(z,0) - z t + log(1 + e^-|z|), mean over k:
     * z=0,t=1: log 2.  z=50,t=1: log(1+e^-50) = 1.9287e-22.
     * z=50,t=0: 50 + 1.9e-22.  z=-50,t=0: 1.9e-22.  z=-50,t=1: 50.
     * Naively log(sigmoid(-50)) is fine but log(1 - sigmoid(50)) = log(0) = -inf. */
    float z[5] = {0, 50, 50, -50, -50}, t[5] = {1, 1, 0, 0, 1}, d[5] = {0};
    double want[5] = {log(2.0), 1.9287498479639178e-22, 50, 1.9287498479639178e-22, 50};
    for (int i = 0; i < 5; i++) {
        double l = loom_k_bce_logits(z + i, t + i, NULL, 1, 1, 1.0f);
        CHECK(isfinite(l), "bce not finite at z=%g", z[i]);
        CHECK_NEAR(l, want[i], 1e-12 + 1e-7 * want[i], "bce element");
    }
    /* all five as one sample of k=5: the mean; d = (sigmoid(z) - t)/k */
    double mean = (want[0] + want[1] + want[2] + want[3] + want[4]) / 5;
    CHECK_NEAR(loom_k_bce_logits(z, t, d, 1, 5, 1.0f), mean, 1e-6, "bce mean over k");
    const double dwant[5] = {-0.5 / 5, 0, 1.0 / 5, 0, -1.0 / 5};
    for (int i = 0; i < 5; i++) CHECK_NEAR(d[i], dwant[i], 1e-7, "bce grad");
}

static void test_hinge_values(void) {
    /* logits [1, 2, 0.5], label 0, margin 1:
     * j=1: max(0, 1 - 1 + 2) = 2, j=2: max(0, 1 - 1 + 0.5) = 0.5 -> 2.5/3.
     * Both active: d1 = d2 = 1/3, d0 = -2/3.
     * Second row [3, 1, 2.5] label 0: 1-3+1 < 0, 1-3+2.5 = 0.5 -> 0.5/3, d = [-1/3, 0, 1/3]. */
    float z[6] = {1, 2, 0.5f, 3, 1, 2.5f}, d[6] = {0};
    int32_t y[2] = {0, 0};
    CHECK_NEAR(loom_k_hinge(z, y, d, 2, 3, 1.0f, 1.0f), 3.0 / 3, 1e-7, "hinge");
    const double dw[6] = {-2.0 / 3, 1.0 / 3, 1.0 / 3, -1.0 / 3, 0, 1.0 / 3};
    for (int i = 0; i < 6; i++) CHECK_NEAR(d[i], dw[i], 1e-7, "hinge grad");
    /* all margins satisfied: zero loss, zero gradient */
    float ok[3] = {5, 1, 2}, dz[3] = {0};
    CHECK_NEAR(loom_k_hinge(ok, y, dz, 1, 3, 1.0f, 1.0f), 0.0, 0, "hinge satisfied");
    CHECK(dz[0] == 0 && dz[1] == 0 && dz[2] == 0, "hinge satisfied grad");
}

/* ---- gradients, scale and accumulation -------------------------------------------- */

static void grad_loss(const char *name, loss_ctx *c, float eps) {
    size_t len = (size_t)c->n * c->k;
    float *g = calloc(len, sizeof *g), *gs = calloc(len, sizeof *gs);
    float *acc = malloc(len * sizeof *acc), *base = malloc(len * sizeof *base);
    double l = run(c, g, 1.0f);
    t_gradcheck(name, loss_only, c, c->z, g, len, eps, 1e-4, 1e-3);

    /* the gradient is scale * d(sum)/dz, the value does not depend on scale */
    double ls = run(c, gs, 0.125f);
    CHECK_NEAR(ls, l, 0, "loss value independent of scale");
    int bad = 0;
    for (size_t i = 0; i < len; i++) bad += fabsf(gs[i] - 0.125f * g[i]) > 1e-7f;
    CHECK(bad == 0, "%s: %d elements not scaled", name, bad);

    /* gradients add to what is there */
    t_fill(base, len, 7, -1.0f, 1.0f);
    memcpy(acc, base, len * sizeof *acc);
    run(c, acc, 1.0f);
    bad = 0;
    for (size_t i = 0; i < len; i++) bad += fabsf(acc[i] - (base[i] + g[i])) > 1e-6f;
    CHECK(bad == 0, "%s: %d elements overwritten instead of accumulated", name, bad);
    free(g), free(gs), free(acc), free(base);
}

/* Keep every hinge term margin - z_y + z_j at least `gap` from its kink at 0. */
static void hinge_away_from_kinks(float *z, const int32_t *y, int n, int k, float margin,
                                  float gap) {
    for (int r = 0; r < n; r++)
        for (int j = 0; j < k; j++) {
            float *row = z + (size_t)r * k;
            if (j != y[r] && fabsf(margin - row[y[r]] + row[j]) < gap) row[j] += 2 * gap;
        }
}

static void test_gradients(void) {
    enum { N = 4, K = 7, LEN = N * K };
    float z[LEN], t[LEN];
    const int32_t labels[N] = {0, 6, 3, 3};

    t_fill(z, LEN, 1, -3.0f, 3.0f);
    loss_ctx x = {XENT, z, labels, NULL, N, K, 0};
    grad_loss("softmax_xent dlogits", &x, 1e-2f);

    t_fill(z, LEN, 2, -2.0f, 2.0f);
    t_fill(t, LEN, 3, -1.0f, 1.0f);
    loss_ctx m = {MSE, z, NULL, t, N, K, 0};
    grad_loss("mse dpred", &m, 1e-2f);

    /* soft targets in [0,1], logits wide enough to reach the flat tails */
    t_fill(z, LEN, 4, -6.0f, 6.0f);
    t_fill(t, LEN, 5, 0.0f, 1.0f);
    loss_ctx b = {BCE, z, NULL, t, N, K, 0};
    grad_loss("bce_logits dlogits", &b, 1e-2f);

    t_fill(z, LEN, 6, -1.5f, 1.5f);
    hinge_away_from_kinks(z, labels, N, K, 1.0f, 0.05f);
    loss_ctx h = {HINGE, z, labels, NULL, N, K, 1.0f};
    grad_loss("hinge dlogits", &h, 1e-2f);
}

int main(void) {
    test_xent_values();
    test_mse_values();
    test_bce_values();
    test_hinge_values();
    test_gradients();
    TEST_END();
}
