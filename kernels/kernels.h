/* loom — numerical kernels on raw float pointers (float32, NCHW).
 *
 * Rules shared by every kernel:
 *  - no allocation, no threads, no I/O; scratch memory is passed in;
 *  - n is the batch size; tensors are dense, row-major, NCHW;
 *  - forward kernels overwrite their outputs;
 *  - backward kernels ACCUMULATE (+=) into every gradient they write: input
 *    gradients (dx) and parameter gradients (dW, db, dgamma, ...). Callers zero
 *    them first. Accumulation is what a DAG needs when one output feeds several
 *    layers, and what a trainer needs when it sums several shards.
 *  - a gradient pointer that is NULL is not computed (e.g. dx of the input).
 */
#ifndef LOOM_KERNELS_H
#define LOOM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "loom/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM ---------------------------------------------------------------- */

/* C[m,n] = alpha * op(A) op(B) + beta * C, row-major, through cblas_sgemm.
 * ta/tb non-zero transpose A/B; lda/ldb/ldc as in cblas (row-major). */
void loom_k_gemm(int ta, int tb, int m, int n, int k, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* Make the BLAS library single-threaded: the runtime owns parallelism. */
void loom_k_blas_single_thread(void);

/* ---- dense (fully connected) ------------------------------------------------
 * x [n, in], W [out, in] (PyTorch/ONNX Gemm layout), b [out] or NULL, y [n, out]. */
void loom_k_dense_fwd(const float *x, const float *W, const float *b, float *y,
                      int n, int in, int out);
void loom_k_dense_bwd(const float *x, const float *W, const float *dy,
                      float *dx, float *dW, float *db, int n, int in, int out);

/* ---- conv2d -------------------------------------------------------------------
 * x [n, c, h, w], W [oc, c/groups, kh, kw], b [oc] or NULL, y [n, oc, oh, ow].
 * Zero padding ph/pw on both sides, stride sh/sw, dilation dh/dw. */
/* Compute s->oh, s->ow from the rest; returns 0, or -1 if the output would be empty. */
int loom_k_conv2d_out(loom_conv_shape *s);
/* Floats of scratch that conv2d forward/backward need: the im2col buffer for
 * one image plus the per-group weight-gradient accumulator (K x oc). */
size_t loom_k_conv2d_scratch(const loom_conv_shape *s);
void loom_k_conv2d_fwd(const loom_conv_shape *s, const float *x, const float *W,
                       const float *b, float *y, int n, float *scratch);
void loom_k_conv2d_bwd(const loom_conv_shape *s, const float *x, const float *W,
                       const float *dy, float *dx, float *dW, float *db, int n,
                       float *scratch);

/* The weight (and bias) gradient of a 3x3 convolution with stride 1, padding 1,
 * no dilation and one group, on the 8-channel-blocked layout oneDNN's AVX2 code
 * uses (x [n][ic/8][h][w][8], dy [n][oc/8][h][w][8]): dW [oc][ic][3][3] and db
 * [oc] (NULL: not computed) accumulate the batch's sums. AVX2 + FMA code: it
 * returns 0 and does nothing unless this CPU has them, ic is a multiple of 8,
 * oc of 16 and w >= 2; else 1. acc: loom_k_conv3x3_wgrad_scratch floats. */
size_t loom_k_conv3x3_wgrad_scratch(int ic, int oc);
int loom_k_conv3x3_wgrad_blk8(const float *x, const float *dy, int n, int ic, int oc, int h, int w, float *acc,
                              float *dw, float *db);

/* Inference 3x3 convolution, stride 1, padding 1, one group, by Winograd
 * F(2x2, 3x3), on the same 8-channel blocks: y [n][k/8][h][w][8] =
 * conv(x, W [k][c][3][3]) + bias[k] (NULL: none) + add (NULL: none; y's
 * layout), then max(0, .) if relu. Overwrites y. AVX2 + FMA code: returns 0
 * and does nothing unless this CPU has them, c is a multiple of 8, k of 16,
 * and h, w are even; else 1. scratch: loom_k_conv3x3_wino_scratch floats. */
size_t loom_k_conv3x3_wino_scratch(int c, int k, int w);
int loom_k_conv3x3_wino_blk8(const float *x, const float *W, const float *bias, const float *add, int relu, float *y,
                             int n, int c, int k, int h, int w, float *scratch);

/* im2col / col2im for one image and one group: col [c*kh*kw, oh*ow].
 * col2im accumulates into x. */
void loom_k_im2col(const loom_conv_shape *s, int cin, const float *x, float *col);
void loom_k_col2im(const loom_conv_shape *s, int cin, const float *col, float *x);

/* ---- pooling -------------------------------------------------------------------
 * x [n, c, h, w] -> y [n, c, oh, ow]. Padding is implicit -inf (max) or
 * excluded from the count (average, count_include_pad = 0) / included (= 1). */
int loom_k_pool_out(loom_pool_shape *s);
/* argmax [n, c, oh, ow] receives the flat index (within the image plane) of each max. */
void loom_k_maxpool_fwd(const loom_pool_shape *s, const float *x, float *y,
                        int32_t *argmax, int n);
void loom_k_maxpool_bwd(const loom_pool_shape *s, const float *dy,
                        const int32_t *argmax, float *dx, int n);
void loom_k_avgpool_fwd(const loom_pool_shape *s, const float *x, float *y, int n,
                        int count_include_pad);
void loom_k_avgpool_bwd(const loom_pool_shape *s, const float *dy, float *dx, int n,
                        int count_include_pad);

/* Global average pool: x [n, c, hw] -> y [n, c]. */
void loom_k_gavgpool_fwd(const float *x, float *y, int n, int c, int hw);
void loom_k_gavgpool_bwd(const float *dy, float *dx, int n, int c, int hw);

/* ---- elementwise activations (len = number of floats) ---------------------------
 * Backward takes the forward input x and/or output y, whichever is cheaper. */
void loom_k_relu_fwd(const float *x, float *y, size_t len);
void loom_k_relu_bwd(const float *x, const float *dy, float *dx, size_t len);
void loom_k_leaky_relu_fwd(const float *x, float *y, size_t len, float alpha);
/* y = min(max(x, lo), hi) (NaN to lo); backward dx += dy where lo < x < hi. */
void loom_k_clip_fwd(const float *x, float *y, size_t len, float lo, float hi);
void loom_k_clip_bwd(const float *x, const float *dy, float *dx, size_t len, float lo, float hi);
/* Row log-softmax of [rows, k]; backward dx += dy - exp(y) sum(dy). */
void loom_k_log_softmax_fwd(const float *x, float *y, int rows, int k);
void loom_k_log_softmax_bwd(const float *y, const float *dy, float *dx, int rows, int k);
/* y = x * w + b per element of each of n samples of len values; backward
 * dx += dy * w, dw += sum dy * x, db += sum dy (dw/db/dx may be NULL). */
void loom_k_scale_fwd(const float *x, const float *w, const float *b, float *y, int n, size_t len);
void loom_k_scale_bwd(const float *x, const float *w, const float *dy, float *dx, float *dw, float *db, int n,
                      size_t len);
void loom_k_leaky_relu_bwd(const float *x, const float *dy, float *dx, size_t len, float alpha);
void loom_k_sigmoid_fwd(const float *x, float *y, size_t len);
void loom_k_sigmoid_bwd(const float *y, const float *dy, float *dx, size_t len);
void loom_k_tanh_fwd(const float *x, float *y, size_t len);
void loom_k_tanh_bwd(const float *y, const float *dy, float *dx, size_t len);

/* Softmax over the last axis: x [rows, k] -> y [rows, k] (max-subtracted, stable). */
void loom_k_softmax_fwd(const float *x, float *y, int rows, int k);
void loom_k_softmax_bwd(const float *y, const float *dy, float *dx, int rows, int k);

/* ---- inverted dropout -------------------------------------------------------------
 * Element i of sample j is kept with probability 1-p, decided by
 * loom_rng_uniform(loom_rng_key(key, sample_base + j, 0, 0), i) >= p,
 * kept values are scaled by 1/(1-p). mask [n*per_sample] receives the scale
 * (0 or 1/(1-p)). sample_base is the global index of the first sample, so the
 * mask of a sample does not depend on how the batch was cut into shards. */
void loom_k_dropout_fwd(const float *x, float *y, float *mask, int n, size_t per_sample,
                        float p, uint64_t key, uint64_t sample_base);
void loom_k_dropout_bwd(const float *dy, const float *mask, float *dx, size_t len);

/* ---- batch normalisation ---------------------------------------------------------
 * x [n, c, hw] (hw = 1 for 1d batch norm over features). gamma/beta [c].
 * Training: normalise with the batch mean and biased variance, save mean and
 * 1/sqrt(var+eps) for backward, and the biased variance itself in batch_var
 * (may be NULL) for the running statistics. Inference: use running mean/var. */
void loom_k_batchnorm_fwd_train(const float *x, float *y, int n, int c, int hw,
                                const float *gamma, const float *beta, float eps,
                                float *save_mean, float *save_invstd, float *batch_var);
void loom_k_batchnorm_fwd_infer(const float *x, float *y, int n, int c, int hw,
                                const float *gamma, const float *beta, float eps,
                                const float *run_mean, const float *run_var);
/* running = (1-momentum)*running + momentum*batch, from the batch mean and
 * biased variance, the variance made unbiased as var*m/(m-1), m = n*hw
 * (PyTorch's convention). */
void loom_k_batchnorm_update_running(float *run_mean, float *run_var, int c, const float *batch_mean,
                                     const float *batch_var, float momentum, size_t m);
/* The mean and biased variance of a whole batch from those of its nrep parts,
 * part r holding counts[r] values per channel (its mean means[r][off + k],
 * its biased variance vars[r][off + k]), combined in the given order:
 *   mean = sum n_r mean_r / N,  var = sum n_r (var_r + (mean_r - mean)^2) / N.
 * Channels k in [0, c); results to mean[k], var[k]. */
void loom_k_batchnorm_combine(const float *const *means, const float *const *vars, const size_t *counts,
                              int nrep, size_t off, int c, float *mean, float *var);
void loom_k_batchnorm_bwd(const float *x, const float *dy, float *dx,
                          float *dgamma, float *dbeta, int n, int c, int hw,
                          const float *gamma, const float *save_mean,
                          const float *save_invstd);

/* The machine's physical memory in bytes (0: unknown), for checks before work. */
double loom_k_memory_bytes(void);

/* `count` values of `size` bytes, zeroed, 64-byte aligned; NULL when memory is short or the product
 * overflows. Release with loom_k_big_free (not free). Buffers of 4 MiB and more are mapped on a
 * 2 MiB boundary with Linux's transparent huge pages asked for (fewer page walks while layers
 * stream through activations), and their pages become resident only when written. */
void *loom_k_big_alloc(size_t count, size_t size);
void loom_k_big_free(void *p);

/* Whether this CPU has AVX2 and FMA, which loom's own x86 kernels need (0 on other architectures). */
int loom_k_avx2_fma(void);

/* ---- structure ---------------------------------------------------------------------- */
/* y = a + b (residual add); backward: da += dy, db += dy. */
void loom_k_add_fwd(const float *a, const float *b, float *y, size_t len);
/* dx += dy */
void loom_k_accumulate(const float *dy, float *dx, size_t len);
/* Concatenate along channels: input i is [n, ci[i], hw]; y is [n, sum ci, hw]. */
void loom_k_concat_fwd(const float *const *xs, const int *cs, int nin, float *y,
                       int n, int hw);
void loom_k_concat_bwd(const float *dy, float *const *dxs, const int *cs, int nin,
                       int n, int hw);

/* Element-wise a (op) b, op 0..3 = + - * /, with broadcasting: per sample a is
 * [ac, ah, aw], b [bc, bh, bw], y [c, h, w], each of a's and b's dimensions
 * equal to y's or 1 (repeated). */
void loom_k_arith_fwd(int op, const float *a, const int *ad, const float *b, const int *bd, float *y,
                      const int *yd, int n);
/* Gradients of the above: da and db (NULL: not wanted) summed over the
 * dimensions their operand was repeated along; added to what is there when
 * acc_a / acc_b, else written. y is the forward's output (for division). */
void loom_k_arith_bwd(int op, const float *a, const int *ad, const float *b, const int *bd, const float *y,
                      const float *dy, const int *yd, int n, float *da, int acc_a, float *db, int acc_b);
/* An image [n, c, h, w] padded by top, left, bottom, right with value. */
void loom_k_pad_fwd(const float *x, float *y, int n, int c, int h, int w, int top, int left, int bottom, int right,
                    float value);
/* dx = (or +=, acc) the inner window of dy. */
void loom_k_pad_bwd(const float *dy, float *dx, int acc, int n, int c, int h, int w, int top, int left, int bottom,
                    int right);

/* ---- losses --------------------------------------------------------------------------
 * Each returns the SUM of the per-sample losses over its rows and accumulates
 * scale * d(sum)/d(input) into the gradient (NULL: not computed). A trainer
 * uses scale = 1/total_batch so that shards add up to the batch mean. */

/* Softmax cross-entropy on logits [n, k], labels in [0, k). Fused, stable. */
double loom_k_softmax_xent(const float *logits, const int32_t *labels, float *dlogits,
                           int n, int k, float scale);
/* Mean squared error per sample: sum over k of (p - t)^2 / k. */
double loom_k_mse(const float *pred, const float *target, float *dpred, int n, int k,
                  float scale);
/* Binary cross-entropy on logits per sample: mean over k of
 * max(z,0) - z*t + log(1+exp(-|z|)). */
double loom_k_bce_logits(const float *logits, const float *target, float *dlogits,
                         int n, int k, float scale);
/* Multi-class hinge (Weston-Watkins / PyTorch MultiMarginLoss p=1):
 * per sample sum over j != y of max(0, margin - z_y + z_j) / k. */
double loom_k_hinge(const float *logits, const int32_t *labels, float *dlogits,
                    int n, int k, float margin, float scale);

/* Index of the largest of x[0..k) (first on ties). */
int loom_k_argmax(const float *x, int k);

/* ---- resizing uint8 HWC images -----------------------------------------------------
 * Pillow's BILINEAR resampling (an area-averaging triangle filter when
 * shrinking), so images prepared with PIL and with loom agree: the one
 * resizer of loom, used by the data readers and the augmentation chain. */
size_t loom_k_resize_scratch(int sw, int sh, int c, int dw, int dh);
/* src sw x sh x c -> dst dw x dh x c; scratch of loom_k_resize_scratch bytes
 * (any alignment; NULL allowed when the sizes are equal). */
void loom_k_resize(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh, uint8_t *scratch);

/* ---- the trainer's loss by kind ---------------------------------------------------
 * Loss of logits [n, K] against labels, accumulating scale * gradient into dlogits. */
double loom_k_loss(loom_loss_kind kind, const float *logits, const int32_t *labels, float *dlogits,
                 int n, int k, float scale, float *onehot_scratch);

#ifdef __cplusplus
}
#endif
#endif
