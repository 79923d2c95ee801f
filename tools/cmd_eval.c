/* loom eval: accuracy, per-class precision and recall, and the confusion
 * matrix of a checkpoint on a labelled data set.
 * loom predict: class and probability per image, or a Kaggle submission. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"

/* A checkpoint with a trainer sized for batch, and the data opened to match it. */
typedef struct {
    loom_graph *g;
    loom_train_state st;
    loom_trainer *t;
    loom_dataset *ds;
    loom_augment *aug;
    int K;
} session;

static void session_free(session *s) {
    loom_trainer_free(s->t);
    loom_graph_free(s->g);
    loom_dataset_free(s->ds);
    loom_augment_free(s->aug);
}

static int session_open(const char *cmd, session *s, const char *ckpt, const char *data, const char *split, int batch,
                        int threads) {
    memset(s, 0, sizeof *s);
    if (!(s->g = loom_checkpoint_load(ckpt, &s->st))) goto fail;
    const loom_layer *in = loom_graph_layer(s->g, 0);
    s->K = (int)loom_graph_layer(s->g, loom_graph_output(s->g))->size;
    loom_dataset_opts dop = {.channels = in->c, .height = in->h, .width = in->w, .split = split};
    if (!(s->ds = loom_dataset_open(data, &dop))) goto fail;
    if (s->ds->c != in->c) {
        loom_set_error("%s has %d channels, the model takes %d", data, s->ds->c, in->c);
        goto fail;
    }
    int err = 0;
    s->aug = eval_chain(s->st.augment, &err);
    if (err) goto fail;
    loom_trainer_opts to = {.batch = batch, .threads = threads, .optim = {.kind = LOOM_SGD}};
    if (!(s->t = loom_trainer_new(s->g, &to))) goto fail;
    return 0;
fail:
    fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
    session_free(s);
    return -1;
}

/* Run the model over ds in order; for each sample call back with its
 * probabilities. Returns 0, or -1 after printing the error. */
typedef void (*per_sample)(void *user, size_t i, const loom_batch *b, int j, const float *probs, int K);

static int run_all(const char *cmd, session *s, per_sample fn, void *user) {
    const loom_layer *in = loom_graph_layer(s->g, 0);
    int B = loom_trainer_batch(s->t), K = s->K;
    loom_loader_opts lo = {.batch = B, .producers = 1, .cache = -1, .augment = s->aug, .out_c = in->c,
                           .out_h = in->h, .out_w = in->w};
    loom_loader *l = loom_loader_new(s->ds, &lo);
    float *out = malloc((size_t)B * K * sizeof(float));
    int32_t *dummy = calloc((size_t)B, sizeof(int32_t));
    if (!l || !out || !dummy) {
        fprintf(stderr, "loom %s: %s\n", cmd, l ? "out of memory" : loom_error());
        loom_loader_free(l);
        free(out);
        free(dummy);
        return -1;
    }
    loom_loader_start(l, 0);
    loom_batch *b;
    int rc;
    size_t at = 0;
    while ((rc = loom_loader_next(l, &b)) == 1) {
        /* unlabelled samples have label -1: score against 0, only the outputs matter */
        const int32_t *y = b->y;
        for (int j = 0; j < b->n; j++)
            if (b->y[j] < 0 || b->y[j] >= K) y = dummy;
        loom_trainer_eval(s->t, b->x, y, b->n, NULL, NULL, out);
        for (int j = 0; j < b->n; j++) {
            float *p = out + (size_t)j * K, mx = p[0], sum = 0;
            for (int k = 1; k < K; k++) mx = p[k] > mx ? p[k] : mx;
            for (int k = 0; k < K; k++) sum += p[k] = expf(p[k] - mx);
            for (int k = 0; k < K; k++) p[k] /= sum;
            fn(user, at++, b, j, p, K);
        }
        loom_loader_release(l, b);
    }
    loom_loader_free(l);
    free(out);
    free(dummy);
    if (rc < 0) {
        fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
        return -1;
    }
    return 0;
}

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
    if (y < 0 || y >= K) return;
    a->conf[(size_t)y * K + pred]++;
    a->loss += -log(p[y] > 1e-30f ? p[y] : 1e-30f);
    a->n++;
}

