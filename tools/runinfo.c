/* "loom.run": JSON in a checkpoint's metadata, read strictly (runinfo.h). */
#include "runinfo.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/jfield.h"

void runinfo_init(run_info *ri) {
    memset(ri, 0, sizeof *ri);
    ri->options = json_object();
}

void runinfo_free(run_info *ri) {
    json_decref(ri->options);
    model_side_free(&ri->side);
    free(ri->hist);
    memset(ri, 0, sizeof *ri);
}

const char *runinfo_opt(const run_info *ri, const char *name) {
    return json_string_value(json_object_get(ri->options, name));
}

int runinfo_set_opt(run_info *ri, const char *name, const char *value) {
    json_t *v = json_string(value ? value : "");
    if (!v || json_object_set_new(ri->options, name, v))
        return loom_set_error("option --%s: not valid UTF-8 text, or out of memory", name);
    return LOOM_OK;
}

int runinfo_add_epoch(run_info *ri, const loom_epoch_metrics *m) {
    if (ri->nhist == ri->cap) {
        int nc = ri->cap ? 2 * ri->cap : 16;
        loom_epoch_metrics *h = realloc(ri->hist, (size_t)nc * sizeof *h);
        if (!h) return loom_set_error("out of memory for the metrics history");
        ri->hist = h;
        ri->cap = nc;
    }
    ri->hist[ri->nhist++] = *m;
    return LOOM_OK;
}

void runinfo_truncate(run_info *ri, int epoch) {
    while (ri->nhist > 0 && ri->hist[ri->nhist - 1].epoch > epoch) ri->nhist--;
}

/* ---- writing -------------------------------------------------------------------------- */

static int put(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v) ? 1 : 0; }

static json_t *shape(int c, int h, int w) { return json_pack("[iii]", c, h, w); }

char *runinfo_text(const run_info *ri) {
    char digest[24];
    snprintf(digest, sizeof digest, "%016llx", (unsigned long long)ri->labels_digest);
    json_t *j = json_object(), *d = json_object(), *hist = json_array();
    int bad = !j || !d || !hist;
    json_t *names = json_null(), *labels = json_null();
    if (ri->side.names) {
        names = json_array();
        for (int k = 0; k < ri->side.classes; k++) bad |= json_array_append_new(names, json_string(ri->side.names[k])) ? 1 : 0;
    }
    if (ri->side.labels) {
        labels = json_array();
        for (int k = 0; k < ri->side.classes; k++)
            bad |= json_array_append_new(labels, json_string(ri->side.labels[k])) ? 1 : 0;
    }
    bad |= put(d, "path", json_string(ri->data)) | put(d, "format", json_string(ri->format)) |
           put(d, "count", json_integer((json_int_t)ri->count)) | put(d, "labels_digest", json_string(digest)) |
           put(d, "classes", json_integer(ri->side.classes)) |
           put(d, "names", names) | put(d, "labels", labels) | put(d, "native", shape(ri->side.native_c, ri->side.native_h, ri->side.native_w)) |
           put(d, "input", shape(ri->side.c, ri->side.h, ri->side.w));
    for (int i = 0; i < ri->nhist; i++) {
        const loom_epoch_metrics *m = &ri->hist[i];
        json_t *e = json_object();
        bad |= !e || put(e, "epoch", json_integer(m->epoch)) | put(e, "train_loss", jf_number(m->train_loss)) |
                         put(e, "train_acc", jf_number(m->train_acc)) | put(e, "val_loss", jf_number(m->val_loss)) |
                         put(e, "val_acc", jf_number(m->val_acc)) | put(e, "lr", jf_number(m->lr)) |
                         put(e, "seconds", jf_number(m->seconds)) | put(e, "images_per_s", jf_number(m->images_per_s)) |
                         put(e, "data_wait", jf_number(m->data_wait)) | put(e, "skipped", json_integer(m->skipped));
        bad |= json_array_append_new(hist, e) ? 1 : 0;
    }
    bad |= put(j, "options", json_deep_copy(ri->options)) | put(j, "data", d) | put(j, "history", hist);
    char *text = bad ? NULL : json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j); /* d and hist belong to j now (json_object_set_new takes them even when it fails) */
    return text;
}

uint64_t runinfo_options_digest(const run_info *ri) {
    json_t *o = ri->options ? json_deep_copy(ri->options) : json_object();
    if (!o) return 0;
    json_object_del(o, "log"); /* where rank 0 writes: the others write nothing */
    json_object_del(o, "plot");
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = text ? text : ""; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
    free(text);
    return h;
}

/* ---- reading -------------------------------------------------------------------------- */

static int read_shape(jf_obj *r, const char *key, int *c, int *h, int *w) {
    const json_t *a = jf_get(r, key, JSON_ARRAY);
    if (!a) return -1;
    int v[3];
    if (json_array_size(a) != 3) return jf_fail(r, "field \"%s\" must be [c, h, w]", key);
    for (int i = 0; i < 3; i++) {
        const json_t *x = json_array_get(a, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1 << 16)
            return jf_fail(r, "field \"%s\" must hold three sizes in 1..65536", key);
        v[i] = (int)json_integer_value(x);
    }
    *c = v[0], *h = v[1], *w = v[2];
    return 0;
}

