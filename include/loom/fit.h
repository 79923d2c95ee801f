/* loom — training over data sets in a few lines: epochs of loader batches
 * through a trainer, a learning-rate schedule, validation after each epoch,
 * early stopping, progress output, and per-epoch metrics for the caller.
 *
 *   loom_trainer *t = loom_trainer_new(g, &(loom_trainer_opts){.batch = 64, ...});
 *   loom_fit_opts fo = {.epochs = 5, .lr = 0.05f, .schedule = "cosine", .val = test};
 *   loom_epoch_metrics m[5];
 *   loom_fit(t, train, &fo, m);
 */
#ifndef LOOM_FIT_H
#define LOOM_FIT_H

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

typedef struct {
    int epochs;
    int first_epoch;            /* resume: start at this 1-based epoch (0 = 1) */
    float lr;
    const char *schedule;       /* see loom_schedule_parse (NULL = const) */
    loom_schedule *sched;       /* or a schedule of the caller's (kept across resumes) */
    loom_dataset *val;          /* validation data (NULL = none) */
    int early_stop;             /* stop after this many epochs without a better val acc (0 = off) */
    int verbose;                /* 0 silent; 1 a line per epoch; 2 also a live progress bar on a terminal */
    loom_loader_opts loader;    /* for training (batch is taken from the trainer if 0) */
    const struct loom_augment *eval_augment; /* for validation: normally just normalize (NULL = x/255) */
    /* Called after every epoch; return non-zero to stop. */
    int (*on_epoch)(const loom_epoch_metrics *m, void *user);
    void *user;
} loom_fit_opts;

/* Train; fills history[0..epochs) if not NULL. Returns the number of epochs run, or LOOM_ERR. */
int loom_fit(loom_trainer *t, loom_dataset *train, const loom_fit_opts *o, loom_epoch_metrics *history);

/* Loss and accuracy of the trainer's model on ds (inference mode; aug should
 * hold only deterministic items such as normalize, or be NULL). */
int loom_evaluate(loom_trainer *t, loom_dataset *ds, int producers, const struct loom_augment *aug, double *loss,
                  double *acc);

#ifdef __cplusplus
}
#endif
#endif
