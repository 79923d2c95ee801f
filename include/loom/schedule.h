/* loom — learning-rate schedules. The rate is a function of the position in
 * training (epoch and fraction of it) plus, for reduce-on-plateau, the
 * validation history; state is small enough to checkpoint. */
#ifndef LOOM_SCHEDULE_H
#define LOOM_SCHEDULE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LOOM_SCHED_CONST, LOOM_SCHED_STEP, LOOM_SCHED_MULTISTEP, LOOM_SCHED_EXP,
    LOOM_SCHED_COSINE, LOOM_SCHED_PLATEAU
} loom_sched_kind;

#define LOOM_SCHED_MAX_MILESTONES 16

typedef struct {
    loom_sched_kind kind;
    float base_lr;
    float gamma;          /* step/multistep/exp factor; plateau factor */
    int step_size;        /* step: epochs between decays */
    int milestones[LOOM_SCHED_MAX_MILESTONES]; /* multistep: epochs where lr *= gamma */
    int n_milestones;
    float warmup_epochs;  /* linear warm-up from 0 (any schedule) */
    float min_lr;         /* cosine floor; plateau floor */
    int patience;         /* plateau: epochs without improvement before decaying */
    int epochs;           /* total epochs (cosine length) */
    /* cosine restart (loom_schedule_extend): the curve from restart_epoch on
     * runs from restart_lr down to min_lr at `epochs`; 0 = no restart */
    int restart_epoch;
    float restart_lr;
    /* plateau state */
    double best;
    int bad_epochs;
    float plateau_scale;
} loom_schedule;

/* The kind's name ("cosine"), and the kind of a name (-1 if none). */
const char *loom_schedule_kind_name(loom_sched_kind k);
int loom_schedule_kind_parse(const char *name);

/* Parse a spec: "const", "step:SIZE[:GAMMA]", "multistep:E1,E2,...[:GAMMA]",
 * "exp:GAMMA", "cosine[:WARMUP_EPOCHS]", "plateau[:PATIENCE[:FACTOR]]".
 * LOOM_OK, or LOOM_ERR with a message naming the bad part. */
int loom_schedule_parse(const char *spec, float base_lr, int epochs, loom_schedule *s);
/* Learning rate at epoch `epoch` (0-based) and fraction `frac` in [0,1) of it. */
float loom_schedule_lr(const loom_schedule *s, int epoch, double frac);
/* Re-plan a schedule for `epochs` epochs in all, from epoch `from` (0-based,
 * the first epoch still to train). Schedules that do not depend on the
 * length (const, step, multistep, exp, plateau) just go on. Cosine starts a
 * new segment at `from`: from lr (> 0), or from the rate the old curve has
 * there when lr is 0, down to min_lr at the new end. LOOM_OK, or LOOM_ERR
 * when epochs <= from. */
int loom_schedule_extend(loom_schedule *s, int epochs, int from, float lr);
/* One line naming the schedule and its parameters ("cosine over 6 epochs
 * (restart at epoch 5 from 0.02)"). */
const char *loom_schedule_describe(const loom_schedule *s, char *buf, int cap);
/* End of an epoch with validation loss val_loss (plateau tracking). */
void loom_schedule_epoch_end(loom_schedule *s, double val_loss);

#ifdef __cplusplus
}
#endif
#endif
