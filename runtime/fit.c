/* The epoch loop shared by `loom train` and programs using the library. All
 * it knows of where training stands lives in the fit state, updated after
 * every batch, so a stop between two batches (or during validation) leaves a
 * state from which the run continues bit for bit. */
#include "loom/fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/error.h"
#include "loom/schedule.h"
#include "kernels/clock.h"

/* A mean loss above this is divergence, whatever the model: cross-entropy at
 * chance is ln(classes), a few units. */
#define DIVERGED_LOSS 1e6
/* Steps between checks that every rank's model is still rank 0's (a checksum each). */
#define CHECK_EVERY 200
/* --on-nan skip: this many skipped steps in a row is divergence all the same. */
#define MAX_SKIPS 20

void loom_fit_state_init(loom_fit_state *st, const loom_schedule *sched) {
    memset(st, 0, sizeof *st);
    st->best_metric = -1;
    if (sched) st->sched = *sched;
}

static int stop_asked(const loom_fit_opts *o) { return o->stop && atomic_load(o->stop); }

/* Several ranks: whether the flag is set on any of them (all call it at the same point, so that all stop
 * at the same step); LOOM_ERR if they cannot tell. One rank: the flag. */
static int any_rank(loom_trainer *t, int flag) {
    loom_dist *d = loom_trainer_options(t)->dist;
    int R = loom_dist_size(d), all[LOOM_EXEC_MAX_REPLICAS];
    if (R <= 1 || R > LOOM_EXEC_MAX_REPLICAS) return flag;
    if (loom_dist_allgather(d, &flag, sizeof flag, all)) return LOOM_ERR;
    for (int r = 0; r < R; r++)
        if (all[r]) return 1;
    return 0;
}

/* Several ranks: whether every rank got its part of the next batch (each calls it once per batch, before
 * the step, with what loom_loader_next gave it: 1 a batch, 0 the epoch's end, LOOM_ERR unreadable). All
 * agree, or all stop: a rank whose loader failed says which sample, the others name that rank. */
static int batch_agreed(loom_trainer *t, int mine) {
    loom_dist *d = loom_trainer_options(t)->dist;
    int R = loom_dist_size(d), all[LOOM_EXEC_MAX_REPLICAS];
    if (R <= 1 || R > LOOM_EXEC_MAX_REPLICAS) return mine;
    char err[400];
    snprintf(err, sizeof err, "%s", loom_error());
    int kind = loom_error_kind();
    if (loom_dist_allgather(d, &mine, sizeof mine, all)) return LOOM_ERR;
    if (mine < 0) return loom_fail(kind, "%s", err);
    for (int r = 0; r < R; r++) {
        if (all[r] < 0)
            return loom_fail(LOOM_EIO, "rank %d of %d could not read its part of the batch (its message names the "
                                       "sample); every rank stops", r, R);
        if (all[r] != mine)
            return loom_fail(LOOM_EINVAL, "rank %d of %d has %s batches than rank %d: the ranks do not read the same "
                                          "data", r, R, all[r] > mine ? "more" : "fewer", loom_dist_rank(d));
    }
    return mine;
}

/* One pass over ds in inference mode through l. 1 if stopped, else LOOM_OK/LOOM_ERR. */
static int run_eval(loom_trainer *t, loom_loader *l, const loom_fit_opts *o, int epoch, double *loss, double *acc) {
    double lsum = 0, t0 = loom_seconds();
    long correct = 0, seen = 0, bi = 0, nb = loom_loader_batches(l);
    int rc = loom_loader_start(l, 0);
    loom_batch *b;
    while (rc == LOOM_OK) {
        int mine = loom_loader_next(l, &b);
        if ((rc = batch_agreed(t, mine)) != 1) {
            if (mine == 1) loom_loader_release(l, b);
            break;
        }
        double ls;
        int c;
        rc = LOOM_OK;
        if (b->global_n > 0) { /* every rank, with or without samples of its own: the sums are the batch's */
            rc = loom_trainer_eval(t, b->x, b->y, b->global_n, &ls, &c, NULL);
            lsum += ls;
            correct += c;
            seen += b->global_n;
        }
        loom_loader_release(l, b);
        bi++;
        if (rc == LOOM_OK && o && o->on_progress) {
            double el = loom_seconds() - t0;
            loom_progress p = {.phase = LOOM_FIT_VALIDATING, .epoch = epoch, .epochs = o->epochs, .batch = bi,
                               .batches = nb, .loss = seen ? lsum / (double)seen : 0,
                               .acc = seen ? (double)correct / (double)seen : 0,
                               .images_per_s = el > 0 ? (double)seen / el : 0, .elapsed = el};
            o->on_progress(&p, o->user);
        }
        if (rc == LOOM_OK && o) {
            int stop = any_rank(t, stop_asked(o));
            if (stop) return stop;
        }
    }
    if (rc < 0) return LOOM_ERR;
    if (!seen) return loom_fail(LOOM_EINVAL, "no samples to evaluate");
    *loss = lsum / (double)seen;
    *acc = (double)correct / (double)seen;
    return LOOM_OK;
}

