/* loom train: a zoo model (or a checkpoint) trained on a data set whose format
 * is recognised from the path, with validation, a schedule, augmentation,
 * checkpoints (last and best), resume, a metrics CSV and a plot of the curves. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define MAX_EPOCHS 10000

typedef struct {
    loom_graph *g;
    loom_trainer *t;
    loom_train_state st;
    loom_schedule *sched;
    const char *ckpt_dir, *log_path, *plot_path;
    loom_epoch_metrics *hist;
    int nhist;
    int rising;           /* epochs in a row with val loss up and train loss down */
    int failed;
} train_ctx;

static int log_rows(FILE *f, void *ctx) {
    const train_ctx *c = ctx;
    fprintf(f, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s\n");
    for (int i = 0; i < c->nhist; i++) {
        const loom_epoch_metrics *m = &c->hist[i];
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.1f,%.3f\n", m->epoch, m->train_loss, m->train_acc, m->val_loss,
                m->val_acc, m->lr, m->seconds, m->images_per_s, m->data_wait);
    }
    return LOOM_OK; /* a failed fprintf shows in ferror(), which loom_atomic_write checks */
}

/* Curves through gnuplot: the metrics CSV in, a PNG (or SVG) out. */
static int plot(const train_ctx *c) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        return loom_set_error("--plot needs gnuplot (apt-get install gnuplot-nox)");
    int svg = strlen(c->plot_path) > 4 && !strcmp(c->plot_path + strlen(c->plot_path) - 4, ".svg");
    FILE *p = popen("gnuplot 2>&1", "w");
    if (!p) return loom_set_error("cannot run gnuplot: %s", strerror(errno));
    fprintf(p, "set terminal %s size 1100,450 font ',10'\nset output '%s'\n", svg ? "svg" : "pngcairo",
            c->plot_path);
    fprintf(p, "set datafile separator ','\nset key autotitle columnhead\nset multiplot layout 1,2 title '%s'\n",
            loom_graph_name(c->g));
    fprintf(p, "set title 'loss'\nset xlabel 'epoch'\nset grid\nset xrange [%g:%g]\n",
            c->hist[0].epoch - 0.5, c->hist[c->nhist - 1].epoch + 0.5);
    int val = c->nhist && c->hist[0].val_loss >= 0;
    fprintf(p, "plot '%s' using 1:2 with linespoints lw 2 title 'train'%s\n", c->log_path,
            val ? ", '' using 1:4 with linespoints lw 2 title 'validation'" : "");
    fprintf(p, "set title 'accuracy (%%)'\nset key bottom right\n");
    fprintf(p, "plot '%s' using 1:($3*100) with linespoints lw 2 title 'train'%s\n", c->log_path,
            val ? ", '' using 1:($5*100) with linespoints lw 2 title 'validation'" : "");
    fprintf(p, "unset multiplot\n");
    if (pclose(p) != 0) return loom_set_error("gnuplot failed to draw %s", c->plot_path);
    return LOOM_OK;
}

static int save(train_ctx *c, const char *name, const loom_epoch_metrics *m) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", c->ckpt_dir, name);
    c->st.epoch = m->epoch;
    c->st.step = loom_trainer_steps(c->t);
    c->st.sched = *c->sched;
    return loom_checkpoint_save(path, c->g, &c->st, loom_trainer_optim(c->t));
}

