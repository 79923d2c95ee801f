/* conv2d as im2col + one GEMM per image and group. Per-image GEMMs keep the
 * column buffer small enough to stay in cache between im2col and the GEMM,
 * and measured faster than one batched GEMM on the shapes loom trains
 * (DESIGN.md). A 1x1, stride-1, unpadded convolution is already a GEMM on the
 * image itself, so it skips im2col entirely. */
#include "kernels/kernels.h"

#include <string.h>

int loom_k_conv2d_out(loom_conv_shape *s) {
    if (s->c <= 0 || s->h <= 0 || s->w <= 0 || s->oc <= 0 || s->kh <= 0 ||
        s->kw <= 0 || s->sh <= 0 || s->sw <= 0 || s->ph < 0 || s->pw < 0 ||
        s->dh <= 0 || s->dw <= 0 || s->groups <= 0 || s->c % s->groups ||
        s->oc % s->groups)
        return -1;
    /* Computed before dividing: C division truncates toward zero, so a
     * negative span would otherwise round up to a one-pixel output. */
    int span_h = s->h + 2 * s->ph - s->dh * (s->kh - 1) - 1;
    int span_w = s->w + 2 * s->pw - s->dw * (s->kw - 1) - 1;
    if (span_h < 0 || span_w < 0) return -1;
    s->oh = span_h / s->sh + 1;
    s->ow = span_w / s->sw + 1;
    return 0;
}

static int is_pointwise(const loom_conv_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
           s->pw == 0;
}

static size_t col_floats(const loom_conv_shape *s) {
    if (is_pointwise(s)) return 0;
    return (size_t)(s->c / s->groups) * s->kh * s->kw * (size_t)s->oh * s->ow;
}

/* The column buffer, then dW transposed ([group][K][oc/groups]) summed over
 * the batch: OpenBLAS runs col * dy^T (tall result) up to 1.5x faster than
 * dy * col^T (wide result) on VGG-like shapes, and never slower on the
 * others measured, so backward takes that route and transposes once. */
size_t loom_k_conv2d_scratch(const loom_conv_shape *s) {
    return col_floats(s) + (size_t)(s->c / s->groups) * s->kh * s->kw * s->oc;
}

/* Output positions o in [*lo, *hi) whose input index o*stride + off lies in
 * [0, n_in): hoisting this out of the copy loops leaves them branch-free. */
static void valid_range(int off, int stride, int n_in, int n_out, int *lo, int *hi) {
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = n_in - off <= 0 ? 0 : (n_in - off + stride - 1) / stride;
    if (b > n_out) b = n_out;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* Rows are short (10-64 floats on the shapes loom trains) and there are
 * c*kh*kw*oh of them, so a memcpy call per row costs more than the copy;
 * fixed 8-float blocks compile to inline vector moves. */
static inline void copy_row(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) memcpy(dst + i, src + i, 8 * sizeof(float));
    for (; i < n; i++) dst[i] = src[i];
}

void loom_k_im2col(const loom_conv_shape *s, int cin, const float *x, float *col) {
    const int oh = s->oh, ow = s->ow, sw = s->sw;
    const size_t plane = (size_t)s->h * s->w;
    for (int c = 0; c < cin; c++) {
        const float *xc = x + c * plane;
        for (int ki = 0; ki < s->kh; ki++) {
            int offy = ki * s->dh - s->ph;
            int ylo, yhi;
            valid_range(offy, s->sh, s->h, oh, &ylo, &yhi);
            for (int kj = 0; kj < s->kw; kj++, col += (size_t)oh * ow) {
                int offx = kj * s->dw - s->pw;
                int xlo, xhi;
                valid_range(offx, sw, s->w, ow, &xlo, &xhi);
                memset(col, 0, sizeof(float) * (size_t)ylo * ow);
                for (int oy = ylo; oy < yhi; oy++) {
                    float *dst = col + (size_t)oy * ow;
                    const float *src = xc + (size_t)(oy * s->sh + offy) * s->w;
                    for (int ox = 0; ox < xlo; ox++) dst[ox] = 0.0f;
                    if (sw == 1)
                        copy_row(dst + xlo, src + xlo + offx, xhi - xlo);
                    else
                        for (int ox = xlo; ox < xhi; ox++) dst[ox] = src[ox * sw + offx];
                    for (int ox = xhi; ox < ow; ox++) dst[ox] = 0.0f;
                }
                memset(col + (size_t)yhi * ow, 0, sizeof(float) * (size_t)(oh - yhi) * ow);
            }
        }
    }
}

/* The adjoint of im2col: each column entry flows back to the pixel it was
 * copied from; padding entries have no pixel and are dropped. */
