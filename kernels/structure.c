/* Kernels that route values rather than transform them: residual add,
 * gradient accumulation, channel concatenation, argmax. */
#include "kernels/kernels.h"

#include <string.h>

void loom_k_add_fwd(const float *a, const float *b, float *y, size_t len) {
    for (size_t i = 0; i < len; i++) y[i] = a[i] + b[i];
}

void loom_k_accumulate(const float *dy, float *dx, size_t len) {
    for (size_t i = 0; i < len; i++) dx[i] += dy[i];
}

static int sum_channels(const int *cs, int nin) {
    int total = 0;
    for (int i = 0; i < nin; i++) total += cs[i];
    return total;
}

/* Per sample, input i occupies a contiguous run of cs[i]*hw floats of y. */
void loom_k_concat_fwd(const float *const *xs, const int *cs, int nin, float *y,
                       int n, int hw) {
    size_t ystride = (size_t)sum_channels(cs, nin) * hw;
    size_t off = 0;
    for (int i = 0; i < nin; i++) {
        size_t run = (size_t)cs[i] * hw;
        for (int b = 0; b < n; b++)
            memcpy(y + (size_t)b * ystride + off, xs[i] + (size_t)b * run,
                   run * sizeof *y);
        off += run;
    }
}

void loom_k_concat_bwd(const float *dy, float *const *dxs, const int *cs, int nin,
                       int n, int hw) {
    size_t ystride = (size_t)sum_channels(cs, nin) * hw;
    size_t off = 0;
    for (int i = 0; i < nin; i++) {
        size_t run = (size_t)cs[i] * hw;
        if (dxs[i])
            for (int b = 0; b < n; b++)
                loom_k_accumulate(dy + (size_t)b * ystride + off, dxs[i] + (size_t)b * run,
                                  run);
        off += run;
    }
}

int loom_k_argmax(const float *x, int k) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

void loom_k_scale_fwd(const float *x, const float *w, const float *b, float *y, int n, size_t len) {
    for (int s = 0; s < n; s++)
        for (size_t i = 0; i < len; i++) y[(size_t)s * len + i] = x[(size_t)s * len + i] * w[i] + b[i];
}

void loom_k_scale_bwd(const float *x, const float *w, const float *dy, float *dx, float *dw, float *db, int n,
                      size_t len) {
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * len, *gs = dy + (size_t)s * len;
        if (dx)
            for (size_t i = 0; i < len; i++) dx[(size_t)s * len + i] += gs[i] * w[i];
        if (dw)
            for (size_t i = 0; i < len; i++) dw[i] += gs[i] * xs[i];
        if (db)
            for (size_t i = 0; i < len; i++) db[i] += gs[i];
    }
}
