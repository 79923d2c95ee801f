/* The model zoo. Each definition reads top to bottom like the paper's table. */
#include "loom/zoo.h"

#include <string.h>

#include "loom/error.h"

/* LeNet-5 (LeCun et al. 1998), with ReLU and max pooling as commonly trained today. */
loom_graph *loom_zoo_lenet5(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("lenet5");
    loom_node x = loom_input(g, c, h, w);
    x = loom_relu(g, loom_conv2d(g, x, 6, 5, 1, 2));   /* C1: 6 @ 5x5, pad 2 */
    x = loom_maxpool2d(g, x, 2, 2);                    /* S2 */
    x = loom_relu(g, loom_conv2d(g, x, 16, 5, 1, 0));  /* C3: 16 @ 5x5 */
    x = loom_maxpool2d(g, x, 2, 2);                    /* S4 */
    x = loom_relu(g, loom_dense(g, x, 120));           /* C5 */
    x = loom_relu(g, loom_dense(g, x, 84));            /* F6 */
    loom_dense(g, x, classes);                         /* output logits */
    return g;
}

/* A two-hidden-layer perceptron. */
loom_graph *loom_zoo_mlp(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("mlp");
    loom_node x = loom_input(g, c, h, w);
    x = loom_relu(g, loom_dense(g, x, 256));
    x = loom_relu(g, loom_dense(g, x, 128));
    loom_dense(g, x, classes);
    return g;
}

/* [conv3x3, BN, ReLU] x 2 -> maxpool -> dropout, twice, then a BN'd dense head. */
static loom_node vgg_block(loom_graph *g, loom_node x, int filters) {
    for (int i = 0; i < 2; i++) x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, filters, 3, 1, 1)));
    return loom_dropout(g, loom_maxpool2d(g, x, 2, 2), 0.25f);
}

loom_graph *loom_zoo_minivgg(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("minivgg");
    loom_node x = loom_input(g, c, h, w);
    x = vgg_block(g, x, 32);
    x = vgg_block(g, x, 64);
    x = loom_relu(g, loom_batchnorm(g, loom_dense(g, x, 512)));
    x = loom_dropout(g, x, 0.5f);
    loom_dense(g, x, classes);
    return g;
}

typedef loom_graph *(*zoo_fn)(int, int, int, int);
static const struct { const char *name; zoo_fn fn; } zoo[] = {
    {"mlp", loom_zoo_mlp},
    {"lenet5", loom_zoo_lenet5},
    {"minivgg", loom_zoo_minivgg},
};
#define NZOO (sizeof zoo / sizeof zoo[0])

const char *const *loom_zoo_names(void) {
    static const char *names[NZOO + 1];
    for (size_t i = 0; i < NZOO; i++) names[i] = zoo[i].name;
    return names;
}

loom_graph *loom_zoo_build(const char *name, int c, int h, int w, int classes, uint64_t seed) {
    for (size_t i = 0; i < NZOO; i++) {
        if (strcmp(zoo[i].name, name)) continue;
        loom_graph *g = zoo[i].fn(c, h, w, classes);
        if (!g) {
            loom_set_error("%s: out of memory", name);
            return NULL;
        }
        if (loom_graph_finish(g, seed) != LOOM_OK) {
            loom_graph_free(g);
            return NULL;
        }
        return g;
    }
    char list[256] = "";
    for (size_t i = 0; i < NZOO; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, zoo[i].name, sizeof list - strlen(list) - 1);
    }
    loom_set_error("unknown model '%s' (known: %s)", name, list);
    return NULL;
}
