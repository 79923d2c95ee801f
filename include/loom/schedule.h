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
    /* plateau state */
    double best;
    int bad_epochs;
    float plateau_scale;
} loom_schedule;

/* Parse a spec: "const", "step:SIZE[:GAMMA]", "multistep:E1,E2,...[:GAMMA]",
 * "exp:GAMMA", "cosine[:WARMUP_EPOCHS]", "plateau[:PATIENCE[:FACTOR]]".
 * LOOM_OK, or LOOM_ERR with a message naming the bad part. */
int loom_schedule_parse(const char *spec, float base_lr, int epochs, loom_schedule *s);
/* Learning rate at epoch `epoch` (0-based) and fraction `frac` in [0,1) of it. */
float loom_schedule_lr(const loom_schedule *s, int epoch, double frac);
/* End of an epoch with validation loss val_loss (plateau tracking). */
void loom_schedule_epoch_end(loom_schedule *s, double val_loss);

#ifdef __cplusplus
}
#endif
#endif
