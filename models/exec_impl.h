/* The insides of a loom_exec, shared by models/exec.c (the plan, the
 * portable kernels) and models/exec_dnnl.c (the oneDNN kernels). Nothing
 * here is seen outside models/. */
#ifndef LOOM_EXEC_IMPL_H
#define LOOM_EXEC_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "graph_impl.h"
#include "loom/exec.h"

/* How a slot's samples lie in memory. PLAIN is NCHW (or [n, features]);
 * BLOCKED is oneDNN's channel-blocked nChw8c / nChw16c: per sample, groups
 * of `block` channels, each group [h][w][block], channels past c zero; NHWC
 * is channels last, which is the blocked layout with one group of all c
 * channels. Both of the last are "lanes" layouts: groups of lanes channels. */
enum { LAY_PLAIN, LAY_BLOCKED, LAY_NHWC };

/* A buffer pair one or more nodes write their output into: the activations
 * (live from forward to backward) and the gradient (live only while the
 * backward pass needs it, so gradients share memory, planned once). */
typedef struct {
    float *act, *grad;
    size_t stride;  /* floats per sample (blocked: padded to whole channel groups) */
    int lay;
    int lanes;      /* channels per group: the block, c for NHWC, 0 for PLAIN */
    int c, h, w;    /* logical shape of one sample (features: h = w = 1) */
    int node;       /* the node whose step fills it (a conversion: the node it converts) */
    int zero;       /* its first gradient writer only adds: zero it before */
    int first;      /* backward time of its first gradient writer (see plan) */
    int last;       /* backward time of its last gradient reader */
    int kept;       /* read again after backward (a deferred dense layer's output gradient) */
    size_t goff;    /* offset of its gradient in the gradient arena */
} loom_slot;

/* A layout conversion of a node's output, for consumers that need the other
 * layout: forward after node `after`, its gradient back before that node's
 * backward. */
typedef struct {
    int from, to;   /* slots */
    int after;      /* node */
    int acc;        /* backward adds into from's gradient (else overwrites) */
} loom_convert;

/* What the plan decided for a node. */
typedef struct {
    int out;                   /* slot of its output */
    int in[LOOM_MAX_INPUTS];   /* slot read for each input (converted where the layout differs) */
    int acc[LOOM_MAX_INPUTS];  /* its backward adds into that input's gradient (else overwrites) */
    int grad_in[LOOM_MAX_INPUTS]; /* that input has a gradient (not the data) */
    int alias;                 /* shares its input's slot: nothing to run (flatten; a fused ReLU) */
    int dnn;                   /* runs through oneDNN */
    int fused_relu;            /* conv or batch norm: applies the ReLU that follows it */
    /* inference only (see plan_fusions): */
    int skip_inf;              /* computed inside node skip_inf's fused convolution (0: not) */
    int fuse_conv, fuse_bn;    /* this node's output is conv fuse_conv (> 0) with batch norm fuse_bn (0: none) folded in, */
    int fuse_other;            /* plus slot fuse_other (-1: none), */
    int fuse_relu;             /* then a ReLU */
} loom_step;

struct loom_exec {
    loom_graph *g;
    int max_batch;
    int dnn;               /* oneDNN kernels (else the portable ones) */
    int block;             /* channels per group of the blocked layout (0: portable) */
    int own_wgrad, own_wino; /* loom's own 3x3 kernels allowed (LOOM_WGRAD, LOOM_WINOGRAD; exec_dnnl.c decides where) */
    loom_step *step;       /* per node */
    loom_slot *slot;
    int nslot, output;     /* output: the slot holding the (plain) output */
    loom_convert *conv;
    int nconv;
    uint8_t **mask;        /* dropout, per node: 1 kept, 0 dropped */
    int32_t **argmax;      /* portable max pool, per node */
    float *save;           /* portable BN per buffer slot: mean | invstd (for backward) */
    float *stats;          /* BN per buffer slot: mean | biased var of the last training forward */
    float *pgrad;          /* flat parameter gradient */
    float *scratch;        /* portable conv im2col */
    float *tmp;            /* a gradient that cannot be written in place, before it is added */
    float *ptmp;           /* the same for a oneDNN layer's parameter gradients */
    float *arena;          /* one allocation for all float buffers but gradients */
    float *garena;         /* the gradients, shared by liveness */
    size_t arena_len, garena_len;
    int32_t *iarena;
    uint8_t *barena;       /* dropout masks */
    size_t barena_len;
    int defer;             /* LOOM_EXEC_DEFER_DENSE */
    int unfused;           /* LOOM_EXEC_UNFUSED */
    int trained;           /* last forward was a training one */
    int fwd_n;             /* samples of the last forward */
    int held;              /* loom_exec_hold_weights: the weights stay as they are ... */
    unsigned hold_gen;     /* ... since the hold numbered so (never 0) */
    double *t_fwd, *t_bwd; /* per node, seconds summed while timing is on (NULL: off) */
    void (*on_backward)(void *ctx, int node); /* after each node's backward (NULL: none) */
    void *on_backward_ctx;
    struct loom_dnn *dn;   /* oneDNN state (exec_dnnl.c) */
};

/* ---- oneDNN (models/exec_dnnl.c; stubs when loom is built without it) ---- */

/* 1 when oneDNN kernels are compiled in and usable on this CPU. */
int loom_dnn_usable(void);
/* Channels per group of the blocked layout on this CPU (8 or 16). */
int loom_dnn_block(void);
/* The ISA oneDNN dispatches to ("avx512_core", "avx2", ...). */
const char *loom_dnn_isa(void);
/* Whether oneDNN has real kernels (not its reference loops) for every pass
 * of node i reading `in` (its layout as given), writing layout out_lay. */
int loom_dnn_probe(const loom_exec *e, int i, const loom_slot *in, int out_lay, int need_bwd_data);
/* Set up per-exec state after the plan (stream, buffers sized for max_batch). LOOM_OK or LOOM_ERR. */
int loom_dnn_init(loom_exec *e);
void loom_dnn_free(loom_exec *e);
/* Forward of node i (n samples), backward of node i, a conversion forward / backward. LOOM_OK or LOOM_ERR. */
int loom_dnn_forward(loom_exec *e, int i, int n, int training);
int loom_dnn_backward(loom_exec *e, int i, int n);
int loom_dnn_convert(loom_exec *e, const loom_convert *c, int n, int backward);
/* Inference forward of the fused convolution whose output is node a's (step[a].fuse_conv). */
int loom_dnn_fused_forward(loom_exec *e, int a, int n);
/* Floats of weight, workspace and scratch memory the plan needs beyond the slots (for reports). */
size_t loom_dnn_extra_bytes(const loom_exec *e);
/* The implementation oneDNN chose for node i's forward ("jit:avx2", ...), or NULL. */
const char *loom_dnn_impl(const loom_exec *e, int i);
int loom_dnn_winograd(const loom_exec *e);

#endif
