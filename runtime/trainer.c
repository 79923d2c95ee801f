/* The data-parallel step. Two pool runs per step (three with clipping): the
 * end of each run is the barrier. Alone (one rank) with several threads, the
 * two phases are one run: a worker done with its shards goes on to phase 2's
 * units whose layers every shard's backward has passed ("early reduce").
 * Everything is allocated in loom_trainer_new; a step only reads and writes
 * planned memory. */
#include "loom/trainer.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "loom/error.h"
#include "kernels/kernels.h"
#include "kernels/parse.h"
#include "runtime/pool.h"
#include "kernels/rng.h"
#include "kernels/clock.h"

/* Gradient reduction and norms work in fixed units, not per-thread slices,
 * so that every sum is taken in the same order whatever the thread count:
 * chunks of the flat parameters, and column blocks of the dense layers'
 * weights, whose gradients the replicas leave to phase 2 (LOOM_EXEC_DEFER_DENSE). */
#define CHUNK 8192
#define DENSE_BLOCK 65536 /* floats of a dense weight gradient per unit (rows x columns) */

typedef struct {
    size_t lo, hi;  /* flat range; for a dense block, the layer's weights */
    int layer;      /* -1: a flat chunk; else the dense layer ... */
    int r0, r1;     /* ... its rows [r0, r1) */
    int c0, c1;     /* ... and columns [c0, c1) */
} unit;
#define DENSE_ROWS 64 /* rows per block: the input's columns are read out/64 times */

/* A run of the flat gradient sent as one allreduce: layers [first, ...] of the graph, the last ones first. */
typedef struct {
    size_t lo, hi;
    int first;      /* its lowest layer: ready when every shard's backward has done that layer */
} bucket;
#define BUCKET_FLOATS 262144

typedef struct loom_trainer loom_trainer;
typedef struct {
    loom_trainer *t;
    int s;
} hook_ctx;

typedef struct {
    double loss;
    int correct;
    int n;
    double t_fwd, t_bwd;
    int failed;              /* forward or backward failed: the kind and message are here */
    int kind;
    char err[256];
} shard_out;

struct loom_trainer {
    loom_graph *g;
    loom_trainer_opts o;
    int T, S;                /* threads, shards of this rank */
    int R, rank;             /* ranks of the job (1, 0 alone) */
    int Sg, s0;              /* deterministic: shards of the whole batch, and this rank's first */
    int tree;                /* deterministic: shard gradients summed in a binary tree */
    /* several ranks, fast mode: a thread that sums and sends each bucket of gradients while backward goes on */
    int overlap;
    pthread_t comm;
    int comm_started, comm_quit, comm_gen, comm_done, comm_rc, comm_kind;
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
    atomic_int phase1_over;
    atomic_int shard_failed; /* this step: a shard's forward or backward failed */
    /* one rank, several threads: phase 2's units start in phase 1's run, each when its layers are done */
    int early;
    size_t *unit_first;      /* early: per unit, the lowest node whose parameters it holds */
    double *worker_red;      /* early: per worker, its time in phase 2's units this step */
    atomic_int *done_node;   /* per shard: the lowest node whose backward is done (graph size: none yet; 0: all,
                              * or the shard failed or was empty) */
    char *bucket_edge;       /* per node: a bucket's first layer (its backward may make the bucket ready) */
    bucket *buckets;
    int nbuckets;
    hook_ctx *hooks;
    char comm_err[300];
    float *gather;           /* dist: every rank's [count, batch statistics] per shard */
    float *gather_local;     /* and this rank's */
    size_t gather_cap;
    int *gather_counts;
    loom_pool *pool;
    loom_exec **ex;          /* one per shard */
    float **onehot;          /* per shard [max_shard, K] for MSE/BCE targets */
    shard_out *so;
    double *chunk_sq;        /* per unit squared gradient norm */
    char *bad_unit;          /* per unit: its gradient holds a NaN or an infinity (this step) */
    double *worker_busy;     /* per worker phase-1 busy time */
    double *worker_fwd, *worker_bwd; /* and its forward and backward parts */
    int *bound;              /* fast mode with tail shards: the S + 1 shard boundaries of a full part; else NULL */
    int part_full;           /* the samples of a full part (this rank's share of a full batch) */
    atomic_int next_shard;   /* more shards than threads: the next shard not yet taken */
    int micro;               /* inference: samples per forward, taken by whichever worker is free (0: by shards) */
    atomic_int next_sample;
    atomic_size_t next_unit; /* phase 2: the next unit not yet taken (each unit's result is the same whoever takes it) */
    unit *units;             /* phase 2's work */
    float *blockbuf;         /* per worker DENSE_BLOCK floats: a dense block's gradient on its way to the update */
    size_t nchunks;          /* how many units */
    loom_optim *opt;
    size_t (*ranges)[2];     /* trainable [lo, hi) intervals of the flat parameters */
    int nranges;
    long step;
    loom_step_timing timing;
    const float **stats;     /* this step's batch-norm statistics of shards with samples */
    size_t *stat_counts;     /* and those shards' sample counts */
    int nstats;
    int *bn_layers;          /* batch-norm layers, updated in phase 2 round-robin */
    int nbn;
    /* current step */
    const float *x;
    const int32_t *labels;
    int n, training;         /* n: the whole batch (all ranks) */
    int m, part_lo;          /* this rank's samples [part_lo, part_lo + m) of it */
    float *out;
    float clip_scale;
};

const char *loom_loss_name(loom_loss_kind k) {
    static const char *n[] = {"xent", "mse", "bce", "hinge"};
    return (k >= 0 && k <= LOOM_LOSS_HINGE) ? n[k] : "?";
}

/* Everything a trainer is given, checked once: a bad setting is refused here
 * rather than turning into a silent loss of 0 or NaN weights later. */
static int check_opts(loom_graph *g, const loom_trainer_opts *o) {
    if (!g || !o) return loom_fail(LOOM_EINVAL, "trainer: no %s", g ? "options" : "graph");
    if (!loom_graph_params(g)) return loom_fail(LOOM_EINVAL, "trainer: the graph is not finished (loom_graph_finish)");
    if (loom_graph_error(g)[0]) return loom_fail(LOOM_EINVAL, "trainer: %s", loom_graph_error(g));
    const loom_optim_cfg *c = &o->optim;
    if (o->batch <= 0) return loom_fail(LOOM_EINVAL, "trainer: batch size %d must be positive", o->batch);
    if (o->threads < 0 || o->shards < 0)
        return loom_fail(LOOM_EINVAL, "trainer: %d threads, %d shards: 0 (automatic) or more", o->threads, o->shards);
    if ((int)o->loss < 0 || o->loss > LOOM_LOSS_HINGE)
        return loom_fail(LOOM_EINVAL, "trainer: loss kind %d is not one of loom_loss_kind", (int)o->loss);
    if ((int)c->kind < 0 || c->kind > LOOM_NADAM)
        return loom_fail(LOOM_EINVAL, "trainer: optimizer kind %d is not one of loom_optim_kind", (int)c->kind);
    if (!(o->clip_norm >= 0 && isfinite(o->clip_norm)))
        return loom_fail(LOOM_EINVAL, "trainer: clip norm %g must be 0 (off) or positive", (double)o->clip_norm);
    if (!(c->momentum >= 0 && c->momentum <= 1) || !(c->weight_decay >= 0 && isfinite(c->weight_decay)) ||
        !(c->l1 >= 0 && isfinite(c->l1)) || !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) ||
        !(c->eps >= 0 && isfinite(c->eps)) || !(c->alpha >= 0 && c->alpha < 1))
        return loom_fail(LOOM_EINVAL,
                         "trainer: optimizer settings out of range (momentum %g in [0,1], weight decay %g and l1 %g "
                         ">= 0, betas %g %g and alpha %g in [0,1), eps %g >= 0)",
                         (double)c->momentum, (double)c->weight_decay, (double)c->l1, (double)c->beta1,
                         (double)c->beta2, (double)c->alpha, (double)c->eps);
    const loom_layer *out = loom_graph_layer(g, loom_graph_output(g));
    if (out->op == LOOM_OP_SOFTMAX && o->loss == LOOM_LOSS_XENT)
        return loom_fail(LOOM_EINVAL, "trainer: the model ends in a softmax layer, and the cross-entropy loss "
                                      "applies its own: remove the final softmax (loom_exec_probabilities gives "
                                      "probabilities)");
    return LOOM_OK;
}

