/* loom — training across processes (DESIGN.md, "Several machines"): the
 * ranks of an `mpirun` job, through Open MPI when loom is built with
 * -DLOOM_MPI=ON. Every function works in every build: without MPI, or when
 * the process was not started by mpirun, there is one rank and the
 * collectives have nothing to do.
 *
 * A trainer given a dist (loom_trainer_opts.dist) splits each global batch
 * across the ranks, then across its threads; loom_fit makes each rank load
 * only its part of every batch. */
#ifndef LOOM_DIST_H
#define LOOM_DIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_dist loom_dist;

/* Whether this loom was built with MPI. */
int loom_dist_available(void);
/* How many ranks the launcher says this process is one of (Open MPI's
 * OMPI_COMM_WORLD_SIZE, PMIx, ...; 1 when not launched by mpirun). A
 * build without MPI uses it to refuse a job it cannot join. */
int loom_dist_launched_ranks(void);
/* Join the job: MPI_Init_thread (once per process). NULL with loom_error
 * set when MPI cannot start, or, in a build without MPI, when the launcher
 * started more than one rank. One rank: a dist of size 1. */
loom_dist *loom_dist_init(void);
/* Leave the job (MPI_Finalize). NULL is fine. */
void loom_dist_free(loom_dist *d);
/* End every rank's process now with this exit status (MPI_Abort). */
void loom_dist_abort(loom_dist *d, int status);

int loom_dist_rank(const loom_dist *d);      /* 0 for NULL */
int loom_dist_size(const loom_dist *d);      /* 1 for NULL */
/* Ranks on this machine (threads per rank default to cores / this). */
int loom_dist_local_size(const loom_dist *d);
/* This rank's part [*lo, *hi) of n items: floor(rank n / size) on. */
void loom_dist_part(const loom_dist *d, long n, long *lo, long *hi);

/* The collectives. Each returns LOOM_OK, or LOOM_ERR with loom_error
 * naming what failed (a rank that died ends the job: mpirun says which). */
/* buf (bytes) from rank 0 to every rank. */
int loom_dist_bcast(loom_dist *d, void *buf, size_t bytes);
/* Sum of every rank's buf into every rank's buf, in buckets (fast mode:
 * the order of the additions is MPI's). */
int loom_dist_allreduce_f32(loom_dist *d, float *buf, size_t n);
/* The same in a fixed order that depends only on the rank count: a binary
 * tree over rank numbers (rank r adds rank r + k's sum for k = 1, 2, 4, ...
 * while r is a multiple of 2k), then rank 0's result to every rank.
 * Deterministic mode. */
int loom_dist_tree_sum_f32(loom_dist *d, float *buf, size_t n);
/* Every rank's `bytes` bytes, in rank order, into all (size * bytes). */
int loom_dist_allgather(loom_dist *d, const void *mine, size_t bytes, void *all);
/* Every rank's count floats (counts may differ by rank), in rank order, into all; counts[r] filled. */
int loom_dist_allgatherv_f32(loom_dist *d, const float *mine, int count, float *all, int *counts);
int loom_dist_barrier(loom_dist *d);
/* Whether another thread than the one that made the dist may call the
 * collectives (one at a time: MPI_THREAD_SERIALIZED). */
int loom_dist_threads_ok(const loom_dist *d);
/* As loom_dist_allreduce_f32, waiting by polling with short sleeps rather
 * than spinning (a thread beside the computing ones). */
int loom_dist_allreduce_gentle_f32(loom_dist *d, float *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
