/* Checkpoints: the model in a safetensors file, and room beside it for what
 * the layers above keep (checkpoint.h). Tensors are named as PyTorch names a
 * state dict ("conv2d_1.weight" of shape [oc, c/groups, kh, kw],
 * "batchnorm_1.running_mean", ...) so other tools can read them. */
#include "loom/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_json.h"
#include "loom/error.h"
#include "safetensors.h"

/* Version 2 moved the training state out of this module ("loom.state" and
 * "loom.optim" became the trainer's "loom.trainer" and "loom.fit"); the model
 * part is the same, so version 1 files still load as models. */
#define FORMAT_VERSION 2

enum { PART_WEIGHT, PART_BIAS, PART_MEAN, PART_VAR };
static const char *const part_names[] = {"weight", "bias", "running_mean", "running_var"};

struct loom_checkpoint {
    sft_file f;
    json_t *graph;   /* the parsed "loom.graph" */
    int version;
};

/* ---- the model's tensors ---------------------------------------------------------- */

typedef struct {
    char name[LOOM_CKPT_NAME_MAX];
    int ndim;
    int64_t shape[4];
    size_t count;
    int layer, part;
    const sft_tensor *file; /* its entry when loading */
} slot;

static void shape_of(const loom_layer *l, int part, int *ndim, int64_t *shape, size_t *count) {
    *ndim = 1;
    shape[0] = l->c;
    if (part == PART_WEIGHT && l->op == LOOM_OP_DENSE) {
        *ndim = 2;
        shape[0] = l->a.dense.out;
        shape[1] = l->a.dense.in;
    } else if (part == PART_WEIGHT && l->op == LOOM_OP_CONV2D) {
        const loom_conv_shape *c = &l->a.conv;
        *ndim = 4;
        shape[0] = c->oc;
        shape[1] = c->c / c->groups;
        shape[2] = c->kh;
        shape[3] = c->kw;
    } else if (l->op == LOOM_OP_SCALE && l->h * l->w > 1) { /* per element of a sample */
        *ndim = 3;
        shape[1] = l->h;
        shape[2] = l->w;
    }
    *count = 1;
    for (int d = 0; d < *ndim; d++) *count *= (size_t)shape[d];
}

/* Parts of layer l: with buffers, weight/bias/mean/var; else weight[/bias]. */
static int parts_of(const loom_layer *l, int with_buffers) {
    if (!l->param_count) return 0;
    if (with_buffers && l->buf_count) return 4;
    return l->param_count > l->weight_count ? 2 : 1;
}

/* The model's tensors in file order. Needs only the layers' counts, not
 * their offsets, so it works on an unfinished graph. With out NULL, counts. */
static size_t plan(const loom_graph *g, slot *out) {
    size_t n = 0;
    for (int i = 0; i < loom_graph_count(g); i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        for (int p = 0; p < parts_of(l, 1); p++, n++) {
            if (!out) continue;
            slot *s = &out[n];
            s->layer = i;
            s->part = p;
            snprintf(s->name, sizeof s->name, "%s.%s", l->name, part_names[p]);
            shape_of(l, p, &s->ndim, s->shape, &s->count);
        }
    }
    return n;
}

/* Where part p of layer l lives in a parameter-shaped array (or the buffers). */
static float *where(const loom_layer *l, int part, float *params, float *buffers) {
    switch (part) {
    case PART_WEIGHT: return params + l->param_off;
    case PART_BIAS: return params + l->param_off + l->weight_count;
    case PART_MEAN: return buffers + l->buf_off;
    default: return buffers + l->buf_off + (size_t)l->c;
    }
}

size_t loom_checkpoint_param_views(const loom_graph *g, const char *prefix, float *base, loom_ckpt_tensor *out,
                                   char (*names)[LOOM_CKPT_NAME_MAX], size_t cap) {
    size_t n = 0;
    for (int i = 0; i < loom_graph_count(g); i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        for (int p = 0; p < parts_of(l, 0); p++, n++) {
            if (n >= cap) continue;
            snprintf(names[n], LOOM_CKPT_NAME_MAX, "%s%s.%s", prefix, l->name, part_names[p]);
            loom_ckpt_tensor *t = &out[n];
            t->name = names[n];
            shape_of(l, p, &t->ndim, t->shape, &t->count);
            t->data = where(l, p, base, NULL);
        }
    }
    return n;
}

/* The first non-finite value of p[0..n), or -1. */
static long first_nonfinite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return (long)i;
    return -1;
}

static int refuse_nonfinite(const char *path, const char *tensor, const float *p, size_t n, const char *doing) {
    long i = first_nonfinite(p, n);
    if (i < 0) return LOOM_OK;
    return loom_fail(LOOM_EFORMAT, "%s: tensor %s holds %s at index %ld: %s (a diverged run? lower the learning rate)",
                          path, tensor, isnan(p[i]) ? "NaN" : "an infinity", i, doing);
}

/* ---- saving --------------------------------------------------------------------- */

static int put(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v) ? 1 : 0; }

