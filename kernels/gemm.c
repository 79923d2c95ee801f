/* The one door to BLAS: everything else in loom calls loom_k_gemm, so the
 * BLAS implementation stays a link-time choice (DESIGN.md). */
#include "kernels/kernels.h"

#include <cblas.h>

/* Declared here too because only OpenBLAS's cblas.h declares it; a repeated
 * compatible declaration is harmless when it does. */
void openblas_set_num_threads(int num_threads);

void loom_k_gemm(int ta, int tb, int m, int n, int k, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        /* cblas rejects lda < 1 for an empty inner dimension (and prints to
         * stderr); the product is empty, so only the beta scaling remains. */
        for (int i = 0; i < m; i++) {
            float *c = C + (size_t)i * ldc;
            for (int j = 0; j < n; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B, ldb,
                beta, C, ldc);
}

void loom_k_blas_single_thread(void) { openblas_set_num_threads(1); }
