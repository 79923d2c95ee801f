/* One replica's execution of a graph. Everything a forward/backward pass
 * writes is planned here once, from the shapes, for max_batch samples: the
 * steady-state training step allocates nothing. Parameters are read from the
 * graph and never written, which is what lets workers share them. */
#include "loom/exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph_impl.h"
#include "loom/error.h"
#include "kernels/kernels.h"

struct loom_exec {
    loom_graph *g;
    int max_batch;
    float **act, **grad;   /* per node: [max_batch, size]; flatten aliases its input */
    float **mask;          /* dropout */
    int32_t **argmax;      /* max pool */
    float *save;           /* BN per buffer slot: mean | invstd (for backward) */
    float *stats;          /* BN per buffer slot: mean | biased var (for running stats) */
    float *pgrad;          /* flat parameter gradient */
    float *scratch;        /* conv im2col */
    float *arena;          /* one allocation for all float buffers */
    size_t arena_len;
    int32_t *iarena;
    int trained;           /* last forward was a training one */
};

static int aliases_input(const loom_layer *l) { return l->op == LOOM_OP_FLATTEN; }

loom_exec *loom_exec_new(loom_graph *g, int max_batch) {
    if (!g || !g->finished) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: the graph is not finished (call loom_graph_finish)");
        return NULL;
    }
    if (g->err[0]) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: %s", g->err);
        return NULL;
    }
    if (max_batch <= 0) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: batch %d must be positive", max_batch);
        return NULL;
    }
    loom_exec *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->g = g;
    e->max_batch = max_batch;
    int n = g->n;
    e->act = calloc((size_t)n, sizeof *e->act);
    e->grad = calloc((size_t)n, sizeof *e->grad);
    e->mask = calloc((size_t)n, sizeof *e->mask);
    e->argmax = calloc((size_t)n, sizeof *e->argmax);
    if (!e->act || !e->grad || !e->mask || !e->argmax) goto oom;

    /* Count first, then carve one arena: fewer allocations, better locality. */
    size_t B = (size_t)max_batch, fl = 0, il = 0, scratch = 0;
    for (int i = 0; i < n; i++) {
        const loom_layer *l = &g->nodes[i];
        if (!aliases_input(l)) fl += 2 * B * l->size;
        if (l->op == LOOM_OP_DROPOUT) fl += B * l->size;
        if (l->op == LOOM_OP_MAXPOOL) il += B * l->size;
        if (l->op == LOOM_OP_CONV2D) {
            size_t s = loom_k_conv2d_scratch(&l->a.conv);
            if (s > scratch) scratch = s;
        }
    }
    fl += 2 * g->n_buffers + g->n_params + scratch + 1;
    e->arena = malloc(fl * sizeof(float));
    e->iarena = malloc((il + 1) * sizeof(int32_t));
    if (!e->arena || !e->iarena) goto oom;
    memset(e->arena, 0, fl * sizeof(float));
    e->arena_len = fl;
    float *p = e->arena;
    int32_t *ip = e->iarena;
    for (int i = 0; i < n; i++) {
        const loom_layer *l = &g->nodes[i];
        if (aliases_input(l)) {
            e->act[i] = e->act[l->in[0]];
            e->grad[i] = e->grad[l->in[0]];
        } else {
            e->act[i] = p, p += B * l->size;
            e->grad[i] = p, p += B * l->size;
        }
        if (l->op == LOOM_OP_DROPOUT) e->mask[i] = p, p += B * l->size;
        if (l->op == LOOM_OP_MAXPOOL) e->argmax[i] = ip, ip += B * l->size;
    }
    e->save = p, p += g->n_buffers;
    e->stats = p, p += g->n_buffers;
    e->pgrad = p, p += g->n_params;
    e->scratch = p;
    return e;
oom:
    loom_exec_free(e);
    loom_fail(LOOM_ENOMEM, "loom_exec_new: out of memory planning %s for batch %d", g->name, max_batch);
    return NULL;
}

void loom_exec_free(loom_exec *e) {
    if (!e) return;
    free(e->act);
    free(e->grad);
    free(e->mask);
    free(e->argmax);
    free(e->arena);
    free(e->iarena);
    free(e);
}

int loom_exec_max_batch(const loom_exec *e) { return e->max_batch; }
float *loom_exec_input(loom_exec *e) { return e->act[0]; }
const float *loom_exec_output(const loom_exec *e) { return e->act[e->g->output]; }
size_t loom_exec_output_size(const loom_exec *e) { return e->g->nodes[e->g->output].size; }
float *loom_exec_output_grad(loom_exec *e) { return e->grad[e->g->output]; }
float *loom_exec_param_grad(loom_exec *e) { return e->pgrad; }
const float *loom_exec_batch_stats(const loom_exec *e) { return e->stats; }

