/* The prefetching loader: every sample exactly once per epoch, the same
 * batches (bit for bit, augmentation included) for 1, 2 and 4 producers and
 * with or without the cache, a new order each epoch, a producer's error
 * reaching the caller with the sample's name (or skipped with a warning), a
 * clean shutdown mid-epoch; and loom_fit over it with early stopping. */
#include <stdint.h>

#include "check.h"
#include "loom/loom.h"

enum { N = 203, H = 9, W = 11, C = 3 };

/* An in-memory data set whose sample i is a pattern of i; sample `bad` fails. */
typedef struct {
    long bad;
} mem_impl;

static int mem_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    mem_impl *m = ds->impl;
    if ((long)i == m->bad) return loom_set_error("broken/sample-%zu.jpg: premature end of JPEG data", i);
    for (int k = 0; k < H * W * C; k++) hwc[k] = (uint8_t)((i * 31 + (size_t)k * 7) & 0xFF);
    *label = (int32_t)(i % 5);
    return LOOM_OK;
}

static void mem_destroy(loom_dataset *ds) { free(ds->impl); }

static loom_dataset *mem_set(long bad) {
    loom_dataset *ds = loom_dataset_alloc("mem", "mem", sizeof(mem_impl), mem_destroy);
    mem_impl *m = ds->impl;
    m->bad = bad;
    ds->count = N;
    ds->c = C;
    ds->h = H;
    ds->w = W;
    ds->num_classes = 5;
    ds->labeled = 1;
    ds->get = mem_get;
    return ds;
}

/* Run one epoch and return a hash of everything delivered (and check coverage). */
static uint64_t epoch_hash(loom_dataset *ds, const loom_augment *aug, int producers, int cache, int epoch,
                           int *covered_once) {
    loom_loader_opts o = {.batch = 16, .producers = producers, .seed = 77, .shuffle = 1, .augment = aug,
                          .out_h = 8, .out_w = 8, .cache = cache ? 1 : -1};
    loom_loader *l = loom_loader_new(ds, &o);
    int seen[N] = {0};
    uint64_t h = 1469598103934665603ull;
    loom_loader_start(l, epoch);
    loom_batch *b;
    long batches = 0;
    while (loom_loader_next(l, &b) == 1) {
        const unsigned char *p = (const unsigned char *)b->x;
        for (size_t k = 0; k < (size_t)b->n * C * 64 * sizeof(float); k++) h = (h ^ p[k]) * 1099511628211ull;
        for (int i = 0; i < b->n; i++) {
            seen[b->index[i]]++;
            h = (h ^ (uint64_t)b->y[i]) * 1099511628211ull;
            if (b->y[i] != (int32_t)(b->index[i] % 5)) *covered_once = 0;
        }
        batches++;
        loom_loader_release(l, b);
    }
    for (int i = 0; i < N; i++)
        if (seen[i] != 1) *covered_once = 0;
    if (batches != loom_loader_batches(l)) *covered_once = 0;
    loom_loader_free(l);
    return h;
}

static void test_identical_for_any_producers(void) {
    loom_dataset *ds = mem_set(-1);
    loom_augment *aug = loom_augment_parse("flip-h,rotate=20,brightness=0.3,contrast=0.3,crop=2");
    CHECK(aug != NULL, "chain parses: %s", loom_error());
    int ok = 1;
    uint64_t h1 = epoch_hash(ds, aug, 1, 0, 3, &ok);
    uint64_t h2 = epoch_hash(ds, aug, 2, 0, 3, &ok);
    uint64_t h4 = epoch_hash(ds, aug, 4, 0, 3, &ok);
    uint64_t hc = epoch_hash(ds, aug, 4, 1, 3, &ok);
    uint64_t he = epoch_hash(ds, aug, 2, 0, 4, &ok);
    CHECK(ok, "every sample exactly once per epoch, labels intact");
    CHECK(h1 == h2 && h2 == h4, "1/2/4 producers give different batches: %llx %llx %llx", (unsigned long long)h1,
          (unsigned long long)h2, (unsigned long long)h4);
    CHECK(hc == h1, "the cache changes the batches");
    CHECK(he != h1, "epoch 4 must differ from epoch 3 (order and augmentation)");
    printf("loader: 1/2/4 producers and cached: identical epoch (hash %016llx)\n", (unsigned long long)h1);
    loom_augment_free(aug);
    loom_dataset_free(ds);
}

static void test_errors(void) {
    loom_dataset *ds = mem_set(57);
    /* stop: the error reaches the consumer with the sample's name */
    loom_loader_opts o = {.batch = 16, .producers = 2, .seed = 1};
    loom_loader *l = loom_loader_new(ds, &o);
    loom_loader_start(l, 1);
    loom_batch *b;
    int rc;
    while ((rc = loom_loader_next(l, &b)) == 1) loom_loader_release(l, b);
    CHECK(rc == LOOM_ERR && strstr(loom_error(), "sample-57.jpg"), "error names the file: %d %s", rc, loom_error());
    loom_loader_free(l);
    /* skip: one sample fewer, the rest intact */
    o.skip_bad = 1;
    l = loom_loader_new(ds, &o);
    loom_loader_start(l, 1);
    long total = 0;
    while ((rc = loom_loader_next(l, &b)) == 1) {
        total += b->n;
        loom_loader_release(l, b);
    }
    CHECK(rc == 0 && total == N - 1 && loom_loader_skipped(l) == 1, "skip: rc %d, %ld samples, %ld skipped", rc,
          total, loom_loader_skipped(l));
    loom_loader_free(l);
    /* shutdown mid-epoch with batches in flight */
    o.skip_bad = 0;
    o.producers = 4;
    l = loom_loader_new(ds, &o);
    loom_loader_start(l, 2);
    CHECK(loom_loader_next(l, &b) == 1, "first batch");
    loom_loader_release(l, b);
    loom_loader_start(l, 3); /* abandon epoch 2 */
    CHECK(loom_loader_next(l, &b) == 1 && b->number == 0, "restart gives batch 0");
    loom_loader_release(l, b);
    loom_loader_free(l);
    loom_dataset_free(ds);
}

