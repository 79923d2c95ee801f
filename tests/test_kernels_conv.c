/* Dense, conv2d and pooling kernels: forwards against hand-computed numbers
 * and a naive direct-loop reference, backwards against central finite
 * differences, and the accumulate / NULL-gradient rules of kernels.h. */
#include "check.h"
#include "runtime/pool.h"
#include "kernels/kernels.h"

#include <stdint.h>

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static loom_conv_shape conv_shape(int c, int h, int w, int oc, int kh, int kw, int sh,
                                  int sw, int ph, int pw, int dh, int dw, int groups) {
    loom_conv_shape s = {c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups, 0, 0};
    return s;
}

static loom_pool_shape pool_shape(int c, int h, int w, int kh, int kw, int sh, int sw,
                                  int ph, int pw) {
    loom_pool_shape s = {c, h, w, kh, kw, sh, sw, ph, pw, 0, 0, 0};
    return s;
}

static size_t conv_xlen(const loom_conv_shape *s, int n) { return (size_t)n * s->c * s->h * s->w; }
static size_t conv_ylen(const loom_conv_shape *s, int n) { return (size_t)n * s->oc * s->oh * s->ow; }
static size_t conv_wlen(const loom_conv_shape *s) {
    return (size_t)s->oc * (s->c / s->groups) * s->kh * s->kw;
}
/* Exactly the advertised scratch, so AddressSanitizer catches any overrun. */
static float *conv_scratch(const loom_conv_shape *s) {
    size_t n = loom_k_conv2d_scratch(s);
    return n ? falloc(n) : NULL;
}

static void describe(char *buf, size_t len, const char *op, const loom_conv_shape *s) {
    snprintf(buf, len, "%s c%d %dx%d oc%d k%dx%d s%d,%d p%d,%d d%d,%d g%d", op, s->c,
             s->h, s->w, s->oc, s->kh, s->kw, s->sh, s->sw, s->ph, s->pw, s->dh, s->dw,
             s->groups);
}

/* The textbook definition, seven loops deep, summed in double. */
static void ref_conv(const loom_conv_shape *s, const float *x, const float *W,
                     const float *b, double *y, int n) {
    int cin = s->c / s->groups, ocg = s->oc / s->groups;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < s->oc; o++)
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    double acc = b ? b[o] : 0.0;
                    int g = o / ocg;
                    for (int ci = 0; ci < cin; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int iy = oy * s->sh - s->ph + ki * s->dh;
                                int ix = ox * s->sw - s->pw + kj * s->dw;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                int c = g * cin + ci;
                                acc += (double)x[((size_t)(i * s->c + c) * s->h + iy) * s->w + ix] *
                                       W[((size_t)(o * cin + ci) * s->kh + ki) * s->kw + kj];
                            }
                    y[((size_t)(i * s->oc + o) * s->oh + oy) * s->ow + ox] = acc;
                }
}

/* Direct pooling reference: walks the whole window and tests each tap. */
static void ref_pool(const loom_pool_shape *s, const float *x, double *y, int n,
                     int mode /* 0 max, 1 avg excl pad, 2 avg incl pad */) {
    for (int pl = 0; pl < n * s->c; pl++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                double best = -INFINITY, sum = 0;
                int cnt = 0;
                for (int ki = 0; ki < s->kh; ki++)
                    for (int kj = 0; kj < s->kw; kj++) {
                        int iy = oy * s->sh - s->ph + ki, ix = ox * s->sw - s->pw + kj;
                        if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                        double v = x[(size_t)pl * s->h * s->w + iy * s->w + ix];
                        best = v > best ? v : best;
                        sum += v;
                        cnt++;
                    }
                double out = mode == 0 ? best
                             : mode == 1 ? sum / cnt
                                         : sum / (s->kh * s->kw);
                y[((size_t)pl * s->oh + oy) * s->ow + ox] = out;
            }
}

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double tol) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (1.0 + fabs(want[i]));
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    CHECK(worst <= tol, "%s: worst [%zu] %.9g vs %.9g", what, at, n ? got[at] : 0.0,
          n ? want[at] : 0.0);
}

