// The i-quants of the 1.5-2.3-bit DeepSeek mixes (IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M) decoded straight
// from the file's blocks on AVX-512 VNNI + VBMI + BITALG. The generic kernel of ggml_vnni.cpp
// unpacks them through ggml::Unpacked with scalar index and sign work, which left these types
// compute-bound far below the memory bandwidth.
//
// Each stores, per group g of 32 values, 4 codebook rows of 8 values. Per 256-value unit and
// weight row the 32 rows are assembled so that register c holds row c of group g in qword g:
// IQ2_XXS's 256 and IQ2_XS's 512 rows are held as 2-bit level codes in registers and looked up
// (vpermi2b / vpermi2w), the 2048 rows of IQ1 by 4 qword gathers. (Dword gathers of IQ1's 2-bit
// codes, 2 per unit instead of 4, measured no faster.) The activations are put in that order once
// per token and unit (act_rows), so the vpdpbusd of a unit chain into one accumulator (two for
// scales per 16 values) whose lanes 2 g, 2 g + 1 belong to group g and take one f32 factor (weight
// scale times activation scale).
//
// IQ2: the 7-bit sign indices become sign bytes in registers (vpmultishiftqb; the eighth sign is
// the parity, vpopcntb), then a byte mask per register (vpshufbitqmb). Weights are held + 128
// (0x80 set), so a negated weight is 0 - (128 + v) = 128 - v mod 256: one masked subtract signs
// 64 weights, and 128 * sum(x) comes off through the chain's start.
// IQ1_S: the grid is held as 8 * (g + 1), g in {-1, 0, 1}; a group's dot of 8 g + delta (delta =
// +-1 per group) is then chain + (delta - 8) * sum(x), so the start is -7 or -9 times the sum.
// IQ1_M (delta per row of 8): see dot_iq1_m.
// Same integer sums as the reference; f32 rounding in a different order.
// Compiled with its own -m flags; ggml_vnni.cpp calls it only after ggml_iq_fused_supported().
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/by_tokens.h"
#include "kernels/ggml/iq_grids.h"
#include "kernels/int8_decode.h"
#include "kernels/weight.h"

namespace tern::kernels {
namespace {

inline float f16_at(const uint8_t* p) {
  return _cvtsh_ss(uint16_t(p[0] | (p[1] << 8)));
}

// The codebooks as the kernels multiply them (built once, on first use).
struct IqTables {
  // IQ2_XXS rows as 2-bit level codes (value b of row i: level (code >> 2 b) & 3 of 8 / 25 / 43),
  // split into low and high code bytes: 4 registers each, looked up with vpermi2b.
  alignas(64) uint8_t iq2xxs_lo[256];
  alignas(64) uint8_t iq2xxs_hi[256];
  // IQ2_XS rows as 2-bit level codes in words: 16 registers, looked up with vpermi2w
  alignas(64) uint16_t iq2xs[512];
  uint64_t iq1s[2048];  // each byte 8 * (g + 1)
  uint64_t iq1m[2048];  // each byte 8 * (g + 1) + 2
  IqTables() {
    for (int i = 0; i < 256; ++i) {
      uint32_t code = 0;
      for (int b = 0; b < 8; ++b) {
        const int v = int(ggml::kIq2xxsGrid[i] >> (8 * b)) & 0xFF;
        code |= uint32_t(v == 8 ? 0 : v == 25 ? 1 : 2) << (2 * b);
      }
      iq2xxs_lo[i] = uint8_t(code);
      iq2xxs_hi[i] = uint8_t(code >> 8);
    }
    for (int i = 0; i < 512; ++i) {
      uint32_t code = 0;
      for (int b = 0; b < 8; ++b) {
        const int v = int(ggml::kIq2xsGrid[i] >> (8 * b)) & 0xFF;
        code |= uint32_t(v == 8 ? 0 : v == 25 ? 1 : 2) << (2 * b);
      }
      iq2xs[i] = uint16_t(code);
    }
    for (int i = 0; i < 2048; ++i) {
      uint64_t v = 0;
      for (int b = 0; b < 8; ++b) {
        const int g = int8_t(ggml::kIq1sGrid[i] >> (8 * b));
        v |= uint64_t(8 * (g + 1)) << (8 * b);
      }
      iq1s[i] = v;
      iq1m[i] = v + 0x0202020202020202ull;
    }
  }
};
const IqTables& tables() {
  static const IqTables t;
  return t;
}

// One unit's activations in the grid rows' order: register c, qword g = values 32 g + 8 c .. + 7,
// i.e. qwords c and 4 + c of each 64-value register.
inline void act_rows(const int8_t* q, __m512i out[4]) {
  const __m512i in0 = _mm512_loadu_si512(q), in1 = _mm512_loadu_si512(q + 64);
  const __m512i in2 = _mm512_loadu_si512(q + 128), in3 = _mm512_loadu_si512(q + 192);
  for (int c = 0; c < 4; c += 2) {
    const __m512i idx = _mm512_setr_epi64(c, 4 + c, 8 + c, 12 + c, c + 1, 5 + c, 9 + c, 13 + c);
    const __m512i a = _mm512_permutex2var_epi64(in0, idx, in1);  // [c of 0, 1 | c + 1 of 0, 1]
    const __m512i b = _mm512_permutex2var_epi64(in2, idx, in3);
    out[c] = _mm512_shuffle_i64x2(a, b, 0x44);
    out[c + 1] = _mm512_shuffle_i64x2(a, b, 0xEE);
  }
}

// k * sum(x) of each group g in lane 2 g (lane 2 g + 1 zero): a chain's start.
inline __m512i group_sums_times(const int32_t* sum8, int k) {
  const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sum8));
  return _mm512_cvtepu32_epi64(_mm256_mullo_epi32(s, _mm256_set1_epi32(k)));
}