/* Phase 2's units, in parameter order: flat chunks, except where a dense
 * layer's deferred weights lie, which go in blocks of whole columns. */
static int add_flat(loom_trainer *t, size_t cap, size_t lo, size_t hi) {
    for (; lo < hi; lo += CHUNK) {
        if (t->nchunks == cap) return LOOM_ERR;
        t->units[t->nchunks++] = (unit){lo, lo + CHUNK < hi ? lo + CHUNK : hi, -1, 0, 0, 0, 0};
    }
    return LOOM_OK;
}

static int plan_units(loom_trainer *t, size_t P) {
    loom_graph *g = t->g;
    size_t cap = P / CHUNK + 2 * (size_t)loom_graph_count(g) + 1;
    for (int i = 0; i < loom_graph_count(g); i++)
        if (loom_exec_defers(t->ex[0], i)) {
            const loom_layer *l = loom_graph_layer(g, i);
            cap += ((size_t)l->a.dense.out / DENSE_ROWS + 1) * ((size_t)l->a.dense.in / (DENSE_BLOCK / DENSE_ROWS) + 1);
        }
    t->units = calloc(cap, sizeof *t->units);
    t->chunk_sq = calloc(cap, sizeof *t->chunk_sq);
    t->bad_unit = calloc(cap, 1);
    if (!t->units || !t->chunk_sq || !t->bad_unit) return LOOM_ERR;
    size_t at = 0;
    for (int i = 0; i < loom_graph_count(g); i++) {
        if (!loom_exec_defers(t->ex[0], i)) continue;
        const loom_layer *l = loom_graph_layer(g, i);
        if (add_flat(t, cap, at, l->param_off)) return LOOM_ERR;
        /* blocks of DENSE_ROWS rows x a page or more of columns: a block's pages of
         * the weights, their gradient and the optimizer's state stay few (TLB) */
        int in = l->a.dense.in, out = l->a.dense.out, cols = DENSE_BLOCK / DENSE_ROWS;
        for (int c0 = 0; c0 < in; c0 += cols)
            for (int r0 = 0; r0 < out; r0 += DENSE_ROWS) {
                if (t->nchunks == cap) return LOOM_ERR;
                t->units[t->nchunks++] = (unit){l->param_off, l->param_off + l->weight_count, i,
                                                r0, r0 + DENSE_ROWS < out ? r0 + DENSE_ROWS : out,
                                                c0, c0 + cols < in ? c0 + cols : in};
            }
        at = l->param_off + l->weight_count;
    }
    return add_flat(t, cap, at, P);
}

/* ---- gradients sent while backward goes on (several ranks, fast mode) ---- */

static void on_backward(void *ctx, int node) {
    hook_ctx *h = ctx;
    loom_trainer *t = h->t;
    atomic_store(&t->done_node[h->s], node);
    if (t->bucket_edge && t->bucket_edge[node]) { /* a bucket may be ready: wake the communication thread (only then) */
        pthread_mutex_lock(&t->cmu);
        pthread_cond_broadcast(&t->ccv);
        pthread_mutex_unlock(&t->cmu);
    }
}

/* One step's buckets, in order: wait until every shard's backward has passed the bucket's first layer (or
 * phase 1 is over: a shard failed, and the step will be refused on every rank after these same calls),
 * sum the shards into replica 0's gradient, allreduce it with the other ranks. */
static int comm_step(loom_trainer *t) {
    float *g0 = loom_exec_param_grad(t->ex[0]);
    for (int b = 0; b < t->nbuckets; b++) {
        const bucket *k = &t->buckets[b];
        pthread_mutex_lock(&t->cmu);
        for (;;) {
            int ready = 1;
            for (int s = 0; s < t->S && ready; s++) ready = atomic_load(&t->done_node[s]) <= k->first;
            if (ready || atomic_load(&t->phase1_over)) break;
            pthread_cond_wait(&t->ccv, &t->cmu);
        }
        pthread_mutex_unlock(&t->cmu);
        for (int s = 1; s < t->S; s++) {
            const float *gs = loom_exec_param_grad(t->ex[s]);
            for (size_t i = k->lo; i < k->hi; i++) g0[i] += gs[i];
        }
        if (loom_dist_allreduce_gentle_f32(t->o.dist, g0 + k->lo, k->hi - k->lo)) {
            snprintf(t->comm_err, sizeof t->comm_err, "%s", loom_error());
            t->comm_kind = loom_error_kind();
            return LOOM_ERR;
        }
    }
    return LOOM_OK;
}

static void *comm_main(void *arg) {
    loom_trainer *t = arg;
    int seen = 0;
    pthread_mutex_lock(&t->cmu);
    for (;;) {
        while (t->comm_gen == seen && !t->comm_quit) pthread_cond_wait(&t->ccv, &t->cmu);
        if (t->comm_quit) break;
        seen = t->comm_gen;
        pthread_mutex_unlock(&t->cmu);
        int rc = comm_step(t);
        pthread_mutex_lock(&t->cmu);
        t->comm_rc = rc;
        t->comm_done = seen;
        pthread_cond_broadcast(&t->ccv);
    }
    pthread_mutex_unlock(&t->cmu);
    return NULL;
}

/* Each shard's backward progress in done_node, through the replicas' backward hooks. */
static int track_backward(loom_trainer *t) {
    t->done_node = calloc((size_t)t->S, sizeof *t->done_node);
    t->hooks = calloc((size_t)t->S, sizeof *t->hooks);
    if (!t->done_node || !t->hooks) return loom_fail(LOOM_ENOMEM, "trainer: out of memory");
    for (int s = 0; s < t->S; s++) {
        t->hooks[s] = (hook_ctx){t, s};
        loom_exec_set_backward_hook(t->ex[s], on_backward, &t->hooks[s]);
    }
    return LOOM_OK;
}

/* The buckets, from the last layer down (backward's order), trainable layers only (a frozen body sends
 * nothing), a bucket closed at a gap or once it holds BUCKET_FLOATS; the hooks; the thread. */
static int start_comm(loom_trainer *t) {
    loom_graph *g = t->g;
    int n = loom_graph_count(g);
    t->buckets = calloc((size_t)n + 1, sizeof *t->buckets);
    t->bucket_edge = calloc((size_t)n + 1, 1);
    if (!t->buckets || !t->bucket_edge) return loom_fail(LOOM_ENOMEM, "trainer: out of memory");
    for (int i = n - 1; i >= 1; i--) {
        const loom_layer *l = loom_graph_layer(g, i);
        if (!l->param_count || l->frozen) continue;
        bucket *k = t->nbuckets ? &t->buckets[t->nbuckets - 1] : NULL;
        if (k && k->lo == l->param_off + l->param_count && k->hi - k->lo < BUCKET_FLOATS) {
            k->lo = l->param_off, k->first = i;
        } else {
            t->buckets[t->nbuckets++] = (bucket){l->param_off, l->param_off + l->param_count, i};
        }
    }
    for (int b = 0; b < t->nbuckets; b++) t->bucket_edge[t->buckets[b].first] = 1;
    t->bucket_edge[0] = 1; /* the end of a backward */
    if (track_backward(t)) return LOOM_ERR;
    pthread_mutex_init(&t->cmu, NULL);
    pthread_cond_init(&t->ccv, NULL);
    if (pthread_create(&t->comm, NULL, comm_main, t)) {
        pthread_mutex_destroy(&t->cmu);
        pthread_cond_destroy(&t->ccv);
        return loom_fail(LOOM_EIO, "trainer: cannot start the communication thread");
    }
    t->comm_started = 1;
    return LOOM_OK;
}

