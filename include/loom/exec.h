/* loom — executing a graph: one loom_exec is one replica planned for a fixed
 * maximum batch. It owns activations, activation gradients, the parameter
 * gradient (flat, same layout as the graph's parameters), dropout masks,
 * batch-norm batch statistics and conv scratch, all allocated once here. The
 * graph's parameters are only read, so several execs (one per worker) can run
 * the same graph at once. */
#ifndef LOOM_EXEC_H
#define LOOM_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_exec loom_exec;

/* The kernels an exec runs on. ONEDNN: convolutions, batch norm, pooling and
 * activations of images through oneDNN (Debian's libdnnl), in its
 * channel-blocked layout, dispatched to the CPU's instruction set at run
 * time (AVX-512, AVX2, SSE4.1; DNNL_MAX_CPU_ISA caps it). PORTABLE: loom's
 * own C kernels (im2col + BLAS), the reference the other is tested
 * against. AUTO (the default): oneDNN where loom was built with it and the
 * CPU runs it, else portable; the environment variable
 * LOOM_KERNELS=portable|onednn|auto chooses when no call has. */
typedef enum { LOOM_KERNELS_AUTO, LOOM_KERNELS_PORTABLE, LOOM_KERNELS_ONEDNN } loom_kernels;
/* For execs made from now on. LOOM_OK, or LOOM_ERR (oneDNN asked for and not available). */
int loom_set_kernels(loom_kernels k);
/* "portable" or "onednn avx2", "onednn avx512_core", ... */
const char *loom_exec_kernels(const loom_exec *e);
/* What runs layer i: "portable", oneDNN's implementation name ("jit:avx2"), "(fused)" or "(view)". */
const char *loom_exec_layer_impl(const loom_exec *e, loom_node i);
/* Per-layer timing (loom bench --layers): on, forward and backward add the
 * seconds each layer takes (a layout conversion counts to the layer whose
 * output it converts) until it is turned off; on again starts from zero. */
int loom_exec_set_timing(loom_exec *e, int on);
void loom_exec_layer_seconds(const loom_exec *e, loom_node i, double *fwd, double *bwd);
/* Bytes the exec holds (activations, gradients, workspaces). */
size_t loom_exec_bytes(const loom_exec *e);

/* Plan and allocate everything for batches of up to max_batch samples. NULL on error. */
loom_exec *loom_exec_new(loom_graph *g, int max_batch);
/* LOOM_EXEC_DEFER_DENSE: backward leaves the weight gradients of trainable
 * dense layers out and keeps what they are made of (the layer's input and
 * output gradient) until the next forward; loom_exec_dense_weight_grad then
 * forms them for several replicas at once. A data-parallel trainer saves the
 * per-replica copies of the largest gradients this way (memory, and the
 * reduction's traffic) and multiplies over the whole batch in one product. */
enum { LOOM_EXEC_DEFER_DENSE = 1, LOOM_EXEC_UNFUSED = 2 };
/* LOOM_EXEC_UNFUSED: inference runs every layer on its own. By default an
 * inference forward (training = 0) on the oneDNN kernels folds a batch norm
 * into the convolution before it and applies a following addition and ReLU
 * in the same pass; the outputs agree to rounding, but the activations of
 * the folded layers are then not computed (the exec's output is). */
loom_exec *loom_exec_new_flags(loom_graph *g, int max_batch, unsigned flags);
/* How many convolutions an inference forward runs with what follows them fused in. */
int loom_exec_fusions(const loom_exec *e);
/* Of those, how many run on loom's own Winograd kernel (AVX2; LOOM_WINOGRAD). */
int loom_exec_winograd(const loom_exec *e);
/* Whether backward leaves layer i's weight gradient to loom_exec_dense_weight_grad. */
int loom_exec_defers(const loom_exec *e, loom_node i);
/* The block [r0, r1) x [c0, c1) of dense layer i's weight gradient summed
 * over the replicas' last backward, in replica order, into dW (the layer's
 * [out, in] weight gradient, row stride in): written, not added to. The
 * replicas are execs of one graph made with LOOM_EXEC_DEFER_DENSE; one
 * without samples adds nothing. */
void loom_exec_dense_weight_grad(loom_exec *const *ex, int nrep, loom_node i, int r0, int r1, int c0, int c1,
                                 float *dW);
