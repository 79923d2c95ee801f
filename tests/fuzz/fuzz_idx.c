/* IDX files, plain and gzip (the first byte chooses), as images and as labels. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int gz = data[0] & 1;
    const char *p = fz_file(gz ? "x-images-idx3-ubyte.gz" : "x-images-idx3-ubyte", data + 1, size - 1);
    if (!p) return 0;
    loom_dataset *ds = loom_dataset_open_idx(p, &(loom_dataset_opts){0});
    fz_read_all(ds, 64);
    loom_dataset_free(ds);
    return 0;
}
