/* Graph building: every constructor checks its input shape, computes its
 * output shape and records how many parameters it needs; offsets into the
 * flat arrays are assigned at loom_graph_finish, when the whole model is known. */
#include "graph_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "models/init.h"
#include "loom/error.h"

static const char *op_names[LOOM_OP_COUNT_] = {
    "input", "dense", "conv2d", "maxpool2d", "avgpool2d", "global_avgpool", "flatten",
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "dropout", "batchnorm", "add",
    "concat", "clip", "log_softmax", "scale", "arith", "reshape", "pad"};

const char *loom_op_name(loom_op op) {
    return (op >= 0 && op < LOOM_OP_COUNT_) ? op_names[op] : "?";
}

loom_graph *loom_graph_new(const char *name) {
    loom_graph *g = calloc(1, sizeof *g);
    if (!g) {
        loom_fail(LOOM_ENOMEM, "loom_graph_new: out of memory");
        return NULL;
    }
    snprintf(g->name, sizeof g->name, "%s", name ? name : "model");
    return g;
}

void loom_graph_free(loom_graph *g) {
    if (!g) return;
    free(g->nodes);
    loom_k_big_free(g->params);
    free(g->buffers);
    free(g);
}

/* Record the first error only: later ones are usually consequences of it. */
static loom_node fail(loom_graph *g, const char *fmt, ...) {
    if (!g->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, sizeof g->err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *loom_graph_error(const loom_graph *g) { return g->err; }

/* Whether x can feed a new layer: a graph without an error so far, not
 * finished, and x one of its nodes (a mistake there is recorded). */
static int valid(loom_graph *g, loom_node x) {
    if (!g || g->err[0]) return 0;
    if (g->finished) {
        fail(g, "%s: the graph is finished: a layer added now would not be part of it", g->name);
        return 0;
    }
    if (x < 0 || x >= g->n) {
        fail(g, "%s: layer %d: its input %d is not a node of the graph (0..%d)", g->name, g->n, x, g->n - 1);
        return 0;
    }
    return 1;
}

/* Whether x names a node, for the setters (which also work on a finished graph). */
static int node_ok(loom_graph *g, loom_node x, const char *what) {
    if (!g) return 0;
    if (x < 0 || x >= g->n) {
        fail(g, "%s: %s: node %d is not a node of the graph (0..%d)", g->name, what, x, g->n - 1);
        return 0;
    }
    return 1;
}

/* A layer's output is a flat vector after dense/flatten/global pooling, and
 * elementwise layers keep whatever their input was. */
static int is_flat(const loom_graph *g, const loom_layer *l) {
    for (;;) {
        switch (l->op) {
        case LOOM_OP_DENSE: case LOOM_OP_FLATTEN: case LOOM_OP_GAVGPOOL: return 1;
        case LOOM_OP_RESHAPE: return l->a.rank == 2;
        case LOOM_OP_ARITH: if (!is_flat(g, &g->nodes[l->in[1]])) return 0;
            l = &g->nodes[l->in[0]];
            break;
        case LOOM_OP_RELU: case LOOM_OP_LEAKY_RELU: case LOOM_OP_SIGMOID: case LOOM_OP_TANH:
        case LOOM_OP_SOFTMAX: case LOOM_OP_DROPOUT: case LOOM_OP_BATCHNORM: case LOOM_OP_ADD:
        case LOOM_OP_CLIP: case LOOM_OP_LOG_SOFTMAX: case LOOM_OP_SCALE:
            l = &g->nodes[l->in[0]];
            break;
        default: return 0;
        }
    }
}

static const char *shape_str(const loom_graph *g, const loom_layer *l, char *buf, size_t cap) {
    if (is_flat(g, l)) snprintf(buf, cap, "(%d)", l->c);
    else snprintf(buf, cap, "(%d, %d, %d)", l->c, l->h, l->w);
    return buf;
}

/* Append a layer of the given op fed by the given inputs, with a default name. */
static loom_layer *add_layer(loom_graph *g, loom_op op, int nin, const loom_node *in) {
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 16;
        loom_layer *p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) {
            fail(g, "%s: out of memory adding a layer", g->name);
            return NULL;
        }
        g->nodes = p;
        g->cap = cap;
    }
    loom_layer *l = &g->nodes[g->n];
    memset(l, 0, sizeof *l);
    l->op = op;
    l->nin = nin;
    for (int i = 0; i < nin; i++) l->in[i] = in[i];
    int same = 0;
    for (int i = 0; i < g->n; i++) same += g->nodes[i].op == op;
    snprintf(l->name, sizeof l->name, "%s_%d", op_names[op], same + 1);
    g->n++;
    return l;
}

