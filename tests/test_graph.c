/* The graph and its execution: shape errors name the layer and both shapes,
 * parameter layout and counts match hand-computed numbers, initializers have
 * the variance their formulas promise, and the whole-model backward of a DAG
 * (conv, batch norm, add, concat, pooling, dropout, dense) matches finite
 * differences of the loss. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "kernels/kernels.h"
#include "kernels/rng.h"
#include "models/init.h"
#include "loom/loom.h"

static void test_shape_errors(void) {
    loom_graph *g = loom_graph_new("bad");
    loom_node x = loom_input(g, 1, 4, 4);
    loom_node y = loom_conv2d(g, x, 8, 5, 1, 0);
    CHECK(y < 0, "a 5x5 kernel on 4x4 must fail");
    CHECK(strstr(loom_graph_error(g), "conv2d layer 1") && strstr(loom_graph_error(g), "(1, 4, 4)") &&
              strstr(loom_graph_error(g), "5x5"),
          "message names layer and shapes: %s", loom_graph_error(g));
    /* errors propagate: later constructors return invalid nodes, finish fails */
    CHECK(loom_relu(g, y) < 0, "propagates");
    CHECK(loom_graph_finish(g, 1) == LOOM_ERR, "finish fails");
    CHECK(strstr(loom_error(), "conv2d layer 1") != NULL, "loom_error carries it: %s", loom_error());
    loom_graph_free(g);

    g = loom_graph_new("adder");
    x = loom_input(g, 3, 8, 8);
    loom_node a = loom_conv2d(g, x, 4, 3, 1, 1);
    loom_node b = loom_conv2d(g, x, 4, 3, 1, 0);
    loom_node s = loom_add(g, a, b);
    CHECK(s < 0, "add of (4,8,8) and (4,6,6) fails");
    CHECK(strstr(loom_graph_error(g), "(4, 8, 8)") && strstr(loom_graph_error(g), "(4, 6, 6)") &&
              strstr(loom_graph_error(g), "add layer"),
          "add names both shapes: %s", loom_graph_error(g));
    loom_graph_free(g);

    g = loom_graph_new("cat");
    x = loom_input(g, 3, 8, 8);
    loom_node c1 = loom_conv2d(g, x, 2, 3, 1, 1), c2 = loom_maxpool2d(g, x, 2, 2);
    loom_node cs[2] = {c1, c2};
    CHECK(loom_concat(g, 2, cs) < 0 && strstr(loom_graph_error(g), "concat"), "concat spatial mismatch: %s",
          loom_graph_error(g));
    loom_graph_free(g);

    g = loom_graph_new("groups");
    x = loom_input(g, 3, 8, 8);
    loom_conv_shape gs = {.oc = 4, .kh = 3, .kw = 3, .groups = 2};
    CHECK(loom_conv2d_ex(g, x, &gs, 1) < 0 && strstr(loom_graph_error(g), "groups 2"), "groups: %s",
          loom_graph_error(g));
    loom_graph_free(g);

    g = loom_graph_new("drop");
    x = loom_input(g, 3, 8, 8);
    CHECK(loom_dropout(g, x, 1.0f) < 0 && strstr(loom_graph_error(g), "dropout"), "p=1: %s", loom_graph_error(g));
    loom_graph_free(g);
}

