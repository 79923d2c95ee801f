/* The model zoo against independent PyTorch definitions of the same
 * architectures (tests/data/zoo_fixtures.txt, written once by
 * tools/gen_zoo_fixtures.py): parameter count, BN running-stat count, output
 * size, conv/dense layer counts and their FLOPs must match exactly. Every
 * model must also build on the usual dataset shapes and run a training
 * forward + backward without producing NaN or Inf. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "isa.h"
#include "util.h"
#include "loom/error.h"
#include "loom/exec.h"
#include "kernels/kernels.h"
#include "loom/zoo.h"

static int known_model(const char *name) {
    for (const char *const *n = loom_zoo_names(); *n; n++)
        if (!strcmp(*n, name)) return 1;
    return 0;
}

static void test_fixtures(void) {
    const char *path = t_data_path("zoo_fixtures.txt");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[256], name[32];
    int cases = 0;
    enum { MAXN = 64 };
    int seen[MAXN] = {0}; /* models of loom_zoo_names covered by a fixture */
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        int c, h, w, k, convs, denses;
        unsigned long long params, stats, out, macs;
        if (sscanf(line, "%31s %d %d %d %d %llu %llu %llu %d %d %llu", name, &c, &h, &w, &k, &params,
                   &stats, &out, &convs, &denses, &macs) != 11) {
            CHECK(0, "bad fixture line: %s", line);
            continue;
        }
        cases++;
        char what[96];
        snprintf(what, sizeof what, "%s %dx%dx%d/%d", name, c, h, w, k);
        int idx = 0;
        for (const char *const *n = loom_zoo_names(); *n && idx < MAXN; n++, idx++)
            if (!strcmp(*n, name)) seen[idx] = 1;
        loom_graph *g = loom_zoo_build(name, c, h, w, k, 1);
        CHECK(g != NULL, "%s builds: %s", what, loom_error());
        if (!g) continue;
        int nconv = 0, ndense = 0;
        double flops = 0;
        for (int i = 0; i < loom_graph_count(g); i++) {
            loom_op op = loom_graph_layer(g, i)->op;
            if (op != LOOM_OP_CONV2D && op != LOOM_OP_DENSE) continue;
            nconv += op == LOOM_OP_CONV2D;
            ndense += op == LOOM_OP_DENSE;
            flops += loom_graph_layer_flops(g, i);
        }
        CHECK(loom_graph_param_count(g) == params, "%s: %zu parameters, torch %llu", what,
              loom_graph_param_count(g), params);
        CHECK(loom_graph_buffer_count(g) == stats, "%s: %zu BN running values, torch %llu", what,
              loom_graph_buffer_count(g), stats);
        CHECK(loom_graph_layer(g, loom_graph_output(g))->size == out, "%s: output size %zu, torch %llu",
              what, loom_graph_layer(g, loom_graph_output(g))->size, out);
        CHECK(nconv == convs && ndense == denses, "%s: %d conv + %d dense layers, torch %d + %d", what,
              nconv, ndense, convs, denses);
        /* exact: every term is an integer well below 2^53 */
        CHECK(flops == 2.0 * (double)macs, "%s: conv+dense FLOPs %.0f, torch 2 x %llu MACs = %.0f", what,
              flops, macs, 2.0 * (double)macs);
        loom_graph_free(g);
    }
    fclose(f);
    CHECK(cases >= 20, "only %d fixture cases", cases);
    int idx = 0;
    for (const char *const *n = loom_zoo_names(); *n && idx < MAXN; n++, idx++)
        CHECK(seen[idx], "zoo model %s has no PyTorch fixture", *n);
    printf("fixtures: %d cases\n", cases);
}

static void test_builds(void) {
    static const int shapes[][3] = {{1, 28, 28}, {3, 32, 32}, {3, 64, 64}, {3, 150, 150}};
    int n = 0;
    for (const char *const *name = loom_zoo_names(); *name; name++, n++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int *d = shapes[s];
            loom_graph *g = loom_zoo_build(*name, d[0], d[1], d[2], 7, 3);
            CHECK(g != NULL, "%s on %dx%dx%d: %s", *name, d[0], d[1], d[2], loom_error());
            if (!g) continue;
            CHECK(loom_graph_layer(g, loom_graph_output(g))->size == 7, "%s: 7 logits", *name);
            float *p = loom_graph_params(g);
            size_t np = loom_graph_param_count(g), bad = 0;
            for (size_t i = 0; i < np; i++) bad += !isfinite(p[i]);
            CHECK(bad == 0, "%s: %zu non-finite initial parameters", *name, bad);
            loom_graph_free(g);
        }
        /* zoo.h promises the models after minivgg drop pools that no longer fit */
        int small_ok = strcmp(*name, "lenet5") != 0;
        loom_graph *g = loom_zoo_build(*name, 3, 8, 8, 4, 3);
        CHECK((g != NULL) == small_ok, "%s on 3x8x8: %s", *name, g ? "built" : loom_error());
        loom_graph_free(g);
    }
    CHECK(n >= 12, "zoo lists %d models", n);
    CHECK(known_model("resnet20") && known_model("vgg16") && known_model("inception") &&
              known_model("alexnet") && known_model("shallownet"),
          "names");

    /* A model that cannot fit says which layer and what shape it got. */
    CHECK(loom_zoo_build("lenet5", 1, 8, 8, 10, 1) == NULL, "lenet5 on 8x8 must fail");
    CHECK(strstr(loom_error(), "lenet5") && strstr(loom_error(), "conv2d layer 4") &&
              strstr(loom_error(), "(6, 4, 4)") && strstr(loom_error(), "5x5"),
          "lenet5 error names conv2 and its input: %s", loom_error());
    CHECK(loom_zoo_build("minivgg", 3, 2, 2, 10, 1) == NULL, "minivgg on 2x2 must fail");
    CHECK(strstr(loom_error(), "minivgg") && strstr(loom_error(), "maxpool2d layer 15") &&
              strstr(loom_error(), "2x2"),
          "minivgg error names the second pool: %s", loom_error());
    CHECK(loom_zoo_build("resnet", 0, 32, 32, 10, 1) == NULL && strstr(loom_error(), "input shape"),
          "zero channels: %s", loom_error());
    CHECK(loom_zoo_build("resnet50", 3, 32, 32, 10, 1) == NULL && strstr(loom_error(), "resnet20") &&
              strstr(loom_error(), "inception"),
          "unknown model lists the zoo: %s", loom_error());
}