/* ---- hand-computed forwards ------------------------------------------------ */

static void hand_conv(void) {
    const float x9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}; /* rows 1 2 3 / 4 5 6 / 7 8 9 */
    float y[16];

    /* 2x2 kernel [1 2; 3 4], bias 0.5, no padding -> 2x2:
     *   1*1+2*2+4*3+5*4 = 37    2*1+3*2+5*3+6*4 = 47
     *   4*1+5*2+7*3+8*4 = 67    5*1+6*2+8*3+9*4 = 77     (each + 0.5) */
    {
        loom_conv_shape s = conv_shape(1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 2 && s.ow == 2, "2x2 out %dx%d", s.oh, s.ow);
        const float W[4] = {1, 2, 3, 4}, b[1] = {0.5f};
        float scratch[16];
        loom_k_conv2d_fwd(&s, x9, W, b, y, 1, scratch);
        const float want[4] = {37.5f, 47.5f, 67.5f, 77.5f};
        for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv 2x2");
    }
    /* 3x3 ones kernel, padding 1 -> 3x3 of neighbourhood sums:
     *   1+2+4+5=12   1+..+6=21        2+3+5+6=16
     *   1+2+4+5+7+8=27   45           2+3+5+6+8+9=33
     *   4+5+7+8=24   4+..+9=39        5+6+8+9=28 */
    {
        loom_conv_shape s = conv_shape(1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 3 && s.ow == 3, "pad out %dx%d", s.oh, s.ow);
        const float W[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        float scratch[81];
        loom_k_conv2d_fwd(&s, x9, W, NULL, y, 1, scratch);
        const float want[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
        for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv pad 1");
    }
    /* Same with stride 2: floor((3+2-3)/2)+1 = 2, windows start at -1 and 1,
     * so the four corners of the table above: 12 16 / 24 28. */
    {
        loom_conv_shape s = conv_shape(1, 3, 3, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 2 && s.ow == 2, "s2 out %dx%d", s.oh, s.ow);
        const float W[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        float scratch[36];
        loom_k_conv2d_fwd(&s, x9, W, NULL, y, 1, scratch);
        const float want[4] = {12, 16, 24, 28};
        for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv pad 1 stride 2");
    }
    /* 4x4 input x[i][j] = 4i+j, 2x2 ones, stride 2 -> 0+1+4+5=10, 2+3+6+7=18,
     * 8+9+12+13=42, 10+11+14+15=50. */
    {
        float x16[16];
        for (int i = 0; i < 16; i++) x16[i] = (float)i;
        loom_conv_shape s = conv_shape(1, 4, 4, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 2 && s.ow == 2, "s2 out %dx%d", s.oh, s.ow);
        const float W[4] = {1, 1, 1, 1};
        float scratch[16];
        loom_k_conv2d_fwd(&s, x16, W, NULL, y, 1, scratch);
        const float want[4] = {10, 18, 42, 50};
        for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv stride 2");
    }
    /* 2x2 ones with dilation 2 on the 3x3 input touches the corners only:
     * 1+3+7+9 = 20, output 1x1. */
    {
        loom_conv_shape s = conv_shape(1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 2, 2, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 1 && s.ow == 1, "dil out %dx%d", s.oh, s.ow);
        const float W[4] = {1, 1, 1, 1};
        float scratch[4];
        loom_k_conv2d_fwd(&s, x9, W, NULL, y, 1, scratch);
        CHECK_NEAR(y[0], 20, 1e-5, "conv dilation 2");
    }
    /* Two groups of one channel with 1x1 weights 2 and -3: each output channel
     * sees only its own input channel. x = [1..9 | 9..1]. */
    {
        float x18[18];
        for (int i = 0; i < 9; i++) x18[i] = x9[i], x18[9 + i] = x9[8 - i];
        loom_conv_shape s = conv_shape(2, 3, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1, 2);
        CHECK(loom_k_conv2d_out(&s) == 0, "groups out");
        const float W[2] = {2, -3}, b[2] = {1, 0};
        float y18[18];
        loom_k_conv2d_fwd(&s, x18, W, b, y18, 1, NULL);
        for (int i = 0; i < 9; i++) {
            CHECK_NEAR(y18[i], 2 * x9[i] + 1, 1e-5, "conv groups 0");
            CHECK_NEAR(y18[9 + i], -3 * x9[8 - i], 1e-5, "conv groups 1");
        }
    }
    /* Output-size rule and its failures. */
    {
        loom_conv_shape s = conv_shape(1, 28, 28, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 28 && s.ow == 28, "lenet c1 %dx%d", s.oh, s.ow);
        s = conv_shape(3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == 0 && s.oh == 112, "resnet stem %d", s.oh);
        s = conv_shape(1, 2, 2, 1, 3, 3, 1, 1, 0, 0, 1, 1, 1);
        CHECK(loom_k_conv2d_out(&s) == -1, "kernel larger than input");
        s = conv_shape(1, 4, 4, 1, 3, 3, 1, 1, 0, 0, 2, 2, 1);
        CHECK(loom_k_conv2d_out(&s) == -1, "dilated kernel larger than input");
        s = conv_shape(3, 4, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 2);
        CHECK(loom_k_conv2d_out(&s) == -1, "channels not divisible by groups");
    }
}

static void hand_pool(void) {
    /* 4x4, 2x2 stride 2:
     *   1 3 | 2 0
     *   5 4 | 7 6     -> max 5 (index 4)  7 (index 6)
     *   ----+----
     *   9 8 | 1 2     -> max 9 (index 8)  5 (index 15)
     *   0 3 | 4 5
     * averages: 13/4=3.25 15/4=3.75 20/4=5 12/4=3 */
    {
        const float x[16] = {1, 3, 2, 0, 5, 4, 7, 6, 9, 8, 1, 2, 0, 3, 4, 5};
        loom_pool_shape s = pool_shape(1, 4, 4, 2, 2, 2, 2, 0, 0);
        CHECK(loom_k_pool_out(&s) == 0 && s.oh == 2 && s.ow == 2, "pool out %dx%d", s.oh, s.ow);
        float y[4];
        int32_t am[4];
        loom_k_maxpool_fwd(&s, x, y, am, 1);
        const float want[4] = {5, 7, 9, 5};
        const int32_t want_am[4] = {4, 6, 8, 15};
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(y[i], want[i], 0, "maxpool 2x2");
            CHECK(am[i] == want_am[i], "argmax[%d] = %d, want %d", i, am[i], want_am[i]);
        }
        loom_k_avgpool_fwd(&s, x, y, 1, 0);
        const float want_avg[4] = {3.25f, 3.75f, 5, 3};
        for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want_avg[i], 1e-6, "avgpool 2x2");
    }
    /* 3x3 max, stride 1, padding 1 on all-negative input: padding must act as
     * -inf, not 0, or every output would be 0.
     *   -1 -2 -3          -1 -1 -2
     *   -4 -5 -6    ->    -1 -1 -2
     *   -7 -8 -9          -4 -4 -5 */
    {
        const float x[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
        loom_pool_shape s = pool_shape(1, 3, 3, 3, 3, 1, 1, 1, 1);
        CHECK(loom_k_pool_out(&s) == 0 && s.oh == 3 && s.ow == 3, "pool pad out");
        float y[9];
        int32_t am[9];
        loom_k_maxpool_fwd(&s, x, y, am, 1);
        const float want[9] = {-1, -1, -2, -1, -1, -2, -4, -4, -5};
        const int32_t want_am[9] = {0, 0, 1, 0, 0, 1, 3, 3, 4};
        for (int i = 0; i < 9; i++) {
            CHECK_NEAR(y[i], want[i], 0, "maxpool pad");
            CHECK(am[i] == want_am[i], "pad argmax[%d] = %d, want %d", i, am[i], want_am[i]);
        }
    }
    /* 3x3 average, stride 1, padding 1 on 1..9 (window sums as in hand_conv:
     * 12 21 16 / 27 45 33 / 24 39 28).
     * Excluding padding, divide by the taps inside: 4 6 4 / 6 9 6 / 4 6 4
     *   -> 3 3.5 4 / 4.5 5 5.5 / 6 6.5 7.
     * Including padding, always divide by 9. */
    {
        const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        const float sums[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
        const float excl[9] = {3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7};
        loom_pool_shape s = pool_shape(1, 3, 3, 3, 3, 1, 1, 1, 1);
        CHECK(loom_k_pool_out(&s) == 0, "avg pad out");
        float y[9];
        loom_k_avgpool_fwd(&s, x, y, 1, 0);
        for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], excl[i], 1e-6, "avgpool exclude pad");
        loom_k_avgpool_fwd(&s, x, y, 1, 1);
        for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], sums[i] / 9.0, 1e-6, "avgpool include pad");
    }
    /* Global average: channel means of [1 2 3 4] and [-2 0 0 6] are 2.5 and 1. */
    {
        const float x[8] = {1, 2, 3, 4, -2, 0, 0, 6};
        float y[2];
        loom_k_gavgpool_fwd(x, y, 1, 2, 4);
        CHECK_NEAR(y[0], 2.5, 1e-6, "gavgpool 0");
        CHECK_NEAR(y[1], 1.0, 1e-6, "gavgpool 1");
    }
    {
        loom_pool_shape s = pool_shape(1, 28, 28, 2, 2, 2, 2, 0, 0);
        CHECK(loom_k_pool_out(&s) == 0 && s.oh == 14, "pool 28 -> %d", s.oh);
        s = pool_shape(1, 7, 7, 3, 3, 2, 2, 1, 1);
        CHECK(loom_k_pool_out(&s) == 0 && s.oh == 4, "pool 7 k3 s2 p1 -> %d", s.oh);
        s = pool_shape(1, 2, 2, 3, 3, 1, 1, 0, 0);
        CHECK(loom_k_pool_out(&s) == -1, "pool window larger than input");
    }
}

