/* loom eval: accuracy, per-class precision and recall, and the confusion
 * matrix of a checkpoint on a labelled data set.
 * loom predict: class and probability per image (CSV), or a Kaggle
 * submission.
 * Both check the data against what the model was trained on (classes,
 * channels, image size) and refuse a mismatch rather than report a number. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "runinfo.h"
#include "io/safetensors.h"
#include "loom/onnx.h"

/* A checkpoint with a trainer sized for batch, and the data opened to match it. */
typedef struct {
    loom_graph *g;
    model_side side;
    loom_trainer *t;
    loom_dataset *ds;
    loom_augment *aug;
    int K, skip_bad;
    int raw;          /* the outputs as they are (features), not probabilities */
    const char *cut;  /* the layer whose outputs are wanted (NULL: the model's) */
} session;

static void session_free(session *s) {
    loom_trainer_free(s->t);
    loom_graph_free(s->g);
    loom_dataset_free(s->ds);
    loom_augment_free(s->aug);
    model_side_free(&s->side);
}

/* Open ckpt and data for cmd. Returns 0, or an exit code after saying why. */
/* cut: the layer whose outputs are wanted (NULL: the model's); raw: those
 * outputs as they are, not probabilities. */
static int session_open(const char *cmd, session *s, const char *ckpt, const cli_opt *o, int classes_matter,
                        const char *cut, int raw) {
    memset(s, 0, sizeof *s);
    const char *data = cli_get(o, "data");
    long batch = 256, threads = 0;
    if (cli_int(cmd, o, "batch", 1, 65536, &batch) || cli_threads(cmd, o, &threads))
        return EXIT_USAGE;
    const char *split = cli_get(o, "split");
    if (split && strcmp(split, "train") && strcmp(split, "test")) {
        fprintf(stderr, "loom %s: --split: '%s' is not a split (train or test)\n", cmd, split);
        return EXIT_USAGE;
    }
    s->cut = cut, s->raw = raw;
    loom_checkpoint *ck = NULL;
    char aspec[512] = "";
    if (loom_onnx_sniff(ckpt)) { /* an ONNX model: its input as it is, pixels scaled to [0, 1] */
        if (!(s->g = loom_onnx_import(ckpt))) {
            fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
            return EXIT_FAILED;
        }
        model_side_of_graph(&s->side, s->g);
    } else if (!(ck = loom_checkpoint_open(ckpt)) || !(s->g = loom_checkpoint_graph(ck)) ||
               model_side_of_checkpoint(&s->side, ck, s->g)) {
        loom_checkpoint_close(ck);
        fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
        return EXIT_FAILED;
    }
    if (ck) s->side.from = ckpt;
    /* normalization as in training */
    if (ck && loom_checkpoint_meta(ck, "loom.run")) {
        run_info ri;
        if (runinfo_read(&ri, ck) == LOOM_OK) {
            const char *a = runinfo_opt(&ri, "augment");
            snprintf(aspec, sizeof aspec, "%s", a ? a : "");
            runinfo_free(&ri);
        }
    }
    loom_checkpoint_close(ck);
    if (!s->cut && drop_final_softmax(&s->g) < 0) { /* probabilities are computed below */
        fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
        session_free(s);
        return EXIT_FAILED;
    }
    if (s->cut) {
        loom_node x = loom_graph_find(s->g, s->cut);
        if (x < 1) {
            fprintf(stderr, "loom %s: --layer %s: the model has no layer of that name%s (loom summary %s lists them)\n",
                    cmd, s->cut, s->cut[strspn(s->cut, "0123456789")] ? "" : " or index past its input (1 and up)",
                    ckpt);
            session_free(s);
            return EXIT_USAGE;
        }
        loom_graph *p = loom_graph_new_prefix(s->g, x);
        if (!p) {
            fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
            session_free(s);
            return EXIT_FAILED;
        }
        loom_graph_free(s->g);
        s->g = p;
    }
    const loom_layer *in = loom_graph_layer(s->g, 0);
    s->K = (int)loom_graph_layer(s->g, loom_graph_output(s->g))->size;
    loom_dataset_opts dop = {.channels = in->c, .height = in->h, .width = in->w, .split = cli_get(o, "split")};
    if (!dop.split) dop.split = "test";
    int err = 0, resize = cli_get(o, "resize") != NULL;
    dop.same_size = !resize; /* images of another size than the first are an error unless --resize */
    if (!(s->ds = loom_dataset_open(data, &dop))) goto fail;
    if (classes_matter ? check_fits(data, s->ds, &s->side, resize, "--resize")
                       : check_shape(data, s->ds, &s->side, resize, "--resize"))
        goto fail;
    if (s->ds->get_f32 && aspec[0]) aspec[0] = 0; /* features are taken as they are */
    if ((s->aug = eval_chain(aspec, &err)), err) goto fail;
    if (cli_given(o, "split") && !s->ds->split[0]) {
        fprintf(stderr, "loom %s: --split: %s has no train/test splits (it is a %s data set)\n", cmd, data,
                s->ds->format);
        session_free(s);
        return EXIT_USAGE;
    }
    s->skip_bad = cli_get(o, "skip-bad") != NULL;
    loom_trainer_opts to = {.batch = (int)batch, .threads = (int)threads, .optim = {.kind = LOOM_SGD},
                            .loss = s->raw ? LOOM_LOSS_MSE : LOOM_LOSS_XENT}; /* features: any layer, softmax too */
    if (!(s->t = loom_trainer_new(s->g, &to))) goto fail;
    return 0;
fail:
    fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
    session_free(s);
    return EXIT_FAILED;
}