int cmd_eval(int argc, char **argv) {
    if (argc < 1 || argv[0][0] == '-') {
        if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
            printf("usage: loom eval CHECKPOINT --data PATH [--split test] [--batch N] [--threads N]\n\n"
                   "Accuracy, loss, per-class precision and recall, and the confusion matrix of a checkpoint\n"
                   "on labelled data (for IDX/CIFAR folders the test split by default).\n");
            return 0;
        }
        fprintf(stderr, "loom eval: a CHECKPOINT file is required (loom eval --help)\n");
        return 2;
    }
    cli_opt o[] = {{"data", "PATH", "labelled data", "/usr/share/datasets/fashion-mnist"},
                   {"split", "NAME", "train or test (IDX, CIFAR)", "test"},
                   {"batch", "N", "batch size", "256"},
                   {"threads", "N", "threads (0 = all cores)", "0"},
                   {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("eval", "CHECKPOINT [options]", o, argc - 1, argv + 1);
    if (pr) return pr > 0 ? 0 : 2;
    long batch = 256, threads = 0;
    if (cli_int("eval", o, "batch", 1, 65536, &batch) || cli_int("eval", o, "threads", 0, 1024, &threads)) return 2;
    session s;
    if (session_open("eval", &s, argv[0], cli_get(o, "data"), cli_get(o, "split"), (int)batch, (int)threads)) return 1;
    if (!s.ds->labeled) {
        fprintf(stderr, "loom eval: %s has no labels; use loom predict\n", cli_get(o, "data"));
        session_free(&s);
        return 1;
    }
    int K = s.K;
    eval_acc a = {.conf = calloc((size_t)K * K, sizeof(long)), .K = K};
    int rc = run_all("eval", &s, eval_one, &a);
    if (!rc && a.n) {
        long correct = 0;
        for (int k = 0; k < K; k++) correct += a.conf[(size_t)k * K + k];
        printf("%s on %s: %ld samples\naccuracy: %.2f%%  loss: %.4f\n\n", argv[0], s.ds->path, a.n,
               100.0 * correct / a.n, a.loss / a.n);
        printf("%-20s %9s %9s %8s\n", "class", "precision", "recall", "support");
        char nb[64];
        for (int k = 0; k < K; k++) {
            long tp = a.conf[(size_t)k * K + k], pred = 0, sup = 0;
            for (int r = 0; r < K; r++) pred += a.conf[(size_t)r * K + k];
            for (int c = 0; c < K; c++) sup += a.conf[(size_t)k * K + c];
            printf("%-20s %8.2f%% %8.2f%% %8ld\n", class_name_at(s.st.class_names, k, nb, sizeof nb),
                   pred ? 100.0 * tp / pred : 0.0, sup ? 100.0 * tp / sup : 0.0, sup);
        }
        printf("\nconfusion matrix (rows: true class, columns: predicted)\n%6s", "");
        for (int c = 0; c < K; c++) printf(" %6d", c);
        printf("\n");
        for (int r = 0; r < K; r++) {
            printf("%6d", r);
            for (int c = 0; c < K; c++) printf(" %6ld", a.conf[(size_t)r * K + c]);
            printf("   %s\n", class_name_at(s.st.class_names, r, nb, sizeof nb));
        }
    }
    free(a.conf);
    session_free(&s);
    return rc ? 1 : 0;
}

typedef struct {
    FILE *f;
    int kaggle;
    session *s;
    int run_failed; /* run_all failed and has said why */
} pred_acc;

static void predict_one(void *user, size_t i, const loom_batch *b, int j, const float *p, int K) {
    pred_acc *a = user;
    int k = loom_k_argmax(p, K);
    if (a->kaggle) {
        fprintf(a->f, "%zu,%d\n", i + 1, k);
        return;
    }
    char where[4200], nb[64];
    loom_dataset_describe(a->s->ds, b->index[j], where, sizeof where);
    fprintf(a->f, "%s\t%s\t%.4f\n", where, class_name_at(a->s->st.class_names, k, nb, sizeof nb), p[k]);
}

/* The whole prediction run, streamed to f (standard output, or the temporary
 * file of loom_atomic_write for --out). */
static int predict_all(FILE *f, void *user) {
    pred_acc *a = user;
    a->f = f;
    if (a->kaggle) fprintf(f, "ImageId,Label\n");
    if (run_all("predict", a->s, predict_one, a)) {
        a->run_failed = 1;
        return LOOM_ERR;
    }
    return LOOM_OK;
}

int cmd_predict(int argc, char **argv) {
    if (argc < 1 || argv[0][0] == '-') {
        if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
            printf("usage: loom predict CHECKPOINT --data PATH [--out FILE]\n\n"
                   "For a Kaggle Digit Recognizer test.csv: writes a submission 'ImageId,Label' (ImageId from 1,\n"
                   "in row order) to --out (default submission.csv). For a folder or a single image: one line\n"
                   "per image: file, class name, probability (to --out or standard output).\n");
            return 0;
        }
        fprintf(stderr, "loom predict: a CHECKPOINT file is required (loom predict --help)\n");
        return 2;
    }
    cli_opt o[] = {{"data", "PATH", "test.csv, a folder of images, or an image file", NULL},
                   {"out", "FILE", "output file (default: submission.csv for a CSV, else standard output)", NULL},
                   {"batch", "N", "batch size", "256"},
                   {"threads", "N", "threads (0 = all cores)", "0"},
                   {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("predict", "CHECKPOINT --data PATH [options]", o, argc - 1, argv + 1);
    if (pr) return pr > 0 ? 0 : 2;
    const char *data = cli_get(o, "data");
    if (!data) {
        fprintf(stderr, "loom predict: --data PATH is required\n");
        return 2;
    }
    long batch = 256, threads = 0;
    if (cli_int("predict", o, "batch", 1, 65536, &batch) || cli_int("predict", o, "threads", 0, 1024, &threads))
        return 2;
    session s;
    if (session_open("predict", &s, argv[0], data, "test", (int)batch, (int)threads)) return 1;
    int kaggle = !strcmp(s.ds->format, "csv");
    const char *out = cli_get(o, "out");
    if (!out && kaggle) out = "submission.csv";
    pred_acc a = {.kaggle = kaggle, .s = &s};
    int rc;
    if (!out) {
        rc = predict_all(stdout, &a);
    } else if ((rc = loom_atomic_write(out, predict_all, &a)) != LOOM_OK) {
        if (!a.run_failed) fprintf(stderr, "loom predict: %s\n", loom_error());
    } else {
        fprintf(stderr, "wrote %zu predictions to %s\n", s.ds->count, out);
    }
    session_free(&s);
    return rc ? 1 : 0;
}