/* ---- forwards against the references over many shapes ------------------------ */

static void conv_vs_ref(const loom_conv_shape *s0, int n, unsigned seed) {
    loom_conv_shape s = *s0;
    char name[160];
    describe(name, sizeof name, "conv fwd", &s);
    if (loom_k_conv2d_out(&s) != 0) {
        CHECK(0, "%s: empty output", name);
        return;
    }
    size_t xl = conv_xlen(&s, n), yl = conv_ylen(&s, n), wl = conv_wlen(&s);
    float *x = falloc(xl), *W = falloc(wl), *b = falloc(s.oc), *y = falloc(yl);
    float *scratch = conv_scratch(&s);
    double *ref = calloc(yl, sizeof(double));
    t_fill(x, xl, seed, -1, 1);
    t_fill(W, wl, seed + 1, -1, 1);
    t_fill(b, s.oc, seed + 2, -1, 1);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *bb = with_bias ? b : NULL;
        for (size_t i = 0; i < yl; i++) y[i] = NAN; /* forward must overwrite */
        loom_k_conv2d_fwd(&s, x, W, bb, y, n, scratch);
        ref_conv(&s, x, W, bb, ref, n);
        check_close(name, y, ref, yl, 1e-5);
    }
    free(x), free(W), free(b), free(y), free(scratch), free(ref);
}

