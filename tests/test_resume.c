/* Resume is exact: in deterministic mode, 4 epochs in one run and 2 epochs,
 * a checkpoint, a fresh process state (graph, trainer and optimizer rebuilt
 * from the file) and 2 more epochs give bit-identical weights and batch-norm
 * buffers — with dropout, augmentation, Adam and a cosine schedule, and with
 * different thread counts before and after the checkpoint. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "util.h"
#include "loom/checkpoint.h"
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
                           .optim = {.kind = LOOM_ADAM, .lr = 3e-3f}};
    return loom_trainer_new(g, &o);
}

static int fit(loom_trainer *t, loom_dataset *ds, loom_schedule *s, loom_augment *aug, int first, int last) {
    loom_fit_opts fo = {.epochs = last, .first_epoch = first, .sched = s,
                        .loader = {.producers = 2, .seed = 5, .shuffle = 1, .augment = aug}};
    return loom_fit(t, ds, &fo, NULL);
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
    loom_schedule s1;
    loom_schedule_parse("cosine:1", 3e-3f, 4, &s1);
    CHECK(fit(t1, ds, &s1, aug, 1, 4) == 4, "4 epochs: %s", loom_error());

    /* 2 epochs, save, then everything rebuilt from the file */
    loom_graph *g2 = model();
    loom_trainer *t2 = trainer(g2, 1);
    loom_schedule s2;
    loom_schedule_parse("cosine:1", 3e-3f, 4, &s2);
    CHECK(fit(t2, ds, &s2, aug, 1, 2) == 2, "first 2 epochs");
    loom_train_state st = {.epoch = 2, .step = loom_trainer_steps(t2), .seed = 5, .epochs = 4, .sched = s2,
                           .optim = {.kind = LOOM_ADAM, .lr = 3e-3f}, .batch = 16, .deterministic = 1};
    CHECK(loom_checkpoint_save(file, g2, &st, loom_trainer_optim(t2)) == LOOM_OK, "save: %s", loom_error());
    loom_trainer_free(t2);
    loom_graph_free(g2);

    loom_train_state back;
    loom_graph *g3 = loom_checkpoint_load(file, &back);
    CHECK(g3 != NULL, "load: %s", loom_error());
    if (g3) {
        loom_trainer *t3 = trainer(g3, 3);
        CHECK(loom_checkpoint_load_optim(file, loom_trainer_optim(t3)) == LOOM_OK, "optim: %s", loom_error());
        loom_trainer_set_steps(t3, back.step);
        CHECK(back.epoch == 2 && back.epochs == 4, "state epoch %d of %d", back.epoch, back.epochs);
        CHECK(fit(t3, ds, &back.sched, aug, back.epoch + 1, back.epochs) == 2, "last 2 epochs");
        size_t np = loom_graph_param_count(g1), nb = loom_graph_buffer_count(g1);
        CHECK(np == loom_graph_param_count(g3) && nb == loom_graph_buffer_count(g3), "sizes");
        CHECK(!memcmp(loom_graph_params(g1), loom_graph_params(g3), np * sizeof(float)),
              "weights after 4 epochs differ from 2 + resume + 2");
        CHECK(!memcmp(loom_graph_buffers(g1), loom_graph_buffers(g3), nb * sizeof(float)), "BN buffers differ");
        /* and the weights did change */
        loom_graph *g0 = model();
        CHECK(memcmp(loom_graph_params(g0), loom_graph_params(g3), np * sizeof(float)), "training changed nothing");
        loom_graph_free(g0);
        printf("resume: 4 epochs == 2 epochs + checkpoint + 2 epochs, bit for bit (%zu parameters, %zu buffers)\n", np,
               nb);
        loom_trainer_free(t3);
        loom_graph_free(g3);
    }
    t_rm_tree(path);
    loom_trainer_free(t1);
    loom_graph_free(g1);
    loom_augment_free(aug);
    loom_dataset_free(ds);
    TEST_END();
}
