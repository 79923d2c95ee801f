/* loom — training over data sets in a few lines: epochs of loader batches
 * through a trainer, a learning-rate schedule, validation after each epoch,
 * early stopping, and per-epoch metrics and progress for the caller to show
 * (the library prints nothing). A fit state carries where training stands,
 * so a run can stop mid-epoch (a stop flag, e.g. set by a signal handler),
 * be saved (train_state.h) and go on later exactly where it stopped.
 *
 *   loom_trainer *t = loom_trainer_new(g, &(loom_trainer_opts){.batch = 64, ...});
 *   loom_fit_opts fo = {.epochs = 5, .lr = 0.05f, .schedule = "cosine", .val = test};
 *   loom_epoch_metrics m[5];
 *   loom_fit(t, train, &fo, m);
 */
#ifndef LOOM_FIT_H
#define LOOM_FIT_H

#include <stdatomic.h>

#include "loom/dataset.h"
#include "loom/loader.h"
#include "loom/schedule.h"
#include "loom/trainer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int epoch;                  /* 1-based */
    double train_loss, train_acc;
    double val_loss, val_acc;   /* -1 without validation data */
    double lr;                  /* at the start of the epoch */
    double seconds, images_per_s;
    double data_wait;           /* seconds the trainer waited for batches */
    long skipped;               /* unreadable samples skipped */
} loom_epoch_metrics;

/* Where a run stands. loom_fit_state_init(st, &sched) starts at epoch 1 with
 * that schedule; loom_fit_state_init(st, NULL) (or a zeroed state) lets
 * loom_fit make one from .lr and .schedule. Keep it to resume. */
typedef struct {
    int epoch;                  /* epochs completed */
    long batch;                 /* batches of epoch + 1 already trained (after a stop), else 0 */
    double loss_sum;            /* that partial epoch's running sums */
    long correct, seen;
    double seconds, data_wait;
    double best_metric;         /* best validation accuracy so far; -1 when none */
    int best_epoch;             /* the epoch that reached it; 0 when none */
    int since_best;             /* epochs since (early stopping) */
    int stopped;                /* loom_fit returned because of its stop flag */
    int early_stopped;          /* loom_fit returned because of early stopping */
    loom_schedule sched;
} loom_fit_state;

/* A fresh state for a run with this schedule. */
void loom_fit_state_init(loom_fit_state *st, const loom_schedule *sched);

enum { LOOM_FIT_TRAINING, LOOM_FIT_VALIDATING };

/* Progress within an epoch, reported after every batch. */
typedef struct {
    int phase;                  /* LOOM_FIT_TRAINING or LOOM_FIT_VALIDATING */
    int epoch, epochs;
    long batch, batches;        /* batches done in this phase, of */
    double loss, acc;           /* the epoch's training means so far */
    double images_per_s;        /* this phase's rate so far */
    double elapsed;             /* seconds in this phase (a resumed epoch counts its earlier part) */
} loom_progress;

typedef struct {
    int epochs;                 /* train to the end of this epoch (1-based) */
    float lr;                   /* without a state: schedule from lr and ... */
    const char *schedule;       /* ... this spec (see loom_schedule_parse; NULL = const) */
    loom_fit_state *state;      /* resume from and keep progress in (NULL: a private one from epoch 1) */
    loom_dataset *val;          /* validation data (NULL = none) */
    int early_stop;             /* stop after this many epochs without a better val acc (0 = off) */
    int on_nan_skip;            /* a step with a NaN or an infinity (LOOM_EDIVERGED) is skipped with a
                                 * warning instead of ending the fit (20 in a row end it); pair it with
                                 * loom_trainer_opts.skip_nonfinite so that such a step changes nothing */
    loom_loader_opts loader;    /* for training (batch is taken from the trainer if 0) */
    const struct loom_augment *eval_augment; /* for validation: normally just normalize (NULL = x/255) */
    /* After every epoch (with the state updated); return non-zero to stop. */
    int (*on_epoch)(const loom_epoch_metrics *m, const loom_fit_state *st, void *user);
    /* After every batch of training and of validation (NULL = none). */
    void (*on_progress)(const loom_progress *p, void *user);
    /* Non-zero: finish the current step and return with st->stopped set
     * (a signal handler may set it). NULL = never. */
    const atomic_int *stop;
    void *user;
} loom_fit_opts;

/* Train; fills history[0..) with the epochs completed in this call if not
 * NULL. Returns how many were completed, or LOOM_ERR. */
int loom_fit(loom_trainer *t, loom_dataset *train, const loom_fit_opts *o, loom_epoch_metrics *history);

/* Loss and accuracy of the trainer's model on ds (inference mode; aug should
 * hold only deterministic items such as normalize, or be NULL). */
int loom_evaluate(loom_trainer *t, loom_dataset *ds, int producers, const struct loom_augment *aug, double *loss,
                  double *acc);

#ifdef __cplusplus
}
#endif
#endif
