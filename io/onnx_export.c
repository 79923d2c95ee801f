/* ONNX export (include/loom/onnx.h): a loom graph as an opset-13 ModelProto,
 * packed by protobuf-c (the same generated code the import uses). Each loom
 * layer becomes the ONNX node(s) that compute the same function in
 * inference, its output tensor named after the layer; weights are
 * initializers named "<layer>.weight", "<layer>.bias" (and batch norms'
 * ".running_mean", ".running_var"), as in loom's checkpoints.
 *
 * Ranks: loom keeps a sample as [C, H, W] or flat features; ONNX tensors are
 * [N, C, H, W] or [N, F]. Layers that make features in loom (global average
 * pooling, dense, flatten) give rank 2, and a dense layer or a softmax on an
 * image gets a Flatten first, which is what loom does implicitly. */
#include "loom/onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"
#include "loom/error.h"

#ifndef LOOM_HAVE_ONNX

int loom_onnx_export(const loom_graph *g, const char *path) {
    (void)g;
    return loom_fail(LOOM_EUNSUPPORTED, "%s: loom was built without ONNX support (cmake -DLOOM_ONNX=ON)", path);
}

#else

#include "onnx.pb-c.h"

enum { OPSET = 13, DT_FLOAT = 1, DT_INT64 = 7 };

typedef struct {
    void **blocks;                  /* everything allocated, freed at the end */
    size_t nblocks, capblocks;
    Onnx__NodeProto **node;
    size_t nnode, capnode;
    Onnx__TensorProto **init;
    size_t ninit, capinit;
    const loom_graph *g;
    int *rank;                      /* per layer: 2 or 4 */
    char **tensor;                  /* per layer: the name of its output tensor */
    int oom;
} exporter;

static void *ar(exporter *x, size_t size) {
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        x->oom = 1;
        return NULL;
    }
    if (x->nblocks == x->capblocks) {
        size_t cap = x->capblocks ? 2 * x->capblocks : 256;
        void **b = realloc(x->blocks, cap * sizeof *b);
        if (!b) {
            free(p);
            x->oom = 1;
            return NULL;
        }
        x->blocks = b, x->capblocks = cap;
    }
    x->blocks[x->nblocks++] = p;
    return p;
}

static char *ar_str(exporter *x, const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *s = ar(x, n);
    if (s) snprintf(s, n, fmt, a, b ? b : "");
    return s;
}

static int push(exporter *x, void ***arr, size_t *n, size_t *cap, void *item) {
    if (!item) return x->oom = 1, -1;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        void **a = realloc(*arr, c * sizeof *a);
        if (!a) return x->oom = 1, -1;
        *arr = a, *cap = c;
    }
    (*arr)[(*n)++] = item;
    return 0;
}

/* ---- attributes, tensors, nodes ---------------------------------------------------- */

