/* loom train: a zoo model (or a checkpoint's) trained on a data set whose
 * format is recognised from the path, with validation, a schedule,
 * augmentation, checkpoints (last and best, in a locked folder), resume, a
 * metrics CSV and a plot of the curves.
 *
 * The command is a sequence of steps, one function each: parse the options;
 * take a resumed run's settings from its checkpoint; settle the numbers;
 * open the data (checked against the model); build the model; open the
 * outputs (all checked before the first epoch); make the trainer; train;
 * report. Every option takes effect or is refused with the reason.
 * Steps return 0 to go on, an exit code, or DONE (nothing left to do). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "kernels/parse.h"
#include "common.h"
#include "plot.h"
#include "progress.h"
#include "runinfo.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define MAX_EPOCHS 10000
#define DONE (-1)

/* The options that define a run: resuming takes them from the checkpoint and
 * refuses one given that disagrees ("epochs" and "lr" have rules of their own). */
static const char *const run_options[] = {"model", "val", "val-split", "batch", "optim", "lr", "momentum", "nesterov",
                                          "weight-decay", "clip", "schedule", "augment", "image-size", "channels",
                                          "seed", "deterministic", "shards", "class-names", "unfreeze-at", NULL};

typedef struct {
    cli_opt *o;
    /* settings (a resumed run's from its checkpoint) */
    long epochs, stop_after, batch, threads, lthreads, early;
    long unfreeze;             /* --unfreeze-at: the epoch from which every layer trains (0: none) */
    long seed;
    double lr, momentum, wd, clip, vsplit, skip_limit, progress_every;
    int ih, iw, channels;
    char epochs_buf[24];
    /* resuming or fine-tuning */
    loom_checkpoint *ck;
    run_info saved;
    loom_trainer_opts saved_to;
    int restart;               /* a finished cosine run restarted from --lr */
    char notes[3 * 4096];      /* what resuming will do, said once every check has passed (two paths each) */
    model_side init_side;      /* --init: what its model takes */
    /* the run */
    run_info run;
    loom_fit_state st;
    loom_dataset *own[8];
    int nown;
    loom_dataset *base, *train, *val;
    char val_what[4400];
    char **names;              /* --class-names */
    int nnames;
    loom_augment *aug, *eaug;
    loom_graph *g;
    loom_trainer *t;
    loom_ckdir *ckd;
    char from_dir[4096];      /* --resume with --checkpoint elsewhere: the folder resumed from (else "") */
    const char *log, *plot;
    char log_buf[4200];
    progress prog;
    int first_epoch, ran, rising, failed, user_stop;
    double t0;
    loom_dist *dist;           /* an mpirun job's ranks (NULL: this process alone) */
    int rank;                  /* only rank 0 prints, locks the folder and writes files */
} train_run;

/* A note on what the run will do, printed only when it starts: a refused run changes nothing. */
static void note(train_run *r, const char *fmt, ...) {
    size_t n = strlen(r->notes);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes + n, sizeof r->notes - n, fmt, ap);
    va_end(ap);
}

/* Several ranks: the others' messages name their rank, and while they set up they are held back, to be
 * shown only where rank 0 did not fail too (it says the same for the job). */
static int say_rank = 0, say_holding = 0;
static char say_held[4096];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char msg[2048], rank[32] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (say_rank) snprintf(rank, sizeof rank, " (rank %d)", say_rank);
    if (say_holding) {
        size_t at = strlen(say_held);
        snprintf(say_held + at, sizeof say_held - at, "loom train%s: %s\n", rank, msg);
        return;
    }
    fprintf(stderr, "loom train%s: %s\n", rank, msg);
}

static int failed(const char *what) {
    say("%s%s%s", what ? what : "", what ? ": " : "", loom_error());
    return EXIT_FAILED;
}

static loom_dataset *keep(train_run *r, loom_dataset *ds) {
    if (ds) r->own[r->nown++] = ds;
    return ds;
}

/* ---- 1. options ----------------------------------------------------------------------- */

static const cli_opt train_options[] = {
    {"data", "PATH", "training data: IDX folder/file, .csv, a folder of class folders (or of seg_train/seg_test), "
                     "CIFAR batches", DEFAULT_DATA, 0, NULL},
    {"model", "NAME", "zoo model (loom summary --list); default lenet5 up to 32 px, else minivgg", NULL, 0, NULL},
    {"init", "FILE", "start from this checkpoint's or ONNX model's architecture and weights (fine-tuning)", NULL, 0,
     NULL},
    {"classes", "N", "with --init: replace the model's last dense layer by a new one for the data's N classes "
                     "(transfer learning)", NULL, 0, NULL},
    {"freeze-until", "LAYER", "with --init: freeze the layers up to and including LAYER (a name loom summary shows, "
                              "or an index): no updates, and no backward pass through them", NULL, 0, NULL},
    {"unfreeze-at", "EPOCH", "with --freeze-until: from this epoch on every layer trains (the second phase of "
                             "fine-tuning; the optimizer starts afresh there)", NULL, 0, NULL},
    {"weights", "FILE", "initial weights for --model from a PyTorch state_dict saved as safetensors (layers paired "
                        "by order and shape)", NULL, 0, NULL},
    {"resume", "FILE", "continue the run saved in this checkpoint (its settings come with it)", NULL, 0, NULL},
    {"val", "PATH", "validation data (default: the data's test split if it has one, else --val-split 0.1)", NULL, 0,
     NULL},
    {"val-split", "F", "hold out this fraction of the training data for validation (stratified; 0 = none)", NULL, 0,
     NULL},
    {"epochs", "N", "total epochs (resuming: the saved plan; more extends it)", "5", 0, NULL},
    {"stop-after", "N", "stop after N epochs of this invocation, as if interrupted (resume later)", NULL, 0, NULL},
    {"batch", "N", "mini-batch size", "64", 0, NULL},
    {"threads", "N", "compute threads (0 = one per core)", "0", 0, NULL},
    {"loader-threads", "N", "data loading threads", "1", 0, NULL},
    {"optim", "NAME", "sgd, adam, adamw, rmsprop, adagrad, nadam", "sgd", 0, NULL},
    {"lr", "X",
     "learning rate; the default is sgd's, the others' are PyTorch's: rmsprop and adagrad 0.01, adam and adamw 0.001, "
     "nadam 0.002 (resuming a finished cosine run: the start of a new cosine segment)",
     "0.05", 0, NULL},
    {"momentum", "X", "SGD/RMSprop momentum (the default is sgd's; rmsprop's is 0)", "0.9", 0, NULL},
    {"nesterov", NULL, "Nesterov momentum (SGD)", NULL, 0, NULL},
    {"weight-decay", "X", "L2 weight decay (decoupled for adamw)", "0", 0, NULL},
    {"clip", "X", "clip gradients to this global L2 norm (0 = off)", "0", 0, NULL},
    {"schedule", "SPEC", "const, step:N[:G], multistep:E1,E2[:G], exp:G, cosine[:WARMUP], plateau[:P[:F]]",
     "cosine", 0, NULL},
    {"augment", "SPEC", "e.g. flip-h,rotate=15,brightness=0.2,contrast=0.2,crop=4,normalize=0.5/0.25", NULL, 0, NULL},
    {"image-size", "HxW", "resize images to this (default: the data's size)", NULL, 0, NULL},
    {"channels", "N", "image folders: 1 (grey) or 3 (colour; grey images are converted)", "3", 0, NULL},
    {"class-names", "LIST", "class names, comma-separated, or a file with one per line (default: the data's)", NULL,
     0, NULL},
    {"seed", "N", "seed for initialisation, shuffling, dropout and augmentation", "1", 0, NULL},
    {"deterministic", NULL, "bit-identical results for any thread count", NULL, 0, NULL},
    {"checkpoint", "DIR", "keep DIR/last.safetensors (every epoch), DIR/best.safetensors and DIR/metrics.csv", NULL, 0,
     NULL},
    {"overwrite", NULL, "start a new run in a --checkpoint folder that holds one (replacing it)", NULL, 0, NULL},
    {"log", "FILE", "per-epoch metrics as CSV (default with --checkpoint: DIR/metrics.csv)", NULL, 0, NULL},
    {"plot", "FILE", "loss and accuracy curves, .png or .svg, redrawn every epoch", NULL, 0, NULL},
    {"early-stop", "N", "stop after N epochs without a better validation accuracy (0 = off)", "0", 0, NULL},
    {"shards", "N", "with --deterministic: the batch is cut into N shards whatever the threads and ranks (with R "
                    "ranks: R times a power of two)", "4", 0, NULL},
    {"on-nan", "WHAT", "a step with a NaN or an infinity: stop (naming the step and the layer) or skip it (20 in a "
                       "row stop)", "stop", 0, NULL},
    {"skip-bad", NULL, "leave out unreadable images, found before training; stop if over N% (default 1%)", NULL, 0,
     "1%"},
    {"progress", "SECONDS", "when output is not a terminal, a progress line this often (0 = none)", "10", 0, NULL},
    {"quiet", NULL, "no progress bar or lines (the epoch lines stay)", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL}};

