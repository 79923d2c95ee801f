/* ONNX import (include/loom/onnx.h): protobuf-c parses the ModelProto (code
 * generated from Debian's onnx.proto at build time), this file maps its
 * nodes onto loom layers one by one, in the file's order (ONNX requires a
 * topological order; a node reading a tensor no earlier node made is
 * refused, which is also how a cycle shows).
 *
 * Each tensor name maps to a loom node (an activation, with its ONNX rank:
 * 4 for [N, C, H, W], 3 for [N, C, H] (loom's C x H x 1), 2 for [N, F]) or
 * to a constant (an initializer, a Constant node's value, or one computed
 * here from other constants: the shape arithmetic of exporters). Weights are gathered while the graph is built and
 * copied in after loom_graph_finish has laid out the flat arrays. */
#include "loom/onnx.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "loom/error.h"

/* In every build: so that a build without ONNX says so for an ONNX file.
 * A ModelProto begins with field 1 (ir_version, a small varint: tag 0x08)
 * and then another field's tag. One byte is not enough: a safetensors file
 * begins with its header's length, 8 bytes little-endian, whose first byte
 * is 0x08 for one header size in 256 — a checkpoint that must not pass for
 * an ONNX model. So a safetensors form (that length, then '{') is ruled out
 * first, and the ONNX form is checked over its first three bytes. */
int loom_onnx_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[9];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n == sizeof b && b[8] == '{') return 0; /* safetensors: a JSON header after its length */
    /* a file named .onnx that is not a checkpoint is read as ONNX, to be told what is wrong with it */
    size_t len = strlen(path);
    if (len > 5 && !strcasecmp(path + len - 5, ".onnx")) return 1;
    if (n < 3 || b[0] != 0x08 || b[1] == 0 || b[1] > 0x7f) return 0;
    int field = b[2] >> 3, wire = b[2] & 7; /* the next field: producer_name, graph, opset_import, ... */
    return field >= 2 && field <= 20 && (wire == 0 || wire == 2);
}

#ifndef LOOM_HAVE_ONNX

int loom_onnx_available(void) { return 0; }
loom_graph *loom_onnx_import_with(const char *path, int nconst, const char *const *files) {
    (void)nconst, (void)files;
    return loom_onnx_import(path);
}
loom_graph *loom_onnx_import(const char *path) {
    loom_fail(LOOM_EUNSUPPORTED, "%s: loom was built without ONNX support (cmake -DLOOM_ONNX=ON; libonnx-dev, "
                                 "protobuf-c-compiler, libprotobuf-c-dev)", path);
    return NULL;
}
float *loom_onnx_read_tensor(const char *path, int64_t dims[8], int *rank, size_t *count) {
    (void)dims, (void)rank, (void)count;
    loom_fail(LOOM_EUNSUPPORTED, "%s: loom was built without ONNX support", path);
    return NULL;
}

#else

#include "onnx.pb-c.h"

int loom_onnx_available(void) { return 1; }

enum { OPSET_MIN = 6, OPSET_MAX = 17, MAX_RANK = 8 };
/* TensorProto.DataType */
enum { DT_FLOAT = 1, DT_INT32 = 6, DT_INT64 = 7, DT_DOUBLE = 11 };

typedef struct {
    const char *name;                /* borrowed from the model */
    int node;                        /* loom node, or -1 for a constant */
    int rank;                        /* activation: 2 or 4 */
    const Onnx__TensorProto *t;      /* constant */
    int pad[4];                      /* a Pad's top, left, bottom, right, left to the node that reads it */
    float fill;                      /* and its value */
} value;

/* Weights to copy once the graph is finished. */
typedef struct {
    int node;
    float *w, *b;                    /* conv/dense: weights [out, ...], bias (NULL: zeros); BN: gamma, beta */
    float *mean, *var;               /* BN */
} pending;

typedef struct {
    const char *path;
    char dir[4096];                  /* the model's folder, for external data */
    Onnx__ModelProto *m;
    int opset;
    loom_graph *g;
    value *v;
    int nv, capv;
    pending *p;
    int np, capp;
    const Onnx__NodeProto *node;     /* the node being mapped, for messages */
    int node_index;
    int any_value;                   /* tensors may hold NaN and infinities (test data, not weights) */
    Onnx__TensorProto **bound;       /* graph inputs given as constants (loom_onnx_import_with) */
    int nbound;
    int64_t batch;                   /* the input's batch size when the file fixes it (else 0) */
    Onnx__TensorProto **made;        /* constants computed here (shape arithmetic) */
    int nmade, capmade;
} importer;

/* ---- messages --------------------------------------------------------------- */

/* An error about the current node: "file: node 12 (conv1, Conv): reason". */
__attribute__((format(printf, 3, 4))) static int node_fail(importer *im, loom_error_kind_t kind, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = im->node;
    if (!n) return loom_fail(kind, "%s: %s", im->path, why);
    return loom_fail(kind, "%s: node %d (%s%s%s): %s", im->path, im->node_index,
                     n && n->name && *n->name ? n->name : "", n && n->name && *n->name ? ", " : "",
                     n && n->op_type ? n->op_type : "?", why);
}

#define UNSUPPORTED(...) node_fail(im, LOOM_EUNSUPPORTED, __VA_ARGS__)
#define BAD(...) node_fail(im, LOOM_EFORMAT, __VA_ARGS__)

/* ---- values ----------------------------------------------------------------- */

static value *find(importer *im, const char *name) {
    for (int k = im->nv - 1; k >= 0; k--)
        if (!strcmp(im->v[k].name, name)) return &im->v[k];
    return NULL;
}

static int define(importer *im, const char *name, int node, int rank, const Onnx__TensorProto *t) {
    if (!name || !*name) return LOOM_OK; /* an optional output left out */
    if (im->nv == im->capv) {
        int cap = im->capv ? 2 * im->capv : 64;
        value *nv = realloc(im->v, (size_t)cap * sizeof *nv);
        if (!nv) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
        im->v = nv, im->capv = cap;
    }
    im->v[im->nv++] = (value){.name = name, .node = node, .rank = rank, .t = t, .pad = {0, 0, 0, 0}, .fill = 0};
    return LOOM_OK;
}

static pending *add_pending(importer *im, int node) {
    if (im->np == im->capp) {
        int cap = im->capp ? 2 * im->capp : 32;
        pending *np = realloc(im->p, (size_t)cap * sizeof *np);
        if (!np) {
            loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
            return NULL;
        }
        im->p = np, im->capp = cap;
    }
    pending *p = &im->p[im->np++];
    memset(p, 0, sizeof *p);
    p->node = node;
    return p;
}

/* A Pad carried in value v becomes a pad layer (a Conv takes a zero one into its own padding instead). */
static int materialize_pad(importer *im, value *v) {
    loom_node y = loom_pad2d(im->g, v->node, v->pad[0], v->pad[1], v->pad[2], v->pad[3], v->fill);
    if (y < 0) return node_fail(im, LOOM_EUNSUPPORTED, "%s", loom_graph_error(im->g));
    v->node = y;
    memset(v->pad, 0, sizeof v->pad);
    v->fill = 0;
    return LOOM_OK;
}

/* Input k of the current node: an activation (want_node) or a constant. */
static value *input(importer *im, int k, int want_node, const char *what) {
    const Onnx__NodeProto *n = im->node;
    if ((size_t)k >= n->n_input || !n->input[k] || !*n->input[k]) {
        BAD("input %d (%s) is missing", k, what);
        return NULL;
    }
    value *v = find(im, n->input[k]);
    if (!v) {
        const Onnx__GraphProto *gp = im->m->graph;
        for (size_t q = (size_t)im->node_index + 1; q < gp->n_node; q++)
            for (size_t o = 0; o < gp->node[q]->n_output; o++)
                if (gp->node[q]->output[o] && !strcmp(gp->node[q]->output[o], n->input[k])) {
                    BAD("input %d (%s) reads \"%s\", which node %zu (%s) makes later: the graph has a cycle or its "
                        "nodes are not in topological order",
                        k, what, n->input[k], q, gp->node[q]->name ? gp->node[q]->name : "");
                    return NULL;
                }
        BAD("input %d (%s) reads \"%s\", which no node makes and no initializer holds (a missing initializer?)", k,
            what, n->input[k]);
        return NULL;
    }
    if (want_node == 1 && v->node < 0) {
        UNSUPPORTED("input %d (%s) \"%s\" is a constant: loom computes this operator on activations only", k, what,
                    v->name);
        return NULL;
    }
    if ((v->pad[0] | v->pad[1] | v->pad[2] | v->pad[3]) && (strcmp(n->op_type ? n->op_type : "", "Conv") || v->fill != 0.0f) &&
        materialize_pad(im, v))
        return NULL;
    if (want_node == 0 && v->node >= 0) {
        UNSUPPORTED("input %d (%s) \"%s\" is computed by the graph: loom needs it as an initializer (a constant)", k,
                    what, v->name);
        return NULL;
    }
    return v;
}

static int has_input(const importer *im, int k) {
    return (size_t)k < im->node->n_input && im->node->input[k] && *im->node->input[k];
}

/* ---- attributes ---------------------------------------------------------------- */

static const Onnx__AttributeProto *attr(const importer *im, const char *name) {
    for (size_t k = 0; k < im->node->n_attribute; k++)
        if (im->node->attribute[k]->name && !strcmp(im->node->attribute[k]->name, name)) return im->node->attribute[k];
    return NULL;
}

static int64_t attr_int(const importer *im, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = attr(im, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const importer *im, const char *name, float def) {
    const Onnx__AttributeProto *a = attr(im, name);
    return a && a->has_f ? a->f : def;
}

/* An ints attribute of exactly n values into out (def where absent). LOOM_OK or an error. */
static int attr_ints(importer *im, const char *name, int n, int64_t *out, int64_t def) {
    const Onnx__AttributeProto *a = attr(im, name);
    for (int k = 0; k < n; k++) out[k] = def;
    if (!a) return LOOM_OK;
    if ((int)a->n_ints != n) return UNSUPPORTED("attribute %s has %zu values, loom expects %d (2-d images)", name, a->n_ints, n);
    for (int k = 0; k < n; k++) out[k] = a->ints[k];
    return LOOM_OK;
}

static const char *attr_string(const importer *im, const char *name, const char *def, char *buf, size_t cap) {
    const Onnx__AttributeProto *a = attr(im, name);
    if (!a || !a->has_s) return def;
    size_t len = a->s.len < cap - 1 ? a->s.len : cap - 1;
    memcpy(buf, a->s.data, len);
    buf[len] = 0;
    return buf;
}

/* ---- tensors --------------------------------------------------------------------- */

static int64_t tensor_count(const Onnx__TensorProto *t) {
    int64_t n = 1;
    for (size_t k = 0; k < t->n_dims; k++) {
        if (t->dims[k] < 0 || (t->dims[k] > 0 && n > INT64_MAX / t->dims[k])) return -1;
        n *= t->dims[k];
    }
    return n;
}

/* A path inside the model's folder for external data: relative, no "..". */
static int external_path(importer *im, const char *loc, char *out, size_t cap) {
    if (!loc || !*loc || loc[0] == '/' || strstr(loc, "..") || strlen(im->dir) + strlen(loc) + 2 > cap)
        return BAD("external data location \"%s\" is not a file name inside the model's folder", loc ? loc : "");
    int n = snprintf(out, cap, "%s/%s", im->dir, loc);
    return n > 0 && (size_t)n < cap ? LOOM_OK : BAD("external data location \"%s\" is too long", loc);
}

/* Bytes [off, off + len) of a tensor's data: raw_data, or its external file. Into buf (len bytes). */
static int tensor_bytes(importer *im, const Onnx__TensorProto *t, const char *tname, void *buf, size_t len) {
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *loc = NULL;
        int64_t off = 0, elen = -1;
        for (size_t k = 0; k < t->n_external_data; k++) {
            const Onnx__StringStringEntryProto *e = t->external_data[k];
            if (!e->key || !e->value) continue;
            if (!strcmp(e->key, "location")) loc = e->value;
            else if (!strcmp(e->key, "offset")) off = strtoll(e->value, NULL, 10);
            else if (!strcmp(e->key, "length")) elen = strtoll(e->value, NULL, 10);
        }
        char path[4096];
        if (external_path(im, loc, path, sizeof path)) return LOOM_ERR;
        if (off < 0 || (elen >= 0 && (uint64_t)elen != len))
            return BAD("tensor %s: external data of %lld bytes at offset %lld, the shape needs %zu", tname,
                       (long long)elen, (long long)off, len);
        FILE *f = fopen(path, "rb");
        if (!f) return node_fail(im, LOOM_EIO, "tensor %s: external data %s: %s", tname, path, strerror(errno));
        int ok = fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, len, f) == len;
        fclose(f);
        if (!ok) return BAD("tensor %s: external data %s holds fewer than %lld + %zu bytes", tname, path, (long long)off, len);
        return LOOM_OK;
    }
    if (!t->has_raw_data) return BAD("tensor %s has no data", tname);
    if (t->raw_data.len != len)
        return BAD("tensor %s: %zu bytes of raw data, its shape needs %zu", tname, t->raw_data.len, len);
    memcpy(buf, t->raw_data.data, len);
    return LOOM_OK;
}