static void test_lenet_counts(void) {
    loom_graph *g = loom_zoo_build("lenet5", 1, 28, 28, 10, 7);
    CHECK(g != NULL, "lenet5 builds: %s", loom_error());
    if (!g) return;
    /* by hand: (6*1*25+6) + (16*6*25+16) + (16*5*5*120+120) + (120*84+84) + (84*10+10) */
    CHECK(loom_graph_param_count(g) == 156 + 2416 + 48120 + 10164 + 850, "lenet params %zu",
          loom_graph_param_count(g));
    const loom_layer *l = loom_graph_layer(g, 4); /* conv2 */
    CHECK(l->op == LOOM_OP_CONV2D && l->c == 16 && l->h == 10 && l->w == 10, "conv2 shape %d %d %d", l->c, l->h,
          l->w);
    CHECK(l->param_off == 156, "conv2 offset %zu", l->param_off);
    /* conv1 forward FLOPs: 2 * 6*28*28 outputs * 25 MACs */
    CHECK_NEAR(loom_graph_layer_flops(g, 1), 2.0 * 6 * 28 * 28 * 25, 0.5, "conv1 flops");
    /* same seed -> same weights; different seed -> different */
    loom_graph *g2 = loom_zoo_build("lenet5", 1, 28, 28, 10, 7), *g3 = loom_zoo_build("lenet5", 1, 28, 28, 10, 8);
    size_t P = loom_graph_param_count(g);
    CHECK(!memcmp(loom_graph_params(g), loom_graph_params(g2), P * 4), "init reproducible");
    CHECK(memcmp(loom_graph_params(g), loom_graph_params(g3), P * 4), "seed matters");
    /* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); conv1 fan_in = 25 */
    float mx = 0;
    for (int i = 0; i < 156; i++) mx = fmaxf(mx, fabsf(loom_graph_params(g)[i]));
    CHECK(mx <= 0.2f && mx > 0.18f, "conv1 init bound %g (expect just under 0.2)", mx);
    loom_graph_free(g);
    loom_graph_free(g2);
    loom_graph_free(g3);
    CHECK(loom_zoo_build("nosuch", 1, 28, 28, 10, 1) == NULL && strstr(loom_error(), "lenet5"),
          "unknown model lists known ones: %s", loom_error());
}

