/* models — initializers as a fill of one tensor (internal to loom: a graph
 * applies them in loom_graph_finish; tests check their statistics). */
#ifndef LOOM_MODELS_INIT_H
#define LOOM_MODELS_INIT_H

#include <stddef.h>
#include <stdint.h>

#include "loom/graph.h"

/* Fill p[0..n) with initializer init for a tensor of the given fans, drawing
 * from the counter-based generator with key. */
void loom_init_fill(float *p, size_t n, loom_init init, double fan_in, double fan_out,
                    uint64_t key);

#endif
