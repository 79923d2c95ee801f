/* The oneDNN side of an exec (DESIGN.md, "Kernels"): convolutions, batch
 * norm, pooling and activations of images run as oneDNN primitives on the
 * channel-blocked layout, single-threaded in the calling thread (loom's pool
 * is the only source of parallelism, so a shard computes the same bits
 * whichever worker runs it). Primitives are made per batch size and kept for
 * the last few sizes seen; every memory they touch is planned by exec.c, and
 * oneDNN's scratchpad is one buffer per exec. */
#include "exec_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "loom/error.h"

#ifndef LOOM_HAVE_DNNL

int loom_dnn_usable(void) { return 0; }
int loom_dnn_block(void) { return 0; }
const char *loom_dnn_isa(void) { return "loom was built without oneDNN (cmake -DLOOM_ONEDNN=ON, libdnnl-dev)"; }
int loom_dnn_init(loom_exec *e) { (void)e; return loom_fail(LOOM_EUNSUPPORTED, "%s", loom_dnn_isa()); }
void loom_dnn_free(loom_exec *e) { (void)e; }
int loom_dnn_forward(loom_exec *e, int i, int n, int training) {
    (void)e, (void)i, (void)n, (void)training;
    return loom_fail(LOOM_EUNSUPPORTED, "%s", loom_dnn_isa());
}
int loom_dnn_backward(loom_exec *e, int i, int n) {
    (void)e, (void)i, (void)n;
    return loom_fail(LOOM_EUNSUPPORTED, "%s", loom_dnn_isa());
}
int loom_dnn_convert(loom_exec *e, const loom_convert *c, int n, int backward) {
    (void)e, (void)c, (void)n, (void)backward;
    return loom_fail(LOOM_EUNSUPPORTED, "%s", loom_dnn_isa());
}
int loom_dnn_probe(const loom_exec *e, int i, const loom_slot *in, int out_lay, int need_bwd_data) {
    (void)e, (void)i, (void)in, (void)out_lay, (void)need_bwd_data;
    return 0;
}
size_t loom_dnn_extra_bytes(const loom_exec *e) { (void)e; return 0; }
const char *loom_dnn_impl(const loom_exec *e, int i) { (void)e, (void)i; return NULL; }
int loom_dnn_winograd(const loom_exec *e) { (void)e; return 0; }
int loom_dnn_fused_forward(loom_exec *e, int a, int n) {
    (void)e, (void)a, (void)n;
    return loom_fail(LOOM_EUNSUPPORTED, "%s", loom_dnn_isa());
}

#else

#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>

/* libgomp: oneDNN's threads come from OpenMP; loom runs it on one. */
int omp_get_max_threads(void);
void omp_set_num_threads(int n);

#define NSETS 4     /* batch sizes whose primitives an exec keeps */
#define MAX_ARGS 12

/* ---- the engine, once per process ------------------------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static int isa_block;
static char isa_name[64] = "oneDNN not initialised";

static void init_engine(void) {
    /* No process-wide primitive cache: each exec keeps its own primitives (NSETS per node),
     * so the cache would only share objects between worker threads, which adds nothing to
     * a replica-per-thread runtime and hands one thread's primitive to another through
     * libstdc++ futures that ThreadSanitizer cannot see into. */
    dnnl_set_primitive_cache_capacity(0);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        engine = NULL;
        snprintf(isa_name, sizeof isa_name, "oneDNN could not create a CPU engine");
        return;
    }
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *name = "sse41";
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) name = "avx512_core";
    else if ((isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2) name = "avx2";
    else if ((isa & dnnl_cpu_isa_avx) == dnnl_cpu_isa_avx) name = "avx";
    else if (!(isa & dnnl_cpu_isa_sse41)) {
        /* below SSE4.1 oneDNN has only reference code: the portable kernels are faster */
        dnnl_engine_destroy(engine);
        engine = NULL;
        snprintf(isa_name, sizeof isa_name, "this CPU lacks SSE4.1, which oneDNN's kernels need");
        return;
    }
    isa_block = (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? 16 : 8;
    snprintf(isa_name, sizeof isa_name, "%s", name);
}

int loom_dnn_usable(void) {
    pthread_once(&once, init_engine);
    return engine != NULL;
}
int loom_dnn_block(void) { return loom_dnn_usable() ? isa_block : 0; }
const char *loom_dnn_isa(void) {
    loom_dnn_usable();
    return isa_name;
}

/* One thread inside oneDNN, restored after (a caller's own OpenMP settings stay theirs). */
static int enter(void) {
    int prev = omp_get_max_threads();
    if (prev != 1) omp_set_num_threads(1);
    return prev;
}
static void leave(int prev) {
    if (prev != 1) omp_set_num_threads(prev);
}

/* ---- primitives and their bound arguments -------------------------------------------- */

typedef struct {
    dnnl_primitive_t p;
    int nargs;
    int scratch;                  /* index of the scratchpad argument, -1 if none */
    dnnl_exec_arg_t a[MAX_ARGS];
} call;

typedef struct {
    int n;                        /* batch size (0: empty) */
    unsigned long used;           /* for replacing the least recently used */
    call fwd, fwd_inf, wre;       /* forward (training), forward (inference), weights reorder */
    int has_bwd;
    call relu_bwd, bwd_d, wre_d, bwd_w, wgre;
    int own_wgrad;                /* the weight gradient by loom's kernel (kernels/conv3x3_wgrad.c), in wgbuf */
    int own_wino;                 /* fused inference by loom's Winograd kernel (kernels/conv3x3_wino.c), scratch in wbuf_fuse */
    int own_wino_d;               /* the data gradient by the same kernel (a convolution of dY), scratch in wdbuf */
    int own_wino_f;               /* the plain forward (training, or inference outside a fused chain) by it, scratch in wfbuf */
    float *wdbuf, *wfbuf;
    call fuse, wre_fuse;          /* inference with batch norm, addition, ReLU fused (a conv's set) */
    float *wbuf, *wbuf_d, *wgbuf, *ws; /* blocked weights (forward, backward), weight gradient, workspace */
    float *wbuf_fuse;             /* blocked folded weights */
    float *fold_src;              /* what wbuf_fuse was folded from (fold_current) ... */
    int fold_valid;               /* ... once it holds that */
    unsigned fold_gen;            /* the hold (loom_exec_hold_weights) under which it was last compared */
    size_t sum_bytes;             /* fuse sums the added tensor into its output: these bytes are copied there first */
    size_t bytes;                 /* of those buffers */
    char impl[48];
} set;

typedef struct {
    set s[NSETS];
    float *fold;                  /* a fused conv's folded weights and bias, plain (OIHW, then oc) */
} node_state;

typedef struct {
    int n[NSETS];
    unsigned long used[NSETS];
    call fwd[NSETS], bwd[NSETS];
} conv_state;

struct loom_dnn {
    dnnl_stream_t stream;
    node_state *node;
    conv_state *conv;
    float *scratch;
    size_t scratch_bytes;
    size_t extra;                 /* bytes of weights, workspaces and scratch */
    unsigned long clock;
};

static int failed(dnnl_status_t st, const char *what, const loom_exec *e, int i) {
    const char *name = i >= 0 ? e->g->nodes[i].name : "conversion";
    return loom_fail(st == dnnl_out_of_memory ? LOOM_ENOMEM : LOOM_EUNSUPPORTED, "oneDNN: %s of layer %s (%s): %s",
                     what, name, i >= 0 ? loom_op_name(e->g->nodes[i].op) : "layout", dnnl_status2str(st));
}

#define TRY(x, what)                                          \
    do {                                                      \
        dnnl_status_t st_ = (x);                              \
        if (st_ != dnnl_success) return failed(st_, what, e, i); \
    } while (0)

static void call_free(call *c) {
    for (int k = 0; k < c->nargs; k++) dnnl_memory_destroy(c->a[k].memory);
    if (c->p) dnnl_primitive_destroy(c->p);
    memset(c, 0, sizeof *c);
}

/* Bind argument `arg` of c to memory of md at ptr. */
static dnnl_status_t bind(call *c, int arg, const dnnl_memory_desc_t *md, void *ptr) {
    dnnl_memory_t m;
    dnnl_status_t st = dnnl_memory_create(&m, md, engine, ptr ? ptr : DNNL_MEMORY_NONE);
    if (st != dnnl_success) return st;
    c->a[c->nargs].arg = arg;
    c->a[c->nargs].memory = m;
    c->nargs++;
    return dnnl_success;
}

/* Make c's primitive from pd (taken over) and bind its scratchpad. */
static dnnl_status_t make(loom_exec *e, call *c, dnnl_primitive_desc_t pd) {
    c->scratch = -1;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sb = smd ? dnnl_memory_desc_get_size(smd) : 0;
    dnnl_status_t st = dnnl_primitive_create(&c->p, pd);
    if (st == dnnl_success && sb) {
        if (sb > e->dn->scratch_bytes) {
            float *p = realloc(e->dn->scratch, sb);
            if (!p) st = dnnl_out_of_memory;
            else {
                e->dn->extra += sb - e->dn->scratch_bytes;
                e->dn->scratch = p, e->dn->scratch_bytes = sb;
            }
        }
        if (st == dnnl_success) {
            c->scratch = c->nargs;
            st = bind(c, DNNL_ARG_SCRATCHPAD, smd, e->dn->scratch);
        }
    }
    dnnl_primitive_desc_destroy(pd);
    return st;
}

static int run(loom_exec *e, call *c, int i, const char *what) {
    if (!c->p) return LOOM_OK;
    if (c->scratch >= 0) dnnl_memory_set_data_handle(c->a[c->scratch].memory, e->dn->scratch);
    dnnl_status_t st = dnnl_primitive_execute(c->p, e->dn->stream, c->nargs, c->a);
    if (st == dnnl_success) st = dnnl_stream_wait(e->dn->stream);
    return st == dnnl_success ? LOOM_OK : failed(st, what, e, i);
}

static dnnl_primitive_attr_t user_scratch(dnnl_primitive_attr_t *attr) {
    if (dnnl_primitive_attr_create(attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    return *attr;
}

/* A primitive descriptor that uses the exec's scratchpad (hint: the forward one, for backward). */
static dnnl_status_t pd_create(dnnl_primitive_desc_t *pd, const void *desc, const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t attr;
    if (!user_scratch(&attr)) return dnnl_out_of_memory;
    dnnl_status_t s = dnnl_primitive_desc_create(pd, desc, attr, engine, hint);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

static void *alloc_bytes(loom_exec *e, set *S, size_t bytes) {
    size_t b = (bytes + 63) / 64 * 64 + 64;
    void *p = aligned_alloc(64, b);
    if (p) {
        memset(p, 0, b);
        e->dn->extra += b;
        S->bytes += b;
    }
    return p;
}

static void *alloc_md(loom_exec *e, set *S, const dnnl_memory_desc_t *md) {
    return alloc_bytes(e, S, dnnl_memory_desc_get_size(md));
}

/* ---- memory descriptors ------------------------------------------------------------------ */

static void slot_md(const loom_exec *e, const loom_slot *s, int n, dnnl_memory_desc_t *md) {
    dnnl_dims_t d = {n, s->c, s->h, s->w};
    dnnl_format_tag_t tag = s->lay == LAY_BLOCKED ? (e->block == 16 ? dnnl_nChw16c : dnnl_nChw8c)
                            : s->lay == LAY_NHWC  ? dnnl_nhwc
                                                  : dnnl_nchw;
    dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, tag);
}

static void vec_md(int c, dnnl_memory_desc_t *md) {
    dnnl_dims_t d = {c};
    dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_x);
}

static void weights_md(const loom_conv_shape *s, dnnl_format_tag_t tag, dnnl_memory_desc_t *md) {
    if (s->groups > 1) {
        dnnl_dims_t d = {s->groups, s->oc / s->groups, s->c / s->groups, s->kh, s->kw};
        dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, tag == dnnl_oihw ? dnnl_goihw : tag);
    } else {
        dnnl_dims_t d = {s->oc, s->c, s->kh, s->kw};
        dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, tag);
    }
}