void loom_exec_probabilities(const loom_exec *e, int n, float *probs, int32_t *classes) {
    int k = (int)loom_exec_output_size(e);
    const float *out = loom_exec_output(e);
    /* a model that ends in softmax already gives probabilities: not twice */
    int done = e->g->nodes[e->g->output].op == LOOM_OP_SOFTMAX;
    for (int i = 0; i < n && i < e->max_batch; i++) {
        const float *o = out + (size_t)i * k;
        if (probs && done) memcpy(probs + (size_t)i * k, o, (size_t)k * sizeof(float));
        else if (probs) loom_k_softmax_fwd(o, probs + (size_t)i * k, 1, k);
        if (classes) classes[i] = loom_k_argmax(o, k);
    }
}

int loom_exec_forward(loom_exec *e, int n, int training, uint64_t dropout_key, uint64_t sample_base) {
    if (!e) return loom_fail(LOOM_EINVAL, "loom_exec_forward: no exec");
    if (n <= 0 || n > e->max_batch)
        return loom_fail(LOOM_EINVAL, "loom_exec_forward: %d samples, the exec was planned for 1..%d", n, e->max_batch);
    loom_graph *g = e->g;
    const float *P = g->params;
    e->trained = training;
    for (int i = 1; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        const float *x = e->act[l->in[0]];
        float *y = e->act[i];
        size_t len = (size_t)n * l->size;
        const float *W = P + l->param_off, *b = W + l->weight_count;
        switch (l->op) {
        case LOOM_OP_INPUT: break;
        case LOOM_OP_DENSE: loom_k_dense_fwd(x, W, l->bias ? b : NULL, y, n, l->a.dense.in, l->a.dense.out); break;
        case LOOM_OP_CONV2D: loom_k_conv2d_fwd(&l->a.conv, x, W, l->bias ? b : NULL, y, n, e->scratch); break;
        case LOOM_OP_MAXPOOL: loom_k_maxpool_fwd(&l->a.pool, x, y, e->argmax[i], n); break;
        case LOOM_OP_AVGPOOL: loom_k_avgpool_fwd(&l->a.pool, x, y, n, l->count_include_pad); break;
        case LOOM_OP_GAVGPOOL: {
            const loom_layer *in = &g->nodes[l->in[0]];
            loom_k_gavgpool_fwd(x, y, n, in->c, in->h * in->w);
            break;
        }
        case LOOM_OP_FLATTEN: break;
        case LOOM_OP_RELU: loom_k_relu_fwd(x, y, len); break;
        case LOOM_OP_LEAKY_RELU: loom_k_leaky_relu_fwd(x, y, len, l->a.alpha); break;
        case LOOM_OP_SIGMOID: loom_k_sigmoid_fwd(x, y, len); break;
        case LOOM_OP_TANH: loom_k_tanh_fwd(x, y, len); break;
        case LOOM_OP_SOFTMAX: loom_k_softmax_fwd(x, y, n, (int)l->size); break;
        case LOOM_OP_DROPOUT:
            if (training && l->a.p > 0)
                loom_k_dropout_fwd(x, y, e->mask[i], n, l->size, l->a.p,
                                   loom_rng_key(dropout_key, LOOM_RNG_DROPOUT, (uint64_t)i, 0), sample_base);
            else
                memcpy(y, x, len * sizeof(float));
            break;
        case LOOM_OP_BATCHNORM: {
            int c = l->c, hw = l->a.bn.hw;
            float eps = l->a.bn.eps;
            if (training) {
                float *sm = e->save + l->buf_off, *si = sm + c, *st = e->stats + l->buf_off;
                loom_k_batchnorm_fwd_train(x, y, n, c, hw, W, b, eps, sm, si, st + c);
                memcpy(st, sm, (size_t)c * sizeof(float));
            } else {
                const float *rm = g->buffers + l->buf_off;
                loom_k_batchnorm_fwd_infer(x, y, n, c, hw, W, b, eps, rm, rm + c);
            }
            break;
        }
        case LOOM_OP_ADD: loom_k_add_fwd(x, e->act[l->in[1]], y, len); break;
        case LOOM_OP_CONCAT: {
            const float *xs[LOOM_MAX_INPUTS];
            int cs[LOOM_MAX_INPUTS];
            for (int k = 0; k < l->nin; k++) {
                xs[k] = e->act[l->in[k]];
                cs[k] = g->nodes[l->in[k]].c;
            }
            loom_k_concat_fwd(xs, cs, l->nin, y, n, l->h * l->w);
            break;
        }
        case LOOM_OP_COUNT_: break;
        }
    }
    return LOOM_OK;
}

void loom_exec_zero_act_grad(loom_exec *e) {
    loom_graph *g = e->g;
    for (int i = 1; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        if (!aliases_input(l)) memset(e->grad[i], 0, (size_t)e->max_batch * l->size * sizeof(float));
    }
}

void loom_exec_zero_param_grad(loom_exec *e) {
    memset(e->pgrad, 0, e->g->n_params * sizeof(float));
}

