/* The weight gradient of a 3x3 convolution (stride 1, padding 1) on oneDNN's
 * 8-channel-blocked layout, with AVX2 + FMA: loom's own kernel for the one
 * convolution pass where oneDNN 2.6's AVX2 code is slow. Measured alone on
 * this machine's shapes (one thread, batch of the harness): oneDNN's
 * backward-weights 37-55 GFLOP/s, this kernel 74-86 GFLOP/s (DESIGN.md,
 * "Convolution weight gradient").
 *
 * dW[o][i][kh][kw] = sum over samples and output pixels (y, x) of
 *                    dY[o][y][x] * X[i][y + kh - 1][x + kw - 1]  (zero outside).
 *
 * Register block: 16 output channels (two 8-wide vectors of dY) x 2 input
 * channels x the 3 taps kw of one row kh = 12 accumulators; per output pixel
 * 2 vector loads, 6 broadcasts and 12 FMAs, so the FMA units set the pace.
 * The pixels are taken in strips of rows that stay in the first-level caches
 * while every (output pair, input pair, kh) block passes over them; the
 * accumulators live in `acc` between strips. The order of the sums depends on
 * the shapes only, never on the thread count (the determinism contract). */
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LOOM_WGRAD_X86 1
#endif

#ifdef LOOM_WGRAD_X86

#define TGT __attribute__((target("avx2,fma")))

/* One row: dY rows d0, d1 (8 output channels each, pixel stride 8), the X row xr at input channel offset
 * (pixel stride 8), w pixels; a: 96 floats (2 output blocks x 2 input channels x 3 kw x 8). */
TGT static void row(const float *restrict xr, const float *restrict d0, const float *restrict d1, int w,
                    float *restrict a) {
    __m256 c00 = _mm256_loadu_ps(a + 0), c01 = _mm256_loadu_ps(a + 8), c02 = _mm256_loadu_ps(a + 16);
    __m256 c10 = _mm256_loadu_ps(a + 24), c11 = _mm256_loadu_ps(a + 32), c12 = _mm256_loadu_ps(a + 40);
    __m256 e00 = _mm256_loadu_ps(a + 48), e01 = _mm256_loadu_ps(a + 56), e02 = _mm256_loadu_ps(a + 64);
    __m256 e10 = _mm256_loadu_ps(a + 72), e11 = _mm256_loadu_ps(a + 80), e12 = _mm256_loadu_ps(a + 88);
    __m256 v0, v1, b;
    /* c: output block 0, e: block 1; then the input channel (0, 1), then kw */
#define TAP(P, K, C0, E0) b = _mm256_broadcast_ss((P) + (K)); C0 = _mm256_fmadd_ps(b, v0, C0); E0 = _mm256_fmadd_ps(b, v1, E0)
    /* x = 0: kw 0 falls on the padding */
    v0 = _mm256_loadu_ps(d0), v1 = _mm256_loadu_ps(d1);
    TAP(xr, 0, c01, e01); TAP(xr, 1, c11, e11);
    TAP(xr, 8, c02, e02); TAP(xr, 9, c12, e12);
    for (int x = 1; x < w - 1; x++) {
        const float *p = xr + 8 * (x - 1);
        v0 = _mm256_loadu_ps(d0 + 8 * x), v1 = _mm256_loadu_ps(d1 + 8 * x);
        TAP(p, 0, c00, e00); TAP(p, 1, c10, e10);
        TAP(p, 8, c01, e01); TAP(p, 9, c11, e11);
        TAP(p, 16, c02, e02); TAP(p, 17, c12, e12);
    }
    /* x = w - 1: kw 2 falls on the padding */
    {
        const float *p = xr + 8 * (w - 2);
        v0 = _mm256_loadu_ps(d0 + 8 * (w - 1)), v1 = _mm256_loadu_ps(d1 + 8 * (w - 1));
        TAP(p, 0, c00, e00); TAP(p, 1, c10, e10);
        TAP(p, 8, c01, e01); TAP(p, 9, c11, e11);
    }
#undef TAP
    _mm256_storeu_ps(a + 0, c00), _mm256_storeu_ps(a + 8, c01), _mm256_storeu_ps(a + 16, c02);
    _mm256_storeu_ps(a + 24, c10), _mm256_storeu_ps(a + 32, c11), _mm256_storeu_ps(a + 40, c12);
    _mm256_storeu_ps(a + 48, e00), _mm256_storeu_ps(a + 56, e01), _mm256_storeu_ps(a + 64, e02);
    _mm256_storeu_ps(a + 72, e10), _mm256_storeu_ps(a + 80, e11), _mm256_storeu_ps(a + 88, e12);
}