static int parse(train_run *r, cli_opt *o, int argc, char **argv) {
    r->o = o;
    int pr = cli_parse("train", "[options]   (loom train --data DIR alone trains something reasonable)", o, argc,
                       argv, NULL, 0, NULL);
    if (pr) return pr > 0 ? DONE : EXIT_USAGE;
    if (cli_exclude("train", o, "resume", "init", "a resumed run has its weights already") ||
        cli_exclude("train", o, "init", "model", "--init takes the architecture from its checkpoint") ||
        cli_exclude("train", o, "init", "weights", "--init brings its own weights") ||
        cli_exclude("train", o, "resume", "weights", "a resumed run has its weights already") ||
        cli_exclude("train", o, "resume", "overwrite", "a resumed run continues in its own folder") ||
        cli_exclude("train", o, "val", "val-split", "validation data comes from one place"))
        return EXIT_USAGE;
    /* before the checkpoint folder (the model's own folder) is locked */
    if (cli_given(o, "resume") && loom_onnx_sniff(cli_get(o, "resume"))) {
        say("--resume %s: an ONNX model has no run to resume: start one from it with --init", cli_get(o, "resume"));
        return EXIT_USAGE;
    }
    if (!cli_given(o, "init") && (cli_given(o, "classes") || cli_given(o, "freeze-until"))) {
        if (cli_given(o, "resume"))
            say("--%s: a resumed run keeps the model it started with, head and frozen layers included",
                cli_given(o, "classes") ? "classes" : "freeze-until");
        else
            say("--%s applies to a model given with --init (a zoo model is built for the data's classes and trains "
                "whole)", cli_given(o, "classes") ? "classes" : "freeze-until");
        return EXIT_USAGE;
    }
    if (cli_given(o, "unfreeze-at") && !cli_given(o, "freeze-until") && !cli_given(o, "resume")) {
        say("--unfreeze-at needs --freeze-until (nothing is frozen to unfreeze)");
        return EXIT_USAGE;
    }
    if (cli_given(o, "overwrite") && !cli_given(o, "checkpoint")) {
        say("--overwrite needs --checkpoint DIR (the folder whose run it replaces)");
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- 2. resuming: the run's settings come from its checkpoint ---------------------------- */

static int same_value(const char *name, const char *a, const char *b) {
    if (!strcmp(name, "image-size")) {
        int h1, w1, h2, w2;
        if (!parse_hw(a, &h1, &w1) && !parse_hw(b, &h2, &w2)) return h1 == h2 && w1 == w2;
    }
    char *e1, *e2;
    double x = strtod(a, &e1), y = strtod(b, &e2);
    if (*a && *b && !*e1 && !*e2) return x == y;
    return !strcmp(a, b);
}

/* How many epochs a resumed run trains in all: the saved plan, or a given
 * longer one, re-planned in a stated way. */
static int plan_epochs(train_run *r) {
    const char *planned_s = runinfo_opt(&r->saved, "epochs");
    if (!planned_s) {
        loom_set_error("%s: loom.run has no epochs", cli_get(r->o, "resume"));
        return failed("--resume");
    }
    long planned = strtol(planned_s, NULL, 10), want = planned;
    int done = r->st.epoch, finished = done >= planned && r->st.batch == 0;
    if (cli_given(r->o, "epochs") && cli_int("train", r->o, "epochs", 1, MAX_EPOCHS, &want)) return EXIT_USAGE;
    if (want <= done) {
        if (cli_given(r->o, "epochs")) {
            say("--epochs %ld: the checkpoint has already trained %d epoch%s (give more to extend the run)", want,
                done, plural(done));
            return EXIT_USAGE;
        }
        if (cli_given(r->o, "lr")) {
            say("--lr %s: the run has trained all its %ld epoch%s, so there is nothing for it to apply to (give "
                "--epochs N as well to train further from that rate)",
                cli_get(r->o, "lr"), planned, plural(planned));
            return EXIT_USAGE;
        }
        printf("%s: this run has finished all %ld epoch%s; nothing to do (give --epochs N to train further)\n",
               cli_get(r->o, "resume"), planned, plural(planned));
        return DONE;
    }
    snprintf(r->epochs_buf, sizeof r->epochs_buf, "%ld", want);
    cli_find(r->o, "epochs")->value = r->epochs_buf;
    if (want == planned) return 0; /* --lr, if given, is checked like any other setting */
    loom_schedule *s = &r->st.sched;
    char before[200], after[200];
    loom_schedule_describe(s, before, sizeof before);
    double lr = 0;
    if (s->kind == LOOM_SCHED_COSINE && finished) {
        if (!cli_given(r->o, "lr")) {
            char which[64];
            if (want == done + 1) snprintf(which, sizeof which, "epoch %ld", want);
            else snprintf(which, sizeof which, "epochs %d to %ld", done + 1, want);
            say("--epochs %ld: this run's cosine schedule ended after epoch %d at a learning rate of %.3g, so more "
                "epochs would learn nothing. Give --lr X as well to train %s on a new cosine segment from X down to "
                "%g (a warm restart; e.g. --lr %.3g)",
                want, done, loom_schedule_lr(s, done, 0.0), which, s->min_lr, s->base_lr / 5);
            return EXIT_USAGE;
        }
        if (cli_float("train", r->o, "lr", 1e-9, 100, &lr)) return EXIT_USAGE;
        r->restart = 1;
    } else if (cli_given(r->o, "lr")) {
        say("--lr: a resumed run keeps its learning rate; --lr is taken only to restart a finished cosine schedule "
            "(this run %s)",
            s->kind != LOOM_SCHED_COSINE ? "does not use cosine" : "has not finished");
        return EXIT_USAGE;
    }
    if (loom_schedule_extend(s, (int)want, done, (float)lr)) return failed(NULL);
    if (s->kind == LOOM_SCHED_COSINE)
        note(r, "re-planned from %ld to %ld epochs: learning rate %s (was %s)\n", planned, want,
             loom_schedule_describe(s, after, sizeof after), before);
    else
        note(r, "re-planned from %ld to %ld epochs: the %s schedule goes on as it was\n", planned, want, before);
    return 0;
}

/* Every run-defining option from the checkpoint; a given one that differs is refused. */
static int apply_saved(train_run *r) {
    for (const char *const *n = run_options; *n; n++) {
        const char *saved = runinfo_opt(&r->saved, *n);
        cli_opt *o = cli_find(r->o, *n);
        if (!saved || (!strcmp(*n, "lr") && r->restart)) continue;
        if (!o->given) {
            o->value = o->arg ? (saved[0] ? saved : NULL) : (!strcmp(saved, "1") ? "1" : NULL);
            continue;
        }
        if (!same_value(*n, o->arg ? o->value : "1", saved)) {
            say("--%s%s%s contradicts the checkpoint, whose run has %s%s%s%s: a resumed run keeps the settings it "
                "started with (to change them, start a new run from its weights: --init %s)",
                *n, o->arg ? " " : "", o->arg ? o->value : "", saved[0] && strcmp(saved, "0") ? "--" : "no --", *n,
                o->arg && saved[0] ? " " : "", o->arg ? saved : "", cli_get(r->o, "resume"));
            return EXIT_USAGE;
        }
    }
    if (!cli_given(r->o, "data")) cli_find(r->o, "data")->value = r->saved.data; /* unless it moved */
    return 0;
}

/* The checkpoint folder first: its lock keeps other runs out, and opening it
 * completes or drops an interrupted commit before anything reads last. */
static int lock_folder(train_run *r) {
    if (r->rank) return 0; /* rank 0 holds the folder for the job */
    const char *dir = cli_get(r->o, "checkpoint"), *resume = cli_get(r->o, "resume");
    char src[4096]; /* the folder of the checkpoint resumed from */
    if (resume) {
        const char *slash = strrchr(resume, '/');
        snprintf(src, sizeof src, "%.*s", slash ? (int)(slash - resume) : 1, slash ? resume : ".");
        if (slash == resume) snprintf(src, sizeof src, "/");
        if (!dir) dir = src;
    }
    if (dir && resume && dir != src) {
        /* continuing in another folder: that folder must not hold a run of its own */
        char a[PATH_MAX], b[PATH_MAX];
        if (!realpath(dir, a) || !realpath(src, b) || strcmp(a, b)) snprintf(r->from_dir, sizeof r->from_dir, "%s", src);
    }
    const char *data_inputs[] = {cli_get(r->o, "data"), cli_get(r->o, "val") ? cli_get(r->o, "val") : "", NULL};
    if (dir && (!resume || r->from_dir[0]) && check_output("--checkpoint", dir, data_inputs)) {
        say("%s", loom_error());
        return EXIT_USAGE;
    }
    if (dir && !(r->ckd = loom_ckdir_open(dir))) return failed("--checkpoint");
    if (r->ckd && loom_ckdir_repaired(r->ckd))
        printf("%s: finished an interrupted checkpoint write and removed %d leftover file%s\n", dir,
               loom_ckdir_repaired(r->ckd), plural(loom_ckdir_repaired(r->ckd)));
    if (!r->ckd || (resume && !r->from_dir[0])) return 0;
    char last[4200], best[4200];
    loom_ckdir_file(r->ckd, "last", last, sizeof last);
    loom_ckdir_file(r->ckd, "best", best, sizeof best);
    if (access(last, F_OK) == 0 || access(best, F_OK) == 0) {
        if (!cli_given(r->o, "overwrite")) {
            char q[8500];
            if (resume)
                say("--checkpoint %s holds a run already: continuing %s there would replace it; choose another "
                    "folder",
                    dir, resume);
            else
                say("--checkpoint %s holds a run already: continue it with --resume %s, or replace it with "
                    "--overwrite, or choose another folder",
                    dir, shell_quote(last, q, sizeof q));
            return EXIT_USAGE;
        }
        if ((unlink(last) && errno != ENOENT) || (unlink(best) && errno != ENOENT)) {
            say("--overwrite: cannot remove the old run's checkpoints in %s: %s", dir, strerror(errno));
            return EXIT_FAILED;
        }
    }
    return 0;
}

static int from_checkpoint(train_run *r) {
    const char *resume = cli_get(r->o, "resume"), *init = cli_get(r->o, "init");
    if (init) {
        if (loom_onnx_sniff(init)) {
            if (!(r->g = loom_onnx_import(init))) return failed("--init");
            int d = drop_final_softmax(&r->g);
            if (d < 0) return failed("--init");
            if (d) printf("--init %s: its final Softmax is left out: the cross-entropy loss applies its own\n", init);
            model_side_of_graph(&r->init_side, r->g);
            return 0;
        }
        if (!(r->ck = loom_checkpoint_open(init)) || !(r->g = loom_checkpoint_graph(r->ck)) ||
            model_side_of_checkpoint(&r->init_side, r->ck, r->g))
            return failed("--init");
        return 0;
    }
    if (!resume) return 0;
    if (!(r->ck = loom_checkpoint_open(resume)) || loom_train_read(r->ck, &r->saved_to, &r->st) ||
        runinfo_read(&r->saved, r->ck) || !(r->g = loom_checkpoint_graph(r->ck)))
        return failed("--resume");
    /* resuming from an earlier checkpoint than the folder's last rewinds the run: say so */
    char last[4200];
    if (r->ckd) {
        loom_ckdir_file(r->ckd, "last", last, sizeof last);
        char *a = realpath(resume, NULL), *b = realpath(last, NULL);
        if (a && b && strcmp(a, b)) {
            loom_checkpoint *lk = loom_checkpoint_open(last);
            loom_trainer_opts lo;
            loom_fit_state ls;
            if (lk && loom_train_read(lk, &lo, &ls) == LOOM_OK && (ls.epoch > r->st.epoch ||
                                                                   (ls.epoch == r->st.epoch && ls.batch > r->st.batch)))
                note(r, "note: resuming from %s (epoch %d) rewinds this run: %s (epoch %d) will be replaced, and "
                        "epochs %d to %d trained again\n",
                     resume, r->st.epoch, last, ls.epoch, r->st.epoch + 1, ls.epoch);
            loom_checkpoint_close(lk);
        }
        free(a);
        free(b);
    }
    int rc = plan_epochs(r);
    return rc ? rc : apply_saved(r);
}

/* ---- 3. the settings as numbers ---------------------------------------------------------- */

static int settings(train_run *r) {
    cli_opt *o = r->o;
    r->stop_after = r->early = r->unfreeze = 0;
    r->threads = 0, r->lthreads = 1, r->seed = 1;
    r->vsplit = -1, r->skip_limit = -1, r->progress_every = 10;
    /* A new run's learning rate and momentum follow its optimizer unless given: sgd's 0.05 with momentum
     * 0.9 (the zoo's tuned defaults, BENCHMARKS.md), the adaptive methods PyTorch's rates without momentum
     * (0.05 made RMSprop diverge and Adam stall). A resumed run has its own already (apply_saved). */
    if (!cli_get(o, "resume")) {
        static const char *const rates[][2] = {{"rmsprop", "0.01"}, {"adagrad", "0.01"}, {"adam", "0.001"},
                                               {"adamw", "0.001"}, {"nadam", "0.002"}};
        const char *opt = cli_get(o, "optim");
        for (size_t k = 0; k < sizeof rates / sizeof *rates; k++)
            if (!strcmp(opt, rates[k][0]) && !cli_given(o, "lr")) cli_find(o, "lr")->value = rates[k][1];
        if (strcmp(opt, "sgd") && !cli_given(o, "momentum")) cli_find(o, "momentum")->value = "0";
    }
    if (cli_int("train", o, "epochs", 1, MAX_EPOCHS, &r->epochs) ||
        cli_int("train", o, "stop-after", 1, MAX_EPOCHS, &r->stop_after) ||
        cli_int("train", o, "batch", 1, 65536, &r->batch) || cli_threads("train", o, &r->threads) ||
        cli_int("train", o, "loader-threads", 1, 64, &r->lthreads) ||
        cli_int("train", o, "seed", 0, 0x7fffffffL, &r->seed) ||
        cli_int("train", o, "early-stop", 0, MAX_EPOCHS, &r->early) ||
        cli_int("train", o, "unfreeze-at", 2, MAX_EPOCHS, &r->unfreeze) ||
        cli_float("train", o, "lr", 1e-9, 100, &r->lr) || cli_float("train", o, "momentum", 0, 1, &r->momentum) ||
        cli_float("train", o, "weight-decay", 0, 10, &r->wd) || cli_float("train", o, "clip", 0, 1e9, &r->clip) ||
        cli_float("train", o, "val-split", 0, 0.9, &r->vsplit) ||
        cli_float("train", o, "progress", 0, 1e6, &r->progress_every))
        return EXIT_USAGE;
    long ch = 0;
    if (cli_int("train", o, "channels", 1, 3, &ch) || (ch == 2 && (say("--channels: 1 (grey) or 3 (colour)"), 1)))
        return EXIT_USAGE;
    /* 0: the reader's default (3 for folders); a resumed run has its own */
    r->channels = cli_given(o, "channels") || cli_get(o, "resume") ? (int)ch : 0;
    if (cli_get(o, "image-size") && parse_hw(cli_get(o, "image-size"), &r->ih, &r->iw)) {
        say("--image-size: '%s' is not HxW (e.g. 64x64)", cli_get(o, "image-size"));
        return EXIT_USAGE;
    }
    if (r->ih > 4096 || r->iw > 4096) {
        say("--image-size %s: at most 4096x4096", cli_get(o, "image-size"));
        return EXIT_USAGE;
    }
    const char *sb = cli_get(o, "skip-bad");
    if (sb) {
        size_t n = strlen(sb);
        if (n > 1 && sb[n - 1] == '%') n--;
        if (loom_parse_double_n(sb, (int)n, 0, 100, &r->skip_limit)) {
            say("--skip-bad=%s: give the most unreadable images to leave out as a percentage, e.g. --skip-bad=5%%",
                sb);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* The settings that name things (optimizer, schedule, model, augmentation,
 * plot), and the ones that only mean something with others. */
static int check_settings(train_run *r) {
    cli_opt *o = r->o;
    if (loom_optim_parse(cli_get(o, "optim")) < 0) {
        say("--optim: %s", loom_error());
        return EXIT_USAGE;
    }
    if (cli_given(o, "nesterov") && strcmp(cli_get(o, "optim"), "sgd")) {
        say("--nesterov applies to --optim sgd, not %s", cli_get(o, "optim"));
        return EXIT_USAGE;
    }
    if (r->early && !strcmp(cli_get(o, "val-split") ? cli_get(o, "val-split") : "", "0")) {
        say("--early-stop watches the validation accuracy; --val-split 0 leaves no validation data");
        return EXIT_USAGE;
    }
    if (strcmp(cli_get(o, "on-nan"), "stop") && strcmp(cli_get(o, "on-nan"), "skip")) {
        say("--on-nan %s: stop or skip", cli_get(o, "on-nan"));
        return EXIT_USAGE;
    }
    const char *opt = cli_get(o, "optim");
    if (cli_given(o, "momentum") && strcmp(opt, "sgd") && strcmp(opt, "rmsprop")) {
        say("--momentum applies to --optim sgd and rmsprop; %s has none (its betas are fixed at 0.9, 0.999)", opt);
        return EXIT_USAGE;
    }
    if (!cli_get(o, "resume")) {
        loom_schedule sched;
        if (loom_schedule_parse(cli_get(o, "schedule"), (float)r->lr, (int)r->epochs, &sched)) {
            say("--schedule: %s", loom_error());
            return EXIT_USAGE;
        }
        loom_fit_state_init(&r->st, &sched);
    }
    const char *model = cli_get(o, "model");
    int known = !model;
    for (const char *const *n = loom_zoo_names(); model && *n && !known; n++) known = !strcmp(*n, model);
    if (!known && !cli_get(o, "resume")) {
        say("--model: no model '%s' in the zoo (loom summary --list names them)", model);
        return EXIT_USAGE;
    }
    const char *plot = cli_get(o, "plot");
    size_t pl = plot ? strlen(plot) : 0;
    if (plot && (pl < 5 || (strcasecmp(plot + pl - 4, ".png") && strcasecmp(plot + pl - 4, ".svg")))) {
        say("--plot %s: a plot is written as .png or .svg (the name's ending chooses)", plot);
        return EXIT_USAGE;
    }
    const char *aspec = cli_get(o, "augment");
    int err = 0;
    if ((aspec && aspec[0] && !(r->aug = loom_augment_parse(aspec))) || ((r->eaug = eval_chain(aspec, &err)), err)) {
        say("--augment: %s", loom_error());
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- 4. the data -------------------------------------------------------------------------- */

/* --class-names: "a,b,c" or a file with one name per line. */
static int read_class_names(train_run *r, int k) {
    const char *spec = cli_get(r->o, "class-names");
    char *text = NULL;
    FILE *f = strchr(spec, ',') ? NULL : fopen(spec, "r");
    if (!f && !strchr(spec, ',') && k > 1) {
        say("--class-names %s: not a file that can be read (%s), nor a comma-separated list of %d names", spec,
            strerror(errno), k);
        return EXIT_USAGE;
    }
    if (f) {
        size_t cap = 0;
        ssize_t n = getdelim(&text, &cap, 0, f);
        fclose(f);
        if (n < 0) {
            free(text);
            say("--class-names %s: cannot read the file", spec);
            return EXIT_FAILED;
        }
    } else if (!(text = strdup(spec))) {
        return failed(NULL);
    }
    const char *sep = f ? "\n" : ",";
    char **names = calloc((size_t)k + 1, sizeof *names);
    int n = 0, rc = 0;
    for (char *p = text, *tok; names && (tok = strsep(&p, sep)) != NULL;) {
        tok[strcspn(tok, "\r")] = 0;
        if (f && !tok[0] && !p) break; /* the file's last newline */
        if (!tok[0]) {
            say("--class-names: name %d is empty", n + 1);
            rc = EXIT_USAGE;
            break;
        }
        if (n < k) names[n] = strdup(tok);
        n++;
    }
    if (!rc && n != k) {
        say("--class-names gives %d name%s, the data has %d classes", n, plural(n), k);
        rc = EXIT_USAGE;
    }
    for (int i = 0; !rc && i < k; i++)
        for (int j = 0; j < i && !rc; j++)
            if (!strcmp(names[i], names[j])) {
                say("--class-names: \"%s\" names classes %d and %d", names[i], j, i);
                rc = EXIT_USAGE;
            }
    free(text);
    if (rc) {
        free_names(k, names);
        return rc;
    }
    r->names = names;
    r->nnames = k;
    return 0;
}

/* The first ten warnings as they come, then only a count. */
static void first_warnings(const char *msg, void *user) {
    long *n = user;
    if (++*n <= 10) fprintf(stderr, "loom: warning: %s\n", msg);
}

/* --skip-bad: read every sample once, leave out the unreadable ones, and
 * refuse when too many are, or a class lost all of its. */
static int skip_bad(train_run *r, loom_dataset **ds, const char *what) {
    loom_dataset *d = *ds;
    uint8_t *bad = calloc(d->count + 1, 1);
    size_t *per = calloc((size_t)d->num_classes + 1, sizeof *per), *badk = calloc((size_t)d->num_classes + 1, sizeof *badk);
    uint32_t *good = malloc((d->count + 1) * sizeof *good);
    loom_loader_opts lo = {.batch = 256, .producers = (int)r->lthreads, .cache = -1, .skip_bad = 1, .bad = bad};
    loom_loader *l = bad && per && badk && good ? loom_loader_new(d, &lo) : NULL;
    int rc = EXIT_FAILED;
    if (!l) {
        failed(what);
        goto out;
    }
    long shown = 0;
    loom_set_warning_handler(first_warnings, &shown);
    loom_loader_start(l, 0);
    loom_batch *b;
    int got;
    while ((got = loom_loader_next(l, &b)) == 1) loom_loader_release(l, b);
    loom_loader_free(l);
    loom_set_warning_handler(NULL, NULL);
    if (shown > 10) fprintf(stderr, "loom: warning: ... and %ld more unreadable images\n", shown - 10);
    if (got < 0) {
        failed(what);
        goto out;
    }
    size_t nbad = 0, ngood = 0;
    for (size_t i = 0; i < d->count; i++) {
        int32_t y = -1;
        loom_dataset_label(d, i, &y);
        if (y >= 0 && y < d->num_classes) per[y]++, badk[y] += bad[i];
        if (bad[i]) nbad++;
        else good[ngood++] = (uint32_t)i;
    }
    double pct = 100.0 * (double)nbad / (double)d->count;
    char nb[64];
    if (nbad) {
        printf("%s: %zu of %zu images (%.2f%%) are unreadable and left out:", what, nbad, d->count, pct);
        const char *sep = " ";
        for (int k = 0; k < d->num_classes; k++)
            if (badk[k]) {
                printf("%s%s %zu of %zu", sep, loom_dataset_class_name(d, k, nb, sizeof nb), badk[k], per[k]);
                sep = ", ";
            }
        printf("\n");
    }
    for (int k = 0; k < d->num_classes; k++)
        if (per[k] && badk[k] == per[k]) {
            say("%s: every image of class %s (%zu) is unreadable: %s", what, loom_dataset_class_name(d, k, nb, sizeof nb),
                per[k], ds == &r->val ? "validation would have none of this class to score"
                                    : "the class would be learnt from nothing");
            goto out;
        }
    if (pct > r->skip_limit) {
        say("%s: %.2f%% of the images are unreadable, more than --skip-bad allows (%g%%): is this the right data?",
            what, pct, r->skip_limit);
        goto out;
    }
    if (nbad && !(*ds = keep(r, loom_dataset_subset(d, good, ngood)))) {
        failed(what);
        goto out;
    }
    rc = 0;
out:
    free(bad);
    free(per);
    free(badk);
    free(good);
    return rc;
}

/* Classes with no training samples (warned), and fewer than two (refused). */
static int check_classes(const loom_dataset *ds, const char *what) {
    size_t *cnt = calloc((size_t)ds->num_classes + 1, sizeof *cnt);
    if (!cnt) return failed(NULL);
    for (size_t i = 0; i < ds->count; i++) {
        int32_t y = -1;
        if (loom_dataset_label((loom_dataset *)ds, i, &y) == LOOM_OK && y >= 0 && y < ds->num_classes) cnt[y]++;
    }
    int present = 0, empty = 0;
    char list[256] = "", nb[64];
    for (int k = 0; k < ds->num_classes; k++) {
        if (cnt[k]) {
            present++;
            continue;
        }
        if (empty++ < 8)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", empty > 1 ? ", " : "",
                     loom_dataset_class_name(ds, k, nb, sizeof nb));
    }
    free(cnt);
    if (present < 2) {
        say("%s: %d class%s with samples: a classifier needs at least two", what, present, present == 1 ? "" : "es");
        return EXIT_FAILED;
    }
    if (empty)
        fprintf(stderr, "warning: %s: %d of %d classes have no training samples (%s%s): the model cannot learn them\n",
                what, empty, ds->num_classes, list, empty > 8 ? ", ..." : "");
    return 0;
}

static int open_val(train_run *r, const char *dpath, loom_dataset_opts dop, model_side *side) {
    const char *vpath = cli_get(r->o, "val");
    if (vpath) {
        dop.split = "test";
        if (!(r->val = keep(r, loom_dataset_open(vpath, &dop)))) return failed("--val");
        snprintf(r->val_what, sizeof r->val_what, "%s%s%s", vpath, r->val->split[0] ? " (its test split)" : "", "");
    } else if (r->vsplit > 0 || (r->vsplit < 0 && !r->base->split[0])) {
        double f = r->vsplit > 0 ? r->vsplit : 0.1;
        loom_dataset *tr, *va;
        if (loom_dataset_split(r->base, f, (uint64_t)r->seed, 1, &tr, &va)) return failed(NULL);
        r->train = keep(r, tr);
        r->val = keep(r, va);
        snprintf(r->val_what, sizeof r->val_what, "%.0f%% of the training data held out (stratified, seed %ld)",
                 f * 100, r->seed);
        if (r->vsplit < 0) r->vsplit = f;
        return 0;
    } else if (r->vsplit < 0) {
        dop.split = "test";
        if (!(r->val = keep(r, loom_dataset_open(dpath, &dop)))) return failed("validation (the test split)");
        snprintf(r->val_what, sizeof r->val_what, "the test split of %s", dpath);
    } else {
        snprintf(r->val_what, sizeof r->val_what, "none (--val-split 0)");
        return 0;
    }
    char what[4200];
    snprintf(what, sizeof what, "validation data %s", vpath ? vpath : "(the test split)");
    char *a = realpath(r->val->path, NULL), *bp = realpath(r->base->path, NULL);
    int same = a && bp && !strcmp(a, bp) && !strcmp(r->val->split, r->base->split);
    free(a);
    free(bp);
    if (same) {
        say("--val %s is the training data itself: validation would measure what the model memorised, not how it "
            "does on new images",
            vpath);
        return EXIT_USAGE;
    }
    if (!r->val->labeled) {
        say("%s has no labels (a Kaggle test.csv?): it cannot be scored", what);
        return EXIT_FAILED;
    }
    if (check_fits(what, r->val, side, r->ih > 0, "--image-size HxW")) return failed(NULL);
    return 0;
}

/* --classes N: the model's last dense layer replaced by a new one for the data's classes. */
static int new_head(train_run *r, int data_classes, const char *dpath) {
    long k;
    if (cli_int("train", r->o, "classes", 1, 1000000, &k)) return EXIT_USAGE;
    if (k != data_classes) {
        say("--classes %ld: %s has %d classes, and the new head is trained on them", k, dpath, data_classes);
        return EXIT_USAGE;
    }
    loom_graph *h = loom_graph_new_head(r->g, (int)k, (uint64_t)r->seed);
    if (!h) return failed("--classes");
    loom_graph_free(r->g);
    r->g = h;
    model_side_free(&r->init_side);
    model_side_of_graph(&r->init_side, r->g);
    return 0;
}

/* --freeze-until LAYER: layers 1 to LAYER keep their weights. */
static int freeze(train_run *r) {
    const char *name = cli_get(r->o, "freeze-until");
    /* --init: the whole model trains, whatever the checkpoint had frozen, but for scale layers (an ONNX
     * model's constants, such as its input normalisation) */
    for (int i = 1; i < loom_graph_count(r->g); i++)
        if (loom_graph_layer(r->g, i)->op != LOOM_OP_SCALE) loom_graph_set_frozen(r->g, i, 0);
    if (!name) return 0;
    loom_node x = loom_graph_find(r->g, name);
    int n = loom_graph_count(r->g), head = -1;
    for (int i = 0; i < n; i++)
        if (loom_graph_layer(r->g, i)->op == LOOM_OP_DENSE) head = i;
    if (x < 1) {
        say("--freeze-until %s: the model has no layer of that name%s (loom summary %s lists them)", name,
            name[strspn(name, "0123456789")] ? "" : " or index past its input (1 and up)", cli_get(r->o, "init"));
        return EXIT_USAGE;
    }
    if (x >= head) {
        say("--freeze-until %s: that is layer %d, at or after the last dense layer (%d, %s): nothing would train", name,
            x, head, loom_graph_layer(r->g, head)->name);
        return EXIT_USAGE;
    }
    size_t frozen = 0;
    for (int i = 1; i <= x; i++) {
        loom_graph_set_frozen(r->g, i, 1);
        frozen += loom_graph_layer(r->g, i)->param_count;
    }
    printf("frozen: layers 1 to %d (up to %s), %zu of %zu parameters; backward stops above them\n", x,
           loom_graph_layer(r->g, x)->name, frozen, loom_graph_param_count(r->g));
    return 0;
}

static int open_data(train_run *r) {
    const char *dpath = cli_get(r->o, "data");
    loom_dataset_opts dop = {.channels = r->channels, .height = r->ih, .width = r->iw, .split = "train"};
    if (!(r->base = keep(r, loom_dataset_open(dpath, &dop)))) return failed(NULL);
    loom_dataset *b = r->base;
    if (!b->labeled) {
        say("%s has no labels (a Kaggle test.csv?): train on the labelled train.csv", dpath);
        return EXIT_FAILED;
    }
    if (b->get_f32 && (cli_given(r->o, "augment") || cli_given(r->o, "image-size") || cli_given(r->o, "channels"))) {
        say("--%s: %s holds float features, which are used as they are", cli_given(r->o, "augment") ? "augment"
                                                                          : cli_given(r->o, "image-size") ? "image-size"
                                                                                                          : "channels",
            dpath);
        return EXIT_USAGE;
    }
    if (r->channels && strcmp(b->format, "folder") && r->channels != b->c) {
        say("--channels %d: %s data is %d-channel and cannot be converted (--channels applies to image folders)",
            r->channels, b->format, b->c);
        return EXIT_USAGE;
    }
    int rc = cli_get(r->o, "class-names") ? read_class_names(r, b->num_classes) : 0;
    if (!rc) rc = check_classes(b, dpath);
    if (rc) return rc;
    /* the input: what the model takes (its own, when it comes from a file) */
    int c = b->c, h = r->ih ? r->ih : b->h, w = r->iw ? r->iw : b->w;
    if (r->g && cli_get(r->o, "init")) {
        model_side *m = &r->init_side;
        if (cli_given(r->o, "classes") && (rc = new_head(r, b->num_classes, dpath))) return rc;
        if (b->num_classes != m->classes) {
            char a[256], e[256];
            say("--init %s: its model has %s, %s has %s (--classes %d replaces its last dense layer for them)",
                cli_get(r->o, "init"), describe_classes(m->classes, m->names, a, sizeof a), dpath,
                describe_classes(b->num_classes, b->class_names, e, sizeof e), b->num_classes);
            return EXIT_FAILED;
        }
        if (c != m->c || (r->ih ? r->ih != m->h || r->iw != m->w : b->h != m->h || b->w != m->w)) {
            say("--init %s: its model takes %dx%dx%d images, %s gives %dx%dx%d%s", cli_get(r->o, "init"), m->c, m->h,
                m->w, dpath, c, h, w, r->ih ? "" : " (give --image-size to resize them, or --channels for a folder)");
            return EXIT_FAILED;
        }
    }
    if (loom_augment_check(r->aug, b->w, b->h, b->c)) {
        say("--augment: %s", loom_error());
        return EXIT_USAGE;
    }
    model_side side;
    if (model_side_of(&side, b, c, h, w)) return failed(NULL);
    uint64_t digest = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < b->count; i++) {
        int32_t y = -1;
        loom_dataset_label(b, i, &y);
        for (int k = 0; k < 4; k++) digest = (digest ^ ((uint32_t)y >> (8 * k) & 0xff)) * 0x100000001b3ull;
    }
    if (r->saved.data[0]) {
        /* resuming: the data must be what the run was trained on */
        char what[4200];
        snprintf(what, sizeof what, "%s (the run was trained on %s)", dpath, r->saved.data);
        rc = check_fits(what, b, &r->saved.side, 0, "--image-size HxW");
        if (!rc && b->count != r->saved.count)
            rc = loom_set_error("%s has %zu samples, the run was trained on %zu from %s: other data would change the "
                                "run (and its validation split)",
                                dpath, b->count, r->saved.count, r->saved.data);
        if (!rc && digest != r->saved.labels_digest)
            rc = loom_set_error("%s is not the data the run was trained on: its labels differ (images moved between "
                                "classes, added or removed?), which would change the run and its validation split",
                                dpath);
        if (rc) {
            model_side_free(&side);
            say("--data: %s", loom_error());
            return EXIT_USAGE; /* it contradicts the checkpoint */
        }
    }
    r->train = b;
    rc = open_val(r, dpath, dop, &side);
    if (!rc && r->skip_limit >= 0) rc = skip_bad(r, &r->train, dpath);
    if (!rc && r->skip_limit >= 0 && r->val) rc = skip_bad(r, &r->val, "validation data");
    if (!rc && r->early && !r->val) {
        say("--early-stop watches the validation accuracy; this run has no validation data");
        rc = EXIT_USAGE;
    }
    /* --class-names: shown instead of the data's own names, which stay for checking other data */
    if (!rc && r->names && !(side.labels = copy_names(b->num_classes, r->names))) rc = failed(NULL);
    /* what loom.run records */
    char *abs = realpath(dpath, NULL);
    snprintf(r->run.data, sizeof r->run.data, "%s", abs ? abs : dpath);
    free(abs);
    snprintf(r->run.format, sizeof r->run.format, "%s", b->format);
    r->run.count = b->count;
    r->run.labels_digest = digest;
    r->run.side = side;
    return rc;
}

/* ---- 5. the model ------------------------------------------------------------------------- */

static int build_model(train_run *r) {
    const model_side *s = &r->run.side;
    const char *zoo = cli_get(r->o, "model");
    if (!r->g) {
        if (!zoo) zoo = r->base->get_f32 ? "logreg" : s->h <= 32 && s->w <= 32 ? "lenet5" : "minivgg";
        if (!(r->g = loom_zoo_build(zoo, s->c, s->h, s->w, s->classes, (uint64_t)r->seed))) {
            say("%s%s", loom_error(), cli_get(r->o, "image-size") ? " (a larger --image-size?)" : "");
            return EXIT_USAGE; /* the model cannot take this input: a choice of the command line */
        }
    }
    if (cli_get(r->o, "init")) {
        int rc = freeze(r);
        if (rc) return rc;
    }
    const char *wpath = cli_get(r->o, "weights");
    if (wpath) {
        if (loom_onnx_sniff(wpath)) {
            say("--weights %s: an ONNX model (architecture and weights): start from it with --init", wpath);
            return EXIT_USAGE;
        }
        if (loom_load_torch_state(r->g, wpath)) {
            say("--weights: %s", loom_error());
            return EXIT_FAILED;
        }
        printf("weights: %s (PyTorch state_dict) into %s\n", wpath, loom_graph_name(r->g));
    }
    snprintf(r->epochs_buf, sizeof r->epochs_buf, "%ld", r->epochs);
    const loom_layer *in = loom_graph_layer(r->g, 0);
    size_t outs = loom_graph_layer(r->g, loom_graph_output(r->g))->size;
    if (in->c != s->c || in->h != s->h || in->w != s->w) {
        say("the model takes %dx%dx%d images, the data gives %dx%dx%d", in->c, in->h, in->w, s->c, s->h, s->w);
        return EXIT_FAILED;
    }
    if ((int)outs != s->classes) {
        say("the model has %zu outputs, the data %d classes", outs, s->classes);
        return EXIT_FAILED;
    }
    return 0;
}

/* The run's settings as loom.run records them (what a resume takes back). */
static int record_options(train_run *r) {
    const model_side *s = &r->run.side;
    const char *zoo = cli_get(r->o, "model");
    char hw[32], ch[8], vs[32] = "";
    snprintf(hw, sizeof hw, "%dx%d", s->h, s->w);
    snprintf(ch, sizeof ch, "%d", s->c);
    /* the fraction held out, 0 for no validation, "" for validation from elsewhere */
    if (!r->val) snprintf(vs, sizeof vs, "0");
    else if (r->vsplit > 0) snprintf(vs, sizeof vs, "%g", r->vsplit);
    const char *set[][2] = {{"model", zoo ? zoo : loom_graph_name(r->g)},
                            {"val", cli_get(r->o, "val")},
                            {"val-split", vs},
                            {"epochs", r->epochs_buf},
                            {"image-size", hw},
                            {"channels", ch}};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        if (runinfo_set_opt(&r->run, set[i][0], set[i][1])) return failed(NULL);
    for (const char *const *n = run_options; *n; n++) {
        if (json_object_get(r->run.options, *n)) continue;
        const cli_opt *o = cli_find(r->o, *n);
        const char *v = o->arg ? (o->value ? o->value : "") : (o->value ? "1" : "");
        if (runinfo_set_opt(&r->run, *n, v)) return failed(NULL);
    }
    if (r->saved.nhist) { /* the history so far, up to where this run goes on */
        for (int i = 0; i < r->saved.nhist; i++)
            if (r->saved.hist[i].epoch <= r->st.epoch && runinfo_add_epoch(&r->run, &r->saved.hist[i]))
                return failed(NULL);
    }
    return 0;
}

/* ---- 6. outputs, checked before the first epoch -------------------------------------------- */

static int open_outputs(train_run *r) {
    if (r->rank) { /* rank 0 writes the log, the plot and the checkpoints */
        r->log = r->plot = NULL;
        return 0;
    }
    /* a resumed run writes where it wrote before unless told otherwise */
    const char *resume = cli_get(r->o, "resume");
    const char *sl = resume ? runinfo_opt(&r->saved, "log") : NULL, *sp = resume ? runinfo_opt(&r->saved, "plot") : NULL;
    r->log = cli_get(r->o, "log") ? cli_get(r->o, "log") : sl && sl[0] ? sl : NULL;
    r->plot = cli_get(r->o, "plot") ? cli_get(r->o, "plot") : sp && sp[0] ? sp : NULL;
    if (!r->log && r->ckd) {
        snprintf(r->log_buf, sizeof r->log_buf, "%s/metrics.csv", loom_ckdir_dir(r->ckd));
        r->log = r->log_buf;
    }
    /* no output may overwrite an input or a checkpoint of this run */
    char f[5][4200];
    const char *names[5] = {"last", "best", "last.next", "best.next", NULL};
    for (int i = 0; i < 4 && r->ckd; i++) loom_ckdir_file(r->ckd, names[i], f[i], sizeof f[i]);
    if (r->ckd) snprintf(f[4], sizeof f[4], "%s/.lock", loom_ckdir_dir(r->ckd));
    const char *inputs[] = {cli_get(r->o, "data"), cli_get(r->o, "val") ? cli_get(r->o, "val") : "",
                            resume ? resume : "", cli_get(r->o, "init") ? cli_get(r->o, "init") : "",
                            r->ckd ? f[0] : "", r->ckd ? f[1] : "", r->ckd ? f[2] : "", r->ckd ? f[3] : "",
                            r->ckd ? f[4] : "", NULL, NULL};
    if ((r->log && !strcmp(r->log, "-")) || (r->plot && !strcmp(r->plot, "-"))) {
        say("--%s -: it is rewritten every epoch, so it needs a file", r->log && !strcmp(r->log, "-") ? "log" : "plot");
        return EXIT_USAGE;
    }
    if (r->log && check_output("--log", r->log, inputs)) {
        say("%s", loom_error());
        return EXIT_USAGE;
    }
    inputs[9] = r->log ? r->log : ""; /* and the plot is not the log */
    if (r->plot && check_output("--plot", r->plot, inputs)) {
        say("%s", loom_error());
        return EXIT_USAGE;
    }
    if (r->log && check_writable(r->log)) return failed("--log");
    if (r->plot && plot_check(r->plot)) return failed("--plot");
    /* a checkpoint holds paths and class names as JSON text: they must be UTF-8 */
    const char *bad = !utf8_valid(r->run.data) ? r->run.data : NULL;
    for (int k = 0; !bad && k < r->run.side.classes; k++)
        if (r->run.side.names && !utf8_valid(r->run.side.names[k])) bad = r->run.side.names[k];
    if (bad && r->ckd) {
        say("%s: the data path or a class name holds bytes that are not UTF-8 text, which a checkpoint cannot "
            "record: rename it (the first: \"%s\")",
            cli_get(r->o, "data"), bad);
        return EXIT_FAILED;
    }
    /* recorded as absolute paths, so that a resume from elsewhere finds them */
    const char *set[2][2] = {{"log", cli_get(r->o, "log") || (sl && sl[0]) ? r->log : ""}, {"plot", r->plot ? r->plot : ""}};
    for (int i = 0; i < 2; i++) {
        char *a = set[i][1][0] ? absolute_path(set[i][1]) : NULL;
        if (runinfo_set_opt(&r->run, set[i][0], a ? a : set[i][1])) {
            free(a);
            return failed(NULL);
        }
        free(a);
    }
    return 0;
}

/* Several ranks: every rank's result of a setup step; a rank that failed stops them all (each says why
 * on its own standard error). */
static int agree(train_run *r, int rc) {
    int all[1024];
    if (loom_dist_size(r->dist) > 1024) return rc;
    if (loom_dist_allgather(r->dist, &rc, sizeof rc, all)) {
        say("%s", loom_error());
        return EXIT_FAILED;
    }
    if (r->rank && say_held[0]) { /* this rank's own reason, unless rank 0 failed as well */
        if (!all[0] || all[0] == DONE) fputs(say_held, stderr);
        say_held[0] = 0;
    }
    if (rc) return rc;
    for (int q = 0; q < loom_dist_size(r->dist); q++)
        if (all[q] && all[q] != DONE) {
            if (!r->rank) say("rank %d of %d cannot train (its message is above); no rank starts", q, loom_dist_size(r->dist));
            return all[q];
        }
    return all[0] == DONE ? DONE : 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Several ranks, set up: the same data, options, model and place in the run on every rank, or a message
 * naming what differs (each rank reads its own copy of the data and of a checkpoint to resume). */
static int same_setup(train_run *r) {
    enum { DATA, OPTIONS, MODEL, PLACE, N };
    const char *what[N] = {"its data (another copy, or another path?)", "its options",
                           "its model (another --model or checkpoint?)", "where it resumes (another checkpoint?)"};
    uint64_t mine[N], seed = 0xcbf29ce484222325ull, all[64][N];
    int R = loom_dist_size(r->dist);
    if (R > 64) return 0;
    mine[DATA] = fnv(fnv(fnv(seed, &r->run.count, sizeof r->run.count), &r->run.labels_digest,
                         sizeof r->run.labels_digest), r->run.format, strlen(r->run.format));
    mine[OPTIONS] = runinfo_options_digest(&r->run);
    const loom_trainer_opts *to = loom_trainer_options(r->t);
    size_t np = loom_graph_param_count(r->g);
    int nl = loom_graph_count(r->g);
    mine[MODEL] = fnv(fnv(fnv(seed, &np, sizeof np), &nl, sizeof nl), &to->deterministic, sizeof to->deterministic);
    for (int i = 0; i < nl; i++) mine[MODEL] = fnv(mine[MODEL], &loom_graph_layer(r->g, i)->op, sizeof(loom_op));
    long step = loom_trainer_steps(r->t);
    mine[PLACE] = fnv(fnv(fnv(seed, &r->st.epoch, sizeof r->st.epoch), &r->st.batch, sizeof r->st.batch), &step,
                      sizeof step);
    if (loom_dist_allgather(r->dist, mine, sizeof mine, all)) {
        say("%s", loom_error());
        return EXIT_FAILED;
    }
    for (int q = 1; q < R; q++)
        for (int k = 0; k < N; k++)
            if (all[q][k] != all[0][k]) {
                if (!r->rank) say("rank %d of %d differs from rank 0 in %s: every rank must run the same command on the "
                                  "same files; no rank starts", q, R, what[k]);
                return EXIT_USAGE;
            }
    return 0;
}

/* ---- 7. the trainer ------------------------------------------------------------------------ */

static int check_space(train_run *r);

static int make_trainer(train_run *r) {
    loom_trainer_opts to = r->saved_to;
    if (!cli_get(r->o, "resume")) {
        to = (loom_trainer_opts){.batch = (int)r->batch, .seed = (uint64_t)r->seed,
                                 .deterministic = cli_get(r->o, "deterministic") != NULL, .loss = LOOM_LOSS_XENT,
                                 .clip_norm = (float)r->clip,
                                 .optim = {.kind = (loom_optim_kind)loom_optim_parse(cli_get(r->o, "optim")),
                                           .momentum = (float)r->momentum,
                                           .nesterov = cli_get(r->o, "nesterov") != NULL,
                                           .weight_decay = (float)r->wd}};
    }
    to.threads = (int)r->threads;
    to.dist = r->dist;
    long shards = 4;
    if (cli_int("train", r->o, "shards", 1, 1024, &shards)) return EXIT_USAGE;
    if (cli_given(r->o, "shards") && !to.deterministic) {
        say("--shards %ld: it fixes the shard count of --deterministic (without it each thread takes a shard)", shards);
        return EXIT_USAGE;
    }
    to.shards = (int)shards;
    to.skip_nonfinite = !strcmp(cli_get(r->o, "on-nan"), "skip");
    if (!(r->t = loom_trainer_new(r->g, &to))) {
        int usage = loom_error_kind() == LOOM_EUNSUPPORTED; /* settings that cannot go together (ranks, shards) */
        failed(NULL);
        return usage ? EXIT_USAGE : EXIT_FAILED;
    }
    if (cli_get(r->o, "resume") && loom_train_restore(r->ck, r->t)) return failed("--resume");
    return check_space(r);
}

/* Room in the checkpoint folder, before the first epoch: last and best, and a commit's next copies of
 * both (the old ones stay until the new ones are whole), each about the model, its buffers and the
 * optimizer's state. */
static int check_space(train_run *r) {
    if (!r->ckd) return 0;
    size_t P = loom_graph_param_count(r->g), B = loom_graph_buffer_count(r->g);
    double one = 4.0 * ((double)P * (1 + loom_optim_state_count(loom_trainer_optim(r->t))) + (double)B) + 65536;
    double have = 0;
    char f[4200];
    struct stat st;
    for (int k = 0; k < 2; k++) {
        loom_ckdir_file(r->ckd, k ? "best" : "last", f, sizeof f);
        if (stat(f, &st) == 0) have += (double)st.st_size;
    }
    struct statvfs vs;
    if (statvfs(loom_ckdir_dir(r->ckd), &vs) != 0) return 0; /* cannot tell: the writes will say */
    double avail = (double)vs.f_bavail * (double)vs.f_frsize, need = 4 * one - have;
    if (avail < need) {
        say("--checkpoint %s: %.1f MB free, and a checkpoint of this model takes %.1f MB; keeping last and best while "
            "their next copies are written needs %.1f MB more: free some space or choose another folder",
            loom_ckdir_dir(r->ckd), avail / 1e6, one / 1e6, need / 1e6);
        return EXIT_FAILED;
    }
    return 0;
}

/* ---- 8. training ----------------------------------------------------------------------------- */

static atomic_int stop_flag;
static volatile sig_atomic_t stop_signal;
static const char *stop_message = "";

static void on_signal(int sig) {
    if (atomic_load(&stop_flag)) { /* the second one: stop at once */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
    atomic_store(&stop_flag, 1);
    ssize_t w = write(STDERR_FILENO, stop_message, strlen(stop_message));
    (void)w;
}

static int save_to(const char *path, void *ctx) {
    train_run *r = ctx;
    char *text = runinfo_text(&r->run);
    if (!text) return loom_set_error("%s: out of memory describing the run", path);
    loom_ckpt_meta meta = {"loom.run", text};
    int rc = loom_train_save(path, r->t, &r->st, &meta, 1);
    free(text);
    return rc;
}

static int log_rows(FILE *f, void *ctx) {
    const run_info *ri = ctx;
    fprintf(f, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s,skipped\n");
    for (int i = 0; i < ri->nhist; i++) {
        const loom_epoch_metrics *m = &ri->hist[i];
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.1f,%.3f,%ld\n", m->epoch, m->train_loss, m->train_acc,
                m->val_loss, m->val_acc, m->lr, m->seconds, m->images_per_s, m->data_wait, m->skipped);
    }
    return LOOM_OK;
}

static int on_epoch(const loom_epoch_metrics *m, const loom_fit_state *st, void *user) {
    train_run *r = user;
    progress_clear(&r->prog);
    printf("epoch %d/%ld: train loss %.4f acc %.2f%%", m->epoch, r->epochs, m->train_loss, 100 * m->train_acc);
    if (m->val_acc >= 0) printf(" | val loss %.4f acc %.2f%%%s", m->val_loss, 100 * m->val_acc,
                                st->best_epoch == m->epoch ? " (best)" : "");
    /* (plateau's rate is flat within an epoch, and its state has moved on to the next) */
    double end = st->sched.kind == LOOM_SCHED_PLATEAU ? m->lr : loom_schedule_lr(&st->sched, m->epoch - 1, 1.0);
    if (fabs(end - m->lr) > 1e-3 * fabs(m->lr)) printf(" | lr %.3g to %.3g", m->lr, end);
    else printf(" | lr %.3g", m->lr);
    printf(" | %.1fs, %.0f img/s, data wait %.1f%%\n", m->seconds, m->images_per_s,
           m->seconds > 0 ? 100 * m->data_wait / m->seconds : 0.0);
    fflush(stdout);
    if (runinfo_add_epoch(&r->run, m)) goto bad;
    int n = r->run.nhist;
    if (n >= 2) {
        const loom_epoch_metrics *p = &r->run.hist[n - 2];
        r->rising = m->val_loss >= 0 && m->val_loss > p->val_loss && m->train_loss < p->train_loss ? r->rising + 1 : 0;
        if (r->rising >= 3)
            fprintf(stderr,
                    "warning: validation loss has risen for %d epochs while training loss fell: overfitting (more "
                    "augmentation, dropout or weight decay, or --early-stop, may help)\n",
                    r->rising);
    }
    if (r->ckd && loom_ckdir_commit(r->ckd, save_to, r, st->best_epoch == m->epoch)) {
        say("--checkpoint: %s", loom_error());
        goto bad;
    }
    /* the whole log and plot are rewritten each epoch, atomically, from the history */
    if (r->log && loom_atomic_write(r->log, log_rows, &r->run)) {
        say("--log: %s", loom_error());
        goto bad;
    }
    if (r->plot && plot_write(r->plot, loom_graph_name(r->g), r->run.hist, r->run.nhist)) {
        say("--plot: %s", loom_error());
        goto bad;
    }
    r->ran++;
    if (r->stop_after && r->ran >= r->stop_after) {
        r->user_stop = 1;
        return 1;
    }
    return 0;
bad:
    r->failed = 1;
    return 1;
}

static void header(const train_run *r) {
    const model_side *s = &r->run.side;
    const loom_dataset *b = r->base;
    char cls[512];
    printf("loom train: %s on %s (%s): %zu training / %zu validation images %dx%dx%d, %s\n", loom_graph_name(r->g),
           cli_get(r->o, "data"), b->format, r->train->count, r->val ? r->val->count : 0, s->c, s->h, s->w,
           describe_classes(s->classes, s->labels ? s->labels : s->names, cls, sizeof cls));
    printf("  validation: %s\n", r->val_what);
    double flops = 0;
    for (int i = 0; i < loom_graph_count(r->g); i++) flops += loom_graph_layer_flops(r->g, i);
    const loom_trainer_opts *to = loom_trainer_options(r->t);
    char sched[200];
    int th = loom_trainer_threads(r->t);
    printf("  %zu parameters, %.1f MFLOP/image; %s, learning rate %s; batch %d, %d thread%s, %ld loader thread%s%s, "
           "seed %llu\n",
           loom_graph_param_count(r->g), flops / 1e6, loom_optim_name(to->optim.kind),
           loom_schedule_describe(&r->st.sched, sched, sizeof sched), to->batch, th, plural(th), r->lthreads,
           plural(r->lthreads), to->deterministic ? ", deterministic" : "", (unsigned long long)to->seed);
    if (loom_dist_size(r->dist) > 1)
        printf("  %d ranks (mpirun) x %d thread%s: each rank loads and trains %s of every batch; gradients combined by "
               "%s\n",
               loom_dist_size(r->dist), th, plural(th), loom_dist_size(r->dist) == 2 ? "half" : "its share",
               to->deterministic ? "a fixed tree (deterministic)" : "MPI_Allreduce");
    if (r->ckd) printf("  checkpoints: %s/last.safetensors every epoch%s\n", loom_ckdir_dir(r->ckd),
                       r->val ? ", best.safetensors at the best validation accuracy" : " (no validation data: no best)");
    if (r->log) printf("  metrics: %s\n", r->log);
    if (r->plot) printf("  curves: %s\n", r->plot);
    if (cli_get(r->o, "resume")) {
        if (r->st.batch)
            printf("  resuming in epoch %d of %ld, after batch %ld (step %ld)\n", r->st.epoch + 1, r->epochs,
                   r->st.batch, loom_trainer_steps(r->t));
        else
            printf("  resuming after epoch %d of %ld (step %ld)\n", r->st.epoch, r->epochs, loom_trainer_steps(r->t));
    }
    fflush(stdout);
}

static void on_progress(const loom_progress *p, void *user) { progress_report(p, &((train_run *)user)->prog); }

static int run_fit(train_run *r) {
    progress_init(&r->prog, r->progress_every, cli_get(r->o, "quiet") != NULL);
    loom_fit_opts fo = {.epochs = (int)r->epochs, .state = &r->st, .val = r->val, .early_stop = (int)r->early,
                        .on_nan_skip = !strcmp(cli_get(r->o, "on-nan"), "skip"),
                        .eval_augment = r->eaug, .on_epoch = on_epoch, .on_progress = on_progress,
                        .stop = &stop_flag, .user = r,
                        .loader = {.producers = (int)r->lthreads, .seed = (uint64_t)loom_trainer_options(r->t)->seed,
                                   .shuffle = 1, .augment = r->aug, .skip_bad = r->skip_limit >= 0}};
    stop_message = r->rank ? "" /* rank 0 says it for the job */
                   : r->ckd ? "\nloom train: stopping after this step and saving a checkpoint (again to quit at once)\n"
                          : "\nloom train: stopping after this step (no --checkpoint: nothing will be saved; again to "
                            "quit at once)\n";
    /* a closed standard output (loom train | head) must not end training before it saves */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    r->t0 = loom_seconds();
    r->first_epoch = r->st.epoch + 1;
    int ran = 0;
    long U = r->unfreeze;
    if (U > 1 && r->st.epoch < U - 1 && U - 1 < r->epochs) { /* the first phase: the body frozen */
        fo.epochs = (int)(U - 1);
        ran = loom_fit(r->t, r->train, &fo, NULL);
        fo.epochs = (int)r->epochs;
    }
    /* --stop-after (user_stop) or a signal at the end of the first phase ends the run there */
    int halt = r->user_stop || atomic_load(&stop_flag);
    if (halt && !r->user_stop) r->st.stopped = 1;
    if (ran >= 0 && !r->failed && !halt && !r->st.stopped && !r->st.early_stopped && r->st.epoch < r->epochs) {
        if (U > 1 && r->st.epoch >= U - 1) { /* the second: every layer (the same at a resume past U - 1) */
            int frozen = 0;
            for (int i = 1; i < loom_graph_count(r->g); i++) {
                const loom_layer *l = loom_graph_layer(r->g, i);
                if (l->frozen && l->op != LOOM_OP_SCALE) frozen = 1, loom_graph_set_frozen(r->g, i, 0);
            }
            if (frozen) {
                loom_trainer_opts to = *loom_trainer_options(r->t);
                loom_trainer_free(r->t);
                if (!(r->t = loom_trainer_new(r->g, &to))) {
                    ran = -1;
                } else {
                    progress_clear(&r->prog);
                    printf("from epoch %ld every layer trains (--unfreeze-at %ld); the optimizer starts afresh\n", U,
                           U);
                }
            }
        }
        if (ran >= 0) ran = loom_fit(r->t, r->train, &fo, NULL);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    progress_clear(&r->prog);
    if (r->failed) return EXIT_FAILED;
    if (ran < 0) return failed(NULL);
    return 0;
}

/* ---- 9. the report ----------------------------------------------------------------------- */

/* "mpirun -np R " for a resume hint when the run had several ranks ("" alone). */
static const char *mpirun_prefix(const train_run *r) {
    static char buf[48];
    buf[0] = 0;
    if (loom_dist_size(r->dist) > 1) snprintf(buf, sizeof buf, "mpirun -np %d ", loom_dist_size(r->dist));
    return buf;
}

static int report(train_run *r) {
    char last[4200] = "";
    if (r->ckd) loom_ckdir_file(r->ckd, "last", last, sizeof last);
    if (r->st.stopped) {
        int sig = stop_signal ? stop_signal : SIGINT;
        if (!r->ckd) {
            printf("interrupted in epoch %d (after batch %ld); nothing saved: this run has no --checkpoint\n",
                   r->st.epoch + 1, r->st.batch);
            return 128 + sig;
        }
        if (loom_ckdir_commit(r->ckd, save_to, r, 0)) {
            say("interrupted, and the checkpoint could not be saved: %s", loom_error());
            return EXIT_FAILED;
        }
        char q[8500];
        printf("interrupted in epoch %d after batch %ld: saved %s\nresume with: %sloom train --resume %s\n",
               r->st.epoch + 1, r->st.batch, last, mpirun_prefix(r), shell_quote(last, q, sizeof q));
        return 128 + sig;
    }
    if (r->st.early_stopped)
        printf("early stop: no better validation accuracy for %ld epoch%s\n", r->early, plural(r->early));
    if (r->run.nhist) {
        const loom_epoch_metrics *m = &r->run.hist[r->run.nhist - 1];
        const char *which = !r->val ? "training" : !cli_get(r->o, "val") && r->vsplit < 0 ? "test" : "validation";
        if (m->epoch == r->epochs)
            printf("final %s accuracy: %.2f%% (%s, %d epoch%s, %.1fs)\n", which, 100 * (r->val ? m->val_acc : m->train_acc),
                   loom_graph_name(r->g), m->epoch, plural(m->epoch), loom_seconds() - r->t0);
        else
            printf("%s accuracy after epoch %d of %ld: %.2f%% (%s, %.1fs)\n", which, m->epoch, r->epochs,
                   100 * (r->val ? m->val_acc : m->train_acc), loom_graph_name(r->g), loom_seconds() - r->t0);
    }
    if (r->run.nhist && r->run.side.classes > 1) {
        const loom_epoch_metrics *m = &r->run.hist[r->run.nhist - 1];
        double acc = r->val ? m->val_acc : m->train_acc, chance = 1.0 / r->run.side.classes;
        if (acc <= 1.5 * chance)
            fprintf(stderr,
                    "warning: %.2f%% is near chance level for %d classes (%.2f%%): the model has learned nothing yet (a "
                    "learning rate too high or too low? too few epochs?)\n",
                    100 * acc, r->run.side.classes, 100 * chance);
    }
    if (r->ran && r->ckd) {
        char best[4200];
        loom_ckdir_file(r->ckd, "best", best, sizeof best);
        if (r->st.best_epoch > 0 && r->from_dir[0] && access(best, F_OK) != 0)
            printf("checkpoints: %s; the best (epoch %d, validation accuracy %.2f%%) is %s/best.safetensors, as no "
                   "epoch since was better\n", last, r->st.best_epoch, 100 * r->st.best_metric, r->from_dir);
        else if (r->st.best_epoch > 0)
            printf("checkpoints: %s, %s/best.safetensors (epoch %d, validation accuracy %.2f%%)\n", last,
                   loom_ckdir_dir(r->ckd), r->st.best_epoch, 100 * r->st.best_metric);
        else
            printf("checkpoints: %s (no validation data, so no best)\n", last);
    }
    if (r->ran && r->log) printf("metrics: %s\n", r->log);
    if (r->ran && r->plot) printf("curves: %s\n", r->plot);
    if (r->user_stop && r->st.epoch < r->epochs) {
        char q[8500];
        if (r->ckd) printf("stopped after %d epoch%s as asked (--stop-after); resume with: %sloom train --resume %s\n",
                           r->ran, plural(r->ran), mpirun_prefix(r), shell_quote(last, q, sizeof q));
        else printf("stopped after %d epoch%s as asked (--stop-after); nothing saved: no --checkpoint\n", r->ran,
                    plural(r->ran));
    }
    return EXIT_DONE;
}

static void cleanup(train_run *r) {
    loom_trainer_free(r->t);
    loom_graph_free(r->g);
    while (r->nown > 0) loom_dataset_free(r->own[--r->nown]); /* views before the sets they view */
    loom_augment_free(r->aug);
    loom_augment_free(r->eaug);
    loom_checkpoint_close(r->ck);
    loom_ckdir_close(r->ckd);
    runinfo_free(&r->saved);
    runinfo_free(&r->run);
    model_side_free(&r->init_side);
    free_names(r->nnames, r->names);
    if (r->plot) plot_shutdown();
    loom_dist_free(r->dist);
}

int cmd_train(int argc, char **argv) {
    cli_opt o[sizeof train_options / sizeof *train_options];
    memcpy(o, train_options, sizeof o);
    train_run r;
    memset(&r, 0, sizeof r);

    runinfo_init(&r.run);
    loom_fit_state_init(&r.st, NULL);
    int (*const steps[])(train_run *) = {lock_folder, from_checkpoint, settings, check_settings, open_data,
                                          build_model, record_options, open_outputs, make_trainer};
    int rc = parse(&r, o, argc, argv);
    if (!rc && loom_dist_launched_ranks() > 1) { /* one of the ranks of an mpirun job */
        if (!(r.dist = loom_dist_init())) {
            say("%s", loom_error());
            rc = EXIT_FAILED;
        } else if ((r.rank = loom_dist_rank(r.dist)) != 0 && !freopen("/dev/null", "w", stdout)) {
            rc = failed("standard output");
        }
        say_rank = r.rank, say_holding = r.rank != 0;
    }
    /* rank 0 locks the folder (and finishes an interrupted commit) before any rank reads a checkpoint; every
     * rank then sets up, and none starts training unless all could */
    for (size_t i = 0; !rc && i < sizeof steps / sizeof *steps; i++) {
        rc = steps[i](&r);
        if (r.dist && i == 0) rc = agree(&r, rc);
    }
    if (r.dist) rc = agree(&r, rc); /* every rank comes here, after its last step or its failure */
    if (r.dist && !rc) rc = same_setup(&r);
    if (say_held[0]) fputs(say_held, stderr); /* (a message after the agreement) */
    say_holding = 0;
    if (!rc) {
        fputs(r.notes, stdout);
        header(&r);
        rc = run_fit(&r);
        if (!rc) rc = report(&r);
    }
    cleanup(&r);
    return rc == DONE ? EXIT_DONE : rc;
}
