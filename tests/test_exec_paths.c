/* Every kernel path computes the same model: the oneDNN exec (blocked
 * layout, fused layers, shared gradient memory) against the portable one
 * (loom's own kernels on NCHW), outputs, parameter gradients and batch-norm
 * statistics, in training and inference; and the oneDNN path's parameter
 * gradients against central finite differences, layer kind by layer kind.
 * Which instruction set oneDNN uses is its own choice (DNNL_MAX_CPU_ISA caps
 * it: ctest runs this test once per level the CPU has). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "isa.h"
#include "kernels/kernels.h"
#include "loom/error.h"
#include "loom/exec.h"
#include "loom/graph.h"
#include "loom/zoo.h"

typedef loom_graph *(*build_fn)(void);

static loom_node conv(loom_graph *g, loom_node x, int oc, int k, int s, int p, int d, int groups, int bias) {
    loom_conv_shape sh = {.oc = oc, .kh = k, .kw = k, .sh = s, .sw = s, .ph = p, .pw = p, .dh = d, .dw = d,
                          .groups = groups};
    return loom_conv2d_ex(g, x, &sh, bias);
}

/* conv (bias) + ReLU fused into it */
static loom_graph *g_conv_relu(void) {
    loom_graph *g = loom_graph_new("conv_relu");
    loom_node x = loom_input(g, 8, 6, 6);
    x = loom_relu(g, conv(g, x, 16, 3, 1, 1, 1, 1, 1));
    loom_dense(g, x, 4);
    return g;
}

/* strided conv, batch norm + ReLU fused, max pool */
static loom_graph *g_conv_bn_pool(void) {
    loom_graph *g = loom_graph_new("conv_bn_pool");
    loom_node x = loom_input(g, 3, 9, 9);
    x = conv(g, x, 8, 3, 1, 1, 1, 1, 1);
    x = loom_relu(g, loom_batchnorm(g, conv(g, x, 16, 3, 2, 1, 1, 1, 0)));
    x = loom_maxpool2d(g, x, 2, 2);
    loom_dense(g, x, 4);
    return g;
}

/* dilation, tanh, average pool without padding in the count */
static loom_graph *g_dilated(void) {
    loom_graph *g = loom_graph_new("dilated");
    loom_node x = loom_input(g, 8, 9, 9);
    x = loom_tanh(g, conv(g, x, 8, 3, 1, 2, 2, 1, 1));
    x = loom_avgpool2d_ex(g, x, 3, 3, 2, 2, 1, 1, 0);
    loom_dense(g, x, 3);
    return g;
}

/* grouped 1x1 conv, leaky ReLU, average pool counting padding, global pool */
static loom_graph *g_groups(void) {
    loom_graph *g = loom_graph_new("groups");
    loom_node x = loom_input(g, 16, 6, 6);
    x = loom_leaky_relu(g, conv(g, x, 16, 1, 1, 0, 1, 2, 1), 0.1f);
    x = loom_avgpool2d_ex(g, x, 3, 3, 1, 1, 1, 1, 1);
    x = loom_global_avgpool(g, x);
    loom_dense(g, x, 3);
    return g;
}

/* ceil_mode pools: the last windows pass the edge (7 -> 4 -> 2) */
static loom_graph *g_ceil_pools(void) {
    loom_graph *g = loom_graph_new("ceil_pools");
    loom_node x = loom_input(g, 3, 7, 7);
    x = conv(g, x, 8, 3, 1, 1, 1, 1, 1);
    x = loom_maxpool2d(g, x, 2, 2);
    loom_graph_set_pool_ceil(g, x);
    x = loom_avgpool2d_ex(g, x, 3, 3, 2, 2, 1, 1, 0);
    loom_graph_set_pool_ceil(g, x);
    loom_dense(g, x, 4);
    return g;
}

/* channel counts that do not fill a channel group: 6 and 12 */
static loom_graph *g_ragged(void) {
    loom_graph *g = loom_graph_new("ragged");
    loom_node x = loom_input(g, 3, 8, 8);
    x = loom_sigmoid(g, conv(g, x, 6, 3, 1, 1, 1, 1, 1));
    x = loom_relu(g, loom_batchnorm(g, conv(g, x, 12, 3, 1, 1, 1, 1, 0)));
    x = loom_maxpool2d(g, x, 3, 2);
    loom_dense(g, x, 3);
    return g;
}

