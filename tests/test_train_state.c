/* Training checkpoints (train_state.h): the trainer's options and the fit
 * state come back field for field (values JSON cannot spell included); the
 * optimizer's state comes back bit for bit, so that the step after resuming
 * is the step an uninterrupted run takes, for every optimizer; a trainer
 * that does not match the saved optimizer is refused; a model-only file and
 * a version-1 file are refused with the reason. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "util.h"
#include "loom/loom.h"

static char dir[256];

enum { C = 2, H = 8, W = 8, K = 3, B = 6 };

static loom_graph *model(void) {
    loom_graph *g = loom_graph_new("state");
    loom_node x = loom_input(g, C, H, W);
    x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 4, 3, 1, 1)));
    x = loom_maxpool2d(g, x, 2, 2);
    loom_dense(g, x, K);
    if (loom_graph_finish(g, 3) != LOOM_OK) {
        loom_graph_free(g);
        return NULL;
    }
    return g;
}

static int same_bits(double a, double b) { return !memcmp(&a, &b, sizeof a); }
static int same_fbits(float a, float b) { return !memcmp(&a, &b, sizeof a); }

/* Field by field: padding bytes make a memcmp of the structs meaningless. */
static const char *opts_diff(const loom_trainer_opts *a, const loom_trainer_opts *b) {
    const loom_optim_cfg *x = &a->optim, *y = &b->optim;
    if (a->batch != b->batch || (a->deterministic != 0) != (b->deterministic != 0) || a->shards != b->shards)
        return "batch/deterministic/shards";
    if (a->seed != b->seed) return "seed";
    if (a->loss != b->loss || !same_fbits(a->clip_norm, b->clip_norm)) return "loss/clip";
    if (x->kind != y->kind || !same_fbits(x->momentum, y->momentum) || (x->nesterov != 0) != (y->nesterov != 0) ||
        !same_fbits(x->weight_decay, y->weight_decay) || !same_fbits(x->l1, y->l1) || !same_fbits(x->beta1, y->beta1) ||
        !same_fbits(x->beta2, y->beta2) || !same_fbits(x->eps, y->eps) || !same_fbits(x->alpha, y->alpha))
        return "optim";
    return NULL;
}

static const char *fit_diff(const loom_fit_state *a, const loom_fit_state *b) {
    const loom_schedule *s = &a->sched, *t = &b->sched;
    if (a->epoch != b->epoch || a->batch != b->batch) return "epoch/batch";
    if (!same_bits(a->loss_sum, b->loss_sum) || a->correct != b->correct || a->seen != b->seen ||
        !same_bits(a->seconds, b->seconds) || !same_bits(a->data_wait, b->data_wait))
        return "partial epoch";
    if (!same_bits(a->best_metric, b->best_metric) || a->best_epoch != b->best_epoch || a->since_best != b->since_best)
        return "best";
    if (s->kind != t->kind || !same_fbits(s->base_lr, t->base_lr) || !same_fbits(s->gamma, t->gamma) ||
        s->step_size != t->step_size || s->n_milestones != t->n_milestones ||
        memcmp(s->milestones, t->milestones, sizeof(int) * (size_t)s->n_milestones) ||
        !same_fbits(s->warmup_epochs, t->warmup_epochs) || !same_fbits(s->min_lr, t->min_lr) ||
        s->patience != t->patience || s->epochs != t->epochs || s->restart_epoch != t->restart_epoch ||
        !same_fbits(s->restart_lr, t->restart_lr) || !same_bits(s->best, t->best) || s->bad_epochs != t->bad_epochs ||
        !same_fbits(s->plateau_scale, t->plateau_scale))
        return "sched";
    return NULL;
}

