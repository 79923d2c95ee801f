/* loom — checkpoints as safetensors files (DESIGN.md): an 8-byte little-endian
 * header length, a JSON header (parsed and written with jansson), then raw
 * little-endian float32 tensors. Tensors: every layer's weights and bias
 * ("<layer>.weight", "<layer>.bias"; batch norm "<layer>.weight/.bias/
 * .running_mean/.running_var") and the optimizer state ("optim.<k>.<layer>.<...>").
 * The "__metadata__" object (string values, as the format requires) holds the
 * architecture ("loom.graph", JSON text) and the training state ("loom.state").
 * Any safetensors reader can inspect the file; loom can resume from it.
 * Writes are atomic: temporary file, fsync, rename. */
#ifndef LOOM_CHECKPOINT_H
#define LOOM_CHECKPOINT_H

#include <stdint.h>

#include "loom/graph.h"
#include "loom/optim.h"
#include "loom/schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where training stands, saved with the weights so it can be resumed. */
typedef struct {
    int epoch;               /* epochs completed */
    long step;               /* optimizer steps taken (keys dropout) */
    uint64_t seed;
    int epochs;              /* total epochs planned */
    double best_metric;      /* best validation accuracy so far (-1 if none) */
    loom_optim_cfg optim;
    loom_schedule sched;     /* including reduce-on-plateau state */
    int batch;
    int deterministic;
    char model[64];          /* zoo name, or "" for a custom graph */
    int input_c, input_h, input_w, classes;
    char augment[256];       /* augmentation spec used for training */
    char class_names[2048];  /* newline-separated, for predictions */
} loom_train_state;

/* Write graph parameters and buffers, optionally the training state and the
 * optimizer's state, to path atomically. LOOM_OK or LOOM_ERR. */
int loom_checkpoint_save(const char *path, loom_graph *g, const loom_train_state *st, loom_optim *opt);

/* Read a checkpoint: rebuilds the graph from the stored architecture and loads
 * parameters and buffers (names, dtypes, shapes and offsets validated). If st
 * is not NULL it receives the training state (zeroed if the file has none).
 * NULL with a message naming the file and the problem on error. */
loom_graph *loom_checkpoint_load(const char *path, loom_train_state *st);

/* Load the optimizer state saved in path into opt (same kind and sizes).
 * LOOM_OK, or LOOM_ERR (e.g. the file has no optimizer state). */
int loom_checkpoint_load_optim(const char *path, loom_optim *opt);

#ifdef __cplusplus
}
#endif
#endif
