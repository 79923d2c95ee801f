/* Resume is exact: in deterministic mode, 4 epochs in one run and 2 epochs,
 * a checkpoint, a fresh process state (graph, trainer and optimizer rebuilt
 * from the file) and 2 more epochs give bit-identical weights and batch-norm
 * buffers — with dropout, augmentation, Adam and a cosine schedule, and with
 * different thread counts before and after the checkpoint. The same holds
 * for a run stopped in the middle of an epoch (its stop flag raised after a
 * number of batches) and resumed from there, and the resumed epoch's metrics
 * equal the uninterrupted epoch's. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "util.h"
#include "loom/loom.h"

enum { N = 96, H = 12, W = 12, C = 3, K = 4 };

static int mem_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    (void)ds;
    for (int k = 0; k < H * W * C; k++) hwc[k] = (uint8_t)((i * 37 + (size_t)k * (i % K + 3)) & 0xFF);
    *label = (int32_t)(i % K);
    return LOOM_OK;
}

static loom_dataset *mem_set(void) {
    loom_dataset *ds = loom_dataset_alloc("mem", "mem", 0, NULL);
    ds->count = N;
    ds->c = C;
    ds->h = H;
    ds->w = W;
    ds->num_classes = K;
    ds->labeled = 1;
    ds->get = mem_get;
    return ds;
}

static loom_graph *model(void) {
    loom_graph *g = loom_graph_new("resume");
    loom_node x = loom_input(g, C, H, W);
    x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 8, 3, 1, 1)));
    x = loom_dropout(g, loom_maxpool2d(g, x, 2, 2), 0.2f);
    x = loom_relu(g, loom_batchnorm(g, loom_dense(g, x, 16)));
    loom_dense(g, loom_dropout(g, x, 0.3f), K);
    loom_graph_finish(g, 11);
    return g;
}

static loom_trainer *trainer(loom_graph *g, int threads) {
    loom_trainer_opts o = {.batch = 16, .threads = threads, .deterministic = 1, .seed = 5,
                           .optim = {.kind = LOOM_ADAM}};
    return loom_trainer_new(g, &o);
}

typedef struct {
    atomic_int stop;
    long after, seen;
} stopper;

static void count_batches(const loom_progress *p, void *user) {
    stopper *s = user;
    if (p->phase == LOOM_FIT_TRAINING && ++s->seen == s->after) atomic_store(&s->stop, 1);
}

static int fit(loom_trainer *t, loom_dataset *ds, loom_fit_state *st, loom_augment *aug, int last, stopper *s,
               loom_epoch_metrics *m) {
    loom_fit_opts fo = {.epochs = last, .state = st, .val = ds, .on_progress = s ? count_batches : NULL,
                        .stop = s ? &s->stop : NULL, .user = s,
                        .loader = {.producers = 2, .seed = 5, .shuffle = 1, .augment = aug}};
    return loom_fit(t, ds, &fo, m);
}

static loom_fit_state fresh(void) {
    loom_schedule sc;
    loom_schedule_parse("cosine:1", 3e-3f, 4, &sc);
    loom_fit_state st;
    loom_fit_state_init(&st, &sc);
    return st;
}

/* Save t and st, then rebuild everything from the file with `threads` threads. */
static loom_trainer *reload(const char *file, loom_trainer *t, loom_fit_state *st, int threads, loom_graph **g) {
    CHECK(loom_train_save(file, t, st, NULL, 0) == LOOM_OK, "save: %s", loom_error());
    loom_checkpoint *ck = loom_checkpoint_open(file);
    loom_trainer_opts o;
    *g = ck ? loom_checkpoint_graph(ck) : NULL;
    CHECK(*g && loom_train_read(ck, &o, st) == LOOM_OK, "load: %s", loom_error());
    loom_trainer *u = NULL;
    if (*g) {
        o.threads = threads;
        u = loom_trainer_new(*g, &o);
        CHECK(u && loom_train_restore(ck, u) == LOOM_OK, "restore: %s", loom_error());
    }
    loom_checkpoint_close(ck);
    return u;
}

