/* Fully connected layer as two GEMMs; W is [out, in] so the forward product
 * takes W transposed, matching PyTorch Linear and ONNX Gemm(transB=1). */
#include "kernels/kernels.h"

void loom_k_dense_fwd(const float *x, const float *W, const float *b, float *y,
                      int n, int in, int out) {
    loom_k_gemm(0, 1, n, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
    if (!b) return;
    for (int i = 0; i < n; i++) {
        float *yr = y + (size_t)i * out;
        for (int j = 0; j < out; j++) yr[j] += b[j];
    }
}

void loom_k_dense_bwd(const float *x, const float *W, const float *dy,
                      float *dx, float *dW, float *db, int n, int in, int out) {
    /* beta = 1 everywhere: backward accumulates (kernels.h). */
    if (dx) loom_k_gemm(0, 0, n, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    if (dW) loom_k_gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db) {
        for (int i = 0; i < n; i++) {
            const float *g = dy + (size_t)i * out;
            for (int j = 0; j < out; j++) db[j] += g[j];
        }
    }
}
