/* Errors have kinds a caller can switch on, and every failure sets both the
 * kind and a message: a missing file is LOOM_EIO, bad data LOOM_EFORMAT, a bad
 * argument LOOM_EINVAL, a well-formed file loom does not read
 * LOOM_EUNSUPPORTED, a diverging run LOOM_EDIVERGED; a producer thread's error
 * reaches the consumer with its kind; the constructors and parsers that
 * used to fail silently (pool, optimizer names) now say why. */
#include <stdatomic.h>

#include "check.h"
#include "util.h"
#include "runtime/pool.h"
#include "loom/loom.h"

static char dir[256];

static void expect(const char *what, int failed, loom_error_kind_t kind, const char *needle) {
    CHECK(failed, "%s: should fail", what);
    CHECK(loom_error_kind() == kind, "%s: kind %s, expected %s (%s)", what, loom_error_kind_name(loom_error_kind()),
          loom_error_kind_name(kind), loom_error());
    CHECK(strstr(loom_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what, loom_error(), needle);
    printf("%-40s %-18s %s\n", what, loom_error_kind_name(loom_error_kind()), loom_error());
}

static int32_t label_of(const loom_dataset *ds, size_t i) {
    (void)ds;
    return (int32_t)(i % 2);
}

static int get_const(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    memset(hwc, (int)(i * 40 % 256), (size_t)ds->c * ds->h * ds->w);
    *label = label_of(ds, i);
    return LOOM_OK;
}

static int get_fails(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    (void)hwc;
    (void)label;
    return loom_fail(LOOM_EFORMAT, "%s: sample %zu is damaged", ds->path, i);
}

static loom_dataset *mem(int (*get)(loom_dataset *, size_t, uint8_t *, int32_t *)) {
    loom_dataset *ds = loom_dataset_alloc("mem", "mem", 0, NULL);
    ds->count = 8, ds->c = 1, ds->h = ds->w = 4, ds->num_classes = 2, ds->labeled = 1;
    ds->get = get;
    ds->label_of = label_of;
    return ds;
}

int main(void) {
    if (!t_mkdtemp(dir, sizeof dir, "errors")) return 2;
    loom_clear_error();
    CHECK(loom_error_kind() == LOOM_ENONE && !loom_error()[0], "cleared");

    expect("a missing data set", !loom_dataset_open(t_path(dir, "none"), NULL), LOOM_EIO, "no such file");
    expect("a missing checkpoint", !loom_checkpoint_load(t_path(dir, "none.safetensors")), LOOM_EIO, "cannot open");
    const char *csv = t_path(dir, "bad.csv");
    t_write_file(csv, "label,pixel0\n1,300\n", 19);
    expect("a CSV pixel out of range", !loom_dataset_open(csv, NULL), LOOM_EFORMAT, "out of range");
    const char *idx = t_path(dir, "floats");
    t_write_file(idx, "\x00\x00\x0d\x03\x00\x00\x00\x01", 8);
    expect("an IDX file of floats", !loom_dataset_open(idx, NULL), LOOM_EUNSUPPORTED, "element type 0x0d");
    loom_graph *g = loom_graph_new("e");
    loom_dense(g, loom_flatten(g, loom_input(g, 1, 4, 4)), 2);
    CHECK(loom_graph_finish(g, 1) == LOOM_OK, "graph");
    expect("a trainer with batch 0", !loom_trainer_new(g, &(loom_trainer_opts){.batch = 0}), LOOM_EINVAL,
           "batch size 0");
    expect("an unknown optimizer name", loom_optim_parse("sgdd") < 0, LOOM_EINVAL, "unknown optimizer 'sgdd'");
    expect("a pool of 100000 threads", !loom_pool_new(100000), LOOM_EINVAL, "at most 4096");
    expect("an unknown schedule", loom_schedule_parse("cosinus", 0.1f, 3, &(loom_schedule){0}) != LOOM_OK,
           LOOM_EINVAL, "unknown kind 'cosinus'");

    /* a label outside the model's classes is refused by the step, in every build */
    loom_trainer *t = loom_trainer_new(g, &(loom_trainer_opts){.batch = 4, .threads = 1});
    float x[64] = {0};
    int32_t y[4] = {0, 1, 2, 0};
    expect("a label beyond the classes", loom_trainer_step(t, x, y, 4, 0.1f, NULL) != LOOM_OK, LOOM_EINVAL,
           "has label 2, but the model has 2 classes");

    /* a producer's error reaches the consumer with its kind */
    loom_dataset *bad = mem(get_fails);
    loom_fit_opts fo = {.epochs = 1, .lr = 0.1f, .loader = {.producers = 2}};
    expect("a data set failing inside the loader", loom_fit(t, bad, &fo, NULL) < 0, LOOM_EFORMAT, "is damaged");

    /* divergence */
    loom_dataset *ok = mem(get_const);
    loom_fit_opts big = {.epochs = 3, .lr = 1e30f, .schedule = "const", .loader = {.producers = 1}};
    expect("a learning rate of 1e30", loom_fit(t, ok, &big, NULL) < 0, LOOM_EDIVERGED, "training has diverged");

    CHECK(!strcmp(loom_error_kind_name(LOOM_ENOMEM), "out of memory"), "kind names");
    loom_trainer_free(t);
    loom_graph_free(g);
    loom_dataset_free(bad);
    loom_dataset_free(ok);
    t_rm_tree(dir);
    TEST_END();
}
