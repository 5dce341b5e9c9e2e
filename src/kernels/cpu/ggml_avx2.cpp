// The GGUF decode kernel (ggml/ggml_decode.h) on AVX2, for CPUs without AVX-512 VNNI (AMD Zen
// 2/3, Intel before Ice Lake): Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL and IQ4_XS (the i-quants
// below 4 bits are in cpu/ggml_iq_avx2.cpp), computed from their blocks with vpmaddubsw against the
// int8 activations (ActQ8). Without it those CPUs dequantised every weight to f32 and ran 15x
// slower than llama.cpp. The k-quant codes are unsigned and small (2 to 6 bits), so a pair of
// products fits vpmaddubsw's 16 bits (at most 2 * 63 * 127); per 32 values (one activation
// block) the integer sum is exact and is scaled once in f32. Q4_K / Q5_K: sub-block scales and
// mins per 32 are decoded in 32-bit words and meet the block's d_x as one 8-lane vector per 256
// values; the mins meet ActQ8::sum. Q2_K / Q3_K / Q6_K: their scales per 16 multiply in 16 bits
// (vpmaddwd), their mins or offsets meet ActQ8::sum16 once per 256 values. IQ4: 16 signed
// levels by vpshufb, then the sign trick. Compiled with -mavx2 -mfma -mf16c; ggml_decode.cpp
// calls it only when CPUID reports AVX2.
#include <immintrin.h>

#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/avx2_helpers.h"
#include "kernels/cpu/by_tokens.h"
#include "kernels/cpu/tile_prefetch.h"
#include "kernels/ggml/iq_grids.h"
#include "kernels/int8_decode.h"

namespace tern::kernels {
namespace {

// Q4_K / Q5_K's 12 scale bytes as two 8-lane vectors: d * scale and dmin * min of sub-block j
// in lane j. Bytes 0-3 hold scales 0-3 (low 6 bits), 4-7 mins 0-3, 8-11 the low 4 bits of
// scales 4-7 (low nibbles) and mins 4-7 (high nibbles), whose top 2 bits are the spare bits
// 6-7 of bytes 0-3 (scales) and 4-7 (mins): ggml/unpack.h's k_scale_min, four lanes at once.
inline void k_scales(const uint8_t* blk, __m256* dsc, __m256* dmn) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, blk + 4, 4);
  std::memcpy(&w1, blk + 8, 4);
  std::memcpy(&w2, blk + 12, 4);
  const uint32_t sc_lo = w0 & 0x3f3f3f3f, mn_lo = w1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (w2 & 0x0f0f0f0f) | (((w0 >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((w2 >> 4) & 0x0f0f0f0f) | (((w1 >> 6) & 0x03030303) << 4);
  const __m256 sc =
      _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32(int(sc_lo), int(sc_hi), 0, 0)));
  const __m256 mn =
      _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32(int(mn_lo), int(mn_hi), 0, 0)));
  *dsc = _mm256_mul_ps(sc, _mm256_set1_ps(f16_at(blk)));
  *dmn = _mm256_mul_ps(mn, _mm256_set1_ps(f16_at(blk + 2)));
}

// 8 lanes of block sums u . x for two 32-value sub-blocks (lo against xa, hi against xb) in
// pair_sums's lane order.
inline __m256i code_pair_sums(__m256i lo, __m256i xa, __m256i hi, __m256i xb) {
  const __m256i ones = _mm256_set1_epi16(1);
  return pair_sums(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, xa), ones),
                   _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xb), ones));
}