static loom_loader *eval_loader(loom_trainer *t, loom_dataset *ds, int producers, const struct loom_augment *aug,
                                int skip_bad) {
    const loom_layer *in = loom_graph_layer(loom_trainer_graph(t), 0);
    loom_dist *d = loom_trainer_options(t)->dist;
    loom_loader_opts lo = {.batch = loom_trainer_batch(t), .producers = producers, .augment = aug,
                           .out_c = in->c, .out_h = in->h, .out_w = in->w, .skip_bad = skip_bad,
                           .part = loom_dist_rank(d), .parts = loom_dist_size(d)};
    return loom_loader_new(ds, &lo);
}

int loom_evaluate(loom_trainer *t, loom_dataset *ds, int producers, const struct loom_augment *aug, double *loss,
                  double *acc) {
    if (!t || !ds) return loom_fail(LOOM_EINVAL, "loom_evaluate: no %s", t ? "data" : "trainer");
    if (!ds->labeled) return loom_fail(LOOM_EINVAL, "%s: data without labels cannot be scored", ds->path);
    loom_loader *l = eval_loader(t, ds, producers, aug, 0);
    if (!l) return LOOM_ERR;
    int rc = run_eval(t, l, NULL, 0, loss, acc);
    if (rc == LOOM_ERR && !strcmp(loom_error(), "no samples to evaluate"))
        loom_fail(LOOM_EINVAL, "%s: no samples to evaluate", ds->path);
    loom_loader_free(l);
    return rc;
}

/* The training batches of epoch ep from st->batch on. 1 if stopped, else LOOM_OK/LOOM_ERR. */
static int train_epoch(loom_trainer *t, loom_loader *l, const loom_fit_opts *o, loom_fit_state *st, int ep) {
    long nb = loom_loader_batches(l);
    if (loom_loader_start_at(l, ep, st->batch)) return LOOM_ERR;
    loom_loader_wait_seconds(l);
    double t0 = loom_seconds(), before = st->seconds;
    long seen0 = st->seen;
    int rc = LOOM_OK, got, skips_in_a_row = 0;
    loom_batch *b;
    for (;;) {
        int mine = loom_loader_next(l, &b);
        if ((got = batch_agreed(t, mine)) != 1) {
            if (mine == 1) loom_loader_release(l, b);
            break;
        }
        float lr = loom_schedule_lr(&st->sched, ep - 1, (double)st->batch / (double)nb);
        loom_step_result r = {0};
        int n = b->global_n; /* with several ranks b holds this rank's part of the batch */
        int step = n > 0 ? loom_trainer_step(t, b->x, b->y, n, lr, &r) : LOOM_OK;
        loom_loader_release(l, b);
        if (step && o->on_nan_skip && loom_error_kind() == LOOM_EDIVERGED && ++skips_in_a_row < MAX_SKIPS) {
            /* --on-nan skip: the step changed nothing; the batch counts as done, so a resume goes on after it */
            loom_warn("epoch %d batch %ld: step skipped (--on-nan skip): %s", ep, st->batch + 1, loom_error());
            st->batch++;
            continue;
        }
        if (step) {
            if (o->on_nan_skip && skips_in_a_row >= MAX_SKIPS)
                loom_fail(LOOM_EDIVERGED, "epoch %d batch %ld: %d steps in a row had a NaN or an infinity and were "
                                          "skipped: training has diverged (lower the learning rate, or add --clip)",
                          ep, st->batch + 1, MAX_SKIPS);
            rc = LOOM_ERR;
            break;
        }
        skips_in_a_row = 0;
        /* Not a number, infinite, or a million times chance level: training has diverged. */
        if (n && !(r.loss <= DIVERGED_LOSS)) {
            char v[32];
            if (isnan(r.loss)) snprintf(v, sizeof v, "NaN");
            else if (isinf(r.loss)) snprintf(v, sizeof v, "infinite");
            else snprintf(v, sizeof v, "%.3g", r.loss);
            rc = loom_fail(LOOM_EDIVERGED, "epoch %d batch %ld: the loss is %s: training has diverged (lower the learning rate, "
                                "now %.3g, or add --clip)",
                                ep, st->batch + 1, v, (double)lr);
            break;
        }
        st->batch++;
        /* the replicas of several ranks must stay one model: checked now and then, and at the epoch's end */
        if (loom_trainer_options(t)->dist && (st->batch % CHECK_EVERY == 0 || st->batch == nb) &&
            loom_trainer_check_replicas(t)) {
            rc = LOOM_ERR;
            break;
        }
        st->loss_sum += r.loss * n;
        st->correct += r.correct;
        st->seen += n;
        double el = loom_seconds() - t0;
        st->seconds = before + el;
        if (o->on_progress) {
            loom_progress p = {.phase = LOOM_FIT_TRAINING, .epoch = ep, .epochs = o->epochs, .batch = st->batch,
                               .batches = nb, .loss = st->seen ? st->loss_sum / (double)st->seen : 0,
                               .acc = st->seen ? (double)st->correct / (double)st->seen : 0,
                               .images_per_s = el > 0 ? (double)(st->seen - seen0) / el : 0,
                               .elapsed = st->seconds};
            o->on_progress(&p, o->user);
        }
        int stop = any_rank(t, stop_asked(o));
        if (stop) {
            rc = stop;
            break;
        }
    }
    if (got < 0) rc = LOOM_ERR;
    st->seconds = before + (loom_seconds() - t0);
    st->data_wait += loom_loader_wait_seconds(l);
    return rc;
}

