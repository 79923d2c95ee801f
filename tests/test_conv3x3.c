/* loom's own 3x3 kernels on the 8-channel-blocked layout (kernels/conv3x3_wgrad.c,
 * kernels/conv3x3_wino.c) against a direct-loop reference in double: the
 * weight and bias gradient (accumulating into what is there), and the Winograd
 * inference convolution with and without bias, added tensor and ReLU; edge
 * sizes (2 columns, 1 row, odd heights); the shapes they must refuse. Scratch
 * is exactly the advertised size, so AddressSanitizer catches an overrun.
 * Skipped (exit 77) on a CPU without AVX2 + FMA. */
#include "check.h"
#include "kernels/kernels.h"

/* element (sample s, channel ch, row y, column x) of an nChw8c tensor with c channels */
static size_t at(int c, int h, int w, int s, int ch, int y, int x) {
    return ((((size_t)s * (c / 8) + ch / 8) * h + y) * w + x) * 8 + ch % 8;
}

static float *falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void wgrad_case(int n, int c, int k, int h, int w, int bias) {
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * k * h * w, nw = (size_t)k * c * 9;
    float *x = falloc(nx), *dy = falloc(ny), *dw = falloc(nw), *db = falloc((size_t)k);
    float *acc = falloc(loom_k_conv3x3_wgrad_scratch(c, k));
    t_fill(x, nx, 1 + c + h, -1, 1);
    t_fill(dy, ny, 2 + k + w, -1, 1);
    t_fill(dw, nw, 3, -0.5f, 0.5f); /* the kernel adds to what is there */
    t_fill(db, (size_t)k, 4, -0.5f, 0.5f);
    float *dw0 = falloc(nw), *db0 = falloc((size_t)k);
    memcpy(dw0, dw, nw * sizeof *dw);
    memcpy(db0, db, (size_t)k * sizeof *db);
    int ran = loom_k_conv3x3_wgrad_blk8(x, dy, n, c, k, h, w, acc, dw, bias ? db : NULL);
    CHECK(ran == 1, "wgrad n%d %d->%d %dx%d: refused", n, c, k, h, w);
    double worst = 0;
    for (int o = 0; o < k && ran; o++) {
        for (int i = 0; i < c; i++)
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    double sum = 0, mag = 1e-3;
                    for (int s = 0; s < n; s++)
                        for (int y = 0; y < h; y++)
                            for (int xx = 0; xx < w; xx++) {
                                int yi = y + kh - 1, xi = xx + kw - 1;
                                if (yi < 0 || yi >= h || xi < 0 || xi >= w) continue;
                                double p = (double)dy[at(k, h, w, s, o, y, xx)] * x[at(c, h, w, s, i, yi, xi)];
                                sum += p, mag += fabs(p);
                            }
                    size_t q = (((size_t)o * c + i) * 3 + kh) * 3 + kw;
                    worst = fmax(worst, fabs(dw[q] - (dw0[q] + sum)) / (mag + fabs(dw0[q])));
                }
        double sb = 0, mb = 1e-3;
        for (int s = 0; s < n; s++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) sb += dy[at(k, h, w, s, o, y, xx)], mb += fabs(dy[at(k, h, w, s, o, y, xx)]);
        double want = bias ? db0[o] + sb : db0[o];
        worst = fmax(worst, fabs(db[o] - want) / (mb + fabs(db0[o])));
    }
    CHECK(worst < 1e-5, "wgrad n%d %d->%d %dx%d bias %d: off by %g (relative to the sum of |terms|)", n, c, k, h, w,
          bias, worst);
    printf("wgrad   n%-2d %3d -> %-3d %3dx%-3d bias %d: worst %.1e\n", n, c, k, h, w, bias, worst);
    free(x), free(dy), free(dw), free(db), free(acc), free(dw0), free(db0);
}