/* the bias gradient's share of rows y0..y1 of one 8-channel block of dY */
TGT static void bias_rows(const float *restrict d, int pixels, float *restrict s) {
    __m256 a0 = _mm256_loadu_ps(s), a1 = _mm256_setzero_ps();
    int p = 0;
    for (; p + 1 < pixels; p += 2)
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(d + 8 * p)), a1 = _mm256_add_ps(a1, _mm256_loadu_ps(d + 8 * p + 8));
    if (p < pixels) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(d + 8 * p));
    _mm256_storeu_ps(s, _mm256_add_ps(a0, a1));
}

TGT static void wgrad(const float *x, const float *dy, int n, int ic, int oc, int h, int w, float *acc,
                      float *bacc) {
    size_t plane = (size_t)h * w * 8;
    int OP = oc / 16, IP = ic / 2;
    int strip = 384 / w > 1 ? 384 / w : 1; /* rows whose X and dY blocks stay in L1 together */
    for (int s = 0; s < n; s++)
        for (int y0 = 0; y0 < h; y0 += strip) {
            int y1 = y0 + strip < h ? y0 + strip : h;
            for (int op = 0; op < OP; op++) {
                const float *D0 = dy + ((size_t)s * (oc / 8) + 2 * op) * plane, *D1 = D0 + plane;
                if (bacc) {
                    bias_rows(D0 + (size_t)y0 * w * 8, (y1 - y0) * w, bacc + 16 * op);
                    bias_rows(D1 + (size_t)y0 * w * 8, (y1 - y0) * w, bacc + 16 * op + 8);
                }
                for (int ip = 0; ip < IP; ip++) {
                    const float *Xb = x + ((size_t)s * (ic / 8) + ip / 4) * plane + (ip % 4) * 2;
                    for (int kh = 0; kh < 3; kh++) {
                        float *a = acc + (((size_t)op * IP + ip) * 3 + kh) * 96;
                        int lo = y0 > 1 - kh ? y0 : 1 - kh, hi = y1 < h + 1 - kh ? y1 : h + 1 - kh;
                        for (int y = lo; y < hi; y++)
                            row(Xb + (size_t)(y + kh - 1) * w * 8, D0 + (size_t)y * w * 8, D1 + (size_t)y * w * 8,
                                w, a);
                    }
                }
            }
        }
}

#endif

size_t loom_k_conv3x3_wgrad_scratch(int ic, int oc) { return (size_t)oc * ic * 9 + (size_t)oc; }

int loom_k_conv3x3_wgrad_blk8(const float *x, const float *dy, int n, int ic, int oc, int h, int w, float *acc,
                              float *dw, float *db) {
    if (!loom_k_avx2_fma() || ic % 8 || oc % 16 || w < 2 || h < 1 || n < 0) return 0;
#ifdef LOOM_WGRAD_X86
    float *bacc = acc + (size_t)oc * ic * 9;
    memset(acc, 0, loom_k_conv3x3_wgrad_scratch(ic, oc) * sizeof *acc);
    wgrad(x, dy, n, ic, oc, h, w, acc, db ? bacc : NULL);
    /* acc [oc/16][ic/2][kh][2 blocks][2 inputs][kw][8] -> dw [oc][ic][kh][kw], adding */
    int IP = ic / 2;
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < ic; i++)
            for (int kh = 0; kh < 3; kh++) {
                const float *a = acc + (((size_t)(o / 16) * IP + i / 2) * 3 + kh) * 96 + (o % 16) / 8 * 48 +
                                 (i % 2) * 24 + o % 8;
                float *d = dw + (((size_t)o * ic + i) * 3 + kh) * 3;
                d[0] += a[0], d[1] += a[8], d[2] += a[16];
            }
    if (db)
        for (int o = 0; o < oc; o++) db[o] += bacc[o];
    return 1;
#else
    (void)x, (void)dy, (void)acc, (void)dw, (void)db;
    return 0;
#endif
}