static int same_weights(loom_graph *a, loom_graph *b) {
    size_t np = loom_graph_param_count(a), nb = loom_graph_buffer_count(a);
    return np == loom_graph_param_count(b) && nb == loom_graph_buffer_count(b) &&
           !memcmp(loom_graph_params(a), loom_graph_params(b), np * sizeof(float)) &&
           !memcmp(loom_graph_buffers(a), loom_graph_buffers(b), nb * sizeof(float));
}

int main(void) {
    loom_dataset *ds = mem_set();
    loom_augment *aug = loom_augment_parse("flip-h,rotate=10,brightness=0.2");
    CHECK(aug != NULL, "augment: %s", loom_error());
    char path[256];
    CHECK(t_mkdtemp(path, sizeof path, "resume") != NULL, "tmp dir");
    char file[300];
    snprintf(file, sizeof file, "%s/mid.safetensors", path);

    /* one run of 4 epochs */
    loom_graph *g1 = model();
    loom_trainer *t1 = trainer(g1, 2);
    loom_fit_state s1 = fresh();
    loom_epoch_metrics m1[4];
    CHECK(fit(t1, ds, &s1, aug, 4, NULL, m1) == 4, "4 epochs: %s", loom_error());
    loom_graph *g0 = model();
    CHECK(!same_weights(g0, g1), "training changed nothing");
    loom_graph_free(g0);

    /* 2 epochs, save, then everything rebuilt from the file, 2 more */
    loom_graph *g2 = model(), *g3 = NULL;
    loom_trainer *t2 = trainer(g2, 1);
    loom_fit_state s2 = fresh();
    CHECK(fit(t2, ds, &s2, aug, 2, NULL, NULL) == 2, "first 2 epochs");
    loom_trainer *t3 = reload(file, t2, &s2, 3, &g3);
    loom_trainer_free(t2);
    loom_graph_free(g2);
    CHECK(s2.epoch == 2 && s2.batch == 0, "state epoch %d batch %ld", s2.epoch, s2.batch);
    if (t3) {
        CHECK(fit(t3, ds, &s2, aug, 4, NULL, NULL) == 2, "last 2 epochs");
        CHECK(same_weights(g1, g3), "weights after 4 epochs differ from 2 + resume + 2");
        printf("resume at an epoch boundary: 4 epochs == 2 + checkpoint + 2, bit for bit\n");
    }
    loom_trainer_free(t3);
    loom_graph_free(g3);

    /* stopped after 9 batches (inside epoch 2: 6 batches an epoch), saved, resumed */
    loom_graph *g4 = model(), *g5 = NULL;
    loom_trainer *t4 = trainer(g4, 2);
    loom_fit_state s4 = fresh();
    stopper st = {.after = 9};
    CHECK(fit(t4, ds, &s4, aug, 4, &st, NULL) == 1 && s4.stopped && s4.epoch == 1 && s4.batch == 3,
          "stopped in epoch 2 after batch 3: ran, stopped %d, epoch %d, batch %ld", s4.stopped, s4.epoch, s4.batch);
    loom_trainer *t5 = reload(file, t4, &s4, 1, &g5);
    loom_trainer_free(t4);
    loom_graph_free(g4);
    CHECK(s4.epoch == 1 && s4.batch == 3 && s4.seen == 48, "saved mid-epoch: epoch %d batch %ld seen %ld", s4.epoch,
          s4.batch, s4.seen);
    if (t5) {
        loom_epoch_metrics m5[3];
        CHECK(fit(t5, ds, &s4, aug, 4, NULL, m5) == 3, "the rest: %s", loom_error());
        CHECK(same_weights(g1, g5), "weights after a mid-epoch stop and resume differ from the uninterrupted run's");
        CHECK(m5[0].epoch == 2 && m5[0].train_loss == m1[1].train_loss && m5[0].train_acc == m1[1].train_acc &&
                  m5[0].val_acc == m1[1].val_acc,
              "the resumed epoch's metrics equal the uninterrupted epoch's (loss %.9g vs %.9g)", m5[0].train_loss,
              m1[1].train_loss);
        printf("resume mid-epoch: stopped after batch 3 of epoch 2, resumed: bit for bit, same epoch metrics\n");
    }
    loom_trainer_free(t5);
    loom_graph_free(g5);
    t_rm_tree(path);
    loom_trainer_free(t1);
    loom_graph_free(g1);
    loom_augment_free(aug);
    loom_dataset_free(ds);
    TEST_END();
}
