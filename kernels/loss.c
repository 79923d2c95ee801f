/* Losses: each returns the sum over rows of the per-sample loss (in double,
 * so a shard's total does not depend on float rounding order across rows)
 * and accumulates scale * gradient, so shard gradients add up directly.
 * Labels must lie in [0, k): the trainer checks every batch's once per step
 * (check_labels) and refuses the step otherwise, in every build. */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

static float row_max(const float *x, int k) {
    float m = x[0];
    for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* loss = log sum exp(z) - z_y, with the max subtracted before exp so that
 * logits of any size neither overflow nor lose the label's term. */
double loom_k_softmax_xent(const float *logits, const int32_t *labels, float *dlogits,
                           int n, int k, float scale) {
    double total = 0.0;
    for (int r = 0; r < n; r++) {
        const float *z = logits + (size_t)r * k;
        int y = labels[r];
        float m = row_max(z, k);
        double sum = 0.0;
        for (int j = 0; j < k; j++) sum += expf(z[j] - m);
        total += (double)m + log(sum) - (double)z[y];
        if (!dlogits) continue;
        float *d = dlogits + (size_t)r * k;
        float s = (float)(scale / sum);
        for (int j = 0; j < k; j++) d[j] += s * expf(z[j] - m);
        d[y] -= scale;
    }
    return total;
}

double loom_k_mse(const float *pred, const float *target, float *dpred, int n, int k,
                  float scale) {
    double total = 0.0;
    size_t len = (size_t)n * k;
    for (size_t i = 0; i < len; i++) {
        double e = (double)pred[i] - target[i];
        total += e * e;
    }
    if (dpred) {
        float g = 2.0f * scale / (float)k;
        for (size_t i = 0; i < len; i++) dpred[i] += g * (pred[i] - target[i]);
    }
    return total / k;
}

/* max(z,0) - z t + log1p(exp(-|z|)) never exponentiates a positive number;
 * its gradient is sigmoid(z) - t, with sigmoid in the same overflow-free form. */
double loom_k_bce_logits(const float *logits, const float *target, float *dlogits,
                         int n, int k, float scale) {
    double total = 0.0;
    size_t len = (size_t)n * k;
    for (size_t i = 0; i < len; i++) {
        double z = logits[i];
        total += fmax(z, 0.0) - z * target[i] + log1p(exp(-fabs(z)));
    }
    if (dlogits) {
        float g = scale / (float)k;
        for (size_t i = 0; i < len; i++) {
            float z = logits[i];
            float e = expf(-fabsf(z));
            float s = 1.0f / (1.0f + e);
            float sig = z >= 0.0f ? s : e * s;
            dlogits[i] += g * (sig - target[i]);
        }
    }
    return total / k;
}

/* Each violated margin j pushes z_j up and z_y down; at exactly zero the
 * (sub)gradient 0 is taken, as PyTorch does. */
double loom_k_hinge(const float *logits, const int32_t *labels, float *dlogits,
                    int n, int k, float margin, float scale) {
    double total = 0.0;
    float g = scale / (float)k;
    for (int r = 0; r < n; r++) {
        const float *z = logits + (size_t)r * k;
        int y = labels[r];
        double row = 0.0;
        int active = 0;
        float *d = dlogits ? dlogits + (size_t)r * k : NULL;
        for (int j = 0; j < k; j++) {
            if (j == y) continue;
            double v = (double)margin - z[y] + z[j];
            if (v <= 0.0) continue;
            row += v;
            active++;
            if (d) d[j] += g;
        }
        if (d) d[y] -= g * (float)active;
        total += row / k;
    }
    return total;
}

/* The trainer's loss by kind: the one place that maps a kind to its kernel. */
double loom_k_loss(loom_loss_kind kind, const float *logits, const int32_t *labels, float *dlogits,
                 int n, int k, float scale, float *onehot) {
    switch (kind) {
    case LOOM_LOSS_XENT: return loom_k_softmax_xent(logits, labels, dlogits, n, k, scale);
    case LOOM_LOSS_HINGE: return loom_k_hinge(logits, labels, dlogits, n, k, 1.0f, scale);
    case LOOM_LOSS_MSE:
    case LOOM_LOSS_BCE:
        memset(onehot, 0, (size_t)n * k * sizeof(float));
        for (int i = 0; i < n; i++) onehot[(size_t)i * k + labels[i]] = 1.0f;
        return kind == LOOM_LOSS_MSE ? loom_k_mse(logits, onehot, dlogits, n, k, scale)
                                     : loom_k_bce_logits(logits, onehot, dlogits, n, k, scale);
    }
    return 0;
}
