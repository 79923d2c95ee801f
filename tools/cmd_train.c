/* loom train: train a zoo model on an IDX data set (Fashion-MNIST by default),
 * with per-epoch train/test loss, accuracy and speed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "loom/loom.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

typedef struct {
    loom_idx img, lab;
    int c, h, w;
    size_t count;
    int32_t *labels;
} idx_set;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int load_split(const char *dir, const char *split, idx_set *s, size_t limit) {
    char ip[4096], lp[4096];
    memset(s, 0, sizeof *s);
    if (loom_idx_find(dir, split, ip, lp, sizeof ip) || loom_idx_read_pair(ip, lp, &s->img, &s->lab))
        return -1;
    if (s->img.ndim != 3) {
        loom_set_error("%s: expected 3-d images (count, rows, cols), found %d dims", ip, s->img.ndim);
        return -1;
    }
    s->c = 1;
    s->h = (int)s->img.dims[1];
    s->w = (int)s->img.dims[2];
    s->count = s->img.count;
    if (limit && limit < s->count) s->count = limit;
    s->labels = malloc(s->count * sizeof(int32_t));
    if (!s->labels) return loom_set_error("out of memory");
    for (size_t i = 0; i < s->count; i++) s->labels[i] = s->lab.data[i];
    return 0;
}

static void free_split(idx_set *s) {
    loom_idx_free(&s->img);
    loom_idx_free(&s->lab);
    free(s->labels);
}

static int num_classes(const idx_set *s) {
    int k = 0;
    for (size_t i = 0; i < s->count; i++)
        if (s->labels[i] + 1 > k) k = s->labels[i] + 1;
    return k;
}

/* Gather samples idx[0..n) as float [n, C, H, W] in [0, 1], with their labels. */
static void gather(const idx_set *s, const uint32_t *idx, int n, float *x, int32_t *y) {
    size_t sz = s->img.item_size;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = s->img.data + (size_t)idx[i] * sz;
        float *dst = x + (size_t)i * sz;
        for (size_t k = 0; k < sz; k++) dst[k] = src[k] * (1.0f / 255.0f);
        y[i] = s->labels[idx[i]];
    }
}

static int evaluate(loom_trainer *t, const idx_set *s, int batch, float *x, int32_t *y,
                    uint32_t *idx, double *loss, double *acc) {
    double lsum = 0;
    long correct = 0;
    for (size_t at = 0; at < s->count; at += (size_t)batch) {
        int n = (int)(s->count - at < (size_t)batch ? s->count - at : (size_t)batch);
        for (int i = 0; i < n; i++) idx[i] = (uint32_t)(at + (size_t)i);
        gather(s, idx, n, x, y);
        double l;
        int c;
        if (loom_trainer_eval(t, x, y, n, &l, &c, NULL)) return -1;
        lsum += l;
        correct += c;
    }
    *loss = lsum / (double)s->count;
    *acc = (double)correct / (double)s->count;
    return 0;
}