/* a residual block with a projection, concat, dropout, batch norm on features */
static loom_graph *g_residual(void) {
    loom_graph *g = loom_graph_new("residual");
    loom_node x = loom_input(g, 3, 8, 8);
    x = loom_relu(g, loom_batchnorm(g, conv(g, x, 8, 3, 1, 1, 1, 1, 0)));
    loom_node y = loom_relu(g, loom_batchnorm(g, conv(g, x, 16, 3, 2, 1, 1, 1, 0)));
    y = loom_batchnorm(g, conv(g, y, 16, 3, 1, 1, 1, 1, 0));
    loom_node s = loom_batchnorm(g, conv(g, x, 16, 1, 2, 0, 1, 1, 0));
    loom_node r = loom_relu(g, loom_add(g, y, s));
    loom_node side = conv(g, x, 8, 3, 2, 1, 1, 1, 1);
    loom_node cat[2] = {r, side};
    loom_node z = loom_dropout(g, loom_concat(g, 2, cat), 0.3f);
    z = loom_relu(g, loom_batchnorm(g, loom_dense(g, z, 10)));
    loom_dense(g, z, 4);
    return g;
}

/* one tensor feeding a node twice (with the ReLU fused into the addition), and an output that is an image */
static loom_graph *g_twice(void) {
    loom_graph *g = loom_graph_new("twice");
    loom_node x = loom_input(g, 8, 5, 5);
    x = conv(g, x, 8, 3, 1, 1, 1, 1, 1);
    x = loom_relu(g, loom_add(g, x, x));
    conv(g, x, 2, 3, 1, 0, 1, 1, 1);
    return g;
}

typedef struct {
    const char *name;
    build_fn build;
    int fusions;    /* convolutions an inference forward fuses with what follows (-1: not checked) */
} case_t;

static const case_t cases[] = {
    {"conv + fused relu", g_conv_relu, 0},
    {"strided conv, bn + relu, max pool", g_conv_bn_pool, 1},
    {"dilated conv, tanh, avg pool", g_dilated, 0},
    {"grouped 1x1, leaky, avg pool, gap", g_groups, 0},
    {"ragged channels, sigmoid, bn", g_ragged, 1},
    {"residual, concat, dropout", g_residual, 4},
    {"relu(add(x, x)), image output", g_twice, 0},
    {"ceil_mode max and average pools", g_ceil_pools, 0},
};

enum { N = 3 };

typedef struct {
    loom_graph *g;
    loom_exec *e;
    float *in, *r;
    size_t in_len, out_len;
} run_t;

/* sum(out * r) of a training forward: a scalar with a gradient everywhere */
static double run_loss(void *ctx) {
    run_t *c = ctx;
    memcpy(loom_exec_input(c->e), c->in, c->in_len * sizeof(float));
    loom_exec_forward(c->e, N, 1, 77, 5);
    const float *o = loom_exec_output(c->e);
    double s = 0;
    for (size_t i = 0; i < c->out_len; i++) s += (double)o[i] * c->r[i];
    return s;
}

/* forward + backward of the loss; the parameter gradient into grad */
static int run_grad(run_t *c, float *grad) {
    run_loss(c);
    loom_exec_zero_act_grad(c->e);
    loom_exec_zero_param_grad(c->e);
    float *d = loom_exec_output_grad(c->e);
    for (size_t i = 0; i < c->out_len; i++) d[i] += c->r[i];
    int rc = loom_exec_backward(c->e, N);
    memcpy(grad, loom_exec_param_grad(c->e), loom_graph_param_count(c->g) * sizeof(float));
    return rc;
}

static double worst_rel(const float *a, const float *b, size_t n) {
    double scale = 1e-3, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]) / scale);
    return worst;
}

static loom_exec *exec_with(loom_graph *g, loom_kernels k) {
    if (loom_set_kernels(k)) return NULL;
    loom_exec *e = loom_exec_new(g, N);
    loom_set_kernels(LOOM_KERNELS_AUTO);
    return e;
}