/* im2col and col2im are adjoint: <im2col(x), c> == <x, col2im(c)>. */
static void im2col_adjoint(const loom_conv_shape *s0, unsigned seed) {
    loom_conv_shape s = *s0;
    if (loom_k_conv2d_out(&s) != 0) return;
    int cin = s.c / s.groups;
    size_t xl = (size_t)cin * s.h * s.w, cl = (size_t)cin * s.kh * s.kw * s.oh * s.ow;
    float *x = falloc(xl), *col = falloc(cl), *c = falloc(cl), *xt = falloc(xl);
    t_fill(x, xl, seed, -1, 1);
    t_fill(c, cl, seed + 1, -1, 1);
    loom_k_im2col(&s, cin, x, col);
    loom_k_col2im(&s, cin, c, xt);
    double lhs = 0, rhs = 0, mag = 0;
    for (size_t i = 0; i < cl; i++) lhs += (double)col[i] * c[i], mag += fabs(col[i] * c[i]);
    for (size_t i = 0; i < xl; i++) rhs += (double)x[i] * xt[i];
    char name[160];
    describe(name, sizeof name, "im2col/col2im adjoint", &s);
    CHECK(fabs(lhs - rhs) <= 1e-5 * (1 + mag), "%s: %.9g vs %.9g", name, lhs, rhs);
    free(x), free(col), free(c), free(xt);
}

