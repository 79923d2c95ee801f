/* The graph's insides, shared by models/ files only. */
#ifndef LOOM_GRAPH_IMPL_H
#define LOOM_GRAPH_IMPL_H

#include "loom/graph.h"
#include "kernels/rng.h"

struct loom_graph {
    char name[64];
    loom_layer *nodes;
    int n, cap;
    loom_node output;
    int finished;
    size_t n_params, n_buffers;
    float *params, *buffers;
    loom_init default_init;
    char err[512];
};

#endif