/* Whether the data a tensor's shape declares (bytes) is there, before anything that size is allocated:
 * its inline values, its raw data, or its external file. LOOM_OK or an error naming the tensor. */
static int tensor_room(importer *im, const Onnx__TensorProto *t, const char *tname, uint64_t bytes) {
    if (t->n_float_data || t->n_int64_data || t->n_int32_data || t->n_double_data) return LOOM_OK; /* counted later */
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *loc = NULL;
        int64_t off = 0;
        for (size_t k = 0; k < t->n_external_data; k++) {
            const Onnx__StringStringEntryProto *e = t->external_data[k];
            if (e->key && e->value && !strcmp(e->key, "location")) loc = e->value;
            if (e->key && e->value && !strcmp(e->key, "offset")) off = strtoll(e->value, NULL, 10);
        }
        char path[4096];
        struct stat st;
        if (external_path(im, loc, path, sizeof path)) return LOOM_ERR;
        if (stat(path, &st) == 0 && off >= 0 && (uint64_t)st.st_size < (uint64_t)off + bytes)
            return BAD("tensor %s: its shape needs %llu bytes at offset %lld, external data %s holds %lld", tname,
                       (unsigned long long)bytes, (long long)off, path, (long long)st.st_size);
        return LOOM_OK; /* (a missing file is said when it is read) */
    }
    if (!t->has_raw_data) return bytes ? BAD("tensor %s has no data", tname) : LOOM_OK;
    if (t->raw_data.len != bytes)
        return BAD("tensor %s: %zu bytes of raw data, its shape needs %llu", tname, t->raw_data.len,
                   (unsigned long long)bytes);
    return LOOM_OK;
}

/* A float tensor's values (malloc'd, *count of them), or NULL after an error. */
static float *tensor_floats(importer *im, const Onnx__TensorProto *t, const char *tname, size_t *count) {
    if (t->data_type != DT_FLOAT) {
        UNSUPPORTED("tensor %s has data type %d: loom reads float32 weights", tname, (int)t->data_type);
        return NULL;
    }
    int64_t n = tensor_count(t);
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float) / 2) {
        BAD("tensor %s: its dimensions are negative or too large", tname);
        return NULL;
    }
    if (tensor_room(im, t, tname, (uint64_t)n * sizeof(float))) return NULL;
    float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!out) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory reading tensor %s", im->path, tname);
        return NULL;
    }
    if (t->n_float_data) {
        if ((int64_t)t->n_float_data != n) {
            BAD("tensor %s: %zu values, its shape needs %lld", tname, t->n_float_data, (long long)n);
            free(out);
            return NULL;
        }
        memcpy(out, t->float_data, (size_t)n * sizeof(float));
    } else if (tensor_bytes(im, t, tname, out, (size_t)n * sizeof(float))) { /* little-endian, as this machine */
        free(out);
        return NULL;
    }
    for (int64_t k = 0; k < n && !im->any_value; k++)
        if (!isfinite(out[k])) {
            BAD("tensor %s: value %lld is %g: loom does not load non-finite weights", tname, (long long)k, (double)out[k]);
            free(out);
            return NULL;
        }
    *count = (size_t)n;
    return out;
}

/* An int64 tensor's values (at most cap), for shapes. Count, or -1 after an error. */
static int tensor_ints(importer *im, const Onnx__TensorProto *t, const char *tname, int64_t *out, int cap) {
    if (t->data_type != DT_INT64) return UNSUPPORTED("tensor %s has data type %d, expected int64", tname, (int)t->data_type), -1;
    int64_t n = tensor_count(t);
    if (n < 0 || n > cap) return UNSUPPORTED("tensor %s has %lld values, loom reads at most %d here", tname, (long long)n, cap), -1;
    if (t->n_int64_data) {
        if ((int64_t)t->n_int64_data != n) return BAD("tensor %s: %zu values, its shape needs %lld", tname, t->n_int64_data, (long long)n), -1;
        memcpy(out, t->int64_data, (size_t)n * sizeof *out);
    } else if (tensor_bytes(im, t, tname, out, (size_t)n * sizeof *out)) {
        return -1;
    }
    return (int)n;
}

