/* Batch normalisation over x [n, c, hw]. Statistics are accumulated in
 * double: a channel can hold millions of values whose float sum would lose
 * the digits the variance lives in.
 *
 * Two layouts get two loop orders. With hw > 1 (after a conv) a channel's
 * values come in contiguous runs of hw, so loops go channel by channel.
 * With hw == 1 (after a dense layer) a channel is a column of stride c; going
 * down columns one at a time would stride through memory, so instead rows are
 * swept across a block of channels whose sums sit in a small stack array. */
#include "kernels/kernels.h"

#include <math.h>

enum { BLOCK = 64 };

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static float inv_std(double var, float eps) { return (float)(1.0 / sqrt(var + eps)); }

/* ---- statistics ---------------------------------------------------------- */

static void stats_planes(const float *x, int n, int c, size_t hw, float eps,
                         float *mean, float *invstd, float *bvar) {
    double m = (double)n * (double)hw;
    for (int ci = 0; ci < c; ci++) {
        double s = 0.0;
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * c + ci) * hw;
            for (size_t i = 0; i < hw; i++) s += p[i];
        }
        double mu = s / m;
        /* second pass on deviations: E[x^2]-E[x]^2 cancels badly when |mean| >> std */
        double v = 0.0;
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * c + ci) * hw;
            for (size_t i = 0; i < hw; i++) {
                double d = p[i] - mu;
                v += d * d;
            }
        }
        mean[ci] = (float)mu;
        invstd[ci] = inv_std(v / m, eps);
        if (bvar) bvar[ci] = (float)(v / m);
    }
}

static void stats_rows(const float *x, int n, int c, float eps, float *mean,
                       float *invstd, float *bvar) {
    double mu[BLOCK], acc[BLOCK];
    for (size_t c0 = 0; c0 < (size_t)c; c0 += BLOCK) {
        size_t w = min_sz(BLOCK, (size_t)c - c0);
        for (size_t i = 0; i < w; i++) acc[i] = 0.0;
        for (int b = 0; b < n; b++) {
            const float *row = x + (size_t)b * c + c0;
            for (size_t i = 0; i < w; i++) acc[i] += row[i];
        }
        for (size_t i = 0; i < w; i++) {
            mu[i] = acc[i] / n;
            acc[i] = 0.0;
        }
        for (int b = 0; b < n; b++) {
            const float *row = x + (size_t)b * c + c0;
            for (size_t i = 0; i < w; i++) {
                double d = row[i] - mu[i];
                acc[i] += d * d;
            }
        }
        for (size_t i = 0; i < w; i++) {
            mean[c0 + i] = (float)mu[i];
            invstd[c0 + i] = inv_std(acc[i] / n, eps);
            if (bvar) bvar[c0 + i] = (float)(acc[i] / n);
        }
    }
}

/* ---- normalise: y = (x - mean) * gamma*invstd + beta, channels [c0, c0+w) ----
 * Subtracting the mean first (rather than folding it into the shift) keeps
 * the precision when |mean| is large compared with the spread. The per-channel
 * arrays are indexed from c0. */

static void normalize(const float *x, float *y, int n, int c, size_t hw, size_t c0,
                      size_t w, const float *gamma, const float *beta,
                      const float *mean, const float *invstd) {
    if (hw == 1) {
        for (int b = 0; b < n; b++) {
            const float *xr = x + (size_t)b * c + c0;
            float *yr = y + (size_t)b * c + c0;
            for (size_t i = 0; i < w; i++)
                yr[i] = (xr[i] - mean[i]) * (gamma[i] * invstd[i]) + beta[i];
        }
        return;
    }
    for (int b = 0; b < n; b++) {
        for (size_t i = 0; i < w; i++) {
            size_t off = ((size_t)b * c + c0 + i) * hw;
            float mu = mean[i], a = gamma[i] * invstd[i], sh = beta[i];
            for (size_t s = 0; s < hw; s++) y[off + s] = (x[off + s] - mu) * a + sh;
        }
    }
}

void loom_k_batchnorm_fwd_train(const float *x, float *y, int n, int c, int hw,
                                const float *gamma, const float *beta, float eps,
                                float *save_mean, float *save_invstd, float *batch_var) {
    if (hw == 1)
        stats_rows(x, n, c, eps, save_mean, save_invstd, batch_var);
    else
        stats_planes(x, n, c, (size_t)hw, eps, save_mean, save_invstd, batch_var);
    normalize(x, y, n, c, (size_t)hw, 0, (size_t)c, gamma, beta, save_mean, save_invstd);
}

void loom_k_batchnorm_fwd_infer(const float *x, float *y, int n, int c, int hw,
                                const float *gamma, const float *beta, float eps,
                                const float *run_mean, const float *run_var) {
    float inv[BLOCK];
    for (size_t c0 = 0; c0 < (size_t)c; c0 += BLOCK) {
        size_t w = min_sz(BLOCK, (size_t)c - c0);
        for (size_t i = 0; i < w; i++) inv[i] = inv_std(run_var[c0 + i], eps);
        normalize(x, y, n, c, (size_t)hw, c0, w, gamma + c0, beta + c0, run_mean + c0, inv);
    }
}

