/* The data-parallel trainer:
 *  - deterministic mode: bit-identical weights and BN buffers for 1..4 threads
 *    (a small CNN with batch norm and dropout, several steps);
 *  - same thread count twice: bit-identical without the deterministic option;
 *  - sharding is exact: one SGD step (lr 1, no momentum) moves the weights by
 *    the whole-batch gradient computed by a single replica;
 *  - no allocation in the steady-state step (malloc/calloc/realloc are wrapped
 *    at link time and counted);
 *  - OPENBLAS_NUM_THREADS (set to 4 by ctest for this test) cannot make the
 *    runtime oversubscribe: BLAS reports one thread and a one-thread trainer
 *    uses about one core of CPU time. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#include "check.h"
#include "kernels/clock.h"
#include "kernels/kernels.h"
#include "loom/loom.h"

/* ---- allocation counting (linked with -Wl,--wrap=malloc,...) ---- */
static atomic_long n_alloc;
void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__wrap_malloc(size_t n) { atomic_fetch_add(&n_alloc, 1); return __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { atomic_fetch_add(&n_alloc, 1); return __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { atomic_fetch_add(&n_alloc, 1); return __real_realloc(p, n); }

enum { N = 48, C = 1, H = 12, W = 12, K = 4, B = 16 };
static float X[N * C * H * W];
static int32_t Y[N];

static loom_graph *small_cnn(int bn_and_dropout) {
    loom_graph *g = loom_graph_new("small");
    loom_node x = loom_input(g, C, H, W);
    x = loom_conv2d(g, x, 6, 3, 1, 1);
    if (bn_and_dropout) x = loom_batchnorm(g, x);
    x = loom_maxpool2d(g, loom_relu(g, x), 2, 2);
    if (bn_and_dropout) x = loom_dropout(g, x, 0.25f);
    x = loom_dense(g, x, 16);
    if (bn_and_dropout) x = loom_batchnorm(g, x);
    x = loom_relu(g, x);
    if (bn_and_dropout) x = loom_dropout(g, x, 0.5f);
    loom_dense(g, x, K);
    if (loom_graph_finish(g, 9) != LOOM_OK) return NULL;
    return g;
}

/* Train a few steps; copy out parameters and buffers. Every call is checked,
 * and so is that the weights moved: a trainer failing every step must not
 * pass the comparisons below by leaving all runs at their initial weights. */
static void train(int threads, int det, loom_optim_kind kind, float *params, float *bufs, size_t *np,
                  size_t *nb) {
    loom_graph *g = small_cnn(1);
    CHECK(g != NULL, "graph: %s", loom_error());
    loom_trainer_opts o = {.batch = B, .threads = threads, .deterministic = det, .seed = 5,
                           .optim = {.kind = kind, .momentum = 0.9f}, .clip_norm = 5.0f};
    loom_trainer *t = loom_trainer_new(g, &o);
    CHECK(t != NULL, "trainer (%d threads): %s", threads, loom_error());
    if (!t) exit(1);
    size_t n = loom_graph_param_count(g);
    float *w0 = malloc(n * sizeof *w0);
    memcpy(w0, loom_graph_params(g), n * sizeof *w0);
    int failed = 0;
    for (int s = 0; s < 6; s++) {
        int at = (s * B) % N;
        failed += loom_trainer_step(t, X + (size_t)at * C * H * W, Y + at, s == 5 ? 13 : B, 0.05f, NULL) != LOOM_OK;
    }
    CHECK(failed == 0, "%d of 6 steps failed: %s", failed, loom_error());
    CHECK(memcmp(w0, loom_graph_params(g), n * sizeof *w0), "%d threads: 6 steps left the weights unchanged", threads);
    free(w0);
    *np = loom_graph_param_count(g);
    *nb = loom_graph_buffer_count(g);
    memcpy(params, loom_graph_params(g), *np * sizeof(float));
    memcpy(bufs, loom_graph_buffers(g), *nb * sizeof(float));
    loom_trainer_free(t);
    loom_graph_free(g);
}

static void test_determinism(void) {
    static float p1[8192], b1[256], p[8192], b[256];
    size_t np, nb;
    for (int k = 0; k < 2; k++) {
        loom_optim_kind kind = k ? LOOM_ADAM : LOOM_SGD;
        train(1, 1, kind, p1, b1, &np, &nb);
        CHECK(np < 8192 && nb > 0 && nb < 256, "sizes %zu %zu", np, nb);
        for (int T = 2; T <= 4; T++) {
            train(T, 1, kind, p, b, &np, &nb);
            CHECK(!memcmp(p, p1, np * 4) && !memcmp(b, b1, nb * 4),
                  "deterministic %s: %d threads differ from 1 thread", loom_optim_name(kind), T);
        }
        /* not deterministic mode: same thread count, same bits; and the same with phase 2 in its own run
         * (LOOM_EARLY_REDUCE=0) as begun by workers while others are still in backward */
        train(2, 0, kind, p1, b1, &np, &nb);
        train(2, 0, kind, p, b, &np, &nb);
        CHECK(!memcmp(p, p1, np * 4) && !memcmp(b, b1, nb * 4), "2 threads twice differ (%s)",
              loom_optim_name(kind));
        setenv("LOOM_EARLY_REDUCE", "0", 1);
        train(2, 0, kind, p, b, &np, &nb);
        unsetenv("LOOM_EARLY_REDUCE");
        CHECK(!memcmp(p, p1, np * 4) && !memcmp(b, b1, nb * 4), "2 threads: early reduce differs from phase 2 "
              "after phase 1 (%s)", loom_optim_name(kind));
    }
    printf("determinism: SGD and Adam, BN + dropout + clipping, 1/2/3/4 threads bit-identical\n");
}

/* Dense layers whose deferred weight gradients span several of the
 * trainer's blocks: 70 rows (64 + 6), and 1100 columns (1024 + 76). */
static loom_graph *wide_mlp(void) {
    loom_graph *g = loom_graph_new("wide");
    loom_node x = loom_input(g, C, H, W);
    x = loom_relu(g, loom_dense(g, x, 70));
    x = loom_relu(g, loom_dense(g, x, 1100));
    loom_dense(g, x, K);
    if (loom_graph_finish(g, 3) != LOOM_OK) return NULL;
    return g;
}

/* want = before - the gradient of the first n samples' mean loss, from one replica. */
static void whole_batch_step(loom_graph *g, const float *before, int n, float *want) {
    size_t np = loom_graph_param_count(g);
    memcpy(loom_graph_params(g), before, np * 4);
    loom_exec *e = loom_exec_new(g, n);
    memcpy(loom_exec_input(e), X, sizeof(float) * n * C * H * W);
    loom_exec_forward(e, n, 1, 0, 0);
    loom_exec_zero_act_grad(e);
    loom_exec_zero_param_grad(e);
    loom_k_softmax_xent(loom_exec_output(e), Y, loom_exec_output_grad(e), n, K, 1.0f / n);
    loom_exec_backward(e, n);
    for (size_t i = 0; i < np; i++) want[i] = before[i] - loom_exec_param_grad(e)[i];
    loom_exec_free(e);
}

/* One SGD step (lr 1) of a trainer for batches of tb on the first n samples moves the weights by the
 * whole-batch gradient. tb = 64 at 2 threads makes tail shards (24, 24, 8, 8, scaled to n); after is
 * 1 when a step of all N samples runs first, so that the replicas left without samples by a step of
 * one sample hold an earlier step's activations: those must not count. */
static void test_shards_sum_to_batch(loom_graph *g, int tb, int n, int after) {
    CHECK(g != NULL, "graph: %s", loom_error());
    if (!g) return;
    size_t np = loom_graph_param_count(g);
    float *before = malloc(np * 4), *want = malloc(np * 4);
    memcpy(before, loom_graph_params(g), np * 4);
    whole_batch_step(g, before, n, want);
    double norm = 0;
    for (size_t i = 0; i < np; i++) norm += (double)(before[i] - want[i]) * (before[i] - want[i]);
    norm = sqrt(norm);
    for (int T = 1; T <= 3; T++) {
        for (int clip = 0; clip < 2; clip++) {
            /* clipping to a tenth of the norm must scale the step by exactly that */
            float c = clip ? (float)(norm / 10) : 0.0f;
            loom_trainer_opts o = {.batch = tb, .threads = T, .optim = {.kind = LOOM_SGD}, .clip_norm = c};
            loom_trainer *t = loom_trainer_new(g, &o);
            loom_step_result r;
            if (t && after) CHECK(loom_trainer_step(t, X, Y, tb < N ? tb : N, 1.0f, &r) == LOOM_OK, "step: %s", loom_error());
            memcpy(loom_graph_params(g), before, np * 4);
            CHECK(t && loom_trainer_step(t, X, Y, n, 1.0f, &r) == LOOM_OK, "step: %s", loom_error());
            if (!t) continue;
            double worst = 0, scale = clip ? 0.1 : 1.0;
            for (size_t i = 0; i < np; i++)
                worst = fmax(worst, fabs(loom_graph_params(g)[i] - (before[i] - scale * (before[i] - want[i]))));
            CHECK(worst < 1e-5, "%s, batch %d, %d samples%s, %d threads, clip %d: sharded step differs from the "
                  "whole-batch gradient by %g", loom_graph_name(g), tb, n, after ? " after a full step" : "", T,
                  clip, worst);
            if (clip) CHECK(fabs(r.grad_norm - norm) < 1e-4 * norm, "reported norm %g vs %g", r.grad_norm, norm);
            loom_trainer_free(t);
        }
    }
    free(before);
    free(want);
    loom_graph_free(g);
}

/* Inference through the trainer (eval) against one replica's forward: the outputs, the loss sum and the
 * correct count, for a full batch and a partial one, by shards (a dense-heavy model) and by pieces taken
 * by whichever worker is free (a model of convolutions, whose weights are small beside its activations).
 * Between two passes of the same trainer the caller rewrites the weights and running statistics: the
 * second pass must see them (inference folds batch norm into the convolutions and keeps the fold while an
 * inference pass holds the weights; a fold kept across passes would answer with the old weights). */
static void ref_forward(loom_graph *g, int n, float *ref) {
    loom_exec *e = loom_exec_new(g, n);
    memcpy(loom_exec_input(e), X, sizeof(float) * n * C * H * W);
    CHECK(loom_exec_forward(e, n, 0, 0, 0) == LOOM_OK, "forward: %s", loom_error());
    memcpy(ref, loom_exec_output(e), sizeof(float) * n * K);
    loom_exec_free(e);
}

static void test_eval_pieces(void) {
    enum { EB = 48 };
    static int32_t Ye[EB]; /* labels without a period that pieces could line up with */
    for (int i = 0; i < EB; i++) Ye[i] = (int32_t)((i * i * 7 + i / 3) % K);
    for (int conv = 0; conv < 2; conv++) {
        loom_graph *g = loom_graph_new("evalnet");
        loom_node x = loom_input(g, C, H, W);
        if (conv) { /* conv + batch norm + ReLU chains; 32 input channels take Winograd where it serves */
            x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 16, 3, 1, 1)));
            x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 32, 3, 1, 1)));
            x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 32, 3, 1, 1)));
            x = loom_global_avgpool(g, x);
        } else {
            x = loom_relu(g, loom_dense(g, x, 300));
        }
        loom_dense(g, x, K);
        CHECK(loom_graph_finish(g, 4) == LOOM_OK, "graph: %s", loom_error());
        size_t np = loom_graph_param_count(g), nb = loom_graph_buffer_count(g);
        static float ref[EB * K], out[EB * K];
        for (int T = 1; T <= 3; T++) {
            loom_trainer_opts o = {.batch = EB, .threads = T, .optim = {.kind = LOOM_SGD}};
            loom_trainer *t = loom_trainer_new(g, &o);
            CHECK(t != NULL, "trainer: %s", loom_error());
            if (!t) continue;
            int piece = loom_trainer_infer_piece(t);
            CHECK((piece > 0) == conv, "%s model, %d threads: inference piece %d",
                  conv ? "convolution" : "dense", T, piece);
            for (int pass = 0; pass < 2; pass++) {
                if (pass) { /* the caller rewrites weights and running statistics between passes */
                    float *P = loom_graph_params(g), *Bf = loom_graph_buffers(g);
                    for (size_t i = 0; i < np; i++) P[i] *= 0.75f + 0.5f * (float)((i * 7919 + T) % 101) / 101;
                    for (size_t i = 0; i < nb; i++) Bf[i] += 0.05f * (float)((i * 31 + T) % 7);
                }
                ref_forward(g, EB, ref);
                for (int n = EB; n > 0; n -= 35) { /* 48, then 13 */
                    double loss = -1, want_loss = 0;
                    int correct = -1, want_correct = 0;
                    memset(out, 0, sizeof out);
                    CHECK(loom_trainer_eval(t, X, Ye, n, &loss, &correct, out) == LOOM_OK, "eval: %s", loom_error());
                    double worst = 0, size = 0;
                    for (int i = 0; i < n * K; i++) {
                        worst = fmax(worst, fabs(out[i] - ref[i]));
                        size = fmax(size, fabs(ref[i]));
                    }
                    for (int i = 0; i < n; i++) {
                        const float *r = ref + (size_t)i * K;
                        double m = r[0], z = 0;
                        for (int k = 1; k < K; k++) m = fmax(m, r[k]);
                        for (int k = 0; k < K; k++) z += exp(r[k] - m);
                        want_loss += m + log(z) - r[Ye[i]];
                        want_correct += loom_k_argmax(r, K) == Ye[i];
                    }
                    CHECK(worst < 1e-5 * fmax(1, size) && fabs(loss - want_loss) < 1e-4 * n * fmax(1, size) &&
                              correct == want_correct,
                          "%s model, %d threads, pass %d, %d samples (piece %d): outputs off by %g (largest %g), "
                          "loss %g vs %g, correct %d vs %d", conv ? "convolution" : "dense", T, pass, n, piece,
                          worst, size, loss, want_loss, correct, want_correct);
                }
            }
            loom_trainer_free(t);
        }
        loom_graph_free(g);
    }
    printf("eval: outputs, loss and correct count as one replica's, by shards and by pieces, 1-3 threads, "
           "weights rewritten between passes\n");
}