static const char *dims_str(const Onnx__TensorProto *t, char *buf, size_t cap) {
    size_t at = 0;
    buf[at++] = '[';
    buf[at] = 0;
    for (size_t k = 0; k < t->n_dims && at + 24 < cap; k++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", k ? ", " : "", (long long)t->dims[k]);
    snprintf(buf + at, cap - at, "]");
    return buf;
}

/* ---- the operators ------------------------------------------------------------------ */

enum { AR_ADD, AR_SUB, AR_MUL, AR_DIV };


static int out_node(importer *im, loom_node x, int rank) {
    if (x < 0) return node_fail(im, LOOM_EUNSUPPORTED, "%s", loom_graph_error(im->g));
    /* the layer takes the node's name (PyTorch's "/layer1/layer1.0/conv1/Conv" as
     * "layer1/layer1.0/conv1"), where it fits and is unique; else loom's own */
    const char *nm = im->node->name;
    if (nm && *nm) {
        char buf[128];
        while (*nm == '/') nm++;
        snprintf(buf, sizeof buf, "%s", nm);
        char *slash = strrchr(buf, '/');
        if (slash && im->node->op_type && !strcmp(slash + 1, im->node->op_type) && buf[strspn(buf, "0123456789")] != '/')
            *slash = 0; /* but "0/Conv" stays: a bare number would read as a layer index */
        if (*buf && loom_graph_set_name(im->g, x, buf)) loom_clear_error();
    }
    return define(im, im->node->output[0], x, rank, NULL);
}

static const loom_layer *layer(importer *im, const value *v) { return loom_graph_layer(im->g, v->node); }

/* ---- constants computed at import: exporters' shape arithmetic ---------------------
 * PyTorch writes x.view(x.size(0), -1) as Shape -> Gather -> Unsqueeze ->
 * Concat -> Reshape, and a ZeroPad2d's pads as ConstantOfShape -> Concat ->
 * Reshape -> Slice -> Transpose -> Reshape -> Cast. Such nodes on constants
 * (and Shape of an activation) are computed here into new constants. The
 * batch size is known only when the model runs: Shape gives it as SYM_N,
 * which passes through Gather, Concat, ... and which Reshape takes as "the
 * batch"; arithmetic on it gives SYM_X, which nothing accepts. */
/* Exporters write INT64_MIN, INT64_MIN + 1 and INT64_MAX as slice bounds ("to the end"): the
 * symbols are other values, which no exporter writes ("LOOM" above the minimum). */
#define SYM_N (INT64_MIN + 0x4c4f4f4d)
#define SYM_X (SYM_N + 1)
enum { KONST_MAX = 1 << 24 };

typedef struct {
    int rank;
    int64_t dims[MAX_RANK];
    size_t n;
    int fl;                          /* float values in f, else integers in i */
    int64_t *i;
    float *f;
} konst;

static void konst_free(konst *k) {
    free(k->i), free(k->f);
    k->i = NULL, k->f = NULL;
}

/* Room for k's values (its rank and dims set). */
static int konst_alloc(importer *im, konst *k, int fl) {
    size_t n = 1;
    for (int d = 0; d < k->rank; d++) {
        if (k->dims[d] < 0 || (k->dims[d] > 0 && n > KONST_MAX / (size_t)k->dims[d]))
            return UNSUPPORTED("a computed constant of more than %d values", KONST_MAX);
        n *= (size_t)k->dims[d];
    }
    k->n = n, k->fl = fl;
    void *p = calloc(n ? n : 1, fl ? sizeof(float) : sizeof(int64_t));
    if (!p) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    if (fl) k->f = p;
    else k->i = p;
    return LOOM_OK;
}

/* Constant input k of the node, read into out (float32, int64 or int32). */
static int konst_in(importer *im, int k, const char *what, konst *out) {
    memset(out, 0, sizeof *out);
    value *v = input(im, k, 0, what);
    if (!v) return LOOM_ERR;
    const Onnx__TensorProto *t = v->t;
    char d[96];
    if (t->n_dims > MAX_RANK) return UNSUPPORTED("constant %s %s: loom computes with at most %d dimensions", v->name, dims_str(t, d, sizeof d), MAX_RANK);
    out->rank = (int)t->n_dims;
    for (int q = 0; q < out->rank; q++) out->dims[q] = t->dims[q];
    int was = im->any_value;
    if (t->data_type == DT_FLOAT) {
        im->any_value = 1;
        out->f = tensor_floats(im, t, v->name, &out->n);
        im->any_value = was;
        out->fl = 1;
        return out->f ? LOOM_OK : LOOM_ERR;
    }
    if (t->data_type == DT_DOUBLE) { /* PyTorch writes shape constants so at opsets 7 and 8 */
        if (tensor_count(t) < 0 || tensor_room(im, t, v->name, (uint64_t)tensor_count(t) * 8)) return LOOM_ERR;
        if (konst_alloc(im, out, 1)) return LOOM_ERR;
        double *tmp = malloc((out->n ? out->n : 1) * sizeof *tmp);
        if (!tmp) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
        int rc = LOOM_OK;
        if (t->n_double_data) {
            if (t->n_double_data != out->n) rc = BAD("tensor %s: %zu values, its shape needs %zu", v->name, t->n_double_data, out->n);
            else memcpy(tmp, t->double_data, out->n * sizeof *tmp);
        } else if (out->n) {
            rc = tensor_bytes(im, t, v->name, tmp, out->n * sizeof *tmp);
        }
        for (size_t q = 0; !rc && q < out->n; q++) out->f[q] = (float)tmp[q];
        free(tmp);
        return rc;
    }
    if (t->data_type != DT_INT64 && t->data_type != DT_INT32)
        return UNSUPPORTED("constant %s has data type %d: loom computes with float32, float64, int64 and int32 constants",
                           v->name, (int)t->data_type);
    if (tensor_room(im, t, v->name, (uint64_t)tensor_count(t) * (t->data_type == DT_INT64 ? 8 : 4))) return LOOM_ERR;
    if (konst_alloc(im, out, 0)) return LOOM_ERR;
    if (t->data_type == DT_INT64) {
        if (t->n_int64_data) {
            if (t->n_int64_data != out->n) return BAD("tensor %s: %zu values, its shape needs %zu", v->name, t->n_int64_data, out->n);
            memcpy(out->i, t->int64_data, out->n * sizeof *out->i);
        } else if (out->n && tensor_bytes(im, t, v->name, out->i, out->n * sizeof *out->i)) {
            return LOOM_ERR;
        }
    } else if (t->n_int32_data) {
        if (t->n_int32_data != out->n) return BAD("tensor %s: %zu values, its shape needs %zu", v->name, t->n_int32_data, out->n);
        for (size_t q = 0; q < out->n; q++) out->i[q] = t->int32_data[q];
    } else if (out->n) {
        int32_t *tmp = malloc(out->n * sizeof *tmp);
        if (!tmp) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
        int rc = tensor_bytes(im, t, v->name, tmp, out->n * sizeof *tmp);
        for (size_t q = 0; !rc && q < out->n; q++) out->i[q] = tmp[q];
        free(tmp);
        if (rc) return LOOM_ERR;
    }
    return LOOM_OK;
}

/* k as the constant the node's output names (k's values are taken). */
static int konst_define(importer *im, konst *k) {
    if (im->nmade == im->capmade) {
        int cap = im->capmade ? 2 * im->capmade : 16;
        Onnx__TensorProto **m = realloc(im->made, (size_t)cap * sizeof *m);
        if (!m) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
        im->made = m, im->capmade = cap;
    }
    Onnx__TensorProto *t = calloc(1, sizeof *t);
    int64_t *dims = malloc((size_t)(k->rank ? k->rank : 1) * sizeof *dims);
    if (!t || !dims) {
        free(t), free(dims);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    }
    onnx__tensor_proto__init(t);
    im->made[im->nmade++] = t;
    memcpy(dims, k->dims, (size_t)k->rank * sizeof *dims);
    t->n_dims = (size_t)k->rank, t->dims = dims;
    t->has_data_type = 1;
    if (k->fl) t->data_type = DT_FLOAT, t->n_float_data = k->n, t->float_data = k->f, k->f = NULL;
    else t->data_type = DT_INT64, t->n_int64_data = k->n, t->int64_data = k->i, k->i = NULL;
    if (!k->n) t->has_raw_data = 1, t->raw_data.len = 0, t->raw_data.data = (uint8_t *)dims; /* empty, not missing */
    konst_free(k);
    return define(im, im->node->output[0], -1, 0, t);
}

static void konst_strides(const konst *k, int64_t *st) {
    int64_t a = 1;
    for (int d = k->rank - 1; d >= 0; d--) st[d] = a, a *= k->dims[d];
}

/* Element p of an output whose row-major strides are ost (rank r) read from a source at base + the sum,
 * over the output's dimensions, of its index there times step[d] (a slice, a transposition, a broadcast). */
static int64_t konst_source(size_t p, int r, const int64_t *ost, int64_t base, const int64_t *step) {
    int64_t rem = (int64_t)p, q = base;
    for (int d = 0; d < r; d++) {
        q += rem / ost[d] * step[d];
        rem %= ost[d];
    }
    return q;
}

/* Copy element q of src (float or int) to element p of dst (same kind). */
static void konst_copy(konst *dst, size_t p, const konst *src, size_t q) {
    if (dst->fl) dst->f[p] = src->f[q];
    else dst->i[p] = src->i[q];
}

/* The ONNX shape of activation x: [SYM_N, ...] of its rank; the rank, or -1 for a rank loom cannot lay out. */
static int act_dims(importer *im, const value *x, int64_t *d) {
    const loom_layer *l = layer(im, x);
    d[0] = SYM_N;
    if (x->rank == 4) d[1] = l->c, d[2] = l->h, d[3] = l->w;
    else if (x->rank == 3) d[1] = l->c, d[2] = (int64_t)l->h * l->w;
    else if (x->rank == 2) d[1] = (int64_t)l->size;
    else return -1;
    return x->rank;
}

/* x's values as an activation of ONNX rank r whose dimensions after the batch are d[0..r-1). */
static int reshape_act(importer *im, value *x, int r, const int64_t *d) {
    if (r < 2 || r > 4)
        return UNSUPPORTED("a %d-d result: loom holds a sample as [C, H, W], [C, H] or [F] (the batch first)", r);
    const loom_layer *xl = layer(im, x);
    int64_t c = d[0], h = r > 2 ? d[1] : 1, w = r > 3 ? d[2] : 1;
    if (c < 1 || h < 1 || w < 1 || c * h * w != (int64_t)xl->size)
        return BAD("%zu values per sample cannot be [%lld%s%lld%s%lld]", xl->size, (long long)c, r > 2 ? ", " : "",
                   (long long)(r > 2 ? h : 0), r > 3 ? ", " : "", (long long)(r > 3 ? w : 0));
    if (c == xl->c && h == xl->h && w == xl->w) return define(im, im->node->output[0], x->node, r, NULL); /* the same layout */
    if (r == 2) return out_node(im, loom_flatten(im->g, x->node), 2);
    return out_node(im, loom_reshape(im->g, x->node, r, (int)c, (int)h, (int)w), r);
}

/* Axes as given (attribute when from_attr, else input 1) into ax; the count, or -1 after an error. */
static int axes_raw(importer *im, int64_t *ax, int optional, int from_attr) {
    int n = 0;
    if (from_attr) {
        const Onnx__AttributeProto *a = attr(im, "axes");
        if (!a) return optional ? 0 : (BAD("attribute axes is missing"), -1);
        if (a->n_ints > MAX_RANK) return UNSUPPORTED("%zu axes", a->n_ints), -1;
        for (size_t q = 0; q < a->n_ints; q++) ax[n++] = a->ints[q];
        return n;
    }
    if (!has_input(im, 1)) return optional ? 0 : (BAD("input axes is missing"), -1);
    konst k;
    if (konst_in(im, 1, "axes", &k)) return konst_free(&k), -1;
    if (k.fl || k.n > MAX_RANK) {
        konst_free(&k);
        return UNSUPPORTED("axes of %zu %s values", k.n, k.fl ? "float" : "integer"), -1;
    }
    for (size_t q = 0; q < k.n; q++) ax[n++] = k.i[q];
    konst_free(&k);
    return n;
}

/* Axes normalized against rank r (negative from the end), each once. */
static int axes_norm(importer *im, int64_t *ax, int n, int r) {
    for (int q = 0; q < n; q++) {
        if (ax[q] < -r || ax[q] >= r) return BAD("axis %lld is out of range for %d dimensions", (long long)ax[q], r);
        if (ax[q] < 0) ax[q] += r;
        for (int e = 0; e < q; e++)
            if (ax[e] == ax[q]) return BAD("axis %lld is given twice", (long long)ax[q]);
    }
    return LOOM_OK;
}

/* Unsqueeze and Squeeze: the dimensions of the result from those of the input (r of them); its rank or -1. */
static int squeeze_dims(importer *im, int unsq, int r, const int64_t *in, int64_t *out) {
    int64_t ax[MAX_RANK];
    int n = axes_raw(im, ax, !unsq, im->opset < 13);
    if (n < 0) return -1;
    if (unsq) {
        int ro = r + n;
        if (ro > MAX_RANK) return UNSUPPORTED("a %d-d result", ro), -1;
        if (axes_norm(im, ax, n, ro)) return -1;
        char is[MAX_RANK] = {0};
        for (int q = 0; q < n; q++) is[ax[q]] = 1;
        for (int o = 0, i = 0; o < ro; o++) out[o] = is[o] ? 1 : in[i++];
        return ro;
    }
    if (axes_norm(im, ax, n, r)) return -1;
    char drop[MAX_RANK] = {0};
    for (int q = 0; q < n; q++) {
        if (in[ax[q]] == SYM_N) return UNSUPPORTED("squeezing the batch away"), -1;
        if (in[ax[q]] != 1) return BAD("axis %lld has size %lld, not 1", (long long)ax[q], (long long)in[ax[q]]), -1;
        drop[ax[q]] = 1;
    }
    int ro = 0;
    for (int q = 0; q < r; q++)
        if (!(n ? drop[q] : in[q] == 1)) out[ro++] = in[q];
    return ro;
}

/* A node loom computes only at import, on constants: refused on an activation with that reason. */
static int constant_only(importer *im) {
    const char *nm = im->node->n_input && im->node->input[0] ? im->node->input[0] : "";
    value *v = *nm ? find(im, nm) : NULL;
    if (v && v->node >= 0)
        return UNSUPPORTED("input 0 \"%s\" is an activation: loom computes %s only on constants (the shape arithmetic "
                           "of exporters) and has no layer for it", nm, im->node->op_type);
    return LOOM_OK;
}

static int fold_shape(importer *im) {
    value *x = input(im, 0, 1, "data");
    if (!x) return LOOM_ERR;
    int64_t d[MAX_RANK];
    int r = act_dims(im, x, d);
    if (r < 0) return UNSUPPORTED("the shape of a %d-d tensor", x->rank);
    int64_t a = attr_int(im, "start", 0), b = attr_int(im, "end", r);
    if (a < 0) a += r;
    if (b < 0) b += r;
    a = a < 0 ? 0 : a > r ? r : a, b = b < 0 ? 0 : b > r ? r : b;
    konst k = {.rank = 1, .dims = {b > a ? b - a : 0}};
    if (konst_alloc(im, &k, 0)) return LOOM_ERR;
    for (int64_t q = a; q < b; q++) k.i[q - a] = d[q];
    return konst_define(im, &k);
}

static int fold_gather(importer *im) {
    if (constant_only(im)) return LOOM_ERR;
    konst data, idx, out = {0};
    if (konst_in(im, 0, "data", &data)) return konst_free(&data), LOOM_ERR;
    if (konst_in(im, 1, "indices", &idx) || idx.fl) {
        konst_free(&data), konst_free(&idx);
        return idx.fl ? BAD("float indices") : LOOM_ERR;
    }
    int r = data.rank, rc = LOOM_ERR;
    int64_t axis = attr_int(im, "axis", 0);
    if (axis < 0) axis += r;
    if (r < 1 || axis < 0 || axis >= r || r - 1 + idx.rank > MAX_RANK) {
        rc = UNSUPPORTED("gathering along axis %lld of a %d-d constant", (long long)attr_int(im, "axis", 0), r);
        goto out;
    }
    out.rank = r - 1 + idx.rank;
    int64_t outer = 1, inner = 1, A = data.dims[axis];
    for (int q = 0; q < axis; q++) out.dims[q] = data.dims[q], outer *= data.dims[q];
    for (int q = 0; q < idx.rank; q++) out.dims[axis + q] = idx.dims[q];
    for (int q = (int)axis + 1; q < r; q++) out.dims[q - 1 + idx.rank] = data.dims[q], inner *= data.dims[q];
    if (konst_alloc(im, &out, data.fl)) goto out;
    for (int64_t o = 0; o < outer; o++)
        for (size_t j = 0; j < idx.n; j++) {
            int64_t q = idx.i[j] < 0 ? idx.i[j] + A : idx.i[j];
            if (q < 0 || q >= A) {
                rc = BAD("index %lld is out of range for %lld", (long long)idx.i[j], (long long)A);
                goto out;
            }
            for (int64_t e = 0; e < inner; e++)
                konst_copy(&out, (size_t)((o * (int64_t)idx.n + (int64_t)j) * inner + e), &data, (size_t)((o * A + q) * inner + e));
        }
    rc = konst_define(im, &out);
out:
    konst_free(&data), konst_free(&idx), konst_free(&out);
    return rc;
}

/* Unsqueeze/Squeeze of a constant (values unchanged) or an activation (a reshape, the batch kept first). */
static int fold_squeeze(importer *im, int unsq) {
    value *v = input(im, 0, -1, "data");
    if (!v) return LOOM_ERR;
    int64_t in[MAX_RANK], od[MAX_RANK];
    if (v->node >= 0) {
        int r = act_dims(im, v, in);
        if (r < 0) return UNSUPPORTED("a %d-d input", v->rank);
        int ro = squeeze_dims(im, unsq, r, in, od);
        if (ro < 0) return LOOM_ERR;
        if (ro < 1 || od[0] != SYM_N) return UNSUPPORTED("a result whose first dimension is not the batch");
        return reshape_act(im, v, ro, od + 1);
    }
    konst k;
    if (konst_in(im, 0, "data", &k)) return konst_free(&k), LOOM_ERR;
    int ro = squeeze_dims(im, unsq, k.rank, k.dims, od);
    if (ro < 0) return konst_free(&k), LOOM_ERR;
    k.rank = ro;
    memcpy(k.dims, od, (size_t)ro * sizeof *od);
    return konst_define(im, &k);
}

static int fold_concat(importer *im) {
    int n = (int)im->node->n_input, rc = LOOM_ERR;
    konst *ks = calloc((size_t)(n ? n : 1), sizeof *ks), out = {0};
    if (!ks) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    for (int q = 0; q < n; q++)
        if (konst_in(im, q, "input", &ks[q])) goto out;
    int r = n ? ks[0].rank : 0;
    int64_t axis = attr_int(im, "axis", 0);
    if (axis < 0) axis += r;
    if (n < 1 || axis < 0 || axis >= r) {
        rc = BAD("axis %lld of %d-d constants", (long long)attr_int(im, "axis", 0), r);
        goto out;
    }
    out = ks[0];
    out.i = NULL, out.f = NULL, out.dims[axis] = 0;
    for (int q = 0; q < n; q++) {
        int same = ks[q].rank == r && ks[q].fl == ks[0].fl;
        for (int d = 0; same && d < r; d++) same = d == axis || ks[q].dims[d] == ks[0].dims[d];
        if (!same) {
            rc = BAD("input %d does not match input 0 in type or shape", q);
            goto out;
        }
        out.dims[axis] += ks[q].dims[axis];
    }
    if (konst_alloc(im, &out, ks[0].fl)) goto out;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= out.dims[d];
    for (int d = (int)axis + 1; d < r; d++) inner *= out.dims[d];
    size_t p = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int q = 0; q < n; q++) {
            int64_t run = ks[q].dims[axis] * inner;
            for (int64_t e = 0; e < run; e++) konst_copy(&out, p++, &ks[q], (size_t)(o * run + e));
        }
    rc = konst_define(im, &out);
out:
    for (int q = 0; q < n; q++) konst_free(&ks[q]);
    free(ks);
    konst_free(&out);
    return rc;
}

/* A Reshape's target from its shape input: 0 copies the input's dimension, -1 is inferred. */
static int reshape_target(importer *im, int r, const int64_t *in, const konst *s, int64_t *out) {
    if (s->fl || s->rank != 1 || s->n > MAX_RANK) return UNSUPPORTED("a shape of %zu %s values", s->n, s->fl ? "float" : "integer"), -1;
    int ro = (int)s->n, infer = -1;
    int allowzero = (int)attr_int(im, "allowzero", 0);
    for (int q = 0; q < ro; q++) {
        int64_t v = s->i[q];
        if (v == 0 && !allowzero) {
            if (q >= r) return BAD("shape[%d] = 0 copies a dimension the input does not have", q), -1;
            v = in[q];
        }
        if (v == -1) {
            if (infer >= 0) return BAD("two dimensions are -1"), -1;
            infer = q;
        } else if (v < 0 && v != SYM_N && v != SYM_X) {
            return BAD("shape[%d] = %lld", q, (long long)v), -1;
        }
        out[q] = v;
    }
    for (int q = 0; q < ro; q++)
        if (out[q] == SYM_X) return UNSUPPORTED("a shape computed from the batch size"), -1;
    if (infer >= 0) {
        int64_t total = 1, part = 1;
        int sym_in = 0, sym_out = 0;
        for (int q = 0; q < r; q++) {
            if (in[q] == SYM_N) sym_in++;
            else total *= in[q];
        }
        for (int q = 0; q < ro; q++) {
            if (q == infer) continue;
            if (out[q] == SYM_N) sym_out++;
            else part *= out[q];
        }
        if (sym_in == 1 && sym_out == 0 && part == total) {
            out[infer] = SYM_N; /* -1 is the batch */
        } else if (sym_in != sym_out) {
            return UNSUPPORTED("a reshape that merges the batch with other dimensions (loom computes each sample on its "
                               "own)"), -1;
        } else {
            if (!part || total % part)
                return BAD("%lld values do not divide into parts of %lld", (long long)total, (long long)part), -1;
            out[infer] = total / part;
        }
    }
    return ro;
}

