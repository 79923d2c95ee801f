/* One core's fused multiply-add peak, measured: independent FMA chains on
 * 256-bit (AVX2) and, where the CPU has it, 512-bit (AVX-512) registers,
 * enough of them to hide the FMA latency. Prints GFLOP/s per core for each
 * width and the best; bench/vs_torch.sh takes the best as "the FMA peak
 * measured in the same run".
 *
 *   cc -O2 -o fma_peak bench/fma_peak.c && ./fma_peak [seconds]
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHAINS 12

/* Twelve independent accumulators, written out so that they live in registers. */
#define BODY(FMA, A)                                                                              \
    A(0) A(1) A(2) A(3) A(4) A(5) A(6) A(7) A(8) A(9) A(10) A(11)

__attribute__((target("avx2,fma"))) static double run256(long iters, float *sink) {
    __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
#define D256(k) __m256 a##k = _mm256_set1_ps((float)k);
#define F256(k) a##k = _mm256_fmadd_ps(a##k, m, c);
    BODY(, D256)
    for (long i = 0; i < iters; i++) {
        BODY(, F256)
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    *sink = _mm256_cvtss_f32(s);
    return (double)iters * CHAINS * 8 * 2;
}

__attribute__((target("avx512f"))) static double run512(long iters, float *sink) {
    __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
#define D512(k) __m512 a##k = _mm512_set1_ps((float)k);
#define F512(k) a##k = _mm512_fmadd_ps(a##k, m, c);
    BODY(, D512)
    for (long i = 0; i < iters; i++) {
        BODY(, F512)
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    *sink = _mm512_reduce_add_ps(s);
    return (double)iters * CHAINS * 16 * 2;
}

/* Best of 5 runs of about `seconds` / 5 each. */
static double measure(double (*f)(long, float *), double seconds) {
    float sink = 0;
    long iters = 1 << 20;
    double t0 = now();
    f(iters, &sink);
    double per = (now() - t0) / iters;
    iters = (long)(seconds / 5 / per) + 1;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        t0 = now();
        double flop = f(iters, &sink);
        double g = flop / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    if (sink == 12345.0f) printf(" ");
    return best;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    __builtin_cpu_init();
    double best = 0, g;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        g = measure(run256, seconds);
        printf("fma peak avx2: %.1f GFLOP/s per core\n", g);
        if (g > best) best = g;
    }
    if (__builtin_cpu_supports("avx512f")) {
        g = measure(run512, seconds);
        printf("fma peak avx512: %.1f GFLOP/s per core\n", g);
        if (g > best) best = g;
    }
    if (best == 0) {
        printf("fma peak: this CPU has neither AVX2+FMA nor AVX-512\n");
        return 1;
    }
    printf("fma peak: %.1f GFLOP/s per core\n", best);
    return 0;
}