static void test_no_malloc(void) {
    loom_graph *g = small_cnn(1);
    loom_trainer_opts o = {.batch = B, .threads = 2, .seed = 1, .optim = {.kind = LOOM_ADAM},
                           .clip_norm = 1.0f};
    loom_trainer *t = loom_trainer_new(g, &o);
    CHECK(t != NULL, "trainer: %s", loom_error());
    if (!t) return;
    loom_step_result r;
    int failed = 0;
    for (int s = 0; s < 2; s++) failed += loom_trainer_step(t, X, Y, B, 1e-3f, &r) != LOOM_OK;
    size_t n = loom_graph_param_count(g);
    float *w0 = malloc(n * sizeof *w0);
    memcpy(w0, loom_graph_params(g), n * sizeof *w0);
    long a0 = atomic_load(&n_alloc);
    for (int s = 0; s < 10; s++)
        failed += loom_trainer_step(t, X + (s % 3) * B * H * W, Y + (s % 3) * B, B, 1e-3f, &r) != LOOM_OK;
    double l;
    int c;
    failed += loom_trainer_eval(t, X, Y, B, &l, &c, NULL) != LOOM_OK;
    long used = atomic_load(&n_alloc) - a0;
    CHECK(failed == 0, "%d steps failed: %s", failed, loom_error());
    CHECK(memcmp(w0, loom_graph_params(g), n * sizeof *w0), "the steady-state steps did not train");
    free(w0);
    CHECK(used == 0, "steady-state steps allocated %ld times", used);
    CHECK(atomic_load(&n_alloc) > 0, "the allocation counter works (counted %ld at setup)", atomic_load(&n_alloc));
    printf("allocations in 10 steady-state steps + 1 eval: %ld\n", used);
    loom_trainer_free(t);
    loom_graph_free(g);
}

