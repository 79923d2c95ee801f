/* Translation with fill — what a random crop of a padded image amounts to,
 * without ever building the padded image. */
#include "internal.h"
#include "loom/augment.h"
#include "loom/error.h"

#include <string.h>

void aug_translate_view(const aug_view *v, uint8_t *dst, int dx, int dy, uint8_t fill) {
    int w = v->w, h = v->h, c = v->c;
    /* dst columns [xa, xb) come from the source; the rest is fill */
    int xa = dx > 0 ? dx : 0, xb = dx < 0 ? w + dx : w;
    if (xa > w) xa = w;
    if (xb < xa) xb = xa;
    for (int y = 0; y < h; y++) {
        uint8_t *o = dst + (size_t)y * w * c;
        int sy = y - dy;
        if (sy < 0 || sy >= h) {
            memset(o, fill, (size_t)w * c);
            continue;
        }
        memset(o, fill, (size_t)xa * c);
        memset(o + (size_t)xb * c, fill, (size_t)(w - xb) * c);
        if (xb == xa) continue;
        const uint8_t *s = v->p + sy * v->ys + (ptrdiff_t)(xa - dx) * v->xs;
        if (v->xs == c) {
            memcpy(o + (size_t)xa * c, s, (size_t)(xb - xa) * c);
        } else {
            for (int x = xa; x < xb; x++, s += v->xs) memcpy(o + (size_t)x * c, s, c);
        }
    }
}

int loom_augment_translate(const uint8_t *src, int w, int h, int c, uint8_t *dst, int dx, int dy,
                           uint8_t fill) {
    if (aug_check_size("loom_augment_translate", w, h, c)) return LOOM_ERR;
    aug_view v = aug_view_of(src, w, h, c);
    aug_translate_view(&v, dst, dx, dy, fill);
    return LOOM_OK;
}
