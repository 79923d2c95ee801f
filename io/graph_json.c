/* A graph's architecture <-> JSON (see graph_json.h). Decoding rebuilds the
 * graph through the same public constructors a model written in C calls, so
 * a checkpoint cannot describe a layer loom could not have built; each layer's
 * name and output shape are stored too and must come out the same. */
#include "graph_json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jfield.h"
#include "loom/error.h"

/* Bounds on what a file may ask for. They keep every shape computation inside
 * int (spans like h + 2*pad - dilation*(kernel-1) included) and the rebuild
 * fast (adding a layer is linear in the layers before it). */
#define MAX_LAYERS (1 << 14)
#define MAX_WINDOW (1 << 15)   /* kernel, stride, padding, dilation */
#define MAX_WIDTH (1 << 24)    /* channels, units, groups */
#define MAX_SPATIAL (1 << 24)  /* height, width of any layer */

/* ---- encoding ---------------------------------------------------------------- */

/* json_object_set_new consumes v even on failure, and fails on a NULL v. */
static const char *const arith_kinds[] = {"add", "sub", "mul", "div"};

static int put(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v) ? 1 : 0; }
static int put_i(json_t *o, const char *k, long long v) { return put(o, k, json_integer(v)); }

static int put_attrs(json_t *o, const loom_layer *l) {
    int bad = 0;
    switch (l->op) {
    case LOOM_OP_DENSE: bad |= put_i(o, "units", l->a.dense.out); break;
    case LOOM_OP_CONV2D: {
        const loom_conv_shape *s = &l->a.conv;
        bad |= put_i(o, "oc", s->oc) | put_i(o, "kh", s->kh) | put_i(o, "kw", s->kw) |
               put_i(o, "sh", s->sh) | put_i(o, "sw", s->sw) | put_i(o, "ph", s->ph) |
               put_i(o, "pw", s->pw) | put_i(o, "dh", s->dh) | put_i(o, "dw", s->dw) |
               put_i(o, "groups", s->groups) | put(o, "bias", json_boolean(l->bias));
        break;
    }
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL: {
        const loom_pool_shape *s = &l->a.pool;
        bad |= put_i(o, "kh", s->kh) | put_i(o, "kw", s->kw) | put_i(o, "sh", s->sh) |
               put_i(o, "sw", s->sw) | put_i(o, "ph", s->ph) | put_i(o, "pw", s->pw);
        if (l->op == LOOM_OP_AVGPOOL) bad |= put(o, "count_include_pad", json_boolean(l->count_include_pad));
        if (s->ceil) bad |= put(o, "ceil", json_true()); /* only when set: older files stay as they were */
        break;
    }
    case LOOM_OP_LEAKY_RELU: bad |= put(o, "alpha", jf_number(l->a.alpha)); break;
    case LOOM_OP_DROPOUT: bad |= put(o, "p", jf_number(l->a.p)); break;
    case LOOM_OP_CLIP: bad |= put(o, "lo", jf_number(l->a.clip.lo)) | put(o, "hi", jf_number(l->a.clip.hi)); break;
    case LOOM_OP_BATCHNORM:
        bad |= put(o, "eps", jf_number(l->a.bn.eps)) | put(o, "momentum", jf_number(l->a.bn.momentum));
        break;
    case LOOM_OP_ARITH: bad |= put(o, "kind", json_string(arith_kinds[l->a.arith])); break;
    case LOOM_OP_RESHAPE: bad |= put_i(o, "rank", l->a.rank); break;
    case LOOM_OP_PAD:
        bad |= put_i(o, "top", l->a.pad.top) | put_i(o, "left", l->a.pad.left) | put_i(o, "bottom", l->a.pad.bottom) |
               put_i(o, "right", l->a.pad.right) | put(o, "value", jf_number(l->a.pad.value));
        break;
    default: break;
    }
    return bad;
}