/* A reorder from (smd at src) to (dmd at dst), adding into dst when acc. */
static dnnl_status_t reorder(loom_exec *e, call *c, const dnnl_memory_desc_t *smd, void *src,
                             const dnnl_memory_desc_t *dmd, void *dst, int acc) {
    dnnl_primitive_attr_t attr = NULL;
    if (!user_scratch(&attr)) return dnnl_out_of_memory;
    dnnl_post_ops_t po = NULL;
    if (acc) {
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, smd, engine, dmd, engine, attr);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return st;
    if ((st = bind(c, DNNL_ARG_SRC, smd, src)) != dnnl_success || (st = bind(c, DNNL_ARG_DST, dmd, dst)) != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        return st;
    }
    return make(e, c, pd);
}

/* Where a backward writes an input's gradient: in place, or into tmp to be added after. */
static float *grad_target(loom_exec *e, int i, int k) {
    const loom_step *st = &e->step[i];
    if (!st->grad_in[k] || st->acc[k]) return e->tmp;
    return e->slot[st->in[k]].grad;
}

static void grad_finish(loom_exec *e, int i, int k, int n) {
    const loom_step *st = &e->step[i];
    if (!st->grad_in[k] || !st->acc[k]) return;
    const loom_slot *s = &e->slot[st->in[k]];
    float *d = s->grad;
    const float *t = e->tmp;
    size_t len = (size_t)n * s->stride;
    for (size_t q = 0; q < len; q++) d[q] += t[q];
}

static void impl_of(const call *c, char *out, size_t cap) {
    const_dnnl_primitive_desc_t pd;
    const char *s = NULL;
    if (c->p && dnnl_primitive_get_primitive_desc(c->p, &pd) == dnnl_success)
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    snprintf(out, cap, "%s", s ? s : "?");
}

/* ---- forward primitives per layer --------------------------------------------------------- */

/* Layer i's forward convolution from slot in to slot out for n samples
 * (weights in the layout oneDNN picks), and the descriptors its arguments
 * are bound with: md[0] src, md[1] dst, md[2] the plain OIHW weights, md[3] the bias. */
static dnnl_status_t conv_desc(const loom_exec *e, int i, const loom_slot *in, const loom_slot *out, int n,
                               dnnl_prop_kind_t prop, dnnl_alg_kind_t alg, int with_bias, dnnl_convolution_desc_t *cd,
                               dnnl_memory_desc_t md[4]) {
    const loom_conv_shape *cs = &e->g->nodes[i].a.conv;
    dnnl_memory_desc_t wany;
    slot_md(e, in, n, &md[0]);
    slot_md(e, out, n, &md[1]);
    weights_md(cs, dnnl_format_tag_any, &wany);
    weights_md(cs, dnnl_oihw, &md[2]);
    vec_md(cs->oc, &md[3]);
    dnnl_dims_t strides = {cs->sh, cs->sw}, dil = {cs->dh - 1, cs->dw - 1}, pad = {cs->ph, cs->pw};
    return dnnl_dilated_convolution_forward_desc_init(cd, prop, alg, &md[0], &wany,
                                                      with_bias ? &md[3] : NULL, &md[1], strides, dil, pad, pad);
}

/* The weights primitive pd reads: the plain ones at user when it takes OIHW,
 * else a buffer (*buf, made here) that the reorder re fills from user before
 * each run. Their descriptor and address into *wmd, *wptr. */
static dnnl_status_t conv_weights(loom_exec *e, set *S, const_dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *wuser,
                                  float *user, float **buf, call *re, const dnnl_memory_desc_t **wmd, float **wptr) {
    *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    *wptr = user;
    if (dnnl_memory_desc_equal(*wmd, wuser)) return dnnl_success;
    if (!(*buf = alloc_md(e, S, *wmd))) return dnnl_out_of_memory;
    *wptr = *buf;
    return reorder(e, re, wuser, user, *wmd, *buf, 0);
}

static int own_3x3(const loom_exec *e, const loom_conv_shape *cs, const loom_slot *xs, const loom_slot *ys);

/* A 3x3 convolution of stride 1, no dilation, one group: the shapes Winograd F(m, 3) serves (loom's and oneDNN's). */
static int conv3x3_s1(const loom_conv_shape *cs) {
    return cs->kh == 3 && cs->kw == 3 && cs->sh <= 1 && cs->sw <= 1 && cs->dh <= 1 && cs->dw <= 1 && cs->groups <= 1;
}

