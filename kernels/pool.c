/* Max, average and global average pooling over NCHW planes. Windows are
 * clipped to the image up front, so padding never has to be materialised:
 * for max it behaves as -inf, for average it is either counted as zeros or
 * left out of the divisor. */
#include "kernels/kernels.h"

#include <math.h>

int loom_k_pool_out(loom_pool_shape *s) {
    if (s->c <= 0 || s->h <= 0 || s->w <= 0 || s->kh <= 0 || s->kw <= 0 ||
        s->sh <= 0 || s->sw <= 0 || s->ph < 0 || s->pw < 0)
        return -1;
    /* Checked before dividing: truncation toward zero would turn a negative
     * span into a one-pixel output. */
    int span_h = s->h + 2 * s->ph - s->kh, span_w = s->w + 2 * s->pw - s->kw;
    if (span_h < 0 || span_w < 0) return -1;
    s->oh = span_h / s->sh + 1;
    s->ow = span_w / s->sw + 1;
    if (s->ceil) { /* rounded up, but the last window must start inside the image or its left padding */
        s->oh = (span_h + s->sh - 1) / s->sh + 1;
        s->ow = (span_w + s->sw - 1) / s->sw + 1;
        if ((s->oh - 1) * s->sh >= s->h + s->ph) s->oh--;
        if ((s->ow - 1) * s->sw >= s->w + s->pw) s->ow--;
    }
    return 0;
}

/* The part of a window starting at `start` (may be negative) of length k
 * that lies inside [0, n). */
static void clip(int start, int k, int n, int *lo, int *hi) {
    *lo = start < 0 ? 0 : start;
    *hi = start + k > n ? n : start + k;
}

void loom_k_maxpool_fwd(const loom_pool_shape *s, const float *x, float *y,
                        int32_t *argmax, int n) {
    const size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->oh * s->ow;
    for (size_t pl = 0; pl < (size_t)n * s->c; pl++) {
        const float *xp = x + pl * plane;
        float *yp = y + pl * oplane;
        int32_t *ap = argmax + pl * oplane;
        for (int oy = 0; oy < s->oh; oy++) {
            int y0, y1;
            clip(oy * s->sh - s->ph, s->kh, s->h, &y0, &y1);
            for (int ox = 0; ox < s->ow; ox++) {
                int x0, x1;
                clip(ox * s->sw - s->pw, s->kw, s->w, &x0, &x1);
                /* A window wholly in the padding (only possible when padding
                 * exceeds the kernel) has no input to route a gradient to:
                 * it outputs 0 and argmax -1 rather than -inf. */
                float best = -INFINITY;
                int32_t at = -1;
                for (int iy = y0; iy < y1; iy++) {
                    for (int ix = x0; ix < x1; ix++) {
                        float v = xp[iy * s->w + ix];
                        /* Seeding with the first element lets an all -inf
                         * window still name a real position; strict > keeps
                         * the first of equal maxima. */
                        if (v > best || at < 0) {
                            best = v;
                            at = iy * s->w + ix;
                        }
                    }
                }
                yp[oy * s->ow + ox] = at < 0 ? 0.0f : best;
                ap[oy * s->ow + ox] = at;
            }
        }
    }
}

void loom_k_maxpool_bwd(const loom_pool_shape *s, const float *dy,
                        const int32_t *argmax, float *dx, int n) {
    const size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->oh * s->ow;
    for (size_t pl = 0; pl < (size_t)n * s->c; pl++) {
        const float *g = dy + pl * oplane;
        const int32_t *ap = argmax + pl * oplane;
        float *dxp = dx + pl * plane;
        for (size_t o = 0; o < oplane; o++)
            if (ap[o] >= 0) dxp[ap[o]] += g[o];
    }
}

/* Divisor of window (oy, ox). With padding counted, it is the window clipped
 * to the padded image: kh*kw in floor mode, less for a ceil_mode window that
 * passes the padded edge (as PyTorch and ONNX Runtime count). */
static float avg_count(const loom_pool_shape *s, int oy, int ox, int y0, int y1, int x0, int x1,
                       int count_include_pad) {
    if (count_include_pad) {
        int ys = oy * s->sh - s->ph, xs = ox * s->sw - s->pw;
        int ye = ys + s->kh < s->h + s->ph ? ys + s->kh : s->h + s->ph;
        int xe = xs + s->kw < s->w + s->pw ? xs + s->kw : s->w + s->pw;
        return (float)((ye - ys) * (xe - xs));
    }
    return (float)((y1 - y0) * (x1 - x0));
}

void loom_k_avgpool_fwd(const loom_pool_shape *s, const float *x, float *y, int n,
                        int count_include_pad) {
    const size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->oh * s->ow;
    for (size_t pl = 0; pl < (size_t)n * s->c; pl++) {
        const float *xp = x + pl * plane;
        float *yp = y + pl * oplane;
        for (int oy = 0; oy < s->oh; oy++) {
            int y0, y1;
            clip(oy * s->sh - s->ph, s->kh, s->h, &y0, &y1);
            for (int ox = 0; ox < s->ow; ox++) {
                int x0, x1;
                clip(ox * s->sw - s->pw, s->kw, s->w, &x0, &x1);
                float sum = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) sum += xp[iy * s->w + ix];
                float cnt = avg_count(s, oy, ox, y0, y1, x0, x1, count_include_pad);
                yp[oy * s->ow + ox] = cnt > 0.0f ? sum / cnt : 0.0f;
            }
        }
    }
}

void loom_k_avgpool_bwd(const loom_pool_shape *s, const float *dy, float *dx, int n,
                        int count_include_pad) {
    const size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->oh * s->ow;
    for (size_t pl = 0; pl < (size_t)n * s->c; pl++) {
        const float *g = dy + pl * oplane;
        float *dxp = dx + pl * plane;
        for (int oy = 0; oy < s->oh; oy++) {
            int y0, y1;
            clip(oy * s->sh - s->ph, s->kh, s->h, &y0, &y1);
            for (int ox = 0; ox < s->ow; ox++) {
                int x0, x1;
                clip(ox * s->sw - s->pw, s->kw, s->w, &x0, &x1);
                float cnt = avg_count(s, oy, ox, y0, y1, x0, x1, count_include_pad);
                if (cnt <= 0.0f) continue;
                float share = g[oy * s->ow + ox] / cnt;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dxp[iy * s->w + ix] += share;
            }
        }
    }
}

void loom_k_gavgpool_fwd(const float *x, float *y, int n, int c, int hw) {
    for (size_t pl = 0; pl < (size_t)n * c; pl++) {
        const float *xp = x + pl * hw;
        /* Double sum: planes can be large (150x150) and this is not hot. */
        double sum = 0.0;
        for (int i = 0; i < hw; i++) sum += xp[i];
        y[pl] = hw > 0 ? (float)(sum / hw) : 0.0f;
    }
}

void loom_k_gavgpool_bwd(const float *dy, float *dx, int n, int c, int hw) {
    if (hw <= 0) return;
    for (size_t pl = 0; pl < (size_t)n * c; pl++) {
        float share = dy[pl] / (float)hw;
        float *dxp = dx + pl * hw;
        for (int i = 0; i < hw; i++) dxp[i] += share;
    }
}