static void pool_vs_ref(const loom_pool_shape *s0, int n, unsigned seed) {
    loom_pool_shape s = *s0;
    if (loom_k_pool_out(&s) != 0) {
        CHECK(0, "pool %dx%d k%dx%d: empty output", s.h, s.w, s.kh, s.kw);
        return;
    }
    size_t xl = (size_t)n * s.c * s.h * s.w, yl = (size_t)n * s.c * s.oh * s.ow;
    float *x = falloc(xl), *y = falloc(yl);
    int32_t *am = calloc(yl, sizeof(int32_t));
    double *ref = calloc(yl, sizeof(double));
    t_fill(x, xl, seed, -1, 1);
    char name[160];
    snprintf(name, sizeof name, "pool c%d %dx%d k%dx%d s%d,%d p%d,%d", s.c, s.h, s.w, s.kh,
             s.kw, s.sh, s.sw, s.ph, s.pw);
    loom_k_maxpool_fwd(&s, x, y, am, n);
    ref_pool(&s, x, ref, n, 0);
    check_close(name, y, ref, yl, 0);
    int am_ok = 1;
    for (size_t i = 0; i < yl; i++) {
        size_t pl = i / ((size_t)s.oh * s.ow);
        am_ok &= am[i] >= 0 && am[i] < s.h * s.w && x[pl * s.h * s.w + am[i]] == y[i];
    }
    CHECK(am_ok, "%s: argmax does not point at the maximum", name);
    for (int cip = 0; cip < 2; cip++) {
        loom_k_avgpool_fwd(&s, x, y, n, cip);
        ref_pool(&s, x, ref, n, 1 + cip);
        check_close(name, y, ref, yl, 1e-6);
    }
    free(x), free(y), free(am), free(ref);
}

/* ---- backward: gradcheck, accumulation, NULL gradients -------------------------- */

enum { OP_DENSE, OP_CONV, OP_MAXPOOL, OP_AVGPOOL, OP_GAVGPOOL };

typedef struct {
    int op, n, cip;
    int in, out;         /* dense */
    int c, hw;           /* gavgpool */
    loom_conv_shape cs;
    loom_pool_shape ps;
    float *x, *W, *b, *y, *r, *scratch;
    int32_t *am;
    size_t xl, wl, bl, yl;
} gctx;

static void op_fwd(gctx *g) {
    switch (g->op) {
    case OP_DENSE: loom_k_dense_fwd(g->x, g->W, g->b, g->y, g->n, g->in, g->out); break;
    case OP_CONV: loom_k_conv2d_fwd(&g->cs, g->x, g->W, g->b, g->y, g->n, g->scratch); break;
    case OP_MAXPOOL: loom_k_maxpool_fwd(&g->ps, g->x, g->y, g->am, g->n); break;
    case OP_AVGPOOL: loom_k_avgpool_fwd(&g->ps, g->x, g->y, g->n, g->cip); break;
    case OP_GAVGPOOL: loom_k_gavgpool_fwd(g->x, g->y, g->n, g->c, g->hw); break;
    }
}

/* dy is r: the gradient of loss = sum(y * r). */
static void op_bwd(gctx *g, float *dx, float *dW, float *db) {
    switch (g->op) {
    case OP_DENSE: loom_k_dense_bwd(g->x, g->W, g->r, dx, dW, db, g->n, g->in, g->out); break;
    case OP_CONV:
        loom_k_conv2d_bwd(&g->cs, g->x, g->W, g->r, dx, dW, db, g->n, g->scratch);
        break;
    case OP_MAXPOOL: loom_k_maxpool_bwd(&g->ps, g->r, g->am, dx, g->n); break;
    case OP_AVGPOOL: loom_k_avgpool_bwd(&g->ps, g->r, dx, g->n, g->cip); break;
    case OP_GAVGPOOL: loom_k_gavgpool_bwd(g->r, dx, g->n, g->c, g->hw); break;
    }
}

