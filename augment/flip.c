/* Mirrors. Inside a chain a flip only changes how the next transform reads
 * its input (aug_view_flip_*), so it costs nothing; the public functions
 * materialise it for callers that want the bytes. */
#include "internal.h"
#include "loom/augment.h"
#include "loom/error.h"

#include <string.h>

void aug_view_flip_h(aug_view *v) {
    v->p += (ptrdiff_t)(v->w - 1) * v->xs;
    v->xs = -v->xs;
}

void aug_view_flip_v(aug_view *v) {
    v->p += (ptrdiff_t)(v->h - 1) * v->ys;
    v->ys = -v->ys;
}

static void swap_bytes(uint8_t *a, uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

int loom_augment_flip_h(const uint8_t *src, int w, int h, int c, uint8_t *dst) {
    if (aug_check_size("loom_augment_flip_h", w, h, c)) return LOOM_ERR;
    size_t row = (size_t)w * c;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + y * row;
        uint8_t *d = dst + y * row;
        if (s == d) {
            for (int x = 0; x < w / 2; x++) swap_bytes(d + (size_t)x * c, d + (size_t)(w - 1 - x) * c, c);
        } else {
            for (int x = 0; x < w; x++) memcpy(d + (size_t)x * c, s + (size_t)(w - 1 - x) * c, c);
        }
    }
    return LOOM_OK;
}

int loom_augment_flip_v(const uint8_t *src, int w, int h, int c, uint8_t *dst) {
    if (aug_check_size("loom_augment_flip_v", w, h, c)) return LOOM_ERR;
    size_t row = (size_t)w * c;
    for (int y = 0; y < h / 2; y++) {
        const uint8_t *s0 = src + y * row, *s1 = src + (size_t)(h - 1 - y) * row;
        uint8_t *d0 = dst + y * row, *d1 = dst + (size_t)(h - 1 - y) * row;
        if (src == dst) {
            swap_bytes(d0, d1, row);
        } else {
            memcpy(d0, s1, row);
            memcpy(d1, s0, row);
        }
    }
    if ((h & 1) && src != dst) memcpy(dst + (size_t)(h / 2) * row, src + (size_t)(h / 2) * row, row);
    return LOOM_OK;
}
