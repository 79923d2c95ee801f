/* A chain of transforms sampled per image. Item i draws from counters
 * 8*i + 0 (apply or not), 8*i + 1 and 8*i + 2 (its parameters): fixed by
 * position, so an image depends only on (chain, source, key). Geometric items
 * run on uint8 through views (flips are free, rotate and crop write one of two
 * ping-pong buffers); colour items are collected and fused into the final
 * conversion to float. */
#include "chain.h"
#include "kernels/kernels.h"
#include "internal.h"
#include "loom/error.h"
#include "kernels/rng.h"

#include <math.h>
#include <stdlib.h>

loom_augment *loom_augment_new(void) { return calloc(1, sizeof(loom_augment)); }

void loom_augment_free(loom_augment *a) { free(a); }

int loom_augment_count(const loom_augment *a) { return a ? a->n : 0; }

static int add(loom_augment *a, const char *what, aug_item it) {
    if (!a) return loom_fail(LOOM_EINVAL, "%s: chain is NULL", what);
    if (!(it.p >= 0.0f && it.p <= 1.0f))
        return loom_fail(LOOM_EINVAL, "%s: probability %g is outside 0..1", what, it.p);
    if (a->n == AUG_MAX_ITEMS)
        return loom_fail(LOOM_EINVAL, "%s: a chain holds at most %d items", what, AUG_MAX_ITEMS);
    a->items[a->n++] = it;
    return LOOM_OK;
}

int loom_augment_add_flip_h(loom_augment *a, float p) {
    return add(a, "flip-h", (aug_item){AUG_FLIP_H, p, 0, 0, 0});
}

int loom_augment_add_flip_v(loom_augment *a, float p) {
    return add(a, "flip-v", (aug_item){AUG_FLIP_V, p, 0, 0, 0});
}

int loom_augment_add_rotate(loom_augment *a, float max_degrees, uint8_t fill, float p) {
    if (!(max_degrees >= 0.0f && max_degrees <= 360.0f))
        return loom_fail(LOOM_EINVAL, "rotate: %g degrees is outside 0..360", max_degrees);
    return add(a, "rotate", (aug_item){AUG_ROTATE, p, max_degrees, 0, fill});
}

int loom_augment_add_crop(loom_augment *a, int pad, uint8_t fill, float p) {
    if (pad < 0 || pad > 65535) return loom_fail(LOOM_EINVAL, "crop: padding %d is outside 0..65535", pad);
    return add(a, "crop", (aug_item){AUG_CROP, p, 0, pad, fill});
}

int loom_augment_add_brightness(loom_augment *a, float b, float p) {
    if (!(b >= 0.0f && b <= 1e6f)) return loom_fail(LOOM_EINVAL, "brightness: %g must be >= 0", b);
    return add(a, "brightness", (aug_item){AUG_BRIGHTNESS, p, b, 0, 0});
}

int loom_augment_add_contrast(loom_augment *a, float c, float p) {
    if (!(c >= 0.0f && c <= 1e6f)) return loom_fail(LOOM_EINVAL, "contrast: %g must be >= 0", c);
    return add(a, "contrast", (aug_item){AUG_CONTRAST, p, c, 0, 0});
}

int loom_augment_set_normalize(loom_augment *a, int n, const float *mean, const float *std) {
    if (!a) return loom_fail(LOOM_EINVAL, "loom_augment_set_normalize: chain is NULL");
    if (n < 1 || n > 4) return loom_fail(LOOM_EINVAL, "normalize: %d values (want 1 to 4)", n);
    for (int i = 0; i < n; i++) {
        if (!isfinite(mean[i])) return loom_fail(LOOM_EINVAL, "normalize: mean %g is not finite", mean[i]);
        if (!(std[i] > 0.0f && isfinite(std[i])))
            return loom_fail(LOOM_EINVAL, "normalize: std %g must be > 0", std[i]);
    }
    a->norm_n = n;
    for (int i = 0; i < n; i++) a->mean[i] = mean[i], a->std[i] = std[i];
    return LOOM_OK;
}

/* Buffers of dw x dh x c the chain may write: the resize output and one per
 * materialising item, two at most since they alternate. */
static int buffers(const loom_augment *a, int resize) {
    int n = resize;
    for (int i = 0; a && i < a->n; i++) n += a->items[i].kind == AUG_ROTATE || a->items[i].kind == AUG_CROP;
    return n > 2 ? 2 : n;
}

