/* The augmentation spec parser (--augment), and a chain it accepts applied to a small image. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = malloc(size + 1);
    if (!spec) return 0;
    memcpy(spec, data, size);
    spec[size] = 0;
    fz_dir();
    loom_augment *a = loom_augment_parse(spec);
    if (a && loom_augment_check(a, 8, 6, 3) == LOOM_OK) {
        uint8_t img[8 * 6 * 3];
        for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 37);
        size_t sc = loom_augment_scratch(a, 8, 6, 3, 5, 7);
        uint8_t *scratch = malloc(sc + 1);
        float x[5 * 7 * 3];
        if (scratch) loom_augment_apply(a, img, 8, 6, 3, x, 5, 7, 42, scratch);
        free(scratch);
    }
    loom_augment_free(a);
    free(spec);
    return 0;
}