// Q4_K (kFifth false) and Q5_K: 256 values a block; value = d sc_j q - dmin m_j per 32.
template <bool kFifth, int kNt>
void dot_q45_k(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  constexpr int64_t kBytes = kFifth ? 176 : 144, kQs = kFifth ? 48 : 16;
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i low4 = _mm256_set1_epi8(15);
  for (int r = 0; r < 4; ++r) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t u = 0; u < cols / 256; ++u) {
      const uint8_t* blk = rows[r] + u * kBytes;
      prefetch_unit<kBytes>(blk + ahead);
      __m256 dsc, dmn;
      k_scales(blk, &dsc, &dmn);
      __m256i lo[4], hi[4];
      const __m256i qh = kFifth ? load256(blk + 16) : _mm256_setzero_si256();
      for (int j = 0; j < 4; ++j) {
        const __m256i qs = load256(blk + kQs + 32 * j);
        lo[j] = _mm256_and_si256(qs, low4);
        hi[j] = _mm256_and_si256(_mm256_srli_epi16(qs, 4), low4);
        // Q5_K: bit 2j of qh byte l is the fifth bit of value 64j + l, bit 2j + 1 that of 64j + 32
        // + l.
        if constexpr (kFifth) {
          const __m256i bit = _mm256_set1_epi8(char(1 << (2 * j))),
                        bit2 = _mm256_set1_epi8(char(2 << (2 * j)));
          lo[j] = _mm256_or_si256(
              lo[j], _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit),
                                      _mm256_set1_epi8(16)));
          hi[j] = _mm256_or_si256(
              hi[j], _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit2), bit2),
                                      _mm256_set1_epi8(16)));
        }
      }
      for (int t = 0; t < kNt; ++t) {
        const ActQ8& x = *xs[t];
        const int8_t* xq = x.q.data() + u * 256;
        const __m256 dx = _mm256_loadu_ps(x.d.data() + u * 8);
        const __m256 f = _mm256_mul_ps(dsc, dx);
        // The mins: - dmin m_j d_x sum_j(q), lane j.
        const __m256 sx = _mm256_cvtepi32_ps(load256(x.sum.data() + u * 8));
        acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmn, dx), sx, acc[t]);
        for (int j = 0; j < 4; ++j) {
          const __m256i s =
              code_pair_sums(lo[j], load256(xq + 64 * j), hi[j], load256(xq + 64 * j + 32));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), pair_factor(f, j), acc[t]);
        }
      }
    }
    for (int t = 0; t < kNt; ++t) out[4 * t + r] = hsum(acc[t]);
  }
}

// The 16 per-16-group factors a_g d_x(g / 2) s16_g summed into 8 lanes, for a term
// sum_g a_g d_x(g / 2) sum16_g: Q6_K's and Q3_K's offsets, Q2_K's mins. a: the 16 factors as
// two 8-lane vectors (groups 0-7, 8-15).
inline __m256 group_sum_term(__m256 a_lo, __m256 a_hi, const ActQ8& x, int64_t u) {
  const __m256 dx = _mm256_loadu_ps(x.d.data() + u * 8);
  const __m256 dx_lo = _mm256_permutevar8x32_ps(dx, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
  const __m256 dx_hi = _mm256_permutevar8x32_ps(dx, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
  const __m256 s_lo = _mm256_cvtepi32_ps(load256(x.sum16.data() + u * 16));
  const __m256 s_hi = _mm256_cvtepi32_ps(load256(x.sum16.data() + u * 16 + 8));
  return _mm256_fmadd_ps(_mm256_mul_ps(a_lo, dx_lo), s_lo,
                         _mm256_mul_ps(_mm256_mul_ps(a_hi, dx_hi), s_hi));
}

// 16-bit scales of groups 2k (lanes 0-7) and 2k + 1 (lanes 8-15) from 16 int8 scales.
inline __m256i pair_scales16(__m128i sc8, int k) {
  const char a = char(2 * k), b = char(2 * k + 1);
  return _mm256_cvtepi8_epi16(
      _mm_shuffle_epi8(sc8, _mm_setr_epi8(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b)));
}

// The integer sum of 32 codes against 32 activations with the scales of its two halves
// (pair_scales16 of block k), in 8 lanes.
inline __m256i scaled_block_dot(__m256i code, const int8_t* x, __m128i sc8, int k) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(code, load256(x)), pair_scales16(sc8, k));
}