size_t loom_augment_scratch(const loom_augment *a, int sw, int sh, int c, int dw, int dh) {
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1 || c < 1 || c > 4) return 0;
    int resize = sw != dw || sh != dh;
    size_t n = 16 + buffers(a, resize) * aug_round16((size_t)dw * dh * c);
    if (resize) n += loom_k_resize_scratch(sw, sh, c, dw, dh);
    return n;
}

/* torchvision's ColorJitter factor: uniform in [max(0, 1 - s), 1 + s] */
static float spread(float u, float s) {
    float lo = s < 1.0f ? 1.0f - s : 0.0f;
    return lo + u * (1.0f + s - lo);
}

int loom_augment_apply(const loom_augment *a, const uint8_t *src, int sw, int sh, int c, float *dst,
                       int dw, int dh, uint64_t key, uint8_t *scratch) {
    if (aug_check_size("loom_augment_apply (source)", sw, sh, c) ||
        aug_check_size("loom_augment_apply (destination)", dw, dh, c))
        return LOOM_ERR;
    if (a && a->norm_n > 1 && a->norm_n != c)
        return loom_fail(LOOM_EINVAL, "loom_augment_apply: normalize has %d values but the image has %d channels",
                              a->norm_n, c);
    int resize = sw != dw || sh != dh;
    if (!scratch && buffers(a, resize))
        return loom_fail(LOOM_EINVAL, "loom_augment_apply: scratch is NULL (need %zu bytes)",
                              loom_augment_scratch(a, sw, sh, c, dw, dh));
    uint8_t *base = scratch ? aug_align(scratch) : NULL;
    size_t plane = aug_round16((size_t)dw * dh * c);
    uint8_t *buf[2] = {base, base ? base + plane : NULL};
    int cur = -1; /* which buffer the view reads; -1: src */

    aug_view v = aug_view_of(src, sw, sh, c);
    if (resize) {
        loom_k_resize(src, sw, sh, c, buf[0], dw, dh, base + buffers(a, resize) * plane);
        v = aug_view_of(buf[0], dw, dh, c);
        cur = 0;
    }
    aug_color_op ops[AUG_MAX_ITEMS];
    int nops = 0;
    for (int i = 0; a && i < a->n; i++) {
        const aug_item *it = &a->items[i];
        uint64_t ctr = 8 * (uint64_t)i;
        if (!(loom_rng_uniform(key, ctr) < it->p)) continue;
        switch (it->kind) {
        case AUG_FLIP_H: aug_view_flip_h(&v); break;
        case AUG_FLIP_V: aug_view_flip_v(&v); break;
        case AUG_ROTATE: {
            double deg = it->v * (2.0 * loom_rng_uniform(key, ctr + 1) - 1.0);
            if (deg == 0.0) break;
            uint8_t *out = buf[cur == 0];
            aug_rotate_view(&v, out, deg, it->fill);
            v = aug_view_of(out, dw, dh, c);
            cur = cur == 0;
            break;
        }
        case AUG_CROP: {
            /* torchvision's RandomCrop(padding=P): top-left offset uniform in 0..2P */
            uint32_t span = 2 * (uint32_t)it->pad + 1;
            int dx = it->pad - (int)loom_rng_below(key, ctr + 1, span);
            int dy = it->pad - (int)loom_rng_below(key, ctr + 2, span);
            if (dx == 0 && dy == 0) break;
            uint8_t *out = buf[cur == 0];
            aug_translate_view(&v, out, dx, dy, it->fill);
            v = aug_view_of(out, dw, dh, c);
            cur = cur == 0;
            break;
        }
        case AUG_BRIGHTNESS:
            ops[nops++] = (aug_color_op){AUG_OP_BRIGHTNESS, spread(loom_rng_uniform(key, ctr + 1), it->v)};
            break;
        case AUG_CONTRAST:
            ops[nops++] = (aug_color_op){AUG_OP_CONTRAST, spread(loom_rng_uniform(key, ctr + 1), it->v)};
            break;
        }
    }
    float mean[4], std[4];
    int norm = a && a->norm_n;
    for (int ch = 0; norm && ch < c; ch++) {
        int j = a->norm_n == 1 ? 0 : ch;
        mean[ch] = a->mean[j];
        std[ch] = a->std[j];
    }
    aug_convert_view(&v, dst, ops, nops, norm ? mean : NULL, norm ? std : NULL);
    return LOOM_OK;
}