static void set_shape(loom_layer *l, int c, int h, int w) {
    l->c = c;
    l->h = h;
    l->w = w;
    l->size = (size_t)c * h * w;
}

loom_node loom_input(loom_graph *g, int c, int h, int w) {
    if (!g || g->err[0]) return -1;
    if (g->finished) return fail(g, "%s: the graph is finished: a layer added now would not be part of it", g->name);
    if (c <= 0 || h <= 0 || w <= 0)
        return fail(g, "%s: input shape (%d, %d, %d) must be positive", g->name, c, h, w);
    loom_layer *l = add_layer(g, LOOM_OP_INPUT, 0, NULL);
    if (!l) return -1;
    set_shape(l, c, h, w);
    return g->n - 1;
}

loom_node loom_dense(loom_graph *g, loom_node x, int units) {
    if (!valid(g, x)) return -1;
    if (units <= 0) return fail(g, "%s: dense layer %d: %d units must be positive", g->name, g->n, units);
    const loom_layer *in = &g->nodes[x];
    size_t fan_in = in->size;
    loom_layer *l = add_layer(g, LOOM_OP_DENSE, 1, &x);
    if (!l) return -1;
    set_shape(l, units, 1, 1);
    l->a.dense.in = (int)fan_in;
    l->a.dense.out = units;
    l->bias = 1;
    l->weight_count = fan_in * (size_t)units;
    l->param_count = l->weight_count + (size_t)units;
    return g->n - 1;
}

loom_node loom_conv2d_ex(loom_graph *g, loom_node x, const loom_conv_shape *s, int bias) {
    if (!valid(g, x)) return -1;
    const loom_layer *in = &g->nodes[x];
    loom_conv_shape cs = *s;
    cs.c = in->c;
    cs.h = in->h;
    cs.w = in->w;
    char b[64];
    const char *nm = g->name;
    if (cs.sh < 0 || cs.sw < 0 || cs.dh < 0 || cs.dw < 0 || cs.groups < 0)
        return fail(g, "%s: conv2d layer %d: stride %dx%d, dilation %dx%d and groups %d must not be negative (0 means 1)",
                    nm, g->n, cs.sh, cs.sw, cs.dh, cs.dw, cs.groups);
    if (cs.sh == 0) cs.sh = 1;
    if (cs.sw == 0) cs.sw = 1;
    if (cs.dh == 0) cs.dh = 1;
    if (cs.dw == 0) cs.dw = 1;
    if (cs.groups == 0) cs.groups = 1;
    if (cs.oc <= 0 || cs.kh <= 0 || cs.kw <= 0 || cs.ph < 0 || cs.pw < 0)
        return fail(g, "%s: conv2d layer %d: filters %d, kernel %dx%d, padding %d,%d must be positive",
                    nm, g->n, cs.oc, cs.kh, cs.kw, cs.ph, cs.pw);
    if (cs.c % cs.groups || cs.oc % cs.groups)
        return fail(g, "%s: conv2d layer %d: input %s has %d channels and %d filters, not both divisible by groups %d",
                    nm, g->n, shape_str(g, in, b, sizeof b), cs.c, cs.oc, cs.groups);
    if (loom_k_conv2d_out(&cs) != 0)
        return fail(g, "%s: conv2d layer %d: input %s is too small for a %dx%d kernel (dilation %d, padding %d, stride %d): output would be empty",
                    nm, g->n, shape_str(g, in, b, sizeof b), cs.kh, cs.kw, cs.dh, cs.ph, cs.sh);
    loom_layer *l = add_layer(g, LOOM_OP_CONV2D, 1, &x);
    if (!l) return -1;
    l->a.conv = cs;
    set_shape(l, cs.oc, cs.oh, cs.ow);
    l->bias = bias != 0;
    l->weight_count = (size_t)cs.oc * (cs.c / cs.groups) * cs.kh * cs.kw;
    l->param_count = l->weight_count + (l->bias ? (size_t)cs.oc : 0);
    return g->n - 1;
}

loom_node loom_conv2d(loom_graph *g, loom_node x, int filters, int k, int stride, int pad) {
    loom_conv_shape s = {.oc = filters, .kh = k, .kw = k, .sh = stride, .sw = stride,
                         .ph = pad, .pw = pad, .dh = 1, .dw = 1, .groups = 1};
    return loom_conv2d_ex(g, x, &s, 1);
}

