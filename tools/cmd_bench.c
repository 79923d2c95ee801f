/* loom bench: thread scaling of training (and inference), on synthetic
 * tensors or on a data set through the loader, with the step time broken
 * down into forward, backward, reduction + optimizer, data wait and idle at
 * barriers; or (--pipeline) the data pipeline alone.
 * As loom train: parse, settle, open the data, run, report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "kernels/parse.h"

#define MAX_COUNTS 16

typedef struct {
    int threads;
    double train_ips, infer_ips, fwd, bwd, reduce, idle, data, step;
} bench_row;

typedef struct {
    cli_opt *o;
    int c, h, w, csv;
    long classes, batch, steps, warm, nbatches, isteps;
    int th[MAX_COUNTS], nth, prod[MAX_COUNTS], nprod;
    int mach[MAX_COUNTS], nmach, bw[MAX_COUNTS], nbw;  /* --dist */
    double latency_us;
    loom_optim_kind optim;
    loom_dataset *ds;
    loom_augment *aug;
    bench_row rows[MAX_COUNTS];
} bench;

static const cli_opt bench_options[] = {
    CLI_OPT("model", "NAME", "zoo model", "lenet5"),
    CLI_OPT("input", "CxHxW", "input shape (default: the data's with --data, else 1x28x28)", NULL),
    CLI_OPT("classes", "N", "number of classes (default: the data's with --data, else 10)", NULL),
    CLI_OPT("batch", "N", "mini-batch size", "64"),
    CLI_OPT("threads", "LIST", "thread counts, comma-separated", "1,2"),
    CLI_OPT("steps", "N", "timed training steps per thread count", "50"),
    CLI_OPT("warmup", "N", "untimed steps first", "5"),
    CLI_OPT("infer-steps", "N", "timed inference batches per thread count (default: as --steps, at least 10)", NULL),
    CLI_OPT("optim", "NAME", "optimizer", "sgd"),
    CLI_OPT("deterministic", NULL, "fixed shard count (bit-identical across thread counts)", NULL),
    CLI_OPT("csv", NULL, "print CSV: a header line, then one row per thread count", NULL),
    CLI_OPT("layers", NULL, "also time each layer's forward and backward (one worker's shard at the first thread count)",
            NULL),
    CLI_OPT("data", "PATH", "train from this data set through the loader (default: synthetic tensors)", NULL),
    CLI_OPT("producers", "LIST", "loader threads (with --data; a list with --pipeline)", "1"),
    CLI_OPT("augment", "SPEC", "augmentation chain for the loader", NULL),
    CLI_OPT("cache", NULL, "with --data: cache decoded images in memory", NULL),
    CLI_OPT("pipeline", NULL, "measure the data pipeline alone (needs --data)", NULL),
    CLI_OPT("batches", "N", "with --pipeline: batches timed per measurement (0 = one epoch)", "0"),
    CLI_OPT("dist", NULL, "project training on several machines (ring allreduce) from this machine's step time and "
            "the model's gradient size", NULL),
    CLI_OPT("machines", "LIST", "with --dist: machine counts", "2,4,8,16,64"),
    CLI_OPT("bandwidth", "LIST", "with --dist: link speeds in Gbit/s", "10,100"),
    CLI_OPT("latency", "US", "with --dist: one message's latency in microseconds", "20"),
    CLI_END};

/* "1,2,4": whole numbers in 1..max, no empty items, none twice. */
static int parse_counts(const char *opt, const char *s, int *out, int max) {
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *end = p + strcspn(p, ",");
        char item[24];
        long v = 0;
        int dup = 0;
        snprintf(item, sizeof item, "%.*s", (int)(end - p < 23 ? end - p : 23), p);
        int bad = end - p > 22 || loom_parse_long(item, 1, max, &v);
        for (int i = 0; i < n; i++) dup |= out[i] == v;
        if (bad || dup || n == MAX_COUNTS) {
            fprintf(stderr, "loom bench: --%s: '%s' is not a list like 1,2,4 (each in 1..%d, at most %d, none twice)\n",
                    opt, s, max, MAX_COUNTS);
            return -1;
        }
        out[n++] = (int)v;
        if (!*end) return n;
        p = end + 1;
    }
}

