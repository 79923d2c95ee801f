/* Resize, following Pillow's BILINEAR resampling so that images prepared
 * with PIL and with loom agree: each output pixel's centre maps to
 * (o + 0.5) * in/out in the source; weights come from a triangle filter whose
 * support is widened by the scale factor when shrinking (so every source
 * pixel contributes: area averaging, no aliasing); weights are normalised,
 * rounded to 22-bit fixed point, and each pass rounds back to uint8.
 * Horizontal pass first, then vertical, as Pillow does, because the uint8
 * rounding between passes makes the order visible in the last bit. */
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Scratch from the caller is not assumed aligned; the int tables need it. */
static uint8_t *align16(uint8_t *p) { return p + ((16 - ((uintptr_t)p & 15)) & 15); }
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

enum { PREC = 22 }; /* 255 * 2^22 * (sum of weights ~ 1) stays below 2^31 */

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_scale(int in, int out) {
    double s = (double)in / out;
    return s < 1.0 ? 1.0 : s;
}

/* Taps per output pixel: the support (1 * filter scale) each side, plus one. */
static int taps(int in, int out) { return (int)ceil(filter_scale(in, out)) * 2 + 1; }

static size_t table_bytes(int in, int out) {
    return round16(((size_t)out * taps(in, out) + 2 * (size_t)out) * sizeof(int32_t));
}

/* For each output index: first source index, tap count, and `k` fixed-point weights. */
static void coefficients(int in, int out, int32_t *tab) {
    int k = taps(in, out);
    int32_t *first = tab, *count = tab + out, *w = tab + 2 * (size_t)out;
    double scale = (double)in / out, fs = filter_scale(in, out), support = fs, inv = 1.0 / fs;
    for (int o = 0; o < out; o++) {
        double centre = (o + 0.5) * scale;
        int lo = (int)(centre - support + 0.5), hi = (int)(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += triangle((i + lo - centre + 0.5) * inv);
        int32_t *wo = w + (size_t)o * k;
        for (int i = 0; i < k; i++) {
            double t = i < n ? triangle((i + lo - centre + 0.5) * inv) : 0.0;
            if (sum != 0.0) t /= sum;
            wo[i] = (int32_t)(0.5 + t * (1 << PREC));
        }
        first[o] = lo;
        count[o] = n;
    }
}

static inline uint8_t clip8(int32_t s) {
    s >>= PREC; /* s >= 0: weights are never negative */
    return s > 255 ? 255 : (uint8_t)s;
}

/* One row of the horizontal pass; C is a constant after inlining, so the
 * channels accumulate in registers while the taps are walked once. */
static inline void row_h(const uint8_t *row, uint8_t *o, int dw, int k, const int32_t *first,
                         const int32_t *count, const int32_t *w, const int C) {
    for (int x = 0; x < dw; x++, o += C) {
        const uint8_t *p = row + (size_t)first[x] * C;
        const int32_t *wx = w + (size_t)x * k;
        int32_t s[4] = {1 << (PREC - 1), 1 << (PREC - 1), 1 << (PREC - 1), 1 << (PREC - 1)};
        for (int i = 0, n = count[x]; i < n; i++, p += C)
            for (int ch = 0; ch < C; ch++) s[ch] += p[ch] * wx[i];
        for (int ch = 0; ch < C; ch++) o[ch] = clip8(s[ch]);
    }
}

static void pass_h(const uint8_t *src, int sw, int h, int c, uint8_t *dst, int dw, const int32_t *tab) {
    int k = taps(sw, dw);
    const int32_t *first = tab, *count = tab + dw, *w = tab + 2 * (size_t)dw;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * sw * c;
        uint8_t *o = dst + (size_t)y * dw * c;
        switch (c) {
        case 1: row_h(row, o, dw, k, first, count, w, 1); break;
        case 2: row_h(row, o, dw, k, first, count, w, 2); break;
        case 3: row_h(row, o, dw, k, first, count, w, 3); break;
        default: row_h(row, o, dw, k, first, count, w, 4); break;
        }
    }
}

/* Rows are blended a chunk of columns at a time, taps outermost, so the
 * innermost loop is a contiguous multiply-add the compiler vectorises. */
enum { CHUNK = 512 };

static void pass_v(const uint8_t *src, int w, int sh, int c, uint8_t *dst, int dh, const int32_t *tab) {
    int k = taps(sh, dh);
    size_t row = (size_t)w * c;
    const int32_t *first = tab, *count = tab + dh, *wt = tab + 2 * (size_t)dh;
    int32_t acc[CHUNK];
    for (int y = 0; y < dh; y++) {
        const uint8_t *p = src + first[y] * row;
        const int32_t *wy = wt + (size_t)y * k;
        int n = count[y];
        uint8_t *o = dst + y * row;
        for (size_t j0 = 0; j0 < row; j0 += CHUNK) {
            size_t m = row - j0 < CHUNK ? row - j0 : CHUNK;
            for (size_t j = 0; j < m; j++) acc[j] = 1 << (PREC - 1);
            for (int i = 0; i < n; i++) {
                const uint8_t *q = p + i * row + j0;
                int32_t wi = wy[i];
                for (size_t j = 0; j < m; j++) acc[j] += q[j] * wi;
            }
            for (size_t j = 0; j < m; j++) o[j0 + j] = clip8(acc[j]);
        }
    }
}

size_t loom_k_resize_scratch(int sw, int sh, int c, int dw, int dh) {
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1 || c < 1) return 0;
    size_t n = 16 + table_bytes(sw, dw) + table_bytes(sh, dh);
    if (sw != dw && sh != dh) n += (size_t)dw * sh * c;
    return n;
}

void loom_k_resize(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh, uint8_t *scratch) {
    if (sw == dw && sh == dh) { /* a copy: no scratch needed (it may be NULL) */
        memcpy(dst, src, (size_t)sw * sh * c);
        return;
    }
    uint8_t *s = align16(scratch);
    int32_t *th = (int32_t *)s, *tv = (int32_t *)(s + table_bytes(sw, dw));
    uint8_t *mid = s + table_bytes(sw, dw) + table_bytes(sh, dh);
    if (sh == dh) {
        coefficients(sw, dw, th);
        pass_h(src, sw, sh, c, dst, dw, th);
    } else if (sw == dw) {
        coefficients(sh, dh, tv);
        pass_v(src, sw, sh, c, dst, dh, tv);
    } else {
        coefficients(sw, dw, th);
        coefficients(sh, dh, tv);
        pass_h(src, sw, sh, c, mid, dw, th);
        pass_v(mid, dw, sh, c, dst, dh, tv);
    }
}
