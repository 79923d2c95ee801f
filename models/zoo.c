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

/* Logistic regression: one dense layer (for features, from loom features). */
loom_graph *loom_zoo_logreg(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("logreg");
    loom_node x = loom_input(g, c, h, w);
    loom_dense(g, x, classes);
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

/* ---- building blocks shared by the larger models ---- */

/* A conv followed by batch norm carries no bias: BN's shift would cancel it. */
static loom_node conv_bn(loom_graph *g, loom_node x, int filters, int k, int stride, int pad) {
    loom_conv_shape s = {.oc = filters, .kh = k, .kw = k, .sh = stride, .sw = stride,
                         .ph = pad, .pw = pad, .dh = 1, .dw = 1, .groups = 1};
    return loom_batchnorm(g, loom_conv2d_ex(g, x, &s, 0));
}

static loom_node conv_bn_relu(loom_graph *g, loom_node x, int filters, int k, int stride, int pad) {
    return loom_relu(g, conv_bn(g, x, filters, k, stride, pad));
}

/* Networks designed for 224 px still have to build on 28 px digits: a pool
 * whose window no longer fits the feature map is left out instead of failing. */
static loom_node maxpool_if_fits(loom_graph *g, loom_node x, int k, int stride) {
    const loom_layer *l = (g && x >= 0) ? loom_graph_layer(g, x) : NULL;
    if (l && (l->h < k || l->w < k)) return x;
    return loom_maxpool2d(g, x, k, stride);
}

/* Large inputs (>= 96 px, e.g. 150 px Intel scenes) get a stride-2 stem so
 * the body runs at the cost it has on 32-75 px maps. */
static int stem_stride(int h, int w) { return (h < w ? h : w) >= 96 ? 2 : 1; }

/* ShallowNet (Rosebrock, DL4CV): the smallest useful CNN, a baseline. */
loom_graph *loom_zoo_shallownet(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("shallownet");
    loom_node x = loom_input(g, c, h, w);
    x = loom_relu(g, loom_conv2d(g, x, 32, 3, 1, 1));  /* 32 @ 3x3, "same" */
    loom_dense(g, x, classes);
    return g;
}

/* AlexNet (Krizhevsky et al. 2012) resized for 64-150 px: the 11x11/4 stem
 * becomes 5x5/2, and global average pooling replaces the 6x6 flatten so the
 * classifier does not depend on the input size. */
loom_graph *loom_zoo_alexnet(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("alexnet");
    loom_node x = loom_input(g, c, h, w);
    x = loom_relu(g, loom_conv2d(g, x, 64, 5, 2, 2));   /* conv1: 64 @ 5x5 /2 */
    x = maxpool_if_fits(g, x, 3, 2);                    /* pool1: 3x3 /2 */
    x = loom_relu(g, loom_conv2d(g, x, 192, 5, 1, 2));  /* conv2: 192 @ 5x5 */
    x = maxpool_if_fits(g, x, 3, 2);                    /* pool2 */
    x = loom_relu(g, loom_conv2d(g, x, 384, 3, 1, 1));  /* conv3: 384 @ 3x3 */
    x = loom_relu(g, loom_conv2d(g, x, 256, 3, 1, 1));  /* conv4: 256 @ 3x3 */
    x = loom_relu(g, loom_conv2d(g, x, 256, 3, 1, 1));  /* conv5: 256 @ 3x3 */
    x = maxpool_if_fits(g, x, 3, 2);                    /* pool5 */
    x = loom_global_avgpool(g, x);
    x = loom_dropout(g, x, 0.5f);
    x = loom_relu(g, loom_dense(g, x, 1024));           /* fc6 */
    x = loom_dropout(g, x, 0.5f);
    x = loom_relu(g, loom_dense(g, x, 1024));           /* fc7 */
    loom_dense(g, x, classes);                          /* fc8: logits */
    return g;
}

/* VGG (Simonyan & Zisserman 2014) as configuration tables: a number is a
 * 3x3 conv + BN + ReLU of that width, P a 2x2 max pool. The vggNN tables are
 * configurations A, B and D with every width divided by 4 so they train on
 * a CPU; "vgg" is a shallower 3-block variant. */
#define P 0
static const int vgg_cfg[] = {64, 64, P, 128, 128, P, 256, 256, P};
static const int vgg11_cfg[] = {16, P, 32, P, 64, 64, P, 128, 128, P, 128, 128, P};
static const int vgg13_cfg[] = {16, 16, P, 32, 32, P, 64, 64, P, 128, 128, P, 128, 128, P};
static const int vgg16_cfg[] = {16, 16, P, 32, 32, P, 64, 64, 64, P, 128, 128, 128, P,
                                128, 128, 128, P};
#undef P

/* fc is the width of the two hidden classifier layers (4096 / 4 for the
 * vggNN), 0 for a direct GAP -> logits head. Global average pooling stands in
 * for the 7x7 flatten, as in alexnet. */
static loom_graph *vgg(const char *name, const int *cfg, size_t n, int fc, int c, int h, int w,
                       int classes) {
    loom_graph *g = loom_graph_new(name);
    loom_node x = loom_input(g, c, h, w);
    for (size_t i = 0; i < n; i++)
        x = cfg[i] ? conv_bn_relu(g, x, cfg[i], 3, 1, 1) : maxpool_if_fits(g, x, 2, 2);
    x = loom_global_avgpool(g, x);
    for (int i = 0; fc && i < 2; i++) x = loom_dropout(g, loom_relu(g, loom_dense(g, x, fc)), 0.5f);
    loom_dense(g, x, classes);
    return g;
}

#define VGG(cfg, fc) vgg(#cfg, cfg##_cfg, sizeof cfg##_cfg / sizeof cfg##_cfg[0], fc, c, h, w, classes)
loom_graph *loom_zoo_vgg(int c, int h, int w, int classes) { return VGG(vgg, 0); }
loom_graph *loom_zoo_vgg11(int c, int h, int w, int classes) { return VGG(vgg11, 1024); }
loom_graph *loom_zoo_vgg13(int c, int h, int w, int classes) { return VGG(vgg13, 1024); }
loom_graph *loom_zoo_vgg16(int c, int h, int w, int classes) { return VGG(vgg16, 1024); }
#undef VGG

/* Basic residual block (He et al. 2016): two 3x3 convs. A block that
 * downsamples also changes width, so its shortcut is a 1x1 strided conv + BN
 * projection (option B) rather than the identity. */
static loom_node basic_block(loom_graph *g, loom_node x, int filters, int stride) {
    loom_node y = conv_bn_relu(g, x, filters, 3, stride, 1);
    y = conv_bn(g, y, filters, 3, 1, 1);
    loom_node shortcut = stride == 1 ? x : conv_bn(g, x, filters, 1, stride, 0);
    return loom_relu(g, loom_add(g, y, shortcut));
}

/* CIFAR-style ResNet-(6n+2): stem, three stages of n blocks at 16/32/64
 * channels (stages 2 and 3 start with stride 2), GAP, logits. */
static loom_graph *resnet(const char *name, int n, int c, int h, int w, int classes) {
    static const int widths[3] = {16, 32, 64};
    loom_graph *g = loom_graph_new(name);
    loom_node x = loom_input(g, c, h, w);
    x = conv_bn_relu(g, x, 16, 3, stem_stride(h, w), 1);  /* stem: 16 @ 3x3 */
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < n; b++) x = basic_block(g, x, widths[s], s > 0 && b == 0 ? 2 : 1);
    x = loom_global_avgpool(g, x);
    loom_dense(g, x, classes);
    return g;
}

