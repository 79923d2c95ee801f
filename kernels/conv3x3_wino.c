/* Inference 3x3 convolution (stride 1, padding 1) by Winograd F(2x2, 3x3) on
 * oneDNN's 8-channel-blocked layout, with AVX2 + FMA, and the post-operations
 * of loom's fused inference (bias, an added tensor, ReLU). oneDNN 2.6 has no
 * Winograd code for AVX2; this needs 2.25x fewer multiplications than the
 * direct convolution. Measured alone on ResNet-14's shapes (pieces of 4
 * samples, one thread): see DESIGN.md, "Inference convolutions".
 *
 * Each 2x2 output tile comes from a 4x4 input patch d: V = B^T d B, then for
 * each of the 16 positions M = V U summed over input channels (a small GEMM,
 * U = G g G^T the transformed weights), then y = A^T M A + bias (+ other),
 * ReLU. A row of tiles is transformed, multiplied and transformed back at a
 * time, so that V and M stay in cache. Each sample's result depends on that
 * sample alone, in an order fixed by the shapes. */
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LOOM_WINO_X86 1
#endif

static size_t up8(size_t n) { return (n + 7) / 8 * 8; }

size_t loom_k_conv3x3_wino_scratch(int c, int k, int w) {
    size_t t = (size_t)w / 2;
    /* U, V, M, the row-transformed columns, a row of zeros, the weights by tap (each a multiple of 8 floats: 32-byte aligned
     * when the scratch is) */
    return up8((size_t)16 * c * k) + up8(16 * t * c) + up8(16 * t * k) + up8((size_t)(w + 2) * 32) +
           up8((size_t)w * 8) + up8((size_t)9 * k);
}

#ifdef LOOM_WINO_X86

#define TGT __attribute__((target("avx2,fma")))

/* U [16][c][k] = G g G^T for every (output o, input i), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1];
 * k in the vector lanes; tmp: 9 * k floats. */
TGT static void weights(const float *restrict W, int c, int k, float *restrict U, float *restrict tmp) {
    const __m256 h = _mm256_set1_ps(0.5f);
    for (int i = 0; i < c; i++) {
        for (int o = 0; o < k; o++)
            for (int j = 0; j < 9; j++) tmp[(size_t)j * k + o] = W[((size_t)o * c + i) * 9 + j];
        for (int o = 0; o < k; o += 8) {
            __m256 g[9], t[4][3];
            for (int j = 0; j < 9; j++) g[j] = _mm256_loadu_ps(tmp + (size_t)j * k + o);
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = _mm256_mul_ps(h, _mm256_add_ps(_mm256_add_ps(g[j], g[3 + j]), g[6 + j]));
                t[2][j] = _mm256_mul_ps(h, _mm256_add_ps(_mm256_sub_ps(g[j], g[3 + j]), g[6 + j]));
                t[3][j] = g[6 + j];
            }
            for (int r = 0; r < 4; r++) {
                __m256 u[4] = {t[r][0], _mm256_mul_ps(h, _mm256_add_ps(_mm256_add_ps(t[r][0], t[r][1]), t[r][2])),
                               _mm256_mul_ps(h, _mm256_add_ps(_mm256_sub_ps(t[r][0], t[r][1]), t[r][2])), t[r][2]};
                for (int q = 0; q < 4; q++) _mm256_storeu_ps(U + ((size_t)(r * 4 + q) * c + i) * k + o, u[q]);
            }
        }
    }
}

/* M [16][t][k] = V [16][t][c] x U [16][c][k]: blocks of up to 6 tiles x 16 outputs in 12 accumulators */
#define STEP(q)                                                                                                    \
    x = _mm256_broadcast_ss(v + (q) * c + i);                                                                      \
    a##q = _mm256_fmadd_ps(x, u0, a##q);                                                                           \
    b##q = _mm256_fmadd_ps(x, u1, b##q)