static void test_round_trip(void) {
    loom_graph *g = model();
    CHECK(g != NULL, "model");
    if (!g) return;
    loom_trainer_opts o = {.batch = B, .threads = 2, .deterministic = 1, .shards = 3,
                           .seed = 0xFEDCBA9876543210ull, /* above INT64_MAX: not a JSON integer */
                           .loss = LOOM_LOSS_HINGE, .clip_norm = 2.5f,
                           .optim = {.kind = LOOM_NADAM, .momentum = 0.9f, .nesterov = 1, .weight_decay = 1e-4f,
                                     .l1 = 1e-6f, .beta1 = 0.85f, .beta2 = 0.995f, .eps = 1e-7f, .alpha = 0.97f}};
    loom_trainer *t = loom_trainer_new(g, &o);
    loom_fit_state st;
    loom_schedule sc;
    loom_schedule_parse("multistep:3,7,11:0.5", 0.1f, 30, &sc);
    loom_fit_state_init(&st, &sc);
    st.epoch = 7, st.batch = 123, st.loss_sum = 1.0 / 3, st.correct = 99, st.seen = 789, st.seconds = 12.25;
    st.data_wait = 0.125, st.best_metric = 0.91234567890123456, st.best_epoch = 5, st.since_best = 2;
    st.sched.warmup_epochs = 1.5f, st.sched.min_lr = 1e-5f, st.sched.patience = 4, st.sched.best = 0.3333333333333333;
    st.sched.bad_epochs = 2, st.sched.plateau_scale = 0.25f, st.sched.restart_epoch = 4, st.sched.restart_lr = 0.02f;
    const char *p = t_path(dir, "state.safetensors");
    loom_ckpt_meta m = {"app.run", "{\"x\": 1}"};
    CHECK(t && loom_train_save(p, t, &st, &m, 1) == LOOM_OK, "save: %s", loom_error());
    loom_checkpoint *ck = loom_checkpoint_open(p);
    loom_trainer_opts ob;
    loom_fit_state sb;
    CHECK(ck && loom_train_read(ck, &ob, &sb) == LOOM_OK, "read: %s", loom_error());
    o.threads = 0; /* not saved: chosen when resuming */
    const char *d = ck ? opts_diff(&o, &ob) : "open";
    CHECK(d == NULL && ob.threads == 0, "trainer option %s differs after the round trip", d);
    d = ck ? fit_diff(&st, &sb) : "open";
    CHECK(d == NULL, "fit state field %s differs after the round trip", d);
    CHECK(ck && !strcmp(loom_checkpoint_meta(ck, "app.run"), "{\"x\": 1}"), "extra metadata travels");
    loom_checkpoint_close(ck);

    /* What JSON cannot spell: the plateau schedule starts with best = inf. */
    loom_schedule_parse("plateau:3:0.5", 0.01f, 5, &st.sched);
    st.best_metric = -1;
    CHECK(isinf(st.sched.best) && loom_train_save(p, t, &st, NULL, 0) == LOOM_OK, "save: %s", loom_error());
    ck = loom_checkpoint_open(p);
    CHECK(ck && loom_train_read(ck, &ob, &sb) == LOOM_OK && fit_diff(&st, &sb) == NULL && isinf(sb.sched.best),
          "best = inf survives: %s", loom_error());
    loom_checkpoint_close(ck);
    loom_trainer_free(t);
    loom_graph_free(g);
}

static void fill_batch(float *x, int32_t *y, unsigned seed) {
    t_fill(x, (size_t)B * C * H * W, seed, -1.0f, 1.0f);
    for (int i = 0; i < B; i++) y[i] = (int32_t)((i + seed) % K);
}

/* Three steps, save, restore into a new graph and trainer: the fourth step
 * is bit-identical to the original run's. */