/* ---- 1. options ----------------------------------------------------------------------------- */

static int parse(bench *b, int argc, char **argv) {
    int pr = cli_parse("bench", "[options]", b->o, argc, argv, NULL, 0, NULL);
    if (pr) return pr > 0 ? -1 : EXIT_USAGE;
    cli_opt *o = b->o;
    /* options that only mean something with others */
    static const char *const needs[][3] = {{"producers", "data", "loader threads feed training from --data"},
                                           {"augment", "data", "augmentation applies to images from --data"},
                                           {"cache", "data", "the cache holds images from --data"},
                                           {"batches", "pipeline", "it counts the batches of --pipeline"},
                                           {"pipeline", "data", "it measures reading --data"},
                                           {"machines", "dist", "it lists the machine counts of --dist"},
                                           {"bandwidth", "dist", "it sets the link speeds of --dist"},
                                           {"latency", "dist", "it sets the link latency of --dist"}};
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
        if (cli_given(o, needs[i][0]) && !cli_given(o, needs[i][1])) {
            fprintf(stderr, "loom bench: --%s needs --%s (%s)\n", needs[i][0], needs[i][1], needs[i][2]);
            return EXIT_USAGE;
        }
    static const char *const model_only[] = {"model", "classes", "steps", "warmup", "optim", "deterministic",
                                             "threads", "cache", "layers", "infer-steps"};
    for (size_t i = 0; cli_given(o, "pipeline") && i < sizeof model_only / sizeof *model_only; i++)
        if (cli_given(o, model_only[i])) {
            fprintf(stderr, "loom bench: --%s does not apply to --pipeline (it measures the data pipeline alone; "
                            "--producers lists its thread counts)\n",
                    model_only[i]);
            return EXIT_USAGE;
        }
    if (cli_given(o, "dist") && (cli_given(o, "pipeline") || cli_given(o, "data") || cli_given(o, "layers"))) {
        fprintf(stderr, "loom bench: --dist projects training steps on synthetic data; --%s does not go with it\n",
                cli_given(o, "pipeline") ? "pipeline" : cli_given(o, "data") ? "data" : "layers");
        return EXIT_USAGE;
    }
    int max_threads = (int)(4 * online_cores()); /* the bound cli_threads gives train and eval */
    b->batch = 64, b->steps = 50, b->warm = 5, b->isteps = 0;
    if (cli_int("bench", o, "batch", 1, 65536, &b->batch) || cli_int("bench", o, "steps", 1, 1000000, &b->steps) ||
        cli_int("bench", o, "warmup", 0, 1000000, &b->warm) ||
        cli_int("bench", o, "infer-steps", 1, 1000000, &b->isteps) ||
        cli_int("bench", o, "batches", 0, 100000000, &b->nbatches) ||
        (b->nth = parse_counts("threads", cli_get(o, "threads"), b->th, max_threads)) < 0 ||
        (b->nprod = parse_counts("producers", cli_get(o, "producers"), b->prod, 64)) < 0 ||
        (b->nmach = parse_counts("machines", cli_get(o, "machines"), b->mach, 100000)) < 0 ||
        (b->nbw = parse_counts("bandwidth", cli_get(o, "bandwidth"), b->bw, 100000)) < 0 ||
        cli_float("bench", o, "latency", 0, 1e6, &b->latency_us))
        return EXIT_USAGE;
    if (b->nprod > 1 && !cli_given(o, "pipeline")) {
        fprintf(stderr, "loom bench: --producers %s: a list is for --pipeline; training uses one producer count\n",
                cli_get(o, "producers"));
        return EXIT_USAGE;
    }
    if (cli_get(o, "input")) {
        char extra;
        if (sscanf(cli_get(o, "input"), "%dx%dx%d%c", &b->c, &b->h, &b->w, &extra) != 3 || b->c < 1 || b->h < 1 ||
            b->w < 1 || b->c > 3 || b->h > 4096 || b->w > 4096) {
            fprintf(stderr, "loom bench: --input: '%s' is not CxHxW with 1..3 channels and sides up to 4096\n",
                    cli_get(o, "input"));
            return EXIT_USAGE;
        }
    }
    int kind = loom_optim_parse(cli_get(o, "optim"));
    if (kind < 0) {
        fprintf(stderr, "loom bench: --optim: unknown optimizer '%s'\n", cli_get(o, "optim"));
        return EXIT_USAGE;
    }
    b->optim = (loom_optim_kind)kind;
    b->csv = cli_get(o, "csv") != NULL;
    if (cli_get(o, "augment") && !(b->aug = loom_augment_parse(cli_get(o, "augment")))) {
        fprintf(stderr, "loom bench: --augment: %s\n", loom_error());
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- 2. the data: the input shape and classes follow it unless given -------------------------- */

static int open_data(bench *b) {
    if (!b->c) b->c = 1, b->h = b->w = 28;
    b->classes = 10;
    if (!cli_get(b->o, "data")) return cli_int("bench", b->o, "classes", 1, 100000, &b->classes) ? EXIT_USAGE : 0;
    loom_dataset_opts dop = {.channels = cli_get(b->o, "input") ? b->c : 0};
    if (cli_get(b->o, "input")) dop.height = b->h, dop.width = b->w;
    if (!(b->ds = loom_dataset_open(cli_get(b->o, "data"), &dop))) {
        fprintf(stderr, "loom bench: %s\n", loom_error());
        return EXIT_FAILED;
    }
    if (!cli_get(b->o, "input")) b->c = b->ds->c, b->h = b->ds->h, b->w = b->ds->w;
    if (b->ds->c != b->c) {
        fprintf(stderr, "loom bench: --input %s: %s gives %d-channel images\n", cli_get(b->o, "input"),
                cli_get(b->o, "data"), b->ds->c);
        return EXIT_USAGE;
    }
    b->classes = b->ds->num_classes;
    long k = b->classes;
    if (cli_int("bench", b->o, "classes", 1, 100000, &k)) return EXIT_USAGE;
    if (k != b->classes) {
        fprintf(stderr, "loom bench: --classes %ld: %s has %ld classes (its labels would not fit the model)\n", k,
                cli_get(b->o, "data"), b->classes);
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- 3a. the pipeline alone ----------------------------------------------------------------- */

/* One pass of up to nb batches (0: an epoch); images per second, or -1 on a read error. */
static double pipeline_pass(loom_loader *l, int epoch, long nb, long *images) {
    loom_loader_start(l, epoch);
    loom_batch *bt;
    long n = 0, k = 0;
    double t0 = loom_seconds();
    int rc = 1;
    while ((nb <= 0 || k < nb) && (rc = loom_loader_next(l, &bt)) == 1) {
        n += bt->n;
        k++;
        loom_loader_release(l, bt);
    }
    *images = n;
    return rc < 0 ? -1 : (double)n / (loom_seconds() - t0);
}

static int run_pipeline(bench *b) {
    loom_dataset *ds = b->ds;
    long per_epoch = ((long)ds->count + b->batch - 1) / b->batch;
    if (b->csv) printf("producers,path,images_per_s,images_per_s_per_producer\n");
    else
        printf("pipeline: %s (%s, %zu images %dx%dx%d) -> batches of %ld x %dx%dx%d, decode + augment + convert%s\n",
               ds->path, ds->format, ds->count, ds->native_c, ds->native_h, ds->native_w, b->batch, b->c, b->h, b->w,
               b->nbatches > per_epoch ? " (--batches is more than an epoch: one epoch timed)" : "");
    for (int r = 0; r < b->nprod; r++) {
        for (int cached = 0; cached < 2; cached++) {
            loom_loader_opts lo = {.batch = (int)b->batch, .producers = b->prod[r], .seed = 1, .shuffle = 1,
                                   .augment = b->aug, .out_h = b->h, .out_w = b->w, .cache = cached ? 1 : -1};
            loom_loader *l = loom_loader_new(ds, &lo);
            long n = 0;
            double ips = l ? 0 : -1;
            if (l && cached) ips = pipeline_pass(l, 0, 0, &n); /* fill the cache: decode once */
            if (ips >= 0) ips = pipeline_pass(l, 1, b->nbatches, &n);
            loom_loader_free(l);
            if (ips < 0) {
                fprintf(stderr, "loom bench: %s\n", loom_error());
                return EXIT_FAILED;
            }
            const char *path = cached ? "cached" : "decode";
            if (b->csv) printf("%d,%s,%.1f,%.1f\n", b->prod[r], path, ips, ips / b->prod[r]);
            else
                printf("  producers %d  %-7s %9.0f images/s  (%6.0f per producer, %ld images)\n", b->prod[r], path, ips,
                       ips / b->prod[r], n);
        }
    }
    return 0;
}

/* ---- 3b. training and inference per thread count ------------------------------------------ */

typedef struct {
    float *x, *out;
    int32_t *y;
} synthetic;

#define CHUNKS 5

static double median(double *v, int n) {
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && v[b] < v[b - 1]; b--) {
            double t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

/* warm-up + timed steps with `threads` threads into row. 0, or an exit code after saying why. */
static int measure(bench *b, int threads, const synthetic *s, bench_row *row) {
    loom_graph *g = loom_zoo_build(cli_get(b->o, "model"), b->c, b->h, b->w, (int)b->classes, 1);
    loom_trainer_opts to = {.batch = (int)b->batch, .threads = threads,
                            .deterministic = cli_get(b->o, "deterministic") != NULL, .seed = 1,
                            .optim = {.kind = b->optim, .momentum = b->optim == LOOM_SGD ? 0.9f : 0}};
    loom_trainer *t = g ? loom_trainer_new(g, &to) : NULL;
    loom_loader *l = NULL;
    int rc = EXIT_FAILED, epoch = 0;
    if (!t) goto out;
    if (b->ds) {
        loom_loader_opts lo = {.batch = (int)b->batch, .producers = b->prod[0], .seed = 1, .shuffle = 1,
                               .augment = b->aug, .out_h = b->h, .out_w = b->w,
                               .cache = cli_get(b->o, "cache") ? 1 : -1};
        if (!(l = loom_loader_new(b->ds, &lo)) || loom_loader_start(l, 0)) goto out;
    }
    double t0 = loom_seconds(), chunk_t0 = t0, chunks[CHUNKS];
    int nchunks = 0;
    long per = b->steps >= CHUNKS ? b->steps / CHUNKS : 1, in_chunk = 0;
    for (long k = 0; k < b->warm + b->steps; k++) {
        if (k == b->warm) {
            loom_trainer_reset_timing(t);
            if (l) loom_loader_wait_seconds(l);
            t0 = chunk_t0 = loom_seconds();
        }
        if (!l) {
            if (loom_trainer_step(t, s->x, s->y, (int)b->batch, 1e-3f, NULL)) goto out;
        } else {
            loom_batch *bt;
            int got;
            while ((got = loom_loader_next(l, &bt)) == 0) loom_loader_start(l, ++epoch);
            if (got < 0) goto out;
            int st = loom_trainer_step(t, bt->x, bt->y, bt->n, 1e-3f, NULL);
            loom_loader_release(l, bt);
            if (st) goto out;
        }
        /* the images/s of every run of `per` steps; the median is reported (a noisy machine's
         * slow moments move it least), as ../shared/bench/torch_bench.py does for PyTorch */
        if (k >= b->warm && ++in_chunk == per && nchunks < CHUNKS) {
            double now = loom_seconds();
            chunks[nchunks++] = (double)per * b->batch / (now - chunk_t0);
            chunk_t0 = now, in_chunk = 0;
        }
    }
    double el = loom_seconds() - t0;
    const loom_step_timing *tm = loom_trainer_timing(t);
    *row = (bench_row){.threads = threads, .train_ips = median(chunks, nchunks), .step = el / b->steps,
                       .fwd = tm->forward / b->steps, .bwd = tm->backward / b->steps, .reduce = tm->reduce / b->steps,
                       .idle = tm->idle / b->steps, .data = l ? loom_loader_wait_seconds(l) / b->steps : 0};
    long isteps = b->isteps ? b->isteps : b->steps > 10 ? b->steps : 10;
    long iper = isteps >= CHUNKS ? isteps / CHUNKS : 1;
    for (long k = 0; k < 2; k++) loom_trainer_eval(t, s->x, s->y, (int)b->batch, NULL, NULL, s->out);
    nchunks = 0;
    for (long k = 0; k < isteps; k += iper) {
        double c0 = loom_seconds();
        for (long q = 0; q < iper; q++) loom_trainer_eval(t, s->x, s->y, (int)b->batch, NULL, NULL, s->out);
        if (nchunks < CHUNKS) chunks[nchunks++] = (double)iper * b->batch / (loom_seconds() - c0);
    }
    row->infer_ips = median(chunks, nchunks);
    rc = 0;
out:
    if (rc) fprintf(stderr, "loom bench: %s\n", loom_error());
    loom_loader_free(l);
    loom_trainer_free(t);
    loom_graph_free(g);
    return rc;
}

static void report(const bench *b) {
    const bench_row *r0 = &b->rows[0];
    if (b->csv) {
        printf("threads,images_per_s,speedup,efficiency,step_ms,forward_ms,backward_ms,reduce_opt_ms,data_wait_ms,"
               "idle_ms,infer_images_per_s\n");
        for (int r = 0; r < b->nth; r++) {
            const bench_row *x = &b->rows[r];
            double sp = x->train_ips / r0->train_ips;
            printf("%d,%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.1f\n", x->threads, x->train_ips, sp,
                   sp * b->th[0] / x->threads, x->step * 1e3, x->fwd * 1e3, x->bwd * 1e3, x->reduce * 1e3,
                   x->data * 1e3, x->idle * 1e3, x->infer_ips);
        }
        return;
    }
    printf("%7s %12s %8s %6s %9s %9s %9s %10s %9s %9s %12s\n", "threads", "train img/s", "speedup", "effic", "step ms",
           "fwd ms", "bwd ms", "reduce ms", "data ms", "idle ms", "infer img/s");
    for (int r = 0; r < b->nth; r++) {
        const bench_row *x = &b->rows[r];
        double sp = x->train_ips / r0->train_ips;
        printf("%7d %12.1f %7.2fx %5.0f%% %9.2f %9.2f %9.2f %10.2f %9.2f %9.2f %12.1f\n", x->threads, x->train_ips, sp,
               100 * sp * b->th[0] / x->threads, x->step * 1e3, x->fwd * 1e3, x->bwd * 1e3, x->reduce * 1e3,
               x->data * 1e3, x->idle * 1e3, x->infer_ips);
    }
    printf("(images/s: the median of %d runs of the timed steps; speedup is relative to the first thread count; "
           "fwd/bwd are the slowest worker's, reduce includes the optimizer)\n", CHUNKS);
    for (int r = 0; b->ds && r < b->nth; r++)
        printf("threads %d: waiting for data %.2f%% of step time (%d producer%s, %s)\n", b->rows[r].threads,
               100 * b->rows[r].data / b->rows[r].step, b->prod[0], plural(b->prod[0]),
               cli_get(b->o, "cache") ? "cached" : "decoding every image");
}

/* Training FLOPs of layer i's backward: weight and input gradients of
 * convolutions and dense layers (no input gradient for the data). */
static double backward_flops(loom_graph *g, int i) {
    const loom_layer *l = loom_graph_layer(g, i);
    if (l->op != LOOM_OP_CONV2D && l->op != LOOM_OP_DENSE) return 0;
    double f = loom_graph_layer_flops(g, i);
    return loom_graph_layer(g, l->in[0])->op == LOOM_OP_INPUT ? f : 2 * f;
}

/* Per layer: forward and backward time of one worker's shard, GFLOP/s and
 * share of the step. 0, or an exit code after saying why. */
static int profile_layers(bench *b, const synthetic *s) {
    int shard = (int)((b->batch + b->th[0] - 1) / b->th[0]);
    loom_graph *g = loom_zoo_build(cli_get(b->o, "model"), b->c, b->h, b->w, (int)b->classes, 1);
    loom_exec *e = g ? loom_exec_new(g, shard) : NULL;
    int K = (int)b->classes, rc = EXIT_FAILED;
    size_t in = (size_t)b->c * b->h * b->w;
    if (!e) goto out;
    for (long k = 0; k < b->warm + b->steps; k++) {
        if (k == b->warm && loom_exec_set_timing(e, 1)) goto out;
        memcpy(loom_exec_input(e), s->x, (size_t)shard * in * sizeof(float));
        if (loom_exec_forward(e, shard, 1, (uint64_t)k, 0)) goto out;
        loom_exec_zero_act_grad(e);
        loom_exec_zero_param_grad(e);
        loom_k_softmax_xent(loom_exec_output(e), s->y, loom_exec_output_grad(e), shard, K, 1.0f / shard);
        if (loom_exec_backward(e, shard)) goto out;
    }
    double total = 0, tf = 0, tb = 0, flops = 0;
    int n = loom_graph_count(g);
    for (int i = 1; i < n; i++) {
        double f, bw;
        loom_exec_layer_seconds(e, i, &f, &bw);
        total += f + bw;
    }
    printf("\nper layer, one worker's shard of %d (%s), mean of %ld steps:\n", shard, loom_exec_kernels(e), b->steps);
    printf("%-14s %-14s %-12s %-26s %9s %9s %8s %8s %6s\n", "layer", "op", "output", "kernel", "fwd ms", "bwd ms",
           "fwd GF/s", "bwd GF/s", "share");
    for (int i = 1; i < n; i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        double f, bw, ff = loom_graph_layer_flops(g, i) * shard, bf = backward_flops(g, i) * shard;
        loom_exec_layer_seconds(e, i, &f, &bw);
        f /= b->steps, bw /= b->steps;
        tf += f, tb += bw, flops += ff + bf;
        char shape[32], gf[16] = "-", gb[16] = "-";
        snprintf(shape, sizeof shape, l->h * l->w > 1 ? "%dx%dx%d" : "%d", l->c, l->h, l->w);
        /* a layer fused into the one before has no time of its own: no rate to show */
        int fused = !strcmp(loom_exec_layer_impl(e, i), "(fused)");
        if (ff > 0 && f > 0 && !fused) snprintf(gf, sizeof gf, "%.1f", ff / f / 1e9);
        if (bf > 0 && bw > 0 && !fused) snprintf(gb, sizeof gb, "%.1f", bf / bw / 1e9);
        printf("%-14.14s %-14s %-12s %-26.26s %9.3f %9.3f %8s %8s %5.1f%%\n", l->name, loom_op_name(l->op), shape,
               loom_exec_layer_impl(e, i), f * 1e3, bw * 1e3, gf, gb, 100 * (f + bw) * b->steps / total);
    }
    printf("%-14s %-14s %-12s %-26s %9.3f %9.3f %8s %8s %5.1f%%\n", "total", "", "", "", tf * 1e3, tb * 1e3, "", "",
           100.0);
    printf("training FLOPs at %.1f GFLOP/s over the layers' time (%.0f MB of buffers in this exec)\n",
           flops / (tf + tb) / 1e9, loom_exec_bytes(e) / 1e6);
    /* inference: the same shard, running statistics, layers fused where they can be */
    double t0 = 0, tinf = 0;
    for (long k = 0; k < b->warm + b->steps; k++) {
        if (k == b->warm) t0 = loom_seconds();
        if (loom_exec_forward(e, shard, 0, 0, 0)) goto out;
    }
    tinf = (loom_seconds() - t0) / b->steps;
    printf("inference forward of the shard: %.3f ms (training forward %.3f ms); %d convolution%s run with the batch "
           "norm, addition and ReLU after them fused in",
           tinf * 1e3, tf * 1e3, loom_exec_fusions(e), plural(loom_exec_fusions(e)));
    if (loom_exec_winograd(e)) printf(", %d of them by loom's Winograd F(2x2, 3x3)", loom_exec_winograd(e));
    printf("\n");
    rc = 0;
out:
    if (rc) fprintf(stderr, "loom bench: %s\n", loom_error());
    loom_exec_free(e);
    loom_graph_free(g);
    return rc;
}

static int run_training(bench *b) {
    size_t in = (size_t)b->c * b->h * b->w;
    synthetic s = {.x = malloc((size_t)b->batch * in * sizeof(float)), .y = malloc((size_t)b->batch * sizeof(int32_t)),
                   .out = malloc((size_t)b->batch * b->classes * sizeof(float))};
    loom_graph *g0 = loom_zoo_build(cli_get(b->o, "model"), b->c, b->h, b->w, (int)b->classes, 1);
    int rc = EXIT_FAILED;
    if (!g0) {
        fprintf(stderr, "loom bench: %s\n", loom_error());
        rc = EXIT_USAGE; /* an unknown model or an input it cannot take: the command line's */
        goto out;
    }
    if (!s.x || !s.y || !s.out) {
        fprintf(stderr, "loom bench: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < (size_t)b->batch * in; i++) s.x[i] = loom_rng_uniform(7, i);
    for (long i = 0; i < b->batch; i++) s.y[i] = (int32_t)(i % b->classes);
    double flops = 0;
    for (int i = 0; i < loom_graph_count(g0); i++) flops += loom_graph_layer_flops(g0, i);
    if (!b->csv)
        printf("loom bench: %s, input %dx%dx%d, batch %ld, %ld steps (+%ld warm-up), %s, %.1f MFLOP/image forward%s%s\n",
               cli_get(b->o, "model"), b->c, b->h, b->w, b->batch, b->steps, b->warm, loom_optim_name(b->optim),
               flops / 1e6, b->ds ? ", from " : "", b->ds ? b->ds->path : "");
    for (int r = 0; r < b->nth; r++)
        if ((rc = measure(b, b->th[r], &s, &b->rows[r]))) goto out;
    report(b);
    if (cli_get(b->o, "layers") && (rc = profile_layers(b, &s))) goto out;
    rc = 0;
out:
    loom_graph_free(g0);
    free(s.x);
    free(s.y);
    free(s.out);
    return rc;
}

/* ---- 3c. several machines, projected ------------------------------------------------------ */

/* The step time of this machine (the last thread count), the time to add two gradient-sized buffers
 * (a ring allreduce's arithmetic), and the projection for N machines with a ring allreduce. */
static int run_dist(bench *b) {
    size_t in = (size_t)b->c * b->h * b->w;
    synthetic s = {.x = malloc((size_t)b->batch * in * sizeof(float)), .y = malloc((size_t)b->batch * sizeof(int32_t)),
                   .out = malloc((size_t)b->batch * b->classes * sizeof(float))};
    loom_graph *g = loom_zoo_build(cli_get(b->o, "model"), b->c, b->h, b->w, (int)b->classes, 1);
    float *ga = NULL, *gb = NULL;
    int rc = EXIT_FAILED;
    if (!g) {
        fprintf(stderr, "loom bench: %s\n", loom_error());
        rc = EXIT_USAGE;
        goto out;
    }
    size_t P = loom_graph_param_count(g);
    ga = malloc(P * sizeof *ga), gb = malloc(P * sizeof *gb);
    if (!s.x || !s.y || !s.out || !ga || !gb) {
        fprintf(stderr, "loom bench: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < (size_t)b->batch * in; i++) s.x[i] = loom_rng_uniform(7, i);
    for (long i = 0; i < b->batch; i++) s.y[i] = (int32_t)(i % b->classes);
    int T = b->th[b->nth - 1];
    bench_row row;
    if ((rc = measure(b, T, &s, &row))) goto out;
    /* the reduction's arithmetic: a + b over the gradient, from memory (median of 15) */
    for (size_t i = 0; i < P; i++) ga[i] = (float)i, gb[i] = 1.0f;
    double sums[15];
    for (int k = 0; k < 15; k++) {
        double t0 = loom_seconds();
        for (size_t i = 0; i < P; i++) ga[i] += gb[i];
        sums[k] = loom_seconds() - t0;
    }
    double t_sum = median(sums, 15), bytes = 4.0 * (double)P, lat = b->latency_us * 1e-6;
    double t1 = row.step, t_bwd = row.bwd;
    printf("loom bench --dist: %s, input %dx%dx%d, batch %ld per machine, %d thread%s (this machine: %.0f images/s)\n",
           cli_get(b->o, "model"), b->c, b->h, b->w, b->batch, T, plural(T), row.train_ips);
    printf("measured here: step %.2f ms (forward %.2f, backward %.2f, reduce + optimizer %.2f), gradient %.2f MB "
           "(%zu floats), adding two gradients %.3f ms\n",
           t1 * 1e3, row.fwd * 1e3, t_bwd * 1e3, row.reduce * 1e3, bytes / 1e6, P, t_sum * 1e3);
    printf("model: ring allreduce of the gradient, N machines each training a batch of %ld:\n"
           "  t_comm(N) = 2(N-1)/N x bytes / bandwidth + 2(N-1) x latency + (N-1)/N x t_add    (latency %.0f us)\n"
           "  step(N) = step(1) + t_comm(N)            the allreduce after backward (deterministic mode, LOOM_OVERLAP=0)\n"
           "  step_overlap(N) = step(1) + max(0, t_comm(N) - t_backward)   fast mode: buckets of gradients go during\n"
           "                   backward, the last layers' first (a bound: the first layers' bucket goes after it)\n"
           "  efficiency = step(1) / step(N)  (the global batch is N x %ld; images/s = N x batch / step)\n",
           b->batch, b->latency_us, b->batch);
    printf("%9s %9s %11s %10s %8s %13s %14s\n", "machines", "Gbit/s", "t_comm ms", "step ms", "effic", "effic overlap",
           "images/s");
    for (int m = 0; m < b->nmach; m++)
        for (int k = 0; k < b->nbw; k++) {
            double N = b->mach[m], bw = b->bw[k] * 1e9 / 8;
            double tc = 2 * (N - 1) / N * bytes / bw + 2 * (N - 1) * lat + (N - 1) / N * t_sum;
            double st = t1 + tc, so = t1 + (tc > t_bwd ? tc - t_bwd : 0);
            printf("%9d %9d %11.3f %10.2f %7.1f%% %12.1f%% %14.0f\n", b->mach[m], b->bw[k], tc * 1e3, st * 1e3,
                   100 * t1 / st, 100 * t1 / so, N * b->batch / st);
        }
    rc = 0;
out:
    loom_graph_free(g);
    free(ga), free(gb);
    free(s.x), free(s.y), free(s.out);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    cli_opt o[sizeof bench_options / sizeof *bench_options];
    memcpy(o, bench_options, sizeof o);
    bench b;
    memset(&b, 0, sizeof b);
    b.o = o;
    int rc = parse(&b, argc, argv);
    if (!rc) rc = open_data(&b);
    if (!rc) rc = cli_get(o, "pipeline") ? run_pipeline(&b) : cli_get(o, "dist") ? run_dist(&b) : run_training(&b);
    loom_dataset_free(b.ds);
    loom_augment_free(b.aug);
    return rc < 0 ? EXIT_DONE : rc;
}