static int on_epoch(const loom_epoch_metrics *m, void *user) {
    train_ctx *c = user;
    c->hist[c->nhist++] = *m;
    if (c->nhist >= 2) {
        const loom_epoch_metrics *p = &c->hist[c->nhist - 2];
        if (m->val_loss >= 0 && m->val_loss > p->val_loss && m->train_loss < p->train_loss) c->rising++;
        else c->rising = 0;
        if (c->rising >= 3)
            printf("warning: validation loss has risen for %d epochs while training loss fell: overfitting "
                   "(more augmentation, dropout or weight decay, or --early-stop, may help)\n",
                   c->rising);
    }
    if (c->ckpt_dir) {
        int best = m->val_acc > c->st.best_metric;
        if (best) c->st.best_metric = m->val_acc;
        if (save(c, "last", m) || (best && save(c, "best", m))) {
            fprintf(stderr, "loom train: checkpoint: %s\n", loom_error());
            c->failed = 1;
            return 1;
        }
    }
    /* The whole log is rewritten each epoch; atomically, so a crash keeps the last one. */
    if (c->log_path && loom_atomic_write(c->log_path, log_rows, c)) {
        fprintf(stderr, "loom train: --log: %s\n", loom_error());
        c->failed = 1;
        return 1;
    }
    if (c->plot_path && plot(c)) fprintf(stderr, "loom train: --plot: %s\n", loom_error());
    return 0;
}