static void optim_round_trip(loom_optim_kind kind, float momentum) {
    const char *name = loom_optim_name(kind);
    static float x[B * C * H * W];
    static int32_t y[B];
    loom_graph *g = model();
    loom_trainer_opts o = {.batch = B, .threads = 1, .seed = 4, .optim = {.kind = kind, .momentum = momentum}};
    loom_trainer *t = loom_trainer_new(g, &o);
    CHECK(t != NULL, "%s: trainer: %s", name, loom_error());
    if (!t) return;
    size_t np = loom_graph_param_count(g);
    float *w0 = malloc(np * sizeof *w0);
    memcpy(w0, loom_graph_params(g), np * sizeof *w0);
    for (unsigned s = 0; s < 3; s++) {
        fill_batch(x, y, s);
        CHECK(loom_trainer_step(t, x, y, B, 0.01f, NULL) == LOOM_OK, "%s: step: %s", name, loom_error());
    }
    loom_fit_state st;
    loom_fit_state_init(&st, NULL);
    const char *p = t_path(dir, "optim.safetensors");
    CHECK(loom_train_save(p, t, &st, NULL, 0) == LOOM_OK, "%s: save: %s", name, loom_error());
    loom_checkpoint *ck = loom_checkpoint_open(p);
    loom_graph *h = ck ? loom_checkpoint_graph(ck) : NULL;
    loom_trainer_opts ob;
    loom_fit_state sb;
    CHECK(h && loom_train_read(ck, &ob, &sb) == LOOM_OK, "%s: read: %s", name, loom_error());
    ob.threads = 1; /* the same shards as the original (not deterministic mode) */
    loom_trainer *u = h ? loom_trainer_new(h, &ob) : NULL;
    CHECK(u && loom_train_restore(ck, u) == LOOM_OK, "%s: restore: %s", name, loom_error());
    if (u) {
        loom_optim *a = loom_trainer_optim(t), *b = loom_trainer_optim(u);
        size_t n = loom_graph_param_count(g);
        CHECK(loom_optim_state_count(a) == loom_optim_state_count(b), "%s: state count", name);
        for (int k = 0; k < loom_optim_state_count(a); k++)
            CHECK(!memcmp(loom_optim_state(a, k), loom_optim_state(b, k), n * sizeof(float)),
                  "%s: state array %d bit-identical", name, k);
        CHECK(loom_trainer_steps(u) == 3 && loom_optim_steps(b) == 3, "%s: step counters", name);
        fill_batch(x, y, 9);
        CHECK(loom_trainer_step(t, x, y, B, 0.01f, NULL) == LOOM_OK && loom_trainer_step(u, x, y, B, 0.01f, NULL) == LOOM_OK,
              "%s: the next steps run", name);
        CHECK(!memcmp(loom_graph_params(g), loom_graph_params(h), n * sizeof(float)),
              "%s: the step after resuming is bit-identical", name);
        CHECK(memcmp(loom_graph_params(g), w0, n * sizeof(float)), "%s: training moved the weights", name);
    }
    loom_trainer_free(u);
    /* a trainer with another optimizer, or another momentum setting, is refused */
    if (h) {
        loom_trainer_opts other = ob;
        other.optim.kind = loom_optim_state_count(loom_trainer_optim(t)) == 2 ? LOOM_ADAGRAD : LOOM_ADAM;
        if (kind == LOOM_SGD) other.optim = (loom_optim_cfg){.kind = LOOM_SGD, .momentum = momentum ? 0 : 0.5f};
        u = loom_trainer_new(h, &other);
        CHECK(u && loom_train_restore(ck, u) == LOOM_ERR && strstr(loom_error(), "optimizer") &&
                  strstr(loom_error(), p),
              "%s: a mismatched optimizer is refused: %s", name, loom_error());
        loom_trainer_free(u);
    }
    loom_graph_free(h);
    loom_checkpoint_close(ck);
    loom_trainer_free(t);
    loom_graph_free(g);
    free(w0);
}

static void test_refusals(void) {
    loom_graph *g = model();
    const char *p = t_path(dir, "model.safetensors");
    CHECK(g && loom_checkpoint_save(p, g, NULL) == LOOM_OK, "save: %s", loom_error());
    loom_checkpoint *ck = loom_checkpoint_open(p);
    loom_trainer_opts o;
    loom_fit_state st;
    CHECK(ck && loom_train_read(ck, &o, &st) == LOOM_ERR && strstr(loom_error(), "no training state"),
          "a model-only file has nothing to resume: %s", loom_error());
    loom_checkpoint_close(ck);
    loom_graph_free(g);
}

int main(void) {
    if (!t_mkdtemp(dir, sizeof dir, "train-state")) return 2;
    test_round_trip();
    optim_round_trip(LOOM_ADAM, 0);
    optim_round_trip(LOOM_NADAM, 0);  /* mu_product != 1 */
    optim_round_trip(LOOM_SGD, 0.9f); /* one state array */
    optim_round_trip(LOOM_SGD, 0);    /* none, but the step counts still travel */
    optim_round_trip(LOOM_RMSPROP, 0.5f);
    optim_round_trip(LOOM_ADAGRAD, 0);
    test_refusals();
    t_rm_tree(dir);
    TEST_END();
}
