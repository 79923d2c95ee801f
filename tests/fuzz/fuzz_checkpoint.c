/* safetensors checkpoints: the header JSON, the graph description, the
 * training state, the tensors; a graph that loads is run once. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_file("c.safetensors", data, size);
    if (!p) return 0;
    loom_checkpoint *ck = loom_checkpoint_open(p);
    loom_graph *g = ck ? loom_checkpoint_graph(ck) : NULL;
    if (g && fz_small(g)) {
        loom_trainer_opts o;
        loom_fit_state st;
        loom_train_read(ck, &o, &st);
        fz_run_once(g);
    }
    loom_graph_free(g);
    loom_checkpoint_close(ck);
    return 0;
}