#define PUT(q) _mm256_storeu_ps(m + (q) * k, a##q), _mm256_storeu_ps(m + (q) * k + 8, b##q)
#define BLOCK(STEPS, PUTS)                                                                                         \
    {                                                                                                              \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;                              \
        __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;                                               \
        for (int i = 0; i < c; i++) {                                                                              \
            __m256 u0 = _mm256_loadu_ps(u + (size_t)i * k), u1 = _mm256_loadu_ps(u + (size_t)i * k + 8), x;         \
            STEPS                                                                                                  \
        }                                                                                                          \
        PUTS;                                                                                                      \
        (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)b1, (void)b2, (void)b3, (void)b4, (void)b5;        \
    }

TGT static void multiply(const float *restrict V, const float *restrict U, float *restrict M, int t, int c, int k) {
    for (int p = 0; p < 16; p++) {
        const float *Vp = V + (size_t)p * t * c, *Up = U + (size_t)p * c * k;
        float *Mp = M + (size_t)p * t * k;
        for (int kb = 0; kb < k; kb += 16)
            for (int t0 = 0; t0 < t; t0 += 6) {
                const float *v = Vp + (size_t)t0 * c, *u = Up + kb;
                float *m = Mp + (size_t)t0 * k + kb;
                switch (t - t0 < 6 ? t - t0 : 6) {
                case 6: BLOCK(STEP(0); STEP(1); STEP(2); STEP(3); STEP(4); STEP(5);,
                              PUT(0); PUT(1); PUT(2); PUT(3); PUT(4); PUT(5)) break;
                case 5: BLOCK(STEP(0); STEP(1); STEP(2); STEP(3); STEP(4);, PUT(0); PUT(1); PUT(2); PUT(3); PUT(4))
                    break;
                case 4: BLOCK(STEP(0); STEP(1); STEP(2); STEP(3);, PUT(0); PUT(1); PUT(2); PUT(3)) break;
                case 3: BLOCK(STEP(0); STEP(1); STEP(2);, PUT(0); PUT(1); PUT(2)) break;
                case 2: BLOCK(STEP(0); STEP(1);, PUT(0); PUT(1)) break;
                default: BLOCK(STEP(0);, PUT(0)) break;
                }
            }
    }
}
#undef STEP
#undef PUT
#undef BLOCK

