/* ONNX import (protobuf-c, then the mapping onto loom layers); a model that
 * imports is run once on zeros. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_file("m.onnx", data, size);
    if (!p) return 0;
    loom_graph *g = loom_onnx_import(p);
    if (g && fz_small(g)) {
        loom_exec *e = loom_exec_new(g, 1);
        if (e) {
            memset(loom_exec_input(e), 0, loom_graph_layer(g, 0)->size * sizeof(float));
            loom_exec_forward(e, 1, 0, 0, 0);
        }
        loom_exec_free(e);
    }
    loom_graph_free(g);
    return 0;
}