/* One training step on a batch of 2: outputs, loss and every gradient finite,
 * and the gradient reaches the first layer. */
static void train_step(const char *name, int c, int h, int w) {
    enum { N = 2, K = 5 };
    loom_graph *g = loom_zoo_build(name, c, h, w, K, 11);
    CHECK(g != NULL, "%s builds: %s", name, loom_error());
    if (!g) return;
    loom_exec *e = loom_exec_new(g, N);
    CHECK(e != NULL, "%s exec: %s", name, loom_error());
    if (!e) {
        loom_graph_free(g);
        return;
    }
    size_t in = (size_t)c * h * w, np = loom_graph_param_count(g);
    t_fill(loom_exec_input(e), N * in, 5, -1, 1);
    int32_t labels[N] = {1, 4};
    loom_exec_forward(e, N, 1, 99, 0);
    loom_exec_zero_act_grad(e);
    loom_exec_zero_param_grad(e);
    double loss = loom_k_softmax_xent(loom_exec_output(e), labels, loom_exec_output_grad(e), N, K, 0.5f);
    loom_exec_backward(e, N);
    size_t bad_out = 0, bad_grad = 0;
    for (size_t i = 0; i < N * (size_t)K; i++) bad_out += !isfinite(loom_exec_output(e)[i]);
    const float *gr = loom_exec_param_grad(e);
    for (size_t i = 0; i < np; i++) bad_grad += !isfinite(gr[i]);
    CHECK(bad_out == 0 && isfinite(loss), "%s: %zu non-finite outputs, loss %g", name, bad_out, loss);
    CHECK(bad_grad == 0, "%s: %zu of %zu gradients non-finite", name, bad_grad, np);
    const loom_layer *first = NULL;
    for (int i = 0; i < loom_graph_count(g) && !first; i++)
        if (loom_graph_layer(g, i)->param_count) first = loom_graph_layer(g, i);
    double mag = 0;
    for (size_t i = 0; first && i < first->weight_count; i++) mag += fabs(gr[first->param_off + i]);
    CHECK(mag > 0, "%s: no gradient reaches the first layer", name);
    printf("step %-10s %dx%dx%d  %8zu params  loss %.4f\n", name, c, h, w, np, loss);
    loom_exec_free(e);
    loom_graph_free(g);
}

static void test_train_steps(void) {
    /* Small inputs keep the heavy models quick under sanitizers; the 150 px
     * inception run covers a stride-2 stem. */
    static const struct { const char *name; int c, h, w; } runs[] = {
        {"mlp", 1, 28, 28},        {"logreg", 84, 1, 1},    {"lenet5", 1, 28, 28},   {"minivgg", 3, 32, 32},
        {"shallownet", 3, 32, 32}, {"alexnet", 3, 64, 64},  {"vgg", 3, 32, 32},
        {"vgg11", 3, 32, 32},      {"vgg13", 3, 32, 32},    {"vgg16", 1, 28, 28},
        {"resnet", 3, 32, 32},     {"resnet20", 3, 32, 32}, {"inception", 3, 150, 150},
    };
    size_t nr = sizeof runs / sizeof runs[0];
    for (size_t i = 0; i < nr; i++) train_step(runs[i].name, runs[i].c, runs[i].h, runs[i].w);
    for (const char *const *n = loom_zoo_names(); *n; n++) {
        int covered = 0;
        for (size_t i = 0; i < nr; i++) covered |= !strcmp(runs[i].name, *n);
        CHECK(covered, "zoo model %s has no training-step run", *n);
    }
}

int main(void) {
    TEST_REQUIRE_ISA();
    test_fixtures();
    test_builds();
    test_train_steps();
    TEST_END();
}