// The activations' per-32 scales in lanes 2 g and 2 g + 1.
inline __m512 group_scales(const float* d8) {
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  return _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(d8)));
}

// k * sum(x) of each half group (16 values) in lane 2 g: the first halves' in *lo, the second
// halves' in *hi (the starts of the chains of types with a scale per 16 values).
inline void half_sums_times(const int32_t* sum16, int k, __m512i* lo, __m512i* hi) {
  const __m512i s = _mm512_mullo_epi32(_mm512_loadu_si512(sum16), _mm512_set1_epi32(k));
  *lo = _mm512_maskz_mov_epi32(0x5555, s);
  *hi = _mm512_srli_epi64(s, 32);
}

// d * (2 s + 1) / 8 in lanes 2 g and 2 g + 1, s the small integer in qword g (exact in f32:
// an f16 d times at most 5 bits).
inline __m512 odd_scales(__m512i s, float d) {
  const __m512 f = _mm512_cvtepi32_ps(_mm512_shuffle_epi32(s, _MM_PERM_CCAA));
  return _mm512_fmadd_ps(f, _mm512_set1_ps(0.25f * d), _mm512_set1_ps(0.125f * d));
}
// The same with s the field of `mask` bits at `bit` of qword g.
inline __m512 odd_scale_factors(__m512i q, int bit, int mask, float d) {
  return odd_scales(_mm512_and_si512(_mm512_srli_epi64(q, unsigned(bit)), _mm512_set1_epi64(mask)),
                    d);
}

// The sign bytes of rows 0..3 in bytes 0..3 of each qword, from the 7-bit sign indices that
// `fields` (a vpmultishiftqb control) picks out of q: the eighth bit makes the count even.
inline __m512i iq2_sign_bytes(__m512i q, __m512i fields) {
  const __m512i s7 =
      _mm512_and_si512(_mm512_multishift_epi64_epi8(fields, q), _mm512_set1_epi8(0x7F));
  const __m512i parity = _mm512_slli_epi16(_mm512_popcnt_epi8(s7), 7);  // bit 0 to bit 7
  return _mm512_ternarylogic_epi32(s7, parity, _mm512_set1_epi8(char(0x80)),
                                   0xF8);  // s7 | p & 0x80
}

