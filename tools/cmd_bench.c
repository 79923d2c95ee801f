/* loom bench: thread scaling of training (and inference) on synthetic data,
 * with the step time broken down into forward, backward, reduction +
 * optimizer, and idle at barriers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common.h"
#include "loom/loom.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int threads;
    double train_ips, infer_ips, fwd, bwd, reduce, idle, data, step;
} bench_row;

static int parse_threads(const char *s, int *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024) return -1;
        out[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return n;
}

/* One pass of up to nb batches through a loader; images per second. */
static double pipeline_pass(loom_loader *l, int epoch, long nb, long *images) {
    loom_loader_start(l, epoch);
    loom_batch *b;
    long n = 0, k = 0;
    double t0 = now();
    int rc;
    while ((nb <= 0 || k < nb) && (rc = loom_loader_next(l, &b)) == 1) {
        n += b->n;
        k++;
        loom_loader_release(l, b);
    }
    double el = now() - t0;
    *images = n;
    return n / el;
}

static int bench_pipeline(loom_dataset *ds, const loom_augment *aug, const int *prod, int nprod, int B, int h,
                          int w, long nb, int csv) {
    if (csv) printf("producers,path,images_per_s,images_per_s_per_producer\n");
    else
        printf("pipeline: %s (%s, %zu images %dx%dx%d) -> batches of %d x %dx%dx%d, decode + augment + convert\n",
               ds->path, ds->format, ds->count, ds->c, ds->h, ds->w, B, ds->c, h, w);
    for (int r = 0; r < nprod; r++) {
        for (int cached = 0; cached < 2; cached++) {
            loom_loader_opts lo = {.batch = B, .producers = prod[r], .seed = 1, .shuffle = 1, .augment = aug,
                                   .out_h = h, .out_w = w, .cache = cached ? 1 : -1};
            loom_loader *l = loom_loader_new(ds, &lo);
            if (!l) {
                fprintf(stderr, "loom bench: %s\n", loom_error());
                return 1;
            }
            long n;
            if (cached) pipeline_pass(l, 0, 0, &n); /* fill the cache: decode once */
            double ips = pipeline_pass(l, 1, nb, &n);
            const char *path = cached ? "cached" : "decode";
            if (csv) printf("%d,%s,%.1f,%.1f\n", prod[r], path, ips, ips / prod[r]);
            else
                printf("  producers %d  %-7s %9.0f images/s  (%6.0f per producer, %ld images)\n", prod[r], path, ips,
                       ips / prod[r], n);
            loom_loader_free(l);
        }
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    cli_opt o[] = {CLI_OPT("model", "NAME", "zoo model", "lenet5"),
                   CLI_OPT("input", "CxHxW", "input shape", "1x28x28"),
                   CLI_OPT("classes", "N", "number of classes", "10"),
                   CLI_OPT("batch", "N", "mini-batch size", "64"),
                   CLI_OPT("threads", "LIST", "thread counts, comma-separated", "1,2"),
                   CLI_OPT("steps", "N", "timed training steps per thread count", "50"),
                   CLI_OPT("warmup", "N", "untimed steps first", "5"),
                   CLI_OPT("optim", "NAME", "optimizer", "sgd"),
                   CLI_OPT("deterministic", NULL, "fixed shard count (bit-identical across thread counts)", NULL),
                   CLI_OPT("csv", NULL, "print CSV: a header line, then one row per thread count", NULL),
                   CLI_OPT("data", "PATH", "train from this data set through the loader (default: synthetic tensors)", NULL),
                   CLI_OPT("producers", "LIST", "loader threads (with --data; a list with --pipeline)", "1"),
                   CLI_OPT("augment", "SPEC", "augmentation chain for the loader", NULL),
                   CLI_OPT("cache", NULL, "with --data: cache decoded images in memory", NULL),
                   CLI_OPT("pipeline", NULL, "measure the data pipeline alone (needs --data)", NULL),
                   CLI_OPT("batches", "N", "with --pipeline: batches timed per measurement (0 = one epoch)", "0"),
                   CLI_END};
    int pr = cli_parse("bench", "[options]", o, argc, argv, NULL, 0, NULL);
    if (pr) return pr > 0 ? 0 : 2;
    /* options that only mean something with others */
    static const char *const needs[][3] = {{"producers", "data", "loader threads feed training from --data"},
                                           {"augment", "data", "augmentation applies to images from --data"},
                                           {"cache", "data", "the cache holds images from --data"},
                                           {"batches", "pipeline", "it counts the batches of --pipeline"}};
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
        if (cli_given(o, needs[i][0]) && !cli_given(o, needs[i][1])) {
            fprintf(stderr, "loom bench: --%s needs --%s (%s)\n", needs[i][0], needs[i][1], needs[i][2]);
            return 2;
        }
    static const char *const model_only[] = {"model", "classes", "steps", "warmup", "optim", "deterministic",
                                             "threads", "cache"};
    for (size_t i = 0; cli_given(o, "pipeline") && i < sizeof model_only / sizeof *model_only; i++)
        if (cli_given(o, model_only[i])) {
            fprintf(stderr, "loom bench: --%s does not apply to --pipeline (it measures the data pipeline alone; "
                            "--producers lists its thread counts)\n", model_only[i]);
            return 2;
        }
    int c, h, w;
    char extra;
    if (sscanf(cli_get(o, "input"), "%dx%dx%d%c", &c, &h, &w, &extra) != 3 || c <= 0 || h <= 0 || w <= 0) {
        fprintf(stderr, "loom bench: --input: '%s' is not CxHxW (e.g. 3x64x64)\n", cli_get(o, "input"));
        return 2;
    }
    long K = 10, B = 64, steps = 50, warm = 5;
    if (cli_int("bench", o, "classes", 1, 100000, &K) || cli_int("bench", o, "batch", 1, 65536, &B) ||
        cli_int("bench", o, "steps", 1, 1000000, &steps) || cli_int("bench", o, "warmup", 0, 1000000, &warm))
        return 2;
    int th[64];
    int nth = parse_threads(cli_get(o, "threads"), th, 64);
    if (nth <= 0) {
        fprintf(stderr, "loom bench: --threads: '%s' is not a list like 1,2,4\n", cli_get(o, "threads"));
        return 2;
    }
    int kind = loom_optim_parse(cli_get(o, "optim"));
    if (kind < 0) {
        fprintf(stderr, "loom bench: --optim: unknown optimizer '%s'\n", cli_get(o, "optim"));
        return 2;
    }
    int csv = cli_get(o, "csv") != NULL;
    int prod[64];
    int nprod = parse_threads(cli_get(o, "producers"), prod, 64);
    long nbatches = 0;
    if (nprod <= 0 || cli_int("bench", o, "batches", 0, 100000000, &nbatches)) {
        if (nprod <= 0) fprintf(stderr, "loom bench: --producers: '%s' is not a list like 1,2\n", cli_get(o, "producers"));
        return 2;
    }
    loom_dataset *ds = NULL;
    loom_augment *aug = NULL;
    if (cli_get(o, "augment") && !(aug = loom_augment_parse(cli_get(o, "augment")))) {
        fprintf(stderr, "loom bench: --augment: %s\n", loom_error());
        return 2;
    }
    if (cli_get(o, "data")) {
        loom_dataset_opts dop = {.channels = c, .height = h, .width = w};
        if (!(ds = loom_dataset_open(cli_get(o, "data"), &dop))) {
            fprintf(stderr, "loom bench: %s\n", loom_error());
            loom_augment_free(aug);
            return 1;
        }
    }
    if (cli_get(o, "pipeline")) {
        int prc = ds ? bench_pipeline(ds, aug, prod, nprod, (int)B, h, w, nbatches, csv) : 2;
        if (!ds) fprintf(stderr, "loom bench: --pipeline needs --data PATH\n");
        loom_dataset_free(ds);
        loom_augment_free(aug);
        return prc;
    }
    size_t in = (size_t)c * h * w;
    float *x = malloc((size_t)B * in * sizeof(float));
    int32_t *y = malloc((size_t)B * sizeof(int32_t));
    float *out = malloc((size_t)B * K * sizeof(float));
    bench_row *rows = calloc((size_t)nth, sizeof *rows);
    if (!x || !y || !out || !rows) {
        fprintf(stderr, "loom bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)B * in; i++) x[i] = loom_rng_uniform(7, i);
    for (long i = 0; i < B; i++) y[i] = (int32_t)(i % K);
    int rc = 0;
    loom_graph *g0 = loom_zoo_build(cli_get(o, "model"), c, h, w, (int)K, 1);
    if (!g0) {
        fprintf(stderr, "loom bench: %s\n", loom_error());
        rc = 1;
        goto done;
    }
    double gflop = 0;
    for (int i = 0; i < loom_graph_count(g0); i++) gflop += loom_layer_flops(g0, i);
    if (!csv)
        printf("loom bench: %s, input %dx%dx%d, batch %ld, %ld steps (+%ld warm-up), %s, %.1f MFLOP/image forward\n",
               cli_get(o, "model"), c, h, w, B, steps, warm, loom_optim_name(kind), gflop / 1e6);
    loom_graph_free(g0);
    for (int r = 0; r < nth; r++) {
        loom_graph *g = loom_zoo_build(cli_get(o, "model"), c, h, w, (int)K, 1);
        loom_trainer_opts to = {.batch = (int)B, .threads = th[r], .deterministic = cli_get(o, "deterministic") != NULL,
                                .seed = 1, .optim = {.kind = kind, .lr = 1e-3f, .momentum = 0.9f}};
        loom_trainer *t = loom_trainer_new(g, &to);
        if (!t) {
            fprintf(stderr, "loom bench: %s\n", loom_error());
            loom_graph_free(g);
            rc = 1;
            goto done;
        }
        loom_loader *l = NULL;
        if (ds) {
            loom_loader_opts lo = {.batch = (int)B, .producers = prod[0], .seed = 1, .shuffle = 1, .augment = aug,
                                   .out_h = h, .out_w = w, .cache = cli_get(o, "cache") ? 1 : -1};
            if (!(l = loom_loader_new(ds, &lo))) {
                fprintf(stderr, "loom bench: %s\n", loom_error());
                loom_trainer_free(t);
                loom_graph_free(g);
                rc = 1;
                goto done;
            }
            loom_loader_start(l, 0);
        }
        int epoch = 0;
        double wait = 0, t0 = 0;
        for (long s = 0; s < warm + steps; s++) {
            if (s == warm) {
                loom_trainer_reset_timing(t);
                if (l) loom_loader_wait_seconds(l);
                t0 = now();
            }
            if (!l) {
                loom_trainer_step(t, x, y, (int)B, 1e-3f, NULL);
                continue;
            }
            loom_batch *b;
            int got;
            while ((got = loom_loader_next(l, &b)) == 0) loom_loader_start(l, ++epoch);
            if (got < 0) {
                fprintf(stderr, "loom bench: %s\n", loom_error());
                break;
            }
            loom_trainer_step(t, b->x, b->y, b->n, 1e-3f, NULL);
            loom_loader_release(l, b);
        }
        double el = now() - t0;
        if (l) {
            wait = loom_loader_wait_seconds(l);
            loom_loader_free(l);
        }
        const loom_step_timing *tm = loom_trainer_timing(t);
        bench_row *row = &rows[r];
        row->threads = th[r];
        row->train_ips = (double)steps * B / el;
        row->step = el / steps;
        row->fwd = tm->forward / steps;
        row->bwd = tm->backward / steps;
        row->reduce = tm->reduce / steps;
        row->idle = tm->idle / steps;
        row->data = wait / steps;
        long isteps = steps > 10 ? steps : 10;
        for (long s = 0; s < 2; s++) loom_trainer_eval(t, x, y, (int)B, NULL, NULL, out);
        t0 = now();
        for (long s = 0; s < isteps; s++) loom_trainer_eval(t, x, y, (int)B, NULL, NULL, out);
        row->infer_ips = (double)isteps * B / (now() - t0);
        loom_trainer_free(t);
        loom_graph_free(g);
    }
    if (csv) {
        printf("threads,images_per_s,speedup,efficiency,step_ms,forward_ms,backward_ms,reduce_opt_ms,data_wait_ms,idle_ms,infer_images_per_s\n");
        for (int r = 0; r < nth; r++) {
            bench_row *b = &rows[r];
            double sp = b->train_ips / rows[0].train_ips;
            printf("%d,%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.1f\n", b->threads, b->train_ips, sp,
                   sp * th[0] / b->threads, b->step * 1e3, b->fwd * 1e3, b->bwd * 1e3, b->reduce * 1e3, b->data * 1e3,
                   b->idle * 1e3, b->infer_ips);
        }
    } else {
        printf("%7s %12s %8s %6s %9s %9s %9s %10s %9s %9s %12s\n", "threads", "train img/s", "speedup", "effic",
               "step ms", "fwd ms", "bwd ms", "reduce ms", "data ms", "idle ms", "infer img/s");
        for (int r = 0; r < nth; r++) {
            bench_row *b = &rows[r];
            double sp = b->train_ips / rows[0].train_ips;
            printf("%7d %12.1f %7.2fx %5.0f%% %9.2f %9.2f %9.2f %10.2f %9.2f %9.2f %12.1f\n", b->threads,
                   b->train_ips, sp, 100 * sp * th[0] / b->threads, b->step * 1e3, b->fwd * 1e3, b->bwd * 1e3,
                   b->reduce * 1e3, b->data * 1e3, b->idle * 1e3, b->infer_ips);
        }
        printf("(speedup is relative to the first thread count; fwd/bwd are the slowest worker's, "
               "reduce includes the optimizer)\n");
        if (ds)
            for (int r = 0; r < nth; r++)
                printf("threads %d: waiting for data %.2f%% of step time (%d producer%s, %s)\n", rows[r].threads,
                       100 * rows[r].data / rows[r].step, prod[0], prod[0] > 1 ? "s" : "",
                       cli_get(o, "cache") ? "cached" : "decoding every image");
    }
done:
    loom_dataset_free(ds);
    loom_augment_free(aug);
    free(x);
    free(y);
    free(out);
    free(rows);
    return rc;
}