int cmd_train(int argc, char **argv) {
    cli_opt o[] = {
        {"data", "PATH", "training data: IDX folder/file, .csv, folder of class folders, CIFAR batches", DEFAULT_DATA},
        {"model", "NAME", "zoo model (loom summary --list); default lenet5 up to 32 px, else minivgg", NULL},
        {"init", "FILE", "start from this checkpoint's architecture and weights (fine-tuning)", NULL},
        {"resume", "FILE", "continue the training saved in this checkpoint", NULL},
        {"val", "PATH", "validation data (default: the test split of IDX/CIFAR data, else --val-split)", NULL},
        {"val-split", "F", "hold out this fraction of the training data for validation (stratified)", NULL},
        {"epochs", "N", "total epochs (default 5; when resuming, the saved plan)", NULL},
        {"stop-after", "N", "stop after N epochs of this run, as if interrupted (resume later)", NULL},
        {"batch", "N", "mini-batch size", "64"},
        {"threads", "N", "compute threads (0 = all cores)", "0"},
        {"loader-threads", "N", "data loading threads", "1"},
        {"optim", "NAME", "sgd, adam, adamw, rmsprop, adagrad, nadam", "sgd"},
        {"lr", "X", "learning rate", "0.05"},
        {"momentum", "X", "SGD/RMSprop momentum", "0.9"},
        {"nesterov", NULL, "Nesterov momentum (SGD)", NULL},
        {"weight-decay", "X", "L2 weight decay (decoupled for adamw)", "0"},
        {"clip", "X", "clip gradients to this global L2 norm (0 = off)", "0"},
        {"schedule", "SPEC", "const, step:N[:G], multistep:E1,E2[:G], exp:G, cosine[:WARMUP], plateau[:P[:F]]", "cosine"},
        {"augment", "SPEC", "e.g. flip-h,rotate=15,brightness=0.2,contrast=0.2,crop=4,normalize=0.5/0.25", NULL},
        {"image-size", "HxW", "resize images to this (default: the data's size)", NULL},
        {"channels", "N", "1 or 3 (image folders)", "3"},
        {"seed", "N", "seed for initialisation, shuffling, dropout and augmentation", "1"},
        {"deterministic", NULL, "bit-identical results for any thread count", NULL},
        {"checkpoint", "DIR", "save DIR/last.safetensors every epoch and DIR/best.safetensors", NULL},
        {"log", "FILE", "write per-epoch metrics as CSV", NULL},
        {"plot", "FILE", "draw loss and accuracy curves (.png or .svg, with gnuplot)", NULL},
        {"early-stop", "N", "stop after N epochs without a better validation accuracy", "0"},
        {"skip-bad", NULL, "skip unreadable images with a warning instead of stopping", NULL},
        {"quiet", NULL, "no progress bar", NULL},
        {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("train", "[options]   (loom train --data DIR alone trains something reasonable)", o, argc, argv);
    if (pr) return pr > 0 ? 0 : 2;
    long epochs = 5, stop_after = 0, batch = 64, threads = 0, lthreads = 1, seed = 1, channels = 3, early = 0;
    double lr = 0.05, mom = 0.9, wd = 0, clip = 0, vsplit = 0;
    if (cli_int("train", o, "epochs", 1, MAX_EPOCHS, &epochs) || cli_int("train", o, "stop-after", 1, MAX_EPOCHS, &stop_after) || cli_int("train", o, "batch", 1, 65536, &batch) ||
        cli_int("train", o, "threads", 0, 1024, &threads) || cli_int("train", o, "loader-threads", 1, 256, &lthreads) ||
        cli_int("train", o, "seed", 0, 0x7fffffffL, &seed) || cli_int("train", o, "channels", 1, 3, &channels) ||
        cli_int("train", o, "early-stop", 0, MAX_EPOCHS, &early) || cli_float("train", o, "lr", 0, 100, &lr) ||
        cli_float("train", o, "momentum", 0, 1, &mom) || cli_float("train", o, "weight-decay", 0, 10, &wd) ||
        cli_float("train", o, "clip", 0, 1e9, &clip) || cli_float("train", o, "val-split", 0, 0.99, &vsplit))
        return 2;
    int kind = loom_optim_parse(cli_get(o, "optim"));
    if (kind < 0) {
        fprintf(stderr, "loom train: --optim: unknown optimizer '%s' (sgd, adam, adamw, rmsprop, adagrad, nadam)\n",
                cli_get(o, "optim"));
        return 2;
    }
    int ih = 0, iw = 0;
    if (cli_get(o, "image-size") && parse_hw(cli_get(o, "image-size"), &ih, &iw)) {
        fprintf(stderr, "loom train: --image-size: '%s' is not HxW (e.g. 64x64)\n", cli_get(o, "image-size"));
        return 2;
    }
    const char *resume = cli_get(o, "resume"), *init = cli_get(o, "init");
    if (resume && init) {
        fprintf(stderr, "loom train: --resume and --init exclude each other\n");
        return 2;
    }
    loom_augment *aug = NULL, *eaug = NULL;
    const char *aspec = cli_get(o, "augment");

    train_ctx c = {.ckpt_dir = cli_get(o, "checkpoint"), .log_path = cli_get(o, "log"), .plot_path = cli_get(o, "plot")};
    c.st.best_metric = -1;
    loom_dataset *train = NULL, *val = NULL, *base = NULL;
    loom_schedule sched;
    int rc = 1, val_is_test = 0;

    /* the model first when it comes from a file: it fixes the input shape */
    loom_train_state saved = {0};
    if (resume || init) {
        c.g = loom_checkpoint_load(resume ? resume : init, &saved);
        if (!c.g) {
            fprintf(stderr, "loom train: %s\n", loom_error());
            goto out;
        }
        const loom_layer *in = loom_graph_layer(c.g, 0);
        if (!ih) ih = in->h, iw = in->w;
        channels = in->c;
    }
    if (resume && !aspec && saved.augment[0]) aspec = saved.augment;
    int eerr = 0;
    if (aspec && !(aug = loom_augment_parse(aspec))) {
        fprintf(stderr, "loom train: --augment: %s\n", loom_error());
        goto out;
    }
    eaug = eval_chain(aspec, &eerr);
    if (eerr) {
        fprintf(stderr, "loom train: --augment: %s\n", loom_error());
        goto out;
    }
    loom_dataset_opts dop = {.channels = (int)channels, .height = ih, .width = iw, .split = "train"};
    const char *dpath = cli_get(o, "data");
    if (!(base = loom_dataset_open(dpath, &dop))) {
        fprintf(stderr, "loom train: %s\n", loom_error());
        goto out;
    }
    if (!base->labeled) {
        fprintf(stderr, "loom train: %s has no labels (a test set?)\n", dpath);
        goto out;
    }
    if (!ih) ih = base->h, iw = base->w;
    if (cli_get(o, "val")) {
        loom_dataset_opts vop = dop;
        vop.split = "test";
        vop.height = ih;
        vop.width = iw;
        if (!(val = loom_dataset_open(cli_get(o, "val"), &vop))) {
            fprintf(stderr, "loom train: --val: %s\n", loom_error());
            goto out;
        }
        train = base;
    } else if (vsplit > 0 || (strcmp(base->format, "idx") && strcmp(base->format, "cifar10"))) {
        double f = vsplit > 0 ? vsplit : 0.1;
        if (loom_dataset_split(base, f, (uint64_t)seed, 1, &train, &val)) {
            fprintf(stderr, "loom train: %s\n", loom_error());
            goto out;
        }
        printf("validation: %.0f%% of %s held out (stratified, seed %ld)\n", f * 100, dpath, seed);
    } else {
        loom_dataset_opts vop = dop;
        vop.split = "test";
        if (!(val = loom_dataset_open(dpath, &vop))) {
            fprintf(stderr, "loom train: validation (test split of %s): %s\n", dpath, loom_error());
            goto out;
        }
        train = base;
        val_is_test = 1;
    }
    int K = base->num_classes;
    if (!c.g) {
        const char *model = cli_get(o, "model");
        if (!model) model = (ih <= 32 && iw <= 32) ? "lenet5" : "minivgg";
        if (!(c.g = loom_zoo_build(model, base->c, ih, iw, K, (uint64_t)seed))) {
            fprintf(stderr, "loom train: %s\n", loom_error());
            goto out;
        }
        snprintf(c.st.model, sizeof c.st.model, "%s", model);
    } else {
        snprintf(c.st.model, sizeof c.st.model, "%s", saved.model);
    }
    const loom_layer *out_l = loom_graph_layer(c.g, loom_graph_output(c.g));
    if ((int)out_l->size != K) {
        fprintf(stderr, "loom train: the model has %zu outputs but %s has %d classes\n", out_l->size, dpath, K);
        goto out;
    }
    if (resume) {
        /* the plan comes from the checkpoint; explicit options may extend epochs */
        kind = saved.optim.kind;
        batch = saved.batch ? saved.batch : batch;
        seed = (long)saved.seed;
        if (!cli_get(o, "epochs")) epochs = saved.epochs;
    }
    loom_trainer_opts to = {.batch = (int)batch, .threads = (int)threads, .seed = (uint64_t)seed,
                            .deterministic = cli_get(o, "deterministic") != NULL || (resume && saved.deterministic),
                            .loss = LOOM_LOSS_XENT, .clip_norm = (float)clip,
                            .optim = {.kind = kind, .lr = (float)lr, .momentum = (float)mom,
                                      .nesterov = cli_get(o, "nesterov") != NULL, .weight_decay = (float)wd}};
    if (resume) to.optim = saved.optim;
    if (!(c.t = loom_trainer_new(c.g, &to))) {
        fprintf(stderr, "loom train: %s\n", loom_error());
        goto out;
    }
    if (resume) {
        sched = saved.sched;
        if (loom_checkpoint_load_optim(resume, loom_trainer_optim(c.t))) {
            fprintf(stderr, "loom train: --resume: %s\n", loom_error());
            goto out;
        }
        loom_trainer_set_steps(c.t, saved.step);
        c.st = saved;
        if (saved.epoch >= epochs) {
            printf("%s: already trained %d of %ld epochs; nothing to do (raise --epochs)\n", resume, saved.epoch, epochs);
            rc = 0;
            goto out;
        }
    } else if (loom_schedule_parse(cli_get(o, "schedule"), (float)lr, (int)epochs, &sched)) {
        fprintf(stderr, "loom train: --schedule: %s\n", loom_error());
        goto out;
    }
    sched.epochs = sched.epochs ? sched.epochs : (int)epochs;
    c.sched = &sched;
    c.st.epochs = (int)epochs;
    c.st.seed = (uint64_t)seed;
    c.st.optim = to.optim;
    c.st.batch = (int)batch;
    c.st.deterministic = to.deterministic;
    c.st.input_c = base->c, c.st.input_h = ih, c.st.input_w = iw, c.st.classes = K;
    snprintf(c.st.augment, sizeof c.st.augment, "%s", aspec ? aspec : "");
    class_names_of(base, c.st.class_names, sizeof c.st.class_names);
    if (c.ckpt_dir && mkdirs(c.ckpt_dir)) {
        fprintf(stderr, "loom train: --checkpoint: cannot create %s: %s\n", c.ckpt_dir, strerror(errno));
        goto out;
    }
    c.hist = calloc((size_t)epochs + 1, sizeof *c.hist);
    if (!c.hist) goto out;

    printf("loom train: %s on %s (%s): %zu train / %zu validation%s images %dx%dx%d, %d classes\n",
           loom_graph_name(c.g), dpath, base->format, train->count, val ? val->count : 0,
           val_is_test ? " (the test split)" : "", base->c, ih, iw, K);
    double flops = 0;
    for (int i = 0; i < loom_graph_count(c.g); i++) flops += loom_layer_flops(c.g, i);
    printf("  %zu parameters, %.1f MFLOP/image; %s lr %g (%s)%s, batch %ld, %d threads, %ld loader thread%s%s, seed %ld\n",
           loom_graph_param_count(c.g), flops / 1e6, loom_optim_name(to.optim.kind), to.optim.lr,
           resume ? "resumed schedule" : cli_get(o, "schedule"), to.optim.nesterov ? " nesterov" : "", batch,
           loom_trainer_threads(c.t), lthreads, lthreads > 1 ? "s" : "", to.deterministic ? ", deterministic" : "",
           seed);
    if (resume) printf("  resuming after epoch %d of %ld (step %ld)\n", saved.epoch, epochs, saved.step);
    fflush(stdout);
    int last = (int)epochs;
    if (stop_after) {
        int first = resume ? saved.epoch + 1 : 1;
        if (first + (int)stop_after - 1 < last) last = first + (int)stop_after - 1;
    }
    loom_fit_opts fo = {.epochs = last, .first_epoch = resume ? saved.epoch + 1 : 1, .sched = &sched,
                        .val = val, .early_stop = (int)early, .verbose = cli_get(o, "quiet") ? 1 : 2,
                        .eval_augment = eaug, .on_epoch = on_epoch, .user = &c,
                        .loader = {.producers = (int)lthreads, .seed = (uint64_t)seed, .shuffle = 1, .augment = aug,
                                   .skip_bad = cli_get(o, "skip-bad") != NULL}};
    double t0 = now_seconds();
    int ran = loom_fit(c.t, train, &fo, NULL);
    if (ran < 0 || c.failed) {
        if (ran < 0) fprintf(stderr, "loom train: %s\n", loom_error());
        goto out;
    }
    if (c.nhist) {
        const loom_epoch_metrics *m = &c.hist[c.nhist - 1];
        printf("final %s accuracy: %.2f%% (%s, %d epochs, %.1fs)\n",
               val_is_test ? "test" : val ? "validation" : "training",
               100 * (val ? m->val_acc : m->train_acc), loom_graph_name(c.g), m->epoch, now_seconds() - t0);
    }
    if (c.ckpt_dir) printf("checkpoints: %s/last.safetensors, %s/best.safetensors (validation accuracy %.2f%%)\n",
                           c.ckpt_dir, c.ckpt_dir, 100 * c.st.best_metric);
    if (c.log_path) printf("metrics: %s\n", c.log_path);
    if (c.plot_path) printf("curves: %s\n", c.plot_path);
    rc = 0;
out:
    free(c.hist);
    loom_trainer_free(c.t);
    loom_graph_free(c.g);
    if (train != base) loom_dataset_free(train);
    loom_dataset_free(val);
    loom_dataset_free(base);
    loom_augment_free(aug);
    loom_augment_free(eaug);
    return rc;
}
