/* PyTorch weights into a loom model (include/loom/checkpoint.h,
 * loom_load_torch_state): a state_dict saved as safetensors. PyTorch names
 * tensors by module path ("features.3.weight"), loom by layer; the two are
 * matched by order and shape: the file's modules in their natural order
 * (numbers compared as numbers: features.10 after features.9), loom's layers
 * with parameters in graph order, each pair checked tensor by tensor
 * (Conv2d weight [out, in/groups, kh, kw] and bias; Linear weight [out, in]
 * and bias; BatchNorm weight, bias, running_mean, running_var). The
 * num_batches_tracked counters are ignored. Anything that does not pair up
 * is an error naming the tensor; nothing is written into the graph unless
 * everything pairs. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "loom/checkpoint.h"
#include "loom/error.h"

typedef struct {
    char prefix[256];
    const sft_tensor *part[4]; /* weight, bias, running_mean, running_var */
} module;

static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};

/* Natural order of module paths: "a.10" after "a.9". */
static int natural(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);
            if (x != y) return x < y ? -1 : 1;
            a = ea, b = eb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++, b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int by_prefix(const void *x, const void *y) { return natural(((const module *)x)->prefix, ((const module *)y)->prefix); }

static const char *shape_of(const sft_tensor *t, char *buf, size_t cap) { return sft_shape_str(t->shape, t->ndim, buf, cap); }

/* The shape layer l needs for part p: ndim and dims. */
static int want_shape(const loom_layer *l, int p, int64_t *d) {
    if (l->op == LOOM_OP_CONV2D && p == 0) {
        d[0] = l->a.conv.oc, d[1] = l->a.conv.c / l->a.conv.groups, d[2] = l->a.conv.kh, d[3] = l->a.conv.kw;
        return 4;
    }
    if (l->op == LOOM_OP_DENSE && p == 0) {
        d[0] = l->a.dense.out, d[1] = l->a.dense.in;
        return 2;
    }
    d[0] = l->op == LOOM_OP_CONV2D ? l->a.conv.oc : l->c;
    return 1;
}