static double op_loss(void *ctx) {
    gctx *g = ctx;
    op_fwd(g);
    double sum = 0;
    for (size_t i = 0; i < g->yl; i++) sum += (double)g->y[i] * g->r[i];
    return sum;
}

static int n_gradchecks;

static const float EPS = 1e-2f;
static const double ATOL = 2e-4, RTOL = 2e-3;

/* Distinct values a shuffled step of 0.05 apart: no two inputs of a max
 * window come within 2*EPS, so finite differences never cross a kink. */
static void fill_distinct(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) x[i] = -1.0f + 0.05f * (float)i;
    unsigned long long s = 0x2545F4914F6CDD1Dull * (seed + 1);
    for (size_t i = n; i > 1; i--) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((s >> 33) % i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

static int same_scaled(const float *a, const float *b, size_t n, float k) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - k * b[i]) > 1e-5f * (1.0f + fabsf(k * b[i]))) return 0;
    return 1;
}

static void grad_run(gctx *g, const char *name, unsigned seed) {
    g->x = falloc(g->xl);
    g->W = g->wl ? falloc(g->wl) : NULL;
    g->b = g->bl ? falloc(g->bl) : NULL;
    g->y = falloc(g->yl);
    g->r = falloc(g->yl);
    g->am = g->op == OP_MAXPOOL ? calloc(g->yl, sizeof(int32_t)) : NULL;
    if (g->op == OP_MAXPOOL)
        fill_distinct(g->x, g->xl, seed);
    else
        t_fill(g->x, g->xl, seed, -1, 1);
    if (g->W) t_fill(g->W, g->wl, seed + 1, -1, 1);
    if (g->b) t_fill(g->b, g->bl, seed + 2, -1, 1);
    t_fill(g->r, g->yl, seed + 3, -1, 1);

    float *dx = falloc(g->xl), *dW = g->wl ? falloc(g->wl) : NULL;
    float *db = g->bl ? falloc(g->bl) : NULL;
    op_fwd(g);
    op_bwd(g, dx, dW, db);

    char what[200];
    snprintf(what, sizeof what, "%s dx", name);
    t_gradcheck(what, op_loss, g, g->x, dx, g->xl, EPS, ATOL, RTOL);
    n_gradchecks++;
    if (dW) {
        snprintf(what, sizeof what, "%s dW", name);
        t_gradcheck(what, op_loss, g, g->W, dW, g->wl, EPS, ATOL, RTOL);
        n_gradchecks++;
    }
    if (db) {
        snprintf(what, sizeof what, "%s db", name);
        t_gradcheck(what, op_loss, g, g->b, db, g->bl, EPS, ATOL, RTOL);
        n_gradchecks++;
    }

    /* A second backward adds the same gradients again. */
    float *dx2 = falloc(g->xl), *dW2 = g->wl ? falloc(g->wl) : NULL;
    float *db2 = g->bl ? falloc(g->bl) : NULL;
    memcpy(dx2, dx, sizeof(float) * g->xl);
    if (dW) memcpy(dW2, dW, sizeof(float) * g->wl);
    if (db) memcpy(db2, db, sizeof(float) * g->bl);
    op_fwd(g);
    op_bwd(g, dx2, dW2, db2);
    CHECK(same_scaled(dx2, dx, g->xl, 2), "%s: dx does not accumulate", name);
    if (dW) CHECK(same_scaled(dW2, dW, g->wl, 2), "%s: dW does not accumulate", name);
    if (db) CHECK(same_scaled(db2, db, g->bl, 2), "%s: db does not accumulate", name);

    /* Each gradient alone (others NULL) must equal its part of the full call. */
    if (dW) {
        memset(dx2, 0, sizeof(float) * g->xl);
        op_bwd(g, dx2, NULL, NULL);
        CHECK(same_scaled(dx2, dx, g->xl, 1), "%s: dx alone differs", name);
        memset(dW2, 0, sizeof(float) * g->wl);
        op_bwd(g, NULL, dW2, NULL);
        CHECK(same_scaled(dW2, dW, g->wl, 1), "%s: dW alone differs", name);
    }
    if (db) {
        memset(db2, 0, sizeof(float) * g->bl);
        op_bwd(g, NULL, NULL, db2);
        CHECK(same_scaled(db2, db, g->bl, 1), "%s: db alone differs", name);
    }
    free(dx), free(dW), free(db), free(dx2), free(dW2), free(db2);
    free(g->x), free(g->W), free(g->b), free(g->y), free(g->r), free(g->am);
}

