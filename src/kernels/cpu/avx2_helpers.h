// Small helpers shared by the AVX2 kernel units (cpu/int8_avx2_impl.h, cpu/ggml_avx2.cpp).
// Internal linkage on purpose, as avx512_hsum.h: each unit is compiled with its own -m flags.
// Include only from units compiled with -mavx2 -mf16c.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace tern::kernels {
namespace {

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// The horizontal sum of 8 floats.
inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// The f16 at p (a block scale) as f32.
inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Two 32-value blocks' 8-lane integer sums folded by one hadd: lanes {0, 1, 4, 5} from a's,
// {2, 3, 6, 7} from b's, so one f32 multiply-add scales both (by pair_factor).
inline __m256i pair_sums(__m256i a, __m256i b) {
  return _mm256_hadd_epi32(a, b);
}
// The factors of blocks 2j and 2j + 1 (lanes 2j, 2j + 1 of f: one per block of a 256-value unit)
// in pair_sums's lane order. The index vectors are a constant table: built in a loop that the
// compiler does not unroll, they cost more than the multiply-add they feed.
alignas(32) inline constexpr int32_t kPairLanes[4][8] = {{0, 0, 1, 1, 0, 0, 1, 1},
                                                         {2, 2, 3, 3, 2, 2, 3, 3},
                                                         {4, 4, 5, 5, 4, 4, 5, 5},
                                                         {6, 6, 7, 7, 6, 6, 7, 7}};
inline __m256 pair_factor(__m256 f, int j) {
  return _mm256_permutevar8x32_ps(f, load256(kPairLanes[j]));
}

}  // namespace
}  // namespace tern::kernels
