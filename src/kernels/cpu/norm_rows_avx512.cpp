// AVX-512 RMSNorm rows (IsaKernels::rmsnorm_row / rmsnorm_bwd_row). Compiled with
// -ffp-contract=off: a multiply and an add fused into one FMA would round differently from the
// scalar rows, and every ISA must give their bits.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/cpu/norm_rows.h"

namespace tern::kernels {
namespace {

// reduce.h's lane_sum over 8 double lanes, element i in lane i % 8 and the lanes combined in
// its order; term(i, m) gives the 8 doubles of elements [i, i + 8) (m: the valid lanes).
template <class Term>
double lane_sum8(int64_t n, Term term) {
  __m512d acc = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm512_add_pd(acc, term(i, __mmask8(0xff)));
  if (i < n) {
    const __mmask8 m = __mmask8((1u << (n - i)) - 1);
    acc = _mm512_mask_add_pd(acc, m, acc, term(i, m));
  }
  alignas(64) double a[8];
  _mm512_store_pd(a, acc);
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}

}  // namespace

float rmsnorm_row_avx512(const float* x, const float* w, float* y, int64_t d, float eps) {
  const double ss = lane_sum8(d, [&](int64_t i, __mmask8 m) {
    const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i));
    return _mm512_mul_pd(v, v);
  });
  const float r = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
  const __m512 rv = _mm512_set1_ps(r);
  for (int64_t i = 0; i < d; i += 16) {
    const __mmask16 m = first_lanes(d - i);
    const __m512 xh = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), rv);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), xh));
  }
  return r;
}

void rmsnorm_bwd_row_avx512(const float* dy, const float* x, const float* w, float r, float* dx,
                            bool accumulate, float* dw, int64_t d) {
  const __m256 r8 = _mm256_set1_ps(r);
  const double dot = lane_sum8(d, [&](int64_t i, __mmask8 m) {
    const __m256 wg =
        _mm256_mul_ps(_mm256_maskz_loadu_ps(m, w + i), _mm256_maskz_loadu_ps(m, dy + i));
    const __m256 xh = _mm256_mul_ps(_mm256_maskz_loadu_ps(m, x + i), r8);
    return _mm512_mul_pd(_mm512_cvtps_pd(wg), _mm512_cvtps_pd(xh));
  });
  const __m512 rv = _mm512_set1_ps(r), mv = _mm512_set1_ps(float(dot / double(d)));
  for (int64_t i = 0; i < d; i += 16) {
    const __mmask16 m = first_lanes(d - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, dy + i);
    const __m512 xh = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), rv);
    const __m512 wg = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), g);
    const __m512 v = _mm512_mul_ps(rv, _mm512_sub_ps(wg, _mm512_mul_ps(xh, mv)));
    _mm512_mask_storeu_ps(dw + i, m,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m, dw + i), _mm512_mul_ps(g, xh)));
    _mm512_mask_storeu_ps(dx + i, m,
                          accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + i), v) : v);
  }
}

}  // namespace tern::kernels