TGT static void wino(const float *x, const float *U, const float *bias, const float *add, int relu, float *y, int n,
                     int c, int k, int h, int w, float *V, float *M, float *colf, const float *zero) {
    int t = w / 2;
    size_t plane = (size_t)h * w * 8, vs = (size_t)t * c, ms = (size_t)t * k;
    const __m256 z = _mm256_setzero_ps();
    for (int s = 0; s < n; s++)
        for (int ty = 0; ty < h / 2; ty++) {
            /* V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: the rows of each column once (the
             * columns of neighbouring tiles overlap), then the columns of each tile */
            for (int cb = 0; cb < c / 8; cb++) {
                const float *xp = x + ((size_t)s * (c / 8) + cb) * plane, *r[4];
                for (int i = 0; i < 4; i++) {
                    int yy = 2 * ty - 1 + i;
                    r[i] = yy < 0 || yy >= h ? zero : xp + (size_t)yy * w * 8;
                }
                for (int q = 0; q < 4; q++) _mm256_storeu_ps(colf + 8 * q, z), _mm256_storeu_ps(colf + 32 * (w + 1) + 8 * q, z);
                for (int xx = 0; xx < w; xx++) {
                    __m256 d0 = _mm256_loadu_ps(r[0] + 8 * xx), d1 = _mm256_loadu_ps(r[1] + 8 * xx);
                    __m256 d2 = _mm256_loadu_ps(r[2] + 8 * xx), d3 = _mm256_loadu_ps(r[3] + 8 * xx);
                    float *o = colf + 32 * (xx + 1);
                    _mm256_storeu_ps(o, _mm256_sub_ps(d0, d2)), _mm256_storeu_ps(o + 8, _mm256_add_ps(d1, d2));
                    _mm256_storeu_ps(o + 16, _mm256_sub_ps(d2, d1)), _mm256_storeu_ps(o + 24, _mm256_sub_ps(d1, d3));
                }
                for (int tx = 0; tx < t; tx++) {
                    const float *q = colf + 32 * 2 * tx;
                    for (int i = 0; i < 4; i++) {
                        __m256 c0 = _mm256_loadu_ps(q + 8 * i), c1 = _mm256_loadu_ps(q + 32 + 8 * i);
                        __m256 c2 = _mm256_loadu_ps(q + 64 + 8 * i), c3 = _mm256_loadu_ps(q + 96 + 8 * i);
                        float *o = V + (size_t)(i * 4) * vs + (size_t)tx * c + cb * 8;
                        _mm256_storeu_ps(o, _mm256_sub_ps(c0, c2));
                        _mm256_storeu_ps(o + vs, _mm256_add_ps(c1, c2));
                        _mm256_storeu_ps(o + 2 * vs, _mm256_sub_ps(c2, c1));
                        _mm256_storeu_ps(o + 3 * vs, _mm256_sub_ps(c1, c3));
                    }
                }
            }
            multiply(V, U, M, t, c, k);
            /* y = A^T M A + bias (+ add), A^T = [1 1 1 0; 0 1 -1 -1] */
            for (int kb = 0; kb < k / 8; kb++) {
                size_t off = ((size_t)s * (k / 8) + kb) * plane;
                float *yp = y + off;
                const float *ap = add ? add + off : NULL;
                __m256 bv = bias ? _mm256_loadu_ps(bias + kb * 8) : z;
                for (int tx = 0; tx < t; tx++) {
                    __m256 m[16], q[2][4];
                    for (int p = 0; p < 16; p++) m[p] = _mm256_loadu_ps(M + (size_t)p * ms + (size_t)tx * k + kb * 8);
                    for (int j = 0; j < 4; j++) {
                        q[0][j] = _mm256_add_ps(_mm256_add_ps(m[j], m[4 + j]), m[8 + j]);
                        q[1][j] = _mm256_sub_ps(_mm256_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
                    }
                    for (int i = 0; i < 2; i++) {
                        size_t at = ((size_t)(2 * ty + i) * w + 2 * tx) * 8;
                        __m256 o0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q[i][0], q[i][1]), q[i][2]), bv);
                        __m256 o1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q[i][1], q[i][2]), q[i][3]), bv);
                        if (ap) o0 = _mm256_add_ps(o0, _mm256_loadu_ps(ap + at)), o1 = _mm256_add_ps(o1, _mm256_loadu_ps(ap + at + 8));
                        if (relu) o0 = _mm256_max_ps(o0, z), o1 = _mm256_max_ps(o1, z);
                        _mm256_storeu_ps(yp + at, o0), _mm256_storeu_ps(yp + at + 8, o1);
                    }
                }
            }
        }
}

#endif

int loom_k_conv3x3_wino_blk8(const float *x, const float *W, const float *bias, const float *add, int relu, float *y,
                             int n, int c, int k, int h, int w, float *scratch) {
    if (!loom_k_avx2_fma() || c % 8 || k % 16 || h % 2 || w % 2 || h < 2 || w < 2 || n < 0) return 0;
#ifdef LOOM_WINO_X86
    size_t t = (size_t)w / 2;
    float *U = scratch, *V = U + up8((size_t)16 * c * k), *M = V + up8(16 * t * c), *colf = M + up8(16 * t * k);
    float *zero = colf + up8((size_t)(w + 2) * 32);
    float *tmp = zero + up8((size_t)w * 8);
    memset(zero, 0, (size_t)w * 8 * sizeof *zero);
    weights(W, c, k, U, tmp);
    wino(x, U, bias, add, relu, y, n, c, k, h, w, V, M, colf, zero);
    return 1;
#else
    (void)x, (void)W, (void)bias, (void)add, (void)relu, (void)y, (void)scratch;
    return 0;
#endif
}