void loom_exec_backward(loom_exec *e, int n) {
    loom_graph *g = e->g;
    const float *P = g->params;
    for (int i = g->n - 1; i >= 1; i--) {
        const loom_layer *l = &g->nodes[i];
        if (aliases_input(l)) continue; /* its gradient already is its input's */
        int from = l->in[0];
        const float *x = e->act[from], *y = e->act[i], *dy = e->grad[i];
        /* the input layer needs no gradient */
        float *dx = g->nodes[from].op == LOOM_OP_INPUT ? NULL : e->grad[from];
        size_t len = (size_t)n * l->size;
        const float *W = P + l->param_off;
        float *dW = l->frozen ? NULL : e->pgrad + l->param_off;
        float *db = dW && l->bias ? dW + l->weight_count : NULL;
        switch (l->op) {
        case LOOM_OP_DENSE:
            loom_k_dense_bwd(x, W, dy, dx, dW, db, n, l->a.dense.in, l->a.dense.out);
            break;
        case LOOM_OP_CONV2D: loom_k_conv2d_bwd(&l->a.conv, x, W, dy, dx, dW, db, n, e->scratch); break;
        case LOOM_OP_MAXPOOL: if (dx) loom_k_maxpool_bwd(&l->a.pool, dy, e->argmax[i], dx, n); break;
        case LOOM_OP_AVGPOOL: if (dx) loom_k_avgpool_bwd(&l->a.pool, dy, dx, n, l->count_include_pad); break;
        case LOOM_OP_GAVGPOOL:
            if (dx) {
                const loom_layer *in = &g->nodes[from];
                loom_k_gavgpool_bwd(dy, dx, n, in->c, in->h * in->w);
            }
            break;
        case LOOM_OP_RELU: if (dx) loom_k_relu_bwd(x, dy, dx, len); break;
        case LOOM_OP_LEAKY_RELU: if (dx) loom_k_leaky_relu_bwd(x, dy, dx, len, l->a.alpha); break;
        case LOOM_OP_SIGMOID: if (dx) loom_k_sigmoid_bwd(y, dy, dx, len); break;
        case LOOM_OP_TANH: if (dx) loom_k_tanh_bwd(y, dy, dx, len); break;
        case LOOM_OP_SOFTMAX: if (dx) loom_k_softmax_bwd(y, dy, dx, n, (int)l->size); break;
        case LOOM_OP_DROPOUT:
            if (!dx) break;
            if (e->trained && l->a.p > 0) loom_k_dropout_bwd(dy, e->mask[i], dx, len);
            else loom_k_accumulate(dy, dx, len);
            break;
        case LOOM_OP_BATCHNORM: {
            const float *sm = e->save + l->buf_off;
            loom_k_batchnorm_bwd(x, dy, dx, dW, dW ? dW + l->c : NULL, n, l->c, l->a.bn.hw, W, sm,
                                 sm + l->c);
            break;
        }
        case LOOM_OP_ADD: {
            if (dx) loom_k_accumulate(dy, dx, len);
            int b = l->in[1];
            if (g->nodes[b].op != LOOM_OP_INPUT) loom_k_accumulate(dy, e->grad[b], len);
            break;
        }
        case LOOM_OP_CONCAT: {
            float *dxs[LOOM_MAX_INPUTS];
            int cs[LOOM_MAX_INPUTS];
            for (int k = 0; k < l->nin; k++) {
                int s = l->in[k];
                dxs[k] = g->nodes[s].op == LOOM_OP_INPUT ? NULL : e->grad[s];
                cs[k] = g->nodes[s].c;
            }
            loom_k_concat_bwd(dy, dxs, cs, l->nin, n, l->h * l->w);
            break;
        }
        default: break;
        }
    }
}

void loom_exec_update_running(loom_graph *g, loom_node layer, const float *const *stats, const size_t *counts,
                              int nrep) {
    const loom_layer *l = &g->nodes[layer];
    if (l->op != LOOM_OP_BATCHNORM || nrep <= 0) return;
    int c = l->c;
    size_t total = 0, per_value[LOOM_EXEC_MAX_REPLICAS];
    for (int r = 0; r < nrep; r++) {
        per_value[r] = counts[r] * (size_t)l->a.bn.hw;
        total += per_value[r];
    }
    float *rm = g->buffers + l->buf_off, *rv = rm + c;
    for (int k0 = 0; k0 < c; k0 += 64) {
        int w = c - k0 < 64 ? c - k0 : 64;
        const float *means[LOOM_EXEC_MAX_REPLICAS], *vars[LOOM_EXEC_MAX_REPLICAS];
        for (int r = 0; r < nrep; r++) {
            means[r] = stats[r] + l->buf_off + k0;
            vars[r] = stats[r] + l->buf_off + c + k0;
        }
        float bm[64], bv[64];
        loom_k_batchnorm_combine(means, vars, per_value, nrep, 0, w, bm, bv);
        loom_k_batchnorm_update_running(rm + k0, rv + k0, w, bm, bv, l->a.bn.momentum, total);
    }
}
