#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "common.h"

void progress_init(progress *p, double every, int quiet) {
    p->tty = isatty(STDOUT_FILENO);
    p->quiet = quiet;
    p->every = every;
    p->last = loom_seconds();
    p->drawn = 0;
}

void progress_clear(progress *p) {
    if (!p->drawn) return;
    printf("\r%*s\r", 110, "");
    fflush(stdout);
    p->drawn = 0;
}

void progress_report(const loom_progress *lp, void *user) {
    progress *p = user;
    if (p->quiet) return;
    double t = loom_seconds();
    int last = lp->batch == lp->batches;
    double eta = lp->batch ? (double)(lp->batches - lp->batch) * lp->elapsed / (double)lp->batch : 0;
    int val = lp->phase == LOOM_FIT_VALIDATING;
    if (p->tty) {
        if (t - p->last < 0.25 && !last) return;
        int w = 24, fill = lp->batches ? (int)(w * (double)lp->batch / (double)lp->batches) : w;
        if (val)
            printf("\repoch %d/%d validating [%.*s%*s] %3.0f%% %.0f img/s   ", lp->epoch, lp->epochs, fill,
                   "########################", w - fill, "", 100.0 * (double)lp->batch / (double)lp->batches,
                   lp->images_per_s);
        else
            printf("\repoch %d/%d [%.*s%*s] %3.0f%% loss %.4f acc %.2f%% %.0f img/s ETA %.0fs   ", lp->epoch,
                   lp->epochs, fill, "########################", w - fill, "",
                   100.0 * (double)lp->batch / (double)lp->batches, lp->loss, 100 * lp->acc, lp->images_per_s, eta);
        fflush(stdout);
        p->drawn = 1;
        p->last = t;
        return;
    }
    if (p->every <= 0 || t - p->last < p->every) return;
    if (val)
        printf("  epoch %d/%d: validating, batch %ld/%ld (%.0f%%), %.0f img/s\n", lp->epoch, lp->epochs, lp->batch,
               lp->batches, 100.0 * (double)lp->batch / (double)lp->batches, lp->images_per_s);
    else
        printf("  epoch %d/%d: batch %ld/%ld (%.0f%%), loss %.4f, acc %.2f%%, %.0f img/s, ETA %.0fs\n", lp->epoch,
               lp->epochs, lp->batch, lp->batches, 100.0 * (double)lp->batch / (double)lp->batches, lp->loss,
               100 * lp->acc, lp->images_per_s, eta);
    fflush(stdout);
    p->last = t;
}