static loom_node pool(loom_graph *g, loom_op op, loom_node x, int kh, int kw, int sh, int sw,
                      int ph, int pw, int cip) {
    if (!valid(g, x)) return -1;
    const loom_layer *in = &g->nodes[x];
    char b[64];
    if (kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 || pw < 0 || ph * 2 > kh || pw * 2 > kw)
        return fail(g, "%s: %s layer %d: kernel %dx%d, stride %dx%d, padding %dx%d invalid (padding at most half the kernel)",
                    g->name, op_names[op], g->n, kh, kw, sh, sw, ph, pw);
    loom_pool_shape ps = {.c = in->c, .h = in->h, .w = in->w, .kh = kh, .kw = kw,
                          .sh = sh, .sw = sw, .ph = ph, .pw = pw};
    if (loom_k_pool_out(&ps) != 0)
        return fail(g, "%s: %s layer %d: input %s is too small for a %dx%d window",
                    g->name, op_names[op], g->n, shape_str(g, in, b, sizeof b), kh, kw);
    loom_layer *l = add_layer(g, op, 1, &x); /* may move the layers: in is not read after it */
    if (!l) return -1;
    l->a.pool = ps;
    set_shape(l, ps.c, ps.oh, ps.ow);
    l->count_include_pad = cip;
    return g->n - 1;
}

loom_node loom_maxpool2d_ex(loom_graph *g, loom_node x, int kh, int kw, int sh, int sw, int ph, int pw) {
    return pool(g, LOOM_OP_MAXPOOL, x, kh, kw, sh, sw, ph, pw, 0);
}
loom_node loom_maxpool2d(loom_graph *g, loom_node x, int k, int stride) {
    return pool(g, LOOM_OP_MAXPOOL, x, k, k, stride, stride, 0, 0, 0);
}
loom_node loom_avgpool2d_ex(loom_graph *g, loom_node x, int kh, int kw, int sh, int sw, int ph,
                            int pw, int count_include_pad) {
    return pool(g, LOOM_OP_AVGPOOL, x, kh, kw, sh, sw, ph, pw, count_include_pad);
}
loom_node loom_avgpool2d(loom_graph *g, loom_node x, int k, int stride) {
    return pool(g, LOOM_OP_AVGPOOL, x, k, k, stride, stride, 0, 0, 0);
}

loom_node loom_global_avgpool(loom_graph *g, loom_node x) {
    if (!valid(g, x)) return -1;
    int c = g->nodes[x].c;
    loom_layer *l = add_layer(g, LOOM_OP_GAVGPOOL, 1, &x);
    if (!l) return -1;
    set_shape(l, c, 1, 1);
    return g->n - 1;
}

loom_node loom_flatten(loom_graph *g, loom_node x) {
    if (!valid(g, x)) return -1;
    size_t size = g->nodes[x].size;
    loom_layer *l = add_layer(g, LOOM_OP_FLATTEN, 1, &x);
    if (!l) return -1;
    set_shape(l, (int)size, 1, 1);
    return g->n - 1;
}

/* Elementwise layers keep their input's shape. */
static loom_node unary(loom_graph *g, loom_op op, loom_node x) {
    if (!valid(g, x)) return -1;
    loom_layer in = g->nodes[x];
    loom_layer *l = add_layer(g, op, 1, &x);
    if (!l) return -1;
    set_shape(l, in.c, in.h, in.w);
    return g->n - 1;
}

loom_node loom_relu(loom_graph *g, loom_node x) { return unary(g, LOOM_OP_RELU, x); }
loom_node loom_sigmoid(loom_graph *g, loom_node x) { return unary(g, LOOM_OP_SIGMOID, x); }
loom_node loom_tanh(loom_graph *g, loom_node x) { return unary(g, LOOM_OP_TANH, x); }
loom_node loom_softmax(loom_graph *g, loom_node x) {
    loom_node y = unary(g, LOOM_OP_SOFTMAX, x);
    return y;
}

loom_node loom_log_softmax(loom_graph *g, loom_node x) { return unary(g, LOOM_OP_LOG_SOFTMAX, x); }

loom_node loom_clip(loom_graph *g, loom_node x, float lo, float hi) {
    if (valid(g, x) && !(isfinite(lo) && isfinite(hi) && lo <= hi))
        return fail(g, "%s: clip layer %d: bounds [%g, %g] must be finite, the lower not above the upper", g->name, g->n,
                    (double)lo, (double)hi);
    loom_node y = unary(g, LOOM_OP_CLIP, x);
    if (y >= 0) g->nodes[y].a.clip.lo = lo, g->nodes[y].a.clip.hi = hi;
    return y;
}