static int stop_after_two(const loom_epoch_metrics *m, const loom_fit_state *st, void *user) {
    (void)st;
    (*(int *)user)++;
    return m->epoch >= 2;
}

static void test_fit(void) {
    loom_dataset *ds = mem_set(-1);
    loom_graph *g = loom_graph_new("tiny");
    loom_node x = loom_input(g, C, H, W);
    x = loom_relu(g, loom_conv2d(g, x, 4, 3, 1, 1));
    loom_dense(g, loom_global_avgpool(g, x), 5);
    CHECK(loom_graph_finish(g, 1) == LOOM_OK, "tiny graph");
    loom_trainer *t = loom_trainer_new(g, &(loom_trainer_opts){.batch = 32, .threads = 2, .seed = 3,
                                                              .optim = {.kind = LOOM_ADAM}});
    int calls = 0;
    loom_epoch_metrics m[5];
    loom_fit_opts fo = {.epochs = 5, .lr = 1e-2f, .val = ds, .on_epoch = stop_after_two, .user = &calls,
                        .loader = {.producers = 2, .shuffle = 1, .seed = 3}};
    int ran = loom_fit(t, ds, &fo, m);
    CHECK(ran == 2 && calls == 2, "callback stop after 2 epochs: ran %d calls %d (%s)", ran, calls, loom_error());
    CHECK(m[0].val_acc >= 0 && m[0].val_acc <= 1 && m[1].epoch == 2 && m[0].images_per_s > 0, "metrics filled");
    /* early stopping: a learning rate of 1e-12 never improves, so it stops after 1 + patience epochs */
    loom_fit_opts fe = {.epochs = 5, .lr = 1e-12f, .early_stop = 2, .val = ds, .loader = {.producers = 1}};
    ran = loom_fit(t, ds, &fe, m);
    CHECK(ran == 3, "early stop after 3 epochs, ran %d", ran);
    loom_trainer_free(t);
    loom_graph_free(g);
    loom_dataset_free(ds);
}

static void test_split(void) {
    loom_dataset *ds = mem_set(-1), *tr, *va, *tr2, *va2;
    CHECK(loom_dataset_split(ds, 0.2, 9, 1, &tr, &va) == LOOM_OK, "stratified split: %s", loom_error());
    /* classes i % 5 over 203 samples: 41,41,41,40,40 -> round(0.2 * n) = 8 each */
    CHECK(va->count == 40 && tr->count == 163, "stratified sizes %zu / %zu", va->count, tr->count);
    int per[5] = {0}, seen[N] = {0};
    uint8_t px[H * W * C];
    int32_t lab;
    for (size_t i = 0; i < va->count; i++) {
        loom_dataset_get(va, i, px, &lab);
        per[lab]++;
    }
    for (int k = 0; k < 5; k++) CHECK(per[k] == 8, "class %d has %d validation samples", k, per[k]);
    /* disjoint and complete: every base sample lands in exactly one part */
    loom_dataset *parts[2] = {tr, va};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < parts[p]->count; i++) {
            char d[64];
            size_t base;
            loom_dataset_describe(parts[p], i, d, sizeof d);
            if (sscanf(d, "mem sample %zu", &base) == 1 && base < N) seen[base]++;
        }
    int once = 1;
    for (int i = 0; i < N; i++) once &= seen[i] == 1;
    CHECK(once, "train and validation are disjoint and cover the set");
    loom_dataset_split(ds, 0.2, 9, 1, &tr2, &va2);
    int same = 1;
    for (size_t i = 0; i < va->count; i++) {
        uint8_t a[H * W * C], b[H * W * C];
        int32_t la, lb;
        loom_dataset_get(va, i, a, &la);
        loom_dataset_get(va2, i, b, &lb);
        same &= !memcmp(a, b, sizeof a);
    }
    CHECK(same, "same seed, same split");
    loom_dataset_free(tr2);
    loom_dataset_free(va2);
    loom_dataset_free(tr);
    loom_dataset_free(va);
    CHECK(loom_dataset_split(ds, 0.2, 9, 0, &tr, &va) == LOOM_OK && va->count == 41 && tr->count == 162,
          "plain split sizes");
    loom_dataset_free(tr);
    loom_dataset_free(va);
    CHECK(loom_dataset_split(ds, 1.5, 9, 0, &tr, &va) == LOOM_ERR && strstr(loom_error(), "1.5"), "bad fraction: %s",
          loom_error());
    loom_dataset_free(ds);
}

int main(void) {
    test_split();
    test_identical_for_any_producers();
    test_errors();
    test_fit();
    TEST_END();
}