static int conv_fwd(loom_exec *e, int i, int n, set *S, dnnl_primitive_desc_t *fpd_out) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    dnnl_memory_desc_t md[4];
    dnnl_convolution_desc_t cd;
    TRY(conv_desc(e, i, &e->slot[st->in[0]], &e->slot[st->out], n, dnnl_forward_training, dnnl_convolution_direct,
                  l->bias, &cd, md),
        "convolution forward");
    dnnl_primitive_attr_t attr;
    if (!user_scratch(&attr)) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
    dnnl_post_ops_t po = NULL;
    if (st->fused_relu) {
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd, keep;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    TRY(s, "convolution forward");
    TRY(dnnl_primitive_desc_clone(&keep, pd), "convolution forward");
    *fpd_out = keep;
    float *W = e->g->params + l->param_off, *wptr;
    const dnnl_memory_desc_t *wmd;
    TRY(conv_weights(e, S, pd, &md[2], W, &S->wbuf, &S->wre, &wmd, &wptr), "weights reorder");
    call *c = &S->fwd;
    TRY(bind(c, DNNL_ARG_SRC, &md[0], e->slot[st->in[0]].act), "convolution forward");
    TRY(bind(c, DNNL_ARG_WEIGHTS, wmd, wptr), "convolution forward");
    if (l->bias) TRY(bind(c, DNNL_ARG_BIAS, &md[3], W + l->weight_count), "convolution forward");
    TRY(bind(c, DNNL_ARG_DST, &md[1], e->slot[st->out].act), "convolution forward");
    TRY(make(e, c, pd), "convolution forward");
    impl_of(c, S->impl, sizeof S->impl);
    return LOOM_OK;
}

/* Whether loom's Winograd kernel fits this convolution (3x3, stride 1, padding 1 on the blocks, even height
 * and width), unless LOOM_WINOGRAD=0. */
static int wino_fits(const loom_exec *e, const loom_conv_shape *cs, const loom_slot *xs, const loom_slot *ys) {
    return e->own_wino && own_3x3(e, cs, xs, ys) && ys->h % 2 == 0 && ys->w % 2 == 0;
}

/* The plain forward of conv i by the Winograd kernel where it fits: its scratch. The oneDNN primitive stays
 * made (backward's descriptors are made from the forward's). */
static int wino_fwd_build(loom_exec *e, int i, set *S) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    const loom_slot *xs = &e->slot[st->in[0]], *ys = &e->slot[st->out];
    if (!wino_fits(e, &l->a.conv, xs, ys)) return LOOM_OK;
    size_t b = loom_k_conv3x3_wino_scratch(l->a.conv.c, l->a.conv.oc, ys->w) * sizeof(float);
    if (!(S->wfbuf = alloc_bytes(e, S, b))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
    S->own_wino_f = 1;
    snprintf(S->impl, sizeof S->impl, "wino");
    return LOOM_OK;
}

/* The forward by loom's Winograd kernel: bias, and the ReLU fused into this convolution. */
static int wino_fwd(loom_exec *e, int i, int n, set *S) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    const loom_slot *xs = &e->slot[st->in[0]], *ys = &e->slot[st->out];
    const float *W = e->g->params + l->param_off;
    if (!loom_k_conv3x3_wino_blk8(xs->act, W, l->bias ? W + l->weight_count : NULL, NULL, st->fused_relu, ys->act, n,
                                  l->a.conv.c, l->a.conv.oc, ys->h, ys->w, S->wfbuf))
        return loom_fail(LOOM_EUNSUPPORTED, "layer %s: the Winograd kernel refused its shape", l->name);
    return LOOM_OK;
}

static int bn_fwd(loom_exec *e, int i, int n, set *S, int training, dnnl_primitive_desc_t *fpd_out) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    dnnl_memory_desc_t data, vec;
    slot_md(e, &e->slot[st->out], n, &data);
    vec_md(l->c, &vec);
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (st->fused_relu ? dnnl_fuse_norm_relu : 0);
    if (!training) flags |= dnnl_use_global_stats;
    dnnl_batch_normalization_desc_t bd;
    TRY(dnnl_batch_normalization_forward_desc_init(&bd, training ? dnnl_forward_training : dnnl_forward_inference,
                                                   &data, l->a.bn.eps, flags),
        "batch norm forward");
    dnnl_primitive_desc_t pd;
    TRY(pd_create(&pd, &bd, NULL), "batch norm forward");
    if (fpd_out) TRY(dnnl_primitive_desc_clone(fpd_out, pd), "batch norm forward");
    float *W = e->g->params + l->param_off;
    float *mv = training ? e->stats + l->buf_off : e->g->buffers + l->buf_off;
    call *c = training ? &S->fwd : &S->fwd_inf;
    TRY(bind(c, DNNL_ARG_SRC, &data, e->slot[st->in[0]].act), "batch norm forward");
    TRY(bind(c, DNNL_ARG_DST, &data, e->slot[st->out].act), "batch norm forward");
    TRY(bind(c, DNNL_ARG_SCALE, &vec, W), "batch norm forward");
    TRY(bind(c, DNNL_ARG_SHIFT, &vec, W + l->weight_count), "batch norm forward");
    TRY(bind(c, DNNL_ARG_MEAN, &vec, mv), "batch norm forward");
    TRY(bind(c, DNNL_ARG_VARIANCE, &vec, mv + l->c), "batch norm forward");
    if (training && st->fused_relu) {
        const dnnl_memory_desc_t *wsmd = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
        if (!(S->ws = alloc_md(e, S, wsmd))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
        TRY(bind(c, DNNL_ARG_WORKSPACE, wsmd, S->ws), "batch norm forward");
    }
    TRY(make(e, c, pd), "batch norm forward");
    if (training) impl_of(c, S->impl, sizeof S->impl);
    return LOOM_OK;
}

static void pool_params(const loom_pool_shape *p, dnnl_dims_t strides, dnnl_dims_t kernel, dnnl_dims_t pl,
                        dnnl_dims_t pr) {
    strides[0] = p->sh, strides[1] = p->sw;
    kernel[0] = p->kh, kernel[1] = p->kw;
    pl[0] = p->ph, pl[1] = p->pw;
    /* floor mode: the right padding that gives exactly loom's output size */
    pr[0] = (dnnl_dim_t)(p->oh - 1) * p->sh + p->kh - p->h - p->ph;
    pr[1] = (dnnl_dim_t)(p->ow - 1) * p->sw + p->kw - p->w - p->pw;
}

static dnnl_alg_kind_t pool_alg(const loom_layer *l) {
    if (l->op == LOOM_OP_MAXPOOL) return dnnl_pooling_max;
    return l->count_include_pad ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding;
}

static int pool_fwd(loom_exec *e, int i, int n, set *S, int training, dnnl_primitive_desc_t *fpd_out) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    dnnl_memory_desc_t src, dst;
    slot_md(e, &e->slot[st->in[0]], n, &src);
    slot_md(e, &e->slot[st->out], n, &dst);
    dnnl_dims_t strides, kernel, pl, pr;
    pool_params(&l->a.pool, strides, kernel, pl, pr);
    dnnl_pooling_desc_t pdsc;
    TRY(dnnl_pooling_forward_desc_init(&pdsc, training ? dnnl_forward_training : dnnl_forward_inference, pool_alg(l),
                                       &src, &dst, strides, kernel, pl, pr),
        "pooling forward");
    dnnl_primitive_desc_t pd;
    TRY(pd_create(&pd, &pdsc, NULL), "pooling forward");
    if (fpd_out) TRY(dnnl_primitive_desc_clone(fpd_out, pd), "pooling forward");
    call *c = training ? &S->fwd : &S->fwd_inf;
    TRY(bind(c, DNNL_ARG_SRC, &src, e->slot[st->in[0]].act), "pooling forward");
    TRY(bind(c, DNNL_ARG_DST, &dst, e->slot[st->out].act), "pooling forward");
    const dnnl_memory_desc_t *wsmd = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
    if (training && wsmd && dnnl_memory_desc_get_size(wsmd)) {
        if (!(S->ws = alloc_md(e, S, wsmd))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
        TRY(bind(c, DNNL_ARG_WORKSPACE, wsmd, S->ws), "pooling forward");
    }
    TRY(make(e, c, pd), "pooling forward");
    if (training) impl_of(c, S->impl, sizeof S->impl);
    return LOOM_OK;
}

static dnnl_alg_kind_t elt_alg(const loom_layer *l, float *alpha) {
    *alpha = 0.0f;
    switch (l->op) {
    case LOOM_OP_LEAKY_RELU: *alpha = l->a.alpha; return dnnl_eltwise_relu;
    case LOOM_OP_SIGMOID: return dnnl_eltwise_logistic_use_dst_for_bwd;
    case LOOM_OP_TANH: return dnnl_eltwise_tanh_use_dst_for_bwd;
    default: return dnnl_eltwise_relu;
    }
}

