/* loom — the model graph: layers chained in C, shapes inferred as they are
 * added, all trainable parameters in one flat float array.
 *
 *   loom_graph *g = loom_graph_new("lenet5");
 *   loom_node x = loom_input(g, 1, 28, 28);
 *   x = loom_relu(g, loom_conv2d(g, x, 6, 5, 1, 2));
 *   ...
 *   if (loom_graph_finish(g, seed) != LOOM_OK) puts(loom_graph_error(g));
 *
 * A constructor given a bad shape records an error naming the layer and both
 * shapes and returns an invalid node; later constructors pass invalid nodes
 * through, so a model is checked once, at loom_graph_finish. */
#ifndef LOOM_GRAPH_H
#define LOOM_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loom/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int loom_node; /* index of a layer in its graph; < 0 is invalid */

typedef enum {
    LOOM_OP_INPUT, LOOM_OP_DENSE, LOOM_OP_CONV2D, LOOM_OP_MAXPOOL, LOOM_OP_AVGPOOL,
    LOOM_OP_GAVGPOOL, LOOM_OP_FLATTEN, LOOM_OP_RELU, LOOM_OP_LEAKY_RELU,
    LOOM_OP_SIGMOID, LOOM_OP_TANH, LOOM_OP_SOFTMAX, LOOM_OP_DROPOUT,
    LOOM_OP_BATCHNORM, LOOM_OP_ADD, LOOM_OP_CONCAT, LOOM_OP_CLIP, LOOM_OP_LOG_SOFTMAX,
    LOOM_OP_SCALE, LOOM_OP_ARITH, LOOM_OP_RESHAPE, LOOM_OP_PAD, LOOM_OP_COUNT_
} loom_op;

/* The element-wise operations of an arith layer. */
typedef enum { LOOM_ARITH_ADD, LOOM_ARITH_SUB, LOOM_ARITH_MUL, LOOM_ARITH_DIV } loom_arith_kind;

/* Initializers. fan_in/fan_out come from the layer (dense: in/out; conv:
 * c/groups*kh*kw and oc*kh*kw). DEFAULT is PyTorch's default for the layer:
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. */
typedef enum {
    LOOM_INIT_DEFAULT, LOOM_INIT_UNIFORM, LOOM_INIT_NORMAL, LOOM_INIT_LECUN_UNIFORM,
    LOOM_INIT_LECUN_NORMAL, LOOM_INIT_GLOROT_UNIFORM, LOOM_INIT_GLOROT_NORMAL,
    LOOM_INIT_HE_UNIFORM, LOOM_INIT_HE_NORMAL, LOOM_INIT_ZEROS, LOOM_INIT_ONES
} loom_init_kind;

typedef struct {
    loom_init_kind kind;
    float a, b; /* UNIFORM: [a, b); NORMAL: mean a, std b */
} loom_init;

#define LOOM_MAX_INPUTS 8

/* One layer. Fields are read-only for users; offsets index the graph's flat arrays. */
typedef struct {
    loom_op op;
    char name[64];
    int nin;
    loom_node in[LOOM_MAX_INPUTS];
    int c, h, w;              /* output shape of one sample (dense: c = features) */
    size_t size;              /* c*h*w */
    size_t param_off, param_count;  /* weights first, then bias (BN: gamma, beta) */
    size_t weight_count;            /* how many of param_count are the weight tensor */
    size_t buf_off, buf_count;      /* non-trainable buffers (BN: running mean, var) */
    int bias;                 /* dense/conv: has a bias */
    int frozen;               /* parameters excluded from updates */
    int count_include_pad;    /* average pool: padding counts in the divisor */
    loom_init winit, binit;   /* weight and bias initializers */
    union {
        loom_conv_shape conv;
        loom_pool_shape pool;
        struct { int in, out; } dense;
        float alpha;          /* leaky relu slope */
        float p;              /* dropout probability */
        struct { float lo, hi; } clip;
        struct { float eps, momentum; int hw; } bn;
        int arith;            /* loom_arith_kind */
        int rank;             /* reshape: 2 ([N, C]), 3 ([N, C, H]) or 4 ([N, C, H, W]) as ONNX sees it */
        struct { int top, left, bottom, right; float value; } pad;
    } a;
} loom_layer;