/* What loom_fit is given, checked before an epoch is spent: the data against
 * the model, and a schedule (made from .lr when the state has none). */
static int check_inputs(loom_trainer *t, loom_dataset *train, const loom_fit_opts *o, loom_fit_state *st,
                        loom_loader_opts *lo) {
    loom_graph *g = loom_trainer_graph(t);
    const loom_layer *in = loom_graph_layer(g, 0);
    if (!lo->batch) lo->batch = loom_trainer_batch(t);
    if (lo->batch > loom_trainer_batch(t))
        return loom_fail(LOOM_EINVAL, "loader batch %d exceeds the trainer's batch %d", lo->batch, loom_trainer_batch(t));
    lo->out_c = in->c;
    lo->out_h = in->h;
    lo->out_w = in->w;
    loom_dist *d = loom_trainer_options(t)->dist;
    lo->part = loom_dist_rank(d), lo->parts = loom_dist_size(d);
    if (!train->labeled) return loom_fail(LOOM_EINVAL, "%s: the training set has no labels", train->path);
    if (o->early_stop > 0 && !o->val)
        return loom_fail(LOOM_EINVAL, "early stopping needs validation data (it watches the validation accuracy)");
    size_t K = loom_graph_layer(g, loom_graph_output(g))->size;
    if (o->val && (!o->val->labeled || (size_t)o->val->num_classes > K || o->val->c != in->c))
        return loom_fail(LOOM_EINVAL, "%s: validation data %s", o->val->path,
                         !o->val->labeled ? "without labels cannot be scored"
                         : o->val->c != in->c ? "has another channel count than the model takes"
                                              : "has more classes than the model has outputs");
    if (train->num_classes > (int)K || train->c != in->c)
        return loom_fail(LOOM_EINVAL, "%s: %s", train->path,
                         train->c != in->c ? "the data has another channel count than the model takes"
                                           : "the data has more classes than the model has outputs");
    /* a state without a schedule (zeroed, or made by loom_fit_state_init(st, NULL)) gets one from lr */
    if (st->sched.base_lr == 0 && st->sched.epochs == 0 && st->epoch == 0 && st->batch == 0) {
        if (!(o->lr > 0)) return loom_fail(LOOM_EINVAL, "loom_fit: no learning rate (set .lr, or a schedule in the state)");
        if (loom_schedule_parse(o->schedule ? o->schedule : "const", o->lr, o->epochs, &st->sched)) return LOOM_ERR;
    }
    if (st->sched.kind == LOOM_SCHED_COSINE && o->epochs > st->sched.epochs)
        return loom_fail(LOOM_EINVAL, "loom_fit: %d epochs, but the cosine schedule plans %d (its rate is 0 after "
                                      "that): extend it first (loom_schedule_extend)",
                         o->epochs, st->sched.epochs);
    return LOOM_OK;
}