static void grad_dense(int n, int in, int out, unsigned seed) {
    gctx g = {.op = OP_DENSE, .n = n, .in = in, .out = out};
    g.xl = (size_t)n * in, g.wl = (size_t)out * in, g.bl = out, g.yl = (size_t)n * out;
    char name[80];
    snprintf(name, sizeof name, "dense n%d %d->%d", n, in, out);
    grad_run(&g, name, seed);
}

static void grad_conv(loom_conv_shape s, int n, unsigned seed) {
    char name[160];
    describe(name, sizeof name, "conv", &s);
    if (loom_k_conv2d_out(&s) != 0) {
        CHECK(0, "%s: empty output", name);
        return;
    }
    gctx g = {.op = OP_CONV, .n = n, .cs = s};
    g.xl = conv_xlen(&s, n), g.wl = conv_wlen(&s), g.bl = s.oc, g.yl = conv_ylen(&s, n);
    g.scratch = conv_scratch(&s);
    grad_run(&g, name, seed);
    free(g.scratch);
}

static void grad_pool(int op, loom_pool_shape s, int n, int cip, unsigned seed) {
    char name[160];
    snprintf(name, sizeof name, "%s c%d %dx%d k%dx%d s%d,%d p%d,%d",
             op == OP_MAXPOOL ? "maxpool" : cip ? "avgpool incl" : "avgpool excl", s.c, s.h,
             s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw);
    if (loom_k_pool_out(&s) != 0) {
        CHECK(0, "%s: empty output", name);
        return;
    }
    gctx g = {.op = op, .n = n, .cip = cip, .ps = s};
    g.xl = (size_t)n * s.c * s.h * s.w, g.yl = (size_t)n * s.c * s.oh * s.ow;
    grad_run(&g, name, seed);
}

static void grad_gavgpool(int n, int c, int hw, unsigned seed) {
    gctx g = {.op = OP_GAVGPOOL, .n = n, .c = c, .hw = hw};
    g.xl = (size_t)n * c * hw, g.yl = (size_t)n * c;
    char name[80];
    snprintf(name, sizeof name, "gavgpool n%d c%d hw%d", n, c, hw);
    grad_run(&g, name, seed);
}