/* Portable vs oneDNN on graph g (params filled): outputs, gradients, statistics. */
static void compare(const char *name, loom_graph *g, int expect_fusions) {
    loom_exec *ep = exec_with(g, LOOM_KERNELS_PORTABLE), *ed = exec_with(g, LOOM_KERNELS_ONEDNN);
    CHECK(ep && ed, "%s: execs: %s", name, loom_error());
    if (!ep || !ed) {
        loom_exec_free(ep);
        loom_exec_free(ed);
        return;
    }
    const loom_layer *in = loom_graph_layer(g, 0);
    size_t in_len = N * in->size, out_len = N * loom_exec_output_size(ep), np = loom_graph_param_count(g);
    float *x = malloc(in_len * sizeof(float)), *r = malloc(out_len * sizeof(float));
    float *gp = malloc(np * sizeof(float)), *gd = malloc(np * sizeof(float));
    t_fill(x, in_len, 3, -1, 1);
    t_fill(r, out_len, 4, -1, 1);
    run_t cp = {g, ep, x, r, in_len, out_len}, cd = {g, ed, x, r, in_len, out_len};
    CHECK(run_grad(&cp, gp) == LOOM_OK && run_grad(&cd, gd) == LOOM_OK, "%s: backward: %s", name, loom_error());
    double dout = worst_rel(loom_exec_output(ed), loom_exec_output(ep), out_len);
    double dgrad = worst_rel(gd, gp, np);
    size_t nb = loom_graph_buffer_count(g);
    double dstat = nb ? worst_rel(loom_exec_batch_stats(ed), loom_exec_batch_stats(ep), nb) : 0;
    CHECK(dout < 2e-5, "%s: training outputs differ by %g", name, dout);
    CHECK(dgrad < 2e-4, "%s: parameter gradients differ by %g", name, dgrad);
    CHECK(dstat < 2e-5, "%s: batch statistics differ by %g", name, dstat);
    /* inference with running statistics: means near 0 and small variances, so
     * that what follows a batch norm + ReLU is not all zero */
    for (int i = 0; i < loom_graph_count(g); i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        if (l->op != LOOM_OP_BATCHNORM) continue;
        t_fill(loom_graph_buffers(g) + l->buf_off, (size_t)l->c, (unsigned)i, -0.05f, 0.05f);
        t_fill(loom_graph_buffers(g) + l->buf_off + l->c, (size_t)l->c, (unsigned)i + 99, 0.01f, 0.05f);
    }
    memcpy(loom_exec_input(ep), x, in_len * sizeof(float));
    memcpy(loom_exec_input(ed), x, in_len * sizeof(float));
    CHECK(loom_exec_forward(ep, N, 0, 0, 0) == LOOM_OK && loom_exec_forward(ed, N, 0, 0, 0) == LOOM_OK,
          "%s: inference: %s", name, loom_error());
    double dinf = worst_rel(loom_exec_output(ed), loom_exec_output(ep), out_len);
    CHECK(dinf < 2e-5, "%s: inference outputs differ by %g", name, dinf);
    /* and not by being equal for want of signal: the outputs vary across samples */
    double spread = 0;
    for (size_t q = 0; q + out_len / N < out_len; q++)
        spread = fmax(spread, fabs(loom_exec_output(ep)[q] - loom_exec_output(ep)[q + out_len / N]));
    CHECK(spread > 1e-4, "%s: inference outputs are the same for every sample (spread %g)", name, spread);
    /* a smaller batch through the same execs (other primitives) */
    memcpy(loom_exec_input(ed), x, in_len * sizeof(float));
    CHECK(loom_exec_forward(ed, 1, 0, 0, 0) == LOOM_OK, "%s: batch of 1: %s", name, loom_error());
    double d1 = worst_rel(loom_exec_output(ed), loom_exec_output(ep), out_len / N);
    CHECK(d1 < 2e-5, "%s: a batch of 1 differs from the first sample of 3 by %g", name, d1);
    int on = 0, layers = loom_graph_count(g) - 1;
    for (int i = 1; i <= layers; i++) {
        const char *impl = loom_exec_layer_impl(ed, i);
        on += impl && strcmp(impl, "portable") != 0;
    }
    /* the fused inference against the oneDNN layers one by one, too */
    loom_set_kernels(LOOM_KERNELS_ONEDNN);
    loom_exec *eu = loom_exec_new_flags(g, N, LOOM_EXEC_UNFUSED);
    loom_set_kernels(LOOM_KERNELS_AUTO);
    CHECK(eu != NULL, "%s: unfused exec: %s", name, loom_error());
    double dfuse = 0;
    if (eu) {
        memcpy(loom_exec_input(eu), x, in_len * sizeof(float));
        memcpy(loom_exec_input(ed), x, in_len * sizeof(float));
        CHECK(loom_exec_forward(eu, N, 0, 0, 0) == LOOM_OK && loom_exec_forward(ed, N, 0, 0, 0) == LOOM_OK,
              "%s: inference: %s", name, loom_error());
        dfuse = worst_rel(loom_exec_output(ed), loom_exec_output(eu), out_len);
        CHECK(dfuse < 2e-5, "%s: fused inference differs from unfused by %g", name, dfuse);
        CHECK(loom_exec_fusions(eu) == 0, "%s: LOOM_EXEC_UNFUSED fused %d", name, loom_exec_fusions(eu));
        loom_exec_free(eu);
    }
    if (expect_fusions >= 0)
        CHECK(loom_exec_fusions(ed) == expect_fusions, "%s: %d fused convolutions, expected %d", name,
              loom_exec_fusions(ed), expect_fusions);
    printf("%-36s %-18s %2d/%-2d layers oneDNN  outputs %.1e  gradients %.1e  statistics %.1e  inference %.1e"
           "  %d fused (%.1e)\n",
           name, loom_exec_kernels(ed), on, layers, dout, dgrad, dstat, dinf, loom_exec_fusions(ed), dfuse);
    free(x), free(r), free(gp), free(gd);
    loom_exec_free(ep);
    loom_exec_free(ed);
}

