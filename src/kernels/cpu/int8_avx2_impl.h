// The integer decode (int8_decode.h) and packed GEMM tile (int8_gemm.h) on 256-bit registers,
// for CPUs without AVX-512 VNNI. Included by two units: int8_avx2.cpp (AVX2: vpmaddubsw then
// vpmaddwd) and int8_avxvnni.cpp (AVX-VNNI: one vpdpbusd), which define TERN_INT8_AVXVNNI and
// TERN_INT8_SUFFIX before including it.
//
// Both instructions multiply unsigned bytes by signed bytes, so a signed product w * x is taken
// as |w| * (x with w's sign): vpsignb gives both, exactly, for w in [-128, 127] and x in
// [-127, 127] (activation codes never reach -128). vpmaddubsw adds pairs in 16 bits: at most
// 2 * 128 * 127 = 32512, below its saturation, so every block sum stays exact.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"

#define TERN_INT8_CAT2(a, b) a##b
#define TERN_INT8_CAT(a, b) TERN_INT8_CAT2(a, b)
#define TERN_INT8_NAME(base) TERN_INT8_CAT(base, TERN_INT8_SUFFIX)

namespace tern::kernels {
namespace {

// 8 lanes of sums of 4 products u[i] * s[i] (u unsigned, s signed bytes), added to acc.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if TERN_INT8_AVXVNNI
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// Signed w * x summed in groups of 4 bytes, added to acc.
inline __m256i dot_s8s8(__m256i acc, __m256i w, __m256i x) {
  return dot_u8s8(acc, _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

inline float f16_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Q4_0's 32 weights as unsigned nibbles: low nibbles are elements 0..15, high nibbles 16..31.
inline __m256i nibbles(const uint8_t* block) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
  const __m128i low4 = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4),
                          _mm_and_si128(bytes, low4));
}

template <DType T>
void dot4(const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks, float* out) {
  constexpr int64_t kBytes = T == DType::q8_0 ? 34 : 18;
  __m256 acc[4];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    const __m256i xq = load256(x.q.data() + b * 32);
    const float xd = x.d[size_t(b)];
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + b * kBytes;
      __m256i dot;
      if constexpr (T == DType::q8_0) {
        dot = dot_s8s8(_mm256_setzero_si256(), load256(blk + 2), xq);
      } else {  // sum (nib - 8) x = sum nib x - 8 sum x: each of the 8 lanes starts at -sum x
        dot = dot_u8s8(_mm256_set1_epi32(-x.sum[size_t(b)]), nibbles(blk), xq);
      }
      acc[r] =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(f16_scale(blk) * xd), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
}

// A packed panel (int8_gemm.h) 8 rows at a time: a 256-bit load holds 4 consecutive weights of
// 8 rows. The activation codes are stored + 128; xor 0x80 gives back the signed q, so the
// integer block sum is sum w q itself (the reference's -128 sum w + sum w (q + 128)), and the
// float steps are the reference's: equal to the bit.
template <int NT>
void tile(const PackedPanel& p, const uint8_t* const* xq, const float* const* xd, float* out) {
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int g = 0; g < int(kPanelRows / 8); ++g) {
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < p.n_blocks; ++b) {
      const int8_t* w = p.w.data() + b * 32 * kPanelRows + g * 32;
      __m256i dot[NT];
      for (int t = 0; t < NT; ++t) dot[t] = _mm256_setzero_si256();
      for (int k4 = 0; k4 < 8; ++k4) {
        const __m256i wv = load256(w + k4 * kPanelRows * 4);
        const __m256i aw = _mm256_sign_epi8(wv, wv);
        for (int t = 0; t < NT; ++t) {
          int32_t group;
          std::memcpy(&group, xq[t] + b * 32 + k4 * 4, 4);
          const __m256i q = _mm256_xor_si256(_mm256_set1_epi32(group), flip);
          dot[t] = dot_u8s8(dot[t], aw, _mm256_sign_epi8(q, wv));
        }
      }
      const __m256 d = _mm256_loadu_ps(p.dw.data() + b * kPanelRows + g * 8);
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[t]),
                                 _mm256_mul_ps(d, _mm256_set1_ps(xd[t][b])), acc[t]);
    }
    for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + t * kPanelRows + g * 8, acc[t]);
  }
}

}  // namespace

void TERN_INT8_NAME(int8_dot4_)(DType t, const uint8_t* const* rows, const ActQ8& x,
                                int64_t n_blocks, float* out) {
  if (t == DType::q8_0)
    dot4<DType::q8_0>(rows, x, n_blocks, out);
  else
    dot4<DType::q4_0>(rows, x, n_blocks, out);
}

void TERN_INT8_NAME(int8_gemm_tile_)(const PackedPanel& p, const uint8_t* const* xq,
                                     const float* const* xd, int nt, float* out) {
  switch (nt) {
    case 1:
      return tile<1>(p, xq, xd, out);
    case 2:
      return tile<2>(p, xq, xd, out);
    case 3:
      return tile<3>(p, xq, xd, out);
    default:
      return tile<4>(p, xq, xd, out);
  }
}

}  // namespace tern::kernels