loom_node loom_scale(loom_graph *g, loom_node x) {
    loom_node y = unary(g, LOOM_OP_SCALE, x);
    if (y < 0) return y;
    loom_layer *l = &g->nodes[y];
    l->weight_count = l->size;
    l->param_count = 2 * l->size;
    l->bias = 1;
    l->winit.kind = LOOM_INIT_ONES;
    l->binit.kind = LOOM_INIT_ZEROS;
    return y;
}

loom_node loom_leaky_relu(loom_graph *g, loom_node x, float alpha) {
    if (valid(g, x) && !isfinite(alpha))
        return fail(g, "%s: leaky_relu layer %d: slope %g is not a finite number", g->name, g->n, (double)alpha);
    loom_node y = unary(g, LOOM_OP_LEAKY_RELU, x);
    if (y >= 0) g->nodes[y].a.alpha = alpha;
    return y;
}

loom_node loom_dropout(loom_graph *g, loom_node x, float p) {
    if (valid(g, x) && !(p >= 0.0f && p < 1.0f))
        return fail(g, "%s: dropout layer %d: probability %g must be in [0, 1)", g->name, g->n, (double)p);
    loom_node y = unary(g, LOOM_OP_DROPOUT, x);
    if (y >= 0) g->nodes[y].a.p = p;
    return y;
}

loom_node loom_batchnorm(loom_graph *g, loom_node x) {
    loom_node y = unary(g, LOOM_OP_BATCHNORM, x);
    if (y < 0) return y;
    loom_layer *l = &g->nodes[y];
    l->a.bn.eps = 1e-5f;
    l->a.bn.momentum = 0.1f;
    l->a.bn.hw = l->h * l->w;
    l->weight_count = (size_t)l->c;
    l->param_count = 2 * (size_t)l->c;
    l->buf_count = 2 * (size_t)l->c;
    l->winit.kind = LOOM_INIT_ONES;
    l->binit.kind = LOOM_INIT_ZEROS;
    return y;
}

loom_node loom_add(loom_graph *g, loom_node a, loom_node b) {
    if (!valid(g, a) || !valid(g, b)) return -1;
    const loom_layer *la = &g->nodes[a], *lb = &g->nodes[b];
    char s1[64], s2[64];
    if (la->c != lb->c || la->h != lb->h || la->w != lb->w)
        return fail(g, "%s: add layer %d: shapes differ: %s (%s) vs %s (%s)", g->name, g->n,
                    shape_str(g, la, s1, sizeof s1), la->name, shape_str(g, lb, s2, sizeof s2), lb->name);
    loom_node in[2] = {a, b};
    loom_layer sh = *la;
    loom_layer *l = add_layer(g, LOOM_OP_ADD, 2, in);
    if (!l) return -1;
    set_shape(l, sh.c, sh.h, sh.w);
    return g->n - 1;
}

static const char *const arith_names[] = {"+", "-", "*", "/"};

loom_node loom_arith(loom_graph *g, loom_arith_kind kind, loom_node a, loom_node b) {
    if (!valid(g, a) || !valid(g, b)) return -1;
    if ((int)kind < 0 || kind > LOOM_ARITH_DIV)
        return fail(g, "%s: arith layer %d: no operation %d (add, sub, mul, div)", g->name, g->n, (int)kind);
    const loom_layer *la = &g->nodes[a], *lb = &g->nodes[b];
    int da[3] = {la->c, la->h, la->w}, db[3] = {lb->c, lb->h, lb->w}, d[3];
    for (int k = 0; k < 3; k++) {
        char s1[64], s2[64];
        if (da[k] != db[k] && da[k] != 1 && db[k] != 1)
            return fail(g, "%s: arith layer %d (%s): shapes %s (%s) and %s (%s) do not broadcast: each dimension must "
                           "be equal or 1 in one of them",
                        g->name, g->n, arith_names[kind], shape_str(g, la, s1, sizeof s1), la->name,
                        shape_str(g, lb, s2, sizeof s2), lb->name);
        d[k] = da[k] > db[k] ? da[k] : db[k];
    }
    loom_node in[2] = {a, b};
    loom_layer *l = add_layer(g, LOOM_OP_ARITH, 2, in);
    if (!l) return -1;
    set_shape(l, d[0], d[1], d[2]);
    l->a.arith = (int)kind;
    return g->n - 1;
}

loom_node loom_mul(loom_graph *g, loom_node a, loom_node b) { return loom_arith(g, LOOM_ARITH_MUL, a, b); }

