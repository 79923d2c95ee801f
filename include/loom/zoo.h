/* loom — the model zoo: each model is a function of the input shape and the
 * class count, returning a finished graph (parameters initialised from seed). */
#ifndef LOOM_ZOO_H
#define LOOM_ZOO_H

#include <stdint.h>

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

loom_graph *loom_zoo_mlp(int c, int h, int w, int classes);
loom_graph *loom_zoo_lenet5(int c, int h, int w, int classes);
loom_graph *loom_zoo_minivgg(int c, int h, int w, int classes);

/* Build a zoo model by name ("lenet5", "mlp", "minivgg", ...) and finish it
 * with seed. NULL with a message if the name is unknown or the shape does not fit. */
loom_graph *loom_zoo_build(const char *name, int c, int h, int w, int classes, uint64_t seed);
/* Names of the zoo models, NULL-terminated. */
const char *const *loom_zoo_names(void);

#ifdef __cplusplus
}
#endif
#endif
