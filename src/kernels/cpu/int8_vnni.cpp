// The integer decode kernel (int8_decode.h) on AVX-512 VNNI: per 32-value block, one vpdpbusd
// (u8 x s8 -> s32) over a 256-bit lane. Q8_0 weights are signed, so the weight's sign moves to
// the activation (|w| x sign(w)*x, as vpdpbusd wants an unsigned operand); Q4_0 nibbles are
// unsigned already and their offset of 8 comes off via the block's activation sum. Compiled
// with its own -m flags; int8_decode.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include <cstring>

#include "core/dtype.h"

namespace tern::kernels {

bool int8_vnni_built() {
  return true;
}

namespace {

inline float f16_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void int8_dot4_vnni(DType t, const uint8_t* const* rows, const int8_t* xq, const float* xd,
                    const int32_t* xsum, int64_t n_blocks, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  const __m128i low4 = _mm_set1_epi8(15);
  if (t == DType::q8_0) {
    // Two blocks per 512-bit step: 64 activations, each row's two weight blocks side by side,
    // and the 4 rows x 2 blocks of scales converted and multiplied in one go.
    __m512 acc2[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps()};
    int64_t b = 0;
    for (; b + 2 <= n_blocks; b += 2) {
      const __m512i x = _mm512_loadu_si512(xq + b * 32);
      uint16_t h[8];
      for (int r = 0; r < 4; ++r) {
        std::memcpy(&h[2 * r], rows[r] + b * 34, 2);
        std::memcpy(&h[2 * r + 1], rows[r] + (b + 1) * 34, 2);
      }
      // scales[2r + k] = d_w(row r, block b + k) * d_x(block b + k)
      const __m256 xd2 =
          _mm256_setr_ps(xd[b], xd[b + 1], xd[b], xd[b + 1], xd[b], xd[b + 1], xd[b], xd[b + 1]);
      const __m512 scales = _mm512_castps256_ps512(_mm256_mul_ps(
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))), xd2));
      for (int r = 0; r < 4; ++r) {
        const uint8_t* blk = rows[r] + b * 34;
        const __m512i w = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 36)), 1);
        // |w| x (x negated where w < 0): vpdpbusd wants its first operand unsigned.
        const __m512i sx =
            _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
        // Lanes 0-7 take scale 2r (block b), lanes 8-15 scale 2r + 1 (block b + 1).
        const __m512i pick = _mm512_set_epi32(2 * r + 1, 2 * r + 1, 2 * r + 1, 2 * r + 1, 2 * r + 1,
                                              2 * r + 1, 2 * r + 1, 2 * r + 1, 2 * r, 2 * r, 2 * r,
                                              2 * r, 2 * r, 2 * r, 2 * r, 2 * r);
        acc2[r] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pick, scales), acc2[r]);
      }
    }
    for (int r = 0; r < 4; ++r)
      acc[r] =
          _mm256_add_ps(_mm512_castps512_ps256(acc2[r]),
                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc2[r]), 1)));
    for (; b < n_blocks; ++b) {  // an odd last block
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
      for (int r = 0; r < 4; ++r) {
        const uint8_t* blk = rows[r] + b * 34;
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        const __m256i dot =
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(f16_scale(blk) * xd[b]),
                                 acc[r]);
      }
    }
  } else {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * 32));
      const __m256 offset = _mm256_set1_ps(float(xsum[b]));  // 8 lanes: 8 * sum in all
      for (int r = 0; r < 4; ++r) {
        const uint8_t* blk = rows[r] + b * 18;
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        const __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4),
                                             _mm_and_si128(bytes, low4));
        const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nib, x);
        acc[r] = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(dot), offset),
                                 _mm256_set1_ps(f16_scale(blk) * xd[b]), acc[r]);
      }
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
}

}  // namespace tern::kernels