static int elt_fwd(loom_exec *e, int i, int n, set *S, dnnl_primitive_desc_t *fpd_out) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    dnnl_memory_desc_t data;
    slot_md(e, &e->slot[st->out], n, &data);
    float alpha;
    dnnl_alg_kind_t alg = elt_alg(l, &alpha);
    dnnl_eltwise_desc_t ed;
    TRY(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, alg, &data, alpha, 0.0f), "activation forward");
    dnnl_primitive_desc_t pd;
    TRY(pd_create(&pd, &ed, NULL), "activation forward");
    TRY(dnnl_primitive_desc_clone(fpd_out, pd), "activation forward");
    call *c = &S->fwd;
    TRY(bind(c, DNNL_ARG_SRC, &data, e->slot[st->in[0]].act), "activation forward");
    TRY(bind(c, DNNL_ARG_DST, &data, e->slot[st->out].act), "activation forward");
    TRY(make(e, c, pd), "activation forward");
    impl_of(c, S->impl, sizeof S->impl);
    return LOOM_OK;
}

/* ---- backward primitives per layer ---------------------------------------------------------- */

/* What both of loom's own 3x3 kernels need (kernels/conv3x3_*.c): stride 1, padding 1, no dilation, one
 * group, input and output on the 8-channel blocks (not under AVX-512, where oneDNN's own code is better),
 * c a multiple of 8 and oc of 16, and a CPU with AVX2 and FMA. */
static int own_3x3(const loom_exec *e, const loom_conv_shape *cs, const loom_slot *xs, const loom_slot *ys) {
    return conv3x3_s1(cs) && cs->ph == 1 && cs->pw == 1 && e->block == 8 && xs->lay == LAY_BLOCKED &&
           ys->lay == LAY_BLOCKED && cs->c % 8 == 0 && cs->oc % 16 == 0 && xs->h == ys->h && xs->w == ys->w &&
           loom_k_avx2_fma();
}

/* Whether loom's own kernel computes this convolution's weight gradient (a width of 2 or more), unless
 * LOOM_WGRAD=onednn asked for oneDNN's (for comparison; exec.c reads it). */
static int own_wgrad(const loom_exec *e, const loom_conv_shape *cs, const loom_slot *xs, const loom_slot *ys) {
    return e->own_wgrad && own_3x3(e, cs, xs, ys) && ys->w >= 2;
}

/* Whether loom's Winograd kernel computes this convolution's data gradient: dX is the convolution of dY
 * with the weights flipped and transposed (stride 1, padding 1), so the inference kernel serves, with oc
 * input and c output channels (c a multiple of 16 too) and an even height and width; LOOM_WINOGRAD=0
 * leaves it to oneDNN. */
static int own_wino_d(const loom_exec *e, const loom_conv_shape *cs, const loom_slot *xs, const loom_slot *ys) {
    return wino_fits(e, cs, xs, ys) && cs->c % 16 == 0;
}

/* dX (+)= dY * flip(W)^T by the Winograd kernel, added in place where the input's gradient accumulates. */
static int wino_bwd_data(loom_exec *e, int i, int n, set *S) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_conv_shape *cs = &l->a.conv;
    const loom_step *st = &e->step[i];
    const loom_slot *xs = &e->slot[st->in[0]], *ys = &e->slot[st->out];
    const float *W = e->g->params + l->param_off;
    float *Wt = S->wdbuf, *scratch = Wt + ((size_t)cs->c * cs->oc * 9 + 7) / 8 * 8;
    for (int o = 0; o < cs->oc; o++)
        for (int c = 0; c < cs->c; c++)
            for (int j = 0; j < 9; j++) Wt[((size_t)c * cs->oc + o) * 9 + j] = W[((size_t)o * cs->c + c) * 9 + 8 - j];
    if (!loom_k_conv3x3_wino_blk8(ys->grad, Wt, NULL, st->acc[0] ? xs->grad : NULL, 0, xs->grad, n, cs->oc, cs->c,
                                  xs->h, xs->w, scratch))
        return loom_fail(LOOM_EUNSUPPORTED, "layer %s: the Winograd kernel refused the data gradient's shape", l->name);
    return LOOM_OK;
}

