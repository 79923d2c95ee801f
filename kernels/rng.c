/* Counter-based generator: bits = mix(key ^ mix(counter)), where mix is the
 * SplitMix64 finaliser (a bijection with good avalanche). Stateless, so any
 * thread can draw any number in any order and get the same answer. */
#include "kernels/rng.h"

#include <math.h>

#define mix loom_rng_mix

uint64_t loom_rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t k = mix(seed);
    k = mix(k ^ a);
    k = mix(k ^ (b + 0x632BE59BD9B4E019ull));
    k = mix(k ^ (c + 0x8CB92BA72F3D8DD7ull));
    return k;
}

float loom_rng_normal(uint64_t key, uint64_t counter) {
    uint64_t b = loom_rng_u64(key, counter);
    /* two 32-bit halves -> u1 in (0,1], u2 in [0,1) */
    double u1 = ((double)(b >> 32) + 1.0) / 4294967296.0;
    double u2 = (double)(b & 0xFFFFFFFFu) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t loom_rng_below(uint64_t key, uint64_t counter, uint32_t n) {
    /* Lemire's multiply-shift with rejection; retries draw further counters
     * from a derived key so the result stays a pure function of (key, counter). */
    uint64_t m = (uint64_t)(uint32_t)loom_rng_u64(key, counter) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        uint64_t k2 = mix(key ^ 0xA0761D6478BD642Full);
        uint64_t j = 0;
        while (lo < t) {
            m = (uint64_t)(uint32_t)loom_rng_u64(k2, counter * 64 + j++) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void loom_rng_permutation(uint64_t key, uint32_t *perm, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = loom_rng_below(key, i, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