/* null, or an array of k strings, into *out (NULL for null). */
static int read_names(jf_obj *r, const char *key, const json_t *v, int k, char ***out) {
    if (json_is_null(v)) return 0;
    if (!json_is_array(v) || json_array_size(v) != (size_t)k)
        return jf_fail(r, "field \"%s\" must be null or %d strings", key, k);
    if (!(*out = calloc((size_t)k, sizeof **out))) return loom_set_error("%s: out of memory", r->path);
    for (size_t i = 0; i < (size_t)k; i++) {
        const char *n = json_string_value(json_array_get(v, i));
        if (!n) return jf_fail(r, "%s[%zu] is not a string", key, i);
        if (!((*out)[i] = strdup(n))) return loom_set_error("%s: out of memory", r->path);
    }
    return 0;
}

static int read_data(run_info *ri, const json_t *v, const char *path) {
    jf_obj r;
    long long count = 0, classes = 0;
    if (jf_open(&r, v, path, "loom.run data")) return -1;
    jf_str(&r, "path", ri->data, sizeof ri->data);
    jf_str(&r, "format", ri->format, sizeof ri->format);
    jf_int(&r, "count", 0, LLONG_MAX, &count);
    char digest[24] = "";
    if (!jf_str(&r, "labels_digest", digest, sizeof digest)) ri->labels_digest = strtoull(digest, NULL, 16);
    jf_int(&r, "classes", 1, 1 << 20, &classes);
    const json_t *names = jf_get(&r, "names", -1), *labels = jf_get(&r, "labels", -1);
    model_side *s = &ri->side;
    read_shape(&r, "native", &s->native_c, &s->native_h, &s->native_w);
    read_shape(&r, "input", &s->c, &s->h, &s->w);
    if (jf_done(&r)) return -1;
    ri->count = (size_t)count;
    s->classes = (int)classes;
    if (read_names(&r, "names", names, (int)classes, &s->names)) return -1;
    return read_names(&r, "labels", labels, (int)classes, &s->labels);
}

static int read_epoch(const json_t *v, const char *path, size_t i, loom_epoch_metrics *m) {
    jf_obj r;
    long long e = 0, sk = 0;
    if (jf_open(&r, v, path, "loom.run history[%zu]", i)) return -1;
    jf_int(&r, "epoch", 1, INT_MAX, &e);
    jf_double(&r, "train_loss", &m->train_loss);
    jf_double(&r, "train_acc", &m->train_acc);
    jf_double(&r, "val_loss", &m->val_loss);
    jf_double(&r, "val_acc", &m->val_acc);
    jf_double(&r, "lr", &m->lr);
    jf_double(&r, "seconds", &m->seconds);
    jf_double(&r, "images_per_s", &m->images_per_s);
    jf_double(&r, "data_wait", &m->data_wait);
    jf_int(&r, "skipped", 0, LLONG_MAX, &sk);
    m->epoch = (int)e;
    m->skipped = (long)sk;
    return jf_done(&r);
}

int runinfo_read(run_info *ri, const loom_checkpoint *ck) {
    const char *path = loom_checkpoint_path(ck), *text = loom_checkpoint_meta(ck, "loom.run");
    runinfo_init(ri);
    if (!text) return loom_set_error("%s: no loom.run metadata (not written by loom train)", path);
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root) return loom_set_error("%s: metadata loom.run: JSON error at column %d: %s", path, je.column, je.text);
    jf_obj r;
    int rc = LOOM_ERR;
    if (jf_open(&r, root, path, "loom.run")) goto out;
    const json_t *opts = jf_get(&r, "options", JSON_OBJECT), *data = jf_get(&r, "data", JSON_OBJECT),
                 *hist = jf_get(&r, "history", JSON_ARRAY);
    if (jf_done(&r) || read_data(ri, data, path)) goto out;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)opts, k, v) {
        if (!json_is_string(v)) {
            loom_set_error("%s: loom.run options: \"%s\" must be a string", path, k);
            goto out;
        }
    }
    json_decref(ri->options);
    ri->options = json_deep_copy(opts);
    for (size_t i = 0; i < json_array_size(hist); i++) {
        loom_epoch_metrics m = {0};
        if (read_epoch(json_array_get(hist, i), path, i, &m) || runinfo_add_epoch(ri, &m)) goto out;
    }
    rc = LOOM_OK;
out:
    json_decref(root);
    if (rc) {
        runinfo_free(ri);
        runinfo_init(ri);
    }
    return rc;
}

int model_side_of_checkpoint(model_side *m, const loom_checkpoint *ck, const loom_graph *g) {
    memset(m, 0, sizeof *m);
    if (loom_checkpoint_meta(ck, "loom.run")) {
        run_info ri;
        if (runinfo_read(&ri, ck)) return LOOM_ERR;
        *m = ri.side;
        memset(&ri.side, 0, sizeof ri.side);
        runinfo_free(&ri);
        return LOOM_OK;
    }
    model_side_of_graph(m, g);
    return LOOM_OK;
}

void model_side_of_graph(model_side *m, const loom_graph *g) {
    memset(m, 0, sizeof *m);
    const loom_layer *in = loom_graph_layer(g, 0);
    m->classes = (int)loom_graph_layer(g, loom_graph_output(g))->size;
    m->c = m->native_c = in->c;
    m->h = m->native_h = in->h;
    m->w = m->native_w = in->w;
}
