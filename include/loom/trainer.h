/* loom — the data-parallel trainer (DESIGN.md, "Data flow of one training step").
 *
 * Each step cuts the batch into shards, each with its own replica (loom_exec).
 * Phase 1, parallel over workers: forward, loss and backward of each shard.
 * Phase 2, parallel over slices of the flat parameter vector: sum the shards'
 * gradients in a fixed order, then apply the optimizer to the same slice.
 * Shard count = thread count, or a fixed count with `deterministic`, which
 * makes the weights bit-identical for any number of threads.
 *
 * Several processes (opts.dist, an mpirun job): each global batch is split
 * across the ranks, each rank's part across its threads; the ranks' summed
 * gradients are combined (MPI_Allreduce in buckets; in deterministic mode a
 * fixed binary tree over the shards, so that the weights are bit-identical
 * for any split of the shards over ranks and threads), and every rank
 * applies the same update to its copy of the model. */
#ifndef LOOM_TRAINER_H
#define LOOM_TRAINER_H

#include <stdint.h>

#include "loom/dist.h"
#include "loom/exec.h"
#include "loom/graph.h"
#include "loom/optim.h"

#ifdef __cplusplus
extern "C" {
#endif


typedef struct {
    int batch;              /* largest batch a step will get (required) */
    int threads;            /* 0 = all online cores (shared by the ranks on this machine) */
    int deterministic;      /* fixed shard count whatever the thread count */
    int shards;             /* shard count in deterministic mode (0 = 4) */
    uint64_t seed;          /* dropout masks are keyed by (seed, step, sample) */
    loom_optim_cfg optim;
    loom_loss_kind loss;
    float clip_norm;        /* > 0: clip the gradient to this global L2 norm */
    int skip_nonfinite;     /* check the whole gradient before any update, so that a step whose gradient
                             * holds a NaN changes nothing (--on-nan skip; one more pass over it) */
    loom_dist *dist;        /* the ranks of an mpirun job (NULL: this process alone). In deterministic
                             * mode the shard count must be a multiple of the rank count, with a power
                             * of two (1, 2, 4, ...) of shards per rank */
} loom_trainer_opts;

typedef struct {
    double loss;            /* mean loss over the batch */
    int correct;            /* samples whose argmax matched the label */
    double grad_norm;       /* global L2 norm of the gradient (before clipping), if clipping */
} loom_step_result;

/* Time spent per phase (seconds, summed over steps; phase 1 times are the
 * slowest worker's). */
typedef struct {
    double forward, backward, reduce, idle, total;
    long steps;
} loom_step_timing;

typedef struct loom_trainer loom_trainer;

/* Build replicas, gradient buffers, optimizer state and the thread pool. NULL on error. */
loom_trainer *loom_trainer_new(loom_graph *g, const loom_trainer_opts *o);
void loom_trainer_free(loom_trainer *t);

/* One optimisation step on x [n, C, H, W] with labels [n] (class indices in
 * [0, classes); for MSE/BCE, targets are one-hot of the labels), at learning
 * rate lr (finite, >= 0). A step whose loss is not finite is refused before
 * it touches the weights (LOOM_EDIVERGED). With a dist of several ranks, n
 * is the global batch and x, labels hold this rank's part of it, samples
 * loom_dist_part(dist, n) (possibly none); every rank calls it, and r holds
 * the whole batch's figures on every rank. */
int loom_trainer_step(loom_trainer *t, const float *x, const int32_t *labels, int n, float lr,
                      loom_step_result *r);
/* Inference on x [n, ...]: the outputs (logits) into out [n, K] if not NULL;
 * with labels, the sum of losses and the correct count too (labels may be
 * NULL: then loss_sum and correct are 0). With a dist, as for a step: n is
 * global, x holds this rank's part, out gets this part's outputs, and the
 * sums are the whole batch's. */
int loom_trainer_eval(loom_trainer *t, const float *x, const int32_t *labels, int n,
                      double *loss_sum, int *correct, float *out);
/* The options the trainer was made with (threads as given). */
const loom_trainer_opts *loom_trainer_options(const loom_trainer *t);
int loom_trainer_threads(const loom_trainer *t);
/* Inference's piece size: samples per forward, each piece taken by whichever
 * worker is free (models whose weights are small beside their activations,
 * fast mode, several threads); 0 when inference goes by the shards. */
int loom_trainer_infer_piece(const loom_trainer *t);
int loom_trainer_batch(const loom_trainer *t);
long loom_trainer_steps(const loom_trainer *t);
/* Set the step counter (resume: dropout masks are keyed by it). */
void loom_trainer_set_steps(loom_trainer *t, long steps);
loom_optim *loom_trainer_optim(loom_trainer *t);
loom_graph *loom_trainer_graph(loom_trainer *t);
const loom_step_timing *loom_trainer_timing(const loom_trainer *t);
void loom_trainer_reset_timing(loom_trainer *t);
const char *loom_loss_name(loom_loss_kind k);
/* With a dist: rank 0's parameters, buffers, optimizer state and step count
 * to every rank (at the start of a run and after a resume). LOOM_OK without. */
int loom_trainer_sync(loom_trainer *t);
/* With a dist: whether every rank's parameters and buffers are still bit for
 * bit rank 0's (a checksum each); LOOM_EDIVERGED naming the first rank that
 * differs, else LOOM_OK. */
int loom_trainer_check_replicas(loom_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
