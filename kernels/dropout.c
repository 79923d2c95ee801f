/* Inverted dropout. Each sample's mask is a pure function of (key, global
 * sample index, element index), so it is the same whichever shard, thread or
 * replica computes it, and backward can reuse it without any RNG state. */
#include "kernels/kernels.h"
#include "kernels/rng.h"

void loom_k_dropout_fwd(const float *x, float *y, float *mask, int n, size_t per_sample,
                        float p, uint64_t key, uint64_t sample_base) {
    size_t len = (size_t)n * per_sample;
    if (p <= 0.0f) {
        /* no draws at all: p = 0 is how inference and "dropout off" run */
        for (size_t i = 0; i < len; i++) {
            mask[i] = 1.0f;
            y[i] = x[i];
        }
        return;
    }
    /* p >= 1 drops everything; the scale is then never used, keep it finite */
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int j = 0; j < n; j++) {
        uint64_t k = loom_rng_key(key, sample_base + (uint64_t)j, 0, 0);
        float *m = mask + (size_t)j * per_sample;
        for (size_t i = 0; i < per_sample; i++)
            m[i] = loom_rng_uniform(k, i) >= p ? scale : 0.0f;
    }
    for (size_t i = 0; i < len; i++) y[i] = x[i] * mask[i];
}

void loom_k_dropout_bwd(const float *dy, const float *mask, float *dx, size_t len) {
    for (size_t i = 0; i < len; i++) dx[i] += dy[i] * mask[i];
}