int loom_checkpoint_save(const char *path, loom_graph *g, const loom_ckpt_extra *extra) {
    if (!path || !g) return loom_fail(LOOM_EINVAL, "loom_checkpoint_save: no %s", path ? "graph" : "path");
    if (!loom_graph_params(g))
        return loom_fail(LOOM_EINVAL, "%s: graph %s is not finished (call loom_graph_finish first)", path,
                              loom_graph_name(g));
    loom_ckpt_extra none = {0};
    if (!extra) extra = &none;
    json_t *meta = json_object(), *gj = gj_encode(g, path);
    char *gtext = gj ? json_dumps(gj, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    size_t nm = plan(g, NULL), n = nm + extra->ntensors;
    slot *slots = calloc(nm + 1, sizeof *slots);
    sft_out *outs = calloc(n + 1, sizeof *outs);
    char version[8];
    snprintf(version, sizeof version, "%d", FORMAT_VERSION);
    int rc = LOOM_ERR;
    if (!gj) goto out;
    if (!gtext || !slots || !outs || !meta || put(meta, "loom.version", json_string(version)) ||
        put(meta, "loom.graph", json_string(gtext))) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory preparing the checkpoint", path);
        goto out;
    }
    for (int i = 0; i < extra->nmeta; i++) {
        const char *k = extra->meta[i].key;
        if (!k || !strcmp(k, "loom.version") || !strcmp(k, "loom.graph") || !strcmp(k, "loom.crc32") ||
            json_object_get(meta, k)) {
            loom_fail(LOOM_EINVAL, "%s: metadata key %s is taken", path, k ? k : "(null)");
            goto out;
        }
        json_t *v = extra->meta[i].value ? json_string(extra->meta[i].value) : NULL;
        if (!v) {
            loom_fail(LOOM_EINVAL, "%s: metadata %s is not valid UTF-8 text", path, k);
            goto out;
        }
        if (put(meta, k, v)) {
            loom_fail(LOOM_ENOMEM, "%s: out of memory preparing the checkpoint", path);
            goto out;
        }
    }
    plan(g, slots);
    for (size_t i = 0; i < nm; i++) {
        const slot *s = &slots[i];
        const loom_layer *l = loom_graph_layer(g, s->layer);
        outs[i] = (sft_out){.name = s->name, .ndim = s->ndim, .data = where(l, s->part, loom_graph_params(g),
                                                                               loom_graph_buffers(g)),
                            .count = s->count};
        memcpy(outs[i].shape, s->shape, sizeof s->shape);
    }
    for (size_t i = 0; i < extra->ntensors; i++) {
        const loom_ckpt_tensor *t = &extra->tensors[i];
        size_t dot = t->name ? strcspn(t->name, ".") : 0;
        for (int k = 0; t->name && k < loom_graph_count(g); k++) {
            const char *ln = loom_graph_layer(g, k)->name;
            if (t->name[dot] == '.' && strlen(ln) == dot && !strncmp(ln, t->name, dot)) {
                loom_fail(LOOM_EINVAL, "%s: extra tensor %s is in layer %s's namespace", path, t->name, ln);
                goto out;
            }
        }
        if (!t->name || t->ndim < 1 || t->ndim > 4) {
            loom_fail(LOOM_EINVAL, "%s: extra tensor %zu has no name or %d dimensions", path, i, t->ndim);
            goto out;
        }
        outs[nm + i] = (sft_out){.name = t->name, .ndim = t->ndim, .data = t->data, .count = t->count};
        memcpy(outs[nm + i].shape, t->shape, sizeof t->shape);
    }
    for (size_t i = 0; i < n; i++)
        if (refuse_nonfinite(path, outs[i].name, outs[i].data, outs[i].count, "not saved")) goto out;
    rc = sft_write(path, meta, outs, n);
out:
    json_decref(meta);
    json_decref(gj);
    free(gtext);
    free(slots);
    free(outs);
    return rc;
}

/* ---- loading -------------------------------------------------------------------- */

static json_t *parse_json(const char *path, const char *key, const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        loom_fail(LOOM_EFORMAT, "%s: metadata %s: JSON error at line %d, column %d: %s", path, key, je.line, je.column,
                       je.text);
    return j;
}

loom_checkpoint *loom_checkpoint_open(const char *path) {
    if (!path) {
        loom_fail(LOOM_EINVAL, "loom_checkpoint_open: no path");
        return NULL;
    }
    loom_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (sft_open(&ck->f, path)) {
        free(ck);
        return NULL;
    }
    const char *ver = sft_meta(&ck->f, "loom.version"), *gtext = sft_meta(&ck->f, "loom.graph");
    if (!ck->f.meta || !ver || !gtext) {
        loom_fail(LOOM_EFORMAT, "%s: %s: not a loom checkpoint", path,
                       !ck->f.meta ? "no __metadata__ in the header"
                       : !ver      ? "the metadata has no loom.version"
                                   : "the metadata has no loom.graph (the architecture)");
        goto fail;
    }
    if (!strcmp(ver, "1") || !strcmp(ver, "2")) {
        ck->version = ver[0] - '0';
    } else {
        loom_fail(LOOM_EUNSUPPORTED, "%s: loom.version \"%.32s\" is not supported (this loom reads 1 and 2)", path, ver);
        goto fail;
    }
    if (!(ck->graph = parse_json(path, "loom.graph", gtext))) goto fail;
    return ck;
fail:
    loom_checkpoint_close(ck);
    return NULL;
}