// One 256-value unit of a type with 16 int8 scales (Q6_K, Q3_K, Q2_K) against one token, added
// to acc: d times the 8 blocks' scaled integer sums (two blocks per hadd), minus term_scale times
// the per-16 term sum_g a_g d_x sum16_g (group_sum_term: the offsets or mins).
inline __m256 scaled_unit(__m256 acc, const __m256i* code, __m128i sc8, float d, __m256 a_lo,
                          __m256 a_hi, float term_scale, const ActQ8& x, int64_t u) {
  const int8_t* xq = x.q.data() + u * 256;
  acc = _mm256_fnmadd_ps(group_sum_term(a_lo, a_hi, x, u), _mm256_set1_ps(term_scale), acc);
  const __m256 f = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(x.d.data() + u * 8));
  for (int j = 0; j < 4; ++j) {
    const __m256i s =
        pair_sums(scaled_block_dot(code[2 * j], xq + 64 * j, sc8, 2 * j),
                  scaled_block_dot(code[2 * j + 1], xq + 64 * j + 32, sc8, 2 * j + 1));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), pair_factor(f, j), acc);
  }
  return acc;
}

// Q6_K: 256 values a block: ql[128] low 4 bits, qh[64] top 2 bits, 16 int8 scales, f16 d;
// value = d sc_{i/16} (q - 32). In each half h of 128 values, ql byte l (l < 32) holds values
// l (low nibble) and 64 + l (high), ql byte 32 + l values 32 + l and 96 + l, and qh byte l the
// top bits of l, 32 + l, 64 + l, 96 + l in bit pairs 0-1, 2-3, 4-5, 6-7.
template <int kNt>
void dot_q6_k(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  constexpr int64_t kBytes = 210;
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i low4 = _mm256_set1_epi8(15),
                top2 = _mm256_set1_epi8(3 << 4);  // where a code's 2 top bits go
  for (int r = 0; r < 4; ++r) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t u = 0; u < cols / 256; ++u) {
      const uint8_t* blk = rows[r] + u * kBytes;
      prefetch_unit<kBytes>(blk + ahead);
      const float d = f16_at(blk + 208);
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
      __m256i code[8];  // values 32 k .. 32 k + 31
      for (int h = 0; h < 2; ++h) {
        const __m256i qa = load256(blk + 64 * h), qb = load256(blk + 64 * h + 32);
        const __m256i qh = load256(blk + 128 + 32 * h);
        code[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(qa, low4),
                                          _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2));
        code[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(qb, low4),
                                          _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2));
        code[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4),
                                          _mm256_and_si256(qh, top2));
        code[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4),
                                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2));
      }
      // The 16 scales as floats (lanes 0-7, 8-15) for the offset term.
      const __m256 sc_lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8));
      const __m256 sc_hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8)));
      // - 32 d sum_g sc_g d_x(g / 2) sum16_g: the offset, per 16-value group g.
      for (int t = 0; t < kNt; ++t)
        acc[t] = scaled_unit(acc[t], code, sc8, d, sc_lo, sc_hi, 32.0f * d, *xs[t], u);
    }
    for (int t = 0; t < kNt; ++t) out[4 * t + r] = hsum(acc[t]);
  }
}

// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min, per 16), qs[64], f16 d and dmin.
// Value 128h + 32j + l is bits 2j..2j+1 of qs[32h + l]; w = d sc q - dmin m. Q3_K (110 bytes):
// hmask[32], qs[64] as Q2_K's low 2 bits, 12 bytes of 6-bit scales, f16 d; bit (value / 32) of
// hmask[l] is the third bit, q = low + 4 third - 4, scale s - 32: ggml/unpack_ref.cpp spells out
// where each scale's bits are.
template <bool kQ3, int kNt>
void dot_q23_k(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  constexpr int64_t kBytes = kQ3 ? 110 : 84, kQs = kQ3 ? 32 : 16;
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i three = _mm256_set1_epi8(3);
  for (int r = 0; r < 4; ++r) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t u = 0; u < cols / 256; ++u) {
      const uint8_t* blk = rows[r] + u * kBytes;
      prefetch_unit<kBytes>(blk + ahead);
      __m128i sc8;              // the 16 signed scales
      __m256 term_lo, term_hi;  // per-group factors of the sum16 term (mins, or the offset 4)
      float d;
      if constexpr (kQ3) {
        d = f16_at(blk + 108);
        const uint8_t* sc = blk + 96;
        const __m128i low = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc));
        const __m128i nib =
            _mm_unpacklo_epi64(_mm_and_si128(low, _mm_set1_epi8(15)),
                               _mm_and_si128(_mm_srli_epi16(low, 4), _mm_set1_epi8(15)));
        uint32_t hw;
        std::memcpy(&hw, sc + 8, 4);
        const __m128i high = _mm_and_si128(
            _mm_srlv_epi32(_mm_set1_epi32(int(hw)), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
        sc8 = _mm_sub_epi8(_mm_or_si128(nib, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
        term_lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8));
        term_hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8)));
      } else {
        d = f16_at(blk + 80);
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk));
        sc8 = _mm_and_si128(raw, _mm_set1_epi8(15));
        const __m128i mins = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
        term_lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(mins));
        term_hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(mins, 8)));
      }
      // The subtracted term's factor: 4 d per unit of the offset (Q3_K), dmin per min (Q2_K).
      const float term_scale = kQ3 ? 4.0f * d : f16_at(blk + 82);
      __m256i code[8];  // values 32 k .. 32 k + 31
      const __m256i hmask = kQ3 ? load256(blk) : _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i qs = load256(blk + kQs + 32 * h);
        for (int j = 0; j < 4; ++j) {
          __m256i c = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), three);
          if constexpr (kQ3) {
            const __m256i bit = _mm256_set1_epi8(char(1 << (4 * h + j)));
            c = _mm256_or_si256(
                c, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit),
                                    _mm256_set1_epi8(4)));
          }
          code[4 * h + j] = c;
        }
      }
      for (int t = 0; t < kNt; ++t)
        acc[t] = scaled_unit(acc[t], code, sc8, d, term_lo, term_hi, term_scale, *xs[t], u);
    }
    for (int t = 0; t < kNt; ++t) out[4 * t + r] = hsum(acc[t]);
  }
}

// 32 IQ4 weights as signed levels (each nibble indexes the 16 of kIq4nlValues, held in `levels`
// in both lanes): the low nibbles of 16 bytes, then their high ones.
inline __m256i iq4_weights(const uint8_t* qs, __m256i levels) {
  const __m128i low4 = _mm_set1_epi8(15);
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_shuffle_epi8(levels, _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4),
                                                      _mm_and_si128(bytes, low4)));
}
// 8 lanes of sums of 32 signed weights w (|w| given as aw) times 32 activations: the sign trick.
inline __m256i signed_block_dot(__m256i w, __m256i aw, const int8_t* x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(load256(x), w)),
                           _mm256_set1_epi16(1));
}

