// The AVX2 int8 multiply-add issue rate (vpmaddubsw on 12 independent chains, registers only):
// the peak the integer GEMM's rate is stated against on CPUs without AVX-512 VNNI. Compiled with
// -mavx2; int8_gemm.cpp calls it only when CPUID reports AVX2.
#include <immintrin.h>

#include <cstdint>

namespace tern::kernels {

double avx2_peak_ops(int64_t steps) {
  const __m256i b = _mm256_set1_epi8(1);
  __m256i c0 = _mm256_set1_epi8(3), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
          c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (int64_t s = 0; s < steps; ++s) {
    // Each chain feeds its own result back in, so no two instructions are the same.
    c0 = _mm256_maddubs_epi16(c0, b), c1 = _mm256_maddubs_epi16(c1, b);
    c2 = _mm256_maddubs_epi16(c2, b), c3 = _mm256_maddubs_epi16(c3, b);
    c4 = _mm256_maddubs_epi16(c4, b), c5 = _mm256_maddubs_epi16(c5, b);
    c6 = _mm256_maddubs_epi16(c6, b), c7 = _mm256_maddubs_epi16(c7, b);
    c8 = _mm256_maddubs_epi16(c8, b), c9 = _mm256_maddubs_epi16(c9, b);
    c10 = _mm256_maddubs_epi16(c10, b), c11 = _mm256_maddubs_epi16(c11, b);
    __asm__ volatile(""
                     : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5), "+x"(c6),
                       "+x"(c7), "+x"(c8), "+x"(c9), "+x"(c10), "+x"(c11));
  }
  const __m256i sum = _mm256_add_epi16(
      _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(c0, c1), _mm256_add_epi16(c2, c3)),
                       _mm256_add_epi16(_mm256_add_epi16(c4, c5), _mm256_add_epi16(c6, c7))),
      _mm256_add_epi16(_mm256_add_epi16(c8, c9), _mm256_add_epi16(c10, c11)));
  volatile int sink = _mm256_extract_epi16(sum, 0);
  (void)sink;
  return double(steps) * 12 * 32 * 2;  // 32 byte products per instruction, multiply + add
}

}  // namespace tern::kernels
