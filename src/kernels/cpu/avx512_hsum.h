// The horizontal sum of 16 floats, shared by the AVX-512 kernel units. Internal linkage on
// purpose: each unit is compiled with its own -m flags, and one inline definition merged across
// them could hand a unit code built for instructions its CPU check never approved.
// Include only from units compiled with -mavx512f -mavx512dq.
#pragma once

#include <immintrin.h>

namespace tern::kernels {
namespace {

// _mm512_reduce_add_ps trips a GCC 12 -Wuninitialized false positive.
inline float hsum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

}  // namespace
}  // namespace tern::kernels
