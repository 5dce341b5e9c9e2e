// AVX-512 BF16 micro-kernel of the low-precision training GEMM (lowp_gemm.h): an 8 x 32 tile in
// 16 zmm accumulators; each packed B pair-row is two loads and each A pair one broadcast feeding
// two vdpbf16ps (32 products each). Per chunk the partial sums are scaled and added to C, which
// stays in L1 between chunks. Compiled with its own -m flags; returned only when CPUID reports
// AVX-512 BF16.
#include <cpuid.h>
#include <immintrin.h>

#include "kernels/lowp_gemm.h"

namespace tern::kernels {
namespace {

constexpr int MR = 8, NR = 32;

inline __m512 truncate14(__m512 v) {
  return _mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(0xfffffc00u))));
}

template <bool kLimited>
void run(int64_t kp, int64_t cp, const uint32_t* a, const uint32_t* b, const float* sa,
         const float* sb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t p0 = 0, ch = 0; p0 < kp; p0 += cp, ++ch) {
    const int64_t pe = p0 + cp < kp ? p0 + cp : kp;
    __m512 acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t p = p0; p < pe; ++p) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * NR + 16);
      for (int i = 0; i < MR; ++i) {
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[p * MR + i]));
        if constexpr (kLimited) {
          const __m512 z = _mm512_setzero_ps();
          acc[i][0] = truncate14(_mm512_add_ps(acc[i][0], _mm512_dpbf16_ps(z, ai, b0)));
          acc[i][1] = truncate14(_mm512_add_ps(acc[i][1], _mm512_dpbf16_ps(z, ai, b1)));
        } else {
          acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
          acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
      }
    }
    const bool first = !accumulate && ch == 0;
    __m512 s0 = _mm512_set1_ps(1.0f), s1 = s0;
    if (sa) s0 = _mm512_loadu_ps(sb + ch * NR), s1 = _mm512_loadu_ps(sb + ch * NR + 16);
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m512 v0 = acc[i][0], v1 = acc[i][1];
      if (sa) {
        const __m512 si = _mm512_set1_ps(sa[ch * MR + i]);
        v0 = _mm512_mul_ps(v0, _mm512_mul_ps(si, s0));
        v1 = _mm512_mul_ps(v1, _mm512_mul_ps(si, s1));
      }
      if (!first) {
        v0 = _mm512_add_ps(_mm512_loadu_ps(ci), v0);
        v1 = _mm512_add_ps(_mm512_loadu_ps(ci + 16), v1);
      }
      _mm512_storeu_ps(ci, v0);
      _mm512_storeu_ps(ci + 16, v1);
    }
  }
}

void micro(int64_t kp, int64_t cp, const uint32_t* a, const uint32_t* b, const float* sa,
           const float* sb, float* c, int64_t ldc, bool accumulate, bool limited14) {
  if (limited14)
    run<true>(kp, cp, a, b, sa, sb, c, ldc, accumulate);
  else
    run<false>(kp, cp, a, b, sa, sb, c, ldc, accumulate);
}

bool cpu_has_avx512_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

}  // namespace

const LowpMicroKernel* lowp_micro_avx512bf16() {
  static const LowpMicroKernel k{"avx512bf16", MR, NR, micro};
  static const bool ok = cpu_has_avx512_bf16();
  return ok ? &k : nullptr;
}

}  // namespace tern::kernels