loom_node loom_reshape(loom_graph *g, loom_node x, int rank, int c, int h, int w) {
    if (!valid(g, x)) return -1;
    const loom_layer *lx = &g->nodes[x];
    if (rank < 2 || rank > 4 || c < 1 || h < 1 || w < 1 || (rank < 4 && w != 1) || (rank < 3 && h != 1) ||
        (size_t)c * h * w != lx->size)
        return fail(g, "%s: reshape layer %d: %d values of %s cannot be a rank-%d (%d, %d, %d)", g->name, g->n,
                    (int)lx->size, lx->name, rank, c, h, w);
    loom_layer *l = add_layer(g, LOOM_OP_RESHAPE, 1, &x);
    if (!l) return -1;
    set_shape(l, c, h, w);
    l->a.rank = rank;
    return g->n - 1;
}

loom_node loom_pad2d(loom_graph *g, loom_node x, int top, int left, int bottom, int right, float value) {
    if (!valid(g, x)) return -1;
    const loom_layer *lx = &g->nodes[x];
    char s1[64];
    if (is_flat(g, lx))
        return fail(g, "%s: pad layer %d: its input %s is %s, not an image", g->name, g->n, lx->name,
                    shape_str(g, lx, s1, sizeof s1));
    if (top < 0 || left < 0 || bottom < 0 || right < 0 || top > 65536 || left > 65536 || bottom > 65536 ||
        right > 65536 || !isfinite(value))
        return fail(g, "%s: pad layer %d: padding %d, %d, %d, %d by %g: each side 0 to 65536, a finite value", g->name,
                    g->n, top, left, bottom, right, (double)value);
    int c = lx->c, h = lx->h + top + bottom, w = lx->w + left + right;
    loom_layer *l = add_layer(g, LOOM_OP_PAD, 1, &x);
    if (!l) return -1;
    set_shape(l, c, h, w);
    l->a.pad.top = top, l->a.pad.left = left, l->a.pad.bottom = bottom, l->a.pad.right = right;
    l->a.pad.value = value;
    return g->n - 1;
}

loom_node loom_concat(loom_graph *g, int n, const loom_node *xs) {
    if (!g || g->err[0]) return -1;
    if (n < 1 || n > LOOM_MAX_INPUTS || !xs)
        return fail(g, "%s: concat layer %d: %d inputs (1..%d allowed)%s", g->name, g->n, n, LOOM_MAX_INPUTS,
                    xs ? "" : ", and no array of them");
    int c = 0;
    for (int i = 0; i < n; i++) {
        if (!valid(g, xs[i])) return -1;
        const loom_layer *a = &g->nodes[xs[0]], *b = &g->nodes[xs[i]];
        char s1[64], s2[64];
        if (a->h != b->h || a->w != b->w)
            return fail(g, "%s: concat layer %d: spatial sizes differ: %s (%s) vs %s (%s)", g->name, g->n,
                        shape_str(g, a, s1, sizeof s1), a->name, shape_str(g, b, s2, sizeof s2), b->name);
        c += b->c;
    }
    int h = g->nodes[xs[0]].h, w = g->nodes[xs[0]].w;
    loom_layer *l = add_layer(g, LOOM_OP_CONCAT, n, xs);
    if (!l) return -1;
    set_shape(l, c, h, w);
    return g->n - 1;
}

void loom_graph_set_init(loom_graph *g, loom_node x, loom_init weight, loom_init bias) {
    if (!node_ok(g, x, "loom_graph_set_init")) return;
    if (g->finished) {
        fail(g, "%s: loom_graph_set_init on node %d after loom_graph_finish, which applies initializers", g->name, x);
        return;
    }
    g->nodes[x].winit = weight;
    g->nodes[x].binit = bias;
}

void loom_graph_set_default_init(loom_graph *g, loom_init weight) {
    if (g && g->finished) fail(g, "%s: loom_graph_set_default_init after loom_graph_finish, which applies it", g->name);
    else if (g) g->default_init = weight;
}

void loom_graph_set_frozen(loom_graph *g, loom_node x, int frozen) {
    if (node_ok(g, x, "loom_graph_set_frozen")) g->nodes[x].frozen = frozen != 0;
}

void loom_graph_set_batchnorm(loom_graph *g, loom_node x, float eps, float momentum) {
    if (!node_ok(g, x, "loom_graph_set_batchnorm")) return;
    if (g->nodes[x].op != LOOM_OP_BATCHNORM) {
        fail(g, "%s: loom_graph_set_batchnorm: node %d is a %s layer", g->name, x, op_names[g->nodes[x].op]);
        return;
    }
    if (!(eps > 0 && isfinite(eps)) || !(momentum >= 0 && momentum <= 1)) {
        fail(g, "%s: loom_graph_set_batchnorm: eps %g must be positive, momentum %g in [0, 1]", g->name, (double)eps,
             (double)momentum);
        return;
    }
    g->nodes[x].a.bn.eps = eps;
    g->nodes[x].a.bn.momentum = momentum;
}