/* Whether the update waits until the whole gradient is known (clipping, several ranks, or --on-nan skip). */
static int defer_apply(const loom_trainer *t) { return t->o.clip_norm > 0 || t->R > 1 || t->o.skip_nonfinite; }

loom_trainer *loom_trainer_new(loom_graph *g, const loom_trainer_opts *o) {
    if (check_opts(g, o)) return NULL;
    loom_trainer *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->g = g;
    t->o = *o;
    loom_k_blas_single_thread(); /* the runtime owns the cores (DESIGN.md) */
    t->T = o->threads > 0 ? o->threads : loom_cpu_count();
    if (o->threads <= 0 && loom_dist_local_size(o->dist) > 1) { /* the machine's cores, shared by its ranks */
        t->T = loom_cpu_count() / loom_dist_local_size(o->dist);
        if (t->T < 1) t->T = 1;
    }
    t->R = loom_dist_size(o->dist), t->rank = loom_dist_rank(o->dist);
    int tails, overlap_ok;
    if (loom_env_switch("LOOM_TAILS", &tails) || loom_env_switch("LOOM_OVERLAP", &overlap_ok)) {
        free(t);
        return NULL;
    }
    if (o->deterministic) {
        /* a fixed shard count for the whole batch, split over the ranks in power-of-two blocks, so that each
         * rank's shards are one subtree of the sum's binary tree */
        t->Sg = o->shards > 0 ? o->shards : 4;
        if (t->Sg > o->batch && t->R == 1) t->Sg = o->batch;
        if (t->Sg > o->batch && t->R > 1 && o->batch >= t->R) /* a small batch: the most shards it can have */
            for (t->Sg = t->R; 2 * t->Sg <= o->batch && 2 * t->Sg <= (o->shards > 0 ? o->shards : 4);) t->Sg *= 2;
        int per = t->Sg / t->R;
        if (t->R > 1 && (t->Sg % t->R || (per & (per - 1)) || t->Sg > o->batch)) {
            loom_fail(LOOM_EUNSUPPORTED, "trainer: deterministic mode with %d ranks: the batch's %d shards (batch %d) must "
                      "split into a power of two per rank (with %d ranks: --shards %d, %d, %d, ..., and a batch at "
                      "least that large)", t->R, t->Sg, o->batch, t->R, t->R, 2 * t->R, 4 * t->R);
            free(t);
            return NULL;
        }
        t->S = per;
        t->s0 = t->rank * per;
        t->tree = 1;
    } else {
        long part = (o->batch + t->R - 1) / t->R;
        t->S = t->T < part ? t->T : (int)part;
        if (t->S < 1) t->S = 1;
        t->part_full = (int)part;
        /* Tail shards: each thread's share as a big shard (3/4) and a tail (1/4, at least 8 samples), the
         * tails taken by whichever thread is free first. Two threads given equal work often finish far
         * apart on a shared machine (measured: 25% on 2 vCPUs, either thread); the faster one then takes
         * more of the tails instead of waiting. Single process only (the MPI overlap follows shards). */
        if (t->R == 1 && t->T > 1 && part / t->T >= 32 && 2 * t->T <= LOOM_EXEC_MAX_REPLICAS &&
            tails) {
            t->bound = malloc((size_t)(2 * t->T + 1) * sizeof *t->bound);
            if (!t->bound) {
                free(t);
                loom_fail(LOOM_ENOMEM, "trainer: out of memory");
                return NULL;
            }
            t->S = 2 * t->T;
            t->bound[0] = 0;
            for (int k = 0; k < t->S; k++) { /* the T big shards, then the T tails */
                int w = k % t->T, share = (int)((long)(w + 1) * part / t->T - (long)w * part / t->T);
                t->bound[k + 1] = t->bound[k] + (k < t->T ? share - share / 4 : share / 4);
            }
        }
    }
    if (t->T > LOOM_EXEC_MAX_REPLICAS || t->S > LOOM_EXEC_MAX_REPLICAS) {
        loom_fail(LOOM_EINVAL, "trainer: %d threads and %d shards: at most %d of each", t->T, t->S, LOOM_EXEC_MAX_REPLICAS);
        free(t);
        return NULL;
    }
    /* sending gradients during backward needs each shard's own dense gradients and a second MPI thread */
    t->overlap = t->R > 1 && !o->deterministic && loom_dist_threads_ok(o->dist) && overlap_ok;
    t->pool = loom_pool_new(t->T);
    if (!t->pool) goto fail;
    int max_shard = o->deterministic ? (o->batch + t->Sg - 1) / t->Sg
                    : t->bound       ? t->bound[1]
                                     : (int)(((o->batch + t->R - 1) / t->R + t->S - 1) / t->S);
    int K = (int)loom_graph_layer(g, loom_graph_output(g))->size;
    t->ex = calloc((size_t)t->S, sizeof *t->ex);
    t->onehot = calloc((size_t)t->S, sizeof *t->onehot);
    t->so = calloc((size_t)t->S, sizeof *t->so);
    t->stats = calloc((size_t)t->S, sizeof *t->stats);
    t->stat_counts = calloc((size_t)t->S, sizeof *t->stat_counts);
    t->bn_layers = calloc((size_t)loom_graph_count(g) + 1, sizeof *t->bn_layers);
    t->worker_busy = calloc((size_t)t->T * 3, sizeof *t->worker_busy);
    if (t->worker_busy) t->worker_fwd = t->worker_busy + t->T, t->worker_bwd = t->worker_busy + 2 * t->T;
    size_t P = loom_graph_param_count(g);
    if (!t->ex || !t->onehot || !t->so || !t->stats || !t->stat_counts || !t->bn_layers || !t->worker_busy)
        goto oom;
    for (int i = 0; i < loom_graph_count(g); i++)
        if (loom_graph_layer(g, i)->op == LOOM_OP_BATCHNORM) t->bn_layers[t->nbn++] = i;
    for (int s = 0; s < t->S; s++) {
        if (s == 1) { /* all the replicas and the optimizer's state, against the machine's memory, before making them */
            double ram = loom_k_memory_bytes(),
                   reps = t->bound ? (double)t->part_full / max_shard : (double)t->S, /* tails: in big shards */
                   need = reps * (double)loom_exec_bytes(t->ex[0]) + 4.0 * 4 * (double)P;
            if (ram > 0 && need > ram) {
                loom_fail(LOOM_ENOMEM, "trainer: a batch of %d on %d thread%s needs %.1f GB (%d replicas of %s, shards of "
                          "up to %d samples), more than this machine's %.1f GB of memory: a smaller batch, fewer "
                          "threads or smaller images",
                          o->batch, t->T, t->T == 1 ? "" : "s", need / 1e9, t->S, loom_graph_name(g), max_shard,
                          ram / 1e9);
                goto fail;
            }
        }
        /* deterministic: every shard's own dense gradients, summed in the tree like the rest */
        int cap = t->bound ? t->bound[s + 1] - t->bound[s] : max_shard;
        t->ex[s] = loom_exec_new_flags(g, cap, o->deterministic || t->overlap ? 0 : LOOM_EXEC_DEFER_DENSE);
        if (!t->ex[s]) {
            if (loom_error_kind() == LOOM_ENOMEM) /* the replica's own check speaks of its shard: say whose */
                loom_fail(LOOM_ENOMEM, "trainer: a batch of %d on %d thread%s, shards of up to %d samples: %s", o->batch,
                          t->T, t->T == 1 ? "" : "s", max_shard, loom_error());
            goto fail;
        }
        t->onehot[s] = malloc((size_t)cap * K * sizeof(float));
        if (!t->onehot[s]) goto oom;
    }
    if (plan_units(t, P)) goto oom;
    /* a dense block's own buffer per worker, for the update that does not wait (see reduce_unit) */
    for (size_t c = 0; c < t->nchunks && !defer_apply(t); c++)
        if (t->units[c].layer >= 0) {
            if (!(t->blockbuf = loom_k_big_alloc((size_t)t->T * DENSE_BLOCK, sizeof(float)))) goto oom;
            break;
        }
    /* Inference by pieces taken by whichever worker is free, when re-reading the weights for each piece costs
     * little beside its activations: a worker slowed by the machine then does less, and with one thread too, a
     * piece's activations stay in cache from layer to layer. The piece is the smallest of 1, 2 and 4 samples
     * whose bytes are at least 4 times the weights' (ResNet-14 at 3x64x64: 0.7 MB of weights, 6.7 MB per
     * sample, so 1; not MiniVGG, whose dense weights are 34 MB). Pieces of 1 against 4, ResNet-14, 1 and 2
     * threads, AVX-512 (2026-11-29): 946-984 / 1655-1788 img/s against 810-820 / 1333-1520 at 3x64x64, and
     * 693-738 / 1244-1351 against 578-596 / 1032-1048 at 3x150x150: one sample's 16-channel 64x64 tensors
     * (256 KB) stay in L2 where four do not. Fast mode only: deterministic mode keeps its shards, so that its
     * results do not depend on the thread count. LOOM_TAILS=0 turns this off too. */
    if (!o->deterministic && t->R == 1 && t->S >= t->T && max_shard >= 4 &&
        tails) {
        double per_sample = (double)loom_exec_bytes(t->ex[0]) / max_shard;
        for (int p = 1; p <= 4 && !t->micro; p *= 2)
            if (4.0 * P * sizeof(float) <= p * per_sample) t->micro = p;
    }
    if (t->overlap && start_comm(t)) goto fail;
    int early_ok;
    if (loom_env_switch("LOOM_EARLY_REDUCE", &early_ok)) goto fail;
    t->early = t->R == 1 && t->T > 1 && !t->overlap && early_ok;
    if (t->early) {
        if (track_backward(t)) goto fail;
        t->worker_red = calloc((size_t)t->T, sizeof *t->worker_red);
        t->unit_first = calloc(t->nchunks, sizeof *t->unit_first);
        if (!t->worker_red || !t->unit_first) goto oom;
        /* a unit is ready once every shard's backward has passed the lowest layer whose parameters it holds
         * (parameters lie in layer order; backward goes from the last layer down) */
        for (size_t c = 0; c < t->nchunks; c++) {
            const unit *u = &t->units[c];
            size_t first = 0;
            for (int i = 0; i < loom_graph_count(g); i++) {
                const loom_layer *l = loom_graph_layer(g, i);
                if (l->param_count && l->param_off <= u->lo) first = (size_t)i;
            }
            t->unit_first[c] = u->layer >= 0 ? (size_t)u->layer : first;
        }
    }
    if (t->R > 1) {
        t->gather_cap = (size_t)(o->deterministic ? t->Sg : t->R * t->S) * (loom_graph_buffer_count(g) + 1);
        t->gather = malloc(t->gather_cap * sizeof *t->gather);
        t->gather_local = malloc((size_t)t->S * (loom_graph_buffer_count(g) + 1) * sizeof *t->gather_local);
        t->gather_counts = calloc((size_t)t->R, sizeof *t->gather_counts);
        if (!t->gather || !t->gather_local || !t->gather_counts) goto oom;
        free(t->stats), free(t->stat_counts);
        int most = o->deterministic ? t->Sg : t->R * t->S;
        t->stats = calloc((size_t)most, sizeof *t->stats);
        t->stat_counts = calloc((size_t)most, sizeof *t->stat_counts);
        if (!t->stats || !t->stat_counts) goto oom;
    }
    t->opt = loom_optim_new(&o->optim, P);
    if (!t->opt) goto fail;
    /* frozen layers are left out of the update altogether (no decay, no momentum) */
    t->ranges = calloc((size_t)loom_graph_count(g) + 1, sizeof *t->ranges);
    if (!t->ranges) goto oom;
    for (int i = 0; i < loom_graph_count(g); i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        if (l->frozen || !l->param_count) continue;
        if (t->nranges && t->ranges[t->nranges - 1][1] == l->param_off)
            t->ranges[t->nranges - 1][1] += l->param_count;
        else {
            t->ranges[t->nranges][0] = l->param_off;
            t->ranges[t->nranges][1] = l->param_off + l->param_count;
            t->nranges++;
        }
    }
    return t;
oom:
    loom_fail(LOOM_ENOMEM, "trainer: out of memory");
fail:
    loom_trainer_free(t);
    return NULL;
}

