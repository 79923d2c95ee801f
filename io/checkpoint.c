/* Checkpoints: what loom keeps in a safetensors file and how it gets it back.
 * Tensors are named as PyTorch names a state dict ("conv2d_1.weight" of shape
 * [oc, c/groups, kh, kw], "batchnorm_1.running_mean", ...) so other tools can
 * read them; the metadata holds the architecture (loom.graph), the training
 * state (loom.state) and the optimizer's scalars (loom.optim), each as JSON
 * text because safetensors metadata values must be strings. */
#include "loom/checkpoint.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_json.h"
#include "jfield.h"
#include "loom/error.h"
#include "safetensors.h"

#define FORMAT_VERSION "1"

enum { PART_WEIGHT, PART_BIAS, PART_MEAN, PART_VAR };
static const char *const part_names[] = {"weight", "bias", "running_mean", "running_var"};

static const char *const sched_names[] = {"const", "step", "multistep", "exp", "cosine", "plateau"};
#define N_SCHED ((int)(sizeof sched_names / sizeof *sched_names))

/* One tensor of a graph (or of its optimizer's state). */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[4];
    size_t count;
    int layer, part;
    int state;                 /* -1: the model's; k: optimizer state array k */
    const sft_tensor *file;    /* its entry when loading */
} slot;

static void shape_of(const loom_layer *l, int part, slot *s) {
    s->ndim = 1;
    s->shape[0] = l->c;
    if (part == PART_WEIGHT && l->op == LOOM_OP_DENSE) {
        s->ndim = 2;
        s->shape[0] = l->a.dense.out;
        s->shape[1] = l->a.dense.in;
    } else if (part == PART_WEIGHT && l->op == LOOM_OP_CONV2D) {
        const loom_conv_shape *c = &l->a.conv;
        s->ndim = 4;
        s->shape[0] = c->oc;
        s->shape[1] = c->c / c->groups;
        s->shape[2] = c->kh;
        s->shape[3] = c->kw;
    }
    s->count = 1;
    for (int d = 0; d < s->ndim; d++) s->count *= (size_t)s->shape[d];
}

/* The tensors of g in file order: every layer's, then each optimizer state
 * array's over the parameters in the same order. Needs only the layers'
 * counts, not their offsets, so it works on an unfinished graph. With out
 * NULL, just counts. */
static size_t plan(const loom_graph *g, int nstates, slot *out) {
    size_t n = 0;
    for (int k = -1; k < nstates; k++) {
        for (int i = 0; i < loom_graph_count(g); i++) {
            const loom_layer *l = loom_graph_layer(g, i);
            if (!l->param_count) continue;
            int nparts = l->param_count > l->weight_count ? 2 : 1;
            if (k < 0 && l->buf_count) nparts = 4;
            for (int p = 0; p < nparts; p++, n++) {
                if (!out) continue;
                slot *s = &out[n];
                s->layer = i;
                s->part = p;
                s->state = k;
                if (k < 0) snprintf(s->name, sizeof s->name, "%s.%s", l->name, part_names[p]);
                else snprintf(s->name, sizeof s->name, "optim.%d.%s.%s", k, l->name, part_names[p]);
                shape_of(l, p, s);
            }
        }
    }
    return n;
}

/* Where slot s lives in memory (the graph must be finished). */
static float *where(loom_graph *g, loom_optim *opt, const slot *s) {
    const loom_layer *l = loom_graph_layer(g, s->layer);
    float *base = s->state >= 0 ? loom_optim_state(opt, s->state)
                  : s->part >= PART_MEAN ? loom_graph_buffers(g) : loom_graph_params(g);
    switch (s->part) {
    case PART_WEIGHT: return base + l->param_off;
    case PART_BIAS: return base + l->param_off + l->weight_count;
    case PART_MEAN: return base + l->buf_off;
    default: return base + l->buf_off + (size_t)l->c;
    }
}

/* ---- the training state as JSON ------------------------------------------------ */

/* json_object_set_new consumes v even on failure, and fails on a NULL v. */
static int put(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v) ? 1 : 0; }
static int put_i(json_t *o, const char *k, long long v) { return put(o, k, json_integer(v)); }
static int put_f(json_t *o, const char *k, double v) { return put(o, k, jf_number(v)); }

/* A fixed-size char field as a JSON string; it must be valid UTF-8. */
static int put_s(json_t *o, const char *k, const char *buf, size_t cap, const char *path) {
    json_t *v = json_stringn(buf, strnlen(buf, cap));
    if (!v) {
        loom_set_error("%s: training state field %s is not valid UTF-8 text", path, k);
        return 2;
    }
    return put(o, k, v);
}