/* Run the model over ds in order; for each sample call back with its
 * probabilities. Returns 0, or -1 after printing the error. */
typedef void (*per_sample)(void *user, size_t i, const loom_batch *b, int j, const float *probs, int K);

static int run_all(const char *cmd, session *s, per_sample fn, void *user) {
    const loom_layer *in = loom_graph_layer(s->g, 0);
    int B = loom_trainer_batch(s->t), K = s->K;
    loom_loader_opts lo = {.batch = B, .producers = 1, .cache = -1, .augment = s->aug, .out_c = in->c,
                           .out_h = in->h, .out_w = in->w, .skip_bad = s->skip_bad};
    loom_loader *l = loom_loader_new(s->ds, &lo);
    float *out = malloc((size_t)B * K * sizeof(float));
    int32_t *none = calloc((size_t)B, sizeof(int32_t));
    if (!l || !out || !none) {
        fprintf(stderr, "loom %s: %s\n", cmd, l ? "out of memory" : loom_error());
        loom_loader_free(l);
        free(out);
        free(none);
        return -1;
    }
    loom_loader_start(l, 0);
    loom_batch *b;
    int rc;
    size_t at = 0;
    while ((rc = loom_loader_next(l, &b)) == 1) {
        /* unlabelled samples (label -1) are scored against 0: only the outputs are used */
        const int32_t *y = b->y;
        for (int j = 0; j < b->n; j++)
            if (b->y[j] < 0 || b->y[j] >= K) y = none;
        loom_trainer_eval(s->t, b->x, y, b->n, NULL, NULL, out);
        for (int j = 0; j < b->n && s->raw; j++) fn(user, at++, b, j, out + (size_t)j * K, K);
        for (int j = 0; j < b->n && !s->raw; j++) {
            float *p = out + (size_t)j * K, mx = p[0], sum = 0;
            for (int k = 1; k < K; k++) mx = p[k] > mx ? p[k] : mx;
            for (int k = 0; k < K; k++) sum += p[k] = expf(p[k] - mx);
            for (int k = 0; k < K; k++) p[k] /= sum;
            fn(user, at++, b, j, p, K);
        }
        loom_loader_release(l, b);
    }
    long skipped = loom_loader_skipped(l);
    loom_loader_free(l);
    free(out);
    free(none);
    if (rc >= 0 && skipped)
        fprintf(stderr, "loom %s: %ld unreadable image%s left out (--skip-bad; each named above)\n", cmd, skipped,
                plural(skipped));
    if (rc < 0) {
        fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
        return -1;
    }
    return 0;
}

static const char *class_name(const session *s, int k, char *buf, size_t cap) {
    return model_class_name(&s->side, k, buf, cap);
}

/* ---- eval ---------------------------------------------------------------------------------- */

typedef struct {
    long *conf; /* K x K: true row, predicted column */
    int K;
    double loss;
    long n;
} eval_acc;

static void eval_one(void *user, size_t i, const loom_batch *b, int j, const float *p, int K) {
    (void)i;
    eval_acc *a = user;
    int y = b->y[j], pred = loom_k_argmax(p, K);
    a->conf[(size_t)y * K + pred]++;
    a->loss += -log(p[y] > 1e-30f ? p[y] : 1e-30f);
    a->n++;
}