static void fans(const loom_layer *l, double *fi, double *fo) {
    if (l->op == LOOM_OP_DENSE) {
        *fi = l->a.dense.in;
        *fo = l->a.dense.out;
    } else if (l->op == LOOM_OP_CONV2D) {
        const loom_conv_shape *s = &l->a.conv;
        *fi = (double)s->c / s->groups * s->kh * s->kw;
        *fo = (double)s->oc / s->groups * s->kh * s->kw;
    } else {
        *fi = *fo = 1;
    }
}

void loom_graph_init_params(loom_graph *g, uint64_t seed) {
    for (int i = 0; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        if (!l->param_count) continue;
        double fi, fo;
        fans(l, &fi, &fo);
        loom_init wi = l->winit;
        if (wi.kind == LOOM_INIT_DEFAULT && l->op != LOOM_OP_BATCHNORM && l->op != LOOM_OP_SCALE) wi = g->default_init;
        /* Each tensor draws from its own key, so adding a layer does not
         * change the initial weights of the others. */
        float *p = g->params + l->param_off;
        loom_init_fill(p, l->weight_count, wi, fi, fo, loom_rng_key(seed, LOOM_RNG_INIT, (uint64_t)i, 0));
        loom_init_fill(p + l->weight_count, l->param_count - l->weight_count, l->binit, fi, fo,
                       loom_rng_key(seed, LOOM_RNG_INIT, (uint64_t)i, 1));
        if (l->buf_count) { /* batch norm: running mean 0, variance 1 */
            float *b = g->buffers + l->buf_off;
            for (int c = 0; c < l->c; c++) {
                b[c] = 0.0f;
                b[l->c + c] = 1.0f;
            }
        }
    }
}

int loom_graph_finish(loom_graph *g, uint64_t seed) {
    if (!g) return loom_fail(LOOM_EINVAL, "loom_graph_finish: no graph");
    if (g->finished)
        return loom_fail(LOOM_EINVAL, "%s: already finished (finishing again would re-initialise its weights; "
                                      "loom_graph_init_params does that on purpose)",
                         g->name);
    if (!g->err[0] && g->n == 0) fail(g, "%s: the graph has no layers", g->name);
    if (!g->err[0] && g->nodes[0].op != LOOM_OP_INPUT)
        fail(g, "%s: the first layer must be an input", g->name);
    for (int i = 1; i < g->n && !g->err[0]; i++)
        if (g->nodes[i].op == LOOM_OP_INPUT)
            fail(g, "%s: layer %d: only one input layer is supported", g->name, i);
    if (g->err[0]) return loom_fail(LOOM_EINVAL, "%s", g->err);
    size_t po = 0, bo = 0;
    for (int i = 0; i < g->n; i++) {
        loom_layer *l = &g->nodes[i];
        l->param_off = po;
        l->buf_off = bo;
        po += l->param_count;
        bo += l->buf_count;
    }
    loom_k_big_free(g->params);
    free(g->buffers);
    g->n_params = po;
    g->n_buffers = bo;
    /* one spare float so an empty model still has valid pointers */
    g->params = loom_k_big_alloc(po + 1, sizeof(float));
    g->buffers = calloc(bo + 1, sizeof(float));
    if (!g->params || !g->buffers)
        return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu parameters", g->name, po);
    g->output = g->n - 1;
    g->finished = 1;
    loom_graph_init_params(g, seed);
    return LOOM_OK;
}

const char *loom_graph_name(const loom_graph *g) { return g->name; }
int loom_graph_count(const loom_graph *g) { return g->n; }
const loom_layer *loom_graph_layer(const loom_graph *g, loom_node i) {
    return (i >= 0 && i < g->n) ? &g->nodes[i] : NULL;
}
loom_node loom_graph_output(const loom_graph *g) { return g->output; }
size_t loom_graph_param_count(const loom_graph *g) { return g->n_params; }
size_t loom_graph_buffer_count(const loom_graph *g) { return g->n_buffers; }
float *loom_graph_params(loom_graph *g) { return g->params; }
float *loom_graph_buffers(loom_graph *g) { return g->buffers; }