static char *dump(json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)); }

static char *state_text(const loom_train_state *s, const char *path) {
    const loom_optim_cfg *c = &s->optim;
    const loom_schedule *h = &s->sched;
    if (loom_optim_parse(loom_optim_name(c->kind)) < 0 || (int)h->kind < 0 || (int)h->kind >= N_SCHED ||
        h->n_milestones < 0 || h->n_milestones > LOOM_SCHED_MAX_MILESTONES) {
        loom_set_error("%s: the training state has an invalid optimizer kind %d, schedule kind %d "
                       "or milestone count %d", path, (int)c->kind, (int)h->kind, h->n_milestones);
        return NULL;
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, s->seed);
    json_t *o = json_object(), *oc = json_object(), *sc = json_object(), *ms = json_array();
    int bad = put_i(o, "epoch", s->epoch) | put_i(o, "step", s->step) | put(o, "seed", json_string(seed)) |
              put_i(o, "epochs", s->epochs) | put_f(o, "best_metric", s->best_metric);
    bad |= put(oc, "kind", json_string(loom_optim_name(c->kind))) | put_f(oc, "lr", c->lr) |
           put_f(oc, "momentum", c->momentum) | put(oc, "nesterov", json_boolean(c->nesterov)) |
           put_f(oc, "weight_decay", c->weight_decay) | put_f(oc, "l1", c->l1) |
           put_f(oc, "beta1", c->beta1) | put_f(oc, "beta2", c->beta2) | put_f(oc, "eps", c->eps) |
           put_f(oc, "alpha", c->alpha);
    bad |= put(o, "optim", oc);
    for (int i = 0; i < h->n_milestones; i++) bad |= json_array_append_new(ms, json_integer(h->milestones[i])) ? 1 : 0;
    bad |= put(sc, "kind", json_string(sched_names[h->kind])) | put_f(sc, "base_lr", h->base_lr) |
           put_f(sc, "gamma", h->gamma) | put_i(sc, "step_size", h->step_size) | put(sc, "milestones", ms) |
           put_f(sc, "warmup_epochs", h->warmup_epochs) | put_f(sc, "min_lr", h->min_lr) |
           put_i(sc, "patience", h->patience) | put_i(sc, "epochs", h->epochs) | put_f(sc, "best", h->best) |
           put_i(sc, "bad_epochs", h->bad_epochs) | put_f(sc, "plateau_scale", h->plateau_scale);
    bad |= put(o, "sched", sc);
    bad |= put_i(o, "batch", s->batch) | put(o, "deterministic", json_boolean(s->deterministic)) |
           put_s(o, "model", s->model, sizeof s->model, path) | put_i(o, "input_c", s->input_c) |
           put_i(o, "input_h", s->input_h) | put_i(o, "input_w", s->input_w) |
           put_i(o, "classes", s->classes) | put_s(o, "augment", s->augment, sizeof s->augment, path) |
           put_s(o, "class_names", s->class_names, sizeof s->class_names, path);
    char *text = bad ? NULL : dump(o);
    json_decref(o);
    if (!text && !(bad & 2)) loom_set_error("%s: out of memory describing the training state", path);
    return text;
}

static void get_int(jf_obj *r, const char *k, int *dst) {
    long long v;
    if (!jf_int(r, k, INT_MIN, INT_MAX, &v)) *dst = (int)v;
}

static int read_optim_cfg(const json_t *v, const char *path, loom_optim_cfg *c) {
    jf_obj r;
    char kind[32];
    if (jf_open(&r, v, path, "loom.state optim")) return -1;
    if (!jf_str(&r, "kind", kind, sizeof kind)) {
        int k = loom_optim_parse(kind);
        if (k < 0) return jf_fail(&r, "unknown optimizer \"%s\"", kind);
        c->kind = (loom_optim_kind)k;
    }
    jf_float(&r, "lr", &c->lr);
    jf_float(&r, "momentum", &c->momentum);
    jf_bool(&r, "nesterov", &c->nesterov);
    jf_float(&r, "weight_decay", &c->weight_decay);
    jf_float(&r, "l1", &c->l1);
    jf_float(&r, "beta1", &c->beta1);
    jf_float(&r, "beta2", &c->beta2);
    jf_float(&r, "eps", &c->eps);
    jf_float(&r, "alpha", &c->alpha);
    return jf_done(&r);
}