// vpshufbitqmb controls: all 8 bits of sign byte c of each qword.
inline __m512i sign_byte(int c) {
  return _mm512_set1_epi64(0x0706050403020100ll + 0x0808080808080808ll * c);
}

// value + 128 for a 2-bit IQ2 level code in the low bits of a byte (a 64-entry vpermb table).
inline constexpr struct Iq2LevelValues {
  alignas(64) uint8_t v[64];
  constexpr Iq2LevelValues() : v() {
    for (int n = 0; n < 64; ++n) v[n] = uint8_t((n % 4 == 0 ? 8 : n % 4 == 1 ? 25 : 43) + 128);
  }
} kIq2LevelValues;

// The 4 signed row registers of an IQ2 unit from `codes` (word 4 g + c: row c of group g as 2-bit
// levels) and its sign bytes (iq2_sign_bytes): row c's codes spread over the bytes of qword g
// (vpmultishiftqb), turned into value + 128 (vpermb), negated under the row's sign mask.
inline void iq2_signed_rows(__m512i codes, __m512i signs, __m512i w[4]) {
  const __m512i level_value = _mm512_load_si512(kIq2LevelValues.v);
  for (int c = 0; c < 4; ++c) {
    const __m512i spread = _mm512_set1_epi64(0x0E0C0A0806040200ll + 0x1010101010101010ll * c);
    const __m512i g =
        _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(spread, codes), level_value);
    w[c] = _mm512_mask_sub_epi8(g, _mm512_bitshuffle_epi64_mask(signs, sign_byte(c)),
                                _mm512_setzero_si512(), g);
  }
}

inline void prefetch_next_tile(const uint8_t* blk, int64_t stride, int64_t bytes) {
  if (stride > 0)
    for (int64_t line = 0; line < bytes; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(blk + stride + line), _MM_HINT_T0);
}

// 256-entry byte table lookup: 4 registers, the index's bit 7 picking a pair.
inline __m512i lookup256(const __m512i* t, __m512i idx) {
  const __m512i lo = _mm512_permutex2var_epi8(t[0], idx, t[1]);
  const __m512i hi = _mm512_permutex2var_epi8(t[2], idx, t[3]);
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

// IQ2_XXS's 256 rows fit in registers as 2-bit codes (tables().iq2xxs_lo / _hi), so a unit's 32
// rows come from 4 vpermi2b instead of 32 memory reads: word j of `codes` is row j = 4 g + c's
// code, so qword g holds the 4 rows of group g and one vpmultishiftqb spreads row c's 8 codes
// into the bytes of qword g, which a 64-entry vpermb turns into values + 128.
template <int kTokens>
void dot_iq2_xxs(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512i lo_table[4], hi_table[4];
  for (int i = 0; i < 4; ++i) {
    lo_table[i] = _mm512_load_si512(tables().iq2xxs_lo + 64 * i);
    hi_table[i] = _mm512_load_si512(tables().iq2xxs_hi + 64 * i);
  }
  alignas(64) uint8_t bytes[64];
  for (int j = 0; j < 32; ++j) bytes[2 * j] = bytes[2 * j + 1] = uint8_t(8 * (j / 4) + j % 4);
  const __m512i row_index_pairs = _mm512_load_si512(bytes);  // both bytes of word j: index j
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  // per qword g = [4 index bytes | u32: four 7-bit sign indices, 4-bit scale in bits 28..31]
  const __m512i sign_fields = _mm512_set1_epi64(0x35'2E'27'20ll);  // bits 32, 39, 46, 53
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);             // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xr[kTokens][4], start[kTokens];
    __m512 xd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      act_rows(xs[t]->q.data() + c, xr[t]);
      start[t] = group_sums_times(xs[t]->sum.data() + c / 32, -128);
      xd[t] = group_scales(xs[t]->d.data() + c / 32);
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + c / 256 * 66;
      prefetch_next_tile(blk, tile_stride, 66);
      const __m512i q = _mm512_loadu_si512(blk + 2);
      const __m512i signs = iq2_sign_bytes(q, sign_fields);
      const __m512i idx = _mm512_permutexvar_epi8(row_index_pairs, q);
      const __m512i codes = _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, lookup256(lo_table, idx),
                                                   lookup256(hi_table, idx));
      __m512i w[4];
      iq2_signed_rows(codes, signs, w);
      const __m512 f = odd_scale_factors(q, 60, 15, f16_at(blk));
      for (int t = 0; t < kTokens; ++t) {
        __m512i dot = start[t];
        for (int k = 0; k < 4; ++k) dot = _mm512_dpbusd_epi32(dot, w[k], xr[t][k]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(f, xd[t]), acc[r][t]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

// A block of 33..64 bytes as [bytes 0..31 | the last 32 bytes]: byte b sits at b < 32 ? b : b + 64
// - bytes. Two plain loads: a masked 64-byte load of a block streamed from memory ran at 2/3 of the
// speed here (AMD EPYC; masked-off bytes on the next page seem to cost a TLB walk or assist).
inline __m512i load_block(const uint8_t* blk, int bytes) {
  const __m256i head = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk));
  const __m256i tail = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + bytes - 32));
  return _mm512_inserti64x4(_mm512_castsi256_si512(head), tail, 1);
}
inline uint8_t block_byte_at(int b, int bytes) {
  return uint8_t(b < 32 ? b : b + 64 - bytes);
}