static int conv_bwd(loom_exec *e, int i, int n, set *S, dnnl_primitive_desc_t fpd) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_conv_shape *cs = &l->a.conv;
    const loom_step *st = &e->step[i];
    const loom_slot *ys = &e->slot[st->out], *xs = &e->slot[st->in[0]];
    dnnl_memory_desc_t src, dst, wany, wuser, bias;
    slot_md(e, xs, n, &src);
    slot_md(e, ys, n, &dst);
    weights_md(cs, dnnl_format_tag_any, &wany);
    weights_md(cs, dnnl_oihw, &wuser);
    vec_md(cs->oc, &bias);
    dnnl_dims_t strides = {cs->sh, cs->sw}, dil = {cs->dh - 1, cs->dw - 1}, pad = {cs->ph, cs->pw};
    float *W = e->g->params + l->param_off;
    if (st->fused_relu) {
        dnnl_eltwise_desc_t ed;
        TRY(dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu_use_dst_for_bwd, &dst, &dst, 0.0f, 0.0f),
            "fused ReLU backward");
        /* its forward twin, for the hint */
        dnnl_eltwise_desc_t fd;
        dnnl_primitive_desc_t hint, pd;
        TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &dst, 0.0f,
                                           0.0f),
            "fused ReLU backward");
        TRY(dnnl_primitive_desc_create(&hint, &fd, NULL, engine, NULL), "fused ReLU backward");
        dnnl_status_t s = pd_create(&pd, &ed, hint);
        dnnl_primitive_desc_destroy(hint);
        TRY(s, "fused ReLU backward");
        TRY(bind(&S->relu_bwd, DNNL_ARG_DIFF_DST, &dst, ys->grad), "fused ReLU backward");
        TRY(bind(&S->relu_bwd, DNNL_ARG_DST, &dst, ys->act), "fused ReLU backward");
        TRY(bind(&S->relu_bwd, DNNL_ARG_DIFF_SRC, &dst, ys->grad), "fused ReLU backward");
        TRY(make(e, &S->relu_bwd, pd), "fused ReLU backward");
    }
    if (st->grad_in[0] && own_wino_d(e, cs, xs, ys)) {
        /* the flipped, transposed weights [c][oc][3][3], then the kernel's scratch */
        size_t b = ((size_t)cs->c * cs->oc * 9 + loom_k_conv3x3_wino_scratch(cs->oc, cs->c, ys->w) + 8) * sizeof(float);
        if (!(S->wdbuf = alloc_bytes(e, S, b))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
        S->own_wino_d = 1;
        size_t k = strlen(S->impl);
        if (k && k + 12 < sizeof S->impl) memcpy(S->impl + k, " +wino dX", 10); /* for bench --layers */
    } else if (st->grad_in[0]) {
        dnnl_convolution_desc_t cd;
        TRY(dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src, &wany, &dst, strides,
                                                             dil, pad, pad),
            "convolution backward (data)");
        dnnl_primitive_desc_t pd;
        TRY(pd_create(&pd, &cd, fpd), "convolution backward (data)");
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        float *wptr = W;
        if (!dnnl_memory_desc_equal(wmd, &wuser)) {
            if (!(S->wbuf_d = alloc_md(e, S, wmd))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
            TRY(reorder(e, &S->wre_d, &wuser, W, wmd, S->wbuf_d, 0), "weights reorder");
            wptr = S->wbuf_d;
        }
        TRY(bind(&S->bwd_d, DNNL_ARG_DIFF_DST, &dst, ys->grad), "convolution backward (data)");
        TRY(bind(&S->bwd_d, DNNL_ARG_WEIGHTS, wmd, wptr), "convolution backward (data)");
        TRY(bind(&S->bwd_d, DNNL_ARG_DIFF_SRC, &src, grad_target(e, i, 0)), "convolution backward (data)");
        TRY(make(e, &S->bwd_d, pd), "convolution backward (data)");
    }
    if (!l->frozen) {
        if (own_wgrad(e, cs, xs, ys)) {
            size_t b = loom_k_conv3x3_wgrad_scratch(cs->c, cs->oc) * sizeof(float);
            if (!(S->wgbuf = alloc_bytes(e, S, b))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
            S->own_wgrad = 1;
            size_t k = strlen(S->impl);
            if (k && k + 12 < sizeof S->impl) memcpy(S->impl + k, " +loom dW", 10); /* for bench --layers */

            return LOOM_OK;
        }
        dnnl_convolution_desc_t cd;
        TRY(dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src, &wany,
                                                                l->bias ? &bias : NULL, &dst, strides, dil, pad, pad),
            "convolution backward (weights)");
        dnnl_primitive_desc_t pd;
        TRY(pd_create(&pd, &cd, fpd), "convolution backward (weights)");
        const dnnl_memory_desc_t *gmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
        if (!(S->wgbuf = alloc_md(e, S, gmd))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
        TRY(bind(&S->bwd_w, DNNL_ARG_SRC, &src, xs->act), "convolution backward (weights)");
        TRY(bind(&S->bwd_w, DNNL_ARG_DIFF_DST, &dst, ys->grad), "convolution backward (weights)");
        TRY(bind(&S->bwd_w, DNNL_ARG_DIFF_WEIGHTS, gmd, S->wgbuf), "convolution backward (weights)");
        if (l->bias) TRY(bind(&S->bwd_w, DNNL_ARG_DIFF_BIAS, &bias, e->ptmp), "convolution backward (weights)");
        dnnl_memory_desc_t gcopy = *gmd;
        TRY(make(e, &S->bwd_w, pd), "convolution backward (weights)");
        /* into the flat gradient, adding (the exec's contract) */
        TRY(reorder(e, &S->wgre, &gcopy, S->wgbuf, &wuser, e->pgrad + l->param_off, 1), "weight gradient reorder");
    }
    return LOOM_OK;
}

static int bn_bwd(loom_exec *e, int i, int n, set *S, dnnl_primitive_desc_t fpd) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    const loom_slot *ys = &e->slot[st->out], *xs = &e->slot[st->in[0]];
    dnnl_memory_desc_t data, vec;
    slot_md(e, ys, n, &data);
    vec_md(l->c, &vec);
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (st->fused_relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t bd;
    TRY(dnnl_batch_normalization_backward_desc_init(&bd, l->frozen ? dnnl_backward_data : dnnl_backward, &data, &data,
                                                    l->a.bn.eps, flags),
        "batch norm backward");
    dnnl_primitive_desc_t pd;
    TRY(pd_create(&pd, &bd, fpd), "batch norm backward");
    float *W = e->g->params + l->param_off, *mv = e->stats + l->buf_off;
    call *c = &S->bwd_d;
    TRY(bind(c, DNNL_ARG_SRC, &data, xs->act), "batch norm backward");
    TRY(bind(c, DNNL_ARG_MEAN, &vec, mv), "batch norm backward");
    TRY(bind(c, DNNL_ARG_VARIANCE, &vec, mv + l->c), "batch norm backward");
    TRY(bind(c, DNNL_ARG_DIFF_DST, &data, ys->grad), "batch norm backward");
    TRY(bind(c, DNNL_ARG_SCALE, &vec, W), "batch norm backward");
    TRY(bind(c, DNNL_ARG_SHIFT, &vec, W + l->weight_count), "batch norm backward");
    if (st->fused_relu) {
        const dnnl_memory_desc_t *wsmd = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
        TRY(bind(c, DNNL_ARG_WORKSPACE, wsmd, S->ws), "batch norm backward");
    }
    TRY(bind(c, DNNL_ARG_DIFF_SRC, &data, grad_target(e, i, 0)), "batch norm backward");
    if (!l->frozen) {
        TRY(bind(c, DNNL_ARG_DIFF_SCALE, &vec, e->ptmp), "batch norm backward");
        TRY(bind(c, DNNL_ARG_DIFF_SHIFT, &vec, e->ptmp + l->c), "batch norm backward");
    }
    TRY(make(e, c, pd), "batch norm backward");
    return LOOM_OK;
}

static int pool_bwd(loom_exec *e, int i, int n, set *S, dnnl_primitive_desc_t fpd) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    dnnl_memory_desc_t src, dst;
    slot_md(e, &e->slot[st->in[0]], n, &src);
    slot_md(e, &e->slot[st->out], n, &dst);
    dnnl_dims_t strides, kernel, pl, pr;
    pool_params(&l->a.pool, strides, kernel, pl, pr);
    dnnl_pooling_desc_t pdsc;
    TRY(dnnl_pooling_backward_desc_init(&pdsc, pool_alg(l), &src, &dst, strides, kernel, pl, pr), "pooling backward");
    dnnl_primitive_desc_t pd;
    TRY(pd_create(&pd, &pdsc, fpd), "pooling backward");
    call *c = &S->bwd_d;
    TRY(bind(c, DNNL_ARG_DIFF_DST, &dst, e->slot[st->out].grad), "pooling backward");
    const dnnl_memory_desc_t *wsmd = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
    if (wsmd && dnnl_memory_desc_get_size(wsmd)) TRY(bind(c, DNNL_ARG_WORKSPACE, wsmd, S->ws), "pooling backward");
    TRY(bind(c, DNNL_ARG_DIFF_SRC, &src, grad_target(e, i, 0)), "pooling backward");
    TRY(make(e, c, pd), "pooling backward");
    return LOOM_OK;
}

static int elt_bwd(loom_exec *e, int i, int n, set *S, dnnl_primitive_desc_t fpd) {
    const loom_layer *l = &e->g->nodes[i];
    const loom_step *st = &e->step[i];
    dnnl_memory_desc_t data;
    slot_md(e, &e->slot[st->out], n, &data);
    float alpha;
    dnnl_alg_kind_t alg = elt_alg(l, &alpha);
    dnnl_eltwise_desc_t ed;
    TRY(dnnl_eltwise_backward_desc_init(&ed, alg, &data, &data, alpha, 0.0f), "activation backward");
    dnnl_primitive_desc_t pd;
    TRY(pd_create(&pd, &ed, fpd), "activation backward");
    call *c = &S->bwd_d;
    int use_dst = alg != dnnl_eltwise_relu;
    TRY(bind(c, DNNL_ARG_DIFF_DST, &data, e->slot[st->out].grad), "activation backward");
    if (use_dst) TRY(bind(c, DNNL_ARG_DST, &data, e->slot[st->out].act), "activation backward");
    else TRY(bind(c, DNNL_ARG_SRC, &data, e->slot[st->in[0]].act), "activation backward");
    TRY(bind(c, DNNL_ARG_DIFF_SRC, &data, grad_target(e, i, 0)), "activation backward");
    TRY(make(e, c, pd), "activation backward");
    return LOOM_OK;
}


/* ---- probing: would oneDNN run a layer with its own kernels? ------------------------------ */

/* pd's implementation is real code, not oneDNN's reference loops (which are
 * slower than loom's portable kernels). Takes pd over. */
static int fast(dnnl_status_t st, dnnl_primitive_desc_t *pdp) {
    if (st != dnnl_success) return 0;
    dnnl_primitive_desc_t pd = *pdp;
    const char *s = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    int ok = s && strncmp(s, "ref", 3) != 0;
    dnnl_primitive_desc_destroy(pd);
    return ok;
}