/* The same block into dst [r1 - r0, c1 - c0] with row stride ld (a buffer of its own, in cache). */
void loom_exec_dense_weight_grad_to(loom_exec *const *ex, int nrep, loom_node i, int r0, int r1, int c0, int c1,
                                    float *dst, int ld);
void loom_exec_free(loom_exec *e);

int loom_exec_max_batch(const loom_exec *e);
/* The input buffer [max_batch, c, h, w] to fill before forward. */
float *loom_exec_input(loom_exec *e);
/* The output of the last forward [n, out_size]. */
const float *loom_exec_output(const loom_exec *e);
size_t loom_exec_output_size(const loom_exec *e); /* per sample */
/* After an inference forward of n samples: the softmax of the outputs into
 * probs [n, out_size] (may be NULL; a model that ends in softmax gives its
 * outputs as they are) and the most probable class of each into classes [n]
 * (may be NULL). */
void loom_exec_probabilities(const loom_exec *e, int n, float *probs, int32_t *classes);
/* Gradient of the loss w.r.t. the output, filled (accumulated) by a loss before backward. */
float *loom_exec_output_grad(loom_exec *e);
/* Flat parameter gradient [param_count]; backward accumulates into it
 * (except deferred dense weights, see LOOM_EXEC_DEFER_DENSE). */
float *loom_exec_param_grad(loom_exec *e);

/* Forward n samples (1..max_batch; LOOM_OK, or LOOM_ERR). training: dropout on, batch norm uses batch statistics.
 * dropout_key / sample_base: see loom_k_dropout_fwd (sample_base = global
 * index of this shard's first sample, so masks do not depend on sharding). */
int loom_exec_forward(loom_exec *e, int n, int training, uint64_t dropout_key, uint64_t sample_base);
/* Zero the output gradient (the other activation gradients are managed by
 * backward). Call before the loss fills the output gradient. */
void loom_exec_zero_act_grad(loom_exec *e);
/* Zero the parameter gradient. */
void loom_exec_zero_param_grad(loom_exec *e);
/* held = 1: a promise that the graph's parameters and batch-norm running
 * statistics stay as they are until held = 0. Inference forwards in between
 * compare the weights they folded (batch norm into the convolution) with the
 * parameters once, not at every call: the trainer holds them over an
 * inference pass that goes in pieces of a sample or a few. */
void loom_exec_hold_weights(loom_exec *e, int held);
/* Forget the last forward: a replica given no samples in a step must not
 * lend its previous step's activations to loom_exec_dense_weight_grad. */
void loom_exec_forget(loom_exec *e);
/* Backward of the n samples of the last forward, a training one; accumulates
 * the parameter gradient. LOOM_OK, or LOOM_ERR. */
int loom_exec_backward(loom_exec *e, int n);

/* fn(ctx, i) after node i's backward, for i from the last node down to 1,
 * then fn(ctx, 0) at the end, in the thread running the backward: node i's
 * parameter gradients are final then (without LOOM_EXEC_DEFER_DENSE). How
 * the trainer sends gradients to other ranks while backward goes on. */
void loom_exec_set_backward_hook(loom_exec *e, void (*fn)(void *ctx, int node), void *ctx);

/* After a forward of n samples: the first node (0: the input) whose output
 * holds a NaN or an infinity, or -1 if none — where a non-finite loss began. */
loom_node loom_exec_first_nonfinite(const loom_exec *e, int n);

/* Batch-norm batch statistics of the last training forward, per BN channel in
 * the same layout as the graph's buffers: mean in place of running mean,
 * biased variance in place of running variance. buffer_count floats. */
const float *loom_exec_batch_stats(const loom_exec *e);

/* Most replicas whose statistics loom_exec_update_running combines. */
#define LOOM_EXEC_MAX_REPLICAS 1024

/* Fold the batch statistics of nrep replicas (pointers in a fixed order;
 * replica r saw counts[r] samples) into the running buffers of batch-norm
 * layer `layer` (other layers: nothing). The statistics combined are exactly
 * those of the whole batch, however unequal the replicas' shares. Layers are
 * independent, so different threads may update different layers at once. */
void loom_exec_update_running(loom_graph *g, loom_node layer, const float *const *stats, const size_t *counts,
                              int nrep);

#ifdef __cplusplus
}
#endif
#endif
