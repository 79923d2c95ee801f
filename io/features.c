/* A data set of float features (include/loom/dataset.h,
 * loom_dataset_open_features): a safetensors file with "features" [N, F]
 * and "labels" [N], as `loom features` writes it. The features are read
 * whole at open (bounded by the file, which the safetensors reader has
 * checked against its header) and served as they are. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "loom/dataset.h"
#include "loom/error.h"

typedef struct {
    float *x;
    int32_t *y;
    size_t f;
} feat_impl;

static int feat_get(loom_dataset *ds, size_t i, float *x, int32_t *label) {
    const feat_impl *m = ds->impl;
    memcpy(x, m->x + i * m->f, m->f * sizeof(float));
    *label = m->y[i];
    return LOOM_OK;
}

static int32_t feat_label(const loom_dataset *ds, size_t i) { return ((const feat_impl *)ds->impl)->y[i]; }

static void feat_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    snprintf(buf, cap, "%s row %zu", ds->path, i);
}

static void feat_destroy(loom_dataset *ds) {
    feat_impl *m = ds->impl;
    if (!m) return;
    free(m->x);
    free(m->y);
    free(m);
}

loom_dataset *loom_dataset_open_features(const char *path, const loom_dataset_opts *o) {
    (void)o; /* one split, taken as it is */
    sft_file f;
    if (sft_open(&f, path)) return NULL;
    loom_dataset *ds = loom_dataset_alloc("features", path, sizeof(feat_impl), feat_destroy);
    float *lab = NULL;
    if (!ds) goto oom;
    feat_impl *m = ds->impl;
    const sft_tensor *X = sft_find(&f, "features"), *Y = sft_find(&f, "labels");
    if (!X || !Y) {
        loom_fail(LOOM_EFORMAT, "%s: a features file holds tensors \"features\" [N, F] and \"labels\" [N]; this one has %s",
                  path, X ? "no labels" : "no features (a checkpoint? loom eval and loom run take those)");
        goto fail;
    }
    if (X->ndim != 2 || Y->ndim != 1 || Y->shape[0] != X->shape[0] || X->shape[0] < 1 || X->shape[1] < 1 ||
        X->shape[1] > (1 << 30)) {
        char a[96], b[96];
        loom_fail(LOOM_EFORMAT, "%s: features %s and labels %s: expected [N, F] and [N]", path,
                  sft_shape_str(X->shape, X->ndim, a, sizeof a), sft_shape_str(Y->shape, Y->ndim, b, sizeof b));
        goto fail;
    }
    size_t n = (size_t)X->shape[0];
    m->f = (size_t)X->shape[1];
    if (!(m->x = malloc(n * m->f * sizeof(float))) || !(m->y = malloc(n * sizeof(int32_t))) ||
        !(lab = malloc(n * sizeof(float))))
        goto oom;
    if (sft_read(&f, X, m->x) || sft_read(&f, Y, lab)) goto fail;
    int maxl = -1;
    for (size_t i = 0; i < n; i++) {
        if (!(lab[i] == floorf(lab[i]) && lab[i] >= -1 && lab[i] < 1e6)) {
            loom_fail(LOOM_EFORMAT, "%s: label %zu is %g: labels are class indices (or -1 for none)", path, i,
                      (double)lab[i]);
            goto fail;
        }
        m->y[i] = (int32_t)lab[i];
        if (m->y[i] > maxl) maxl = m->y[i];
    }
    for (size_t q = 0; q < n * m->f; q++)
        if (!isfinite(m->x[q])) {
            loom_fail(LOOM_EFORMAT, "%s: feature %zu of row %zu is %g", path, q % m->f, q / m->f, (double)m->x[q]);
            goto fail;
        }
    ds->count = n;
    ds->c = (int)m->f, ds->h = ds->w = 1;
    ds->labeled = maxl >= 0;
    ds->num_classes = maxl + 1;
    ds->get_f32 = feat_get;
    ds->label_of = feat_label;
    ds->describe = feat_describe;
    const char *cls = sft_meta(&f, "loom.classes");
    if (cls) {
        json_error_t je;
        json_t *a = json_loads(cls, 0, &je);
        size_t k = json_is_array(a) ? json_array_size(a) : 0;
        const char **names = k ? calloc(k, sizeof *names) : NULL;
        int ok = k >= (size_t)ds->num_classes && names;
        for (size_t i = 0; ok && i < k; i++) ok = (names[i] = json_string_value(json_array_get(a, i))) != NULL;
        if (ok && loom_dataset_set_classes(ds, (int)k, names)) ok = 0;
        free(names);
        json_decref(a);
        if (!ok) {
            loom_fail(LOOM_EFORMAT, "%s: metadata loom.classes is not a list of at least %d names", path, ds->num_classes);
            goto fail;
        }
    }
    free(lab);
    sft_close(&f);
    return ds;
oom:
    loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
fail:
    free(lab);
    sft_close(&f);
    loom_dataset_free(ds);
    return NULL;
}