int loom_fit(loom_trainer *t, loom_dataset *train, const loom_fit_opts *o, loom_epoch_metrics *history) {
    if (!t || !train || !o)
        return loom_fail(LOOM_EINVAL, "loom_fit: no %s", !t ? "trainer" : !train ? "training data" : "options");
    loom_loader_opts lo = o->loader;
    loom_fit_state own, *st = o->state;
    if (!st) {
        loom_fit_state_init(&own, NULL);
        st = &own;
    }
    if (check_inputs(t, train, o, st, &lo)) return LOOM_ERR;
    /* several ranks start from rank 0's model (a fresh one, or where a resume left it) */
    if (loom_trainer_sync(t)) return LOOM_ERR;
    /* a test's way to make one rank's model drift (tests/cli/mpi.c): LOOM_TEST_DIVERGE=RANK */
    const char *drift = getenv("LOOM_TEST_DIVERGE");
    loom_dist *dd = loom_trainer_options(t)->dist;
    if (drift && loom_dist_size(dd) > 1 && atoi(drift) == loom_dist_rank(dd) && loom_graph_param_count(loom_trainer_graph(t)))
        loom_graph_params(loom_trainer_graph(t))[0] += 1e-3f;
    loom_loader *l = loom_loader_new(train, &lo), *vl = NULL;
    if (!l) return LOOM_ERR;
    if (o->val && !(vl = eval_loader(t, o->val, lo.producers, o->eval_augment, lo.skip_bad))) {
        loom_loader_free(l);
        return LOOM_ERR;
    }
    long nb = loom_loader_batches(l);
    int ran = 0, rc = LOOM_OK;
    if (st->batch > nb) rc = loom_fail(LOOM_EINVAL, "the state is at batch %ld of an epoch of %ld batches", st->batch, nb);
    for (int ep = st->epoch + 1; rc == LOOM_OK && ep <= o->epochs; ep++) {
        loom_epoch_metrics m = {.epoch = ep, .val_loss = -1, .val_acc = -1};
        m.lr = loom_schedule_lr(&st->sched, ep - 1, 0.0);
        int r = train_epoch(t, l, o, st, ep);
        if (r == 0 && vl) {
            r = run_eval(t, vl, o, ep, &m.val_loss, &m.val_acc);
            if (r == LOOM_ERR && !strcmp(loom_error(), "no samples to evaluate"))
                loom_fail(LOOM_EINVAL, "%s: no samples to validate on", o->val->path);
        }
        if (r == 1) st->stopped = 1;
        if (r) {
            rc = r < 0 ? LOOM_ERR : LOOM_OK;
            break;
        }
        m.seconds = st->seconds;
        m.data_wait = st->data_wait;
        m.skipped = loom_loader_skipped(l);
        m.train_loss = st->seen ? st->loss_sum / (double)st->seen : 0;
        m.train_acc = st->seen ? (double)st->correct / (double)st->seen : 0;
        m.images_per_s = m.seconds > 0 ? (double)st->seen / m.seconds : 0;
        loom_schedule_epoch_end(&st->sched, vl ? m.val_loss : m.train_loss);
        if (vl && m.val_acc > st->best_metric) {
            st->best_metric = m.val_acc;
            st->best_epoch = ep;
            st->since_best = 0;
        } else if (vl) {
            st->since_best++;
        }
        st->epoch = ep;
        st->batch = 0;
        st->loss_sum = st->seconds = st->data_wait = 0;
        st->correct = st->seen = 0;
        if (history) history[ran] = m;
        ran++;
        int quit = any_rank(t, o->on_epoch ? o->on_epoch(&m, st, o->user) != 0 : 0);
        if (quit < 0) rc = LOOM_ERR;
        if (quit) break;
        if (o->early_stop > 0 && st->since_best >= o->early_stop) {
            st->early_stopped = 1;
            break;
        }
    }
    loom_loader_free(l);
    loom_loader_free(vl);
    return rc ? LOOM_ERR : ran;
}
