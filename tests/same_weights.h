/* Shared by the command-line drivers (tests/cli/kill.c, mpi.c): whether two
 * checkpoint files hold bit for bit the same parameters and buffers. */
#ifndef LOOM_TEST_SAME_WEIGHTS_H
#define LOOM_TEST_SAME_WEIGHTS_H

#include <stdio.h>
#include <string.h>

#include "loom/loom.h"

static inline int t_same_weights(const char *a, const char *b) {
    loom_graph *ga = loom_checkpoint_load(a), *gb = loom_checkpoint_load(b);
    int same = ga && gb && loom_graph_param_count(ga) == loom_graph_param_count(gb) &&
               loom_graph_buffer_count(ga) == loom_graph_buffer_count(gb) &&
               !memcmp(loom_graph_params(ga), loom_graph_params(gb), loom_graph_param_count(ga) * sizeof(float)) &&
               !memcmp(loom_graph_buffers(ga), loom_graph_buffers(gb), loom_graph_buffer_count(ga) * sizeof(float));
    if (!ga || !gb) fprintf(stderr, "%s\n", loom_error());
    loom_graph_free(ga);
    loom_graph_free(gb);
    return same;
}

#endif
