/* Views over HWC images and the size checks every public entry point shares. */
#include "internal.h"
#include "loom/error.h"

aug_view aug_view_of(const uint8_t *img, int w, int h, int c) {
    aug_view v = {img, c, (ptrdiff_t)w * c, img, w, h, c};
    return v;
}

int aug_check_size(const char *fn, int w, int h, int c) {
    /* 65535 keeps every byte count, fixed-point coordinate and coefficient
     * table comfortably inside the integer types used below. */
    if (w < 1 || h < 1 || w > 65535 || h > 65535 || c < 1 || c > 4)
        return loom_fail(LOOM_EINVAL, "%s: bad image size %dx%dx%d (width and height 1..65535, "
                              "channels 1..4)", fn, w, h, c);
    return LOOM_OK;
}