/* A frozen layer keeps its weights bit for bit even with momentum and weight
 * decay (which would move them on zero gradients); the rest still trains. */
static void test_frozen(void) {
    loom_graph *g = small_cnn(1);
    loom_graph_set_frozen(g, 1, 1); /* the first conv */
    const loom_layer *c1 = loom_graph_layer(g, 1);
    size_t np = loom_graph_param_count(g);
    float *before = malloc(np * sizeof(float));
    memcpy(before, loom_graph_params(g), np * sizeof(float));
    loom_trainer_opts o = {.batch = B, .threads = 2, .seed = 1,
                           .optim = {.kind = LOOM_SGD, .momentum = 0.9f, .weight_decay = 0.01f}};
    loom_trainer *t = loom_trainer_new(g, &o);
    int failed = 0;
    for (int s = 0; t && s < 3; s++) failed += loom_trainer_step(t, X, Y, B, 0.1f, NULL) != LOOM_OK;
    CHECK(t && failed == 0, "frozen: steps failed: %s", loom_error());
    const float *p = loom_graph_params(g);
    CHECK(!memcmp(p + c1->param_off, before + c1->param_off, c1->param_count * sizeof(float)),
          "a frozen layer changed");
    CHECK(memcmp(p + c1->param_off + c1->param_count, before + c1->param_off + c1->param_count,
                 (np - c1->param_off - c1->param_count) * sizeof(float)),
          "the unfrozen layers did not train");
    /* a frozen batch norm keeps its running statistics as well */
    loom_graph *h = small_cnn(1);
    int bn = -1;
    for (int i = 0; i < loom_graph_count(h) && bn < 0; i++)
        if (loom_graph_layer(h, i)->op == LOOM_OP_BATCHNORM) bn = i;
    CHECK(bn > 0, "small_cnn has a batch norm");
    if (bn > 0) {
        for (int i = 1; i <= bn; i++) loom_graph_set_frozen(h, i, 1);
        const loom_layer *bl = loom_graph_layer(h, bn);
        float *stats = malloc(bl->buf_count * sizeof(float));
        memcpy(stats, loom_graph_buffers(h) + bl->buf_off, bl->buf_count * sizeof(float));
        loom_trainer *th = loom_trainer_new(h, &o);
        for (int s = 0; th && s < 3; s++) failed += loom_trainer_step(th, X, Y, B, 0.1f, NULL) != LOOM_OK;
        CHECK(th && failed == 0, "frozen batch norm: steps failed: %s", loom_error());
        CHECK(!memcmp(stats, loom_graph_buffers(h) + bl->buf_off, bl->buf_count * sizeof(float)),
              "a frozen batch norm's running statistics changed");
        free(stats);
        loom_trainer_free(th);
    }
    loom_graph_free(h);
    free(before);
    loom_trainer_free(t);
    loom_graph_free(g);
}