int loom_dnn_probe(const loom_exec *e, int i, const loom_slot *in, int out_lay, int need_bwd_data) {
    const loom_layer *l = &e->g->nodes[i];
    int n = e->max_batch;
    loom_slot out = {.c = l->c, .h = l->h, .w = l->w, .lay = out_lay};
    dnnl_memory_desc_t src, dst;
    slot_md(e, in, n, &src);
    slot_md(e, &out, n, &dst);
    dnnl_primitive_desc_t fpd = NULL, pd;
    int ok = 1;
    int prev = enter();
    if (l->op == LOOM_OP_CONV2D) {
        const loom_conv_shape *cs = &l->a.conv;
        dnnl_memory_desc_t w, b;
        weights_md(cs, dnnl_format_tag_any, &w);
        vec_md(cs->oc, &b);
        dnnl_dims_t strides = {cs->sh, cs->sw}, dil = {cs->dh - 1, cs->dw - 1}, pad = {cs->ph, cs->pw};
        dnnl_convolution_desc_t cd;
        ok = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &src, &w,
                                                        l->bias ? &b : NULL, &dst, strides, dil, pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&fpd, &cd, NULL, engine, NULL) == dnnl_success;
        if (ok) {
            const char *s = NULL;
            dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &s);
            ok = s && strncmp(s, "ref", 3) != 0;
        }
        if (ok && need_bwd_data) {
            dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src, &w, &dst, strides, dil,
                                                             pad, pad);
            ok = fast(dnnl_primitive_desc_create(&pd, &cd, NULL, engine, fpd), &pd);
        }
        if (ok) {
            dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src, &w,
                                                                l->bias ? &b : NULL, &dst, strides, dil, pad, pad);
            ok = fast(dnnl_primitive_desc_create(&pd, &cd, NULL, engine, fpd), &pd);
        }
    } else if (l->op == LOOM_OP_BATCHNORM) {
        unsigned flags = dnnl_use_scale | dnnl_use_shift;
        dnnl_batch_normalization_desc_t bd;
        ok = dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training, &src, l->a.bn.eps, flags) ==
                 dnnl_success &&
             dnnl_primitive_desc_create(&fpd, &bd, NULL, engine, NULL) == dnnl_success;
        if (ok) {
            dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &src, &src, l->a.bn.eps, flags);
            ok = fast(dnnl_primitive_desc_create(&pd, &bd, NULL, engine, fpd), &pd);
        }
    } else if (l->op == LOOM_OP_MAXPOOL || l->op == LOOM_OP_AVGPOOL) {
        dnnl_dims_t strides, kernel, pl, pr;
        pool_params(&l->a.pool, strides, kernel, pl, pr);
        dnnl_pooling_desc_t pdsc;
        ok = dnnl_pooling_forward_desc_init(&pdsc, dnnl_forward_training, pool_alg(l), &src, &dst, strides, kernel, pl,
                                            pr) == dnnl_success &&
             dnnl_primitive_desc_create(&fpd, &pdsc, NULL, engine, NULL) == dnnl_success;
        if (ok) {
            dnnl_pooling_backward_desc_init(&pdsc, pool_alg(l), &src, &dst, strides, kernel, pl, pr);
            ok = fast(dnnl_primitive_desc_create(&pd, &pdsc, NULL, engine, fpd), &pd);
        }
    } else {
        float alpha;
        dnnl_alg_kind_t alg = elt_alg(l, &alpha);
        dnnl_eltwise_desc_t ed;
        ok = dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, alg, &src, alpha, 0.0f) == dnnl_success &&
             dnnl_primitive_desc_create(&fpd, &ed, NULL, engine, NULL) == dnnl_success;
        if (ok) {
            dnnl_eltwise_backward_desc_init(&ed, alg, &src, &src, alpha, 0.0f);
            ok = fast(dnnl_primitive_desc_create(&pd, &ed, NULL, engine, fpd), &pd);
        }
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    leave(prev);
    return ok;
}

/* ---- sets: the primitives of a layer for one batch size ---------------------------------- */

static void set_free(loom_exec *e, set *S) {
    call *calls[] = {&S->fwd, &S->fwd_inf, &S->wre, &S->relu_bwd, &S->bwd_d, &S->wre_d, &S->bwd_w, &S->wgre,
                     &S->fuse, &S->wre_fuse};
    for (size_t k = 0; k < sizeof calls / sizeof *calls; k++) call_free(calls[k]);
    free(S->wbuf);
    free(S->wbuf_d);
    free(S->wgbuf);
    free(S->ws);
    free(S->wbuf_fuse);
    free(S->fold_src);
    free(S->wdbuf);
    free(S->wfbuf);
    if (e->dn) e->dn->extra -= S->bytes;
    memset(S, 0, sizeof *S);
}

/* The forward (training) primitive descriptor again, as the hint backward needs. */
static int forward_hint(loom_exec *e, int i, int n, set *tmp, dnnl_primitive_desc_t *fpd) {
    const loom_layer *l = &e->g->nodes[i];
    switch (l->op) {
    case LOOM_OP_CONV2D: return conv_fwd(e, i, n, tmp, fpd);
    case LOOM_OP_BATCHNORM: return bn_fwd(e, i, n, tmp, 1, fpd);
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL: return pool_fwd(e, i, n, tmp, 1, fpd);
    default: return elt_fwd(e, i, n, tmp, fpd);
    }
}

static set *get_set(loom_exec *e, int i, int n) {
    node_state *ns = &e->dn->node[i];
    set *S = NULL;
    for (int k = 0; k < NSETS; k++)
        if (ns->s[k].n == n) S = &ns->s[k];
    if (!S) {
        S = &ns->s[0];
        for (int k = 1; k < NSETS; k++)
            if (ns->s[k].used < S->used) S = &ns->s[k];
        set_free(e, S);
        S->n = n;
    }
    S->used = ++e->dn->clock;
    return S;
}

/* ---- inference: a convolution with what follows it folded in (exec.c, plan_fusions) ---- */

/* the buffer of a fused conv's folded weights and bias */
static int fold_alloc(loom_exec *e, int i) {
    node_state *ns = &e->dn->node[i];
    if (ns->fold) return LOOM_OK;
    const loom_layer *l = &e->g->nodes[i];
    size_t len = l->weight_count + (size_t)l->a.conv.oc;
    if (!(ns->fold = malloc(len * sizeof(float)))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
    e->dn->extra += len * sizeof(float);
    return LOOM_OK;
}

/* Whether loom's Winograd kernel runs the fused inference chain ending at node a (even height and width,
 * an added tensor on the blocks too); LOOM_WINOGRAD=0 leaves it to oneDNN (exec.c reads it). */
static int own_wino(const loom_exec *e, int a) {
    const loom_step *as = &e->step[a];
    int i = as->fuse_conv;
    const loom_slot *ys = &e->slot[as->out];
    return wino_fits(e, &e->g->nodes[i].a.conv, &e->slot[e->step[i].in[0]], ys) &&
           (as->fuse_other < 0 || e->slot[as->fuse_other].lay == LAY_BLOCKED);
}

static int wino_build(loom_exec *e, int a, set *S) {
    int i = e->step[a].fuse_conv;
    const loom_conv_shape *cs = &e->g->nodes[i].a.conv;
    if (fold_alloc(e, i)) return LOOM_ERR;
    size_t b = loom_k_conv3x3_wino_scratch(cs->c, cs->oc, e->slot[e->step[a].out].w) * sizeof(float);
    if (!(S->wbuf_fuse = alloc_bytes(e, S, b))) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
    S->own_wino = 1;
    return LOOM_OK;
}

static int wino_run(loom_exec *e, int a, int n, set *S) {
    const loom_step *as = &e->step[a];
    int i = as->fuse_conv;
    const loom_layer *l = &e->g->nodes[i];
    const loom_slot *xs = &e->slot[e->step[i].in[0]], *ys = &e->slot[as->out];
    const float *F = e->dn->node[i].fold;
    if (!loom_k_conv3x3_wino_blk8(xs->act, F, F + l->weight_count,
                                  as->fuse_other >= 0 ? e->slot[as->fuse_other].act : NULL, as->fuse_relu, ys->act,
                                  n, l->a.conv.c, l->a.conv.oc, ys->h, ys->w, S->wbuf_fuse))
        return loom_fail(LOOM_EUNSUPPORTED, "layer %s: the Winograd kernel refused its shape", l->name);
    return LOOM_OK;
}

/* The fused primitive of anchor a for S->n samples, in conv i's set S: the
 * batch norm folded into the weights and bias (fold_weights), the addition a
 * binary post-op reading the other tensor where it lies, the ReLU an
 * eltwise post-op. */
static int fused_build(loom_exec *e, int a, set *S) {
    const loom_step *as = &e->step[a];
    int i = as->fuse_conv, n = S->n;
    const loom_layer *l = &e->g->nodes[i];
    dnnl_memory_desc_t md[4], other;
    if (as->fuse_other >= 0) slot_md(e, &e->slot[as->fuse_other], n, &other);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_unimplemented;
    /* oneDNN's Winograd F(4x4, 3x3) first where loom's own (AVX2, 8-channel blocks) does not serve: 3x3, stride 1
     * on the 16-channel blocks of AVX-512 (oneDNN has it there only), with at least 32 input channels (with 16 it
     * was slower than the direct convolution: DESIGN.md, "Inference convolutions"); the direct convolution where
     * it declines. It takes no binary post-op: an added tensor is copied into the output first and summed. */
    const loom_conv_shape *cs = &l->a.conv;
    const loom_slot *ys = &e->slot[as->out];
    int wino = e->own_wino && e->block == 16 && conv3x3_s1(cs) && cs->c >= 32 &&
               (as->fuse_other < 0 || e->slot[as->fuse_other].lay == ys->lay);
    int summed = 0;
    for (int k = wino ? 0 : 1; k < 2 && s != dnnl_success; k++) {
        summed = k == 0 && as->fuse_other >= 0;
        TRY(conv_desc(e, i, &e->slot[e->step[i].in[0]], &e->slot[as->out], n, dnnl_forward_inference,
                      k == 0 ? dnnl_convolution_winograd : dnnl_convolution_direct, 1, &cd, md),
            "fused convolution");
        dnnl_primitive_attr_t attr;
        if (!user_scratch(&attr)) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        if (summed) dnnl_post_ops_append_sum(po, 1.0f);
        else if (as->fuse_other >= 0) dnnl_post_ops_append_binary(po, dnnl_binary_add, &other);
        if (as->fuse_relu) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        s = dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL);
        dnnl_post_ops_destroy(po);
        dnnl_primitive_attr_destroy(attr);
        if (s == dnnl_success) {
            const char *impl = NULL;
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
            if (!impl || !strncmp(impl, "ref", 3)) {
                dnnl_primitive_desc_destroy(pd);
                s = dnnl_unimplemented; /* the layers one by one are faster */
            }
        }
    }
    TRY(s, "fused convolution");
    node_state *ns = &e->dn->node[i];
    if (fold_alloc(e, i)) {
        dnnl_primitive_desc_destroy(pd);
        return LOOM_ERR;
    }
    const dnnl_memory_desc_t *wmd;
    float *wptr;
    s = conv_weights(e, S, pd, &md[2], ns->fold, &S->wbuf_fuse, &S->wre_fuse, &wmd, &wptr);
    call *c = &S->fuse;
    if (s == dnnl_success) s = bind(c, DNNL_ARG_SRC, &md[0], e->slot[e->step[i].in[0]].act);
    if (s == dnnl_success) s = bind(c, DNNL_ARG_WEIGHTS, wmd, wptr);
    if (s == dnnl_success) s = bind(c, DNNL_ARG_BIAS, &md[3], ns->fold + l->weight_count);
    if (s == dnnl_success) s = bind(c, DNNL_ARG_DST, &md[1], e->slot[as->out].act);
    if (s == dnnl_success && as->fuse_other >= 0 && !summed)
        s = bind(c, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, &other, e->slot[as->fuse_other].act);
    S->sum_bytes = summed ? dnnl_memory_desc_get_size(&md[1]) : 0;
    if (s != dnnl_success) dnnl_primitive_desc_destroy(pd);
    TRY(s, "fused convolution");
    TRY(make(e, c, pd), "fused convolution");
    return LOOM_OK;
}

