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

/* Strides of an operand over y's dimensions: 0 along the ones it repeats. */
static void bstrides(const int *d, const int *yd, size_t st[3]) {
    st[2] = d[2] == yd[2] ? 1 : 0;
    st[1] = d[1] == yd[1] ? (size_t)d[2] : 0;
    st[0] = d[0] == yd[0] ? (size_t)d[1] * d[2] : 0;
}

void loom_k_arith_fwd(int op, const float *a, const int *ad, const float *b, const int *bd, float *y,
                      const int *yd, int n) {
    size_t sa[3], sb[3];
    bstrides(ad, yd, sa);
    bstrides(bd, yd, sb);
    size_t na = (size_t)ad[0] * ad[1] * ad[2], nb = (size_t)bd[0] * bd[1] * bd[2];
    for (int s = 0; s < n; s++) {
        const float *as = a + (size_t)s * na, *bs = b + (size_t)s * nb;
        for (int c = 0; c < yd[0]; c++)
            for (int i = 0; i < yd[1]; i++) {
                const float *ar = as + c * sa[0] + i * sa[1], *br = bs + c * sb[0] + i * sb[1];
                for (int j = 0; j < yd[2]; j++) {
                    float u = ar[j * sa[2]], v = br[j * sb[2]];
                    *y++ = op == 0 ? u + v : op == 1 ? u - v : op == 2 ? u * v : u / v;
                }
            }
    }
}

void loom_k_arith_bwd(int op, const float *a, const int *ad, const float *b, const int *bd, const float *y,
                      const float *dy, const int *yd, int n, float *da, int acc_a, float *db, int acc_b) {
    size_t sa[3], sb[3];
    bstrides(ad, yd, sa);
    bstrides(bd, yd, sb);
    size_t na = (size_t)ad[0] * ad[1] * ad[2], nb = (size_t)bd[0] * bd[1] * bd[2];
    if (da && !acc_a) memset(da, 0, (size_t)n * na * sizeof(float));
    if (db && !acc_b && db != da) memset(db, 0, (size_t)n * nb * sizeof(float));
    for (int s = 0; s < n; s++) {
        const float *as = a + (size_t)s * na, *bs = b + (size_t)s * nb;
        float *das = da ? da + (size_t)s * na : NULL, *dbs = db ? db + (size_t)s * nb : NULL;
        for (int c = 0; c < yd[0]; c++)
            for (int i = 0; i < yd[1]; i++) {
                size_t oa = c * sa[0] + i * sa[1], ob = c * sb[0] + i * sb[1];
                for (int j = 0; j < yd[2]; j++, dy++, y++) {
                    size_t pa = oa + j * sa[2], pb = ob + j * sb[2];
                    float g = *dy, u = as[pa], v = bs[pb];
                    /* d/da and d/db of u op v */
                    float ga = op == 2 ? g * v : op == 3 ? g / v : g;
                    float gb = op == 0 ? g : op == 1 ? -g : op == 2 ? g * u : -g * *y / v;
                    if (das) das[pa] += ga;
                    if (dbs) dbs[pb] += gb;
                }
            }
    }
}

void loom_k_pad_fwd(const float *x, float *y, int n, int c, int h, int w, int top, int left, int bottom, int right,
                    float value) {
    int oh = h + top + bottom, ow = w + left + right;
    for (size_t pl = 0; pl < (size_t)n * c; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        for (int r = 0; r < oh; r++) {
            float *yr = yp + (size_t)r * ow;
            if (r < top || r >= top + h) {
                for (int q = 0; q < ow; q++) yr[q] = value;
                continue;
            }
            for (int q = 0; q < left; q++) yr[q] = value;
            memcpy(yr + left, xp + (size_t)(r - top) * w, (size_t)w * sizeof(float));
            for (int q = left + w; q < ow; q++) yr[q] = value;
        }
    }
}

void loom_k_pad_bwd(const float *dy, float *dx, int acc, int n, int c, int h, int w, int top, int left, int bottom,
                    int right) {
    int oh = h + top + bottom, ow = w + left + right;
    for (size_t pl = 0; pl < (size_t)n * c; pl++)
        for (int r = 0; r < h; r++) {
            const float *src = dy + pl * oh * ow + (size_t)(r + top) * ow + left;
            float *dst = dx + pl * h * w + (size_t)r * w;
            if (acc) loom_k_accumulate(src, dst, (size_t)w);
            else memcpy(dst, src, (size_t)w * sizeof(float));
        }
}
