/* loom — counter-based random numbers: every draw is a pure function of a key
 * and a counter, so no shared mutable RNG state exists anywhere in loom.
 * Keys are derived from (seed, purpose, epoch, sample index, ...) with
 * loom_rng_key; the same key and counter always give the same bits, whatever
 * thread asks and in what order. */
#ifndef LOOM_RNG_H
#define LOOM_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Purposes, mixed into keys so that streams for different uses never collide. */
enum {
    LOOM_RNG_INIT = 1,     /* parameter initialisation */
    LOOM_RNG_SHUFFLE = 2,  /* epoch permutation */
    LOOM_RNG_DROPOUT = 3,  /* dropout masks */
    LOOM_RNG_AUGMENT = 4,  /* augmentation parameters */
    LOOM_RNG_SPLIT = 5,    /* train/validation split */
    LOOM_RNG_TEST = 99     /* tests */
};

/* Derive a key from a seed and up to three further words (purpose, epoch, index...). */
uint64_t loom_rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

/* The SplitMix64 finaliser (a bijection with good avalanche). */
static inline uint64_t loom_rng_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 64 random bits for (key, counter). Inline: dropout draws one per element,
 * and independent draws pipeline when the compiler sees them. */
static inline uint64_t loom_rng_u64(uint64_t key, uint64_t counter) {
    return loom_rng_mix(key ^ loom_rng_mix(counter * 0xD1B54A32D192ED03ull + 1));
}

/* Uniform float in [0, 1) for (key, counter), 24 bits of precision. */
static inline float loom_rng_uniform(uint64_t key, uint64_t counter) {
    return (float)(loom_rng_u64(key, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal float for (key, counter) (Box-Muller on two derived draws). */
float loom_rng_normal(uint64_t key, uint64_t counter);

/* Uniform integer in [0, n) for (key, counter), n > 0, without modulo bias. */
uint32_t loom_rng_below(uint64_t key, uint64_t counter, uint32_t n);

/* Fill perm[0..n) with a permutation of 0..n-1 determined by key (Fisher-Yates). */
void loom_rng_permutation(uint64_t key, uint32_t *perm, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
