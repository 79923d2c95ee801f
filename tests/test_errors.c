/* Errors have kinds a caller can switch on, and every failure sets both the
 * kind and a message: a missing file is LOOM_EIO, bad data LOOM_EFORMAT, a bad
 * argument LOOM_EINVAL, a well-formed file loom does not read
 * LOOM_EUNSUPPORTED, a diverging run LOOM_EDIVERGED; a producer thread's error
 * reaches the consumer with its kind; the constructors and parsers that
 * used to fail silently (pool, optimizer names) now say why. */
#include <math.h>
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

    /* graph-building mistakes are recorded, not ignored */
    loom_graph *m = loom_graph_new("m");
    loom_node in = loom_input(m, 1, 4, 4);
    CHECK(loom_dense(m, 57, 3) < 0 && strstr(loom_graph_error(m), "input 57 is not a node"), "a node out of range: %s",
          loom_graph_error(m));
    expect("finishing a graph with a recorded mistake", loom_graph_finish(m, 1) != LOOM_OK, LOOM_EINVAL, "input 57");
    loom_graph_free(m);
    m = loom_graph_new("m2");
    in = loom_input(m, 1, 4, 4);
    loom_dense(m, loom_flatten(m, in), 2);
    CHECK(loom_graph_finish(m, 1) == LOOM_OK, "m2");
    CHECK(loom_relu(m, 2) < 0 && strstr(loom_graph_error(m), "finished"), "a layer after finish: %s", loom_graph_error(m));
    expect("finishing twice", loom_graph_finish(m, 1) != LOOM_OK, LOOM_EINVAL, "already finished");
    expect("a trainer for a graph with a recorded mistake", !loom_trainer_new(m, &(loom_trainer_opts){.batch = 2}),
           LOOM_EINVAL, "finished");
    loom_graph_free(m);
    m = loom_graph_new("m3");
    loom_conv_shape cs = {.oc = 2, .kh = 3, .kw = 3, .sh = -1};
    CHECK(loom_conv2d_ex(m, loom_input(m, 1, 8, 8), &cs, 1) < 0 && strstr(loom_graph_error(m), "must not be negative"),
          "a negative stride: %s", loom_graph_error(m));
    loom_graph_free(m);

    /* trainer settings and calls that cannot work */
    expect("an unknown optimizer kind", !loom_trainer_new(g, &(loom_trainer_opts){.batch = 2, .optim = {.kind = 99}}),
           LOOM_EINVAL, "optimizer kind 99");
    expect("an unknown loss", !loom_trainer_new(g, &(loom_trainer_opts){.batch = 2, .loss = 77}), LOOM_EINVAL,
           "loss kind 77");
    expect("negative threads", !loom_trainer_new(g, &(loom_trainer_opts){.batch = 2, .threads = -3}), LOOM_EINVAL,
           "-3 threads");
    expect("beta1 of 2", !loom_trainer_new(g, &(loom_trainer_opts){.batch = 2, .optim = {.kind = LOOM_ADAM, .beta1 = 2}}),
           LOOM_EINVAL, "out of range");
    expect("no options", !loom_trainer_new(g, NULL), LOOM_EINVAL, "no options");
    loom_trainer *u = loom_trainer_new(g, &(loom_trainer_opts){.batch = 4, .threads = 1});
    int32_t y0[4] = {0, 1, 0, 1};
    expect("a NaN learning rate", loom_trainer_step(u, x, y0, 4, NAN, NULL) != LOOM_OK, LOOM_EINVAL, "learning rate");
    expect("a step without inputs", loom_trainer_step(u, NULL, y0, 4, 0.1f, NULL) != LOOM_OK, LOOM_EINVAL, "without inputs");
    float logits[8];
    CHECK(loom_trainer_eval(u, x, NULL, 4, NULL, NULL, logits) == LOOM_OK, "inference without labels: %s", loom_error());
    loom_exec *ex = loom_exec_new(g, 2);
    expect("forward of more than the planned batch", loom_exec_forward(ex, 3, 0, 0, 0) != LOOM_OK, LOOM_EINVAL,
           "planned for 1..2");
    loom_exec_free(ex);

    /* a model that ends in softmax: refused with cross-entropy, probabilities not applied twice */
    loom_graph *sm = loom_graph_new("sm");
    loom_softmax(sm, loom_dense(sm, loom_flatten(sm, loom_input(sm, 1, 4, 4)), 3));
    CHECK(loom_graph_finish(sm, 2) == LOOM_OK, "sm");
    expect("cross-entropy on a softmax output", !loom_trainer_new(sm, &(loom_trainer_opts){.batch = 2}), LOOM_EINVAL,
           "ends in a softmax layer");
    loom_exec *se = loom_exec_new(sm, 1);
    for (int i = 0; i < 16; i++) loom_exec_input(se)[i] = (float)i / 8;
    loom_exec_forward(se, 1, 0, 0, 0);
    float pr[3];
    loom_exec_probabilities(se, 1, pr, NULL);
    CHECK(fabs(pr[0] - loom_exec_output(se)[0]) < 1e-7 && fabs(pr[0] + pr[1] + pr[2] - 1) < 1e-6,
          "probabilities of a softmax model are its outputs");
    loom_exec_free(se);
    loom_graph_free(sm);

    /* loom_fit: a state without a schedule takes .lr; a cosine run is not trained past its end */
    loom_graph_init_params(g, 1); /* (the divergence above left its weights huge) */
    loom_fit_state st;
    loom_fit_state_init(&st, NULL);
    loom_fit_opts f1 = {.epochs = 1, .lr = 0.05f, .state = &st, .loader = {.producers = 1}};
    CHECK(loom_fit(u, ok, &f1, NULL) == 1 && st.sched.base_lr == 0.05f, "a state without a schedule uses .lr: %s",
          loom_error());
    loom_fit_state_init(&st, NULL);
    loom_fit_opts f0 = {.epochs = 1, .state = &st, .loader = {.producers = 1}};
    expect("no learning rate at all", loom_fit(u, ok, &f0, NULL) < 0, LOOM_EINVAL, "no learning rate");
    loom_schedule cos;
    loom_schedule_parse("cosine", 0.05f, 2, &cos);
    loom_fit_state_init(&st, &cos);
    loom_fit_opts f3 = {.epochs = 3, .state = &st, .loader = {.producers = 1}};
    expect("past the end of a cosine schedule", loom_fit(u, ok, &f3, NULL) < 0, LOOM_EINVAL, "extend it first");
    loom_dataset *nolab = mem(get_const);
    nolab->labeled = 0;
    loom_fit_opts fv = {.epochs = 1, .lr = 0.05f, .val = nolab, .loader = {.producers = 1}};
    expect("validation data without labels", loom_fit(u, ok, &fv, NULL) < 0, LOOM_EINVAL, "cannot be scored");
    loom_dataset_free(nolab);
    expect("a training checkpoint without a fit state",
           loom_train_save(t_path(dir, "x.safetensors"), u, NULL, NULL, 0) != LOOM_OK, LOOM_EINVAL, "fit state");
    expect("loom_fit without data", loom_fit(u, NULL, &f1, NULL) < 0, LOOM_EINVAL, "no training data");
    loom_trainer_free(u);
    loom_trainer_free(t);
    loom_graph_free(g);
    loom_dataset_free(bad);
    loom_dataset_free(ok);
    t_rm_tree(dir);
    TEST_END();
}