static json_t *layer_json(const loom_layer *l) {
    json_t *o = json_object(), *in = json_array();
    int bad = put(o, "op", json_string(loom_op_name(l->op))) | put(o, "name", json_string(l->name));
    for (int k = 0; k < l->nin; k++) bad |= json_array_append_new(in, json_integer(l->in[k])) ? 1 : 0;
    bad |= put(o, "inputs", in);
    bad |= put(o, "shape", json_pack("[iii]", l->c, l->h, l->w));
    bad |= put_attrs(o, l);
    bad |= put(o, "frozen", json_boolean(l->frozen));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *gj_encode(const loom_graph *g, const char *path) {
    json_t *root = json_object(), *layers = json_array();
    json_t *name = json_string(loom_graph_name(g));
    if (!name) {
        json_decref(root);
        json_decref(layers);
        loom_fail(LOOM_EINVAL, "%s: the graph's name is not valid UTF-8 text", path);
        return NULL;
    }
    int bad = put(root, "name", name);
    for (int i = 0; i < loom_graph_count(g); i++)
        bad |= json_array_append_new(layers, layer_json(loom_graph_layer(g, i))) ? 1 : 0;
    bad |= put(root, "layers", layers);
    if (bad) {
        json_decref(root);
        loom_fail(LOOM_ENOMEM, "%s: out of memory describing graph %s", path, loom_graph_name(g));
        return NULL;
    }
    return root;
}

/* ---- decoding ------------------------------------------------------------------ */

typedef struct {
    long long v[10];  /* the integer fields, in the order of their key list */
    int flag;      /* conv bias, avgpool count_include_pad */
    int ceil;      /* pools: ceil_mode (the key is optional) */
    float f[2];    /* alpha | p | eps, momentum */
} attrs;

static void read_ints(jf_obj *r, const char *const *keys, int n, const long long *lo,
                      const long long *hi, attrs *a) {
    for (int i = 0; i < n; i++) jf_int(r, keys[i], lo[i], hi[i], &a->v[i]);
}

static const char *const conv_keys[] = {"oc", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "groups"};
static const long long conv_lo[] = {1, 1, 1, 1, 1, 0, 0, 1, 1, 1};
static const long long conv_hi[] = {MAX_WIDTH, MAX_WINDOW, MAX_WINDOW, MAX_WINDOW, MAX_WINDOW,
                                    MAX_WINDOW, MAX_WINDOW, MAX_WINDOW, MAX_WINDOW, MAX_WIDTH};
static const char *const pool_keys[] = {"kh", "kw", "sh", "sw", "ph", "pw"};
static const long long pool_lo[] = {1, 1, 1, 1, 0, 0};
static const long long pool_hi[] = {MAX_WINDOW, MAX_WINDOW, MAX_WINDOW, MAX_WINDOW, MAX_WINDOW, MAX_WINDOW};

static const char *const pad_keys[] = {"top", "left", "bottom", "right"};
static const long long pad_lo[] = {0, 0, 0, 0};
static const long long pad_hi[] = {65536, 65536, 65536, 65536};

/* The op's own fields, read into a; errors go to r. */
static void read_attrs(jf_obj *r, loom_op op, attrs *a) {
    switch (op) {
    case LOOM_OP_ARITH: {
        char kind[16] = "";
        a->v[0] = -1;
        if (!jf_str(r, "kind", kind, sizeof kind))
            for (int k = 0; k < 4; k++)
                if (!strcmp(kind, arith_kinds[k])) a->v[0] = k;
        if (!r->err && a->v[0] < 0) jf_fail(r, "field \"kind\" = \"%s\" is not add, sub, mul or div", kind);
        break;
    }
    case LOOM_OP_RESHAPE: jf_int(r, "rank", 2, 4, &a->v[0]); break;
    case LOOM_OP_PAD:
        read_ints(r, pad_keys, 4, pad_lo, pad_hi, a);
        if (!jf_float(r, "value", &a->f[0]) && !isfinite(a->f[0])) jf_fail(r, "field \"value\" must be finite");
        break;
    case LOOM_OP_DENSE: jf_int(r, "units", 1, MAX_WIDTH, &a->v[0]); break;
    case LOOM_OP_CONV2D:
        read_ints(r, conv_keys, 10, conv_lo, conv_hi, a);
        jf_bool(r, "bias", &a->flag);
        break;
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL:
        read_ints(r, pool_keys, 6, pool_lo, pool_hi, a);
        if (op == LOOM_OP_AVGPOOL) jf_bool(r, "count_include_pad", &a->flag);
        if (json_object_get(r->obj, "ceil")) jf_bool(r, "ceil", &a->ceil);
        break;
    case LOOM_OP_LEAKY_RELU:
        if (!jf_float(r, "alpha", &a->f[0]) && !isfinite(a->f[0]))
            jf_fail(r, "field \"alpha\" must be finite");
        break;
    case LOOM_OP_DROPOUT: jf_float(r, "p", &a->f[0]); break;
    case LOOM_OP_CLIP:
        jf_float(r, "lo", &a->f[0]);
        jf_float(r, "hi", &a->f[1]);
        break;
    case LOOM_OP_BATCHNORM:
        jf_float(r, "eps", &a->f[0]);
        jf_float(r, "momentum", &a->f[1]);
        if (!r->err && !(a->f[0] > 0 && isfinite(a->f[0])))
            jf_fail(r, "field \"eps\" = %g must be positive", (double)a->f[0]);
        if (!r->err && !(a->f[1] >= 0 && a->f[1] <= 1))
            jf_fail(r, "field \"momentum\" = %g must be in [0, 1]", (double)a->f[1]);
        break;
    default: break;
    }
}

static loom_node build(loom_graph *g, loom_op op, const loom_node *in, int nin, const long long *shape,
                       const attrs *a) {
    const long long *v = a->v;
    switch (op) {
    case LOOM_OP_INPUT: return loom_input(g, (int)shape[0], (int)shape[1], (int)shape[2]);
    case LOOM_OP_DENSE: return loom_dense(g, in[0], (int)v[0]);
    case LOOM_OP_CONV2D: {
        loom_conv_shape s = {.oc = (int)v[0], .kh = (int)v[1], .kw = (int)v[2], .sh = (int)v[3],
                             .sw = (int)v[4], .ph = (int)v[5], .pw = (int)v[6], .dh = (int)v[7],
                             .dw = (int)v[8], .groups = (int)v[9]};
        return loom_conv2d_ex(g, in[0], &s, a->flag);
    }
    case LOOM_OP_MAXPOOL:
        return loom_maxpool2d_ex(g, in[0], (int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5]);
    case LOOM_OP_AVGPOOL:
        return loom_avgpool2d_ex(g, in[0], (int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5],
                                 a->flag);
    case LOOM_OP_GAVGPOOL: return loom_global_avgpool(g, in[0]);
    case LOOM_OP_FLATTEN: return loom_flatten(g, in[0]);
    case LOOM_OP_RELU: return loom_relu(g, in[0]);
    case LOOM_OP_LEAKY_RELU: return loom_leaky_relu(g, in[0], a->f[0]);
    case LOOM_OP_SIGMOID: return loom_sigmoid(g, in[0]);
    case LOOM_OP_TANH: return loom_tanh(g, in[0]);
    case LOOM_OP_SOFTMAX: return loom_softmax(g, in[0]);
    case LOOM_OP_DROPOUT: return loom_dropout(g, in[0], a->f[0]);
    case LOOM_OP_BATCHNORM: return loom_batchnorm(g, in[0]);
    case LOOM_OP_ADD: return loom_add(g, in[0], in[1]);
    case LOOM_OP_CONCAT: return loom_concat(g, nin, in);
    case LOOM_OP_CLIP: return loom_clip(g, in[0], a->f[0], a->f[1]);
    case LOOM_OP_LOG_SOFTMAX: return loom_log_softmax(g, in[0]);
    case LOOM_OP_SCALE: return loom_scale(g, in[0]);
    case LOOM_OP_ARITH: return loom_arith(g, (loom_arith_kind)v[0], in[0], in[1]);
    case LOOM_OP_RESHAPE: return loom_reshape(g, in[0], (int)v[0], (int)shape[0], (int)shape[1], (int)shape[2]);
    case LOOM_OP_PAD: return loom_pad2d(g, in[0], (int)v[0], (int)v[1], (int)v[2], (int)v[3], a->f[0]);
    default: return -1;
    }
}

static int decode_layer(loom_graph *g, const json_t *v, int i, const char *path) {
    jf_obj r;
    char opname[32], name[64];
    if (jf_open(&r, v, path, "loom.graph layer %d", i)) return -1;
    jf_str(&r, "op", opname, sizeof opname);
    if (jf_str(&r, "name", name, sizeof name)) return -1;
    snprintf(r.where, sizeof r.where, "loom.graph layer %d (%s)", i, name);
    int op = -1;
    for (int k = 0; k < LOOM_OP_COUNT_ && op < 0; k++)
        if (!strcmp(opname, loom_op_name((loom_op)k))) op = k;
    if (op < 0) return jf_fail(&r, "unknown op \"%s\"", opname);
    if ((op == LOOM_OP_INPUT) != (i == 0))
        return jf_fail(&r, "%s", i == 0 ? "the first layer must be an input" : "only the first layer may be an input");

    const json_t *ins = jf_get(&r, "inputs", JSON_ARRAY);
    const json_t *shp = jf_get(&r, "shape", JSON_ARRAY);
    int frozen = 0;
    jf_bool(&r, "frozen", &frozen);
    attrs a = {0};
    read_attrs(&r, (loom_op)op, &a);
    if (jf_done(&r)) return -1;

    long long shape[3];
    if (json_array_size(shp) != 3) return jf_fail(&r, "field \"shape\" must be [c, h, w]");
    for (int k = 0; k < 3; k++) {
        const json_t *d = json_array_get(shp, (size_t)k);
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > INT_MAX)
            return jf_fail(&r, "field \"shape\" must be [c, h, w] of positive ints");
        shape[k] = json_integer_value(d);
    }
    size_t nin = json_array_size(ins);
    size_t lo = 1, hi = 1;
    if (op == LOOM_OP_INPUT) lo = hi = 0;
    if (op == LOOM_OP_ADD || op == LOOM_OP_ARITH) lo = hi = 2;
    if (op == LOOM_OP_CONCAT) hi = LOOM_MAX_INPUTS;
    if (nin < lo || nin > hi)
        return jf_fail(&r, "%zu inputs, %s takes %zu%s", nin, opname, hi == lo ? lo : hi,
                       hi == lo ? "" : " at most (and at least 1)");
    loom_node in[LOOM_MAX_INPUTS];
    long long cat = 0;
    for (size_t k = 0; k < nin; k++) {
        const json_t *x = json_array_get(ins, k);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= i)
            return jf_fail(&r, "input %zu must be the index of an earlier layer (0..%d)", k, i - 1);
        in[k] = (loom_node)json_integer_value(x);
        cat += loom_graph_layer(g, in[k])->c;
    }
    if (op == LOOM_OP_INPUT) {
        if (shape[0] > MAX_WIDTH || shape[1] > MAX_SPATIAL || shape[2] > MAX_SPATIAL ||
            shape[0] * shape[1] > INT_MAX / shape[2])
            return jf_fail(&r, "input shape [%lld,%lld,%lld] is too large", shape[0], shape[1], shape[2]);
    }
    if (op == LOOM_OP_CONCAT && cat > INT_MAX) return jf_fail(&r, "concatenation has too many channels");

    loom_node y = build(g, (loom_op)op, in, (int)nin, shape, &a);
    if (y != i)
        return jf_fail(&r, "cannot be rebuilt: %s", loom_graph_error(g)[0] ? loom_graph_error(g) : "invalid input");
    /* a ceil_mode pool (the key appears only when set) */
    if (a.ceil && loom_graph_set_pool_ceil(g, y)) return jf_fail(&r, "ceil: %s", loom_error());
    const loom_layer *l = loom_graph_layer(g, y);
    /* a name of its own (an imported model's): kept when it is a valid one */
    if (strcmp(l->name, name) && loom_graph_set_name(g, y, name))
        return jf_fail(&r, "its name: %s", loom_error());
    if (l->c != shape[0] || l->h != shape[1] || l->w != shape[2])
        return jf_fail(&r, "shape [%lld,%lld,%lld] in the file, but the layer rebuilds as [%d,%d,%d]",
                       shape[0], shape[1], shape[2], l->c, l->h, l->w);
    if (l->size > INT_MAX || l->h > MAX_SPATIAL || l->w > MAX_SPATIAL)
        return jf_fail(&r, "output [%d,%d,%d] is too large", l->c, l->h, l->w);
    loom_graph_set_frozen(g, y, frozen);
    if (op == LOOM_OP_BATCHNORM) loom_graph_set_batchnorm(g, y, a.f[0], a.f[1]);
    return 0;
}

loom_graph *gj_decode(const json_t *j, const char *path) {
    jf_obj r;
    char name[64];
    if (jf_open(&r, j, path, "loom.graph")) return NULL;
    jf_str(&r, "name", name, sizeof name);
    const json_t *layers = jf_get(&r, "layers", JSON_ARRAY);
    if (jf_done(&r)) return NULL;
    size_t n = json_array_size(layers);
    if (n < 1 || n > MAX_LAYERS) {
        jf_fail(&r, "%zu layers (1..%d allowed)", n, MAX_LAYERS);
        return NULL;
    }
    loom_graph *g = loom_graph_new(name);
    if (!g) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory for the graph", path);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (decode_layer(g, json_array_get(layers, i), (int)i, path)) {
            loom_graph_free(g);
            return NULL;
        }
    }
    return g;
}