static void wino_case(int n, int c, int k, int h, int w, int bias, int add, int relu) {
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * k * h * w, nw = (size_t)k * c * 9;
    float *x = falloc(nx), *W = falloc(nw), *b = falloc((size_t)k), *other = falloc(ny), *y = falloc(ny);
    float *scratch = falloc(loom_k_conv3x3_wino_scratch(c, k, w));
    t_fill(x, nx, 5 + c, -1, 1);
    t_fill(W, nw, 6 + k, -0.3f, 0.3f);
    t_fill(b, (size_t)k, 7, -0.5f, 0.5f);
    t_fill(other, ny, 8, -1, 1);
    t_fill(y, ny, 9, 100, 200); /* overwritten */
    int ran = loom_k_conv3x3_wino_blk8(x, W, bias ? b : NULL, add ? other : NULL, relu, y, n, c, k, h, w, scratch);
    CHECK(ran == 1, "wino n%d %d->%d %dx%d: refused", n, c, k, h, w);
    double worst = 0;
    int positive = 0, zero = 0;
    for (int s = 0; s < n && ran; s++)
        for (int o = 0; o < k; o++)
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++) {
                    double sum = bias ? b[o] : 0, mag = 1e-3 + fabs(sum);
                    for (int i = 0; i < c; i++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int yi = yy + kh - 1, xi = xx + kw - 1;
                                if (yi < 0 || yi >= h || xi < 0 || xi >= w) continue;
                                double p = (double)W[(((size_t)o * c + i) * 3 + kh) * 3 + kw] * x[at(c, h, w, s, i, yi, xi)];
                                sum += p, mag += fabs(p);
                            }
                    size_t q = at(k, h, w, s, o, yy, xx);
                    if (add) sum += other[q], mag += fabs(other[q]);
                    if (relu && sum < 0) sum = 0;
                    worst = fmax(worst, fabs(y[q] - sum) / mag);
                    positive += y[q] > 0, zero += y[q] == 0;
                }
    CHECK(worst < 1e-5, "wino n%d %d->%d %dx%d bias %d add %d relu %d: off by %g", n, c, k, h, w, bias, add, relu,
          worst);
    CHECK(!relu || (zero > 0 && positive > 0), "wino relu: %d zero, %d positive outputs", zero, positive);
    printf("wino    n%-2d %3d -> %-3d %3dx%-3d bias %d add %d relu %d: worst %.1e\n", n, c, k, h, w, bias, add, relu,
           worst);
    free(x), free(W), free(b), free(other), free(y), free(scratch);
}

int main(void) {
    if (!loom_k_avx2_fma()) TEST_SKIP("this CPU lacks AVX2 + FMA, which loom's 3x3 kernels need");
    /* n c k h w bias */
    wgrad_case(2, 8, 16, 5, 7, 1);
    wgrad_case(3, 16, 32, 6, 6, 0);
    wgrad_case(1, 24, 16, 1, 2, 1);   /* one row, two columns */
    wgrad_case(2, 8, 16, 2, 3, 1);
    wgrad_case(1, 16, 16, 40, 16, 1); /* two strips of rows (24 + 16) */
    wgrad_case(0, 8, 16, 4, 4, 1);    /* no samples: adds nothing */
    /* n c k h w bias add relu */
    wino_case(2, 8, 16, 6, 8, 1, 0, 0);
    wino_case(1, 16, 16, 2, 2, 1, 1, 1);  /* one tile */
    wino_case(3, 16, 32, 4, 14, 0, 1, 0); /* 7 tiles in a row: a block of 6 and 1 */
    wino_case(1, 24, 48, 10, 6, 1, 0, 1);
    wino_case(2, 32, 16, 8, 26, 1, 1, 1); /* 13 tiles: 6 + 6 + 1 */

    /* what they must refuse, doing nothing */
    float buf[4096] = {0}, out[64] = {0};
    CHECK(loom_k_conv3x3_wgrad_blk8(buf, buf, 1, 4, 16, 2, 2, buf, out, NULL) == 0, "wgrad took c = 4");
    CHECK(loom_k_conv3x3_wgrad_blk8(buf, buf, 1, 8, 8, 2, 2, buf, out, NULL) == 0, "wgrad took k = 8");
    CHECK(loom_k_conv3x3_wgrad_blk8(buf, buf, 1, 8, 16, 2, 1, buf, out, NULL) == 0, "wgrad took w = 1");
    CHECK(loom_k_conv3x3_wino_blk8(buf, buf, NULL, NULL, 0, out, 1, 8, 16, 3, 2, buf) == 0, "wino took h = 3");
    CHECK(loom_k_conv3x3_wino_blk8(buf, buf, NULL, NULL, 0, out, 1, 8, 16, 2, 5, buf) == 0, "wino took w = 5");
    CHECK(loom_k_conv3x3_wino_blk8(buf, buf, NULL, NULL, 0, out, 1, 8, 24, 2, 2, buf) == 0, "wino took k = 24");
    TEST_END();
}