static void test_initializers(void) {
    enum { N = 200000 };
    static float p[N];
    double fi = 50, fo = 30;
    struct {
        loom_init init;
        double mean, var;
        const char *name;
    } cases[] = {
        {{LOOM_INIT_UNIFORM, -1, 3}, 1.0, 16.0 / 12, "uniform"},
        {{LOOM_INIT_NORMAL, 2, 0.5f}, 2.0, 0.25, "normal"},
        {{LOOM_INIT_LECUN_UNIFORM, 0, 0}, 0, 1.0 / 50, "lecun_uniform"},
        {{LOOM_INIT_LECUN_NORMAL, 0, 0}, 0, 1.0 / 50, "lecun_normal"},
        {{LOOM_INIT_GLOROT_UNIFORM, 0, 0}, 0, 2.0 / 80, "glorot_uniform"},
        {{LOOM_INIT_GLOROT_NORMAL, 0, 0}, 0, 2.0 / 80, "glorot_normal"},
        {{LOOM_INIT_HE_UNIFORM, 0, 0}, 0, 2.0 / 50, "he_uniform"},
        {{LOOM_INIT_HE_NORMAL, 0, 0}, 0, 2.0 / 50, "he_normal"},
        {{LOOM_INIT_DEFAULT, 0, 0}, 0, 1.0 / 150, "default (torch)"},
        {{LOOM_INIT_ONES, 0, 0}, 1, 0, "ones"},
        {{LOOM_INIT_ZEROS, 0, 0}, 0, 0, "zeros"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        loom_init_fill(p, N, cases[c].init, fi, fo, loom_rng_key(3, LOOM_RNG_TEST, c, 0));
        double m = 0, v = 0;
        for (int i = 0; i < N; i++) m += p[i];
        m /= N;
        for (int i = 0; i < N; i++) v += (p[i] - m) * (p[i] - m);
        v /= N;
        double sd = sqrt(cases[c].var);
        /* 5 standard errors of the mean and ~2% of the variance */
        CHECK(fabs(m - cases[c].mean) <= 5 * sd / sqrt(N) + 1e-7, "%s mean %g vs %g", cases[c].name, m,
              cases[c].mean);
        CHECK(fabs(v - cases[c].var) <= 0.02 * cases[c].var + 1e-9, "%s var %g vs %g", cases[c].name, v,
              cases[c].var);
    }
}

/* ---- whole-graph gradient check ---- */
typedef struct {
    loom_graph *g;
    loom_exec *e;
    int n;
    int32_t labels[3];
} ctx_t;

static double model_loss(void *p) {
    ctx_t *c = p;
    loom_exec_forward(c->e, c->n, 1, 42, 0);
    return loom_k_softmax_xent(loom_exec_output(c->e), c->labels, NULL, c->n, 3, 1.0f);
}

/* The parameter gradient of c's model (inputs and parameters filled, the
 * forward already run) against central differences; frees exec and graph. */
static void check_param_grads(const char *what, ctx_t *c, float eps) {
    float *P = loom_graph_params(c->g);
    size_t np = loom_graph_param_count(c->g);
    loom_exec_zero_act_grad(c->e);
    loom_exec_zero_param_grad(c->e);
    loom_k_softmax_xent(loom_exec_output(c->e), c->labels, loom_exec_output_grad(c->e), c->n, 3, 1.0f);
    loom_exec_backward(c->e, c->n);
    float *G = malloc(np * sizeof(float));
    memcpy(G, loom_exec_param_grad(c->e), np * sizeof(float));
    t_gradcheck(what, model_loss, c, P, G, np, eps, 2e-3, 2e-2);
    free(G);
    loom_exec_free(c->e);
    loom_graph_free(c->g);
}

static void test_dag_gradcheck(void) {
    loom_graph *g = loom_graph_new("dag");
    loom_node x = loom_input(g, 2, 6, 6);
    loom_node a = loom_tanh(g, loom_batchnorm(g, loom_conv2d(g, x, 4, 3, 1, 1)));
    loom_conv_shape s = {.oc = 4, .kh = 1, .kw = 1, .groups = 2};
    loom_node b = loom_leaky_relu(g, loom_conv2d_ex(g, a, &s, 0), 0.1f);
    loom_node r = loom_add(g, a, b);                        /* residual */
    loom_node p1 = loom_avgpool2d(g, r, 2, 2);
    loom_node p2 = loom_avgpool2d_ex(g, a, 3, 3, 2, 2, 1, 1, 0);
    loom_node cat[2] = {p1, p2};
    loom_node y = loom_concat(g, 2, cat);                   /* (8, 3, 3) */
    y = loom_dropout(g, loom_flatten(g, y), 0.3f);
    y = loom_sigmoid(g, loom_batchnorm(g, loom_dense(g, y, 5)));
    loom_node gp = loom_global_avgpool(g, r);               /* unused branch is fine */
    (void)gp;
    y = loom_dense(g, y, 3);
    /* the output is the last node: make it the logits by adding it last */
    CHECK(loom_graph_finish(g, 5) == LOOM_OK, "dag finishes: %s", loom_graph_error(g));
    ctx_t c = {.g = g, .n = 3, .labels = {0, 2, 1}};
    c.e = loom_exec_new(g, 4);
    t_fill(loom_exec_input(c.e), 3 * 72, 11, -1, 1);
    float *P = loom_graph_params(g);
    size_t np = loom_graph_param_count(g);
    /* make biases and BN affine non-trivial */
    t_fill(P, np, 12, -0.6f, 0.6f);
    loom_exec_forward(c.e, 3, 1, 42, 0);
    check_param_grads("whole DAG parameters", &c, 1e-2f);
}

/* The layers ONNX import adds (scale, clip, log_softmax), through their
 * parameters and the gradients they pass back. */
static void test_import_ops_gradcheck(void) {
    loom_graph *g = loom_graph_new("import_ops");
    loom_node x = loom_input(g, 2, 5, 5);
    loom_node y = loom_scale(g, x);
    y = loom_clip(g, loom_conv2d(g, y, 3, 3, 1, 1), -0.4f, 0.5f);
    y = loom_dense(g, y, 3);
    loom_log_softmax(g, y);
    CHECK(loom_graph_finish(g, 5) == LOOM_OK, "import ops finish: %s", loom_graph_error(g));
    ctx_t c = {.g = g, .n = 3, .labels = {2, 0, 1}};
    c.e = loom_exec_new(g, 3);
    t_fill(loom_exec_input(c.e), 3 * 50, 21, -1, 1);
    float *P = loom_graph_params(g);
    size_t np = loom_graph_param_count(g);
    t_fill(P, np, 22, -0.5f, 0.5f);
    loom_exec_forward(c.e, 3, 1, 42, 0);
    /* log_softmax outputs: each row's exponentials sum to 1 */
    for (int r = 0; r < 3; r++) {
        double sum = 0;
        for (int k = 0; k < 3; k++) sum += exp(loom_exec_output(c.e)[r * 3 + k]);
        CHECK(fabs(sum - 1) < 1e-5, "log_softmax row %d: exponentials sum to %g", r, sum);
    }
    check_param_grads("scale, clip, log_softmax parameters", &c, 1e-3f);
}

/* arith (broadcast product, quotient, difference, a square), reshape and pad
 * (asymmetric, by a constant): a squeeze-and-excitation gate among them. The
 * parameters below them see the gradients they pass back. */
static void test_arith_pad_reshape_gradcheck(void) {
    loom_graph *g = loom_graph_new("arith");
    loom_node x = loom_input(g, 2, 6, 6);
    loom_node a = loom_tanh(g, loom_conv2d(g, x, 4, 3, 1, 1));                    /* (4, 6, 6) */
    loom_node gate = loom_dense(g, loom_global_avgpool(g, a), 4);                 /* (4) */
    gate = loom_sigmoid(g, loom_reshape(g, gate, 4, 4, 1, 1));                    /* (4, 1, 1) */
    loom_node m = loom_mul(g, a, gate);                                           /* broadcast over H, W */
    loom_node d = loom_arith(g, LOOM_ARITH_DIV, m, loom_sigmoid(g, loom_conv2d(g, a, 4, 1, 1, 0)));
    loom_node s = loom_arith(g, LOOM_ARITH_SUB, d, a);
    loom_node row = loom_reshape(g, loom_conv2d(g, a, 1, 1, 1, 0), 4, 1, 1, 36); /* (1, 1, 36) */
    row = loom_reshape(g, row, 4, 1, 6, 6);
    s = loom_arith(g, LOOM_ARITH_ADD, s, row);                                    /* broadcast over channels */
    s = loom_mul(g, s, s);                                                        /* one slot, both inputs */
    loom_node p = loom_pad2d(g, s, 1, 0, 2, 1, 0.25f);                            /* (4, 9, 7) */
    CHECK(loom_graph_layer(g, p)->h == 9 && loom_graph_layer(g, p)->w == 7, "pad: (4, 9, 7)");
    loom_node y = loom_dense(g, loom_conv2d(g, p, 3, 3, 2, 0), 3);
    (void)y;
    CHECK(loom_graph_finish(g, 5) == LOOM_OK, "arith graph finishes: %s", loom_graph_error(g));
    ctx_t c = {.g = g, .n = 3, .labels = {1, 0, 2}};
    c.e = loom_exec_new(g, 3);
    t_fill(loom_exec_input(c.e), 3 * 72, 31, -1, 1);
    t_fill(loom_graph_params(g), loom_graph_param_count(g), 32, -0.5f, 0.5f);
    loom_exec_forward(c.e, 3, 1, 42, 0);
    check_param_grads("arith, reshape, pad: parameters below them", &c, 1e-3f);
    /* shapes that do not broadcast, a reshape that changes the size, a negative pad: refused */
    loom_graph *b = loom_graph_new("bad");
    loom_node bx = loom_input(b, 3, 4, 4), bq = loom_conv2d(b, bx, 2, 1, 1, 0);
    CHECK(loom_mul(b, bx, bq) < 0 && strstr(loom_graph_error(b), "do not broadcast"), "3 vs 2 channels: %s",
          loom_graph_error(b));
    loom_graph_free(b);
    b = loom_graph_new("bad");
    bx = loom_input(b, 3, 4, 4);
    CHECK(loom_reshape(b, bx, 4, 2, 2, 2) < 0 && strstr(loom_graph_error(b), "cannot be"), "48 values as 8: %s",
          loom_graph_error(b));
    loom_graph_free(b);
    b = loom_graph_new("bad");
    bx = loom_input(b, 3, 4, 4);
    CHECK(loom_pad2d(b, bx, -1, 0, 0, 0, 0) < 0, "a negative pad is refused");
    loom_graph_free(b);
}

/* A frozen body costs only its forward: backward stops at the first trainable layer. */
static void test_frozen_body_backward(void) {
    loom_graph *g = loom_zoo_build("minivgg", 3, 16, 16, 4, 3);
    CHECK(g != NULL, "minivgg: %s", loom_error());
    if (!g) return;
    int n = loom_graph_count(g), last_frozen = 0;
    for (int i = 1; i < n && loom_graph_layer(g, i)->op != LOOM_OP_DENSE; i++) loom_graph_set_frozen(g, i, 1), last_frozen = i;
    loom_exec *e = loom_exec_new(g, 2);
    CHECK(e && loom_exec_set_timing(e, 1) == LOOM_OK, "exec: %s", loom_error());
    if (!e) return;
    t_fill(loom_exec_input(e), 2 * 768, 3, 0, 1);
    int32_t y[2] = {1, 3};
    CHECK(loom_exec_forward(e, 2, 1, 1, 0) == LOOM_OK, "forward: %s", loom_error());
    loom_exec_zero_act_grad(e);
    loom_exec_zero_param_grad(e);
    loom_k_softmax_xent(loom_exec_output(e), y, loom_exec_output_grad(e), 2, 4, 0.5f);
    CHECK(loom_exec_backward(e, 2) == LOOM_OK, "backward: %s", loom_error());
    int ran = 0, head = 0;
    for (int i = 1; i < n; i++) {
        double f, b;
        loom_exec_layer_seconds(e, i, &f, &b);
        if (i <= last_frozen) ran += b > 0;
        else head += b > 0;
    }
    CHECK(ran == 0, "%d layers of the frozen body ran a backward", ran);
    CHECK(head > 0, "no layer of the head ran a backward");
    double gsum = 0;
    for (size_t q = 0; q < loom_graph_param_count(g); q++) gsum += fabs(loom_exec_param_grad(e)[q]);
    CHECK(gsum > 0, "the head got no gradient");
    printf("frozen body of %d layers: %d ran a backward, %d of the head did\n", last_frozen, ran, head);
    loom_exec_free(e);
    loom_graph_free(g);
}

/* Inference of a batch equals inference sample by sample: no cross-sample leaks. */
static void test_batch_independence(void) {
    loom_graph *g = loom_zoo_build("minivgg", 3, 16, 16, 6, 3);
    CHECK(g != NULL, "minivgg builds: %s", loom_error());
    if (!g) return;
    loom_exec *e = loom_exec_new(g, 5), *e1 = loom_exec_new(g, 1);
    t_fill(loom_exec_input(e), 5 * 3 * 256, 4, 0, 1);
    t_fill(loom_graph_buffers(g), loom_graph_buffer_count(g), 5, 0.1f, 1.0f); /* running stats */
    loom_exec_forward(e, 5, 0, 0, 0);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        memcpy(loom_exec_input(e1), loom_exec_input(e) + i * 768, 768 * sizeof(float));
        loom_exec_forward(e1, 1, 0, 0, 0);
        for (int k = 0; k < 6; k++)
            worst = fmax(worst, fabs(loom_exec_output(e1)[k] - loom_exec_output(e)[i * 6 + k]));
    }
    CHECK(worst < 1e-4, "batch vs single inference differ by %g", worst);
    loom_exec_free(e);
    loom_exec_free(e1);
    loom_graph_free(g);
}

int main(void) {
    test_shape_errors();
    test_lenet_counts();
    test_initializers();
    test_dag_gradcheck();
    test_import_ops_gradcheck();
    test_arith_pad_reshape_gradcheck();
    test_frozen_body_backward();
    test_batch_independence();
    TEST_END();
}
