/* The fused uint8 HWC -> float CHW conversion. Every colour operation and the
 * normalization map one channel value to one float, so their composition is a
 * 256-entry table per channel, rebuilt per image (a few hundred flops), and
 * the pass over the pixels is a lookup per value. Contrast needs the mean gray
 * of the image as it stands, which a per-channel histogram gives for any
 * preceding chain of operations without touching the pixels again. */
#include "internal.h"
#include "loom/augment.h"
#include "loom/error.h"

#include <string.h>

/* torchvision's rgb_to_grayscale weights */
static const float gray_w[3] = {0.2989f, 0.587f, 0.114f};

static void histogram(const aug_view *v, int ncol, uint32_t hist[][256]) {
    const uint8_t *p = v->buf;
    size_t n = (size_t)v->w * v->h;
    int c = v->c;
    memset(hist, 0, sizeof(uint32_t) * 256 * ncol);
    if (ncol == 3) {
        for (size_t i = 0; i < n; i++, p += c) {
            hist[0][p[0]]++;
            hist[1][p[1]]++;
            hist[2][p[2]]++;
        }
    } else {
        for (size_t i = 0; i < n; i++, p += c) hist[0][p[0]]++;
    }
}

static void build_lut(const aug_view *v, const aug_color_op *ops, int nops, const float *mean,
                      const float *std, float lut[][256]) {
    int c = v->c, ncol = c >= 3 ? 3 : 1;
    uint32_t hist[3][256];
    int have_hist = 0;
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < 256; i++) lut[ch][i] = (float)i;
    for (int k = 0; k < nops; k++) {
        float f = ops[k].f;
        if (ops[k].kind == AUG_OP_BRIGHTNESS) {
            for (int ch = 0; ch < ncol; ch++)
                for (int i = 0; i < 256; i++) {
                    float x = lut[ch][i] * f;
                    lut[ch][i] = x > 255.0f ? 255.0f : x;
                }
        } else {
            if (!have_hist) histogram(v, ncol, hist), have_hist = 1;
            double m = 0;
            for (int ch = 0; ch < ncol; ch++) {
                double s = 0;
                for (int i = 0; i < 256; i++) s += (double)hist[ch][i] * lut[ch][i];
                m += (ncol == 3 ? gray_w[ch] : 1.0) * s;
            }
            float mf = (float)(m / ((double)v->w * v->h));
            for (int ch = 0; ch < ncol; ch++)
                for (int i = 0; i < 256; i++) {
                    float x = mf + f * (lut[ch][i] - mf);
                    lut[ch][i] = x < 0.0f ? 0.0f : x > 255.0f ? 255.0f : x;
                }
        }
    }
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < 256; i++) {
            float x = lut[ch][i] / 255.0f;
            lut[ch][i] = mean ? (x - mean[ch]) / std[ch] : x;
        }
}

void aug_convert_view(const aug_view *v, float *dst, const aug_color_op *ops, int nops,
                      const float *mean, const float *std) {
    float lut[4][256];
    build_lut(v, ops, nops, mean, std, lut);
    int w = v->w, h = v->h, c = v->c;
    size_t plane = (size_t)w * h;
    ptrdiff_t xs = v->xs;
    for (int y = 0; y < h; y++) {
        const uint8_t *p = v->p + y * v->ys;
        float *o = dst + (size_t)y * w;
        switch (c) {
        case 1:
            for (int x = 0; x < w; x++, p += xs) o[x] = lut[0][p[0]];
            break;
        case 3:
            for (int x = 0; x < w; x++, p += xs) {
                o[x] = lut[0][p[0]];
                o[plane + x] = lut[1][p[1]];
                o[2 * plane + x] = lut[2][p[2]];
            }
            break;
        default:
            for (int x = 0; x < w; x++, p += xs)
                for (int ch = 0; ch < c; ch++) o[ch * plane + x] = lut[ch][p[ch]];
            break;
        }
    }
}

int loom_augment_to_float(const uint8_t *src, int w, int h, int c, float *dst, float bf, float cf,
                          const float *mean, const float *std) {
    if (aug_check_size("loom_augment_to_float", w, h, c)) return LOOM_ERR;
    if (!(bf >= 0) || !(cf >= 0))
        return loom_fail(LOOM_EINVAL, "loom_augment_to_float: factors must be >= 0 (brightness %g, contrast %g)",
                              bf, cf);
    if ((mean == NULL) != (std == NULL))
        return loom_fail(LOOM_EINVAL, "loom_augment_to_float: give both mean and std, or neither");
    for (int ch = 0; std && ch < c; ch++)
        if (!(std[ch] > 0))
            return loom_fail(LOOM_EINVAL, "loom_augment_to_float: std[%d] = %g must be > 0", ch, std[ch]);
    aug_view v = aug_view_of(src, w, h, c);
    aug_color_op ops[2];
    int n = 0;
    if (bf != 1.0f) ops[n++] = (aug_color_op){AUG_OP_BRIGHTNESS, bf};
    if (cf != 1.0f) ops[n++] = (aug_color_op){AUG_OP_CONTRAST, cf};
    aug_convert_view(&v, dst, ops, n, mean, std);
    return LOOM_OK;
}
