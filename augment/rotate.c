/* Rotation about the centre, following Pillow's rotate(angle, BILINEAR,
 * fillcolor): output pixel centre (x + .5, y + .5) is mapped back into the
 * source with the inverse rotation (coefficients rounded to 15 decimals as
 * PIL does, so multiples of 90 degrees land exactly on pixel centres); a
 * sample outside [0, w) x [0, h) is fill, otherwise it is the bilinear blend of
 * the 4 nearest pixel centres with indices clamped at the border, truncated to
 * an integer (PIL truncates, it does not round).
 *
 * Speed: coordinates are 32.32 fixed point, stepped along each output row.
 * Each row splits into fill runs (memset), the stretch whose 4 taps are all
 * inside the image (no tests, no clamping, channels blended as one 4-lane
 * float vector), and a few border pixels done one by one. */
#include "internal.h"
#include "loom/augment.h"
#include "loom/error.h"

#include <math.h>
#include <string.h>

#define ONE ((int64_t)1 << 32)
#define HALF ((int64_t)1 << 31)

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef uint8_t v16b __attribute__((vector_size(16)));
typedef uint16_t v8h __attribute__((vector_size(16)));
typedef uint8_t v4b __attribute__((vector_size(4)));

static double round15(double v) { return round(v * 1e15) / 1e15; }

static int64_t fixed(double v) { return (int64_t)llround(v * 4294967296.0); }

/* The fractional part of a 32.32 coordinate as a weight in [0, 1), exactly
 * representable (24 bits). */
static inline float frac(int64_t X) { return (float)(int32_t)((uint32_t)X >> 8) * (1.0f / 16777216.0f); }

/* One pixel's channels, byte by byte (never reads past the pixel). */
static inline v4f taps(const uint8_t *p, const int C) {
    v4i t = {p[0], C > 1 ? p[1] : 0, C > 2 ? p[2] : 0, C > 3 ? p[3] : 0};
    return __builtin_convertvector(t, v4f);
}

/* Four bytes at once; for C = 3 the fourth belongs to the next pixel and is
 * ignored. Written as a 32-bit load and two zero-interleaves so that plain
 * SSE2 gets punpcklbw/punpcklwd and AVX gets pmovzx, never a trip via memory. */