static void print_eval(const session *s, const char *ckpt, const eval_acc *a) {
    int K = a->K;
    long correct = 0;
    for (int k = 0; k < K; k++) correct += a->conf[(size_t)k * K + k];
    printf("%s on %s: %ld samples\naccuracy: %.2f%%  loss: %.4f\n\n", ckpt, s->ds->path, a->n, 100.0 * correct / a->n,
           a->loss / a->n);
    printf("%-20s %9s %9s %8s\n", "class", "precision", "recall", "support");
    char nb[64];
    for (int k = 0; k < K; k++) {
        long tp = a->conf[(size_t)k * K + k], pred = 0, sup = 0;
        for (int r = 0; r < K; r++) pred += a->conf[(size_t)r * K + k];
        for (int c = 0; c < K; c++) sup += a->conf[(size_t)k * K + c];
        /* a class never predicted has no precision, one with no samples no recall: "-", not 0.00% */
        char pv[16] = "        -", rv[16] = "        -";
        if (pred) snprintf(pv, sizeof pv, "%8.2f%%", 100.0 * tp / pred);
        if (sup) snprintf(rv, sizeof rv, "%8.2f%%", 100.0 * tp / sup);
        printf("%-20s %9s %9s %8ld\n", class_name(s, k, nb, sizeof nb), pv, rv, sup);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted class, by number)\n%6s", "");
    for (int c = 0; c < K; c++) printf(" %6d", c);
    printf("   class\n");
    for (int r = 0; r < K; r++) {
        printf("%6d", r);
        for (int c = 0; c < K; c++) printf(" %6ld", a->conf[(size_t)r * K + c]);
        printf("   %s\n", class_name(s, r, nb, sizeof nb));
    }
}

static const cli_opt eval_options[] = {
    CLI_OPT("data", "PATH", "labelled data (required); for data with splits, the test split unless --split", NULL),
    CLI_OPT("split", "NAME", "train or test, for data that has both (IDX and CIFAR folders, seg_train/seg_test)",
            NULL),
    CLI_OPT("resize", NULL, "resize and convert images that differ from the training data's size or channels", NULL),
    CLI_OPT("batch", "N", "batch size", "256"),
    CLI_OPT("threads", "N", "threads (0 = one per core)", "0"),
    CLI_OPT("skip-bad", NULL, "leave out unreadable images (each named) instead of stopping", NULL),
    CLI_END};

static int need_checkpoint(const char *cmd, int npos) {
    if (npos == 1) return 0;
    fprintf(stderr, "loom %s: a CHECKPOINT file is required (loom %s --help)\n", cmd, cmd);
    return EXIT_USAGE;
}