static int op_reshape(importer *im) {
    value *x = input(im, 0, -1, "data");
    konst s;
    if (!x) return LOOM_ERR;
    if (konst_in(im, 1, "shape", &s)) return konst_free(&s), LOOM_ERR;
    int64_t in[MAX_RANK], out[MAX_RANK];
    int r = x->node >= 0 ? act_dims(im, x, in) : 0, ro;
    if (x->node < 0) { /* a constant */
        konst k;
        if (konst_in(im, 0, "data", &k)) return konst_free(&s), konst_free(&k), LOOM_ERR;
        ro = reshape_target(im, k.rank, k.dims, &s, out);
        konst_free(&s);
        if (ro < 0) return konst_free(&k), LOOM_ERR;
        int64_t n = 1;
        for (int q = 0; q < ro; q++) n *= out[q] < 0 ? -1 : out[q];
        if (n != (int64_t)k.n) return konst_free(&k), BAD("a constant of %zu values reshaped to %lld", k.n, (long long)n);
        k.rank = ro;
        memcpy(k.dims, out, (size_t)ro * sizeof *out);
        return konst_define(im, &k);
    }
    if (r < 0) return konst_free(&s), UNSUPPORTED("reshaping a %d-d tensor", x->rank);
    /* a model exported for a fixed batch (no dynamic axes) names it in its shapes: that is the batch */
    if (im->batch > 0 && s.n >= 1 && s.i[0] == im->batch) s.i[0] = SYM_N;
    ro = reshape_target(im, r, in, &s, out);
    konst_free(&s);
    if (ro < 0) return LOOM_ERR;
    if (ro < 1 || out[0] != SYM_N) {
        for (int q = 1; q < ro; q++)
            if (out[q] == SYM_N) return UNSUPPORTED("a reshape that moves the batch to dimension %d", q);
        return UNSUPPORTED("a reshape whose first dimension is %lld, not the batch (loom computes each sample on its own; "
                           "export with the batch as 0 or -1 there)", (long long)out[0]);
    }
    for (int q = 1; q < ro; q++)
        if (out[q] < 0) return UNSUPPORTED("a shape computed from the batch size");
    return reshape_act(im, x, ro, out + 1);
}

static int fold_slice(importer *im) {
    if (constant_only(im)) return LOOM_ERR;
    konst data, ks[4] = {{0}}, out = {0};
    int rc = LOOM_ERR;
    if (konst_in(im, 0, "data", &data)) goto out0;
    int r = data.rank;
    int64_t st[MAX_RANK], en[MAX_RANK], sp[MAX_RANK];
    for (int d = 0; d < r; d++) st[d] = 0, en[d] = data.dims[d], sp[d] = 1;
    int64_t a_st[MAX_RANK], a_en[MAX_RANK], a_ax[MAX_RANK], a_sp[MAX_RANK];
    int n;
    if (im->opset < 10) {
        const Onnx__AttributeProto *as = attr(im, "starts"), *ae = attr(im, "ends"), *aa = attr(im, "axes");
        if (!as || !ae || as->n_ints != ae->n_ints || as->n_ints > MAX_RANK || (aa && aa->n_ints != as->n_ints)) {
            rc = BAD("attributes starts and ends (and axes) must be given, of one length");
            goto out0;
        }
        n = (int)as->n_ints;
        for (int q = 0; q < n; q++) a_st[q] = as->ints[q], a_en[q] = ae->ints[q], a_ax[q] = aa ? aa->ints[q] : q, a_sp[q] = 1;
    } else {
        static const char *const names[4] = {"starts", "ends", "axes", "steps"};
        int64_t *dst[4] = {a_st, a_en, a_ax, a_sp};
        n = -1;
        for (int q = 0; q < 4; q++) {
            if (q >= 2 && !has_input(im, q + 1)) continue;
            if (konst_in(im, q + 1, names[q], &ks[q])) goto out0;
            if (ks[q].fl || ks[q].rank != 1 || ks[q].n > MAX_RANK || (n >= 0 && (int)ks[q].n != n)) {
                rc = BAD("%s must be 1-d integers, as many as starts", names[q]);
                goto out0;
            }
            n = (int)ks[q].n;
            memcpy(dst[q], ks[q].i, ks[q].n * sizeof *ks[q].i);
        }
        for (int q = 0; q < n; q++) {
            if (!has_input(im, 3)) a_ax[q] = q;
            if (!has_input(im, 4)) a_sp[q] = 1;
        }
    }
    for (int q = 0; q < n; q++) {
        int64_t ax = a_ax[q] < 0 ? a_ax[q] + r : a_ax[q], dim;
        if (ax < 0 || ax >= r || a_sp[q] == 0) {
            rc = BAD("axis %lld, step %lld for a %d-d constant", (long long)a_ax[q], (long long)a_sp[q], r);
            goto out0;
        }
        dim = data.dims[ax];
        int64_t s0 = a_st[q], e0 = a_en[q], step = a_sp[q];
        if (s0 == SYM_N || e0 == SYM_N || s0 == SYM_X || e0 == SYM_X) {
            rc = UNSUPPORTED("a slice bound computed from the batch size");
            goto out0;
        }
        if (s0 < 0) s0 += dim;
        if (e0 < 0) e0 += dim;
        if (step > 0) {
            s0 = s0 < 0 ? 0 : s0 > dim ? dim : s0;
            e0 = e0 < 0 ? 0 : e0 > dim ? dim : e0;
        } else {
            s0 = s0 < 0 ? 0 : s0 > dim - 1 ? dim - 1 : s0;
            e0 = e0 < -1 ? -1 : e0 > dim - 1 ? dim - 1 : e0;
        }
        st[ax] = s0, en[ax] = e0, sp[ax] = step;
    }
    out.rank = r;
    for (int d = 0; d < r; d++) {
        int64_t len = sp[d] > 0 ? (en[d] - st[d] + sp[d] - 1) / sp[d] : (st[d] - en[d] - sp[d] - 1) / -sp[d];
        out.dims[d] = len > 0 ? len : 0;
    }
    if (konst_alloc(im, &out, data.fl)) goto out0;
    int64_t ist[MAX_RANK], ost[MAX_RANK], step[MAX_RANK], base = 0;
    konst_strides(&data, ist);
    konst_strides(&out, ost);
    for (int d = 0; d < r; d++) base += st[d] * ist[d], step[d] = sp[d] * ist[d];
    for (size_t p = 0; p < out.n; p++) konst_copy(&out, p, &data, (size_t)konst_source(p, r, ost, base, step));
    rc = konst_define(im, &out);
out0:
    konst_free(&data), konst_free(&out);
    for (int q = 0; q < 4; q++) konst_free(&ks[q]);
    return rc;
}

static int fold_transpose(importer *im) {
    if (constant_only(im)) return LOOM_ERR;
    konst k, out = {0};
    if (konst_in(im, 0, "data", &k)) return konst_free(&k), LOOM_ERR;
    int r = k.rank, rc = LOOM_ERR;
    int64_t perm[MAX_RANK];
    const Onnx__AttributeProto *a = attr(im, "perm");
    for (int d = 0; d < r; d++) perm[d] = a ? -1 : r - 1 - d;
    if (a) {
        int seen = 0;
        if ((int)a->n_ints != r) goto bad;
        for (int d = 0; d < r; d++) {
            if (a->ints[d] < 0 || a->ints[d] >= r || (seen >> a->ints[d] & 1)) goto bad;
            perm[d] = a->ints[d], seen |= 1 << a->ints[d];
        }
    }
    out.rank = r;
    for (int d = 0; d < r; d++) out.dims[d] = k.dims[perm[d]];
    if (konst_alloc(im, &out, k.fl)) goto done;
    int64_t ist[MAX_RANK], ost[MAX_RANK], step[MAX_RANK];
    konst_strides(&k, ist);
    konst_strides(&out, ost);
    for (int d = 0; d < r; d++) step[d] = ist[perm[d]];
    for (size_t p = 0; p < out.n; p++) konst_copy(&out, p, &k, (size_t)konst_source(p, r, ost, 0, step));
    rc = konst_define(im, &out);
    goto done;
bad:
    rc = BAD("perm is not a permutation of %d axes", r);
done:
    konst_free(&k), konst_free(&out);
    return rc;
}

static int fold_cast(importer *im) {
    if (constant_only(im)) return LOOM_ERR;
    konst k, out = {0};
    if (konst_in(im, 0, "input", &k)) return konst_free(&k), LOOM_ERR;
    int64_t to = attr_int(im, "to", 0);
    int fl = to == DT_FLOAT || to == DT_DOUBLE, rc = LOOM_ERR; /* float64 kept as float32: shape arithmetic */
    /* to: 1 float; 2, 3, 4, 5, 6, 7, 12, 13 the integers; 9 bool */
    if (!fl && !(to >= 2 && to <= 7) && to != 12 && to != 13 && to != 9) {
        konst_free(&k);
        return UNSUPPORTED("a cast to data type %lld: loom computes constants as float32 or integers", (long long)to);
    }
    out.rank = k.rank;
    memcpy(out.dims, k.dims, sizeof k.dims);
    if (konst_alloc(im, &out, fl)) goto done;
    for (size_t q = 0; q < k.n; q++) {
        if (fl && !k.fl && (k.i[q] == SYM_N || k.i[q] == SYM_X)) {
            rc = UNSUPPORTED("the batch size as a float");
            goto done;
        }
        if (fl) out.f[q] = k.fl ? k.f[q] : (float)k.i[q];
        else if (!k.fl) out.i[q] = to == 9 ? k.i[q] != 0 : k.i[q];
        else out.i[q] = to == 9 ? k.f[q] != 0.0f : isfinite(k.f[q]) && fabsf(k.f[q]) < 9e18f ? (int64_t)k.f[q] : 0;
    }
    rc = konst_define(im, &out);
done:
    konst_free(&k), konst_free(&out);
    return rc;
}

static int fold_constant_of_shape(importer *im) {
    if (constant_only(im)) return LOOM_ERR;
    konst s, out = {0};
    if (konst_in(im, 0, "input", &s)) return konst_free(&s), LOOM_ERR;
    int rc = LOOM_ERR;
    if (s.fl || s.rank != 1 || s.n > MAX_RANK) {
        rc = BAD("the shape must be 1-d integers (at most %d)", MAX_RANK);
        goto done;
    }
    out.rank = (int)s.n;
    for (size_t q = 0; q < s.n; q++) {
        if (s.i[q] < 0) {
            rc = s.i[q] == SYM_N || s.i[q] == SYM_X ? UNSUPPORTED("a shape that depends on the batch size")
                                                     : BAD("dimension %zu is %lld", q, (long long)s.i[q]);
            goto done;
        }
        out.dims[q] = s.i[q];
    }
    const Onnx__AttributeProto *a = attr(im, "value");
    const Onnx__TensorProto *t = a ? a->t : NULL;
    int fl = !t || t->data_type == DT_FLOAT;
    if (t && t->data_type != DT_FLOAT && t->data_type != DT_INT64 && t->data_type != DT_INT32) {
        rc = UNSUPPORTED("a value of data type %d", (int)t->data_type);
        goto done;
    }
    if (konst_alloc(im, &out, fl)) goto done;
    double v = 0;
    if (t) {
        int64_t n = tensor_count(t);
        if (n != 1) {
            rc = BAD("the value must hold one element, not %lld", (long long)n);
            goto done;
        }
        if (t->data_type == DT_FLOAT) {
            float f;
            if (t->n_float_data) f = t->float_data[0];
            else if (tensor_bytes(im, t, "value", &f, sizeof f)) goto done;
            v = f;
        } else if (t->data_type == DT_INT64) {
            int64_t i;
            if (t->n_int64_data) i = t->int64_data[0];
            else if (tensor_bytes(im, t, "value", &i, sizeof i)) goto done;
            v = (double)i;
        } else {
            int32_t i;
            if (t->n_int32_data) i = t->int32_data[0];
            else if (tensor_bytes(im, t, "value", &i, sizeof i)) goto done;
            v = i;
        }
    }
    for (size_t q = 0; q < out.n; q++) {
        if (fl) out.f[q] = (float)v;
        else out.i[q] = (int64_t)v;
    }
    rc = konst_define(im, &out);
done:
    konst_free(&s), konst_free(&out);
    return rc;
}