loom_graph *loom_zoo_resnet(int c, int h, int w, int classes) { return resnet("resnet", 2, c, h, w, classes); }
loom_graph *loom_zoo_resnet20(int c, int h, int w, int classes) {
    return resnet("resnet20", 3, c, h, w, classes);
}

/* Inception module (Szegedy et al. 2014, fig. 2b): 1x1 | 1x1 -> 3x3 |
 * 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated along channels. BN after
 * every conv (as in Inception-v2) lets the small net train without the
 * auxiliary classifiers. */
static loom_node inception(loom_graph *g, loom_node x, int n1, int r3, int n3, int r5, int n5,
                           int np) {
    loom_node b[4];
    b[0] = conv_bn_relu(g, x, n1, 1, 1, 0);
    b[1] = conv_bn_relu(g, conv_bn_relu(g, x, r3, 1, 1, 0), n3, 3, 1, 1);
    b[2] = conv_bn_relu(g, conv_bn_relu(g, x, r5, 1, 1, 0), n5, 5, 1, 2);
    b[3] = conv_bn_relu(g, loom_maxpool2d_ex(g, x, 3, 3, 1, 1, 1, 1), np, 1, 1, 0);
    return loom_concat(g, 4, b);
}

/* A small GoogLeNet: modules 3a, 3b and 4a at a quarter of the paper's widths
 * (table 1), each followed by a 2x2 max pool instead of only between stages
 * because inputs here are 28-150 px, not 224. */
