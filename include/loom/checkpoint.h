/* loom — checkpoints as safetensors files (DESIGN.md): an 8-byte little-endian
 * header length, a JSON header (parsed and written with jansson), then raw
 * little-endian float32 tensors.
 *
 * This module keeps the container and the model: every layer's weights and
 * bias ("<layer>.weight", "<layer>.bias"; batch norm "<layer>.weight/.bias/
 * .running_mean/.running_var", PyTorch's names and shapes) and, in the
 * "__metadata__" object, the architecture ("loom.graph", JSON text) and the
 * format version ("loom.version"). Layers above store what they need beside
 * the model: metadata strings of their own ("loom.trainer", "loom.fit" from
 * the trainer, "loom.run" from the loom command) and tensors outside the
 * model's namespace ("optim.0.dense_1.weight", ...). Any safetensors reader
 * can inspect the file. Writes are atomic: temporary file, fsync, rename. */
#ifndef LOOM_CHECKPOINT_H
#define LOOM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest tensor name loom writes, with its terminator. */
#define LOOM_CKPT_NAME_MAX 96

/* A float32 tensor stored beside the model's. */
typedef struct {
    const char *name;
    int ndim;             /* 1..4 */
    int64_t shape[4];
    float *data;          /* count floats: read from when saving, written to when loading */
    size_t count;
} loom_ckpt_tensor;

/* A metadata string stored beside the model's ("loom.graph" and "loom.version"
 * are taken). The value must be valid UTF-8. */
typedef struct {
    const char *key;
    const char *value;
} loom_ckpt_meta;

/* What a layer above adds to a checkpoint. Tensor names must not start with
 * a layer's name and a dot (that namespace is the model's). */
typedef struct {
    const loom_ckpt_meta *meta;
    int nmeta;
    const loom_ckpt_tensor *tensors;
    size_t ntensors;
} loom_ckpt_extra;

/* Write the graph's parameters and buffers, its architecture and extra (may
 * be NULL) to path atomically. A parameter, buffer or extra tensor holding a
 * NaN or an infinity is refused: a checkpoint never stores a diverged model.
 * LOOM_OK or LOOM_ERR. */
int loom_checkpoint_save(const char *path, loom_graph *g, const loom_ckpt_extra *extra);

/* An open checkpoint: the container checked (sizes, offsets, JSON), the
 * architecture parsed; tensors are read on demand. */
typedef struct loom_checkpoint loom_checkpoint;

/* Open path. NULL with a message naming the file and the problem. */
loom_checkpoint *loom_checkpoint_open(const char *path);
void loom_checkpoint_close(loom_checkpoint *ck);
const char *loom_checkpoint_path(const loom_checkpoint *ck);
/* The format version the file was written with (1 or 2). */
int loom_checkpoint_version(const loom_checkpoint *ck);
/* A new graph with the stored architecture, parameters and buffers (names,
 * shapes, and finiteness of every value checked). NULL on error. */
loom_graph *loom_checkpoint_graph(loom_checkpoint *ck);
/* A metadata string, or NULL if the file has none under key. */
const char *loom_checkpoint_meta(const loom_checkpoint *ck, const char *key);
/* Whether the file holds a tensor of this name. */
int loom_checkpoint_has(const loom_checkpoint *ck, const char *name);
/* Read tensor t->name into t->data, checking that the stored shape is
 * t->shape and that every value is finite. LOOM_OK or LOOM_ERR. */
int loom_checkpoint_read(loom_checkpoint *ck, const loom_ckpt_tensor *t);

/* open + graph + close: the model of a checkpoint. NULL on error. */
loom_graph *loom_checkpoint_load(const char *path);

/* PyTorch weights: a state_dict saved as safetensors (F32) into g, a loom
 * model of the same architecture. Modules are paired with loom's layers that
 * have parameters by order (module paths in natural order) and checked by
 * shape: Conv2d, Linear, BatchNorm (running statistics too);
 * num_batches_tracked is ignored. On any mismatch nothing is written and the
 * error names the tensor, both shapes and the layer. LOOM_OK or LOOM_ERR. */
int loom_load_torch_state(loom_graph *g, const char *path);

/* The tensors of a flat array laid out like g's parameters (base: one float
 * per parameter), named "<prefix><layer>.weight" / ".bias" with the shapes of
 * the model's own tensors, pointing into base: how optimizer state and
 * gradients are stored. Writes up to cap entries to out and their names to
 * names; returns how many there are (call with cap 0 to count). */
size_t loom_checkpoint_param_views(const loom_graph *g, const char *prefix, float *base, loom_ckpt_tensor *out,
                                   char (*names)[LOOM_CKPT_NAME_MAX], size_t cap);

#ifdef __cplusplus
}
#endif
#endif
