/* PNG and JPEG decoding into a training sample: decode (grey, colour or the
 * file's own, chosen by the first byte), then resize and convert to float as
 * the loader does. */
#include "fuzz.h"
#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int want[3] = {0, 1, 3};
    loom_image img;
    fz_dir();
    if (loom_image_decode(data + 1, size - 1, "fuzz", want[data[0] % 3], &img) == LOOM_OK) {
        int dw = 1 + data[0] % 32, dh = 1 + (data[0] >> 3) % 32;
        size_t sc = loom_augment_scratch(NULL, img.w, img.h, img.c, dw, dh);
        uint8_t *scratch = malloc(sc + 1);
        float *x = malloc((size_t)dw * dh * img.c * sizeof(float));
        if (scratch && x) loom_augment_apply(NULL, img.data, img.w, img.h, img.c, x, dw, dh, 1, scratch);
        free(scratch);
        free(x);
        loom_image_free(&img);
    }
    return 0;
}