template <int kTokens>
void dot_iq1_s(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  const uint64_t* grid = tables().iq1s;
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  // block: f16 d, qs[32] (low 8 index bits), qh u16[8] per group (3 index bits per row, scale in
  // bits 12..14, delta sign in bit 15); gathered to qword g = [qs[4g .. 4g + 3] | qh[g] | -]
  alignas(64) uint8_t gather_bytes[64];
  for (int g = 0; g < 8; ++g)
    for (int b = 0; b < 8; ++b)
      gather_bytes[8 * g + b] = block_byte_at(b < 4 ? 2 + 4 * g + b : 34 + 2 * g + b % 2, 50);
  const __m512i to_groups = _mm512_load_si512(gather_bytes);
  const __m512i low11 = _mm512_set1_epi64(0x7FF);
  __m512i index_of[4];  // byte 0: bits 8c.. (qs), byte 1: bits 32 + 3c.. (qh's 3 bits)
  for (int c = 0; c < 4; ++c) index_of[c] = _mm512_set1_epi64(((32 + 3 * c) << 8) | (8 * c));
  const __m512i delta_bit = _mm512_set1_epi64(int64_t(1) << 47);
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);  // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xr[kTokens][4], plus[kTokens], minus[kTokens];
    __m512 xd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      act_rows(xs[t]->q.data() + c, xr[t]);
      plus[t] = group_sums_times(xs[t]->sum.data() + c / 32, -7);   // delta +1
      minus[t] = group_sums_times(xs[t]->sum.data() + c / 32, -9);  // delta -1
      xd[t] = group_scales(xs[t]->d.data() + c / 32);
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + c / 256 * 50;
      prefetch_next_tile(blk, tile_stride, 50);
      const __m512i q = _mm512_permutexvar_epi8(to_groups, load_block(blk, 50));
      __m512i w[4];
      for (int k = 0; k < 4; ++k) {
        const __m512i idx = _mm512_and_si512(_mm512_multishift_epi64_epi8(index_of[k], q), low11);
        w[k] = _mm512_i64gather_epi64(idx, grid, 8);
      }
      const __mmask8 negative = _mm512_test_epi64_mask(q, delta_bit);
      const __m512 f = odd_scale_factors(q, 44, 7, f16_at(blk));
      for (int t = 0; t < kTokens; ++t) {
        __m512i dot = _mm512_mask_blend_epi64(negative, plus[t], minus[t]);
        for (int k = 0; k < 4; ++k) dot = _mm512_dpbusd_epi32(dot, w[k], xr[t][k]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(f, xd[t]), acc[r][t]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

// Types with a scale per 16 values (rows 0, 1 of a group and rows 2, 3): two chains per unit.
inline void two_chains(const __m512i* w, const __m512i* xr, __m512i start_lo, __m512i start_hi,
                       __m512 f_lo, __m512 f_hi, __m512 xd, __m512& acc) {
  const __m512i lo = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start_lo, w[0], xr[0]), w[1], xr[1]);
  const __m512i hi = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start_hi, w[2], xr[2]), w[3], xr[3]);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_mul_ps(f_lo, xd), acc);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_mul_ps(f_hi, xd), acc);
}

