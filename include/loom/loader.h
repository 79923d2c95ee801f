/* loom — the prefetching data loader (DESIGN.md, "Loader"): P producer
 * threads fill a ring of K preallocated batch slots with float NCHW batches
 * (decode or cached uint8 -> augment chain -> conversion). The consumer takes
 * batches in order. Sample order and every augmentation draw depend only on
 * (seed, epoch, sample index), so the batches are identical for any P. */
#ifndef LOOM_LOADER_H
#define LOOM_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "loom/dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

struct loom_augment;

typedef struct {
    int batch;                 /* samples per batch (required) */
    int producers;             /* producer threads (0 = 1) */
    int slots;                 /* ring size K (0 = 2 * producers + 1) */
    uint64_t seed;
    int shuffle;               /* new permutation every epoch */
    int drop_last;             /* drop a last partial batch */
    const struct loom_augment *augment;  /* NULL: resize if needed + x/255 */
    int out_c, out_h, out_w;   /* batch sample shape (0 = the data set's) */
    int cache;                 /* 0 auto (on if it fits cache_budget), 1 on, -1 off */
    size_t cache_budget;       /* bytes (0 = 4 GiB) */
    int skip_bad;              /* 1: skip an unreadable sample with a warning; 0: stop */
    uint8_t *bad;              /* with skip_bad: bad[i] = 1 for each data-set index i skipped (may be NULL) */
    int part, parts;           /* load only part `part` of `parts` of every batch: its samples
                                * [floor(part n / parts), floor((part + 1) n / parts)) of n (one rank's
                                * share, loom_dist_part); 0, 0 = all. With parts > 1 an unreadable
                                * sample is an error (skip_bad would make the ranks' batches disagree) */
} loom_loader_opts;

typedef struct {
    float *x;                  /* [n, out_c, out_h, out_w] */
    int32_t *y;                /* [n] */
    uint32_t *index;           /* [n] data-set indices */
    int n;
    int global_n;              /* samples of the whole batch (all parts); n without parts */
    long number;               /* batch number within the epoch */
} loom_batch;

typedef struct loom_loader loom_loader;

/* A loader over ds (not owned). Threads start here and sleep between epochs. NULL on error. */
loom_loader *loom_loader_new(loom_dataset *ds, const loom_loader_opts *o);
/* Stop the producers (mid-epoch is fine) and free everything. */
void loom_loader_free(loom_loader *l);
/* Batches in an epoch. */
long loom_loader_batches(const loom_loader *l);
/* Start producing epoch `epoch` (any previous epoch is abandoned). */
int loom_loader_start(loom_loader *l, int epoch);
/* The same from batch first_batch on (the earlier ones are not produced):
 * how a run stopped mid-epoch goes on with exactly the batches it had left. */
int loom_loader_start_at(loom_loader *l, int epoch, long first_batch);
/* The next batch of the epoch, in order: 1 with *b set, 0 at the end of the
 * epoch, LOOM_ERR on a producer error (message names the sample's file).
 * Release the batch before taking more than K. */
int loom_loader_next(loom_loader *l, loom_batch **b);
void loom_loader_release(loom_loader *l, loom_batch *b);
/* Seconds the consumer spent waiting for data since the last call (then reset). */
double loom_loader_wait_seconds(loom_loader *l);
/* Samples skipped as unreadable so far. */
long loom_loader_skipped(const loom_loader *l);
/* Whether decoded images are cached in memory. */
int loom_loader_cached(const loom_loader *l);

#ifdef __cplusplus
}
#endif
#endif