static int read_sched(const json_t *v, const char *path, loom_schedule *h) {
    jf_obj r;
    char kind[32];
    if (jf_open(&r, v, path, "loom.state sched")) return -1;
    if (!jf_str(&r, "kind", kind, sizeof kind)) {
        int k = -1;
        for (int i = 0; i < N_SCHED && k < 0; i++)
            if (!strcmp(kind, sched_names[i])) k = i;
        if (k < 0) return jf_fail(&r, "unknown schedule \"%s\"", kind);
        h->kind = (loom_sched_kind)k;
    }
    jf_float(&r, "base_lr", &h->base_lr);
    jf_float(&r, "gamma", &h->gamma);
    get_int(&r, "step_size", &h->step_size);
    const json_t *ms = jf_get(&r, "milestones", JSON_ARRAY);
    jf_float(&r, "warmup_epochs", &h->warmup_epochs);
    jf_float(&r, "min_lr", &h->min_lr);
    get_int(&r, "patience", &h->patience);
    get_int(&r, "epochs", &h->epochs);
    jf_double(&r, "best", &h->best);
    get_int(&r, "bad_epochs", &h->bad_epochs);
    jf_float(&r, "plateau_scale", &h->plateau_scale);
    if (jf_done(&r)) return -1;
    size_t n = json_array_size(ms);
    if (n > LOOM_SCHED_MAX_MILESTONES)
        return jf_fail(&r, "%zu milestones (at most %d)", n, LOOM_SCHED_MAX_MILESTONES);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(ms, i);
        if (!json_is_integer(m) || json_integer_value(m) < INT_MIN || json_integer_value(m) > INT_MAX)
            return jf_fail(&r, "milestones must be integers");
        h->milestones[i] = (int)json_integer_value(m);
    }
    h->n_milestones = (int)n;
    return 0;
}

static int read_seed(jf_obj *r, uint64_t *seed) {
    char buf[32];
    if (jf_str(r, "seed", buf, sizeof buf)) return -1;
    /* strtoull would accept a sign, spaces and wrap-around; a seed is digits only. */
    uint64_t v = 0;
    size_t n = strlen(buf);
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(buf[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10) n = 0;
        else v = v * 10 + d;
    }
    if (n == 0) return jf_fail(r, "field \"seed\" must be a decimal number below 2^64");
    *seed = v;
    return 0;
}

static json_t *parse_meta(const char *path, const char *key, const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        loom_set_error("%s: metadata %s: JSON error at line %d, column %d: %s", path, key, je.line,
                       je.column, je.text);
    return j;
}