/* Add/Sub/Mul/Div of two constants, numpy broadcasting. */
static int fold_arith(importer *im, int kind) {
    konst a, b = {0}, out = {0};
    int rc = LOOM_ERR;
    if (konst_in(im, 0, "A", &a) || konst_in(im, 1, "B", &b)) goto done;
    if (a.fl != b.fl) {
        rc = BAD("operands of two data types");
        goto done;
    }
    out.rank = a.rank > b.rank ? a.rank : b.rank;
    int64_t ad[MAX_RANK], bd[MAX_RANK];
    for (int d = 0; d < out.rank; d++) {
        int ia = d - (out.rank - a.rank), ib = d - (out.rank - b.rank);
        ad[d] = ia >= 0 ? a.dims[ia] : 1, bd[d] = ib >= 0 ? b.dims[ib] : 1;
        if (ad[d] != bd[d] && ad[d] != 1 && bd[d] != 1) {
            rc = BAD("constants of shapes that do not broadcast");
            goto done;
        }
        out.dims[d] = ad[d] == 1 ? bd[d] : ad[d];
    }
    if (konst_alloc(im, &out, a.fl)) goto done;
    int64_t ost[MAX_RANK], as[MAX_RANK], bs[MAX_RANK], ea = 1, eb = 1;
    konst_strides(&out, ost);
    for (int d = out.rank - 1; d >= 0; d--) {
        as[d] = ad[d] == 1 ? 0 : ea, bs[d] = bd[d] == 1 ? 0 : eb;
        ea *= ad[d], eb *= bd[d];
    }
    for (size_t p = 0; p < out.n; p++) {
        int64_t qa = konst_source(p, out.rank, ost, 0, as), qb = konst_source(p, out.rank, ost, 0, bs);
        if (a.fl) {
            float u = a.f[qa], v = b.f[qb];
            out.f[p] = kind == AR_ADD ? u + v : kind == AR_SUB ? u - v : kind == AR_MUL ? u * v : u / v;
            continue;
        }
        int64_t u = a.i[qa], v = b.i[qb];
        if (u == SYM_N || u == SYM_X || v == SYM_N || v == SYM_X) {
            out.i[p] = SYM_X;
        } else if (kind == AR_DIV && v == 0) {
            rc = BAD("an integer division by zero");
            goto done;
        } else {
            out.i[p] = kind == AR_ADD ? u + v : kind == AR_SUB ? u - v : kind == AR_MUL ? u * v : u / v;
        }
    }
    rc = konst_define(im, &out);
done:
    konst_free(&a), konst_free(&b), konst_free(&out);
    return rc;
}

/* Whether every input of the node is a constant (at least one input). */
static int all_constant(importer *im) {
    int any = 0;
    for (size_t k = 0; k < im->node->n_input; k++) {
        if (!im->node->input[k] || !*im->node->input[k]) continue;
        value *v = find(im, im->node->input[k]);
        if (!v || v->node >= 0) return 0;
        any = 1;
    }
    return any;
}

/* Padding [top, left, bottom, right] from ONNX pads or auto_pad, plus extra (a Pad before). */
static int pads4(importer *im, int h, int w, int kh, int kw, int sh, int sw, int dh, int dw, const int *extra, int *pd) {
    char buf[32];
    const char *ap = attr_string(im, "auto_pad", "NOTSET", buf, sizeof buf);
    int64_t p[4];
    if (!strcmp(ap, "NOTSET")) {
        if (attr_ints(im, "pads", 4, p, 0)) return LOOM_ERR;
    } else if (!strcmp(ap, "VALID")) {
        p[0] = p[1] = p[2] = p[3] = 0;
    } else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        int in[2] = {h, w}, k[2] = {kh, kw}, s[2] = {sh, sw}, d[2] = {dh, dw};
        for (int a = 0; a < 2; a++) {
            int o = (in[a] + s[a] - 1) / s[a];
            int total = (o - 1) * s[a] + (k[a] - 1) * d[a] + 1 - in[a];
            if (total < 0) total = 0;
            int small = total / 2, big = total - small;
            int upper = !strcmp(ap, "SAME_UPPER");
            p[a] = upper ? small : big, p[a + 2] = upper ? big : small;
        }
    } else {
        return BAD("auto_pad \"%s\" is not NOTSET, VALID, SAME_UPPER or SAME_LOWER", ap);
    }
    for (int k = 0; k < 4; k++) {
        if (extra) p[k] += extra[k];
        if (p[k] < 0 || p[k] > 1 << 16) return BAD("padding %lld", (long long)p[k]);
        pd[k] = (int)p[k];
    }
    return LOOM_OK;
}

/* Padding pd split: the part alike on both sides (*ph, *pw) and the rest, which a pad layer before
 * adds (filled with fill); x's node becomes that layer. */
static int split_pads(importer *im, value *x, const int *pd, int *ph, int *pw, float fill, loom_node *xn) {
    *ph = pd[0] < pd[2] ? pd[0] : pd[2];
    *pw = pd[1] < pd[3] ? pd[1] : pd[3];
    *xn = x->node;
    int e[4] = {pd[0] - *ph, pd[1] - *pw, pd[2] - *ph, pd[3] - *pw};
    if (!(e[0] | e[1] | e[2] | e[3])) return LOOM_OK;
    loom_node y = loom_pad2d(im->g, x->node, e[0], e[1], e[2], e[3], fill);
    if (y < 0) return node_fail(im, LOOM_EUNSUPPORTED, "%s", loom_graph_error(im->g));
    *xn = y;
    return LOOM_OK;
}

static int op_conv(importer *im) {
    value *x = input(im, 0, 1, "X"), *W = x ? input(im, 1, 0, "W") : NULL, *B = NULL;
    if (!W) return LOOM_ERR;
    if (has_input(im, 2) && !(B = input(im, 2, 0, "B"))) return LOOM_ERR;
    if (x->rank != 4) return UNSUPPORTED("a %d-d input: loom convolves images [N, C, H, W]", x->rank);
    const Onnx__TensorProto *wt = W->t;
    char d[96];
    if (wt->n_dims != 4) return UNSUPPORTED("weights %s %s: loom has 2-d convolutions", W->name, dims_str(wt, d, sizeof d));
    const loom_layer *xl = layer(im, x);
    int64_t group = attr_int(im, "group", 1), ks[2], st[2], dl[2];
    if (attr_ints(im, "kernel_shape", 2, ks, -1) || attr_ints(im, "strides", 2, st, 1) ||
        attr_ints(im, "dilations", 2, dl, 1))
        return LOOM_ERR;
    if (ks[0] < 0) ks[0] = wt->dims[2], ks[1] = wt->dims[3];
    if (ks[0] != wt->dims[2] || ks[1] != wt->dims[3])
        return BAD("kernel_shape %lldx%lld, weights %s", (long long)ks[0], (long long)ks[1], dims_str(wt, d, sizeof d));
    if (group < 1 || xl->c % group || wt->dims[0] % group || wt->dims[1] * group != xl->c)
        return BAD("weights %s with group %lld on %d input channels", dims_str(wt, d, sizeof d), (long long)group, xl->c);
    for (int a = 0; a < 2; a++)
        if (st[a] < 1 || dl[a] < 1 || st[a] > 1 << 16 || dl[a] > 1 << 16 || ks[a] < 1 || ks[a] > 1 << 16)
            return BAD("stride %lld, dilation %lld, kernel %lld", (long long)st[a], (long long)dl[a], (long long)ks[a]);
    loom_conv_shape sh = {.oc = (int)wt->dims[0], .kh = (int)ks[0], .kw = (int)ks[1], .sh = (int)st[0], .sw = (int)st[1],
                          .dh = (int)dl[0], .dw = (int)dl[1], .groups = (int)group};
    int pd[4];
    loom_node xn;
    if (pads4(im, xl->h, xl->w, sh.kh, sh.kw, sh.sh, sh.sw, sh.dh, sh.dw, x->pad, pd)) return LOOM_ERR;
    if (B && (B->t->n_dims != 1 || B->t->dims[0] != sh.oc))
        return BAD("bias %s for %d output channels", dims_str(B->t, d, sizeof d), sh.oc);
    /* padding unlike on two sides (SAME of an even kernel, a ZeroPad2d): a zero pad layer takes the difference */
    if (split_pads(im, x, pd, &sh.ph, &sh.pw, 0.0f, &xn)) return LOOM_ERR;
    loom_node y = loom_conv2d_ex(im->g, xn, &sh, B != NULL);
    if (y < 0) return out_node(im, y, 4);
    pending *p = add_pending(im, y);
    size_t n;
    if (!p || !(p->w = tensor_floats(im, wt, W->name, &n))) return LOOM_ERR;
    if (B && !(p->b = tensor_floats(im, B->t, B->name, &n))) return LOOM_ERR;
    return out_node(im, y, 4);
}

/* Gemm: Y = alpha A B + beta C with A an activation [N, in], B [in, out] (or [out, in] with transB). */
static int op_gemm(importer *im, int matmul) {
    value *a = input(im, 0, 1, "A"), *B = a ? input(im, 1, 0, "B") : NULL, *C = NULL;
    if (!B) return LOOM_ERR;
    if (!matmul && has_input(im, 2) && !(C = input(im, 2, 0, "C"))) return LOOM_ERR;
    if (a->rank != 2) return UNSUPPORTED("a %d-d input: loom's dense layer takes [N, features] (Flatten first)", a->rank);
    if (!matmul && attr_int(im, "transA", 0))
        return UNSUPPORTED("transA = 1 transposes the activations [N, F]: the batch would become features (loom computes "
                           "each sample on its own)");
    int transB = matmul ? 0 : (int)attr_int(im, "transB", 0);
    float alpha = matmul ? 1.0f : attr_float(im, "alpha", 1.0f), beta = matmul ? 1.0f : attr_float(im, "beta", 1.0f);
    const Onnx__TensorProto *bt = B->t;
    char d[96];
    if (bt->n_dims != 2) return UNSUPPORTED("B %s: loom's dense layer has a 2-d weight", dims_str(bt, d, sizeof d));
    int64_t in = transB ? bt->dims[1] : bt->dims[0], out = transB ? bt->dims[0] : bt->dims[1];
    const loom_layer *al = layer(im, a);
    if ((int64_t)al->size != in) return BAD("B %s%s takes %lld features, the input has %zu", dims_str(bt, d, sizeof d),
                                            transB ? " (transposed)" : "", (long long)in, al->size);
    if (out < 1 || out > INT_MAX) return BAD("B %s", dims_str(bt, d, sizeof d));
    size_t cn = 0;
    float *cv = NULL;
    if (C) {
        if (!(cv = tensor_floats(im, C->t, C->name, &cn))) return LOOM_ERR;
        if (cn != 1 && (int64_t)cn != out) {
            free(cv);
            return UNSUPPORTED("C %s: loom's dense bias is one value per output (%lld) or one for all",
                               dims_str(C->t, d, sizeof d), (long long)out);
        }
    }
    loom_node y = loom_dense(im->g, a->node, (int)out);
    pending *p = y >= 0 ? add_pending(im, y) : NULL;
    size_t n;
    float *w = p ? tensor_floats(im, bt, B->name, &n) : NULL;
    if (!w) {
        free(cv);
        return y < 0 ? out_node(im, y, 2) : LOOM_ERR;
    }
    /* loom's dense weight is [out, in] */
    if (transB) {
        p->w = w;
    } else {
        p->w = malloc(n * sizeof(float));
        if (!p->w) {
            free(w), free(cv);
            return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
        }
        for (int64_t i = 0; i < in; i++)
            for (int64_t o = 0; o < out; o++) p->w[o * in + i] = w[i * out + o];
        free(w);
    }
    for (size_t k = 0; k < n; k++) p->w[k] *= alpha;
    p->b = calloc((size_t)out, sizeof(float));
    if (!p->b) {
        free(cv);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    }
    for (int64_t o = 0; cv && o < out; o++) p->b[o] = beta * cv[cn == 1 ? 0 : o];
    free(cv);
    return out_node(im, y, 2);
}

/* How many node inputs read the tensor name (a graph output counts too). */
static int uses_of(const importer *im, const char *name) {
    const Onnx__GraphProto *gp = im->m->graph;
    int n = 0;
    for (size_t k = 0; k < gp->n_node; k++)
        for (size_t q = 0; q < gp->node[k]->n_input; q++) n += gp->node[k]->input[q] && !strcmp(gp->node[k]->input[q], name);
    for (size_t k = 0; k < gp->n_output; k++) n += gp->output[k]->name && !strcmp(gp->output[k]->name, name);
    return n;
}

/* The weights pending for loom node x, when x is the last layer so far and
 * only one node reads it: a layer the current node can fold into. */
static pending *foldable(importer *im, const value *x) {
    if (x->node != loom_graph_count(im->g) - 1 || uses_of(im, x->name) != 1) return NULL;
    for (int k = 0; k < im->np; k++)
        if (im->p[k].node == x->node) return &im->p[k];
    return NULL;
}

/* Constant c broadcast to one sample of activation x ([C, H, W] or [F]):
 * malloc'd, x's size, or NULL after an error. Numpy broadcasting (opset 7
 * on), or the legacy broadcast/axis attributes before. */