void loom_trainer_free(loom_trainer *t) {
    if (!t) return;
    if (t->comm_started) {
        pthread_mutex_lock(&t->cmu);
        t->comm_quit = 1;
        pthread_cond_broadcast(&t->ccv);
        pthread_mutex_unlock(&t->cmu);
        pthread_join(t->comm, NULL);
        pthread_mutex_destroy(&t->cmu);
        pthread_cond_destroy(&t->ccv);
    }
    free(t->done_node);
    free(t->worker_red);
    free(t->unit_first);
    free(t->bucket_edge);
    free(t->buckets);
    free(t->hooks);
    loom_pool_free(t->pool);
    for (int s = 0; t->ex && s < t->S; s++) loom_exec_free(t->ex[s]);
    for (int s = 0; t->onehot && s < t->S; s++) free(t->onehot[s]);
    free(t->ex);
    free(t->onehot);
    free(t->so);
    free(t->stats);
    free(t->stat_counts);
    free(t->bn_layers);
    free(t->worker_busy);
    free(t->bound);
    free(t->chunk_sq);
    free(t->bad_unit);
    free(t->units);
    loom_k_big_free(t->blockbuf);
    loom_optim_free(t->opt);
    free(t->ranges);
    free(t->gather);
    free(t->gather_local);
    free(t->gather_counts);
    free(t);
}

/* Shard s's samples [lo, hi) within this rank's part: deterministic, global shard s0 + s of the
 * whole batch (whose boundaries do not depend on the ranks); else an even split of the part. */
static void shard_range(const loom_trainer *t, int s, int *lo, int *hi) {
    if (t->tree) {
        long g = t->s0 + s;
        *lo = (int)(g * t->n / t->Sg) - t->part_lo;
        *hi = (int)((g + 1) * t->n / t->Sg) - t->part_lo;
        return;
    }
    if (t->bound) { /* a part of m samples is split as a full one, scaled: no shard outgrows its replica */
        *lo = (int)((long)t->bound[s] * t->m / t->part_full);
        *hi = (int)((long)t->bound[s + 1] * t->m / t->part_full);
        return;
    }
    *lo = (int)((long)s * t->m / t->S);
    *hi = (int)((long)(s + 1) * t->m / t->S);
}

/* Shard s will do no more this step: whoever waits for its backward stops waiting. */
static void shard_failed(loom_trainer *t, int s) {
    atomic_store(&t->shard_failed, 1);
    if (t->early) atomic_store(&t->done_node[s], 0);
}

/* A worker's failure, kept for the calling thread (messages are thread-local). */
static void record_failure(shard_out *so) {
    so->failed = 1;
    so->kind = loom_error_kind();
    snprintf(so->err, sizeof so->err, "%s", loom_error());
}

/* Forward of samples [lo, lo + cnt) of this rank's part on replica e, then (with labels) their loss, its
 * output gradient when training, and their correct count, added to so; the outputs to t->out. -1 on failure
 * (recorded in so). */
static int forward_part(loom_trainer *t, loom_exec *e, shard_out *so, float *onehot, int lo, int cnt) {
    size_t in_size = loom_graph_layer(t->g, 0)->size;
    int K = (int)loom_exec_output_size(e);
    memcpy(loom_exec_input(e), t->x + (size_t)lo * in_size, (size_t)cnt * in_size * sizeof(float));
    /* dropout masks are keyed by the sample's place in the whole batch */
    uint64_t key = t->training ? loom_rng_key(t->o.seed, LOOM_RNG_DROPOUT, (uint64_t)t->step, 0) : 0;
    if (loom_exec_forward(e, cnt, t->training, key, (uint64_t)(t->part_lo + lo))) {
        record_failure(so);
        return -1;
    }
    const float *out = loom_exec_output(e);
    /* inference may come without labels: then only the outputs count */
    const int32_t *lab = t->labels ? t->labels + lo : NULL;
    if (t->training) loom_exec_zero_act_grad(e);
    float *dout = t->training ? loom_exec_output_grad(e) : NULL;
    if (lab) {
        so->loss += loom_k_loss(t->o.loss, out, lab, dout, cnt, K, 1.0f / (float)t->n, onehot);
        for (int i = 0; i < cnt; i++) so->correct += loom_k_argmax(out + (size_t)i * K, K) == lab[i];
    }
    if (t->out) memcpy(t->out + (size_t)lo * K, out, (size_t)cnt * K * sizeof(float));
    return 0;
}

