/* Elementwise activations and row softmax. Loops are written branch-free
 * (selects, not ifs) so the compiler can vectorise them; operands are loaded
 * before the select, since a load inside one arm is control flow to GCC. */
#include "kernels/kernels.h"

#include <math.h>

void loom_k_relu_fwd(const float *x, float *y, size_t len) {
    for (size_t i = 0; i < len; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void loom_k_relu_bwd(const float *x, const float *dy, float *dx, size_t len) {
    for (size_t i = 0; i < len; i++) {
        float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : 0.0f;
    }
}

void loom_k_leaky_relu_fwd(const float *x, float *y, size_t len, float alpha) {
    for (size_t i = 0; i < len; i++) {
        float v = x[i];
        y[i] = v > 0.0f ? v : alpha * v;
    }
}

void loom_k_leaky_relu_bwd(const float *x, const float *dy, float *dx, size_t len,
                           float alpha) {
    for (size_t i = 0; i < len; i++) {
        float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : alpha * g;
    }
}

/* exp only ever sees -|x|, so it cannot overflow; for x < 0 the result is
 * e/(1+e) rather than 1 - 1/(1+e), which would cancel to 0 for large -x. */
void loom_k_sigmoid_fwd(const float *x, float *y, size_t len) {
    for (size_t i = 0; i < len; i++) {
        float e = expf(-fabsf(x[i]));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] >= 0.0f ? s : e * s;
    }
}

void loom_k_sigmoid_bwd(const float *y, const float *dy, float *dx, size_t len) {
    for (size_t i = 0; i < len; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

void loom_k_tanh_fwd(const float *x, float *y, size_t len) {
    for (size_t i = 0; i < len; i++) y[i] = tanhf(x[i]);
}

void loom_k_tanh_bwd(const float *y, const float *dy, float *dx, size_t len) {
    for (size_t i = 0; i < len; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

static float row_max(const float *x, int k) {
    float m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    return m;
}

void loom_k_softmax_fwd(const float *x, float *y, int rows, int k) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * k;
        float *yr = y + (size_t)r * k;
        float m = row_max(xr, k);
        double sum = 0.0;
        for (int j = 0; j < k; j++) {
            yr[j] = expf(xr[j] - m);
            sum += yr[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < k; j++) yr[j] *= inv;
    }
}

/* dx = y * (dy - <dy, y>): the Jacobian diag(y) - y y^T applied to dy. */
void loom_k_softmax_bwd(const float *y, const float *dy, float *dx, int rows, int k) {
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * k;
        const float *gr = dy + (size_t)r * k;
        float *dr = dx + (size_t)r * k;
        double dot = 0.0;
        for (int j = 0; j < k; j++) dot += (double)gr[j] * yr[j];
        float d = (float)dot;
        for (int j = 0; j < k; j++) dr[j] += yr[j] * (gr[j] - d);
    }
}

void loom_k_clip_fwd(const float *x, float *y, size_t len, float lo, float hi) {
    for (size_t i = 0; i < len; i++) {
        float v = x[i] > lo ? x[i] : lo;
        y[i] = v < hi ? v : hi;
    }
}

void loom_k_clip_bwd(const float *x, const float *dy, float *dx, size_t len, float lo, float hi) {
    for (size_t i = 0; i < len; i++) dx[i] += x[i] > lo && x[i] < hi ? dy[i] : 0.0f;
}

void loom_k_log_softmax_fwd(const float *x, float *y, int rows, int k) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * k;
        float *yr = y + (size_t)r * k;
        float m = row_max(xr, k);
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += exp((double)xr[j] - m);
        float lse = m + (float)log(sum);
        for (int j = 0; j < k; j++) yr[j] = xr[j] - lse;
    }
}

void loom_k_log_softmax_bwd(const float *y, const float *dy, float *dx, int rows, int k) {
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * k, *gr = dy + (size_t)r * k;
        float *dr = dx + (size_t)r * k;
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += gr[j];
        for (int j = 0; j < k; j++) dr[j] += gr[j] - expf(yr[j]) * (float)sum;
    }
}