// IQ4_XS per 256-value unit: the 8 block scales as one vector (bytes 4-7: low nibbles, block j's
// in nibble j % 2 of byte j / 2; bits 2j of the u16 at 2: its top 2 bits; minus 32, times d), so
// blocks go two at a time through one hadd and one multiply-add, as Q4_K's do.
template <int kNt>
void dot_iq4_xs(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i levels = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(ggml::kIq4nlValues)));
  for (int r = 0; r < 4; ++r) {
    __m256 acc[kNt];
    for (int t = 0; t < kNt; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t u = 0; u < cols / 256; ++u) {
      const uint8_t* blk = rows[r] + u * 136;
      prefetch_unit<136>(blk + ahead);
      uint16_t sh;
      uint32_t sl;
      std::memcpy(&sh, blk + 2, 2);
      std::memcpy(&sl, blk + 4, 4);
      const __m128i nib = _mm_unpacklo_epi8(_mm_cvtsi32_si128(int(sl & 0x0f0f0f0f)),
                                            _mm_cvtsi32_si128(int((sl >> 4) & 0x0f0f0f0f)));
      const __m256i top = _mm256_and_si256(
          _mm256_srlv_epi32(_mm256_set1_epi32(sh), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
          _mm256_set1_epi32(3));
      const __m256i ls =
          _mm256_sub_epi32(_mm256_or_si256(_mm256_cvtepu8_epi32(nib), _mm256_slli_epi32(top, 4)),
                           _mm256_set1_epi32(32));
      const __m256 dsc = _mm256_mul_ps(_mm256_cvtepi32_ps(ls), _mm256_set1_ps(f16_at(blk)));
      __m256 f[kNt];
      for (int t = 0; t < kNt; ++t)
        f[t] = _mm256_mul_ps(dsc, _mm256_loadu_ps(xs[t]->d.data() + u * 8));
      for (int j = 0; j < 4; ++j) {
        __m256i w[2], aw[2];
        for (int k = 0; k < 2; ++k) {
          w[k] = iq4_weights(blk + 8 + 32 * j + 16 * k, levels);
          aw[k] = _mm256_sign_epi8(w[k], w[k]);
        }
        for (int t = 0; t < kNt; ++t) {
          const int8_t* xq = xs[t]->q.data() + u * 256 + 64 * j;
          const __m256i s =
              pair_sums(signed_block_dot(w[0], aw[0], xq), signed_block_dot(w[1], aw[1], xq + 32));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), pair_factor(f[t], j), acc[t]);
        }
      }
    }
    for (int t = 0; t < kNt; ++t) out[4 * t + r] = hsum(acc[t]);
  }
}

// IQ4_NL (18 bytes: f16 d, 16 nibble bytes as Q4_0): each nibble indexes 16 signed levels,
// looked up with vpshufb; a block of 32 is the low nibbles of 16 bytes then their high ones.
template <int kNt>
void dot_iq4_nl(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i levels = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(ggml::kIq4nlValues)));
  const int64_t n32 = cols / 32;
  for (int r = 0; r < 4; ++r) {
    __m256 acc[2][kNt];  // even and odd blocks: two chains of multiply-adds, not one
    for (int t = 0; t < kNt; ++t) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
    const auto block = [&](int64_t b, __m256* a) {
      const uint8_t* blk = rows[r] + b * 18;
      if (b % 4 == 0) _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      const float scale = f16_at(blk);
      const __m256i w = iq4_weights(blk + 2, levels);
      const __m256i aw = _mm256_sign_epi8(w, w);
      for (int t = 0; t < kNt; ++t) {
        const ActQ8& x = *xs[t];
        const __m256i dot = signed_block_dot(w, aw, x.q.data() + b * 32);
        a[t] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(scale * x.d[size_t(b)]), a[t]);
      }
    };
    int64_t b = 0;
    for (; b + 1 < n32; b += 2) block(b, acc[0]), block(b + 1, acc[1]);
    if (b < n32) block(b, acc[0]);
    for (int t = 0; t < kNt; ++t) out[4 * t + r] = hsum(_mm256_add_ps(acc[0][t], acc[1][t]));
  }
}