int main(void) {
    loom_k_blas_single_thread();
    hand_conv();
    hand_pool();

    /* c h w oc kh kw sh sw ph pw dh dw groups */
    const loom_conv_shape shapes[] = {
        conv_shape(1, 28, 28, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1),   /* LeNet C1 */
        conv_shape(6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 1, 1, 1),  /* LeNet C3 */
        conv_shape(3, 9, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),     /* odd, padded */
        conv_shape(3, 11, 10, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1),   /* stride 2 */
        conv_shape(2, 8, 9, 3, 4, 4, 2, 2, 1, 2, 1, 1, 1),     /* even kernel, stride 2 */
        conv_shape(3, 12, 11, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1),   /* dilation 2 */
        conv_shape(2, 13, 9, 2, 3, 2, 2, 1, 3, 1, 2, 3, 1),    /* mixed dilation */
        conv_shape(4, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2),     /* groups 2 */
        conv_shape(6, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3),     /* groups 3, stride 2 */
        conv_shape(4, 9, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4),     /* depthwise x2 */
        conv_shape(3, 10, 6, 4, 1, 5, 1, 1, 0, 2, 1, 1, 1),    /* 1x5 */
        conv_shape(3, 7, 10, 2, 5, 2, 1, 3, 2, 0, 1, 1, 1),    /* 5x2, sw 3 */
        conv_shape(5, 6, 7, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1),     /* 1x1 fast path */
        conv_shape(4, 6, 7, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2),     /* 1x1 grouped */
        conv_shape(5, 7, 7, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1),     /* 1x1 stride 2 */
        conv_shape(2, 5, 5, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),     /* 1x1 padded */
        conv_shape(3, 4, 4, 2, 3, 3, 1, 1, 3, 3, 1, 1, 1),     /* padding >= kernel */
        conv_shape(2, 5, 5, 2, 5, 5, 1, 1, 0, 0, 1, 1, 1),     /* kernel = input */
        conv_shape(3, 1, 9, 2, 1, 3, 1, 2, 0, 1, 1, 1, 1),     /* one row */
        conv_shape(16, 9, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1),    /* deeper */
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < nshapes; i++) {
        conv_vs_ref(&shapes[i], 3, 100 + i);
        im2col_adjoint(&shapes[i], 200 + i);
    }
    const loom_pool_shape pools[] = {
        pool_shape(3, 8, 8, 2, 2, 2, 2, 0, 0),  pool_shape(2, 7, 7, 3, 3, 2, 2, 1, 1),
        pool_shape(2, 9, 6, 3, 2, 1, 2, 1, 0),  pool_shape(1, 5, 5, 5, 5, 1, 1, 2, 2),
        pool_shape(2, 10, 11, 3, 3, 3, 3, 0, 1), pool_shape(1, 1, 6, 1, 3, 1, 2, 0, 1),
    };
    const int npools = (int)(sizeof pools / sizeof pools[0]);
    for (int i = 0; i < npools; i++) pool_vs_ref(&pools[i], 2, 300 + i);

    grad_dense(3, 5, 4, 1);
    grad_dense(1, 7, 1, 2);
    const loom_conv_shape gshapes[] = {
        conv_shape(2, 5, 5, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1),   /* plain */
        conv_shape(2, 6, 5, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1),   /* pad 1 */
        conv_shape(2, 7, 7, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1),   /* stride 2 */
        conv_shape(2, 7, 6, 2, 3, 3, 1, 1, 2, 1, 2, 2, 1),   /* dilation 2 */
        conv_shape(4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2),   /* groups 2 */
        conv_shape(3, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3),   /* depthwise x2 */
        conv_shape(2, 6, 7, 3, 2, 3, 1, 2, 1, 0, 1, 1, 1),   /* non-square */
        conv_shape(3, 4, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1),   /* 1x1 fast path */
        conv_shape(4, 4, 3, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2),   /* 1x1 grouped */
        conv_shape(3, 5, 5, 2, 1, 1, 2, 2, 0, 0, 1, 1, 1),   /* 1x1 stride 2 */
    };
    const int ngshapes = (int)(sizeof gshapes / sizeof gshapes[0]);
    for (int i = 0; i < ngshapes; i++) grad_conv(gshapes[i], 2, 400 + i);

    grad_pool(OP_MAXPOOL, pool_shape(2, 6, 6, 2, 2, 2, 2, 0, 0), 2, 0, 500);
    grad_pool(OP_MAXPOOL, pool_shape(2, 7, 7, 3, 3, 2, 2, 1, 1), 2, 0, 501);
    grad_pool(OP_MAXPOOL, pool_shape(1, 5, 6, 2, 3, 1, 2, 1, 1), 2, 0, 502);
    for (int cip = 0; cip < 2; cip++) {
        grad_pool(OP_AVGPOOL, pool_shape(2, 5, 5, 3, 3, 1, 1, 1, 1), 2, cip, 510 + cip);
        grad_pool(OP_AVGPOOL, pool_shape(2, 7, 6, 3, 3, 2, 2, 1, 1), 2, cip, 520 + cip);
        grad_pool(OP_AVGPOOL, pool_shape(1, 6, 6, 2, 2, 2, 2, 0, 0), 2, cip, 530 + cip);
    }
    grad_gavgpool(2, 3, 10, 600);
    grad_gavgpool(1, 1, 49, 601);

    printf("%d conv shapes and %d pool shapes against references, %d gradchecks\n", nshapes,
           npools, n_gradchecks);
    TEST_END();
}