void loom_checkpoint_close(loom_checkpoint *ck) {
    if (!ck) return;
    sft_close(&ck->f);
    json_decref(ck->graph);
    free(ck);
}

const char *loom_checkpoint_path(const loom_checkpoint *ck) { return ck->f.path; }
int loom_checkpoint_version(const loom_checkpoint *ck) { return ck->version; }
const char *loom_checkpoint_meta(const loom_checkpoint *ck, const char *key) { return sft_meta(&ck->f, key); }
int loom_checkpoint_has(const loom_checkpoint *ck, const char *name) { return sft_find(&ck->f, name) != NULL; }

static int same_shape(const sft_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return 0;
    return 1;
}

static int shape_error(const char *path, const char *name, int ndim, const int64_t *shape, const sft_tensor *t) {
    char a[128], b[128];
    return loom_fail(LOOM_EFORMAT, "%s: tensor %s: shape %s expected, file has %s", path, name,
                          sft_shape_str(shape, ndim, a, sizeof a), sft_shape_str(t->shape, t->ndim, b, sizeof b));
}

/* The architecture's tensors against the file's: each present with its shape,
 * and no tensor in a layer's namespace that the architecture does not have. */
static int match(const loom_checkpoint *ck, const loom_graph *g, slot *slots, size_t n) {
    const sft_file *f = &ck->f;
    for (size_t i = 0; i < n; i++) {
        slot *s = &slots[i];
        const sft_tensor *t = sft_find(f, s->name);
        if (!t)
            return loom_fail(LOOM_EFORMAT, "%s: tensor %s is missing (the architecture in loom.graph needs it)", f->path,
                                  s->name);
        if (!same_shape(t, s->ndim, s->shape)) return shape_error(f->path, s->name, s->ndim, s->shape, t);
        s->file = t;
    }
    for (size_t i = 0; i < f->n; i++) {
        const char *name = f->t[i].name;
        size_t dot = strcspn(name, ".");
        if (name[dot] != '.') continue;
        for (int k = 0; k < loom_graph_count(g); k++) {
            const char *ln = loom_graph_layer(g, k)->name;
            if (strlen(ln) != dot || strncmp(ln, name, dot)) continue;
            int known = 0;
            for (size_t j = 0; j < n && !known; j++) known = !strcmp(slots[j].name, name);
            if (!known)
                return loom_fail(LOOM_EFORMAT, "%s: unknown tensor %s (layer %s of loom.graph has no such part)", f->path,
                                      name, ln);
        }
    }
    return LOOM_OK;
}

loom_graph *loom_checkpoint_graph(loom_checkpoint *ck) {
    const char *path = ck->f.path;
    loom_graph *g = gj_decode(ck->graph, path);
    if (!g) return NULL;
    size_t n = plan(g, NULL);
    slot *slots = calloc(n + 1, sizeof *slots);
    if (!slots) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    plan(g, slots);
    /* Every tensor is now known to lie inside the file, so what finish
     * allocates is bounded by the file's size. */
    if (match(ck, g, slots, n)) goto fail;
    if (loom_graph_finish(g, 0) != LOOM_OK) {
        loom_fail(LOOM_ENOMEM, "%s: %s", path, loom_graph_error(g)[0] ? loom_graph_error(g) : "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const loom_layer *l = loom_graph_layer(g, slots[i].layer);
        float *dst = where(l, slots[i].part, loom_graph_params(g), loom_graph_buffers(g));
        if (sft_read(&ck->f, slots[i].file, dst) ||
            refuse_nonfinite(path, slots[i].name, dst, slots[i].count, "refused"))
            goto fail;
    }
    free(slots);
    return g;
fail:
    free(slots);
    loom_graph_free(g);
    return NULL;
}

int loom_checkpoint_read(loom_checkpoint *ck, const loom_ckpt_tensor *t) {
    const char *path = ck->f.path;
    const sft_tensor *s = sft_find(&ck->f, t->name);
    if (!s) return loom_fail(LOOM_EFORMAT, "%s: tensor %s is missing", path, t->name);
    if (!same_shape(s, t->ndim, t->shape)) return shape_error(path, t->name, t->ndim, t->shape, s);
    if (sft_read(&ck->f, s, t->data)) return LOOM_ERR;
    return refuse_nonfinite(path, t->name, t->data, t->count, "refused");
}

loom_graph *loom_checkpoint_load(const char *path) {
    loom_checkpoint *ck = loom_checkpoint_open(path);
    if (!ck) return NULL;
    loom_graph *g = loom_checkpoint_graph(ck);
    loom_checkpoint_close(ck);
    return g;
}