static inline v4f taps4(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    v4i t = {(int32_t)u, 0, 0, 0};
    v16b z = {0};
    v16b x = __builtin_shufflevector((v16b)t, z, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    v8h zh = {0};
    v8h y = __builtin_shufflevector((v8h)x, zh, 0, 8, 1, 9, 2, 10, 3, 11);
    return __builtin_convertvector((v4i)y, v4f);
}

/* The low byte of each lane, as 4 consecutive bytes. */
static inline uint32_t pack4(v4i r) {
    v4b b = __builtin_convertvector(r, v4b);
    uint32_t u;
    memcpy(&u, &b, 4);
    return u;
}

/* The bilinear blend as three lerps, a + (b - a) * t: exact where the taps
 * are equal, so a flat region stays flat after truncation (a weighted sum of
 * four taps would not guarantee it). Lane by lane the arithmetic is the same
 * whatever the channel count, so gray and colour images agree. */
static inline v4i blend(v4f a, v4f b, v4f c, v4f d, float fx, float fy) {
    v4f top = a + (b - a) * fx, bot = c + (d - c) * fx;
    return __builtin_convertvector(top + (bot - top) * fy, v4i); /* truncates, as PIL */
}

static inline void put(uint8_t *o, v4i r, int c) {
    for (int ch = 0; ch < c; ch++) o[ch] = (uint8_t)r[ch];
}

/* One output pixel whose sample may be outside or on the border. */
static void sample_edge(const aug_view *v, int64_t X, int64_t Y, uint8_t fill, uint8_t *o) {
    int w = v->w, h = v->h, c = v->c;
    if (X < 0 || Y < 0 || X >= w * ONE || Y >= h * ONE) {
        memset(o, fill, c);
        return;
    }
    /* X - 1/2 >= -1/2: shift by one pixel so the floor is a plain shift */
    int64_t tx = X + HALF, ty = Y + HALF;
    int xi = (int)(tx >> 32) - 1, yi = (int)(ty >> 32) - 1;
    int x0 = xi < 0 ? 0 : xi, x1 = xi + 1 > w - 1 ? w - 1 : xi + 1;
    int y0 = yi < 0 ? 0 : yi, y1 = yi + 1 > h - 1 ? h - 1 : yi + 1;
    const uint8_t *r0 = v->p + y0 * v->ys, *r1 = v->p + y1 * v->ys;
    ptrdiff_t o0 = x0 * v->xs, o1 = x1 * v->xs;
    put(o, blend(taps(r0 + o0, c), taps(r0 + o1, c), taps(r1 + o0, c), taps(r1 + o1, c), frac(tx), frac(ty)), c);
}

/* Columns x in [*a, *b) (clipped to [0, n)) with lo <= s + x * step < hi. A
 * floating-point estimate, trimmed with exact integer tests: the true set is an
 * interval, so once both ends pass, everything between does. */
static void span(int64_t s, int64_t step, int64_t lo, int64_t hi, int n, int *a, int *b) {
    double fa = 0, fb = n;
    if (step == 0) {
        if (s < lo || s >= hi) fb = 0;
    } else {
        double t0 = (double)(lo - s) / (double)step, t1 = (double)(hi - s) / (double)step;
        fa = ceil(fmin(t0, t1));
        fb = floor(fmax(t0, t1)) + 1;
    }
    fa = fmin(fmax(fa, 0), n);
    fb = fmin(fmax(fb, 0), n);
    int ia = (int)fa, ib = fb > fa ? (int)fb : ia;
    while (ia < ib && (s + ia * step < lo || s + ia * step >= hi)) ia++;
    while (ib > ia && (s + (ib - 1) * step < lo || s + (ib - 1) * step >= hi)) ib--;
    *a = ia;
    *b = ib;
}

/* Columns whose sample lies in [lo, hi) in both coordinates. */
static void span2(int64_t X0, int64_t ax, int64_t Y0, int64_t ay, int64_t xlo, int64_t xhi, int64_t ylo,
                  int64_t yhi, int n, int *a, int *b) {
    int xa, xb, ya, yb;
    span(X0, ax, xlo, xhi, n, &xa, &xb);
    span(Y0, ay, ylo, yhi, n, &ya, &yb);
    *a = xa > ya ? xa : ya;
    *b = xb < yb ? xb : yb;
    if (*b < *a) *b = *a;
}

/* The stretch with all 4 taps inside. C is a constant after inlining; for
 * C = 3 pixels are read and written 4 bytes at a time, except where that
 * would touch a byte past the end of the image (the last pixel in memory). */
static inline void inner(const aug_view *v, uint8_t *o, int n, int64_t X, int64_t Y, int64_t ax,
                         int64_t ay, uint8_t *dst_end, const int C) {
    const uint8_t *base = v->p;
    size_t room = (size_t)v->w * v->h * C; /* bytes of the source */
    ptrdiff_t xs = v->xs, ys = v->ys, hi = (xs > 0 ? xs : 0) + (ys > 0 ? ys : 0);
    X -= HALF;
    Y -= HALF;
    for (int i = 0; i < n; i++, X += ax, Y += ay, o += C) {
        const uint8_t *p = base + (ptrdiff_t)(Y >> 32) * ys + (ptrdiff_t)(X >> 32) * xs;
        float fx = frac(X), fy = frac(Y);
        if (C == 1) {
            /* lane 0 of blend(), without the vector round trip */
            float a = p[0], b = p[xs], c = p[ys], d = p[ys + xs];
            float top = a + (b - a) * fx, bot = c + (d - c) * fx;
            o[0] = (uint8_t)(int32_t)(top + (bot - top) * fy);
        } else if (C == 4 || (C == 3 && (size_t)(p + hi - v->buf) + 4 <= room)) {
            v4i r = blend(taps4(p), taps4(p + xs), taps4(p + ys), taps4(p + ys + xs), fx, fy);
            if (C == 4 || dst_end - o >= 4) {
                uint32_t u = pack4(r);
                memcpy(o, &u, 4);
            } else {
                put(o, r, C);
            }
        } else {
            put(o, blend(taps(p, C), taps(p + xs, C), taps(p + ys, C), taps(p + ys + xs, C), fx, fy), C);
        }
    }
}

void aug_rotate_view(const aug_view *v, uint8_t *dst, double degrees, uint8_t fill) {
    int w = v->w, h = v->h, c = v->c;
    double deg = fmod(degrees, 360.0);
    if (deg < 0) deg += 360.0;
    double t = -deg * (3.14159265358979323846 / 180.0);
    /* inverse map: source = [a b; d e] * (dest centre) + (c0, f0) */
    double a = round15(cos(t)), b = round15(sin(t)), d = round15(-sin(t)), e = a;
    double cx = w / 2.0, cy = h / 2.0;
    double c0 = a * -cx + b * -cy + cx, f0 = d * -cx + e * -cy + cy;
    int64_t ax = fixed(a), ay = fixed(d);
    uint8_t *dst_end = dst + (size_t)w * h * c;
    for (int y = 0; y < h; y++) {
        uint8_t *o = dst + (size_t)y * w * c;
        int64_t X0 = fixed(a * 0.5 + b * (y + 0.5) + c0), Y0 = fixed(d * 0.5 + e * (y + 0.5) + f0);
        int ca, cb, ia, ib;
        /* covered: X in [0, w), Y in [0, h); interior: X - 1/2 in [0, w-1), Y - 1/2 in [0, h-1) */
        span2(X0, ax, Y0, ay, 0, w * ONE, 0, h * ONE, w, &ca, &cb);
        span2(X0, ax, Y0, ay, HALF, (w - 1) * ONE + HALF, HALF, (h - 1) * ONE + HALF, w, &ia, &ib);
        if (ia >= ib) ia = ib = cb;
        if (ia < ca) ia = ca;
        if (ib > cb) ib = cb;
        if (ib < ia) ib = ia;
        memset(o, fill, (size_t)ca * c);
        for (int x = ca; x < ia; x++) sample_edge(v, X0 + x * ax, Y0 + x * ay, fill, o + (size_t)x * c);
        int64_t Xa = X0 + ia * ax, Ya = Y0 + ia * ay;
        uint8_t *oi = o + (size_t)ia * c;
        switch (c) {
        case 1: inner(v, oi, ib - ia, Xa, Ya, ax, ay, dst_end, 1); break;
        case 2: inner(v, oi, ib - ia, Xa, Ya, ax, ay, dst_end, 2); break;
        case 3: inner(v, oi, ib - ia, Xa, Ya, ax, ay, dst_end, 3); break;
        default: inner(v, oi, ib - ia, Xa, Ya, ax, ay, dst_end, 4); break;
        }
        for (int x = ib; x < cb; x++) sample_edge(v, X0 + x * ax, Y0 + x * ay, fill, o + (size_t)x * c);
        memset(o + (size_t)cb * c, fill, (size_t)(w - cb) * c);
    }
}

int loom_augment_rotate(const uint8_t *src, int w, int h, int c, uint8_t *dst, double degrees,
                        uint8_t fill) {
    if (aug_check_size("loom_augment_rotate", w, h, c)) return LOOM_ERR;
    if (!isfinite(degrees)) return loom_fail(LOOM_EINVAL, "loom_augment_rotate: angle %g is not finite", degrees);
    aug_view v = aug_view_of(src, w, h, c);
    aug_rotate_view(&v, dst, degrees, fill);
    return LOOM_OK;
}
