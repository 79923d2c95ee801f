/* The epoch loop shared by `loom train` and programs using the library. */
#include "loom/fit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loom/error.h"
#include "loom/schedule.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int evaluate(loom_trainer *t, loom_dataset *ds, int producers, const struct loom_augment *aug, int skip_bad,
                    double *loss, double *acc) {
    const loom_layer *in = loom_graph_layer(loom_trainer_graph(t), 0);
    loom_loader_opts lo = {.batch = loom_trainer_batch(t), .producers = producers, .cache = -1, .augment = aug,
                           .out_c = in->c, .out_h = in->h, .out_w = in->w, .skip_bad = skip_bad};
    loom_loader *l = loom_loader_new(ds, &lo);
    if (!l) return LOOM_ERR;
    double lsum = 0;
    long correct = 0, seen = 0;
    int rc = loom_loader_start(l, 0);
    loom_batch *b;
    while (rc == LOOM_OK && (rc = loom_loader_next(l, &b)) == 1) {
        double ls;
        int c;
        if (b->n > 0) {
            rc = loom_trainer_eval(t, b->x, b->y, b->n, &ls, &c, NULL);
            lsum += ls;
            correct += c;
            seen += b->n;
        }
        loom_loader_release(l, b);
    }
    loom_loader_free(l);
    if (rc < 0) return LOOM_ERR;
    if (!seen) return loom_set_error("%s: no samples to evaluate", ds->path);
    *loss = lsum / (double)seen;
    *acc = (double)correct / (double)seen;
    return LOOM_OK;
}

int loom_evaluate(loom_trainer *t, loom_dataset *ds, int producers, const struct loom_augment *aug, double *loss,
                  double *acc) {
    return evaluate(t, ds, producers, aug, 0, loss, acc);
}

int loom_fit(loom_trainer *t, loom_dataset *train, const loom_fit_opts *o, loom_epoch_metrics *history) {
    loom_graph *g = loom_trainer_graph(t);
    const loom_layer *in = loom_graph_layer(g, 0);
    loom_loader_opts lo = o->loader;
    if (!lo.batch) lo.batch = loom_trainer_batch(t);
    if (lo.batch > loom_trainer_batch(t))
        return loom_set_error("loader batch %d exceeds the trainer's batch %d", lo.batch, loom_trainer_batch(t));
    lo.out_c = in->c;
    lo.out_h = in->h;
    lo.out_w = in->w;
    if (!train->labeled) return loom_set_error("%s: the training set has no labels", train->path);
    loom_schedule own, *sched = o->sched;
    if (!sched) {
        if (loom_schedule_parse(o->schedule ? o->schedule : "const", o->lr, o->epochs, &own)) return LOOM_ERR;
        sched = &own;
    }
    loom_loader *l = loom_loader_new(train, &lo);
    if (!l) return LOOM_ERR;
    int tty = o->verbose >= 2 && isatty(STDOUT_FILENO);
    long nb = loom_loader_batches(l);
    double best = -1;
    int since_best = 0, ran = 0, rc = LOOM_OK;
    int first = o->first_epoch > 0 ? o->first_epoch : 1;
    for (int ep = first; ep <= o->epochs; ep++) {
        loom_epoch_metrics m = {.epoch = ep, .val_loss = -1, .val_acc = -1};
        m.lr = loom_schedule_lr(sched, ep - 1, 0.0);
        loom_loader_start(l, ep);
        loom_loader_wait_seconds(l);
        double t0 = now(), t_last = t0, lsum = 0;
        long correct = 0, seen = 0, bi = 0;
        loom_batch *b;
        int got;
        while ((got = loom_loader_next(l, &b)) == 1) {
            float lr = loom_schedule_lr(sched, ep - 1, (double)bi / (double)nb);
            loom_step_result r = {0};
            int st = b->n > 0 ? loom_trainer_step(t, b->x, b->y, b->n, lr, &r) : LOOM_OK;
            int n = b->n;
            loom_loader_release(l, b);
            bi++;
            if (st) {
                rc = LOOM_ERR;
                break;
            }
            if (n && !isfinite(r.loss)) {
                rc = loom_set_error("epoch %d batch %ld: the loss is %g (diverged): lower the learning rate", ep, bi, r.loss);
                break;
            }
            lsum += r.loss * n;
            correct += r.correct;
            seen += n;
            double tn = now();
            if (tty && (tn - t_last > 0.25 || bi == nb)) {
                double ips = (double)seen / (tn - t0);
                int w = 24, fill = (int)(w * (double)bi / (double)nb);
                printf("\repoch %d/%d [%.*s%*s] %3.0f%% loss %.4f acc %.2f%% %.0f img/s ETA %.0fs   ", ep, o->epochs,
                       fill, "########################", w - fill, "", 100.0 * (double)bi / (double)nb,
                       seen ? lsum / seen : 0.0, seen ? 100.0 * correct / seen : 0.0, ips,
                       (double)(nb - bi) * (tn - t0) / (double)bi);
                fflush(stdout);
                t_last = tn;
            }
        }
        if (tty) printf("\r%*s\r", 100, "");
        if (got < 0) rc = LOOM_ERR;
        if (rc) break;
        m.seconds = now() - t0;
        m.data_wait = loom_loader_wait_seconds(l);
        m.skipped = loom_loader_skipped(l);
        m.train_loss = seen ? lsum / (double)seen : 0;
        m.train_acc = seen ? (double)correct / (double)seen : 0;
        m.images_per_s = (double)seen / m.seconds;
        if (o->val && evaluate(t, o->val, lo.producers, o->eval_augment, lo.skip_bad, &m.val_loss, &m.val_acc)) {
            rc = LOOM_ERR;
            break;
        }
        loom_schedule_epoch_end(sched, o->val ? m.val_loss : m.train_loss);
        if (o->verbose) {
            printf("epoch %d/%d: train loss %.4f acc %.2f%%", ep, o->epochs, m.train_loss, 100 * m.train_acc);
            if (o->val) printf(" | val loss %.4f acc %.2f%%", m.val_loss, 100 * m.val_acc);
            printf(" | lr %.3g | %.1fs, %.0f img/s, data wait %.1f%%\n", m.lr, m.seconds, m.images_per_s,
                   100 * m.data_wait / m.seconds);
            fflush(stdout);
        }
        if (history) history[ran] = m;
        ran++;
        if (o->on_epoch && o->on_epoch(&m, o->user)) break;
        double score = o->val ? m.val_acc : m.train_acc;
        if (score > best) {
            best = score;
            since_best = 0;
        } else if (o->early_stop > 0 && ++since_best >= o->early_stop) {
            if (o->verbose) printf("early stop: no better accuracy for %d epochs\n", o->early_stop);
            break;
        }
    }
    loom_loader_free(l);
    return rc ? LOOM_ERR : ran;
}