/* Inference in small pieces: each worker runs its own replica over the next t->micro samples not yet
 * taken, until none are left (no batch statistics at inference: how samples are grouped changes nothing). */
static void phase_infer(loom_trainer *t, int tid) {
    shard_out *so = &t->so[tid];
    double t0 = loom_seconds();
    loom_exec_hold_weights(t->ex[tid], 1); /* nothing writes them during the pass */
    for (int c0 = atomic_fetch_add(&t->next_sample, t->micro); c0 < t->m;
         c0 = atomic_fetch_add(&t->next_sample, t->micro)) {
        int cc = t->m - c0 < t->micro ? t->m - c0 : t->micro;
        if (forward_part(t, t->ex[tid], so, t->onehot[tid], c0, cc)) break;
        so->n += cc;
    }
    loom_exec_hold_weights(t->ex[tid], 0);
    so->t_fwd = loom_seconds() - t0;
    t->worker_busy[tid] = t->worker_fwd[tid] = so->t_fwd;
    t->worker_bwd[tid] = 0;
}

static void reduce_early(loom_trainer *t, int tid);

/* Phase 1: forward, loss, backward of every shard this worker takes: with more shards than workers, the
 * next one left; else its own. */
static void phase_compute(void *ctx, int tid, int T) {
    loom_trainer *t = ctx;
    if (!t->training && t->micro > 0) {
        phase_infer(t, tid);
        return;
    }
    int dyn = t->S > T;
    double busy = 0, fwd = 0, bwd = 0;
    for (int s = dyn ? atomic_fetch_add(&t->next_shard, 1) : tid; s < t->S;
         s = dyn ? atomic_fetch_add(&t->next_shard, 1) : s + T) {
        loom_exec *e = t->ex[s];
        shard_out *so = &t->so[s];
        int lo, hi;
        shard_range(t, s, &lo, &hi);
        int cnt = hi - lo;
        *so = (shard_out){.n = cnt};
        double t0 = loom_seconds();
        if (t->training) loom_exec_zero_param_grad(e);
        if (cnt == 0) {
            loom_exec_forget(e); /* its last step's samples are not this step's */
            if (t->done_node) on_backward(&t->hooks[s], 0);
            continue;
        }
        if (forward_part(t, e, so, t->onehot[s], lo, cnt)) {
            shard_failed(t, s);
            continue;
        }
        double t1 = loom_seconds();
        so->t_fwd = t1 - t0;
        if (t->training && loom_exec_backward(e, cnt)) {
            record_failure(so);
            shard_failed(t, s);
        }
        so->t_bwd = loom_seconds() - t1;
        busy += loom_seconds() - t0;
        fwd += so->t_fwd;
        bwd += so->t_bwd;
    }
    t->worker_busy[tid] = busy;
    t->worker_fwd[tid] = fwd;
    t->worker_bwd[tid] = bwd;
    if (t->early && t->training) reduce_early(t, tid);
}

/* Apply the optimizer to the trainable parts of [lo, hi). */
static void apply_trainable(loom_trainer *t, float *params, const float *g, size_t lo, size_t hi) {
    for (int r = 0; r < t->nranges; r++) {
        size_t a = t->ranges[r][0] > lo ? t->ranges[r][0] : lo;
        size_t b = t->ranges[r][1] < hi ? t->ranges[r][1] : hi;
        if (a < b) loom_optim_apply(t->opt, params, g, a, b);
    }
}

/* Phase 2: sum shard gradients chunk by chunk (shard order fixed), then
 * either record the chunk's squared norm (clipping) or apply the optimizer.
 * The batch-norm layers' running statistics are folded in here too, a layer
 * per worker in turn (each layer's result does not depend on who computes it). */
/* Whether g[lo, hi) is all finite. */
static int span_finite(const float *g, size_t lo, size_t hi) {
    /* an exponent of all ones (an infinity or a NaN) carries into the sign bit when 1 is added to it; an OR of
     * integers vectorises, where a float sum would run one add at a time */
    uint32_t any = 0;
    for (size_t i = lo; i < hi; i++) {
        uint32_t b;
        memcpy(&b, g + i, sizeof b);
        any |= (b & 0x7f800000u) + 0x00800000u;
    }
    return !(any & 0x80000000u);
}

/* Phase 2's unit c: sum the shards' gradients over it (shard order fixed), then record its squared norm
 * (clipping) or apply the optimizer to it. */
static void reduce_unit(loom_trainer *t, size_t c, int tid) {
    float *g0 = loom_exec_param_grad(t->ex[0]);
    float *params = loom_graph_params(t->g);
    const unit *u = &t->units[c];
    if (u->layer >= 0 && !defer_apply(t)) {
        /* a dense block whose gradient serves this update only: kept in the worker's own buffer, in cache, and
         * never written to the gradient array (for MiniVGG-150's 180 MB layer, a write and a read of the array
         * each step, plus the cache's read of it before the write) */
        size_t in = (size_t)loom_graph_layer(t->g, u->layer)->a.dense.in, w = (size_t)(u->c1 - u->c0);
        float *buf = t->blockbuf + (size_t)tid * DENSE_BLOCK;
        loom_exec_dense_weight_grad_to(t->ex, t->S, u->layer, u->r0, u->r1, u->c0, u->c1, buf, (int)w);
        if ((t->bad_unit[c] = !span_finite(buf, 0, (size_t)(u->r1 - u->r0) * w))) return; /* no update from a NaN */
        for (int r = u->r0; r < u->r1; r++) {
            size_t at = u->lo + (size_t)r * in + (size_t)u->c0;
            loom_optim_apply_from(t->opt, params, buf + (size_t)(r - u->r0) * w, at, at + w);
        }
        return;
    }
    if (u->layer >= 0) {
        /* a dense block whose update waits: its gradient over the whole batch into the array, then per row as a
         * chunk (finite check, clipping's squared norm) */
        loom_exec_dense_weight_grad(t->ex, t->S, u->layer, u->r0, u->r1, u->c0, u->c1, g0 + u->lo);
        size_t in = (size_t)loom_graph_layer(t->g, u->layer)->a.dense.in;
        double sq = 0;
        int ok = 1;
        for (size_t r = u->lo + u->r0 * in; r < u->lo + u->r1 * in && t->R == 1; r += in)
            ok &= span_finite(g0, r + (size_t)u->c0, r + (size_t)u->c1);
        t->bad_unit[c] = !ok;
        for (size_t r = u->lo + u->r0 * in; r < u->lo + u->r1 * in && t->R == 1 && ok && t->o.clip_norm > 0; r += in)
            for (size_t i = r + (size_t)u->c0; i < r + (size_t)u->c1; i++) sq += (double)g0[i] * g0[i];
        t->chunk_sq[c] = sq;
        return;
    }
    size_t lo = u->lo, hi = u->hi;
    if (t->tree) { /* pairs, then pairs of pairs, ...: the same tree whatever the ranks and threads */
        for (int k = 1; k < t->S; k *= 2)
            for (int s = 0; s + k < t->S; s += 2 * k) {
                float *ga = loom_exec_param_grad(t->ex[s]);
                const float *gb = loom_exec_param_grad(t->ex[s + k]);
                for (size_t i = lo; i < hi; i++) ga[i] += gb[i];
            }
    } else {
        for (int s = 1; s < t->S; s++) {
            const float *gs = loom_exec_param_grad(t->ex[s]);
            for (size_t i = lo; i < hi; i++) g0[i] += gs[i];
        }
    }
    if (t->R > 1) return; /* the ranks' sums are combined first */
    if ((t->bad_unit[c] = !span_finite(g0, lo, hi))) return; /* no update from a NaN */
    if (t->o.clip_norm > 0) {
        double sq = 0;
        for (size_t i = lo; i < hi; i++) sq += (double)g0[i] * g0[i];
        t->chunk_sq[c] = sq;
    } else if (!defer_apply(t)) {
        apply_trainable(t, params, g0, lo, hi);
    }
}