void loom_k_batchnorm_update_running(float *run_mean, float *run_var, int c, const float *batch_mean,
                                     const float *batch_var, float momentum, size_t m) {
    double keep = 1.0 - momentum;
    double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0;
    for (int ci = 0; ci < c; ci++) {
        /* a variance recovered from invstd can round just below zero */
        double var = batch_var[ci] > 0.0f ? batch_var[ci] : 0.0;
        run_mean[ci] = (float)(keep * run_mean[ci] + momentum * (double)batch_mean[ci]);
        run_var[ci] = (float)(keep * run_var[ci] + momentum * var * unbias);
    }
}

void loom_k_batchnorm_combine(const float *const *means, const float *const *vars, const size_t *counts,
                              int nrep, size_t off, int c, float *mean, float *var) {
    double total = 0;
    for (int r = 0; r < nrep; r++) total += (double)counts[r];
    for (int k = 0; k < c; k++) {
        double mu = 0;
        for (int r = 0; r < nrep; r++) mu += (double)counts[r] * means[r][off + k];
        mu = total > 0 ? mu / total : 0;
        double v = 0;
        for (int r = 0; r < nrep; r++) {
            double d = means[r][off + k] - mu;
            v += (double)counts[r] * (vars[r][off + k] + d * d);
        }
        mean[k] = (float)mu;
        var[k] = (float)(total > 0 ? v / total : 0);
    }
}

/* ---- backward ----------------------------------------------------------------
 * With xhat = (x - mean) * invstd and m = n*hw values per channel:
 *   dbeta = sum dy, dgamma = sum dy*xhat,
 *   dx = gamma*invstd * (dy - dbeta/m - xhat * dgamma/m)
 * (the batch mean and variance depend on x, hence the two correction terms). */

static void dx_planes(const float *x, const float *dy, float *dx, int n, int c,
                      size_t hw, int ci, float a, float mu, float is, float mdy,
                      float mdyx) {
    for (int b = 0; b < n; b++) {
        size_t off = ((size_t)b * c + ci) * hw;
        for (size_t i = 0; i < hw; i++) {
            float xhat = (x[off + i] - mu) * is;
            dx[off + i] += a * (dy[off + i] - mdy - xhat * mdyx);
        }
    }
}

static void bwd_planes(const float *x, const float *dy, float *dx, float *dgamma,
                       float *dbeta, int n, int c, size_t hw, const float *gamma,
                       const float *mean, const float *invstd) {
    double m = (double)n * (double)hw;
    for (int ci = 0; ci < c; ci++) {
        float mu = mean[ci];
        double sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < n; b++) {
            size_t off = ((size_t)b * c + ci) * hw;
            for (size_t i = 0; i < hw; i++) {
                sdy += dy[off + i];
                sdyx += (double)dy[off + i] * (x[off + i] - mu);
            }
        }
        sdyx *= invstd[ci];
        if (dbeta) dbeta[ci] += (float)sdy;
        if (dgamma) dgamma[ci] += (float)sdyx;
        if (dx)
            dx_planes(x, dy, dx, n, c, hw, ci, gamma[ci] * invstd[ci], mu, invstd[ci],
                      (float)(sdy / m), (float)(sdyx / m));
    }
}

static void bwd_rows(const float *x, const float *dy, float *dx, float *dgamma,
                     float *dbeta, int n, int c, const float *gamma, const float *mean,
                     const float *invstd) {
    double sdy[BLOCK], sdyx[BLOCK];
    float mdy[BLOCK], mdyx[BLOCK];
    for (size_t c0 = 0; c0 < (size_t)c; c0 += BLOCK) {
        size_t w = min_sz(BLOCK, (size_t)c - c0);
        const float *mu = mean + c0, *is = invstd + c0, *g = gamma + c0;
        for (size_t i = 0; i < w; i++) sdy[i] = sdyx[i] = 0.0;
        for (int b = 0; b < n; b++) {
            const float *xr = x + (size_t)b * c + c0, *gr = dy + (size_t)b * c + c0;
            for (size_t i = 0; i < w; i++) {
                sdy[i] += gr[i];
                sdyx[i] += (double)gr[i] * (xr[i] - mu[i]);
            }
        }
        for (size_t i = 0; i < w; i++) {
            sdyx[i] *= is[i];
            mdy[i] = (float)(sdy[i] / n);
            mdyx[i] = (float)(sdyx[i] / n);
        }
        if (dbeta)
            for (size_t i = 0; i < w; i++) dbeta[c0 + i] += (float)sdy[i];
        if (dgamma)
            for (size_t i = 0; i < w; i++) dgamma[c0 + i] += (float)sdyx[i];
        if (!dx) continue;
        for (int b = 0; b < n; b++) {
            const float *xr = x + (size_t)b * c + c0, *gr = dy + (size_t)b * c + c0;
            float *dr = dx + (size_t)b * c + c0;
            for (size_t i = 0; i < w; i++) {
                float xhat = (xr[i] - mu[i]) * is[i];
                dr[i] += g[i] * is[i] * (gr[i] - mdy[i] - xhat * mdyx[i]);
            }
        }
    }
}

void loom_k_batchnorm_bwd(const float *x, const float *dy, float *dx,
                          float *dgamma, float *dbeta, int n, int c, int hw,
                          const float *gamma, const float *save_mean,
                          const float *save_invstd) {
    if (hw == 1)
        bwd_rows(x, dy, dx, dgamma, dbeta, n, c, gamma, save_mean, save_invstd);
    else
        bwd_planes(x, dy, dx, dgamma, dbeta, n, c, (size_t)hw, gamma, save_mean,
                   save_invstd);
}
