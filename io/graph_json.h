/* io — a graph's architecture as JSON (the "loom.graph" metadata of a
 * checkpoint): every layer's op, name, inputs, output shape and attributes,
 * enough to rebuild it with the public constructors. Shared by io/ only. */
#ifndef LOOM_IO_GRAPH_JSON_H
#define LOOM_IO_GRAPH_JSON_H

#include <jansson.h>

#include "loom/graph.h"

/* The architecture of g (a new reference). NULL with loom_error set, naming
 * path (the file it is for). */
json_t *gj_encode(const loom_graph *g, const char *path);

/* Rebuild the layers described by j, not finished: no parameter memory is
 * allocated yet, so the caller can first check the sizes the layers need
 * against what it has. path names the source in messages. NULL with
 * loom_error set. */
loom_graph *gj_decode(const json_t *j, const char *path);

#endif
