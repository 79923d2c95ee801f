/* Kaggle Digit Recognizer CSV (train.csv with labels, test.csv without). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *p = fz_file(data[0] & 1 ? "test.csv" : "train.csv", data + 1, size - 1);
    if (!p) return 0;
    loom_dataset *ds = loom_dataset_open_csv(p, &(loom_dataset_opts){0});
    fz_read_all(ds, 64);
    loom_dataset_free(ds);
    return 0;
}
