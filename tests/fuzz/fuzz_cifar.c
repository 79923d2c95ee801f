/* CIFAR-10 binary batches: a folder with data_batch_1.bin (and test_batch.bin). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fz_file("data_batch_1.bin", data, size) || !fz_file("test_batch.bin", data, size)) return 0;
    loom_dataset *ds = loom_dataset_open_cifar(fz_dir(), &(loom_dataset_opts){.split = "train"});
    fz_read_all(ds, 64);
    loom_dataset_free(ds);
    return 0;
}