/* A step whose loss is not finite changes nothing and says where the NaN began: the data, or a layer's
 * output; with skip_nonfinite the next good step trains as usual. */
static void test_nonfinite(void) {
    static float Xbad[N * C * H * W];
    memcpy(Xbad, X, sizeof X);
    Xbad[5] = NAN;
    for (int skip = 0; skip < 2; skip++) {
        loom_graph *g = small_cnn(0);
        size_t np = loom_graph_param_count(g);
        float *before = malloc(np * sizeof(float));
        memcpy(before, loom_graph_params(g), np * sizeof(float));
        loom_trainer_opts o = {.batch = B, .threads = 2, .seed = 1, .skip_nonfinite = skip,
                               .optim = {.kind = LOOM_ADAM}};
        loom_trainer *t = loom_trainer_new(g, &o);
        /* (the max pool hides the NaN from the loss: the gradient of the first conv holds it) */
        int rc = t ? loom_trainer_step(t, Xbad, Y, B, 0.01f, NULL) : LOOM_ERR;
        CHECK(rc == LOOM_ERR && loom_error_kind() == LOOM_EDIVERGED && strstr(loom_error(), "input itself (the data)"),
              "a NaN in the data: named as the data: %s", loom_error());
        if (skip) {
            CHECK(!memcmp(before, loom_graph_params(g), np * sizeof(float)), "a skipped NaN step changed the weights");
            long steps;
            double mu;
            loom_optim_get_scalars(loom_trainer_optim(t), &steps, &mu);
            CHECK(steps == 0, "the optimizer counted the refused step (%ld)", steps);
        }
        /* a layer whose output overflows */
        float *w = loom_graph_params(g) + loom_graph_layer(g, 1)->param_off;
        for (size_t k = 0; k < loom_graph_layer(g, 1)->weight_count; k++) w[k] = 1e38f;
        memcpy(before, loom_graph_params(g), np * sizeof(float));
        rc = loom_trainer_step(t, X, Y, B, 0.01f, NULL);
        char want[128];
        snprintf(want, sizeof want, "output of layer 1, %s", loom_graph_layer(g, 1)->name);
        CHECK(rc == LOOM_ERR && strstr(loom_error(), want), "an overflowing layer is named (%s): %s", want, loom_error());
        if (skip) CHECK(!memcmp(before, loom_graph_params(g), np * sizeof(float)), "a skipped step changed the weights");
        loom_trainer_free(t);
        loom_graph_free(g);
        if (skip) { /* a fresh model: the NaN step skipped, then training goes on */
            g = small_cnn(0);
            t = loom_trainer_new(g, &o);
            memcpy(before, loom_graph_params(g), np * sizeof(float));
            CHECK(t && loom_trainer_step(t, Xbad, Y, B, 0.01f, NULL) == LOOM_ERR, "the NaN step is refused");
            CHECK(loom_trainer_step(t, X, Y, B, 0.01f, NULL) == LOOM_OK, "the next step: %s", loom_error());
            CHECK(memcmp(before, loom_graph_params(g), np * sizeof(float)), "and it trains");
            loom_trainer_free(t);
            loom_graph_free(g);
        }
        free(before);
    }
}