/* The conv's weights and bias with the batch norm's running statistics,
 * scale and shift folded in: y = s (W x + b - mean) + beta, s = gamma / sqrt(var + eps). */
static void fold_weights(loom_exec *e, int a) {
    const loom_step *as = &e->step[a];
    const loom_graph *g = e->g;
    const loom_layer *l = &g->nodes[as->fuse_conv];
    int oc = l->a.conv.oc;
    size_t per = l->weight_count / (size_t)oc;
    const float *W = g->params + l->param_off, *b = l->bias ? W + l->weight_count : NULL;
    float *F = e->dn->node[as->fuse_conv].fold, *fb = F + l->weight_count;
    const loom_layer *bn = as->fuse_bn ? &g->nodes[as->fuse_bn] : NULL;
    for (int o = 0; o < oc; o++) {
        float sc = 1.0f, bias = b ? b[o] : 0.0f;
        if (bn) {
            const float *gamma = g->params + bn->param_off, *beta = gamma + bn->weight_count;
            const float *mean = g->buffers + bn->buf_off, *var = mean + bn->c;
            sc = gamma[o] / sqrtf(var[o] + bn->a.bn.eps);
            bias = (bias - mean[o]) * sc + beta[o];
        }
        for (size_t k = 0; k < per; k++) F[o * per + k] = W[o * per + k] * sc;
        fb[o] = bias;
    }
}

/* Whether S's folded weights (and their reorder) were made from exactly the parameters and running statistics
 * there now: a conv's weights and bias, its batch norm's scale, shift, mean and variance, compared bit for bit
 * with a copy kept at the last fold (inference runs in pieces of a few samples, and a Winograd weight transform
 * per piece cost more than the convolution). Anything written to them since, by the optimizer, a checkpoint or
 * the caller, makes it fold again. Keeps the copy when it is not current. Under a hold, compares once. */
static int fold_current(loom_exec *e, int a, set *S) {
    if (S->fold_valid && e->held && S->fold_gen == e->hold_gen) return 1;
    const loom_step *as = &e->step[a];
    const loom_graph *g = e->g;
    const loom_layer *l = &g->nodes[as->fuse_conv], *bn = as->fuse_bn ? &g->nodes[as->fuse_bn] : NULL;
    const float *seg[3] = {g->params + l->param_off, bn ? g->params + bn->param_off : NULL,
                           bn ? g->buffers + bn->buf_off : NULL};
    size_t len[3] = {l->weight_count + (l->bias ? (size_t)l->a.conv.oc : 0), bn ? 2 * bn->weight_count : 0,
                     bn ? 2 * (size_t)bn->c : 0};
    if (!S->fold_src && !(S->fold_src = alloc_bytes(e, S, (len[0] + len[1] + len[2]) * sizeof(float))))
        return 0; /* no copy: fold every time */
    int same = S->fold_valid;
    float *c = S->fold_src;
    for (int k = 0; k < 3; c += len[k], k++) {
        if (!len[k]) continue; /* no batch norm */
        if (same && memcmp(c, seg[k], len[k] * sizeof(float))) same = 0;
        if (!same) memcpy(c, seg[k], len[k] * sizeof(float));
    }
    S->fold_valid = 1;
    S->fold_gen = e->held ? e->hold_gen : 0;
    return same;
}

int loom_dnn_fused_forward(loom_exec *e, int a, int n) {
    int prev = enter(), rc = LOOM_OK;
    const loom_step *as = &e->step[a];
    set *S = get_set(e, as->fuse_conv, n);
    if (!S->fuse.p && !S->own_wino) {
        rc = own_wino(e, a) ? wino_build(e, a, S) : fused_build(e, a, S);
    }
    /* loom's kernel, and a primitive without a reorder, read the node's fold, which another set may have rewritten */
    if (rc == LOOM_OK && (S->own_wino || !S->wre_fuse.p || !fold_current(e, a, S))) {
        fold_weights(e, a);
        if (S->wre_fuse.p) rc = run(e, &S->wre_fuse, as->fuse_conv, "weights reorder");
        if (rc != LOOM_OK) S->fold_valid = 0; /* not made: fold again next time */
    }
    if (rc == LOOM_OK && S->sum_bytes && e->slot[as->fuse_other].act != e->slot[as->out].act)
        memcpy(e->slot[as->out].act, e->slot[as->fuse_other].act, S->sum_bytes);
    if (rc == LOOM_OK) rc = S->own_wino ? wino_run(e, a, n, S) : run(e, &S->fuse, as->fuse_conv, "fused convolution");
    leave(prev);
    return rc;
}