static float *broadcast(importer *im, const value *x, const value *c) {
    const loom_layer *xl = layer(im, x);
    char d[96];
    int r = x->rank, kd = (int)c->t->n_dims;
    int64_t S[4] = {1, xl->c, xl->h, xl->w}, A[4] = {1, 1, 1, 1};
    if (r == 2) S[1] = (int64_t)xl->size;
    if (r != 2 && r != 4) {
        UNSUPPORTED("a constant broadcast over a %d-d tensor: loom broadcasts over [N, C, H, W] or [N, F]", r);
        return NULL;
    }
    int start = r - kd;
    if (im->opset < 7) {
        if (!attr_int(im, "broadcast", 0) && kd != 0) {
            UNSUPPORTED("a constant %s without broadcast = 1 (legacy): it would need the batch size", dims_str(c->t, d, sizeof d));
            return NULL;
        }
        if (attr(im, "axis")) start = (int)attr_int(im, "axis", 0);
    }
    if (start < 0 || start + kd > r) {
        UNSUPPORTED("a constant %s does not broadcast to a %d-d tensor", dims_str(c->t, d, sizeof d), r);
        return NULL;
    }
    for (int k = 0; k < kd; k++) A[start + k] = c->t->dims[k];
    for (int k = 0; k < r; k++)
        if (A[k] != 1 && (k == 0 || A[k] != S[k])) {
            UNSUPPORTED("a constant %s does not broadcast to one sample of %s", dims_str(c->t, d, sizeof d),
                        r == 4 ? "[N, C, H, W]" : "[N, F]");
            return NULL;
        }
    size_t n;
    float *cv = tensor_floats(im, c->t, c->name, &n);
    if (!cv) return NULL;
    float *out = malloc(xl->size * sizeof(float));
    if (!out) {
        free(cv);
        loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
        return NULL;
    }
    /* strides of the constant over the sample's axes, 0 where it is broadcast */
    int64_t st[4] = {0, 0, 0, 0}, acc = 1;
    for (int k = r - 1; k >= 1; k--) {
        st[k] = A[k] == 1 ? 0 : acc;
        acc *= A[k];
    }
    if (r == 2) {
        for (int64_t i = 0; i < S[1]; i++) out[i] = cv[i * st[1]];
    } else {
        size_t q = 0;
        for (int64_t ch = 0; ch < S[1]; ch++)
            for (int64_t y = 0; y < S[2]; y++)
                for (int64_t xx = 0; xx < S[3]; xx++) out[q++] = cv[ch * st[1] + y * st[2] + xx * st[3]];
    }
    free(cv);
    return out;
}


/* Add/Sub/Mul/Div. Two activations: Add of one shape. An activation and a
 * constant: a dense layer's bias (after MatMul or Gemm), else a frozen
 * element-wise scale layer y = x w + b, folded into the scale layer before
 * it where there is one (an input normalisation (x - mean) / std is one layer). */
static int op_arith(importer *im, int kind) {
    static const char *const names[] = {"adding", "subtracting", "multiplying", "dividing"};
    value *a = input(im, 0, -1, "A"), *b = a ? input(im, 1, -1, "B") : NULL;
    if (!b) return LOOM_ERR;
    if (a->node >= 0 && b->node >= 0) {
        const loom_layer *la = layer(im, a), *lb = layer(im, b);
        int same = la->c == lb->c && la->h == lb->h && la->w == lb->w;
        if (a->rank != b->rank || (a->rank > 4 && !same))
            return UNSUPPORTED("%s activations of ranks %d and %d: loom broadcasts between activations of one rank up "
                               "to 4, the batch first in both", names[kind], a->rank, b->rank);
        if (kind == AR_ADD && same) return out_node(im, loom_add(im->g, a->node, b->node), a->rank);
        static const loom_arith_kind kinds[] = {LOOM_ARITH_ADD, LOOM_ARITH_SUB, LOOM_ARITH_MUL, LOOM_ARITH_DIV};
        return out_node(im, loom_arith(im->g, kinds[kind], a->node, b->node), a->rank);
    }
    if (a->node < 0 && b->node < 0) return fold_arith(im, kind);
    int xfirst = a->node >= 0;
    value *x = xfirst ? a : b, *c = xfirst ? b : a;
    if (kind == AR_DIV && !xfirst) return UNSUPPORTED("a constant divided by an activation: loom has no reciprocal layer");
    const loom_layer *xl = layer(im, x);
    pending *p = foldable(im, x);
    /* a bias after MatMul or Gemm */
    if (p && xl->op == LOOM_OP_DENSE && x->rank == 2 && (kind == AR_ADD || (kind == AR_SUB && xfirst))) {
        float *cv = broadcast(im, x, c);
        if (!cv) return LOOM_ERR;
        for (int o = 0; o < xl->c; o++) p->b[o] += kind == AR_ADD ? cv[o] : -cv[o];
        free(cv);
        return define(im, im->node->output[0], x->node, x->rank, NULL);
    }
    float *cv = broadcast(im, x, c);
    if (!cv) return LOOM_ERR;
    size_t n = xl->size;
    float *w = malloc(n * sizeof(float)), *bb = malloc(n * sizeof(float));
    if (!w || !bb) {
        free(cv), free(w), free(bb);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    }
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case AR_ADD: w[i] = 1, bb[i] = cv[i]; break;
        case AR_SUB: w[i] = xfirst ? 1.0f : -1.0f, bb[i] = xfirst ? -cv[i] : cv[i]; break;
        case AR_MUL: w[i] = cv[i], bb[i] = 0; break;
        default: w[i] = 1.0f / cv[i], bb[i] = 0; break;
        }
    }
    free(cv);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) {
            free(w), free(bb);
            return BAD("dividing by a constant that is 0 at element %zu", i);
        }
    if (p && xl->op == LOOM_OP_SCALE) { /* y = (x w1 + b1) w + b */
        for (size_t i = 0; i < n; i++) {
            p->b[i] = p->b[i] * w[i] + bb[i];
            p->w[i] *= w[i];
        }
        free(w), free(bb);
        return define(im, im->node->output[0], x->node, x->rank, NULL);
    }
    loom_node y = loom_scale(im->g, x->node);
    pending *q = y >= 0 ? add_pending(im, y) : NULL;
    if (!q) {
        free(w), free(bb);
        return y < 0 ? out_node(im, y, x->rank) : LOOM_ERR;
    }
    loom_graph_set_frozen(im->g, y, 1); /* constants of the model, not weights to learn */
    q->w = w, q->b = bb;
    return out_node(im, y, x->rank);
}

static int op_pool(importer *im, int max) {
    value *x = input(im, 0, 1, "X");
    if (!x) return LOOM_ERR;
    if (x->rank != 4) return UNSUPPORTED("a %d-d input: loom pools images [N, C, H, W]", x->rank);
    if (im->node->n_output > 1 && im->node->output[1] && *im->node->output[1])
        return UNSUPPORTED("the Indices output: loom's max pool does not give indices");
    const loom_layer *xl = layer(im, x);
    int64_t ks[2], st[2], dl[2];
    if (attr_ints(im, "kernel_shape", 2, ks, -1) || attr_ints(im, "strides", 2, st, 1) ||
        attr_ints(im, "dilations", 2, dl, 1))
        return LOOM_ERR;
    if (ks[0] < 1 || ks[1] < 1 || ks[0] > xl->h + 65536 || ks[1] > xl->w + 65536) return BAD("kernel_shape missing or out of range");
    if (dl[0] != 1 || dl[1] != 1) return UNSUPPORTED("dilations %lld, %lld: loom pools without dilation", (long long)dl[0], (long long)dl[1]);
    if (st[0] < 1 || st[1] < 1 || st[0] > 65536 || st[1] > 65536) return BAD("strides %lld, %lld", (long long)st[0], (long long)st[1]);
    int ph, pw, pd[4];
    if (pads4(im, xl->h, xl->w, (int)ks[0], (int)ks[1], (int)st[0], (int)st[1], 1, 1, NULL, pd)) return LOOM_ERR;
    int ceil_mode = (int)attr_int(im, "ceil_mode", 0), cip = (int)attr_int(im, "count_include_pad", 0);
    int asym = pd[0] != pd[2] || pd[1] != pd[3];
    /* an average over more padding at the bottom and right that is not counted is ceil_mode over the top and left
     * padding, when the output sizes agree (PyTorch writes ceil_mode so before opset 10) */
    int as_ceil = asym && !max && !cip && !ceil_mode && pd[2] >= pd[0] && pd[3] >= pd[1];
    if (as_ceil) {
        int oh = (xl->h + pd[0] + pd[2] - (int)ks[0]) / (int)st[0] + 1, ow = (xl->w + pd[1] + pd[3] - (int)ks[1]) / (int)st[1] + 1;
        loom_node y = loom_avgpool2d_ex(im->g, x->node, (int)ks[0], (int)ks[1], (int)st[0], (int)st[1], pd[0], pd[1], 0);
        if (y >= 0 && !loom_graph_set_pool_ceil(im->g, y) && loom_graph_layer(im->g, y)->h == oh &&
            loom_graph_layer(im->g, y)->w == ow)
            return out_node(im, y, 4);
        if (y < 0) return out_node(im, y, 4);
        return UNSUPPORTED("padding top %d, left %d, bottom %d, right %d, not counted: loom averages with padding alike "
                           "on both sides, or as ceil_mode", pd[0], pd[1], pd[2], pd[3]);
    }
    if (asym && !max && (!cip || ceil_mode))
        return UNSUPPORTED("padding top %d, left %d, bottom %d, right %d: loom averages with padding alike on both sides "
                           "(or unlike, when the padding counts and ceil_mode is off)", pd[0], pd[1], pd[2], pd[3]);
    /* the difference between the sides: a pad layer of the lowest float (max) or of zeros counted in the average */
    loom_node xn, y;
    if (split_pads(im, x, pd, &ph, &pw, max ? -FLT_MAX : 0.0f, &xn)) return LOOM_ERR;
    if (max) y = loom_maxpool2d_ex(im->g, xn, (int)ks[0], (int)ks[1], (int)st[0], (int)st[1], ph, pw);
    else y = loom_avgpool2d_ex(im->g, xn, (int)ks[0], (int)ks[1], (int)st[0], (int)st[1], ph, pw, cip);
    if (y >= 0 && ceil_mode && loom_graph_set_pool_ceil(im->g, y)) return UNSUPPORTED("%s", loom_error());
    return out_node(im, y, 4);
}

static int op_batchnorm(importer *im) {
    value *x = input(im, 0, 1, "X");
    value *s = x ? input(im, 1, 0, "scale") : NULL, *b = s ? input(im, 2, 0, "B") : NULL;
    value *mean = b ? input(im, 3, 0, "mean") : NULL, *var = mean ? input(im, 4, 0, "var") : NULL;
    if (!var) return LOOM_ERR;
    if (attr_int(im, "training_mode", 0) || (im->node->n_output > 1 && im->node->output[1] && *im->node->output[1]))
        return UNSUPPORTED("training mode (running statistics as outputs): import the inference graph");
    if (x->rank != 4 && x->rank != 2) return UNSUPPORTED("a %d-d input: loom normalizes channels of [N, C, H, W] or features of [N, F]", x->rank);
    if (im->opset < 9 && attr_int(im, "spatial", 1) != 1) return UNSUPPORTED("spatial = 0 (statistics per position)");
    const int C = layer(im, x)->c; /* not a pointer: adding a layer moves the layers */
    loom_node y = loom_batchnorm(im->g, x->node);
    if (y < 0) return out_node(im, y, x->rank);
    float eps = attr_float(im, "epsilon", 1e-5f), mom = attr_float(im, "momentum", 0.9f);
    if (!(eps > 0) || !(mom >= 0 && mom <= 1)) return BAD("epsilon %g, momentum %g", (double)eps, (double)mom);
    loom_graph_set_batchnorm(im->g, y, eps, 1.0f - mom); /* ONNX keeps momentum of the old value; loom, PyTorch, of the new */
    pending *p = add_pending(im, y);
    if (!p) return LOOM_ERR;
    value *vs[4] = {s, b, mean, var};
    float **dst[4] = {&p->w, &p->b, &p->mean, &p->var};
    for (int k = 0; k < 4; k++) {
        size_t n;
        if (!(*dst[k] = tensor_floats(im, vs[k]->t, vs[k]->name, &n))) return LOOM_ERR;
        if (n != (size_t)C) return BAD("%s has %zu values for %d channels", vs[k]->name, n, C);
    }
    for (int c = 0; c < C; c++)
        if (p->var[c] < 0) return BAD("%s: channel %d has variance %g", var->name, c, (double)p->var[c]);
    return out_node(im, y, x->rank);
}

/* Flatten at axis 1: everything but the batch. */
static int op_flatten(importer *im) {
    value *x = input(im, 0, 1, "input");
    if (!x) return LOOM_ERR;
    int64_t axis = attr_int(im, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis != 1)
        return UNSUPPORTED("axis %lld: the batch would merge with %s (loom computes each sample on its own; it flattens "
                           "at axis 1)", (long long)attr_int(im, "axis", 1), axis < 1 ? "the features" : "other dimensions");
    if (x->rank == 2) return define(im, im->node->output[0], x->node, 2, NULL); /* already [N, F] */
    return out_node(im, loom_flatten(im->g, x->node), 2);
}