void loom_k_col2im(const loom_conv_shape *s, int cin, const float *col, float *x) {
    const int oh = s->oh, ow = s->ow, sw = s->sw;
    const size_t plane = (size_t)s->h * s->w;
    for (int c = 0; c < cin; c++) {
        float *xc = x + c * plane;
        for (int ki = 0; ki < s->kh; ki++) {
            int offy = ki * s->dh - s->ph;
            int ylo, yhi;
            valid_range(offy, s->sh, s->h, oh, &ylo, &yhi);
            for (int kj = 0; kj < s->kw; kj++, col += (size_t)oh * ow) {
                int offx = kj * s->dw - s->pw;
                int xlo, xhi;
                valid_range(offx, sw, s->w, ow, &xlo, &xhi);
                for (int oy = ylo; oy < yhi; oy++) {
                    const float *src = col + (size_t)oy * ow;
                    float *dst = xc + (size_t)(oy * s->sh + offy) * s->w;
                    for (int ox = xlo; ox < xhi; ox++) dst[ox * sw + offx] += src[ox];
                }
            }
        }
    }
}

void loom_k_conv2d_fwd(const loom_conv_shape *s, const float *x, const float *W,
                       const float *b, float *y, int n, float *scratch) {
    const int G = s->groups, cin = s->c / G, ocg = s->oc / G;
    const int K = cin * s->kh * s->kw, P = s->oh * s->ow;
    const size_t xin = (size_t)cin * s->h * s->w;
    const int pointwise = is_pointwise(s);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * s->c * s->h * s->w;
        float *yi = y + (size_t)i * s->oc * P;
        for (int g = 0; g < G; g++) {
            const float *col = xi + g * xin;
            if (!pointwise) {
                loom_k_im2col(s, cin, col, scratch);
                col = scratch;
            }
            loom_k_gemm(0, 0, ocg, P, K, 1.0f, W + (size_t)g * ocg * K, K, col, P,
                        0.0f, yi + (size_t)g * ocg * P, P);
        }
        if (!b) continue;
        for (int o = 0; o < s->oc; o++) {
            float *yo = yi + (size_t)o * P;
            for (int p = 0; p < P; p++) yo[p] += b[o];
        }
    }
}

/* dW[g*ocg + o][k] += dWt[g][k][o] */
static void add_transposed(const float *dWt, float *dW, int G, int K, int ocg) {
    for (int g = 0; g < G; g++) {
        const float *t = dWt + (size_t)g * K * ocg;
        float *d = dW + (size_t)g * ocg * K;
        for (int o = 0; o < ocg; o++)
            for (int k = 0; k < K; k++) d[(size_t)o * K + k] += t[(size_t)k * ocg + o];
    }
}

void loom_k_conv2d_bwd(const loom_conv_shape *s, const float *x, const float *W,
                       const float *dy, float *dx, float *dW, float *db, int n,
                       float *scratch) {
    const int G = s->groups, cin = s->c / G, ocg = s->oc / G;
    const int K = cin * s->kh * s->kw, P = s->oh * s->ow;
    const size_t xin = (size_t)cin * s->h * s->w;
    const int pointwise = is_pointwise(s);
    float *dWt = scratch + col_floats(s);
    for (int i = 0; i < n; i++) {
        const size_t xoff = (size_t)i * s->c * s->h * s->w;
        const float *dyi = dy + (size_t)i * s->oc * P;
        for (int g = 0; g < G; g++) {
            const float *Wg = W + (size_t)g * ocg * K;
            const float *dyg = dyi + (size_t)g * ocg * P;
            if (dW) {
                const float *col = x + xoff + g * xin;
                if (!pointwise) {
                    loom_k_im2col(s, cin, col, scratch);
                    col = scratch;
                }
                loom_k_gemm(0, 1, K, ocg, P, 1.0f, col, P, dyg, P, i ? 1.0f : 0.0f,
                            dWt + (size_t)g * K * ocg, ocg);
            }
            if (dx) {
                float *dxg = dx + xoff + g * xin;
                if (pointwise) {
                    loom_k_gemm(1, 0, K, P, ocg, 1.0f, Wg, K, dyg, P, 1.0f, dxg, P);
                } else {
                    /* The column buffer is free again once dW has used it. */
                    loom_k_gemm(1, 0, K, P, ocg, 1.0f, Wg, K, dyg, P, 0.0f, scratch, P);
                    loom_k_col2im(s, cin, scratch, dxg);
                }
            }
        }
        if (!db) continue;
        for (int o = 0; o < s->oc; o++) {
            const float *g = dyi + (size_t)o * P;
            float acc = 0.0f;
            for (int p = 0; p < P; p++) acc += g[p];
            db[o] += acc;
        }
    }
    if (dW && n > 0) add_transposed(dWt, dW, G, K, ocg);
}