// IQ2_XS: 74-byte block: f16 d, u16 qs[32] (9-bit grid index | 7-bit sign index << 9; qword g
// = rows 0..3 of group g as stored), scales[8] (a nibble per 16 values, low first). The 512
// rows' 2-bit codes fit in 16 registers: 8 vpermi2w and a 3-level blend on index bits 6..8 look
// up a unit's 32 (1.5x the speed of 4 qword gathers here), spread as in dot_iq2_xxs.
template <int kTokens>
void dot_iq2_xs(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512i words[16];
  for (int i = 0; i < 16; ++i) words[i] = _mm512_load_si512(tables().iq2xs + 32 * i);
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  const __m512i sign_fields = _mm512_set1_epi64(0x39'29'19'09ll);  // bits 9, 25, 41, 57
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);             // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xr[kTokens][4], start_lo[kTokens], start_hi[kTokens];
    __m512 xd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      act_rows(xs[t]->q.data() + c, xr[t]);
      half_sums_times(xs[t]->sum16.data() + c / 16, -128, &start_lo[t], &start_hi[t]);
      xd[t] = group_scales(xs[t]->d.data() + c / 32);
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + c / 256 * 74;
      prefetch_next_tile(blk, tile_stride, 74);
      const __m512i q = _mm512_loadu_si512(blk + 2);
      const __m512i signs = iq2_sign_bytes(q, sign_fields);
      // word j of q: row j's 9-bit index (and sign bits); its code from 8 x 64 words
      __m512i part[8];
      for (int i = 0; i < 8; ++i)
        part[i] = _mm512_permutex2var_epi16(words[2 * i], q, words[2 * i + 1]);
      const __mmask32 b6 = _mm512_test_epi16_mask(q, _mm512_set1_epi16(0x40));
      const __mmask32 b7 = _mm512_test_epi16_mask(q, _mm512_set1_epi16(0x80));
      const __mmask32 b8 = _mm512_test_epi16_mask(q, _mm512_set1_epi16(0x100));
      for (int i = 0; i < 4; ++i)
        part[i] = _mm512_mask_blend_epi16(b6, part[2 * i], part[2 * i + 1]);
      for (int i = 0; i < 2; ++i)
        part[i] = _mm512_mask_blend_epi16(b7, part[2 * i], part[2 * i + 1]);
      const __m512i codes = _mm512_mask_blend_epi16(b8, part[0], part[1]);
      __m512i w[4];
      iq2_signed_rows(codes, signs, w);
      const float d = f16_at(blk);
      const __m512i sc =
          _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 66)));
      const __m512 f_lo = odd_scales(_mm512_and_si512(sc, _mm512_set1_epi64(15)), d);
      const __m512 f_hi = odd_scales(_mm512_srli_epi64(sc, 4), d);
      for (int t = 0; t < kTokens; ++t)
        two_chains(w, xr[t], start_lo[t], start_hi[t], f_lo, f_hi, xd[t], acc[r][t]);
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

