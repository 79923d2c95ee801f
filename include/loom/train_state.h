/* loom — saving a training run and resuming it. A training checkpoint is a
 * model checkpoint (checkpoint.h) plus, beside the model:
 *   "loom.trainer"  the trainer's options (batch, seed, determinism, loss,
 *                   clipping, optimizer settings) and step counters,
 *   "loom.fit"      the fit state: epochs done, the position inside an
 *                   interrupted epoch, best metric, the schedule's state,
 *   "optim.K.<layer>.<part>"  the optimizer's state arrays, shaped like the
 *                   parameters they belong to.
 * Resuming rebuilds the graph from the file, a trainer from the saved options
 * (any thread count), and the optimizer and fit state; in deterministic mode
 * the weights then come out bit for bit as in an uninterrupted run. */
#ifndef LOOM_TRAIN_STATE_H
#define LOOM_TRAIN_STATE_H

#include "loom/checkpoint.h"
#include "loom/fit.h"
#include "loom/trainer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Save t's model, options and optimizer state, the fit state st (required:
 * it is what a resume starts from), and extra metadata (may be NULL / 0) to
 * path atomically. LOOM_OK or LOOM_ERR. */
int loom_train_save(const char *path, loom_trainer *t, const loom_fit_state *st, const loom_ckpt_meta *meta,
                    int nmeta);

/* The trainer options (threads 0: choose when resuming) and fit state stored
 * in ck. LOOM_ERR with the reason when the file holds no training state this
 * loom can resume (a model-only file, or one written by an older loom). */
int loom_train_read(const loom_checkpoint *ck, loom_trainer_opts *o, loom_fit_state *st);

/* Load the optimizer state and step counters of ck into t, a trainer made
 * from ck's graph and options. LOOM_OK or LOOM_ERR. */
int loom_train_restore(loom_checkpoint *ck, loom_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