static int build_forward(loom_exec *e, int i, set *S, int training) {
    const loom_layer *l = &e->g->nodes[i];
    int n = S->n;
    dnnl_primitive_desc_t fpd = NULL;
    int rc = LOOM_OK;
    switch (l->op) {
    case LOOM_OP_CONV2D:
        rc = conv_fwd(e, i, n, S, &fpd);
        if (rc == LOOM_OK) rc = wino_fwd_build(e, i, S);
        break;
    case LOOM_OP_BATCHNORM: rc = bn_fwd(e, i, n, S, training, NULL); break;
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL: rc = pool_fwd(e, i, n, S, training, NULL); break;
    default: rc = elt_fwd(e, i, n, S, &fpd); break;
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    return rc;
}

static int build_backward(loom_exec *e, int i, set *S) {
    const loom_layer *l = &e->g->nodes[i];
    int n = S->n;
    /* backward needs the forward's descriptor as a hint: made again (cheap, oneDNN caches) into a scratch set */
    set hint_set;
    memset(&hint_set, 0, sizeof hint_set);
    dnnl_primitive_desc_t fpd = NULL;
    int rc = forward_hint(e, i, n, &hint_set, &fpd);
    if (rc == LOOM_OK) {
        switch (l->op) {
        case LOOM_OP_CONV2D: rc = conv_bwd(e, i, n, S, fpd); break;
        case LOOM_OP_BATCHNORM: rc = bn_bwd(e, i, n, S, fpd); break;
        case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL: rc = pool_bwd(e, i, n, S, fpd); break;
        default: rc = elt_bwd(e, i, n, S, fpd); break;
        }
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    set_free(e, &hint_set);
    if (rc == LOOM_OK) S->has_bwd = 1;
    return rc;
}

int loom_dnn_forward(loom_exec *e, int i, int n, int training) {
    int prev = enter(), rc = LOOM_OK;
    set *S = get_set(e, i, n);
    loom_op op = e->g->nodes[i].op;
    int has_inference = op == LOOM_OP_BATCHNORM || op == LOOM_OP_MAXPOOL || op == LOOM_OP_AVGPOOL;
    call *c = training || !has_inference ? &S->fwd : &S->fwd_inf;
    if (!c->p) rc = build_forward(e, i, S, c == &S->fwd);
    if (rc == LOOM_OK && S->own_wino_f) rc = wino_fwd(e, i, n, S);
    else {
        if (rc == LOOM_OK && S->wre.p) rc = run(e, &S->wre, i, "weights reorder");
        if (rc == LOOM_OK) rc = run(e, c, i, "forward");
    }
    leave(prev);
    return rc;
}

int loom_dnn_backward(loom_exec *e, int i, int n) {
    int prev = enter(), rc = LOOM_OK;
    const loom_layer *l = &e->g->nodes[i];
    set *S = get_set(e, i, n);
    if (!S->fwd.p) rc = build_forward(e, i, S, 1); /* backward reads the training forward's workspace */
    if (rc == LOOM_OK && !S->has_bwd) rc = build_backward(e, i, S);
    if (rc == LOOM_OK) rc = run(e, &S->relu_bwd, i, "fused ReLU backward");
    if (rc == LOOM_OK && l->op == LOOM_OP_CONV2D) {
        if (S->own_wgrad) {
            const loom_step *st = &e->step[i];
            const loom_conv_shape *cs = &l->a.conv;
            const loom_slot *xs = &e->slot[st->in[0]], *ys = &e->slot[st->out];
            float *dw = e->pgrad + l->param_off;
            if (!loom_k_conv3x3_wgrad_blk8(xs->act, ys->grad, n, cs->c, cs->oc, ys->h, ys->w, S->wgbuf, dw,
                                           l->bias ? dw + l->weight_count : NULL))
                rc = loom_fail(LOOM_EUNSUPPORTED, "layer %s: the 3x3 weight-gradient kernel refused its shape",
                               l->name);
        } else if (S->bwd_w.p) {
            rc = run(e, &S->bwd_w, i, "convolution backward (weights)");
            if (rc == LOOM_OK) rc = run(e, &S->wgre, i, "weight gradient reorder");
            if (rc == LOOM_OK && l->bias) {
                float *db = e->pgrad + l->param_off + l->weight_count;
                for (int k = 0; k < l->c; k++) db[k] += e->ptmp[k];
            }
        }
        if (rc == LOOM_OK && S->own_wino_d) {
            rc = wino_bwd_data(e, i, n, S);
        } else if (rc == LOOM_OK && S->bwd_d.p) {
            if (S->wre_d.p) rc = run(e, &S->wre_d, i, "weights reorder");
            if (rc == LOOM_OK) rc = run(e, &S->bwd_d, i, "convolution backward (data)");
            if (rc == LOOM_OK) grad_finish(e, i, 0, n);
        }
    } else if (rc == LOOM_OK) {
        rc = run(e, &S->bwd_d, i, "backward");
        if (rc == LOOM_OK) grad_finish(e, i, 0, n);
        if (rc == LOOM_OK && l->op == LOOM_OP_BATCHNORM && !l->frozen) {
            float *dW = e->pgrad + l->param_off;
            for (int k = 0; k < 2 * l->c; k++) dW[k] += e->ptmp[k];
        }
    }
    leave(prev);
    return rc;
}

int loom_dnn_convert(loom_exec *e, const loom_convert *cv, int n, int backward) {
    int i = -1, ci = (int)(cv - e->conv);
    conv_state *cs = &e->dn->conv[ci];
    int k = 0;
    for (; k < NSETS && cs->n[k] != n; k++) {}
    if (k == NSETS) {
        k = 0;
        for (int q = 1; q < NSETS; q++)
            if (cs->used[q] < cs->used[k]) k = q;
        call_free(&cs->fwd[k]);
        call_free(&cs->bwd[k]);
        cs->n[k] = n;
    }
    cs->used[k] = ++e->dn->clock;
    call *c = backward ? &cs->bwd[k] : &cs->fwd[k];
    int prev = enter(), rc = LOOM_OK;
    if (!c->p) {
        const loom_slot *f = &e->slot[cv->from], *t = &e->slot[cv->to];
        dnnl_memory_desc_t fmd, tmd;
        slot_md(e, f, n, &fmd);
        slot_md(e, t, n, &tmd);
        dnnl_status_t st = backward ? reorder(e, c, &tmd, t->grad, &fmd, f->grad, cv->acc)
                                    : reorder(e, c, &fmd, f->act, &tmd, t->act, 0);
        if (st != dnnl_success) rc = failed(st, "layout conversion", e, i);
    }
    if (rc == LOOM_OK) rc = run(e, c, i, "layout conversion");
    leave(prev);
    return rc;
}

int loom_dnn_init(loom_exec *e) {
    if (!loom_dnn_usable()) return loom_fail(LOOM_EUNSUPPORTED, "oneDNN kernels: %s", loom_dnn_isa());
    e->dn = calloc(1, sizeof *e->dn);
    if (!e->dn) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
    e->dn->node = calloc((size_t)e->g->n, sizeof *e->dn->node);
    e->dn->conv = calloc((size_t)e->nconv + 1, sizeof *e->dn->conv);
    if (!e->dn->node || !e->dn->conv) return loom_fail(LOOM_ENOMEM, "oneDNN: out of memory");
    if (dnnl_stream_create(&e->dn->stream, engine, dnnl_stream_default_flags) != dnnl_success)
        return loom_fail(LOOM_EUNSUPPORTED, "oneDNN: cannot create a stream");
    /* the primitives for a full batch now: what fails to build fails here, and the
     * memory they need is counted before the first step */
    int prev = enter(), rc = LOOM_OK;
    for (int i = 1; i < e->g->n && rc == LOOM_OK; i++) {
        if (!e->step[i].dnn || e->step[i].alias) continue;
        set *S = get_set(e, i, e->max_batch);
        rc = build_forward(e, i, S, 1);
        if (rc == LOOM_OK && e->slot[e->step[i].out].grad) rc = build_backward(e, i, S);
    }
    /* a fusion oneDNN cannot build (or only with reference code) is undone: those layers run on their own */
    for (int a = 1; a < e->g->n && rc == LOOM_OK; a++) {
        loom_step *as = &e->step[a];
        if (!as->fuse_conv) continue;
        set *S = get_set(e, as->fuse_conv, e->max_batch);
        if ((own_wino(e, a) ? wino_build(e, a, S) : fused_build(e, a, S)) == LOOM_OK) continue;
        call_free(&S->fuse);
        call_free(&S->wre_fuse);
        for (int q = 1; q < a; q++)
            if (e->step[q].skip_inf == a) e->step[q].skip_inf = 0;
        as->fuse_conv = as->fuse_bn = as->fuse_relu = 0;
        as->fuse_other = -1;
    }
    leave(prev);
    return rc;
}

void loom_dnn_free(loom_exec *e) {
    struct loom_dnn *d = e->dn;
    if (!d) return;
    for (int i = 0; d->node && i < e->g->n; i++) {
        for (int k = 0; k < NSETS; k++) set_free(e, &d->node[i].s[k]);
        free(d->node[i].fold);
    }
    for (int c = 0; d->conv && c < e->nconv; c++)
        for (int k = 0; k < NSETS; k++) {
            call_free(&d->conv[c].fwd[k]);
            call_free(&d->conv[c].bwd[k]);
        }
    if (d->stream) dnnl_stream_destroy(d->stream);
    free(d->node);
    free(d->conv);
    free(d->scratch);
    free(d);
    e->dn = NULL;
}

size_t loom_dnn_extra_bytes(const loom_exec *e) { return e->dn ? e->dn->extra : 0; }

int loom_dnn_winograd(const loom_exec *e) {
    int count = 0;
    for (int a = 1; e->dn && a < e->g->n; a++) {
        int i = e->step[a].fuse_conv, on = 0;
        for (int k = 0; i > 0 && k < NSETS; k++) on |= e->dn->node[i].s[k].own_wino;
        count += on;
    }
    return count;
}

const char *loom_dnn_impl(const loom_exec *e, int i) {
    if (!e->dn || i < 0 || i >= e->g->n) return NULL;
    const node_state *ns = &e->dn->node[i];
    for (int k = 0; k < NSETS; k++)
        if (ns->s[k].impl[0]) return ns->s[k].impl;
    return NULL;
}

#endif
