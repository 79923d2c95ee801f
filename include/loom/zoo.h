/* loom — the model zoo: each model is a function of the input shape and the
 * class count. loom_zoo_build(name, ...) returns a finished graph (parameters
 * initialised from seed), or NULL with the reason. The per-model functions
 * return the graph unfinished, so that initializers or frozen layers can be
 * set first; a shape that does not fit the model is recorded in
 * loom_graph_error and reported by loom_graph_finish. */
#ifndef LOOM_ZOO_H
#define LOOM_ZOO_H

#include <stdint.h>

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

loom_graph *loom_zoo_mlp(int c, int h, int w, int classes);
loom_graph *loom_zoo_logreg(int c, int h, int w, int classes);
loom_graph *loom_zoo_lenet5(int c, int h, int w, int classes);
loom_graph *loom_zoo_minivgg(int c, int h, int w, int classes);
/* conv 3x3 32 + ReLU, dense (pyimagesearch's ShallowNet) */
loom_graph *loom_zoo_shallownet(int c, int h, int w, int classes);
/* 5 convs (64 5x5/2, 192 5x5, 384, 256, 256 3x3) with 3 max pools, GAP,
 * dense 1024 - 1024 - classes with dropout 0.5; ~3.8M parameters */
loom_graph *loom_zoo_alexnet(int c, int h, int w, int classes);
/* VGG-style, 3x3 conv + BN + ReLU throughout, GAP before the classifier.
 * vgg:   6 convs: 2 each at 64, 128, 256, a 2x2 max pool after each pair;
 *        GAP -> logits (7 weight layers)
 * vgg11: configuration A, 8 convs + 3 dense (11 weight layers)
 * vgg13: configuration B, 10 convs + 3 dense
 * vgg16: configuration D, 13 convs + 3 dense
 * The vggNN use the paper's layout with widths / 4 (convs 16..128, hidden
 * dense 1024) and dropout 0.5 in the classifier. */
loom_graph *loom_zoo_vgg(int c, int h, int w, int classes);
loom_graph *loom_zoo_vgg11(int c, int h, int w, int classes);
loom_graph *loom_zoo_vgg13(int c, int h, int w, int classes);
loom_graph *loom_zoo_vgg16(int c, int h, int w, int classes);
/* CIFAR-style ResNet with basic blocks: 3x3 stem (stride 2 for inputs of
 * 96 px or more), 3 stages of n blocks at 16/32/64 channels, projection
 * shortcuts where a stage downsamples, GAP, dense.
 * resnet: n = 2 (14 weight layers); resnet20: n = 3 (He et al.'s ResNet-20). */
loom_graph *loom_zoo_resnet(int c, int h, int w, int classes);
loom_graph *loom_zoo_resnet20(int c, int h, int w, int classes);
/* 3x3 stem (stride 2 from 96 px), three inception modules (GoogLeNet 3a, 3b,
 * 4a at 1/4 width) separated by max pools, GAP, dropout 0.4, dense. */
loom_graph *loom_zoo_inception(int c, int h, int w, int classes);

/* Build a zoo model by name ("lenet5", "mlp", "minivgg", "resnet", ...; see
 * loom_zoo_names) and finish it with seed. NULL with a message if the name is
 * unknown or the shape does not fit. The models added after minivgg leave out
 * a max pool that no longer fits the feature map (e.g. at 28 px), so they
 * build for any input of at least 8x8. */
loom_graph *loom_zoo_build(const char *name, int c, int h, int w, int classes, uint64_t seed);
/* Names of the zoo models, NULL-terminated. */
const char *const *loom_zoo_names(void);
/* One line on what the model is (NULL for an unknown name). */
const char *loom_zoo_about(const char *name);

#ifdef __cplusplus
}
#endif
#endif
