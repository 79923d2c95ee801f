/* Learning-rate schedules, epoch-wise as torch.optim.lr_scheduler's
 * StepLR / MultiStepLR / ExponentialLR / ReduceLROnPlateau, and cosine
 * annealing evaluated per step (smooth), all with optional linear warm-up. */
#include "loom/schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/parse.h"
#include "loom/error.h"

static int parse_float(const char *s, float *out) {
    double v;
    if (loom_parse_double(s, -1e30, 1e30, &v)) return -1;
    *out = (float)v;
    return 0;
}

static int parse_int(const char *s, int *out) {
    long v;
    if (loom_parse_long(s, 0, 1000000, &v)) return -1;
    *out = (int)v;
    return 0;
}

static const char *const kind_names[] = {"const", "step", "multistep", "exp", "cosine", "plateau"};

const char *loom_schedule_kind_name(loom_sched_kind k) {
    return (int)k >= 0 && k <= LOOM_SCHED_PLATEAU ? kind_names[k] : "?";
}

int loom_schedule_kind_parse(const char *name) {
    for (int k = 0; k <= LOOM_SCHED_PLATEAU; k++)
        if (!strcmp(name, kind_names[k])) return k;
    return -1;
}

int loom_schedule_parse(const char *spec, float base_lr, int epochs, loom_schedule *s) {
    memset(s, 0, sizeof *s);
    s->base_lr = base_lr;
    s->epochs = epochs;
    s->gamma = 0.1f;
    s->plateau_scale = 1.0f;
    s->best = INFINITY;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "const");
    char *parts[4] = {0};
    int np = 0;
    for (char *p = buf, *tok; np < 4 && (tok = strsep(&p, ":")) != NULL;) parts[np++] = tok;
    const char *k = parts[0];
    int bad = 0;
    if (!strcmp(k, "const") || !strcmp(k, "constant")) {
        s->kind = LOOM_SCHED_CONST;
        bad = np > 1;
    } else if (!strcmp(k, "step")) {
        s->kind = LOOM_SCHED_STEP;
        bad = np < 2 || parse_int(parts[1], &s->step_size) || s->step_size < 1 ||
              (np > 2 && parse_float(parts[2], &s->gamma));
    } else if (!strcmp(k, "multistep")) {
        s->kind = LOOM_SCHED_MULTISTEP;
        if (np < 2) bad = 1;
        else {
            for (char *p = parts[1], *tok; !bad && (tok = strsep(&p, ",")) != NULL;) {
                if (s->n_milestones == LOOM_SCHED_MAX_MILESTONES) bad = 1;
                else bad = parse_int(tok, &s->milestones[s->n_milestones++]);
            }
            if (np > 2 && parse_float(parts[2], &s->gamma)) bad = 1;
        }
    } else if (!strcmp(k, "exp")) {
        s->kind = LOOM_SCHED_EXP;
        bad = np < 2 || parse_float(parts[1], &s->gamma);
    } else if (!strcmp(k, "cosine")) {
        s->kind = LOOM_SCHED_COSINE;
        bad = np > 1 && parse_float(parts[1], &s->warmup_epochs);
    } else if (!strcmp(k, "plateau")) {
        s->kind = LOOM_SCHED_PLATEAU;
        s->patience = 2;
        bad = (np > 1 && parse_int(parts[1], &s->patience)) || (np > 2 && parse_float(parts[2], &s->gamma));
    } else {
        return loom_fail(LOOM_EINVAL, "schedule '%s': unknown kind '%s' (const, step, multistep, exp, cosine, plateau)",
                              spec, k);
    }
    for (int i = 1; !bad && i < s->n_milestones; i++) bad = s->milestones[i] <= s->milestones[i - 1];
    if (s->kind == LOOM_SCHED_COSINE && epochs > 0 && s->warmup_epochs >= epochs)
        return loom_fail(LOOM_EINVAL, "schedule '%s': a warm-up of %g epochs leaves nothing of a %d-epoch run", spec,
                              s->warmup_epochs, epochs);
    if (bad || !(s->gamma > 0 && s->gamma <= 1.0f) || s->warmup_epochs < 0)
        return loom_fail(LOOM_EINVAL, "schedule '%s': bad parameters (forms: step:SIZE[:GAMMA], multistep:E1,E2[:GAMMA], "
                              "exp:GAMMA, cosine[:WARMUP], plateau[:PATIENCE[:FACTOR]]; GAMMA in (0,1]; milestones "
                              "increasing)",
                              spec);
    return LOOM_OK;
}

