/* Initializers. Every value is a pure function of (key, index), so the
 * initial weights do not depend on threads or on the order layers are filled. */
#include <math.h>

#include "models/init.h"
#include "loom/graph.h"
#include "kernels/rng.h"

static void uniform(float *p, size_t n, double lo, double hi, uint64_t key) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * loom_rng_uniform(key, i));
}

static void normal(float *p, size_t n, double mean, double std, uint64_t key) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(mean + std * loom_rng_normal(key, i));
}

void loom_init_fill(float *p, size_t n, loom_init init, double fan_in, double fan_out,
                    uint64_t key) {
    if (fan_in < 1) fan_in = 1;
    if (fan_out < 1) fan_out = 1;
    double b;
    switch (init.kind) {
    case LOOM_INIT_DEFAULT: /* PyTorch's Linear/Conv default: kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)) */
        b = 1.0 / sqrt(fan_in);
        uniform(p, n, -b, b, key);
        break;
    case LOOM_INIT_UNIFORM: uniform(p, n, init.a, init.b, key); break;
    case LOOM_INIT_NORMAL: normal(p, n, init.a, init.b, key); break;
    case LOOM_INIT_LECUN_UNIFORM:
        b = sqrt(3.0 / fan_in);
        uniform(p, n, -b, b, key);
        break;
    case LOOM_INIT_LECUN_NORMAL: normal(p, n, 0, sqrt(1.0 / fan_in), key); break;
    case LOOM_INIT_GLOROT_UNIFORM:
        b = sqrt(6.0 / (fan_in + fan_out));
        uniform(p, n, -b, b, key);
        break;
    case LOOM_INIT_GLOROT_NORMAL: normal(p, n, 0, sqrt(2.0 / (fan_in + fan_out)), key); break;
    case LOOM_INIT_HE_UNIFORM:
        b = sqrt(6.0 / fan_in);
        uniform(p, n, -b, b, key);
        break;
    case LOOM_INIT_HE_NORMAL: normal(p, n, 0, sqrt(2.0 / fan_in), key); break;
    case LOOM_INIT_ZEROS:
        for (size_t i = 0; i < n; i++) p[i] = 0.0f;
        break;
    case LOOM_INIT_ONES:
        for (size_t i = 0; i < n; i++) p[i] = 1.0f;
        break;
    }
}
