/* The public resize of the augmentation API: kernels/resize.c's, with the
 * sizes checked (the chain and the data readers call the kernel directly). */
#include "internal.h"
#include "kernels/kernels.h"
#include "loom/augment.h"
#include "loom/error.h"

size_t loom_augment_resize_scratch(int sw, int sh, int c, int dw, int dh) {
    return loom_k_resize_scratch(sw, sh, c, dw, dh);
}

int loom_augment_resize(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh,
                        uint8_t *scratch) {
    if (aug_check_size("loom_augment_resize (source)", sw, sh, c) ||
        aug_check_size("loom_augment_resize (destination)", dw, dh, c))
        return LOOM_ERR;
    loom_k_resize(src, sw, sh, c, dst, dw, dh, scratch);
    return LOOM_OK;
}