typedef struct loom_graph loom_graph;

/* A new empty graph; name is used in messages and summaries. NULL on OOM. */
loom_graph *loom_graph_new(const char *name);
void loom_graph_free(loom_graph *g);

/* ---- layer constructors (return the new node, or < 0 after an error) ---- */
loom_node loom_input(loom_graph *g, int c, int h, int w);
loom_node loom_dense(loom_graph *g, loom_node x, int units);
loom_node loom_conv2d(loom_graph *g, loom_node x, int filters, int k, int stride, int pad);
/* Full control: s->oc, kh, kw, sh, sw, ph, pw, dh, dw, groups (c,h,w,oh,ow
 * ignored; a stride, dilation or group count of 0 means 1). */
loom_node loom_conv2d_ex(loom_graph *g, loom_node x, const loom_conv_shape *s, int bias);
loom_node loom_maxpool2d(loom_graph *g, loom_node x, int k, int stride);
loom_node loom_maxpool2d_ex(loom_graph *g, loom_node x, int kh, int kw, int sh, int sw, int ph, int pw);
loom_node loom_avgpool2d(loom_graph *g, loom_node x, int k, int stride);
loom_node loom_avgpool2d_ex(loom_graph *g, loom_node x, int kh, int kw, int sh, int sw, int ph, int pw,
                            int count_include_pad);
loom_node loom_global_avgpool(loom_graph *g, loom_node x);
loom_node loom_flatten(loom_graph *g, loom_node x);
loom_node loom_relu(loom_graph *g, loom_node x);
loom_node loom_leaky_relu(loom_graph *g, loom_node x, float alpha);
loom_node loom_sigmoid(loom_graph *g, loom_node x);
loom_node loom_tanh(loom_graph *g, loom_node x);
loom_node loom_softmax(loom_graph *g, loom_node x);
loom_node loom_dropout(loom_graph *g, loom_node x, float p);
/* Batch norm over channels (4-d input) or features (dense output). */
loom_node loom_batchnorm(loom_graph *g, loom_node x);
loom_node loom_add(loom_graph *g, loom_node a, loom_node b);
/* min(max(x, lo), hi), finite bounds lo <= hi (ReLU6: 0, 6). */
loom_node loom_clip(loom_graph *g, loom_node x, float lo, float hi);
/* log(softmax(x)) over each sample's values. */
loom_node loom_log_softmax(loom_graph *g, loom_node x);
/* x * weight + bias, element by element of a sample (weight and bias have
 * the sample's shape; initialised to ones and zeros): constants such as an
 * input normalisation when frozen, a learnable affine otherwise. */
loom_node loom_scale(loom_graph *g, loom_node x);
loom_node loom_concat(loom_graph *g, int n, const loom_node *xs);
/* a + b, a - b, a * b or a / b element by element, with broadcasting: each of
 * a sample's dimensions (C, H, W) is the same in a and b or 1 in one of them,
 * which is repeated along it (a channel gate [C, 1, 1] times [C, H, W]). The
 * output has the larger of each. loom_add is the same-shape sum. */
loom_node loom_arith(loom_graph *g, loom_arith_kind kind, loom_node a, loom_node b);
loom_node loom_mul(loom_graph *g, loom_node a, loom_node b);
/* The same values in another shape of one sample (c*h*w unchanged); rank 2,
 * 3 or 4 is the tensor's rank with the batch, as exported (h, w 1 below it). */
loom_node loom_reshape(loom_graph *g, loom_node x, int rank, int c, int h, int w);
/* An image padded on its sides with a constant: top, left, bottom, right rows
 * and columns (0 and up) of value (finite). */
