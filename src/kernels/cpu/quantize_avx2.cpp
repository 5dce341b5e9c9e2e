// The activation quantiser (quantize_block_q8) on AVX2, for CPUs without AVX-512: the same
// float steps (amax, d = amax / 127, x * (1 / d) rounded to nearest even by vcvtps2dq, as lrintf
// does in the default rounding mode), so the same bits as the scalar form, which the tests
// compare it with. Scalar, it was ~4% of an AVX2 prefill. Compiled with -mavx2 -mfma -mf16c;
// callers check CPUID.
#include <immintrin.h>

#include <cstdint>

namespace tern::kernels {
namespace {

// One block of 32: codes as 4 vectors of 8 int32 (values 0-7, 8-15, 16-23, 24-31); returns d.
inline float block_codes(const float* x, __m256i* c) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4];
  for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
  const __m256 m =
      _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                    _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
  const __m256 vid = _mm256_set1_ps(id);
  for (int k = 0; k < 4; ++k) c[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
  return d;
}

// The 32 codes as bytes in order (+ bias), and the sums of each half.
inline void store_codes(const __m256i* c, int8_t bias, void* q, int32_t* sums) {
  const __m256i w01 = _mm256_packs_epi32(c[0], c[1]), w23 = _mm256_packs_epi32(c[2], c[3]);
  // packs works within 128-bit lanes: bytes come out as 4-value runs 0 2 4 6 1 3 5 7
  const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23),
                                                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(static_cast<__m256i*>(q), _mm256_add_epi8(b, _mm256_set1_epi8(bias)));
  for (int h = 0; h < 2; ++h) {
    const __m256i s = _mm256_add_epi32(c[2 * h], c[2 * h + 1]);
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    sums[h] = _mm_cvtsi128_si32(t);
  }
}

}  // namespace

// Signed codes, scales and sums per 16 (ActQ8's q, d, sum16); n a multiple of 32.
void quantize_act_q8_avx2(const float* x, int64_t n, int8_t* q, float* d, int32_t* sum16) {
  for (int64_t b = 0; b < n / 32; ++b) {
    __m256i c[4];
    d[b] = block_codes(x + 32 * b, c);
    store_codes(c, 0, q + 32 * b, sum16 + 2 * b);
  }
}

// Codes + 128 (ActQ8Rows), scales, and d times the sums per 16; n a multiple of 32.
void quantize_act_row_avx2(const float* x, int64_t n, uint8_t* q, float* d, float* sum16) {
  for (int64_t b = 0; b < n / 32; ++b) {
    __m256i c[4];
    int32_t s[2];
    d[b] = block_codes(x + 32 * b, c);
    store_codes(c, int8_t(-128), q + 32 * b, s);
    sum16[2 * b] = d[b] * float(s[0]);
    sum16[2 * b + 1] = d[b] * float(s[1]);
  }
}

}  // namespace tern::kernels
