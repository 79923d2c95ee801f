/* Training checkpoints (train_state.h): the trainer's options, the optimizer's
 * state and the fit state beside the model, as JSON metadata (safetensors
 * metadata values must be strings) and parameter-shaped tensors. */
#include "loom/train_state.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/jfield.h"
#include "loom/error.h"


/* json_object_set_new consumes v even on failure, and fails on a NULL v. */
static int put(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v) ? 1 : 0; }
static int put_i(json_t *o, const char *k, long long v) { return put(o, k, json_integer(v)); }
static int put_f(json_t *o, const char *k, double v) { return put(o, k, jf_number(v)); }
static char *dump(json_t *j) { return j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL; }

static void get_int(jf_obj *r, const char *k, int *dst) {
    long long v;
    if (!jf_int(r, k, INT_MIN, INT_MAX, &v)) *dst = (int)v;
}

static void get_long(jf_obj *r, const char *k, long *dst) {
    long long v;
    if (!jf_int(r, k, 0, LONG_MAX, &v)) *dst = (long)v;
}

/* ---- the trainer: options, optimizer settings, counters ------------------------ */

static char *trainer_text(loom_trainer *t) {
    const loom_trainer_opts *o = loom_trainer_options(t);
    const loom_optim_cfg *c = &o->optim;
    long ostep;
    double mu;
    loom_optim_get_scalars(loom_trainer_optim(t), &ostep, &mu);
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    json_t *j = json_object(), *oc = json_object();
    int bad = !j || !oc;
    bad |= put_i(j, "batch", o->batch) | put(j, "deterministic", json_boolean(o->deterministic)) |
           put_i(j, "shards", o->shards) | put(j, "seed", json_string(seed)) |
           put(j, "loss", json_string(loom_loss_name(o->loss))) | put_f(j, "clip_norm", o->clip_norm) |
           put_i(j, "step", loom_trainer_steps(t));
    bad |= put(oc, "kind", json_string(loom_optim_name(c->kind))) | put_f(oc, "momentum", c->momentum) |
           put(oc, "nesterov", json_boolean(c->nesterov)) | put_f(oc, "weight_decay", c->weight_decay) |
           put_f(oc, "l1", c->l1) | put_f(oc, "beta1", c->beta1) | put_f(oc, "beta2", c->beta2) |
           put_f(oc, "eps", c->eps) | put_f(oc, "alpha", c->alpha) | put_i(oc, "step", ostep) |
           put_f(oc, "mu_product", mu) | put_i(oc, "states", loom_optim_state_count(loom_trainer_optim(t)));
    bad |= put(j, "optim", oc);
    char *text = bad ? NULL : dump(j);
    json_decref(j);
    return text;
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

/* The optimizer part: settings into c, counters and state count out. */
static int read_optim(const json_t *v, const char *path, loom_optim_cfg *c, long *step, double *mu, int *states) {
    jf_obj r;
    char kind[32];
    long long k = 0;
    if (jf_open(&r, v, path, "loom.trainer optim")) return -1;
    if (!jf_str(&r, "kind", kind, sizeof kind)) {
        int kk = loom_optim_parse(kind);
        if (kk < 0) return jf_fail(&r, "unknown optimizer \"%s\"", kind);
        c->kind = (loom_optim_kind)kk;
    }
    jf_float(&r, "momentum", &c->momentum);
    jf_bool(&r, "nesterov", &c->nesterov);
    jf_float(&r, "weight_decay", &c->weight_decay);
    jf_float(&r, "l1", &c->l1);
    jf_float(&r, "beta1", &c->beta1);
    jf_float(&r, "beta2", &c->beta2);
    jf_float(&r, "eps", &c->eps);
    jf_float(&r, "alpha", &c->alpha);
    get_long(&r, "step", step);
    jf_double(&r, "mu_product", mu);
    jf_int(&r, "states", 0, 2, &k);
    *states = (int)k;
    return jf_done(&r);
}

static int read_trainer(const char *path, const json_t *j, loom_trainer_opts *o, long *step, long *ostep,
                        double *mu, int *states) {
    jf_obj r;
    char loss[16] = "";
    if (jf_open(&r, j, path, "loom.trainer")) return -1;
    get_int(&r, "batch", &o->batch);
    jf_bool(&r, "deterministic", &o->deterministic);
    get_int(&r, "shards", &o->shards);
    read_seed(&r, &o->seed);
    jf_str(&r, "loss", loss, sizeof loss);
    jf_float(&r, "clip_norm", &o->clip_norm);
    get_long(&r, "step", step);
    const json_t *oc = jf_get(&r, "optim", JSON_OBJECT);
    if (jf_done(&r)) return -1;
    int kind = -1;
    for (int k = 0; k <= LOOM_LOSS_HINGE; k++)
        if (!strcmp(loss, loom_loss_name((loom_loss_kind)k))) kind = k;
    if (kind < 0) return loom_fail(LOOM_EFORMAT, "%s: loom.trainer: unknown loss \"%s\"", path, loss);
    o->loss = (loom_loss_kind)kind;
    if (o->batch <= 0 || o->shards < 0)
        return loom_fail(LOOM_EFORMAT, "%s: loom.trainer: batch %d and shards %d are out of range", path, o->batch, o->shards);
    return read_optim(oc, path, &o->optim, ostep, mu, states);
}

/* ---- the fit state ------------------------------------------------------------------ */

static json_t *sched_json(const loom_schedule *h) {
    json_t *sc = json_object(), *ms = json_array();
    int bad = !sc || !ms;
    for (int i = 0; i < h->n_milestones; i++) bad |= json_array_append_new(ms, json_integer(h->milestones[i])) ? 1 : 0;
    bad |= put(sc, "kind", json_string(loom_schedule_kind_name(h->kind))) | put_f(sc, "base_lr", h->base_lr) |
           put_f(sc, "gamma", h->gamma) | put_i(sc, "step_size", h->step_size) | put(sc, "milestones", ms) |
           put_f(sc, "warmup_epochs", h->warmup_epochs) | put_f(sc, "min_lr", h->min_lr) |
           put_i(sc, "patience", h->patience) | put_i(sc, "epochs", h->epochs) |
           put_i(sc, "restart_epoch", h->restart_epoch) | put_f(sc, "restart_lr", h->restart_lr) |
           put_f(sc, "best", h->best) | put_i(sc, "bad_epochs", h->bad_epochs) |
           put_f(sc, "plateau_scale", h->plateau_scale);
    if (bad) {
        json_decref(sc);
        return NULL;
    }
    return sc;
}

static char *fit_text(const loom_fit_state *s, const char *path) {
    const loom_schedule *h = &s->sched;
    if ((int)h->kind < 0 || h->kind > LOOM_SCHED_PLATEAU || h->n_milestones < 0 ||
        h->n_milestones > LOOM_SCHED_MAX_MILESTONES) {
        loom_fail(LOOM_EINVAL, "%s: the fit state has an invalid schedule kind %d or milestone count %d", path, (int)h->kind,
                       h->n_milestones);
        return NULL;
    }
    json_t *j = json_object();
    int bad = !j;
    bad |= put_i(j, "epoch", s->epoch) | put_i(j, "batch", s->batch) | put_f(j, "loss_sum", s->loss_sum) |
           put_i(j, "correct", s->correct) | put_i(j, "seen", s->seen) | put_f(j, "seconds", s->seconds) |
           put_f(j, "data_wait", s->data_wait) | put_f(j, "best_metric", s->best_metric) |
           put_i(j, "best_epoch", s->best_epoch) | put_i(j, "since_best", s->since_best) |
           put(j, "sched", sched_json(h));
    char *text = bad ? NULL : dump(j);
    json_decref(j);
    return text;
}

static int read_sched(const json_t *v, const char *path, loom_schedule *h) {
    jf_obj r;
    char kind[32];
    if (jf_open(&r, v, path, "loom.fit sched")) return -1;
    if (!jf_str(&r, "kind", kind, sizeof kind)) {
        int k = loom_schedule_kind_parse(kind);
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
    get_int(&r, "restart_epoch", &h->restart_epoch);
    jf_float(&r, "restart_lr", &h->restart_lr);
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

static int read_fit(const char *path, const json_t *j, loom_fit_state *s) {
    jf_obj r;
    if (jf_open(&r, j, path, "loom.fit")) return -1;
    get_int(&r, "epoch", &s->epoch);
    get_long(&r, "batch", &s->batch);
    jf_double(&r, "loss_sum", &s->loss_sum);
    get_long(&r, "correct", &s->correct);
    get_long(&r, "seen", &s->seen);
    jf_double(&r, "seconds", &s->seconds);
    jf_double(&r, "data_wait", &s->data_wait);
    jf_double(&r, "best_metric", &s->best_metric);
    get_int(&r, "best_epoch", &s->best_epoch);
    get_int(&r, "since_best", &s->since_best);
    const json_t *sc = jf_get(&r, "sched", JSON_OBJECT);
    if (jf_done(&r)) return -1;
    if (s->epoch < 0) return loom_fail(LOOM_EFORMAT, "%s: loom.fit: epoch %d is negative", path, s->epoch);
    return read_sched(sc, path, &s->sched);
}

/* ---- saving and reading --------------------------------------------------------- */

/* The optimizer's state arrays as parameter-shaped tensors "optim.K.". */
static loom_ckpt_tensor *optim_views(loom_graph *g, loom_optim *opt, char (**names)[LOOM_CKPT_NAME_MAX], size_t *n) {
    int ns = loom_optim_state_count(opt);
    size_t per = loom_checkpoint_param_views(g, "", NULL, NULL, NULL, 0);
    *n = per * (size_t)ns;
    loom_ckpt_tensor *v = calloc(*n + 1, sizeof *v);
    *names = calloc(*n + 1, sizeof **names);
    if (!v || !*names) {
        free(v);
        free(*names);
        *names = NULL;
        loom_fail(LOOM_ENOMEM, "out of memory describing the optimizer state");
        return NULL;
    }
    for (int k = 0; k < ns; k++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "optim.%d.", k);
        loom_checkpoint_param_views(g, prefix, loom_optim_state(opt, k), v + per * (size_t)k, *names + per * (size_t)k,
                                    per);
    }
    return v;
}

int loom_train_save(const char *path, loom_trainer *t, const loom_fit_state *st, const loom_ckpt_meta *meta,
                    int nmeta) {
    if (!t || !st)
        return loom_fail(LOOM_EINVAL, "%s: loom_train_save needs %s (a model alone: loom_checkpoint_save)",
                         path ? path : "?", !t ? "a trainer" : "the fit state");
    loom_graph *g = loom_trainer_graph(t);
    char *ttext = trainer_text(t), *ftext = fit_text(st, path);
    loom_ckpt_meta *all = calloc((size_t)nmeta + 2, sizeof *all);
    char(*names)[LOOM_CKPT_NAME_MAX] = NULL;
    size_t nt = 0;
    loom_ckpt_tensor *views = optim_views(g, loom_trainer_optim(t), &names, &nt);
    int rc = LOOM_ERR;
    if (!ttext || !ftext || !all || !views) {
        if (ftext) loom_fail(LOOM_ENOMEM, "%s: out of memory describing the training state", path);
        goto out;
    }
    int n = 0;
    all[n++] = (loom_ckpt_meta){"loom.trainer", ttext};
    all[n++] = (loom_ckpt_meta){"loom.fit", ftext};
    for (int i = 0; i < nmeta; i++) all[n++] = meta[i];
    loom_ckpt_extra ex = {.meta = all, .nmeta = n, .tensors = views, .ntensors = nt};
    rc = loom_checkpoint_save(path, g, &ex);
out:
    free(ttext);
    free(ftext);
    free(all);
    free(views);
    free(names);
    return rc;
}

/* What loom.trainer and loom.fit hold, parsed. */
static int read_all(const loom_checkpoint *ck, loom_trainer_opts *o, loom_fit_state *st, long *step, long *ostep,
                    double *mu, int *states) {
    const char *path = loom_checkpoint_path(ck);
    const char *tt = loom_checkpoint_meta(ck, "loom.trainer"), *ft = loom_checkpoint_meta(ck, "loom.fit");
    if (loom_checkpoint_version(ck) < 2)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: written by an older loom (format 1): its weights load, but its training state "
                              "cannot be resumed; start a new run from it with --init",
                              path);
    if (!tt || !ft)
        return loom_fail(LOOM_EFORMAT, "%s: holds a model but no training state (loom.%s): nothing to resume", path,
                              !tt ? "trainer" : "fit");
    json_error_t je;
    json_t *tj = json_loads(tt, JSON_REJECT_DUPLICATES, &je), *fj = NULL;
    int rc = LOOM_ERR;
    if (!tj) {
        loom_fail(LOOM_EFORMAT, "%s: metadata loom.trainer: JSON error at column %d: %s", path, je.column, je.text);
        goto out;
    }
    if (!(fj = json_loads(ft, JSON_REJECT_DUPLICATES, &je))) {
        loom_fail(LOOM_EFORMAT, "%s: metadata loom.fit: JSON error at column %d: %s", path, je.column, je.text);
        goto out;
    }
    memset(o, 0, sizeof *o);
    loom_fit_state_init(st, NULL);
    if (read_trainer(path, tj, o, step, ostep, mu, states) || read_fit(path, fj, st)) goto out;
    rc = LOOM_OK;
out:
    json_decref(tj);
    json_decref(fj);
    return rc;
}

int loom_train_read(const loom_checkpoint *ck, loom_trainer_opts *o, loom_fit_state *st) {
    long step, ostep;
    double mu;
    int states;
    return read_all(ck, o, st, &step, &ostep, &mu, &states);
}

int loom_train_restore(loom_checkpoint *ck, loom_trainer *t) {
    const char *path = loom_checkpoint_path(ck);
    loom_trainer_opts o;
    loom_fit_state st;
    long step = 0, ostep = 0;
    double mu = 1;
    int states = 0;
    if (read_all(ck, &o, &st, &step, &ostep, &mu, &states)) return LOOM_ERR;
    loom_optim *opt = loom_trainer_optim(t);
    loom_optim_kind kind = loom_optim_kind_of(opt);
    if (kind != o.optim.kind)
        return loom_fail(LOOM_EINVAL, "%s: the checkpoint holds %s optimizer state, the trainer's optimizer is %s", path,
                              loom_optim_name(o.optim.kind), loom_optim_name(kind));
    if (states != loom_optim_state_count(opt))
        return loom_fail(LOOM_EINVAL, "%s: the checkpoint holds %d optimizer state arrays, the optimizer has %d "
                              "(a different momentum setting?)",
                              path, states, loom_optim_state_count(opt));
    loom_graph *g = loom_trainer_graph(t);
    char(*names)[LOOM_CKPT_NAME_MAX] = NULL;
    size_t n = 0;
    loom_ckpt_tensor *views = optim_views(g, opt, &names, &n);
    if (!views) return LOOM_ERR;
    int rc = LOOM_OK;
    for (size_t i = 0; i < n && rc == LOOM_OK; i++) rc = loom_checkpoint_read(ck, &views[i]);
    free(views);
    free(names);
    if (rc) return rc;
    loom_optim_set_scalars(opt, ostep, mu);
    loom_trainer_set_steps(t, step);
    return LOOM_OK;
}
