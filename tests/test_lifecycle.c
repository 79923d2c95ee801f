/* Lifecycle under load: 1,000 create/destroy cycles of a trainer (with a
 * step each) and of a loader (stopped mid-epoch, or after a producer error
 * mid-epoch) leave no thread, no file descriptor and (under ASan's leak
 * checker, or TSan's thread checks in scripts/test.sh) no memory behind. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "loom/loom.h"

enum { H = 6, W = 6, C = 1, N = 97 };

typedef struct {
    long bad;
} mem_impl;

static int mem_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    const mem_impl *m = ds->impl;
    if ((long)i == m->bad) return loom_set_error("sample %zu: unreadable (made so)", i);
    for (int k = 0; k < H * W * C; k++) hwc[k] = (uint8_t)(i * 13 + (size_t)k);
    *label = (int32_t)(i % 3);
    return LOOM_OK;
}

static void mem_destroy(loom_dataset *ds) { free(ds->impl); }

static loom_dataset *mem_set(long bad) {
    loom_dataset *ds = loom_dataset_alloc("mem", "mem", sizeof(mem_impl), mem_destroy);
    ((mem_impl *)ds->impl)->bad = bad;
    ds->count = N, ds->c = C, ds->h = H, ds->w = W, ds->num_classes = 3, ds->labeled = 1, ds->get = mem_get;
    return ds;
}

/* Entries of a /proc/self folder (threads: task; descriptors: fd). */
static int count(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static void quiet(const char *msg, void *user) { (void)msg, (void)user; }

int main(void) {
    loom_set_warning_handler(quiet, NULL);
    loom_graph *g = loom_graph_new("tiny");
    loom_node x = loom_input(g, C, H, W);
    x = loom_relu(g, loom_conv2d(g, x, 4, 3, 1, 1));
    loom_dense(g, loom_global_avgpool(g, x), 3);
    CHECK(loom_graph_finish(g, 1) == LOOM_OK, "graph: %s", loom_graph_error(g));
    float xs[8 * H * W * C];
    int32_t ys[8];
    for (int i = 0; i < 8 * H * W * C; i++) xs[i] = (float)(i % 17) / 17.0f;
    for (int i = 0; i < 8; i++) ys[i] = i % 3;
    loom_dataset *good = mem_set(-1), *broken = mem_set(40);
    /* warm up whatever a first call sets up once (oneDNN, OpenBLAS), then count */
    loom_trainer *t0 = loom_trainer_new(g, &(loom_trainer_opts){.batch = 8, .threads = 2, .optim = {.kind = LOOM_SGD}});
    loom_trainer_step(t0, xs, ys, 8, 0.01f, NULL);
    loom_trainer_free(t0);
    int threads0 = count("/proc/self/task"), fds0 = count("/proc/self/fd");
    int failed = 0, stopped = 0, errors = 0;
    int cycles = getenv("LOOM_LIFECYCLE_CYCLES") ? atoi(getenv("LOOM_LIFECYCLE_CYCLES")) : 1000; /* TSan: fewer */
    for (int k = 0; k < cycles; k++) {
        loom_trainer_opts o = {.batch = 8, .threads = 1 + k % 3, .deterministic = k % 2,
                               .optim = {.kind = k % 4 == 3 ? LOOM_ADAM : LOOM_SGD, .momentum = 0.9f}};
        loom_trainer *t = loom_trainer_new(g, &o);
        failed += !t || loom_trainer_step(t, xs, ys, 8, 0.01f, NULL) != LOOM_OK;
        loom_trainer_free(t);
        /* a loader stopped mid-epoch, or ended by a producer's error mid-epoch */
        loom_loader_opts lo = {.batch = 8, .producers = 1 + k % 3, .shuffle = 1, .seed = (uint64_t)k};
        loom_loader *l = loom_loader_new(k % 2 ? broken : good, &lo);
        if (!l || loom_loader_start(l, k % 5)) {
            failed++;
            loom_loader_free(l);
            continue;
        }
        loom_batch *b;
        int got, n = 0;
        while ((got = loom_loader_next(l, &b)) == 1 && n < 3 + k % 5) {
            loom_loader_release(l, b);
            n++;
        }
        if (got == 1) loom_loader_release(l, b), stopped++;
        if (got < 0) errors++;
        loom_loader_free(l);
    }
    CHECK(failed == 0, "%d of %d cycles failed: %s", failed, cycles, loom_error());
    int threads1 = count("/proc/self/task"), fds1 = count("/proc/self/fd");
    CHECK(threads1 == threads0, "threads: %d before the cycles, %d after", threads0, threads1);
    CHECK(fds1 == fds0, "file descriptors: %d before the cycles, %d after", fds0, fds1);
    printf("%d cycles of a trainer (1-3 threads, a step each) and a loader (1-3 producers; %d stopped mid-epoch, "
           "%d ended by a producer's error): threads %d -> %d, descriptors %d -> %d\n",
           cycles, stopped, errors, threads0, threads1, fds0, fds1);
    loom_dataset_free(good);
    loom_dataset_free(broken);
    loom_graph_free(g);
    TEST_END();
}