// IQ1_M: 56-byte block: qs[32], qh[16] (a nibble per row: 3 index bits, delta sign in bit 3),
// scales u16[4] (3 bits per 16 values; d's f16 bits in the four top nibbles). The delta is per
// row, so it goes into the weights: the grid held as 8 (g + 1) + 2 = 8 g + delta + 9 for delta
// +1, less 2 under the row's sign bit; every chain starts at -9 times its 16 values' sum.
template <int kTokens>
void dot_iq1_m(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  const uint64_t* grid = tables().iq1m;
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  // qword g = [qs[4g .. 4g + 3] | qh[2g], qh[2g + 1] | scales word g / 2]
  alignas(64) uint8_t gather_bytes[64];
  for (int g = 0; g < 8; ++g)
    for (int b = 0; b < 8; ++b)
      gather_bytes[8 * g + b] = block_byte_at(b < 4   ? 4 * g + b
                                              : b < 6 ? 32 + 2 * g + b - 4
                                                      : 48 + 2 * (g / 2) + b - 6,
                                              56);
  const __m512i to_groups = _mm512_load_si512(gather_bytes);
  const __m512i low11 = _mm512_set1_epi64(0x7FF), two = _mm512_set1_epi8(2);
  const __m512i seven = _mm512_set1_epi64(7);
  // group g's two 3-bit scales: bits 48 + 6 (g % 2) (+ 3) of its qword
  const __m512i lo_shift = _mm512_setr_epi64(48, 54, 48, 54, 48, 54, 48, 54);
  const __m512i hi_shift = _mm512_add_epi64(lo_shift, _mm512_set1_epi64(3));
  __m512i index_of[4], delta_of[4];
  for (int c = 0; c < 4; ++c) {
    index_of[c] = _mm512_set1_epi64(((32 + 4 * c) << 8) | (8 * c));        // qs byte c, nibble c
    delta_of[c] = _mm512_set1_epi64(0x0101010101010101ll * (35 + 4 * c));  // bit 3 of nibble c
  }
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);  // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xr[kTokens][4], start_lo[kTokens], start_hi[kTokens];
    __m512 xd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      act_rows(xs[t]->q.data() + c, xr[t]);
      half_sums_times(xs[t]->sum16.data() + c / 16, -9, &start_lo[t], &start_hi[t]);
      xd[t] = group_scales(xs[t]->d.data() + c / 32);
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + c / 256 * 56;
      prefetch_next_tile(blk, tile_stride, 56);
      const __m512i q = _mm512_permutexvar_epi8(to_groups, load_block(blk, 56));
      __m512i w[4];
      for (int k = 0; k < 4; ++k) {
        const __m512i idx = _mm512_and_si512(_mm512_multishift_epi64_epi8(index_of[k], q), low11);
        const __m512i g = _mm512_i64gather_epi64(idx, grid, 8);
        w[k] = _mm512_mask_sub_epi8(g, _mm512_bitshuffle_epi64_mask(q, delta_of[k]), g, two);
      }
      uint64_t sw;
      std::memcpy(&sw, blk + 48, 8);
      const float d = _cvtsh_ss(uint16_t(((sw >> 12) & 0xF) | ((sw >> 24) & 0xF0) |
                                         ((sw >> 36) & 0xF00) | ((sw >> 48) & 0xF000)));
      const __m512 f_lo = odd_scales(_mm512_and_si512(_mm512_srlv_epi64(q, lo_shift), seven), d);
      const __m512 f_hi = odd_scales(_mm512_and_si512(_mm512_srlv_epi64(q, hi_shift), seven), d);
      for (int t = 0; t < kTokens; ++t)
        two_chains(w, xr[t], start_lo[t], start_hi[t], f_lo, f_hi, xd[t], acc[r][t]);
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

}  // namespace

bool ggml_iq_dot4_fused(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                        int64_t cols, float* out) {
  switch (t) {
    case DType::iq2_xxs:
      by_tokens(nt, [&](auto n) { dot_iq2_xxs<n()>(rows, xs, cols, out); });
      return true;
    case DType::iq1_s:
      by_tokens(nt, [&](auto n) { dot_iq1_s<n()>(rows, xs, cols, out); });
      return true;
    case DType::iq2_xs:
      by_tokens(nt, [&](auto n) { dot_iq2_xs<n()>(rows, xs, cols, out); });
      return true;
    case DType::iq1_m:
      by_tokens(nt, [&](auto n) { dot_iq1_m<n()>(rows, xs, cols, out); });
      return true;
    default:
      return false;
  }
}

}  // namespace tern::kernels