static int read_state(const char *path, const char *text, loom_train_state *s) {
    memset(s, 0, sizeof *s);
    json_t *root = parse_meta(path, "loom.state", text);
    if (!root) return -1;
    jf_obj r;
    long long step = 0;
    int rc = -1;
    if (jf_open(&r, root, path, "loom.state")) goto out;
    get_int(&r, "epoch", &s->epoch);
    if (!jf_int(&r, "step", LONG_MIN, LONG_MAX, &step)) s->step = (long)step;
    read_seed(&r, &s->seed);
    get_int(&r, "epochs", &s->epochs);
    jf_double(&r, "best_metric", &s->best_metric);
    const json_t *oc = jf_get(&r, "optim", JSON_OBJECT);
    const json_t *sc = jf_get(&r, "sched", JSON_OBJECT);
    get_int(&r, "batch", &s->batch);
    jf_bool(&r, "deterministic", &s->deterministic);
    jf_str(&r, "model", s->model, sizeof s->model);
    get_int(&r, "input_c", &s->input_c);
    get_int(&r, "input_h", &s->input_h);
    get_int(&r, "input_w", &s->input_w);
    get_int(&r, "classes", &s->classes);
    jf_str(&r, "augment", s->augment, sizeof s->augment);
    jf_str(&r, "class_names", s->class_names, sizeof s->class_names);
    if (jf_done(&r) || read_optim_cfg(oc, path, &s->optim) || read_sched(sc, path, &s->sched)) goto out;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The optimizer's scalars and how many state arrays it has. */
static char *optim_text(loom_optim *opt, const char *path) {
    long step;
    double mu;
    loom_optim_get_scalars(opt, &step, &mu);
    json_t *o = json_object();
    int bad = put_i(o, "states", loom_optim_state_count(opt)) | put_i(o, "step", step) |
              put_f(o, "mu_product", mu) | put(o, "kind", json_string(loom_optim_name(loom_optim_kind_of(opt))));
    char *text = bad ? NULL : dump(o);
    json_decref(o);
    if (!text) loom_set_error("%s: out of memory describing the optimizer", path);
    return text;
}

static int read_optim(const char *path, const char *text, int *states, long *step, double *mu, char *kind,
                      size_t kcap) {
    json_t *root = parse_meta(path, "loom.optim", text);
    if (!root) return -1;
    jf_obj r;
    long long k = 0, t = 0;
    int rc = -1;
    if (!jf_open(&r, root, path, "loom.optim")) {
        jf_int(&r, "states", 0, 2, &k);
        jf_int(&r, "step", 0, LONG_MAX, &t);
        jf_double(&r, "mu_product", mu);
        jf_str(&r, "kind", kind, kcap);
        rc = jf_done(&r);
    }
    json_decref(root);
    *states = (int)k;
    *step = (long)t;
    return rc;
}

/* ---- saving --------------------------------------------------------------------- */

int loom_checkpoint_save(const char *path, loom_graph *g, const loom_train_state *st, loom_optim *opt) {
    if (!path || !g) return loom_set_error("loom_checkpoint_save: no %s", path ? "graph" : "path");
    if (!loom_graph_params(g))
        return loom_set_error("%s: graph %s is not finished (call loom_graph_finish first)", path,
                              loom_graph_name(g));
    int nstates = opt ? loom_optim_state_count(opt) : 0;
    json_t *meta = json_object(), *gj = gj_encode(g, path);
    char *gtext = gj ? dump(gj) : NULL, *stext = NULL, *otext = NULL;
    slot *slots = NULL;
    sft_out *outs = NULL;
    int rc = LOOM_ERR;
    if (!gj) goto out;
    if (st && !(stext = state_text(st, path))) goto out;
    if (opt && !(otext = optim_text(opt, path))) goto out;
    size_t n = plan(g, nstates, NULL);
    slots = calloc(n + 1, sizeof *slots);
    outs = calloc(n + 1, sizeof *outs);
    int bad = !gtext || !slots || !outs || put(meta, "loom.version", json_string(FORMAT_VERSION)) ||
              put(meta, "loom.graph", json_string(gtext)) ||
              (stext && put(meta, "loom.state", json_string(stext))) ||
              (otext && put(meta, "loom.optim", json_string(otext)));
    if (bad) {
        loom_set_error("%s: out of memory preparing the checkpoint", path);
        goto out;
    }
    plan(g, nstates, slots);
    for (size_t i = 0; i < n; i++) {
        outs[i].name = slots[i].name;
        outs[i].ndim = slots[i].ndim;
        memcpy(outs[i].shape, slots[i].shape, sizeof outs[i].shape);
        outs[i].data = where(g, opt, &slots[i]);
        outs[i].count = slots[i].count;
    }
    rc = sft_write(path, meta, outs, n);
out:
    json_decref(meta);
    json_decref(gj);
    free(gtext);
    free(stext);
    free(otext);
    free(slots);
    free(outs);
    return rc;
}

/* ---- loading -------------------------------------------------------------------- */

/* Match the tensors the architecture needs against the file's, both ways. */
static int match(sft_file *f, slot *slots, size_t n) {
    char *seen = calloc(f->n + 1, 1);
    if (!seen) return loom_set_error("%s: out of memory", f->path);
    int rc = LOOM_OK;
    for (size_t i = 0; i < n && rc == LOOM_OK; i++) {
        slot *s = &slots[i];
        const sft_tensor *t = sft_find(f, s->name);
        if (!t) {
            rc = loom_set_error("%s: tensor %s is missing (the architecture in loom.graph needs it)", f->path,
                                s->name);
            break;
        }
        int same = t->ndim == s->ndim;
        for (int d = 0; d < s->ndim && same; d++) same = t->shape[d] == s->shape[d];
        if (!same) {
            char a[128], b[128];
            rc = loom_set_error("%s: tensor %s: shape %s expected, file has %s", f->path, s->name,
                                sft_shape_str(s->shape, s->ndim, a, sizeof a),
                                sft_shape_str(t->shape, t->ndim, b, sizeof b));
        }
        seen[t - f->t] = 1;
        s->file = t;
    }
    for (size_t i = 0; i < f->n && rc == LOOM_OK; i++)
        if (!seen[i])
            rc = loom_set_error("%s: unknown tensor %s (not part of the architecture in loom.graph%s)",
                                f->path, f->t[i].name,
                                strncmp(f->t[i].name, "optim.", 6) ? "" : " or the optimizer state");
    free(seen);
    return rc;
}

/* Everything loading does. With opt, the optimizer's state is read into it
 * instead of the model's tensors into the graph. */
static loom_graph *load(const char *path, loom_train_state *st, loom_optim *opt) {
    if (!path) {
        loom_set_error("loom_checkpoint_load: no path");
        return NULL;
    }
    sft_file f;
    if (sft_open(&f, path)) return NULL;
    loom_graph *g = NULL;
    json_t *gj = NULL;
    slot *slots = NULL;
    loom_train_state state;
    memset(&state, 0, sizeof state);
    int nstates = 0, ok = 0;
    long ostep = 0;
    double mu = 1.0;

    const char *ver = sft_meta(&f, "loom.version"), *gtext = sft_meta(&f, "loom.graph");
    const char *stext = sft_meta(&f, "loom.state"), *otext = sft_meta(&f, "loom.optim");
    if (!f.meta || !ver || !gtext) {
        loom_set_error("%s: %s: not a loom checkpoint", path,
                       !f.meta ? "no __metadata__ in the header"
                       : !ver  ? "the metadata has no loom.version"
                               : "the metadata has no loom.graph (the architecture)");
        goto out;
    }
    if (strcmp(ver, FORMAT_VERSION)) {
        loom_set_error("%s: loom.version \"%.32s\" is not supported (this loom reads " FORMAT_VERSION ")",
                       path, ver);
        goto out;
    }
    if (!(gj = parse_meta(path, "loom.graph", gtext)) || !(g = gj_decode(gj, path))) goto out;
    char okind[32] = "";
    if (otext && read_optim(path, otext, &nstates, &ostep, &mu, okind, sizeof okind)) goto out;
    if (stext && read_state(path, stext, &state)) goto out;
    if (opt && !otext) {
        loom_set_error("%s: the checkpoint has no optimizer state", path);
        goto out;
    }
    if (opt && strcmp(okind, loom_optim_name(loom_optim_kind_of(opt)))) {
        loom_set_error("%s: the checkpoint holds %s optimizer state, the optimizer is %s", path, okind,
                       loom_optim_name(loom_optim_kind_of(opt)));
        goto out;
    }
    if (opt && nstates != loom_optim_state_count(opt)) {
        loom_set_error("%s: the checkpoint holds %d optimizer state arrays, the optimizer has %d "
                       "(a different optimizer or momentum setting?)", path, nstates,
                       loom_optim_state_count(opt));
        goto out;
    }
    size_t n = plan(g, nstates, NULL);
    if (!(slots = calloc(n + 1, sizeof *slots))) {
        loom_set_error("%s: out of memory", path);
        goto out;
    }
    plan(g, nstates, slots);
    /* Every tensor is now known to lie inside the file, so what finish
     * allocates is bounded by the file's size. */
    if (match(&f, slots, n)) goto out;
    if (loom_graph_finish(g, 0) != LOOM_OK) {
        loom_set_error("%s: %s", path, loom_graph_error(g)[0] ? loom_graph_error(g) : "out of memory");
        goto out;
    }
    if (opt && loom_optim_size(opt) != loom_graph_param_count(g)) {
        loom_set_error("%s: the optimizer has %zu parameters, the checkpoint's model %zu", path,
                       loom_optim_size(opt), loom_graph_param_count(g));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((slots[i].state >= 0) != (opt != NULL)) continue;
        if (sft_read(&f, slots[i].file, where(g, opt, &slots[i]))) goto out;
    }
    if (opt) loom_optim_set_scalars(opt, ostep, mu);
    if (st) *st = state;
    ok = 1;
out:
    sft_close(&f);
    json_decref(gj);
    free(slots);
    if (!ok) {
        loom_graph_free(g);
        g = NULL;
    }
    return g;
}

loom_graph *loom_checkpoint_load(const char *path, loom_train_state *st) { return load(path, st, NULL); }

int loom_checkpoint_load_optim(const char *path, loom_optim *opt) {
    if (!opt) return loom_set_error("%s: loom_checkpoint_load_optim: no optimizer", path ? path : "?");
    loom_graph *g = load(path, NULL, opt);
    if (!g) return LOOM_ERR;
    loom_graph_free(g);
    return LOOM_OK;
}
