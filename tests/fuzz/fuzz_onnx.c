/* ONNX import (protobuf-c, then the mapping onto loom layers); a model that
 * imports is run once on zeros. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_file("m.onnx", data, size);
    if (!p) return 0;
    loom_graph *g = loom_onnx_import(p);
    if (g && fz_small(g)) fz_run_once(g);
    loom_graph_free(g);
    return 0;
}