/* ReduceMean over the image's height and width: a global average pool. */
static int op_reduce_mean(importer *im) {
    value *x = input(im, 0, 1, "data");
    if (!x) return LOOM_ERR;
    int64_t ax[MAX_RANK];
    int n = axes_raw(im, ax, 1, 1); /* an attribute up to opset 17 */
    if (n < 0) return LOOM_ERR;
    if (x->rank != 4 || n != 2 || axes_norm(im, ax, 2, 4) || ax[0] + ax[1] != 5)
        return UNSUPPORTED("a mean over %s of a %d-d tensor: loom averages [N, C, H, W] over H and W (a global pool)",
                           n ? "other axes" : "all axes", x->rank);
    int keep = (int)attr_int(im, "keepdims", 1);
    return out_node(im, loom_global_avgpool(im->g, x->node), keep ? 4 : 2);
}

static int op_softmax(importer *im, int log) {
    value *x = input(im, 0, 1, "input");
    if (!x) return LOOM_ERR;
    int64_t axis = attr_int(im, "axis", im->opset >= 13 ? -1 : 1);
    /* before opset 13 the input is taken as 2-d [N, everything after axis]: axis 1 is over all features */
    int whole = x->rank == 2 ? (axis == 1 || axis == -1) : (im->opset < 13 && axis == 1);
    if (!whole)
        return UNSUPPORTED("softmax over axis %lld of a %d-d tensor: loom's softmax runs over the features of [N, F]",
                           (long long)axis, x->rank);
    return out_node(im, log ? loom_log_softmax(im->g, x->node) : loom_softmax(im->g, x->node), x->rank);
}

static int op_dropout(importer *im) {
    value *x = input(im, 0, 1, "data");
    if (!x) return LOOM_ERR;
    float p = attr_float(im, "ratio", 0.5f);
    if (im->opset >= 12 && has_input(im, 1)) {
        value *r = input(im, 1, 0, "ratio");
        size_t n;
        float *v = r ? tensor_floats(im, r->t, r->name, &n) : NULL;
        if (!v) return LOOM_ERR;
        p = n == 1 ? v[0] : -1;
        free(v);
    }
    if (has_input(im, 2)) return UNSUPPORTED("a training_mode input: loom drops out in training only, by itself");
    if (!(p >= 0 && p < 1)) return BAD("ratio %g is not in [0, 1)", (double)p);
    if (im->node->n_output > 1 && im->node->output[1] && *im->node->output[1])
        return UNSUPPORTED("the mask output is read: loom's dropout does not give it");
    return out_node(im, loom_dropout(im->g, x->node, p), x->rank);
}

/* Concat along channels (features); more inputs than a loom layer takes go through a chain of them
 * (each concatenation after the first starts with the one before: the order is kept). */
static int op_concat(importer *im) {
    int64_t axis = attr_int(im, "axis", 1);
    int n = (int)im->node->n_input, rank = 0;
    if (n < 1 || n > 65536) return UNSUPPORTED("%d inputs", n);
    loom_node *xs = malloc((size_t)n * sizeof *xs);
    if (!xs) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    for (int k = 0; k < n; k++) {
        value *v = input(im, k, 1, "input");
        if (!v) return free(xs), LOOM_ERR;
        if (k && v->rank != rank) return free(xs), UNSUPPORTED("inputs of ranks %d and %d", rank, v->rank);
        xs[k] = v->node, rank = v->rank;
    }
    if (axis != 1 && !(axis == 1 - rank)) {
        free(xs);
        return UNSUPPORTED("axis %lld: loom concatenates channels or features (axis 1)", (long long)axis);
    }
    if (n == 1) {
        loom_node x = xs[0];
        free(xs);
        return define(im, im->node->output[0], x, rank, NULL);
    }
    loom_node y = -1, part[LOOM_MAX_INPUTS];
    for (int at = 0; at < n;) {
        int k = 0;
        if (at) part[k++] = y;
        while (k < LOOM_MAX_INPUTS && at < n) part[k++] = xs[at++];
        y = loom_concat(im->g, k, part);
        if (y < 0 || at == n) break;
    }
    free(xs);
    return out_node(im, y, rank);
}

/* Clip: a ReLU for [0, +inf), else loom's clip layer. */
static int op_clip(importer *im) {
    value *x = input(im, 0, 1, "input");
    if (!x) return LOOM_ERR;
    float lo = attr_float(im, "min", -INFINITY), hi = attr_float(im, "max", INFINITY);
    for (int k = 1; k <= 2 && im->opset >= 11; k++) {
        if (!has_input(im, k)) continue;
        value *c = input(im, k, 0, k == 1 ? "min" : "max");
        size_t n;
        float *v = c ? tensor_floats(im, c->t, c->name, &n) : NULL;
        if (!v) return LOOM_ERR;
        if (n != 1) {
            free(v);
            return UNSUPPORTED("a %s bound of %zu values", k == 1 ? "min" : "max", n);
        }
        *(k == 1 ? &lo : &hi) = v[0];
        free(v);
    }
    if (!(lo <= hi)) return BAD("min %g above max %g", (double)lo, (double)hi);
    if (lo == 0.0f && isinf(hi)) return out_node(im, loom_relu(im->g, x->node), x->rank);
    /* an open side is the largest float (loom keeps finite bounds) */
    return out_node(im, loom_clip(im->g, x->node, isinf(lo) ? -FLT_MAX : lo, isinf(hi) ? FLT_MAX : hi), x->rank);
}

/* Pad of the image's sides by a constant: carried to the node that reads it (a Conv takes zeros into its own
 * padding; others get a pad layer before them). */
static int op_pad(importer *im) {
    value *x = input(im, 0, 1, "data");
    if (!x) return LOOM_ERR;
    char buf[32];
    const char *mode = attr_string(im, "mode", "constant", buf, sizeof buf);
    if (strcmp(mode, "constant")) return UNSUPPORTED("mode \"%s\": loom pads with a constant", mode);
    if (x->rank != 4) return UNSUPPORTED("padding a %d-d tensor", x->rank);
    int64_t p[8];
    float fill = attr_float(im, "value", 0.0f);
    if (im->opset < 11) {
        const Onnx__AttributeProto *a = attr(im, "pads");
        if (!a || a->n_ints != 8) return BAD("attribute pads must have 8 values for a 4-d input");
        for (int k = 0; k < 8; k++) p[k] = a->ints[k];
    } else {
        value *pv = input(im, 1, 0, "pads");
        if (!pv) return LOOM_ERR;
        int n = tensor_ints(im, pv->t, pv->name, p, 8);
        if (n < 0) return LOOM_ERR;
        if (n != 8) return BAD("pads has %d values, a 4-d input needs 8", n);
        if (has_input(im, 2)) {
            value *cv = input(im, 2, 0, "constant_value");
            size_t cn;
            float *v = cv ? tensor_floats(im, cv->t, cv->name, &cn) : NULL;
            if (!v) return LOOM_ERR;
            fill = cn == 1 ? v[0] : NAN;
            free(v);
        }
        if (has_input(im, 3)) return UNSUPPORTED("an axes input");
    }
    if (!isfinite(fill)) return UNSUPPORTED("padding with %g: loom pads with a finite value", (double)fill);
    if (p[0] || p[1] || p[4] || p[5]) return UNSUPPORTED("padding the batch or the channels");
    for (int k = 0; k < 8; k++)
        if (p[k] < 0 || p[k] > 1 << 16) return UNSUPPORTED("a pad of %lld (cropping)", (long long)p[k]);
    int pad[4] = {(int)p[2], (int)p[3], (int)p[6], (int)p[7]}; /* x's own was made a layer by input() */
    if (!(pad[0] | pad[1] | pad[2] | pad[3])) return define(im, im->node->output[0], x->node, 4, NULL);
    if (define(im, im->node->output[0], x->node, 4, NULL)) return LOOM_ERR; /* x may move */
    memcpy(im->v[im->nv - 1].pad, pad, sizeof pad);
    im->v[im->nv - 1].fill = fill;
    return LOOM_OK;
}

static int op_constant(importer *im) {
    const Onnx__AttributeProto *a = attr(im, "value");
    if (a && a->t) return define(im, im->node->output[0], -1, 0, a->t);
    konst k = {0};
    if ((a = attr(im, "value_float")) && a->has_f) {
        if (konst_alloc(im, &k, 1)) return LOOM_ERR; /* rank 0: one value */
        k.f[0] = a->f;
    } else if ((a = attr(im, "value_int")) && a->has_i) {
        if (konst_alloc(im, &k, 0)) return LOOM_ERR;
        k.i[0] = a->i;
    } else if ((a = attr(im, "value_floats")) || (a = attr(im, "value_ints"))) {
        int fl = !strcmp(a->name, "value_floats");
        k.rank = 1, k.dims[0] = (int64_t)(fl ? a->n_floats : a->n_ints);
        if (konst_alloc(im, &k, fl)) return LOOM_ERR;
        for (size_t q = 0; q < k.n; q++) {
            if (fl) k.f[q] = a->floats[q];
            else k.i[q] = a->ints[q];
        }
    } else {
        return UNSUPPORTED("a Constant without a value loom reads (value, value_float(s), value_int(s))");
    }
    return konst_define(im, &k);
}

static int op_unary(importer *im, loom_op op) {
    value *x = input(im, 0, 1, "X");
    if (!x) return LOOM_ERR;
    loom_node y;
    switch (op) {
    case LOOM_OP_RELU: y = loom_relu(im->g, x->node); break;
    case LOOM_OP_SIGMOID: y = loom_sigmoid(im->g, x->node); break;
    case LOOM_OP_TANH: y = loom_tanh(im->g, x->node); break;
    default: y = loom_leaky_relu(im->g, x->node, attr_float(im, "alpha", 0.01f)); break;
    }
    return out_node(im, y, x->rank);
}

static int op_global_avgpool(importer *im) {
    value *x = input(im, 0, 1, "X");
    if (!x) return LOOM_ERR;
    if (x->rank != 4) return UNSUPPORTED("a %d-d input", x->rank);
    /* loom's layer gives C features; ONNX's [N, C, 1, 1] holds the same values in the same order */
    return out_node(im, loom_global_avgpool(im->g, x->node), 4);
}

static int map_node(importer *im) {
    const char *op = im->node->op_type ? im->node->op_type : "";
    if (im->node->domain && *im->node->domain && strcmp(im->node->domain, "ai.onnx"))
        return UNSUPPORTED("operator domain \"%s\": loom reads the default ONNX domain", im->node->domain);
    if (!strcmp(op, "Conv")) return op_conv(im);
    if (!strcmp(op, "Gemm")) return op_gemm(im, 0);
    if (!strcmp(op, "MatMul")) return op_gemm(im, 1);
    if (!strcmp(op, "Add")) return op_arith(im, AR_ADD);
    if (!strcmp(op, "Sub")) return op_arith(im, AR_SUB);
    if (!strcmp(op, "Mul")) return op_arith(im, AR_MUL);
    if (!strcmp(op, "Div")) return op_arith(im, AR_DIV);
    if (!strcmp(op, "LogSoftmax")) return op_softmax(im, 1);
    if (!strcmp(op, "Relu")) return op_unary(im, LOOM_OP_RELU);
    if (!strcmp(op, "LeakyRelu")) return op_unary(im, LOOM_OP_LEAKY_RELU);
    if (!strcmp(op, "Sigmoid")) return op_unary(im, LOOM_OP_SIGMOID);
    if (!strcmp(op, "Tanh")) return op_unary(im, LOOM_OP_TANH);
    if (!strcmp(op, "Softmax")) return op_softmax(im, 0);
    if (!strcmp(op, "MaxPool")) return op_pool(im, 1);
    if (!strcmp(op, "AveragePool")) return op_pool(im, 0);
    if (!strcmp(op, "GlobalAveragePool")) return op_global_avgpool(im);
    if (!strcmp(op, "BatchNormalization")) return op_batchnorm(im);
    if (!strcmp(op, "Dropout")) return op_dropout(im);
    if (!strcmp(op, "Flatten")) return op_flatten(im);
    if (!strcmp(op, "Reshape")) return op_reshape(im);
    if (!strcmp(op, "ReduceMean")) return op_reduce_mean(im);
    if (!strcmp(op, "Shape")) return fold_shape(im);
    if (!strcmp(op, "Gather")) return fold_gather(im);
    if (!strcmp(op, "Unsqueeze")) return fold_squeeze(im, 1);
    if (!strcmp(op, "Squeeze")) return fold_squeeze(im, 0);
    if (!strcmp(op, "Slice")) return fold_slice(im);
    if (!strcmp(op, "Transpose")) return fold_transpose(im);
    if (!strcmp(op, "Cast")) return fold_cast(im);
    if (!strcmp(op, "ConstantOfShape")) return fold_constant_of_shape(im);
    if (!strcmp(op, "Concat") && all_constant(im)) return fold_concat(im);
    if (!strcmp(op, "Concat")) return op_concat(im);
    if (!strcmp(op, "Clip")) return op_clip(im);
    if (!strcmp(op, "Constant")) return op_constant(im);
    if (!strcmp(op, "Pad")) return op_pad(im);
    if (!strcmp(op, "Identity")) {
        value *x = input(im, 0, -1, "input");
        return x ? define(im, im->node->output[0], x->node, x->rank, x->t) : LOOM_ERR;
    }
    return UNSUPPORTED("loom has no layer for this operator");
}