loom_graph *loom_zoo_inception(int c, int h, int w, int classes) {
    loom_graph *g = loom_graph_new("inception");
    loom_node x = loom_input(g, c, h, w);
    x = conv_bn_relu(g, x, 48, 3, stem_stride(h, w), 1);  /* stem: 48 @ 3x3 */
    x = maxpool_if_fits(g, x, 2, 2);
    /*                  1x1  3x3red 3x3  5x5red 5x5  pool-proj   -> out */
    x = inception(g, x, 16,  24,    32,  4,     8,   8);       /*  64 */
    x = maxpool_if_fits(g, x, 2, 2);
    x = inception(g, x, 32,  32,    48,  8,     24,  16);      /* 120 */
    x = maxpool_if_fits(g, x, 2, 2);
    x = inception(g, x, 48,  24,    52,  4,     12,  16);      /* 128 */
    x = loom_global_avgpool(g, x);
    x = loom_dropout(g, x, 0.4f);
    loom_dense(g, x, classes);
    return g;
}

typedef loom_graph *(*zoo_fn)(int, int, int, int);
static const struct {
    const char *name;
    zoo_fn fn;
    const char *about;
} zoo[] = {
    {"mlp", loom_zoo_mlp, "a perceptron with two hidden layers"},
    {"logreg", loom_zoo_logreg, "logistic regression: one dense layer (e.g. on features from loom features)"},
    {"lenet5", loom_zoo_lenet5, "LeNet-5 (LeCun et al. 1998), as in the paper's table"},
    {"minivgg", loom_zoo_minivgg, "two VGG blocks of conv3x3+BN+ReLU (32, 64), dense 512"},
    {"shallownet", loom_zoo_shallownet, "one conv layer: the smallest useful CNN, a baseline"},
    {"alexnet", loom_zoo_alexnet, "AlexNet resized for 64-150 px (5x5/2 stem, global-average-pool head)"},
    {"vgg", loom_zoo_vgg, "a 3-block VGG (64, 128, 256 wide)"},
    {"vgg11", loom_zoo_vgg11, "VGG configuration A at a quarter of the paper's widths, GAP head"},
    {"vgg13", loom_zoo_vgg13, "VGG configuration B at a quarter of the paper's widths, GAP head"},
    {"vgg16", loom_zoo_vgg16, "VGG configuration D at a quarter of the paper's widths, GAP head (not the 138M model)"},
    {"resnet", loom_zoo_resnet, "a CIFAR-style ResNet-14 (stages of 16/32/64)"},
    {"resnet20", loom_zoo_resnet20, "ResNet-20 (He et al. 2016, CIFAR version)"},
    {"inception", loom_zoo_inception, "a small GoogLeNet: modules 3a, 3b, 4a at a quarter width"},
};
#define NZOO (sizeof zoo / sizeof zoo[0])

const char *loom_zoo_about(const char *name) {
    for (size_t i = 0; i < NZOO; i++)
        if (!strcmp(zoo[i].name, name)) return zoo[i].about;
    return NULL;
}

const char *const *loom_zoo_names(void) {
    static const char *names[NZOO + 1];
    for (size_t i = 0; i < NZOO; i++) names[i] = zoo[i].name;
    return names;
}

loom_graph *loom_zoo_build(const char *name, int c, int h, int w, int classes, uint64_t seed) {
    for (size_t i = 0; name && i < NZOO; i++) {
        if (strcmp(zoo[i].name, name)) continue;
        loom_graph *g = zoo[i].fn(c, h, w, classes);
        if (!g) {
            loom_fail(LOOM_ENOMEM, "%s: out of memory", name);
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
    loom_fail(LOOM_EINVAL, "unknown model '%s' (known: %s)", name ? name : "(null)", list);
    return NULL;
}