static void update_running(loom_trainer *t, int tid, int T) {
    for (int j = tid; j < t->nbn; j += T) /* a frozen batch norm keeps its running statistics too */
        if (!loom_graph_layer(t->g, t->bn_layers[j])->frozen)
            loom_exec_update_running(t->g, t->bn_layers[j], t->stats, t->stat_counts, t->nstats);
}

static void phase_reduce(void *ctx, int tid, int T) {
    loom_trainer *t = ctx;
    update_running(t, tid, T);
    /* units taken from a shared counter: a worker slowed by the machine does fewer */
    for (size_t c = atomic_fetch_add(&t->next_unit, 1); c < t->nchunks && !(t->overlap && t->training);
         c = atomic_fetch_add(&t->next_unit, 1))
        reduce_unit(t, c, tid);
}

/* Until every shard's backward has passed node `node` (0: finished, failed or empty). The wait is short
 * (a worker comes here only when it has no shard left), so it spins, and yields when threads outnumber cores. */
static void wait_shards(loom_trainer *t, size_t node) {
    for (int s = 0; s < t->S; s++)
        for (int spins = 0; (size_t)atomic_load(&t->done_node[s]) > node; spins++) {
            if (spins < 1000) loom_cpu_relax();
            else sched_yield(), spins = 0;
        }
}

/* Early reduce (phase 1's run, a worker with no shard left): phase 2's units, the last layers' first, each as
 * soon as every shard's backward has passed its layers; none when a shard failed or the loss is not finite
 * (the step is then refused, as it is before phase 2 otherwise). A shard's backward failing after some units
 * were applied leaves those applied: the step reports the failure, and the trainer should not be used on. */
static void reduce_early(loom_trainer *t, int tid) {
    int N = loom_graph_count(t->g);
    t->worker_red[tid] = 0;
    wait_shards(t, (size_t)N - 1); /* every forward and loss done */
    if (atomic_load(&t->shard_failed)) return;
    double loss = 0;
    for (int s = 0; s < t->S; s++) loss += t->so[s].loss;
    if (!isfinite(loss)) return;
    double busy = 0;
    for (size_t k = atomic_fetch_add(&t->next_unit, 1); k < t->nchunks; k = atomic_fetch_add(&t->next_unit, 1)) {
        size_t c = t->nchunks - 1 - k;
        wait_shards(t, t->unit_first[c]);
        if (atomic_load(&t->shard_failed)) break;
        double t0 = loom_seconds();
        reduce_unit(t, c, tid);
        busy += loom_seconds() - t0;
    }
    t->worker_red[tid] = busy;
}

/* Each unit's squared gradient norm (several ranks with clipping: after their sums are combined). */
static void phase_norm(void *ctx, int tid, int T) {
    loom_trainer *t = ctx;
    const float *g0 = loom_exec_param_grad(t->ex[0]);
    for (size_t c = (size_t)tid; c < t->nchunks; c += (size_t)T) {
        const unit *u = &t->units[c];
        double sq = 0;
        if (u->layer >= 0) {
            size_t in = (size_t)loom_graph_layer(t->g, u->layer)->a.dense.in;
            for (size_t r = u->lo + u->r0 * in; r < u->lo + u->r1 * in; r += in)
                for (size_t i = r + (size_t)u->c0; i < r + (size_t)u->c1; i++) sq += (double)g0[i] * g0[i];
        } else {
            for (size_t i = u->lo; i < u->hi; i++) sq += (double)g0[i] * g0[i];
        }
        t->chunk_sq[c] = sq;
        t->bad_unit[c] = !isfinite(sq);
    }
}

/* Phase 3 (clipping, or several ranks): scale the summed gradient and apply the optimizer. */
static void phase_apply(void *ctx, int tid, int T) {
    loom_trainer *t = ctx;
    float *g0 = loom_exec_param_grad(t->ex[0]);
    float *params = loom_graph_params(t->g);
    float sc = t->clip_scale;
    for (size_t c = (size_t)tid; c < t->nchunks; c += (size_t)T) {
        const unit *u = &t->units[c];
        size_t step = u->layer >= 0 ? (size_t)loom_graph_layer(t->g, u->layer)->a.dense.in : u->hi - u->lo;
        size_t first = u->layer >= 0 ? u->lo + u->r0 * step : u->lo, end = u->layer >= 0 ? u->lo + u->r1 * step : u->hi;
        for (size_t r = first; r < end; r += step) {
            size_t lo = u->layer >= 0 ? r + (size_t)u->c0 : r, hi = u->layer >= 0 ? r + (size_t)u->c1 : u->hi;
            if (sc != 1.0f)
                for (size_t i = lo; i < hi; i++) g0[i] *= sc;
            apply_trainable(t, params, g0, lo, hi);
        }
    }
}

/* Every label a class of the model's: checked once per step, so that the
 * loss kernels never index outside the logits. */
static int check_labels(const loom_trainer *t, const int32_t *labels, int n) {
    int K = (int)loom_graph_layer(t->g, loom_graph_output(t->g))->size;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return loom_fail(LOOM_EINVAL, "trainer: sample %d of the batch has label %d, but the model has %d classes (0..%d)",
                                  i, labels[i], K, K - 1);
    return LOOM_OK;
}

/* Check a batch and run phase 1 over it (training or inference). */
static int run_batch(loom_trainer *t, const char *what, const float *x, const int32_t *labels, int n, int training,
                     float *out) {
    if (!t || (!x && t->R == 1) || (training && !labels && t->R == 1))
        return loom_fail(LOOM_EINVAL, "trainer: %s without %s", what, !t ? "a trainer" : !x ? "inputs" : "labels");
    if (n <= 0 || n > t->o.batch)
        return loom_fail(LOOM_EINVAL, "trainer: %s of %d samples (batch is %d)", what, n, t->o.batch);
    long lo, hi;
    loom_dist_part(t->o.dist, n, &lo, &hi);
    t->part_lo = (int)lo, t->m = (int)(hi - lo);
    if (t->m > 0 && (!x || (training && !labels)))
        return loom_fail(LOOM_EINVAL, "trainer: %s without %s", what, !x ? "inputs" : "labels");
    if (labels && check_labels(t, labels, t->m)) return LOOM_ERR;
    t->x = x;
    t->labels = labels;
    t->n = n;
    t->training = training;
    t->out = out;
    atomic_store(&t->next_shard, 0);
    atomic_store(&t->next_sample, 0);
    if (!training && t->micro > 0)
        for (int s = 0; s < t->S; s++) t->so[s] = (shard_out){0};
    loom_pool_run(t->pool, phase_compute, t);
    /* the worker's message, in this thread (messages are thread-local) */
    for (int s = 0; s < t->S; s++)
        if (t->so[s].failed) return loom_fail(t->so[s].kind, "trainer: %s", t->so[s].err);
    return LOOM_OK;
}

/* What every rank's part of a batch gave (all ranks call it after phase 1, failed or not): the loss and
 * correct sums in rank order, and the first failure anywhere, which every rank then reports. */
typedef struct {
    double loss, correct, failed;
} rank_out;

/* Where this rank's forward first held a NaN or an infinity: "the batch's input" (the data), "the output of
 * layer 3, conv2 (conv2d)", or "" when every output was finite. */