/* ---- the model ------------------------------------------------------------------------ */

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return loom_fail(LOOM_EIO, "%s: %s", path, strerror(errno));
    if (fseeko(f, 0, SEEK_END) || ftello(f) < 0) {
        fclose(f);
        return loom_fail(LOOM_EIO, "%s: not a regular file", path);
    }
    off_t size = ftello(f);
    rewind(f);
    if (size == 0) {
        fclose(f);
        return loom_fail(LOOM_EFORMAT, "%s: empty file", path);
    }
    if ((uint64_t)size > (uint64_t)1 << 31) {
        fclose(f);
        return loom_fail(LOOM_EUNSUPPORTED, "%s: %lld bytes: protobuf limits a model to 2 GB (store large weights as "
                         "external data)", path, (long long)size);
    }
    *buf = malloc((size_t)size);
    if (!*buf) {
        fclose(f);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory for %lld bytes", path, (long long)size);
    }
    int ok = fread(*buf, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    if (!ok) {
        free(*buf);
        return loom_fail(LOOM_EIO, "%s: read failed", path);
    }
    *len = (size_t)size;
    return LOOM_OK;
}


/* The graph's one data input: [N, C, H, W] or [N, F], the batch free. */
static int graph_input(importer *im) {
    const Onnx__GraphProto *gp = im->m->graph;
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t k = 0; k < gp->n_input; k++) {
        if (!gp->input[k]->name || !*gp->input[k]->name)
            return loom_fail(LOOM_EFORMAT, "%s: graph input %zu has no name", im->path, k);
        int init = 0;
        for (size_t q = 0; q < gp->n_initializer; q++) init |= gp->initializer[q]->name && !strcmp(gp->initializer[q]->name, gp->input[k]->name);
        const value *bound = gp->input[k]->name ? find(im, gp->input[k]->name) : NULL;
        if (init || bound) continue;
        if (in) return loom_fail(LOOM_EUNSUPPORTED, "%s: inputs \"%s\" and \"%s\": loom models have one input", im->path, in->name, gp->input[k]->name);
        in = gp->input[k];
    }
    if (!in) return loom_fail(LOOM_EUNSUPPORTED, "%s: the graph has no input (it computes a constant)", im->path);
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type->shape)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: input \"%s\" is not a tensor of known rank", im->path, in->name);
    if (t->tensor_type->has_elem_type && t->tensor_type->elem_type != DT_FLOAT)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: input \"%s\" has element type %d: loom reads float32", im->path, in->name, (int)t->tensor_type->elem_type);
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    int rank = (int)s->n_dim;
    if (rank >= 1 && s->dim[0]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && s->dim[0]->dim_value > 0)
        im->batch = s->dim[0]->dim_value;
    int64_t d[MAX_RANK] = {0, 1, 1, 1}, feat = 1;
    if (rank < 1 || rank > MAX_RANK)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: input \"%s\" is %d-d: loom takes images [N, C, H, W] or features [N, ...]", im->path, in->name, rank);
    for (int k = 1; k < rank; k++) {
        const Onnx__TensorShapeProto__Dimension *dim = s->dim[k];
        if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || dim->dim_value < 1 || dim->dim_value > 1 << 20)
            return loom_fail(LOOM_EUNSUPPORTED, "%s: input \"%s\": dimension %d is %s%s: loom needs every size but the batch fixed", im->path, in->name, k,
                             dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "symbolic " : "unknown",
                             dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? dim->dim_param : "");
        d[k] = dim->dim_value;
        feat *= d[k];
        if (feat > 1 << 30) return loom_fail(LOOM_EUNSUPPORTED, "%s: input \"%s\" is too large per sample", im->path, in->name);
    }
    /* [N, C, H] is loom's (C, H, 1); other ranks than 3 and 4 are features [N, F] (F the product of the
     * sizes after the batch): the element-wise operators work on them as on ONNX's tensor, the others
     * check the rank */
    loom_node x = rank == 4   ? loom_input(im->g, (int)d[1], (int)d[2], (int)d[3])
                  : rank == 3 ? loom_input(im->g, (int)d[1], (int)d[2], 1)
                              : loom_input(im->g, (int)feat, 1, 1);
    if (x < 0) return loom_fail(LOOM_EUNSUPPORTED, "%s: input \"%s\": %s", im->path, in->name, loom_graph_error(im->g));
    return define(im, in->name, x, rank, NULL);
}

static int check_opset(importer *im) {
    im->opset = -1;
    for (size_t k = 0; k < im->m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = im->m->opset_import[k];
        if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) im->opset = o->has_version ? (int)o->version : -1;
    }
    if (im->opset < 0 && im->m->n_opset_import)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: operator domain \"%s\" only: loom reads the default ONNX domain", im->path,
                         im->m->opset_import[0]->domain ? im->m->opset_import[0]->domain : "");
    if (im->opset < 0) return loom_fail(LOOM_EFORMAT, "%s: no opset of the default ONNX domain is declared", im->path);
    if (im->opset < OPSET_MIN || im->opset > OPSET_MAX)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: opset %d: loom reads opsets %d to %d (re-export with opset_version=%d)",
                         im->path, im->opset, OPSET_MIN, OPSET_MAX, im->opset > OPSET_MAX ? OPSET_MAX : OPSET_MIN);
    return LOOM_OK;
}

/* Copy the gathered weights into the finished graph. */
static void install(importer *im) {
    float *P = loom_graph_params(im->g), *Bf = loom_graph_buffers(im->g);
    for (int k = 0; k < im->np; k++) {
        const pending *p = &im->p[k];
        const loom_layer *l = loom_graph_layer(im->g, p->node);
        float *w = P + l->param_off;
        if (l->op == LOOM_OP_BATCHNORM) {
            memcpy(w, p->w, (size_t)l->c * sizeof(float));
            memcpy(w + l->weight_count, p->b, (size_t)l->c * sizeof(float));
            memcpy(Bf + l->buf_off, p->mean, (size_t)l->c * sizeof(float));
            memcpy(Bf + l->buf_off + l->c, p->var, (size_t)l->c * sizeof(float));
            continue;
        }
        memcpy(w, p->w, l->weight_count * sizeof(float));
        size_t nb = l->param_count - l->weight_count;
        if (nb) {
            if (p->b) memcpy(w + l->weight_count, p->b, nb * sizeof(float));
            else memset(w + l->weight_count, 0, nb * sizeof(float));
        }
    }
}

float *loom_onnx_read_tensor(const char *path, int64_t dims[8], int *rank, size_t *count) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_file(path, &buf, &len)) return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!t) {
        loom_fail(LOOM_EFORMAT, "%s: not a serialized ONNX TensorProto", path);
        return NULL;
    }
    float *v = NULL;
    if (t->n_dims > MAX_RANK) {
        loom_fail(LOOM_EUNSUPPORTED, "%s: %zu dimensions, loom reads at most %d", path, t->n_dims, MAX_RANK);
    } else {
        importer im;
        memset(&im, 0, sizeof im);
        im.path = path;
        im.any_value = 1;
        snprintf(im.dir, sizeof im.dir, ".");
        v = tensor_floats(&im, t, t->name && *t->name ? t->name : "(unnamed)", count);
        *rank = (int)t->n_dims;
        for (size_t k = 0; k < t->n_dims; k++) dims[k] = t->dims[k];
    }
    onnx__tensor_proto__free_unpacked(t, NULL);
    return v;
}

static void importer_free(importer *im) {
    for (int k = 0; k < im->nmade; k++) {
        Onnx__TensorProto *t = im->made[k];
        free(t->dims), free(t->float_data), free(t->int64_data), free(t);
    }
    free(im->made);
    for (int k = 0; k < im->nbound; k++) onnx__tensor_proto__free_unpacked(im->bound[k], NULL);
    free(im->bound);
    for (int k = 0; k < im->np; k++) free(im->p[k].w), free(im->p[k].b), free(im->p[k].mean), free(im->p[k].var);
    free(im->p);
    free(im->v);
    if (im->m) onnx__model_proto__free_unpacked(im->m, NULL);
}

loom_graph *loom_onnx_import(const char *path) { return loom_onnx_import_with(path, 0, NULL); }

/* Graph inputs after the data input, bound to the tensors in files[]. */
static int bind_inputs(importer *im, int nconst, const char *const *files) {
    const Onnx__GraphProto *gp = im->m->graph;
    if (!(im->bound = calloc((size_t)nconst + 1, sizeof *im->bound))) return loom_fail(LOOM_ENOMEM, "%s: out of memory", im->path);
    int seen = 0;
    for (size_t k = 0; k < gp->n_input && im->nbound < nconst; k++) {
        const char *name = gp->input[k]->name ? gp->input[k]->name : "";
        int init = 0;
        for (size_t q = 0; q < gp->n_initializer; q++) init |= gp->initializer[q]->name && !strcmp(gp->initializer[q]->name, name);
        if (init || !seen++) continue; /* the first is the data */
        uint8_t *buf = NULL;
        size_t len = 0;
        if (read_file(files[im->nbound], &buf, &len)) return LOOM_ERR;
        Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
        free(buf);
        if (!t) return loom_fail(LOOM_EFORMAT, "%s: not a serialized ONNX TensorProto", files[im->nbound]);
        im->bound[im->nbound++] = t;
        if (define(im, name, -1, 0, t)) return LOOM_ERR;
    }
    if (im->nbound < nconst)
        return loom_fail(LOOM_EINVAL, "%s: %d constant inputs given, the graph has %d inputs after the data", im->path, nconst, im->nbound);
    return LOOM_OK;
}

loom_graph *loom_onnx_import_with(const char *path, int nconst, const char *const *files) {
    importer im;
    memset(&im, 0, sizeof im);
    im.path = path;
    im.node_index = -1;
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(im.dir, sizeof im.dir, "%.*s", (int)(slash - path), path);
    else snprintf(im.dir, sizeof im.dir, ".");
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_file(path, &buf, &len)) return NULL;
    im.m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    loom_graph *g = NULL;
    if (!im.m) {
        loom_fail(LOOM_EFORMAT, "%s: not an ONNX model: the protobuf does not parse (truncated or another format)", path);
        goto fail;
    }
    if (!im.m->graph) {
        loom_fail(LOOM_EFORMAT, "%s: the model has no graph", path);
        goto fail;
    }
    if (check_opset(&im)) goto fail;
    const Onnx__GraphProto *gp = im.m->graph;
    const char *base = slash ? slash + 1 : path;
    char name[64];
    snprintf(name, sizeof name, "%s", gp->name && *gp->name ? gp->name : base);
    if (!(g = im.g = loom_graph_new(name))) goto fail;
    for (size_t k = 0; k < gp->n_initializer; k++)
        if (define(&im, gp->initializer[k]->name ? gp->initializer[k]->name : "", -1, 0, gp->initializer[k])) goto fail;
    if (nconst > 0 && bind_inputs(&im, nconst, files)) goto fail;
    if (graph_input(&im)) goto fail;
    for (size_t k = 0; k < gp->n_node; k++) {
        im.node = gp->node[k];
        im.node_index = (int)k;
        if (!im.node->n_output || !im.node->output[0]) {
            node_fail(&im, LOOM_EFORMAT, "no output");
            goto fail;
        }
        if (map_node(&im)) goto fail;
    }
    im.node = NULL;
    if (gp->n_output != 1)
        {
            loom_fail(LOOM_EUNSUPPORTED, "%s: %zu graph outputs: loom models have one", path, gp->n_output);
            goto fail;
        }
    value *out = find(&im, gp->output[0]->name ? gp->output[0]->name : "");
    if (out && (out->pad[0] | out->pad[1] | out->pad[2] | out->pad[3]) && materialize_pad(&im, out)) goto fail;
    if (!out || out->node < 0) {
        loom_fail(out ? LOOM_EUNSUPPORTED : LOOM_EFORMAT, "%s: the graph output \"%s\" is %s", path, gp->output[0]->name ? gp->output[0]->name : "",
                  out ? "a constant (computed at import): loom models compute their output from the input" : "made by no node");
        goto fail;
    }
    if (out->node != loom_graph_count(g) - 1) {
        loom_fail(LOOM_EUNSUPPORTED, "%s: the graph output \"%s\" is not the last layer computed (nodes after it feed nothing "
                  "loom can keep)", path, out->name);
        goto fail;
    }
    if (loom_graph_finish(g, 0)) {
        loom_fail(LOOM_EUNSUPPORTED, "%s: %s", path, loom_graph_error(g));
        goto fail;
    }
    install(&im);
    importer_free(&im);
    return g;
fail:
    importer_free(&im);
    loom_graph_free(g);
    return NULL;
}

#endif