// Q4_1 (20 B: d, m, qs[16]), Q5_0 (22 B: d, qh u32, qs[16]) and Q5_1 (24 B: d, m, qh, qs[16]):
// 32-value blocks whose low nibbles are values 0-15 and high nibbles 16-31 (bit i of qh is value
// i's fifth bit). The codes are unsigned (4 or 5 bits); Q4_1 / Q5_1 add m per value (m d_x sum_x
// per block), Q5_0 subtracts 16 (16 d d_x sum_x).
template <int kBytes, bool kMin, bool kFifth, int kNt>
void dot_q45_legacy(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  constexpr int kQs = kBytes - 16;
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m128i low4 = _mm_set1_epi8(15);
  // qh to one byte per value: byte i takes qh's byte i / 8, then its bit i % 8.
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bits = _mm256_set1_epi64x(0x8040201008040201ll);
  const int64_t n32 = cols / 32;
  for (int r = 0; r < 4; ++r) {
    __m256 acc[2][kNt];  // even and odd blocks: two chains of multiply-adds, not one
    for (int t = 0; t < kNt; ++t) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
    float side[kNt] = {};  // the mins (or Q5_0's offset) times d_x sum_x
    const auto block = [&](int64_t b, __m256* a) {
      const uint8_t* blk = rows[r] + b * kBytes;
      if (b % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kQs));
      __m256i code =
          _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), low4), _mm_and_si128(qs, low4));
      if constexpr (kFifth) {
        uint32_t qh;
        std::memcpy(&qh, blk + kQs - 4, 4);
        const __m256i spread_qh = _mm256_shuffle_epi8(_mm256_set1_epi32(int(qh)), spread);
        code = _mm256_or_si256(
            code, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread_qh, bits), bits),
                                   _mm256_set1_epi8(16)));
      }
      const float d = f16_at(blk);
      const float m = kMin ? f16_at(blk + 2) : -16.0f * d;
      for (int t = 0; t < kNt; ++t) {
        const ActQ8& x = *xs[t];
        const float dx = x.d[size_t(b)];
        const __m256i s = _mm256_madd_epi16(
            _mm256_maddubs_epi16(code, load256(x.q.data() + b * 32)), _mm256_set1_epi16(1));
        a[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * dx), a[t]);
        side[t] += m * dx * float(x.sum[size_t(b)]);
      }
    };
    int64_t b = 0;
    for (; b + 1 < n32; b += 2) block(b, acc[0]), block(b + 1, acc[1]);
    if (b < n32) block(b, acc[0]);
    for (int t = 0; t < kNt; ++t)
      out[4 * t + r] = hsum(_mm256_add_ps(acc[0][t], acc[1][t])) + side[t];
  }
}

}  // namespace

bool ggml_dot4_iq_avx2(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                       int64_t cols, float* out);  // cpu/ggml_iq_avx2.cpp

void ggml_dot4_avx2(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                    int64_t cols, float* out) {
  // The token count as a template argument: the accumulators then stay in registers (a
  // run-time count kept them in memory, one store-to-load round trip per multiply-add).
  by_tokens(nt, [&](auto n) {
    constexpr int kNt = decltype(n)::value;
    switch (t) {
      case DType::q4_1:
        return dot_q45_legacy<20, true, false, kNt>(rows, xs, cols, out);
      case DType::q5_0:
        return dot_q45_legacy<22, false, true, kNt>(rows, xs, cols, out);
      case DType::q5_1:
        return dot_q45_legacy<24, true, true, kNt>(rows, xs, cols, out);
      case DType::q4_k:
        return dot_q45_k<false, kNt>(rows, xs, cols, out);
      case DType::q5_k:
        return dot_q45_k<true, kNt>(rows, xs, cols, out);
      case DType::q2_k:
        return dot_q23_k<false, kNt>(rows, xs, cols, out);
      case DType::q3_k:
        return dot_q23_k<true, kNt>(rows, xs, cols, out);
      case DType::q6_k:
        return dot_q6_k<kNt>(rows, xs, cols, out);
      case DType::iq4_nl:
        return dot_iq4_nl<kNt>(rows, xs, cols, out);
      case DType::iq4_xs:
        return dot_iq4_xs<kNt>(rows, xs, cols, out);
      default:
        ggml_dot4_iq_avx2(t, rows, xs, nt, cols, out);
    }
  });
}

}  // namespace tern::kernels