float loom_schedule_lr(const loom_schedule *s, int epoch, double frac) {
    double t = epoch + frac, lr = s->base_lr;
    switch (s->kind) {
    case LOOM_SCHED_CONST: break;
    case LOOM_SCHED_STEP: lr *= pow(s->gamma, epoch / s->step_size); break;
    case LOOM_SCHED_MULTISTEP:
        for (int i = 0; i < s->n_milestones; i++)
            if (epoch >= s->milestones[i]) lr *= s->gamma;
        break;
    case LOOM_SCHED_EXP: lr *= pow(s->gamma, epoch); break;
    case LOOM_SCHED_COSINE: {
        double start = s->restart_epoch > 0 ? s->restart_epoch : s->warmup_epochs;
        double top = s->restart_epoch > 0 ? s->restart_lr : s->base_lr;
        double len = s->epochs - start;
        double x = len > 0 ? (t - start) / len : 1.0;
        if (x < 0) x = 0;
        if (x > 1) x = 1;
        lr = s->min_lr + (top - s->min_lr) * 0.5 * (1.0 + cos(3.141592653589793 * x));
        break;
    }
    case LOOM_SCHED_PLATEAU: lr *= s->plateau_scale; break;
    }
    if (s->warmup_epochs > 0 && t < s->warmup_epochs) lr *= t / s->warmup_epochs;
    return (float)lr;
}

void loom_schedule_epoch_end(loom_schedule *s, double val_loss) {
    if (s->kind != LOOM_SCHED_PLATEAU) return;
    /* PyTorch's default threshold: relative improvement of 1e-4 */
    if (val_loss < s->best * (1.0 - 1e-4)) {
        s->best = val_loss;
        s->bad_epochs = 0;
    } else if (++s->bad_epochs > s->patience) {
        s->plateau_scale *= s->gamma;
        if (s->base_lr * s->plateau_scale < s->min_lr) s->plateau_scale = s->min_lr / s->base_lr;
        s->bad_epochs = 0;
    }
}

int loom_schedule_extend(loom_schedule *s, int epochs, int from, float lr) {
    if (epochs <= from)
        return loom_fail(LOOM_EINVAL, "schedule: %d epochs in all leaves nothing to train after epoch %d", epochs, from);
    if (s->kind == LOOM_SCHED_COSINE) {
        float at = lr > 0 ? lr : loom_schedule_lr(s, from, 0.0);
        s->restart_epoch = from;
        s->restart_lr = at;
    }
    s->epochs = epochs;
    return LOOM_OK;
}

const char *loom_schedule_describe(const loom_schedule *s, char *buf, int cap) {
    int n = snprintf(buf, (size_t)cap, "%s", loom_schedule_kind_name(s->kind));
    if (n < 0 || n >= cap) return buf;
#define PL(x) ((x) == 1 ? "" : "s")
    switch (s->kind) {
    case LOOM_SCHED_STEP:
        n += snprintf(buf + n, (size_t)(cap - n), ": x%g every %d epoch%s", s->gamma, s->step_size, PL(s->step_size));
        break;
    case LOOM_SCHED_EXP: n += snprintf(buf + n, (size_t)(cap - n), ": x%g per epoch", s->gamma); break;
    case LOOM_SCHED_MULTISTEP:
        n += snprintf(buf + n, (size_t)(cap - n), ": x%g at %d milestone%s", s->gamma, s->n_milestones,
                      PL(s->n_milestones));
        break;
    case LOOM_SCHED_PLATEAU:
        n += snprintf(buf + n, (size_t)(cap - n), ": x%g once %d epoch%s in a row bring no progress", s->gamma,
                      s->patience + 1, PL(s->patience + 1));
        break;
    case LOOM_SCHED_COSINE:
        n += snprintf(buf + n, (size_t)(cap - n), " to %g over %d epoch%s", s->min_lr, s->epochs, PL(s->epochs));
        if (n < cap && s->restart_epoch > 0)
            n += snprintf(buf + n, (size_t)(cap - n), " (restarted after epoch %d from %.3g)", s->restart_epoch,
                          s->restart_lr);
        break;
    default: break;
    }
    if (n < cap && s->warmup_epochs > 0)
        snprintf(buf + n, (size_t)(cap - n), ", %g warm-up epoch%s", s->warmup_epochs, s->warmup_epochs == 1 ? "" : "s");
#undef PL
    return buf;
}