/* A loss that is not finite is refused before any update, also where workers begin phase 2 while others
 * are still in backward (2 and 3 threads, batch 64: tail shards): the weights and the optimizer's step count
 * stay as they were, whatever skip_nonfinite says. */
static void test_nonfinite_loss(void) {
    for (int T = 2; T <= 3; T++) {
        loom_graph *g = small_cnn(0);
        size_t np = loom_graph_param_count(g);
        float *before = malloc(np * sizeof(float));
        loom_trainer_opts o = {.batch = 64, .threads = T, .seed = 1, .optim = {.kind = LOOM_SGD, .momentum = 0.9f}};
        loom_trainer *t = loom_trainer_new(g, &o);
        CHECK(t && loom_trainer_step(t, X, Y, N, 0.01f, NULL) == LOOM_OK, "a first step: %s", loom_error());
        /* a logit that is infinite for every sample: the loss is not finite */
        loom_node last = loom_graph_count(g) - 1;
        loom_graph_params(g)[loom_graph_layer(g, last)->param_off + loom_graph_layer(g, last)->weight_count] = INFINITY;
        memcpy(before, loom_graph_params(g), np * sizeof(float));
        int rc = t ? loom_trainer_step(t, X, Y, N, 0.01f, NULL) : LOOM_OK;
        CHECK(rc == LOOM_ERR && strstr(loom_error(), "the loss is"), "%d threads: an overflowing loss is refused: %s", T,
              loom_error());
        CHECK(!memcmp(before, loom_graph_params(g), np * sizeof(float)), "%d threads: a refused step changed the weights",
              T);
        long steps = -1;
        double mu;
        if (t) loom_optim_get_scalars(loom_trainer_optim(t), &steps, &mu);
        CHECK(steps == 1, "%d threads: the optimizer counted the refused step (%ld steps, want 1)", T, steps);
        loom_trainer_free(t);
        loom_graph_free(g);
        free(before);
    }
    printf("a loss that is not finite: refused, weights and step count unchanged (2 and 3 threads)\n");
}