int cmd_train(int argc, char **argv) {
    cli_opt o[] = {
        {"model", "NAME", "zoo model: mlp, lenet5, minivgg", "lenet5", },
        {"data", "DIR", "folder with the IDX files (train-*/t10k-*, plain or .gz)", DEFAULT_DATA},
        {"epochs", "N", "passes over the training set", "5"},
        {"batch", "N", "mini-batch size", "64"},
        {"optim", "NAME", "sgd, adam, adamw, rmsprop, adagrad, nadam", "sgd"},
        {"lr", "X", "learning rate", "0.05"},
        {"momentum", "X", "SGD/RMSprop momentum", "0.9"},
        {"nesterov", NULL, "Nesterov momentum (SGD)", NULL},
        {"weight-decay", "X", "L2 weight decay", "0"},
        {"schedule", "SPEC", "lr schedule: const, step:N[:G], multistep:E1,E2[:G], exp:G, cosine[:WARMUP], plateau[:P[:F]]", "cosine"},
        {"threads", "N", "worker threads (0 = all cores)", "0"},
        {"deterministic", NULL, "bit-identical results for any thread count", NULL},
        {"seed", "N", "seed for initialisation, shuffling and dropout", "1"},
        {"limit", "N", "use only the first N training samples (0 = all)", "0"},
        {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("train", "[options]", o, argc, argv);
    if (pr) return pr > 0 ? 0 : 2;
    long epochs = 5, batch = 64, threads = 0, seed = 1, limit = 0;
    double lr = 0.05, mom = 0.9, wd = 0;
    if (cli_int("train", o, "epochs", 1, 100000, &epochs) || cli_int("train", o, "batch", 1, 65536, &batch) ||
        cli_int("train", o, "threads", 0, 1024, &threads) || cli_int("train", o, "seed", 0, 0x7fffffffL, &seed) ||
        cli_int("train", o, "limit", 0, 0x7fffffffL, &limit) || cli_float("train", o, "lr", 0, 100, &lr) ||
        cli_float("train", o, "momentum", 0, 1, &mom) || cli_float("train", o, "weight-decay", 0, 10, &wd))
        return 2;
    int kind = loom_optim_parse(cli_get(o, "optim"));
    if (kind < 0) {
        fprintf(stderr, "loom train: --optim: unknown optimizer '%s' (sgd, adam, adamw, rmsprop, adagrad, nadam)\n",
                cli_get(o, "optim"));
        return 2;
    }
    loom_schedule sched;
    if (loom_schedule_parse(cli_get(o, "schedule"), (float)lr, (int)epochs, &sched)) {
        fprintf(stderr, "loom train: --schedule: %s\n", loom_error());
        return 2;
    }
    const char *dir = cli_get(o, "data");
    idx_set tr, te;
    if (load_split(dir, "train", &tr, (size_t)limit) || load_split(dir, "test", &te, 0)) {
        fprintf(stderr, "loom train: %s\n", loom_error());
        return 1;
    }
    int K = num_classes(&tr);
    loom_graph *g = loom_zoo_build(cli_get(o, "model"), tr.c, tr.h, tr.w, K, (uint64_t)seed);
    if (!g) {
        fprintf(stderr, "loom train: %s\n", loom_error());
        free_split(&tr);
        free_split(&te);
        return 1;
    }
    loom_trainer_opts to = {
        .batch = (int)batch, .threads = (int)threads, .deterministic = cli_get(o, "deterministic") != NULL,
        .seed = (uint64_t)seed, .loss = LOOM_LOSS_XENT,
        .optim = {.kind = kind, .lr = (float)lr, .momentum = (float)mom,
                  .nesterov = cli_get(o, "nesterov") != NULL, .weight_decay = (float)wd}};
    loom_trainer *t = loom_trainer_new(g, &to);
    int rc = 1;
    float *x = malloc((size_t)batch * tr.img.item_size * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    uint32_t *perm = malloc(tr.count * sizeof(uint32_t));
    uint32_t *idx = malloc((size_t)batch * sizeof(uint32_t));
    if (!t || !x || !y || !perm || !idx) {
        fprintf(stderr, "loom train: %s\n", t ? "out of memory" : loom_error());
        goto done;
    }
    printf("loom train: %s on %s: %zu train / %zu test images %dx%dx%d, %d classes\n",
           loom_graph_name(g), dir, tr.count, te.count, tr.c, tr.h, tr.w, K);
    printf("  %zu parameters; %s lr %g (%s) momentum %g%s, batch %ld, %d threads%s, seed %ld\n",
           loom_graph_param_count(g), loom_optim_name(kind), lr, cli_get(o, "schedule"), mom, to.optim.nesterov ? " (nesterov)" : "",
           batch, loom_trainer_threads(t), to.deterministic ? " (deterministic)" : "", seed);
    fflush(stdout);
    int tty = isatty(STDOUT_FILENO);
    double acc = 0, tl = 0, t_all = now();
    for (long ep = 1; ep <= epochs; ep++) {
        loom_rng_permutation(loom_rng_key((uint64_t)seed, LOOM_RNG_SHUFFLE, (uint64_t)ep, 0), perm,
                             (uint32_t)tr.count);
        double t0 = now(), lsum = 0, t_last = t0;
        long correct = 0, seen = 0;
        size_t nb = (tr.count + (size_t)batch - 1) / (size_t)batch;
        for (size_t b = 0; b < nb; b++) {
            size_t at = b * (size_t)batch;
            int n = (int)(tr.count - at < (size_t)batch ? tr.count - at : (size_t)batch);
            gather(&tr, perm + at, n, x, y);
            loom_step_result r;
            float lr_now = loom_schedule_lr(&sched, (int)ep - 1, (double)b / (double)nb);
            if (loom_trainer_step(t, x, y, n, lr_now, &r)) {
                fprintf(stderr, "loom train: %s\n", loom_error());
                goto done;
            }
            if (!isfinite(r.loss)) {
                fprintf(stderr, "loom train: epoch %ld step %zu: loss is %g; lower the learning rate\n", ep, b, r.loss);
                goto done;
            }
            lsum += r.loss * n;
            correct += r.correct;
            seen += n;
            double tn = now();
            if (tty && (tn - t_last > 0.2 || b + 1 == nb)) {
                double el = tn - t0, ips = seen / el;
                int w = 30, fill = (int)(w * (double)(b + 1) / (double)nb);
                printf("\repoch %ld/%ld [%.*s%*s] %3.0f%% loss %.4f acc %.2f%% %.0f img/s ETA %.0fs ",
                       ep, epochs, fill, "##############################", w - fill, "",
                       100.0 * (double)(b + 1) / (double)nb, lsum / seen, 100.0 * correct / seen, ips,
                       (double)(tr.count - (size_t)seen) / ips);
                fflush(stdout);
                t_last = tn;
            }
        }
        double el = now() - t0;
        if (tty) printf("\r%*s\r", 110, "");
        if (evaluate(t, &te, (int)batch, x, y, idx, &tl, &acc)) {
            fprintf(stderr, "loom train: %s\n", loom_error());
            goto done;
        }
        printf("epoch %ld/%ld: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | lr %.3g | %.1fs, %.0f img/s\n",
               ep, epochs, lsum / seen, 100.0 * correct / seen, tl, 100.0 * acc,
               loom_schedule_lr(&sched, (int)ep - 1, 0.0), el, seen / el);
        loom_schedule_epoch_end(&sched, tl);
        fflush(stdout);
    }
    printf("final test accuracy: %.2f%% (%s, %ld epochs, %.1fs)\n", 100.0 * acc, loom_graph_name(g), epochs,
           now() - t_all);
    rc = 0;
done:
    free(x);
    free(y);
    free(perm);
    free(idx);
    loom_trainer_free(t);
    loom_graph_free(g);
    free_split(&tr);
    free_split(&te);
    return rc;
}