int loom_load_torch_state(loom_graph *g, const char *path) {
    sft_file f;
    if (sft_open(&f, path)) return LOOM_ERR;
    if (sft_meta(&f, "loom.graph")) {
        sft_close(&f);
        return loom_fail(LOOM_EINVAL, "%s is a loom checkpoint, not a PyTorch state_dict: start from it with --init "
                         "(it brings its architecture)", path);
    }
    module *m = calloc(f.n + 1, sizeof *m);
    size_t nm = 0;
    float **vals = NULL;
    int rc = LOOM_ERR, n = loom_graph_count(g);
    if (!m) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    /* group the tensors by module */
    for (size_t i = 0; i < f.n; i++) {
        const sft_tensor *t = &f.t[i];
        const char *dot = strrchr(t->name, '.');
        if (!dot || dot == t->name) {
            loom_fail(LOOM_EFORMAT, "%s: tensor \"%s\" is not named module.part as a state_dict's are", path, t->name);
            goto out;
        }
        if (!strcmp(dot + 1, "num_batches_tracked")) continue;
        int p = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(dot + 1, parts[k])) p = k;
        if (p < 0) {
            loom_fail(LOOM_EUNSUPPORTED, "%s: tensor \"%s\": loom's layers have weight, bias, running_mean and "
                      "running_var, not %s", path, t->name, dot + 1);
            goto out;
        }
        size_t len = (size_t)(dot - t->name);
        if (len >= sizeof m->prefix) {
            loom_fail(LOOM_EFORMAT, "%s: tensor name \"%.60s...\" is too long", path, t->name);
            goto out;
        }
        size_t k = 0;
        while (k < nm && (strlen(m[k].prefix) != len || strncmp(m[k].prefix, t->name, len))) k++;
        if (k == nm) memcpy(m[nm++].prefix, t->name, len);
        m[k].part[p] = t;
    }
    qsort(m, nm, sizeof *m, by_prefix);
    /* pair modules with loom's layers that have parameters */
    vals = calloc((size_t)n * 4 + 1, sizeof *vals);
    if (!vals) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t mi = 0;
    for (int i = 0; i < n; i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        if (!l->param_count) continue;
        if (l->op != LOOM_OP_CONV2D && l->op != LOOM_OP_DENSE && l->op != LOOM_OP_BATCHNORM) {
            loom_fail(LOOM_EUNSUPPORTED, "%s: loom's layer %s (%s) has no PyTorch counterpart to take weights from", path,
                      l->name, loom_op_name(l->op));
            goto out;
        }
        if (mi == nm) {
            loom_fail(LOOM_EFORMAT, "%s: no tensors left for loom's layer %d, %s (%s): the file holds fewer layers than "
                      "the model", path, i, l->name, loom_op_name(l->op));
            goto out;
        }
        const module *mod = &m[mi++];
        int np = l->op == LOOM_OP_BATCHNORM ? 4 : l->bias ? 2 : 1;
        for (int p = 0; p < 4; p++) {
            const sft_tensor *t = mod->part[p];
            char a[96], b[96];
            if (p >= np) {
                if (t) {
                    loom_fail(LOOM_EFORMAT, "%s: %s.%s has no place in loom's layer %s (%s%s)", path, mod->prefix, parts[p],
                              l->name, loom_op_name(l->op), p == 1 ? ", which has no bias" : "");
                    goto out;
                }
                continue;
            }
            if (!t) {
                loom_fail(LOOM_EFORMAT, "%s: module %s has no %s, which loom's layer %s (%s) needs (is the file's "
                          "order of layers the model's?)", path, mod->prefix, parts[p], l->name, loom_op_name(l->op));
                goto out;
            }
            int64_t d[4];
            int nd = want_shape(l, p, d);
            int same = t->ndim == nd;
            for (int k = 0; same && k < nd; k++) same = t->shape[k] == d[k];
            if (!same) {
                loom_fail(LOOM_EFORMAT, "%s: %s has shape %s, loom's layer %s (%s) needs %s for its %s", path, t->name,
                          shape_of(t, a, sizeof a), l->name, loom_op_name(l->op), sft_shape_str(d, nd, b, sizeof b),
                          parts[p]);
                goto out;
            }
            size_t cnt = sft_count(t);
            if (!(vals[i * 4 + p] = malloc((cnt ? cnt : 1) * sizeof(float)))) {
                loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            if (sft_read(&f, t, vals[i * 4 + p])) goto out;
            for (size_t q = 0; q < cnt; q++)
                if (!isfinite(vals[i * 4 + p][q])) {
                    loom_fail(LOOM_EFORMAT, "%s: %s holds %g at %zu: loom does not load non-finite weights", path,
                              t->name, (double)vals[i * 4 + p][q], q);
                    goto out;
                }
        }
    }
    if (mi < nm) {
        loom_fail(LOOM_EFORMAT, "%s: module %s (and %zu more) left over: the file holds more layers than the model",
                  path, m[mi].prefix, nm - mi - 1);
        goto out;
    }
    /* everything paired: write it in */
    float *P = loom_graph_params(g), *B = loom_graph_buffers(g);
    for (int i = 0; i < n; i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        if (!vals[i * 4]) continue;
        memcpy(P + l->param_off, vals[i * 4], l->weight_count * sizeof(float));
        if (vals[i * 4 + 1]) memcpy(P + l->param_off + l->weight_count, vals[i * 4 + 1], (l->param_count - l->weight_count) * sizeof(float));
        if (vals[i * 4 + 2]) memcpy(B + l->buf_off, vals[i * 4 + 2], (size_t)l->c * sizeof(float));
        if (vals[i * 4 + 3]) memcpy(B + l->buf_off + l->c, vals[i * 4 + 3], (size_t)l->c * sizeof(float));
    }
    rc = LOOM_OK;
out:
    if (vals)
        for (int k = 0; k < n * 4; k++) free(vals[k]);
    free(vals);
    free(m);
    sft_close(&f);
    return rc;
}