int cmd_eval(int argc, char **argv) {
    cli_opt o[sizeof eval_options / sizeof *eval_options];
    memcpy(o, eval_options, sizeof o);
    const char *ckpt = NULL;
    int npos = 0,
        pr = cli_parse("eval", "CHECKPOINT --data PATH [options]\n\nAccuracy, loss, per-class precision and recall, "
                               "and the confusion matrix of a checkpoint on labelled data.",
                       o, argc, argv, &ckpt, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    if (need_checkpoint("eval", npos)) return EXIT_USAGE;
    if (!cli_get(o, "data")) {
        fprintf(stderr, "loom eval: --data PATH is required (the labelled data to score %s on)\n", ckpt);
        return EXIT_USAGE;
    }
    session s;
    int rc = session_open("eval", &s, ckpt, o, 1, NULL, 0);
    if (rc) return rc;
    if (!s.ds->labeled) {
        fprintf(stderr, "loom eval: %s has no labels: nothing to score against (loom predict gives the classes)\n",
                cli_get(o, "data"));
        session_free(&s);
        return EXIT_FAILED;
    }
    int K = s.K;
    eval_acc a = {.conf = calloc((size_t)K * K, sizeof(long)), .K = K};
    rc = a.conf ? run_all("eval", &s, eval_one, &a) : -1;
    if (!rc) print_eval(&s, ckpt, &a);
    free(a.conf);
    session_free(&s);
    return rc ? EXIT_FAILED : EXIT_DONE;
}

/* ---- predict ------------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    int kaggle;
    session *s;
    int run_failed; /* run_all failed and has said why */
    size_t rows;    /* written (--skip-bad leaves unreadable images out) */
} pred_acc;

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *v) {
    if (!strpbrk(v, ",\"\r\n")) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void predict_one(void *user, size_t i, const loom_batch *b, int j, const float *p, int K) {
    pred_acc *a = user;
    int k = loom_k_argmax(p, K);
    a->rows++;
    if (a->kaggle) {
        fprintf(a->f, "%zu,%d\n", i + 1, k);
        return;
    }
    char where[4200], nb[64];
    loom_dataset_describe(a->s->ds, b->index[j], where, sizeof where);
    csv_field(a->f, where);
    fputc(',', a->f);
    csv_field(a->f, class_name(a->s, k, nb, sizeof nb));
    fprintf(a->f, ",%.4f\n", p[k]);
}

/* The whole prediction run, streamed to f (standard output, or the temporary
 * file of loom_atomic_write for --out). */
static int predict_all(FILE *f, void *user) {
    pred_acc *a = user;
    a->f = f;
    a->rows = 0;
    fputs(a->kaggle ? "ImageId,Label\n" : "file,class,probability\n", f);
    if (run_all("predict", a->s, predict_one, a)) {
        a->run_failed = 1;
        return LOOM_ERR;
    }
    return LOOM_OK;
}

static const cli_opt predict_options[] = {
    CLI_OPT("data", "PATH", "test.csv, a folder of images, or an image file (required)", NULL),
    CLI_OPT("out", "FILE", "output CSV, - for standard output (default: submission.csv for a Kaggle test.csv, else "
                           "standard output)", NULL),
    CLI_OPT("resize", NULL, "resize and convert images that differ from the training data's size or channels", NULL),
    CLI_OPT("batch", "N", "batch size", "256"),
    CLI_OPT("threads", "N", "threads (0 = one per core)", "0"),
    CLI_OPT("skip-bad", NULL, "leave out unreadable images (each named) instead of stopping", NULL),
    CLI_END};

int cmd_predict(int argc, char **argv) {
    cli_opt o[sizeof predict_options / sizeof *predict_options];
    memcpy(o, predict_options, sizeof o);
    const char *ckpt = NULL;
    int npos = 0, pr = cli_parse("predict",
                                 "CHECKPOINT --data PATH [--out FILE]\n\nFor a Kaggle Digit Recognizer test.csv: a "
                                 "submission 'ImageId,Label' (ImageId from 1, in row order).\nFor images: a CSV "
                                 "'file,class,probability', one row per image.",
                                 o, argc, argv, &ckpt, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    if (need_checkpoint("predict", npos)) return EXIT_USAGE;
    const char *data = cli_get(o, "data");
    if (!data) {
        fprintf(stderr, "loom predict: --data PATH is required\n");
        return EXIT_USAGE;
    }
    /* Kaggle's Intel layout given by its top folder: predict its unlabelled seg_pred */
    char pred[4200];
    struct stat st;
    snprintf(pred, sizeof pred, "%s/seg_pred", data);
    if (stat(pred, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "predicting %s (the unlabelled split of %s)\n", pred, data);
        data = pred;
        cli_find(o, "data")->value = pred;
    }
    const char *out = cli_get(o, "out");
    if (out && !strcmp(out, "-")) out = NULL; /* standard output */
    const char *inputs[] = {ckpt, data, NULL};
    int bad = out ? check_out_file("predict", out, inputs) : 0;
    if (bad) return bad;
    session s;
    int rc = session_open("predict", &s, ckpt, o, 0, NULL, 0);
    if (rc) return rc;
    int kaggle = !strcmp(s.ds->format, "csv");
    if (!out && kaggle && !cli_get(o, "out")) out = "submission.csv";
    pred_acc a = {.kaggle = kaggle, .s = &s};
    if (!out) {
        /* gathered first, so that a failure half way leaves no half table on standard output */
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        rc = mem ? predict_all(mem, &a) : loom_fail(LOOM_ENOMEM, "out of memory");
        if (mem) fclose(mem);
        if (!rc) fwrite(buf, 1, len, stdout);
        else if (!a.run_failed) fprintf(stderr, "loom predict: %s\n", loom_error());
        free(buf);
    } else if ((rc = loom_atomic_write(out, predict_all, &a)) != LOOM_OK) {
        if (!a.run_failed) fprintf(stderr, "loom predict: %s\n", loom_error());
    } else {
        fprintf(stderr, "wrote %zu prediction%s to %s", a.rows, a.rows == 1 ? "" : "s", out);
        if (a.rows < s.ds->count) fprintf(stderr, " (%zu unreadable left out)", s.ds->count - a.rows);
        fputc('\n', stderr);
    }
    session_free(&s);
    return rc ? EXIT_FAILED : EXIT_DONE;
}

/* ---- features ------------------------------------------------------------------------------- */

typedef struct {
    float *x, *y;
    size_t n, f, cap;
} feat_acc;

static void feature_one(void *user, size_t i, const loom_batch *b, int j, const float *p, int K) {
    feat_acc *a = user;
    if (i >= a->cap) return;
    memcpy(a->x + i * a->f, p, (size_t)K * sizeof(float));
    a->y[i] = (float)b->y[j];
    a->n = i + 1;
}

static const cli_opt features_options[] = {
    CLI_OPT("layer", "NAME", "the layer whose outputs are the features (a name loom summary shows, or an index)", NULL),
    CLI_OPT("data", "PATH", "the data to run (required); for data with splits, the train split unless --split", NULL),
    CLI_OPT("split", "NAME", "train or test, for data that has both", NULL),
    CLI_OPT("out", "FILE", "where to write them: a .safetensors file (features [N, F], labels [N])", NULL),
    CLI_OPT("resize", NULL, "resize and convert images that differ from the model's input", NULL),
    CLI_OPT("batch", "N", "batch size", "256"),
    CLI_OPT("threads", "N", "threads (0 = one per core)", "0"),
    CLI_OPT("skip-bad", NULL, "leave out unreadable images (each named) instead of stopping", NULL),
    CLI_END};

int cmd_features(int argc, char **argv) {
    cli_opt o[sizeof features_options / sizeof *features_options];
    memcpy(o, features_options, sizeof o);
    const char *model = NULL;
    int npos = 0, pr = cli_parse("features", "MODEL --layer NAME --data PATH --out feats.safetensors [options]\n\n"
                                             "A layer's outputs for every sample, with the labels: features for "
                                             "loom train --model logreg --data feats.safetensors.",
                                 o, argc, argv, &model, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    if (need_checkpoint("features", npos)) return EXIT_USAGE;
    const char *out = cli_get(o, "out");
    if (!cli_get(o, "layer") || !cli_get(o, "data") || !out) {
        fprintf(stderr, "loom features: --layer NAME, --data PATH and --out FILE are required\n");
        return EXIT_USAGE;
    }
    size_t ol = strlen(out);
    if (ol < 12 || strcmp(out + ol - 12, ".safetensors")) {
        fprintf(stderr, "loom features: --out %s: the features are written as a .safetensors file\n", out);
        return EXIT_USAGE;
    }
    const char *inputs[] = {model, cli_get(o, "data"), NULL};
    int bad = check_out_file("features", out, inputs);
    if (bad) return bad;
    sft_file prev; /* a features file may be written over; a model may not */
    if (access(out, F_OK) == 0 && sft_open(&prev, out) == LOOM_OK) {
        int is_model = sft_meta(&prev, "loom.graph") != NULL;
        sft_close(&prev);
        if (is_model) {
            fprintf(stderr, "loom features: --out %s is a checkpoint (a model): the features would replace it; choose "
                            "another file\n", out);
            return EXIT_USAGE;
        }
    }
    cli_opt *sp = cli_find(o, "split");
    if (!sp->given) sp->value = "train"; /* features of the training data by default (eval and predict: test) */
    session s;
    int rc = session_open("features", &s, model, o, 0, cli_get(o, "layer"), 1);
    if (rc) return rc;
    feat_acc a = {.f = (size_t)s.K, .cap = s.ds->count};
    a.x = malloc(a.cap * a.f * sizeof(float) + 1);
    a.y = malloc(a.cap * sizeof(float) + 1);
    if (!a.x || !a.y) {
        fprintf(stderr, "loom features: out of memory for %zu x %zu features (%.0f MB)\n", a.cap, a.f,
                a.cap * a.f * 4.0 / 1e6);
        rc = EXIT_FAILED;
    } else if (run_all("features", &s, feature_one, &a)) {
        rc = EXIT_FAILED;
    } else {
        json_t *meta = json_object(), *names = json_array();
        char buf[32];
        for (int k = 0; k < s.ds->num_classes; k++)
            json_array_append_new(names, json_string(loom_dataset_class_name(s.ds, k, buf, sizeof buf)));
        char *cls = json_dumps(names, JSON_COMPACT);
        char from[1200];
        const char *lname = loom_graph_layer(s.g, loom_graph_output(s.g))->name;
        snprintf(from, sizeof from, "%s, layer %s", model, lname);
        json_object_set_new(meta, "loom.classes", json_string(cls ? cls : "[]"));
        json_object_set_new(meta, "loom.features", json_string(from));
        sft_out t[2] = {{"features", 2, {(int64_t)a.n, (int64_t)a.f}, a.x, a.n * a.f},
                        {"labels", 1, {(int64_t)a.n}, a.y, a.n}};
        if (sft_write(out, meta, t, 2)) {
            fprintf(stderr, "loom features: %s\n", loom_error());
            rc = EXIT_FAILED;
        } else {
            printf("%s: %zu samples x %zu features of %s (layer %s), %d classes\n", out, a.n, a.f, model, lname,
                   s.ds->num_classes);
        }
        free(cls);
        json_decref(names);
        json_decref(meta);
    }
    free(a.x);
    free(a.y);
    session_free(&s);
    return rc;
}
