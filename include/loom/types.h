/* loom — plain types shared by the layers: the shapes of convolution and
 * pooling (a graph's layers hold them, the kernels compute with them) and the
 * kinds of loss. No functions, no dependencies. */
#ifndef LOOM_TYPES_H
#define LOOM_TYPES_H

#ifdef __cplusplus
extern "C" {
#endif

/* A 2-d convolution: x [n, c, h, w], W [oc, c/groups, kh, kw], b [oc],
 * y [n, oc, oh, ow]. Zero padding ph/pw on both sides, stride sh/sw,
 * dilation dh/dw. */
typedef struct {
    int c, h, w;        /* input channels and size */
    int oc;             /* output channels */
    int kh, kw;         /* kernel size */
    int sh, sw;         /* stride (>= 1) */
    int ph, pw;         /* zero padding, each side */
    int dh, dw;         /* dilation (>= 1) */
    int groups;         /* >= 1; c and oc divisible by groups */
    int oh, ow;         /* output size: fill with loom_k_conv2d_out */
} loom_conv_shape;

/* A 2-d pooling window: x [n, c, h, w] -> y [n, c, oh, ow]. */
typedef struct {
    int c, h, w;
    int kh, kw, sh, sw, ph, pw;
    int ceil;           /* output size rounded up (PyTorch's and ONNX's ceil_mode): the last
                           window may pass the edge, and is clipped there like padding */
    int oh, ow;         /* fill with loom_k_pool_out */
} loom_pool_shape;

/* The losses a trainer can minimise. */
typedef enum { LOOM_LOSS_XENT, LOOM_LOSS_MSE, LOOM_LOSS_BCE, LOOM_LOSS_HINGE } loom_loss_kind;

#ifdef __cplusplus
}
#endif
#endif