static const char *nonfinite_origin(loom_trainer *t, char *buf, size_t cap) {
    buf[0] = 0;
    loom_node first = -1;
    for (int s = 0; s < t->S; s++) {
        if (t->so[s].n <= 0) continue;
        loom_node i = loom_exec_first_nonfinite(t->ex[s], t->so[s].n);
        if (i >= 0 && (first < 0 || i < first)) first = i;
    }
    if (first == 0) snprintf(buf, cap, "the batch's input itself (the data)");
    else if (first > 0)
        snprintf(buf, cap, "the output of layer %d, %s (%s)", first, loom_graph_layer(t->g, first)->name,
                 loom_op_name(loom_graph_layer(t->g, first)->op));
    return buf;
}

/* The message for a step whose loss is not finite: where the NaN or infinity began, the likely cause. */
static int nonfinite_loss(loom_trainer *t, double loss) {
    const char *what = isnan(loss) ? "NaN" : "infinite";
    char where[300];
    nonfinite_origin(t, where, sizeof where);
    int data = !strncmp(where, "the batch's input", 17);
    return loom_fail(LOOM_EDIVERGED, "trainer: step %ld: the loss is %s; %s%s%s; the weights were not updated (%s)",
                     t->step + 1, what, where[0] ? "the first NaN or infinity is in " : "",
                     where[0] ? where : "every layer's output on this rank is finite", "",
                     data ? "the data holds a NaN or an infinity" :
                     "most likely the learning rate is too high for this model: lower it, or add --clip; or the data "
                     "holds extreme values");
}

/* After phase 2: a gradient that holds a NaN or an infinity although the loss is finite (a ReLU or a max
 * pool hides a NaN from the loss, not from the gradients). Where the forward first held one, else the
 * layer whose gradient did (the last such: backward met it first); whether anything was updated.
 * LOOM_OK when all is finite. */
static int nonfinite_gradient(loom_trainer *t, int updated) {
    size_t worst = (size_t)-1;
    for (size_t c = 0; c < t->nchunks; c++)
        if (t->bad_unit[c] && (worst == (size_t)-1 || t->units[c].lo > t->units[worst].lo)) worst = c;
    if (worst == (size_t)-1) return LOOM_OK;
    int layer = -1;
    for (int i = 0; i < loom_graph_count(t->g); i++) {
        const loom_layer *l = loom_graph_layer(t->g, i);
        if (l->param_count && t->units[worst].lo >= l->param_off && t->units[worst].lo < l->param_off + l->param_count)
            layer = i;
    }
    const loom_layer *l = layer >= 0 ? loom_graph_layer(t->g, layer) : NULL;
    char where[300];
    nonfinite_origin(t, where, sizeof where);
    int data = !strncmp(where, "the batch's input", 17);
    return loom_fail(LOOM_EDIVERGED, "trainer: step %ld: the gradient of layer %d, %s (%s) holds a NaN or an infinity "
                                     "(the loss is finite)%s%s; %s (%s)",
                     t->step + 1, layer, l ? l->name : "?", l ? loom_op_name(l->op) : "?",
                     where[0] ? "; the first one is in " : "", where,
                     updated ? "the other layers were updated and that one was not: training should stop here"
                             : "the weights were not updated",
                     data ? "the data holds a NaN or an infinity"
                          : "most likely the learning rate is too high: lower it, or add --clip");
}

static int gather_results(loom_trainer *t, int local_rc, double *loss, int *correct) {
    rank_out mine = {0, 0, local_rc != LOOM_OK}, all[LOOM_EXEC_MAX_REPLICAS];
    for (int s = 0; s < t->S && local_rc == LOOM_OK; s++) {
        mine.loss += t->so[s].loss;
        mine.correct += t->so[s].correct;
    }
    if (t->R > LOOM_EXEC_MAX_REPLICAS) return loom_fail(LOOM_EINVAL, "trainer: at most %d ranks", LOOM_EXEC_MAX_REPLICAS);
    char err[300];
    snprintf(err, sizeof err, "%s", loom_error());
    int kind = loom_error_kind();
    if (loom_dist_allgather(t->o.dist, &mine, sizeof mine, all)) return LOOM_ERR;
    double l = 0, c = 0;
    for (int r = 0; r < t->R; r++) {
        if (all[r].failed && r == t->rank) return loom_fail(kind, "%s", err);
        if (all[r].failed) return loom_fail(LOOM_EIO, "trainer: rank %d of %d failed on its part of the batch (its "
                                                      "message is in its output)", r, t->R);
        l += all[r].loss, c += all[r].correct;
    }
    *loss = l;
    *correct = (int)c;
    return LOOM_OK;
}

/* Several ranks: every shard's batch-norm statistics, of every rank, in rank and shard order (the global
 * shard order in deterministic mode), into t->stats. */
static int gather_stats(loom_trainer *t) {
    size_t nb = loom_graph_buffer_count(t->g);
    if (!nb) {
        t->nstats = 0;
        return LOOM_OK;
    }
    int cnt = 0;
    float *local = t->gather_local;
    for (int s = 0; s < t->S; s++)
        if (t->so[s].n > 0) {
            local[(size_t)cnt * (nb + 1)] = (float)t->so[s].n;
            memcpy(local + (size_t)cnt * (nb + 1) + 1, loom_exec_batch_stats(t->ex[s]), nb * sizeof(float));
            cnt++;
        }
    if (loom_dist_allgatherv_f32(t->o.dist, local, cnt * (int)(nb + 1), t->gather, t->gather_counts)) return LOOM_ERR;
    size_t total = 0;
    for (int r = 0; r < t->R; r++) total += (size_t)t->gather_counts[r];
    t->nstats = 0;
    for (size_t at = 0; at < total; at += nb + 1) {
        t->stat_counts[t->nstats] = (size_t)t->gather[at];
        t->stats[t->nstats++] = t->gather + at + 1;
    }
    return LOOM_OK;
}

