// AVX-512 GEMM micro-kernel: an 8 x 32 tile in 16 zmm accumulators; each packed B row is two
// loads and each A value one broadcast feeding two FMAs. Compiled with -mavx512f -mfma.
#include <immintrin.h>

#include "kernels/gemm.h"

namespace tern::kernels {
namespace {

constexpr int MR = 8, NR = 32;

void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * NR), b1 = _mm512_loadu_ps(b + k * NR + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[k * MR + i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(_mm512_loadu_ps(ci), acc[i][0]);
      acc[i][1] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), acc[i][1]);
    }
    _mm512_storeu_ps(ci, acc[i][0]);
    _mm512_storeu_ps(ci + 16, acc[i][1]);
  }
}

}  // namespace

const GemmMicroKernel* gemm_micro_avx512() {
  static const GemmMicroKernel k{"avx512", MR, NR, micro};
  return &k;
}

}  // namespace tern::kernels