/* Analytic gradient against central differences, as t_gradcheck, but where
 * the loss has a kink within eps (a ReLU or a max pool switching: the
 * differences at eps and eps/2 disagree) the element is passed over and
 * counted; at most a tenth may be. */
static void gradcheck_kinked(const char *name, run_t *c, float *p, const float *a, size_t n, float eps, double atol,
                             double rtol) {
    size_t bad = 0, kinked = 0, worst_i = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        double num[2];
        for (int h = 0; h < 2; h++) {
            float e = h ? eps / 2 : eps;
            p[i] = keep + e;
            double lp = run_loss(c);
            p[i] = keep - e;
            double lm = run_loss(c);
            num[h] = (lp - lm) / (2.0 * (double)e);
        }
        p[i] = keep;
        double lim = atol + rtol * fmax(fabs(num[0]), fabs(num[1]));
        if (fabs(num[0] - num[1]) > lim) {
            kinked++;
            continue;
        }
        double err = fabs(a[i] - num[1]) / (atol + rtol * fmax(fabs(a[i]), fabs(num[1])));
        if (err > 1) bad++;
        if (err > worst) worst = err, worst_i = i;
    }
    CHECK(bad == 0, "gradcheck %s: %zu of %zu elements differ; worst [%zu] err/tol %.3f", name, bad, n, worst_i, worst);
    CHECK(kinked * 10 <= n, "gradcheck %s: %zu of %zu elements at a kink", name, kinked, n);
    printf("gradcheck %-40s %5zu elements  %s (worst err/tol %.3f, %zu at kinks)\n", name, n, bad ? "FAIL" : "ok",
           worst, kinked);
}

/* The oneDNN path's parameter gradients against finite differences. */
static void gradcheck(const char *name, loom_graph *g) {
    loom_exec *e = exec_with(g, LOOM_KERNELS_ONEDNN);
    if (!e) return;
    const loom_layer *in = loom_graph_layer(g, 0);
    size_t in_len = N * in->size, out_len = N * loom_exec_output_size(e), np = loom_graph_param_count(g);
    float *x = malloc(in_len * sizeof(float)), *r = malloc(out_len * sizeof(float)), *G = malloc(np * sizeof(float));
    t_fill(x, in_len, 8, -1, 1);
    t_fill(r, out_len, 9, -1, 1);
    run_t c = {g, e, x, r, in_len, out_len};
    CHECK(run_grad(&c, G) == LOOM_OK, "%s: backward: %s", name, loom_error());
    char what[96];
    snprintf(what, sizeof what, "onednn: %s", name);
    gradcheck_kinked(what, &c, loom_graph_params(g), G, np, 1e-3f, 6e-3, 3e-2);
    free(x), free(r), free(G);
    loom_exec_free(e);
}

/* Models of the zoo, compared on small inputs. */
static void zoo(const char *model, int c, int h, int w, int fusions) {
    loom_graph *g = loom_zoo_build(model, c, h, w, 5, 3);
    CHECK(g != NULL, "%s: %s", model, loom_error());
    if (!g) return;
    char name[64];
    snprintf(name, sizeof name, "zoo %s %dx%dx%d", model, c, h, w);
    compare(name, g, fusions);
    loom_graph_free(g);
}

int main(void) {
    TEST_REQUIRE_ISA();
    if (loom_set_kernels(LOOM_KERNELS_ONEDNN)) TEST_SKIP("no oneDNN kernels here: %s", loom_error());
    loom_set_kernels(LOOM_KERNELS_AUTO);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        loom_graph *g = cases[k].build();
        CHECK(loom_graph_finish(g, 7) == LOOM_OK, "%s: %s", cases[k].name, loom_graph_error(g));
        /* biases, BN scales and shifts away from their defaults */
        t_fill(loom_graph_params(g), loom_graph_param_count(g), (unsigned)k + 20, -0.5f, 0.5f);
        compare(cases[k].name, g, cases[k].fusions);
        loom_graph_init_params(g, 7);
        t_fill(loom_graph_params(g), loom_graph_param_count(g), (unsigned)k + 40, -0.5f, 0.5f);
        gradcheck(cases[k].name, g);
        loom_graph_free(g);
    }
    zoo("lenet5", 1, 28, 28, 0);
    zoo("minivgg", 3, 16, 16, 4);
    zoo("resnet", 3, 16, 16, 15);
    zoo("inception", 3, 32, 32, 19);
    zoo("alexnet", 3, 64, 64, 0);
    zoo("vgg11", 3, 32, 32, 8);
    TEST_END();
}