double loom_graph_layer_flops(const loom_graph *g, loom_node i) {
    const loom_layer *l = &g->nodes[i];
    switch (l->op) {
    case LOOM_OP_DENSE: return 2.0 * l->a.dense.in * l->a.dense.out;
    case LOOM_OP_CONV2D: {
        const loom_conv_shape *s = &l->a.conv;
        return 2.0 * s->oc * s->oh * s->ow * (double)(s->c / s->groups) * s->kh * s->kw;
    }
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL:
        return (double)l->size * l->a.pool.kh * l->a.pool.kw;
    case LOOM_OP_GAVGPOOL: return (double)g->nodes[l->in[0]].size;
    case LOOM_OP_INPUT: case LOOM_OP_FLATTEN: case LOOM_OP_CONCAT: case LOOM_OP_RESHAPE: case LOOM_OP_PAD: return 0;
    case LOOM_OP_BATCHNORM: return 2.0 * l->size;
    case LOOM_OP_SOFTMAX: case LOOM_OP_LOG_SOFTMAX: case LOOM_OP_SIGMOID: case LOOM_OP_TANH: return 4.0 * l->size;
    case LOOM_OP_SCALE: return 2.0 * l->size;
    default: return (double)l->size;
    }
}

static void human(double v, char *buf, size_t cap) {
    if (v >= 1e9) snprintf(buf, cap, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, cap, "%.2fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, cap, "%.1fK", v / 1e3);
    else snprintf(buf, cap, "%.0f", v);
}

void loom_graph_summary(const loom_graph *g, FILE *f) {
    if (!g || !f) return;
    char b1[64], b2[32], b3[96];
    fprintf(f, "Model: \"%s\"\n", g->name);
    fprintf(f, "%-4s %-28s %-16s %12s %10s  %s\n", "#", "Layer (type)", "Output shape", "Params", "FLOPs", "Inputs");
    fprintf(f, "%.*s\n", 86, "==========================================================================================");
    double tf = 0;
    size_t tp = 0, frozen = 0;
    for (int i = 0; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        double fl = loom_graph_layer_flops(g, i);
        tf += fl;
        tp += l->param_count;
        if (l->frozen) frozen += l->param_count;
        char nm[96];
        snprintf(nm, sizeof nm, "%s (%s)", l->name, op_names[l->op]);
        human(fl, b2, sizeof b2);
        b3[0] = 0;
        for (int k = 0; k < l->nin; k++) {
            size_t len = strlen(b3);
            snprintf(b3 + len, sizeof b3 - len, "%s%s", k ? ", " : "", g->nodes[l->in[k]].name);
        }
        fprintf(f, "%-4d %-28s %-16s %12zu %10s  %s\n", i, nm, shape_str(g, l, b1, sizeof b1),
                l->param_count, b2, b3);
    }
    fprintf(f, "%.*s\n", 86, "==========================================================================================");
    human(tf, b2, sizeof b2);
    fprintf(f, "Total params: %zu (%.2f MB)\nTrainable params: %zu\nNon-trainable params: %zu (+ %zu buffer values)\n",
            tp, tp * 4.0 / 1048576.0, tp - frozen, frozen, g->n_buffers);
    fprintf(f, "Forward FLOPs per sample: %s\n", b2);
}

int loom_graph_set_name(loom_graph *g, loom_node x, const char *name) {
    if (!g || x < 0 || x >= g->n) return loom_fail(LOOM_EINVAL, "loom_graph_set_name: no layer %d", x);
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= sizeof g->nodes[x].name)
        return loom_fail(LOOM_EINVAL, "loom_graph_set_name: \"%s\" has %zu characters (1 to %zu)", name ? name : "", len,
                         sizeof g->nodes[x].name - 1);
    if (!name[strspn(name, "0123456789")])
        return loom_fail(LOOM_EINVAL, "loom_graph_set_name: \"%s\" is a number, which names a layer by its index", name);
    for (int i = 0; i < g->n; i++)
        if (i != x && !strcmp(g->nodes[i].name, name))
            return loom_fail(LOOM_EINVAL, "loom_graph_set_name: layer %d is already named \"%s\"", i, name);
    snprintf(g->nodes[x].name, sizeof g->nodes[x].name, "%s", name);
    return LOOM_OK;
}

loom_node loom_graph_find(const loom_graph *g, const char *name) {
    if (!g || !name || !*name) return -1;
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->nodes[i].name, name)) return i;
    char *end;
    long v = strtol(name, &end, 10);
    return *end == 0 && v >= 0 && v < g->n ? (loom_node)v : -1;
}

