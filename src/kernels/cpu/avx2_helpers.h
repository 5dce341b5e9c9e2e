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

}  // namespace
}  // namespace tern::kernels