loom_node loom_pad2d(loom_graph *g, loom_node x, int top, int left, int bottom, int right, float value);

/* The setters below record a mistake (a node that does not exist, a setter
 * called too late) in loom_graph_error; loom_graph_finish, loom_exec_new and
 * loom_trainer_new refuse a graph that has one. */
/* Set a layer's initializers (call before loom_graph_finish). */
void loom_graph_set_init(loom_graph *g, loom_node x, loom_init weight, loom_init bias);
/* Initializer used for the weights of every dense/conv layer without its own. */
void loom_graph_set_default_init(loom_graph *g, loom_init weight);
/* Exclude (frozen != 0) or include a layer's parameters in updates (also on
 * a finished graph: a trainer made afterwards honours it). */
void loom_graph_set_frozen(loom_graph *g, loom_node x, int frozen);
/* Pooling layer x (the last layer added, graph not finished) with its
 * output size rounded up (ceil_mode): the last window may pass the edge
 * (an average then divides by the part of it inside the padded image, as
 * PyTorch does). LOOM_OK, or LOOM_ERR with loom_error set (the graph is
 * untouched). */
int loom_graph_set_pool_ceil(loom_graph *g, loom_node x);
/* A batch-norm layer's epsilon and running-statistics momentum (default 1e-5, 0.1). */
void loom_graph_set_batchnorm(loom_graph *g, loom_node x, float eps, float momentum);

/* Rename layer x (a graph being built or finished): 1 to 63 characters,
 * unique in the graph. LOOM_OK, or LOOM_ERR (loom_error says why; the
 * graph itself is not marked as broken). */
int loom_graph_set_name(loom_graph *g, loom_node x, const char *name);
/* The layer of that name, or of that index when name is a number; -1 if none. */
loom_node loom_graph_find(const loom_graph *g, const char *name);
/* Transfer learning: a finished copy of g whose last dense layer is replaced
 * by a new one of `classes` outputs (initialised from seed), keeping every
 * layer before it with its weights, names and frozen flags, and a softmax or
 * log-softmax after it. NULL on error (no dense layer; other layers after it). */
loom_graph *loom_graph_new_head(const loom_graph *g, int classes, uint64_t seed);
/* Feature extraction: a finished copy of layers 0 to x of g (x its output),
 * with their weights, buffers, names and frozen flags. NULL on error. */
loom_graph *loom_graph_new_prefix(const loom_graph *g, loom_node x);

/* Check the graph, lay out the flat arrays and initialise them from seed.
 * The last node added is the output. LOOM_OK or LOOM_ERR (see loom_graph_error). */
int loom_graph_finish(loom_graph *g, uint64_t seed);
/* Re-initialise all parameters from seed (buffers to mean 0, var 1). */
void loom_graph_init_params(loom_graph *g, uint64_t seed);

/* The first error met while building ("" if none). */
const char *loom_graph_error(const loom_graph *g);

/* ---- inspection ---- */
const char *loom_graph_name(const loom_graph *g);
int loom_graph_count(const loom_graph *g);
const loom_layer *loom_graph_layer(const loom_graph *g, loom_node i);
loom_node loom_graph_output(const loom_graph *g);
size_t loom_graph_param_count(const loom_graph *g);
size_t loom_graph_buffer_count(const loom_graph *g);
float *loom_graph_params(loom_graph *g);   /* flat trainable parameters */
float *loom_graph_buffers(loom_graph *g);  /* flat non-trainable buffers */
/* Forward FLOPs of one sample through layer i (multiply-add = 2). */
double loom_graph_layer_flops(const loom_graph *g, loom_node i);
/* Print a table like Keras' model.summary(): layer, output shape, params, FLOPs, totals. */
void loom_graph_summary(const loom_graph *g, FILE *f);
const char *loom_op_name(loom_op op);

#ifdef __cplusplus
}
#endif
#endif