static Onnx__AttributeProto *attr_int(exporter *x, const char *name, int64_t v) {
    Onnx__AttributeProto *a = ar(x, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_float(exporter *x, const char *name, float v) {
    Onnx__AttributeProto *a = ar(x, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1, a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_ints(exporter *x, const char *name, int n, const int64_t *v) {
    Onnx__AttributeProto *a = ar(x, sizeof *a);
    int64_t *c = ar(x, (size_t)n * sizeof *c);
    if (!a || !c) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    memcpy(c, v, (size_t)n * sizeof *c);
    a->n_ints = (size_t)n, a->ints = c;
    return a;
}

/* An initializer of float32 values (copied), shape dims[0..nd). Its name. */
static char *initializer(exporter *x, char *name, int nd, const int64_t *dims, const float *v) {
    Onnx__TensorProto *t = ar(x, sizeof *t);
    int64_t *d = ar(x, (size_t)(nd ? nd : 1) * sizeof *d);
    size_t n = 1;
    for (int k = 0; k < nd; k++) n *= (size_t)dims[k];
    uint8_t *raw = ar(x, n * sizeof(float));
    if (!t || !d || !raw || !name) return NULL;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)nd * sizeof *d);
    memcpy(raw, v, n * sizeof(float)); /* little-endian, as ONNX's raw_data */
    t->name = name;
    t->n_dims = (size_t)nd, t->dims = d;
    t->has_data_type = 1, t->data_type = DT_FLOAT;
    t->has_raw_data = 1, t->raw_data.len = n * sizeof(float), t->raw_data.data = raw;
    if (push(x, (void ***)&x->init, &x->ninit, &x->capinit, t)) return NULL;
    return name;
}

/* A 1-d initializer of int64 values (a shape, pads). Its name. */
static char *initializer_i64(exporter *x, char *name, int n, const int64_t *v) {
    Onnx__TensorProto *t = ar(x, sizeof *t);
    int64_t *d = ar(x, sizeof *d), *c = ar(x, (size_t)n * sizeof *c);
    if (!t || !d || !c || !name) return NULL;
    onnx__tensor_proto__init(t);
    d[0] = n;
    memcpy(c, v, (size_t)n * sizeof *c);
    t->name = name;
    t->n_dims = 1, t->dims = d;
    t->has_data_type = 1, t->data_type = DT_INT64;
    t->n_int64_data = (size_t)n, t->int64_data = c;
    if (push(x, (void ***)&x->init, &x->ninit, &x->capinit, t)) return NULL;
    return name;
}

/* A node op(inputs) -> output with attributes (NULL-terminated). The output's name. */
static char *node(exporter *x, const char *op, char *name, char *output, int nin, char *const *in,
                  Onnx__AttributeProto *const *attrs) {
    Onnx__NodeProto *n = ar(x, sizeof *n);
    char **ins = ar(x, (size_t)(nin ? nin : 1) * sizeof *ins), **outs = ar(x, sizeof *outs);
    int na = 0;
    while (attrs && attrs[na]) na++;
    Onnx__AttributeProto **as = ar(x, (size_t)(na ? na : 1) * sizeof *as);
    if (!n || !ins || !outs || !as || !name || !output) return NULL;
    for (int k = 0; k < nin; k++) {
        if (!in[k]) return NULL;
        ins[k] = in[k];
    }
    for (int k = 0; k < na; k++) {
        if (!attrs[k]) return NULL;
        as[k] = attrs[k];
    }
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = name;
    n->n_input = (size_t)nin, n->input = ins;
    outs[0] = output;
    n->n_output = 1, n->output = outs;
    n->n_attribute = (size_t)na, n->attribute = as;
    if (push(x, (void ***)&x->node, &x->nnode, &x->capnode, n)) return NULL;
    return output;
}

/* A Flatten of tensor t (rank 4 -> 2) named after layer name. */
static char *flatten(exporter *x, const char *lname, char *t) {
    char *in[1] = {t};
    Onnx__AttributeProto *at[2] = {attr_int(x, "axis", 1), NULL};
    return node(x, "Flatten", ar_str(x, "%s/flatten", lname, NULL), ar_str(x, "%s/flat", lname, NULL), 1, in, at);
}

static char *node(exporter *x, const char *op, char *name, char *output, int nin, char *const *in,
                  Onnx__AttributeProto *const *attrs);

/* Tensor t of layer l reshaped to rank ([N, c, h, w] cut to rank), its name; tag names the node. */
static char *reshape_to(exporter *x, const char *lname, const char *tag, char *t, const loom_layer *l, int rank) {
    int64_t shape[4] = {0, rank == 2 ? (int64_t)l->size : l->c, rank == 3 ? (int64_t)l->h * l->w : l->h, l->w};
    char *in[2] = {t, initializer_i64(x, ar_str(x, "%s.%s_shape", lname, tag), rank, shape)};
    return node(x, "Reshape", ar_str(x, "%s/%s", lname, tag), ar_str(x, "%s/%s_out", lname, tag), 2, in, NULL);
}

/* Input k of layer l as a rank-4 image (a rank-2 or -3 tensor reshaped). */
static char *as_image(exporter *x, const loom_layer *l, int k) {
    int j = l->in[k];
    if (x->rank[j] == 4) return x->tensor[j];
    char tag[16];
    snprintf(tag, sizeof tag, "as4_%d", k);
    return reshape_to(x, l->name, tag, x->tensor[j], loom_graph_layer(x->g, j), 4);
}

/* The value info of a graph input or output: float32 [N, dims...]. */
static Onnx__ValueInfoProto *value_info(exporter *x, char *name, int rank, const loom_layer *l) {
    Onnx__ValueInfoProto *v = ar(x, sizeof *v);
    Onnx__TypeProto *tp = ar(x, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ar(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = ar(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ar(x, 4 * sizeof *dims);
    if (!v || !tp || !tt || !sh || !dims) return NULL;
    int64_t d[4] = {0, rank == 2 ? (int64_t)l->size : l->c, rank == 3 ? (int64_t)l->h * l->w : l->h, l->w};
    for (int k = 0; k < rank; k++) {
        Onnx__TensorShapeProto__Dimension *dm = ar(x, sizeof *dm);
        if (!dm) return NULL;
        onnx__tensor_shape_proto__dimension__init(dm);
        if (k == 0) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = "N";
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = d[k];
        }
        dims[k] = dm;
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)rank, sh->dim = dims;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1, tt->elem_type = DT_FLOAT, tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    onnx__value_info_proto__init(v);
    v->name = name, v->type = tp;
    return v;
}

/* ---- the layers ------------------------------------------------------------------------- */

static int layer(exporter *x, int i) {
    const loom_graph *g = x->g;
    const loom_layer *l = loom_graph_layer(g, i);
    const float *P = loom_graph_params((loom_graph *)g), *Bf = loom_graph_buffers((loom_graph *)g);
    const float *W = P + l->param_off;
    char *out = ar_str(x, "%s", l->name, NULL), *nm = out;
    char *in0 = l->nin ? x->tensor[l->in[0]] : NULL;
    int r0 = l->nin ? x->rank[l->in[0]] : 4, rank = r0;
    char *res = NULL;
    switch (l->op) {
    case LOOM_OP_CONV2D: {
        const loom_conv_shape *s = &l->a.conv;
        int64_t wd[4] = {s->oc, s->c / s->groups, s->kh, s->kw}, bd[1] = {s->oc};
        char *in[3] = {as_image(x, l, 0), initializer(x, ar_str(x, "%s.weight", l->name, NULL), 4, wd, W), NULL};
        if (l->bias) in[2] = initializer(x, ar_str(x, "%s.bias", l->name, NULL), 1, bd, W + l->weight_count);
        int64_t k[2] = {s->kh, s->kw}, st[2] = {s->sh, s->sw}, dl[2] = {s->dh, s->dw}, pd[4] = {s->ph, s->pw, s->ph, s->pw};
        Onnx__AttributeProto *at[] = {attr_ints(x, "kernel_shape", 2, k), attr_ints(x, "strides", 2, st),
                                      attr_ints(x, "dilations", 2, dl), attr_ints(x, "pads", 4, pd),
                                      attr_int(x, "group", s->groups), NULL};
        res = node(x, "Conv", nm, out, l->bias ? 3 : 2, in, at);
        rank = 4;
        break;
    }
    case LOOM_OP_DENSE: {
        char *a = r0 != 2 ? flatten(x, l->name, in0) : in0;
        int64_t wd[2] = {l->a.dense.out, l->a.dense.in}, bd[1] = {l->a.dense.out};
        char *in[3] = {a, initializer(x, ar_str(x, "%s.weight", l->name, NULL), 2, wd, W),
                       initializer(x, ar_str(x, "%s.bias", l->name, NULL), 1, bd, W + l->weight_count)};
        Onnx__AttributeProto *at[] = {attr_int(x, "transB", 1), NULL};
        res = node(x, "Gemm", nm, out, 3, in, at);
        rank = 2;
        break;
    }
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL: {
        const loom_pool_shape *s = &l->a.pool;
        int64_t k[2] = {s->kh, s->kw}, st[2] = {s->sh, s->sw}, pd[4] = {s->ph, s->pw, s->ph, s->pw};
        int avg = l->op == LOOM_OP_AVGPOOL;
        Onnx__AttributeProto *at[] = {attr_ints(x, "kernel_shape", 2, k), attr_ints(x, "strides", 2, st),
                                      attr_ints(x, "pads", 4, pd),
                                      attr_int(x, "ceil_mode", s->ceil),
                                      avg ? attr_int(x, "count_include_pad", l->count_include_pad) : NULL, NULL};
        char *a = as_image(x, l, 0);
        res = node(x, avg ? "AveragePool" : "MaxPool", nm, out, 1, &a, at);
        rank = 4;
        break;
    }
    case LOOM_OP_GAVGPOOL: {
        char *a = as_image(x, l, 0);
        char *p = node(x, "GlobalAveragePool", ar_str(x, "%s/pool", l->name, NULL), ar_str(x, "%s/pooled", l->name, NULL),
                       1, &a, NULL);
        Onnx__AttributeProto *at[] = {attr_int(x, "axis", 1), NULL};
        res = p ? node(x, "Flatten", nm, out, 1, &p, at) : NULL; /* loom's pooled channels are features */
        rank = 2;
        break;
    }
    case LOOM_OP_FLATTEN: {
        Onnx__AttributeProto *at[] = {attr_int(x, "axis", 1), NULL};
        res = node(x, r0 != 2 ? "Flatten" : "Identity", nm, out, 1, &in0, r0 != 2 ? at : NULL);
        rank = 2;
        break;
    }
    case LOOM_OP_RELU: res = node(x, "Relu", nm, out, 1, &in0, NULL); break;
    case LOOM_OP_SIGMOID: res = node(x, "Sigmoid", nm, out, 1, &in0, NULL); break;
    case LOOM_OP_TANH: res = node(x, "Tanh", nm, out, 1, &in0, NULL); break;
    case LOOM_OP_LEAKY_RELU: {
        Onnx__AttributeProto *at[] = {attr_float(x, "alpha", l->a.alpha), NULL};
        res = node(x, "LeakyRelu", nm, out, 1, &in0, at);
        break;
    }
    case LOOM_OP_SOFTMAX: case LOOM_OP_LOG_SOFTMAX: {
        char *a = r0 != 2 ? flatten(x, l->name, in0) : in0; /* over the whole sample, as loom */
        Onnx__AttributeProto *at[] = {attr_int(x, "axis", -1), NULL};
        res = node(x, l->op == LOOM_OP_SOFTMAX ? "Softmax" : "LogSoftmax", nm, out, 1, &a, at);
        rank = 2;
        break;
    }
    case LOOM_OP_DROPOUT: {
        int64_t none[1] = {0};
        float p = l->a.p;
        char *in[2] = {in0, initializer(x, ar_str(x, "%s.ratio", l->name, NULL), 0, none, &p)};
        res = node(x, "Dropout", nm, out, 2, in, NULL);
        break;
    }
    case LOOM_OP_BATCHNORM: {
        int64_t d[1] = {l->c};
        char *in[5] = {in0, initializer(x, ar_str(x, "%s.weight", l->name, NULL), 1, d, W),
                       initializer(x, ar_str(x, "%s.bias", l->name, NULL), 1, d, W + l->weight_count),
                       initializer(x, ar_str(x, "%s.running_mean", l->name, NULL), 1, d, Bf + l->buf_off),
                       initializer(x, ar_str(x, "%s.running_var", l->name, NULL), 1, d, Bf + l->buf_off + l->c)};
        Onnx__AttributeProto *at[] = {attr_float(x, "epsilon", l->a.bn.eps),
                                      attr_float(x, "momentum", 1.0f - l->a.bn.momentum), NULL};
        res = node(x, "BatchNormalization", nm, out, 5, in, at);
        break;
    }
    case LOOM_OP_ADD: {
        char *in[2] = {in0, x->tensor[l->in[1]]};
        if (r0 != x->rank[l->in[1]]) in[0] = as_image(x, l, 0), in[1] = as_image(x, l, 1), rank = 4;
        res = node(x, "Add", nm, out, 2, in, NULL);
        break;
    }
    case LOOM_OP_CONCAT: {
        char *in[LOOM_MAX_INPUTS];
        for (int k = 0; k < l->nin; k++) in[k] = x->tensor[l->in[k]];
        Onnx__AttributeProto *at[] = {attr_int(x, "axis", 1), NULL};
        res = node(x, "Concat", nm, out, l->nin, in, at);
        break;
    }
    case LOOM_OP_CLIP: {
        int64_t none[1] = {0};
        char *in[3] = {in0, initializer(x, ar_str(x, "%s.min", l->name, NULL), 0, none, &l->a.clip.lo),
                       initializer(x, ar_str(x, "%s.max", l->name, NULL), 0, none, &l->a.clip.hi)};
        res = node(x, "Clip", nm, out, 3, in, NULL);
        break;
    }
    case LOOM_OP_SCALE: { /* x * weight + bias, the constants shaped as one sample (broadcast over N) */
        int64_t d[3] = {l->c, l->h, l->w}, f[1] = {(int64_t)l->size}, d3[2] = {l->c, (int64_t)l->h * l->w};
        int nd = r0 - 1;
        const int64_t *dd = nd == 3 ? d : nd == 2 ? d3 : f;
        char *min[2] = {in0, initializer(x, ar_str(x, "%s.weight", l->name, NULL), nd, dd, W)};
        char *m = node(x, "Mul", ar_str(x, "%s/mul", l->name, NULL), ar_str(x, "%s/scaled", l->name, NULL), 2, min, NULL);
        char *ain[2] = {m, initializer(x, ar_str(x, "%s.bias", l->name, NULL), nd, dd, W + l->weight_count)};
        res = m ? node(x, "Add", nm, out, 2, ain, NULL) : NULL;
        break;
    }
    case LOOM_OP_ARITH: { /* operands of one rank, so that ONNX broadcasts them as loom does */
        static const char *const ops[] = {"Add", "Sub", "Mul", "Div"};
        int r1 = x->rank[l->in[1]];
        char *in[2] = {in0, x->tensor[l->in[1]]};
        if (r0 != r1) in[0] = as_image(x, l, 0), in[1] = as_image(x, l, 1), rank = 4;
        res = node(x, ops[l->a.arith], nm, out, 2, in, NULL);
        break;
    }
    case LOOM_OP_RESHAPE:
        res = node(x, "Reshape", nm, out, 2,
                   (char *[]){in0, initializer_i64(x, ar_str(x, "%s.shape", l->name, NULL), l->a.rank,
                                                   (int64_t[]){0, l->c, l->h, l->w})},
                   NULL);
        rank = l->a.rank;
        break;
    case LOOM_OP_PAD: {
        const int64_t pads[8] = {0, 0, l->a.pad.top, l->a.pad.left, 0, 0, l->a.pad.bottom, l->a.pad.right};
        int64_t none[1] = {0};
        char *in[3] = {as_image(x, l, 0), initializer_i64(x, ar_str(x, "%s.pads", l->name, NULL), 8, pads),
                       initializer(x, ar_str(x, "%s.value", l->name, NULL), 0, none, &l->a.pad.value)};
        res = node(x, "Pad", nm, out, 3, in, NULL);
        rank = 4;
        break;
    }
    default:
        return loom_fail(LOOM_EUNSUPPORTED, "layer %s (%s): no ONNX export for it", l->name, loom_op_name(l->op));
    }
    if (!res) return x->oom ? loom_fail(LOOM_ENOMEM, "ONNX export: out of memory") : LOOM_ERR;
    x->tensor[i] = res;
    x->rank[i] = rank;
    return LOOM_OK;
}

typedef struct {
    uint8_t *buf;
    size_t len;
} packed;

static int write_packed(FILE *f, void *ctx) {
    const packed *p = ctx;
    fwrite(p->buf, 1, p->len, f);
    return LOOM_OK;
}

int loom_onnx_export(const loom_graph *g, const char *path) {
    if (!g) return loom_fail(LOOM_EINVAL, "loom_onnx_export: no graph");
    int n = loom_graph_count(g), rc = LOOM_ERR;
    exporter x;
    memset(&x, 0, sizeof x);
    x.g = g;
    x.rank = calloc((size_t)n, sizeof *x.rank);
    x.tensor = calloc((size_t)n, sizeof *x.tensor);
    uint8_t *buf = NULL;
    if (!x.rank || !x.tensor) {
        loom_fail(LOOM_ENOMEM, "ONNX export: out of memory");
        goto out;
    }
    const loom_layer *in = loom_graph_layer(g, 0);
    /* a features input (loom's 1x1 images of F channels) is [N, F] */
    x.rank[0] = in->h == 1 && in->w == 1 ? 2 : 4;
    x.tensor[0] = ar_str(&x, "%s", in->name, NULL);
    for (int i = 1; i < n; i++)
        if (layer(&x, i)) {
            char why[600];
            snprintf(why, sizeof why, "%s", loom_error());
            loom_fail(loom_error_kind(), "%s: %s", path, why);
            goto out;
        }
    int o = loom_graph_output(g);
    Onnx__GraphProto *gp = ar(&x, sizeof *gp);
    Onnx__ValueInfoProto **gin = ar(&x, sizeof *gin), **gout = ar(&x, sizeof *gout);
    Onnx__ModelProto *m = ar(&x, sizeof *m);
    Onnx__OperatorSetIdProto *os = ar(&x, sizeof *os), **osv = ar(&x, sizeof *osv);
    if (!gp || !gin || !gout || !m || !os || !osv || !(gin[0] = value_info(&x, x.tensor[0], x.rank[0], in)) ||
        !(gout[0] = value_info(&x, x.tensor[o], x.rank[o], loom_graph_layer(g, o)))) {
        loom_fail(LOOM_ENOMEM, "ONNX export: out of memory");
        goto out;
    }
    onnx__graph_proto__init(gp);
    gp->name = ar_str(&x, "%s", loom_graph_name(g), NULL);
    gp->n_node = x.nnode, gp->node = x.node;
    gp->n_initializer = x.ninit, gp->initializer = x.init;
    gp->n_input = 1, gp->input = gin;
    gp->n_output = 1, gp->output = gout;
    onnx__operator_set_id_proto__init(os);
    os->domain = "", os->has_version = 1, os->version = OPSET;
    osv[0] = os;
    onnx__model_proto__init(m);
    m->has_ir_version = 1, m->ir_version = 8;
    m->producer_name = "loom";
    m->n_opset_import = 1, m->opset_import = osv;
    m->graph = gp;
    packed p = {NULL, onnx__model_proto__get_packed_size(m)};
    if (p.len > (size_t)1 << 31) {
        loom_fail(LOOM_EUNSUPPORTED, "%s: %zu bytes: over protobuf's 2 GB", path, p.len);
        goto out;
    }
    if (!(buf = p.buf = malloc(p.len ? p.len : 1))) {
        loom_fail(LOOM_ENOMEM, "ONNX export: out of memory for %zu bytes", p.len);
        goto out;
    }
    onnx__model_proto__pack(m, p.buf);
    rc = loom_atomic_write(path, write_packed, &p);
out:
    for (size_t k = 0; k < x.nblocks; k++) free(x.blocks[k]);
    free(x.blocks);
    free(x.node);
    free(x.init);
    free(x.rank);
    free(x.tensor);
    free(buf);
    return rc;
}

#endif