int openblas_get_num_threads(void);

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
static double wall_now(void) { return loom_seconds(); }

static void test_blas_discipline(void) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    loom_graph *g = loom_graph_new("wide");
    loom_node x = loom_input(g, 1, 32, 32);
    x = loom_relu(g, loom_dense(g, x, 1024));
    loom_dense(g, x, K);
    CHECK(loom_graph_finish(g, 1) == LOOM_OK, "graph: %s", loom_graph_error(g));
    static float Xw[128 * 1024];
    static int32_t Yw[128];
    t_fill(Xw, 128 * 1024, 3, 0, 1);
    loom_trainer_opts o = {.batch = 128, .threads = 1, .optim = {.kind = LOOM_SGD}};
    loom_trainer *t = loom_trainer_new(g, &o);
    CHECK(t != NULL, "trainer: %s", loom_error());
    if (!t) return;
    CHECK(openblas_get_num_threads() == 1, "OpenBLAS threads %d with OPENBLAS_NUM_THREADS=%s",
          openblas_get_num_threads(), env ? env : "(unset)");
    double c0 = cpu_now(), w0 = wall_now();
    int failed = 0;
    for (int s = 0; s < 20; s++) failed += loom_trainer_step(t, Xw, Yw, 128, 1e-3f, NULL) != LOOM_OK;
    double cpu = cpu_now() - c0, wall = wall_now() - w0;
    CHECK(failed == 0, "blas: %d steps failed: %s", failed, loom_error());
    CHECK(cpu <= 1.25 * wall + 0.05, "1-thread trainer used %.2f s CPU in %.2f s wall (BLAS threads running?)",
          cpu, wall);
    printf("OPENBLAS_NUM_THREADS=%s: BLAS threads %d; 1-thread trainer CPU/wall = %.2f\n", env ? env : "(unset)",
           openblas_get_num_threads(), cpu / wall);
    loom_trainer_free(t);
    loom_graph_free(g);
}