int loom_trainer_step(loom_trainer *t, const float *x, const int32_t *labels, int n, float lr,
                      loom_step_result *r) {
    if (!(lr >= 0 && isfinite(lr)))
        return loom_fail(LOOM_EINVAL, "trainer: learning rate %g must be a finite number >= 0", (double)lr);
    double t0 = loom_seconds();
    if (t->overlap) { /* the communication thread starts on this step's buckets as they are ready */
        int N = loom_graph_count(t->g);
        for (int s = 0; s < t->S; s++) atomic_store(&t->done_node[s], N);
        atomic_store(&t->phase1_over, 0);
        pthread_mutex_lock(&t->cmu);
        t->comm_gen++;
        pthread_cond_broadcast(&t->ccv);
        pthread_mutex_unlock(&t->cmu);
    }
    long opt_step;
    double opt_mu;
    loom_optim_get_scalars(t->opt, &opt_step, &opt_mu);
    atomic_store(&t->shard_failed, 0);
    if (t->early) { /* phase 2 begins inside phase 1's run */
        int N = loom_graph_count(t->g);
        for (int s = 0; s < t->S; s++) atomic_store(&t->done_node[s], N);
        memset(t->bad_unit, 0, t->nchunks);
        loom_optim_begin_step(t->opt, lr);
        atomic_store(&t->next_unit, 0);
    }
    int rc = run_batch(t, "step", x, labels, n, 1, NULL);
    if (t->early && rc) loom_optim_set_scalars(t->opt, opt_step, opt_mu); /* the step was not taken */
    if (t->overlap) {
        pthread_mutex_lock(&t->cmu);
        atomic_store(&t->phase1_over, 1);
        pthread_cond_broadcast(&t->ccv);
        while (t->comm_done != t->comm_gen) pthread_cond_wait(&t->ccv, &t->cmu);
        int crc = t->comm_rc;
        pthread_mutex_unlock(&t->cmu);
        if (crc) return loom_fail(t->comm_kind, "%s", t->comm_err);
    }
    double loss = 0;
    int correct = 0;
    if (t->R > 1) {
        if (gather_results(t, rc, &loss, &correct)) return LOOM_ERR;
    } else if (rc) {
        return LOOM_ERR;
    } else {
        for (int s = 0; s < t->S; s++) loss += t->so[s].loss, correct += t->so[s].correct;
    }
    /* a loss that is not finite would carry NaN into every weight: refuse the update, and say where it began */
    if (!isfinite(loss)) {
        loom_optim_set_scalars(t->opt, opt_step, opt_mu); /* (early reduce had begun the step) */
        return nonfinite_loss(t, loss);
    }
    double t1 = loom_seconds();
    /* batch-norm statistics of the shards that saw data, weighted by their counts in phase 2 */
    if (t->R > 1) {
        if (gather_stats(t)) return LOOM_ERR;
    } else {
        t->nstats = 0;
        for (int s = 0; s < t->S; s++)
            if (t->so[s].n > 0) {
                t->stats[t->nstats] = loom_exec_batch_stats(t->ex[s]);
                t->stat_counts[t->nstats++] = (size_t)t->so[s].n;
            }
    }
    if (t->early) {
        update_running(t, 0, 1);
    } else {
        memset(t->bad_unit, 0, t->nchunks);
        loom_optim_begin_step(t->opt, lr);
        atomic_store(&t->next_unit, 0);
        loom_pool_run(t->pool, phase_reduce, t);
    }
    if (t->R > 1 && !t->overlap) { /* this rank's sum, then all ranks' */
        float *g0 = loom_exec_param_grad(t->ex[0]);
        size_t P = loom_graph_param_count(t->g);
        if ((t->tree ? loom_dist_tree_sum_f32(t->o.dist, g0, P) : loom_dist_allreduce_f32(t->o.dist, g0, P)))
            return LOOM_ERR;
    }
    if (t->R > 1 && t->o.clip_norm > 0) loom_pool_run(t->pool, phase_norm, t);
    if (t->R > 1 && t->o.clip_norm <= 0) loom_pool_run(t->pool, phase_norm, t); /* marks bad units */
    if (nonfinite_gradient(t, !defer_apply(t))) {
        if (defer_apply(t)) loom_optim_set_scalars(t->opt, opt_step, opt_mu); /* the step was not taken */
        else t->step++;                                                       /* it was, but for one layer */
        return LOOM_ERR;
    }
    double norm = 0;
    t->clip_scale = 1.0f;
    if (t->o.clip_norm > 0) {
        double sq = 0;
        for (size_t c = 0; c < t->nchunks; c++) sq += t->chunk_sq[c];
        norm = sqrt(sq);
        t->clip_scale = norm > t->o.clip_norm ? (float)(t->o.clip_norm / (norm + 1e-6)) : 1.0f;
    }
    if (defer_apply(t)) loom_pool_run(t->pool, phase_apply, t);
    double t2 = loom_seconds();
    t->step++;
    double fwd = 0, bwd = 0;
    for (int w = 0; w < t->T; w++) { /* the slowest worker's */
        if (t->worker_fwd[w] > fwd) fwd = t->worker_fwd[w];
        if (t->worker_bwd[w] > bwd) bwd = t->worker_bwd[w];
    }
    double busy_sum = 0, red_sum = 0;
    for (int w = 0; w < t->T; w++) busy_sum += t->worker_busy[w], red_sum += t->early ? t->worker_red[w] : 0;
    loom_step_timing *tm = &t->timing;
    tm->forward += fwd;
    tm->backward += bwd;
    tm->reduce += t2 - t1 + red_sum / t->T; /* early reduce: the workers' mean time in units, in phase 1's run */
    tm->idle += (t1 - t0) - (busy_sum + red_sum) / t->T;
    tm->total += t2 - t0;
    tm->steps++;
    if (r) {
        r->loss = loss / n;
        r->correct = correct;
        r->grad_norm = norm;
    }
    return LOOM_OK;
}

int loom_trainer_eval(loom_trainer *t, const float *x, const int32_t *labels, int n,
                      double *loss_sum, int *correct, float *out) {
    int rc = run_batch(t, "eval", x, labels, n, 0, out);
    double loss = 0;
    int c = 0;
    if (t && t->R > 1) {
        if (gather_results(t, rc, &loss, &c)) return LOOM_ERR;
    } else if (rc) {
        return LOOM_ERR;
    } else {
        for (int s = 0; s < t->S; s++) {
            loss += t->so[s].loss;
            c += t->so[s].correct;
        }
    }
    /* losses were scaled per sample by 1/n only in the gradient, not in the value */
    if (loss_sum) *loss_sum = loss;
    if (correct) *correct = c;
    t->out = NULL;
    return LOOM_OK;
}

const loom_trainer_opts *loom_trainer_options(const loom_trainer *t) { return &t->o; }
int loom_trainer_threads(const loom_trainer *t) { return t->T; }
int loom_trainer_infer_piece(const loom_trainer *t) { return t->micro; }
int loom_trainer_batch(const loom_trainer *t) { return t->o.batch; }
long loom_trainer_steps(const loom_trainer *t) { return t->step; }
void loom_trainer_set_steps(loom_trainer *t, long steps) { t->step = steps; }
loom_optim *loom_trainer_optim(loom_trainer *t) { return t->opt; }
loom_graph *loom_trainer_graph(loom_trainer *t) { return t->g; }
const loom_step_timing *loom_trainer_timing(const loom_trainer *t) { return &t->timing; }
void loom_trainer_reset_timing(loom_trainer *t) { memset(&t->timing, 0, sizeof t->timing); }

/* A 64-bit digest of n floats' bits (FNV-1a over 64-bit words). */
static uint64_t digest(const float *v, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], sizeof b);
        h = (h ^ b) * 0x100000001b3ull;
    }
    return h;
}

int loom_trainer_sync(loom_trainer *t) {
    if (!t) return loom_fail(LOOM_EINVAL, "loom_trainer_sync: no trainer");
    if (t->R == 1) return LOOM_OK;
    loom_dist *d = t->o.dist;
    size_t P = loom_graph_param_count(t->g), B = loom_graph_buffer_count(t->g);
    if (loom_dist_bcast(d, loom_graph_params(t->g), P * sizeof(float)) ||
        loom_dist_bcast(d, loom_graph_buffers(t->g), B * sizeof(float)))
        return LOOM_ERR;
    for (int k = 0; k < loom_optim_state_count(t->opt); k++)
        if (loom_dist_bcast(d, loom_optim_state(t->opt, k), P * sizeof(float))) return LOOM_ERR;
    long steps[2];
    double mu;
    loom_optim_get_scalars(t->opt, &steps[1], &mu);
    steps[0] = t->step;
    if (loom_dist_bcast(d, steps, sizeof steps) || loom_dist_bcast(d, &mu, sizeof mu)) return LOOM_ERR;
    t->step = steps[0];
    loom_optim_set_scalars(t->opt, steps[1], mu);
    return LOOM_OK;
}

int loom_trainer_check_replicas(loom_trainer *t) {
    if (!t) return loom_fail(LOOM_EINVAL, "loom_trainer_check_replicas: no trainer");
    if (t->R == 1) return LOOM_OK;
    uint64_t mine = digest(loom_graph_params(t->g), loom_graph_param_count(t->g), 0xcbf29ce484222325ull);
    mine = digest(loom_graph_buffers(t->g), loom_graph_buffer_count(t->g), mine);
    uint64_t all[LOOM_EXEC_MAX_REPLICAS];
    if (t->R > LOOM_EXEC_MAX_REPLICAS) return loom_fail(LOOM_EINVAL, "trainer: at most %d ranks", LOOM_EXEC_MAX_REPLICAS);
    if (loom_dist_allgather(t->o.dist, &mine, sizeof mine, all)) return LOOM_ERR;
    for (int r = 1; r < t->R; r++)
        if (all[r] != all[0])
            return loom_fail(LOOM_EDIVERGED, "trainer: after step %ld the model on rank %d differs from rank 0's "
                                             "(checksums %016llx and %016llx): the replicas have diverged, and "
                                             "training stops rather than go on with %d different models",
                             t->step, r, (unsigned long long)all[r], (unsigned long long)all[0], t->R);
    return LOOM_OK;
}
