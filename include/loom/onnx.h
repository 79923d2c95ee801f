/* loom — ONNX models in: a network another framework trained becomes a loom
 * graph that trains, checkpoints and runs data-parallel like a zoo model.
 *
 * The file is parsed by protobuf-c with code generated at build time from
 * Debian's onnx.proto (libonnx-dev); loom writes no protobuf parsing of its
 * own. Opsets 9 to 17 of the default domain. What loom cannot express (an
 * operator, an attribute value, a dynamic shape) is refused with the node's
 * name, its operator and the reason, never approximated. */
#ifndef LOOM_ONNX_H
#define LOOM_ONNX_H

#include <stdint.h>

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether this loom was built with ONNX support (LOOM_ONNX, protobuf-c). */
int loom_onnx_available(void);

/* The model at path as a finished graph, its parameters and batch-norm
 * statistics from the file's initializers (inline or as external data beside
 * the file). NULL on error (loom_error: the file, the node, the reason);
 * loom_error_kind is LOOM_EUNSUPPORTED for a well-formed model loom cannot
 * express, LOOM_EFORMAT for a broken one, LOOM_EIO when it cannot be read. */
loom_graph *loom_onnx_import(const char *path);

/* The same, with the graph's inputs after the first (the data) taken as
 * constants from serialized TensorProto files, in the graph's order: how
 * ONNX's node tests, which feed weights as inputs, become loom models. */
loom_graph *loom_onnx_import_with(const char *path, int nconst, const char *const *files);

/* Whether the file starts like an ONNX model (a protobuf ModelProto with an
 * ir_version), without parsing it: for telling it from a checkpoint. */
int loom_onnx_sniff(const char *path);

/* Write g as an ONNX model (opset 13, IR 8) at path, atomically: each layer
 * as the node(s) that compute it in inference, weights as initializers named
 * as in loom's checkpoints, the batch dimension symbolic ("N"). LOOM_OK or
 * LOOM_ERR. */
int loom_onnx_export(const loom_graph *g, const char *path);

/* A float32 tensor stored as a serialized TensorProto (the .pb files of
 * ONNX's backend test data): its values (malloc'd; *count of them) and its
 * shape (rank into *rank, at most 8 dimensions into dims). NULL on error. */
float *loom_onnx_read_tensor(const char *path, int64_t dims[8], int *rank, size_t *count);

#ifdef __cplusplus
}
#endif

#endif