loom_graph *loom_graph_new_head(const loom_graph *g, int classes, uint64_t seed) {
    if (!g || !g->finished) {
        loom_fail(LOOM_EINVAL, "loom_graph_new_head: the graph is not finished");
        return NULL;
    }
    if (classes < 1) {
        loom_fail(LOOM_EINVAL, "loom_graph_new_head: %d classes", classes);
        return NULL;
    }
    int d = -1;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == LOOM_OP_DENSE) d = i;
    if (d < 0) {
        loom_fail(LOOM_EUNSUPPORTED, "%s has no dense layer to replace by a new head", g->name);
        return NULL;
    }
    for (int i = d + 1; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        if ((l->op != LOOM_OP_SOFTMAX && l->op != LOOM_OP_LOG_SOFTMAX) || l->in[0] != i - 1) {
            loom_fail(LOOM_EUNSUPPORTED, "%s: after its last dense layer %s comes %s (%s): only a softmax may follow the "
                      "head that is replaced", g->name, g->nodes[d].name, l->name, op_names[l->op]);
            return NULL;
        }
    }
    loom_graph *h = loom_graph_new(g->name);
    if (!h) return NULL;
    h->default_init = g->default_init;
    for (int i = 0; i < d; i++) {
        loom_layer *l = add_layer(h, g->nodes[i].op, g->nodes[i].nin, g->nodes[i].in);
        if (!l) break;
        *l = g->nodes[i];
    }
    loom_node x = h->err[0] ? -1 : loom_dense(h, g->nodes[d].in[0], classes);
    if (x >= 0) snprintf(h->nodes[x].name, sizeof h->nodes[x].name, "%s", g->nodes[d].name);
    for (int i = d + 1; i < g->n && x >= 0; i++) {
        x = g->nodes[i].op == LOOM_OP_SOFTMAX ? loom_softmax(h, x) : loom_log_softmax(h, x);
        if (x >= 0) snprintf(h->nodes[x].name, sizeof h->nodes[x].name, "%s", g->nodes[i].name);
    }
    if (x < 0 || loom_graph_finish(h, seed)) {
        loom_fail(LOOM_EINVAL, "%s: a new head: %s", g->name, h->err);
        loom_graph_free(h);
        return NULL;
    }
    for (int i = 0; i < d; i++) {
        const loom_layer *a = &g->nodes[i], *b = &h->nodes[i];
        memcpy(h->params + b->param_off, g->params + a->param_off, a->param_count * sizeof(float));
        memcpy(h->buffers + b->buf_off, g->buffers + a->buf_off, a->buf_count * sizeof(float));
    }
    return h;
}

loom_graph *loom_graph_new_prefix(const loom_graph *g, loom_node x) {
    if (!g || !g->finished || x < 1 || x >= g->n) {
        loom_fail(LOOM_EINVAL, "loom_graph_new_prefix: %s", !g || !g->finished ? "the graph is not finished" : "no such layer");
        return NULL;
    }
    loom_graph *h = loom_graph_new(g->name);
    if (!h) return NULL;
    h->default_init = g->default_init;
    for (int i = 0; i <= x; i++) {
        loom_layer *l = add_layer(h, g->nodes[i].op, g->nodes[i].nin, g->nodes[i].in);
        if (!l) break;
        *l = g->nodes[i];
    }
    if (h->err[0] || loom_graph_finish(h, 0)) {
        loom_fail(LOOM_EINVAL, "%s up to %s: %s", g->name, g->nodes[x].name, h->err);
        loom_graph_free(h);
        return NULL;
    }
    for (int i = 0; i <= x; i++) {
        const loom_layer *a = &g->nodes[i], *b = &h->nodes[i];
        memcpy(h->params + b->param_off, g->params + a->param_off, a->param_count * sizeof(float));
        memcpy(h->buffers + b->buf_off, g->buffers + a->buf_off, a->buf_count * sizeof(float));
    }
    return h;
}

int loom_graph_set_pool_ceil(loom_graph *g, loom_node x) {
    if (!g || g->finished || x != g->n - 1 || x < 1)
        return loom_fail(LOOM_EINVAL, "loom_graph_set_pool_ceil: node %d is not the last layer of an unfinished graph", x);
    loom_layer *l = &g->nodes[x];
    if (l->op != LOOM_OP_MAXPOOL && l->op != LOOM_OP_AVGPOOL)
        return loom_fail(LOOM_EINVAL, "loom_graph_set_pool_ceil: layer %s is a %s layer", l->name, op_names[l->op]);
    loom_pool_shape ps = l->a.pool;
    ps.ceil = 1;
    if (loom_k_pool_out(&ps)) return loom_fail(LOOM_EINVAL, "loom_graph_set_pool_ceil: layer %s", l->name);
    l->a.pool = ps;
    set_shape(l, l->c, ps.oh, ps.ow);
    return LOOM_OK;
}