/* Running statistics after one step on a batch cut into unequal shards
 * (10 samples in 4 shards: 2, 3, 2, 3) are those of the whole batch: mean and
 * unbiased variance over all 10 samples, in both BN layouts (after a conv and
 * after a dense layer), for 1 and 3 threads. */
static void test_bn_running_stats(void) {
    enum { NB = 10, BC = 3, BH = 4, BW = 4 };
    static float xb[NB * BC * BH * BW];
    static int32_t yb[NB];
    t_fill(xb, sizeof xb / sizeof xb[0], 4, -1.0f, 3.0f);
    for (int i = 0; i < NB; i++) yb[i] = i % 2;
    for (int flat = 0; flat < 2; flat++)
        for (int threads = 1; threads <= 3; threads += 2) {
            /* flat = 0: per channel over NB*BH*BW values; 1: per feature over NB */
            loom_graph *g = loom_graph_new("bnstats");
            loom_node x = loom_input(g, BC, BH, BW);
            x = flat ? loom_batchnorm(g, loom_flatten(g, x)) : loom_flatten(g, loom_batchnorm(g, x));
            loom_dense(g, x, 2);
            CHECK(loom_graph_finish(g, 3) == LOOM_OK, "graph: %s", loom_graph_error(g));
            loom_trainer_opts o = {.batch = NB, .threads = threads, .deterministic = 1, .shards = 4, .seed = 1,
                                   .optim = {.kind = LOOM_SGD}};
            loom_trainer *t = loom_trainer_new(g, &o);
            CHECK(t != NULL, "trainer: %s", loom_error());
            if (!t) return;
            CHECK(loom_trainer_step(t, xb, yb, NB, 0.0f, NULL) == LOOM_OK, "step: %s", loom_error());
            const float *buf = loom_graph_buffers(g);
            int nch = flat ? BC * BH * BW : BC, per = flat ? 1 : BH * BW;
            double worst = 0, m = (double)NB * per;
            for (int c = 0; c < nch; c++) {
                double s = 0, ss = 0;
                for (int n = 0; n < NB; n++)
                    for (int i = 0; i < per; i++) s += xb[((size_t)n * nch + c) * per + i];
                double mu = s / m;
                for (int n = 0; n < NB; n++)
                    for (int i = 0; i < per; i++) {
                        double d = xb[((size_t)n * nch + c) * per + i] - mu;
                        ss += d * d;
                    }
                worst = fmax(worst, fabs(buf[c] - 0.1 * mu));
                worst = fmax(worst, fabs(buf[nch + c] - (0.9 + 0.1 * ss / (m - 1))));
            }
            CHECK(worst < 2e-6, "%s, %d threads: running statistics differ from the whole batch's by %g",
                  flat ? "features" : "channels", threads, worst);
            printf("batch-norm running statistics (%s), shards 2/3/2/3, %d thread%s: worst difference %.2g\n",
                   flat ? "features" : "channels", threads, threads > 1 ? "s" : "", worst);
            loom_trainer_free(t);
            loom_graph_free(g);
        }
}

int main(void) {
    t_fill(X, sizeof X / sizeof X[0], 1, 0, 1);
    for (int i = 0; i < N; i++) Y[i] = (i * 7) % K;
    test_determinism();
    test_shards_sum_to_batch(small_cnn(0), B, B, 0);
    test_shards_sum_to_batch(wide_mlp(), B, B, 0);
    test_shards_sum_to_batch(small_cnn(0), 64, N, 0); /* tail shards at 2 and 3 threads */
    test_shards_sum_to_batch(wide_mlp(), 64, N, 0);
    test_shards_sum_to_batch(wide_mlp(), 64, 1, 1);   /* replicas without samples after a full step */
    test_shards_sum_to_batch(wide_mlp(), B, 1, 1);
    test_eval_pieces();
    test_no_malloc();
    test_frozen();
    test_blas_discipline();
    test_bn_running_stats();
    test_nonfinite();
    test_nonfinite_loss();
    TEST_END();
}
