// Packed Q2_K..Q6_K tiles (packed_k_tiles.h) on AVX-512 VNNI. In register order every 32-bit
// lane l of a register of 64 codes holds 4 values of the 16-value run l (Q4_K / Q5_K sub-block
// l / 2, Q2_K / Q3_K / Q6_K sub-block l), and ActQ8::qk holds the activations in the same order,
// so a row's 4 vpdpbusd per unit chain into one integer accumulator of per-run sums: one
// conversion and one FMA per row and unit apply the scales (d * scale * d_x per lane), where the
// file's order needs a conversion, a lane permute and an FMA per register. The 4 rows' heads
// arrive together (Q4_K / Q5_K's scales and mins unpacked one 128-bit lane per row); mins meet
// the activations' block sums in f32 (Q4_K / Q5_K once per unit, two rows per register; Q2_K per
// lane), offsets come off through the dot's start value (Q3_K, Q6_K). Integer sums per run are
// exact, so this differs from the reference only in the f32 order.
// Compiled with its own -m flags; ggml_decode.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/by_tokens.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/packed_k_tiles.h"

namespace tern::kernels {

namespace {

using namespace k_tile;

// Head bytes spread one per 32-bit lane, zero-extended (no VBMI: a dword permute brings the row's
// 128-bit lane to every lane, then vpshufb picks one byte per dword and zeroes the other 3).
// Row r's sub-block scales, each twice: lane l <- byte l / 2 of row r's lane.
inline __m512i row_lanes(int r) {
  return _mm512_add_epi32(_mm512_set1_epi32(4 * r),
                          _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3));
}
inline __m512i scale_bytes() {
  alignas(64) int8_t idx[64];
  for (int l = 0; l < 16; ++l) {
    idx[4 * l] = int8_t(l / 2);
    idx[4 * l + 1] = idx[4 * l + 2] = idx[4 * l + 3] = -128;
  }
  return _mm512_load_si512(idx);
}
// Mins of rows 2p (lanes 0-7) and 2p + 1 (lanes 8-15): lane l <- byte 8 + l % 8 of its row.
inline __m512i pair_lanes(int p) {
  return _mm512_setr_epi32(8 * p, 8 * p + 1, 8 * p + 2, 8 * p + 3, 8 * p, 8 * p + 1, 8 * p + 2,
                           8 * p + 3, 8 * p + 4, 8 * p + 5, 8 * p + 6, 8 * p + 7, 8 * p + 4,
                           8 * p + 5, 8 * p + 6, 8 * p + 7);
}
inline __m512i min_bytes() {
  alignas(64) int8_t idx[64];
  for (int l = 0; l < 16; ++l) {
    idx[4 * l] = int8_t(8 + l % 8);
    idx[4 * l + 1] = idx[4 * l + 2] = idx[4 * l + 3] = -128;
  }
  return _mm512_load_si512(idx);
}

// One token's share of a unit: its codes in register order (xk) and d_x per lane (lane l belongs
// to block l / 2).
inline __m512 unit_activations(const ActQ8& x, int64_t c, __m512i xk[4]) {
  for (int k = 0; k < 4; ++k) xk[k] = _mm512_loadu_si512(x.qk.data() + c + 64 * k);
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  return _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(x.d.data() + c / 32)));
}

// A row's 4 code registers against a token's: the per-run integer sums, from `start`.
inline __m512i run_sums(__m512i start, const __m512i w[4], const __m512i xk[4]) {
  return _mm512_dpbusd_epi32(
      _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, w[0], xk[0]), w[1], xk[1]),
                          w[2], xk[2]),
      w[3], xk[3]);
}

// The 4 rows' 12 scale bytes (dwords 1..3 of each 128-bit lane, after d and dmin) unpacked to
// bytes [scale 0..7, min 0..7] per lane, ggml's 6-bit packing: scales 0-3 and mins 0-3 are the
// low 6 bits of bytes 0-3 and 4-7; scales / mins 4-7 take their low 4 bits from bytes 8-11 (low
// / high nibble) and their top 2 from the top bits of bytes 0-3 / 4-7.
inline __m512i heads_scales_mins(__m512i head) {
  const __m512i p = _mm512_shuffle_epi32(head, _MM_PERM_ENUM(0xED));  // [w0, w2, w1, w2]
  const __m512i q = _mm512_shuffle_epi32(head, _MM_PERM_ENUM(0xA5));  // [w0, w0, w1, w1]
  const __m512i low = _mm512_and_si512(
      _mm512_srlv_epi32(p, _mm512_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4)),
      _mm512_setr_epi32(0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F,
                        0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F,
                        0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F));
  const __m512i top = _mm512_and_si512(
      _mm512_srli_epi32(q, 2),
      _mm512_setr_epi32(0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030,
                        0, 0x30303030, 0, 0x30303030, 0, 0x30303030));
  return _mm512_or_si512(low, top);
}

// kFive: Q5_K, whose fifth bits arrive as one 64-bit mask per register and are added as 16.
template <bool kFive, int kTokens>
void dot_q45_k_packed(const uint8_t* tile, const ActQ8* const* xs, int64_t cols, float* out) {
  constexpr int64_t kUnit = kFive ? kQ5kUnit : kQ4kUnit, kRowCodes = kFive ? 160 : 128;
  __m512 acc[4][kTokens], acc_min[2][kTokens];
  for (int t = 0; t < kTokens; ++t) {
    for (int r = 0; r < 4; ++r) acc[r][t] = _mm512_setzero_ps();
    for (int p = 0; p < 2; ++p) acc_min[p][t] = _mm512_setzero_ps();
  }
  const __m512i zero = _mm512_setzero_si512(), low4 = _mm512_set1_epi8(0x0F);
  const __m512i heads_f16 = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i sc_bytes = scale_bytes(), mn_bytes = min_bytes();
  const __m512i rows[4] = {row_lanes(0), row_lanes(1), row_lanes(2), row_lanes(3)};
  const __m512i pairs[2] = {pair_lanes(0), pair_lanes(1)};
  const __m512i dmin_pair[2] = {_mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
                                _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7)};
  for (int64_t c = 0; c < cols; c += 256) {
    const uint8_t* unit = tile + c / 256 * kUnit;
    // Per token: the regrouped codes, d_x per lane (sub-block l / 2) and d_x * sum per block
    // (twice: one copy per row of a min pair).
    __m512i xk[kTokens][4];
    __m512 xd[kTokens], xsum[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      xd[t] = unit_activations(*xs[t], c, xk[t]);
      const __m256 d8 = _mm256_loadu_ps(xs[t]->d.data() + c / 32);
      const __m256 s8 =
          _mm256_mul_ps(d8, _mm256_cvtepi32_ps(_mm256_loadu_si256(
                                reinterpret_cast<const __m256i*>(xs[t]->sum.data() + c / 32))));
      xsum[t] = _mm512_insertf32x8(_mm512_castps256_ps512(s8), s8, 1);
    }
    const __m512i head = _mm512_loadu_si512(unit);
    const __m512i sm = heads_scales_mins(head);
    // [d0, dmin0, d1, dmin1, ..., d3, dmin3] in lanes 0..7
    const __m512 dd = _mm512_castps256_ps512(
        _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(heads_f16, head))));
    for (int p = 0; p < 2; ++p) {
      const __m512 fm = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_shuffle_epi8(_mm512_permutexvar_epi32(pairs[p], sm), mn_bytes)),
          _mm512_permutexvar_ps(dmin_pair[p], dd));
      for (int t = 0; t < kTokens; ++t) acc_min[p][t] = _mm512_fmadd_ps(fm, xsum[t], acc_min[p][t]);
    }
    for (int r = 0; r < 4; ++r) {
      const __m512 fs = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_shuffle_epi8(_mm512_permutexvar_epi32(rows[r], sm), sc_bytes)),
          _mm512_permutexvar_ps(_mm512_set1_epi32(2 * r), dd));
      const uint8_t* q = unit + kQ4kCodes + kRowCodes * r;
      __m512i w[4];
      for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_loadu_si512(q + 64 * h);
        w[2 * h] = _mm512_and_si512(v, low4);
        w[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
      if constexpr (kFive)
        for (int k = 0; k < 4; ++k) {
          uint64_t bits;
          std::memcpy(&bits, q + 128 + 8 * k, 8);
          w[k] = _mm512_mask_add_epi8(w[k], _cvtu64_mask64(bits), w[k], _mm512_set1_epi8(16));
        }
      for (int t = 0; t < kTokens; ++t) {
        const __m512i g = run_sums(zero, w, xk[t]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(g), _mm512_mul_ps(fs, xd[t]), acc[r][t]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) {
      const __m512 m = acc_min[r / 2][t];
      const __m256 half = r % 2 ? _mm512_extractf32x8_ps(m, 1) : _mm512_castps512_ps256(m);
      out[4 * t + r] = hsum(acc[r][t]) - hsum(_mm512_zextps256_ps512(half));
    }
}

// Q2_K: per 16-value run a 4-bit scale (low nibble) and min (high nibble) of d and dmin, so lane
// l's factor is d * scale[l] * d_x and its min term dmin * min[l] * d_x * sum16[l], both per
// lane; the codes are one register's 2-bit fields.
template <int kTokens>
void dot_q2_k_packed(const uint8_t* tile, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512(), two = _mm512_set1_epi8(3);
  const __m512i nib = _mm512_set1_epi32(15);
  for (int64_t c = 0; c < cols; c += 256) {
    const uint8_t* unit = tile + c / 256 * kQ2kUnit;
    __m512i xk[kTokens][4];
    __m512 xd[kTokens], xsum[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      xd[t] = unit_activations(*xs[t], c, xk[t]);
      xsum[t] = _mm512_mul_ps(xd[t],
                              _mm512_cvtepi32_ps(_mm512_loadu_si512(xs[t]->sum16.data() + c / 16)));
    }
    // [d0, dmin0, d1, dmin1, ..., d3, dmin3]
    const __m512 dd = _mm512_castps256_ps512(
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + kQ2kD))));
    for (int r = 0; r < 4; ++r) {
      const __m512i sm =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + 16 * r)));
      const __m512 fs = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(sm, nib)),
                                      _mm512_permutexvar_ps(_mm512_set1_epi32(2 * r), dd));
      const __m512 fm = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(sm, 4)),
                                      _mm512_permutexvar_ps(_mm512_set1_epi32(2 * r + 1), dd));
      const __m512i low = _mm512_loadu_si512(unit + kQ2kCodes + 64 * r);
      __m512i w[4];
      for (int k = 0; k < 4; ++k)
        w[k] = _mm512_and_si512(k ? _mm512_srli_epi16(low, 2 * k) : low, two);
      for (int t = 0; t < kTokens; ++t) {
        const __m512i g = run_sums(zero, w, xk[t]);
        acc[r][t] = _mm512_fnmadd_ps(
            fm, xsum[t],
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(g), _mm512_mul_ps(fs, xd[t]), acc[r][t]));
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

// Q3_K: 16 six-bit scales per row (stored - 32), their low nibbles in bytes 0-7 (nibble g / 8 of
// byte g % 8) and top 2 bits in bytes 8-11 (bits 2 (g / 4) of byte 8 + g % 4), decoded into lane g
// with one byte shuffle and per-lane shifts; codes are the low 2 bits from one register plus
// the third bit as 4 under a 64-bit mask; the offset of 4 comes off through the start value.
template <int kTokens>
void dot_q3_k_packed(const uint8_t* tile, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  const __m512i two = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
  alignas(64) int8_t pick[64];
  alignas(64) int32_t low_shift[16], top_shift[16];
  for (int g = 0; g < 16; ++g) {
    pick[4 * g] = int8_t(g % 8);
    pick[4 * g + 1] = int8_t(8 + g % 4);
    pick[4 * g + 2] = pick[4 * g + 3] = -128;
    low_shift[g] = 4 * (g / 8);
    top_shift[g] = 8 + 2 * (g / 4);
  }
  const __m512i scale_bytes = _mm512_load_si512(pick);
  const __m512i lo_sh = _mm512_load_si512(low_shift), hi_sh = _mm512_load_si512(top_shift);
  const __m512i nib = _mm512_set1_epi32(15), top2 = _mm512_set1_epi32(3);
  const __m512i bias = _mm512_set1_epi32(32);
  for (int64_t c = 0; c < cols; c += 256) {
    const uint8_t* unit = tile + c / 256 * kQ3kUnit;
    __m512i xk[kTokens][4], start[kTokens];
    __m512 xd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      xd[t] = unit_activations(*xs[t], c, xk[t]);
      start[t] =
          _mm512_sub_epi32(_mm512_setzero_si512(),
                           _mm512_slli_epi32(_mm512_loadu_si512(xs[t]->sum16.data() + c / 16), 2));
    }
    const __m512 d4 = _mm512_castps128_ps512(
        _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(unit + kQ3kD))));
    for (int r = 0; r < 4; ++r) {
      const __m512i v = _mm512_shuffle_epi8(
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + 12 * r))),
          scale_bytes);
      const __m512i scale = _mm512_sub_epi32(
          _mm512_or_si512(
              _mm512_and_si512(_mm512_srlv_epi32(v, lo_sh), nib),
              _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(v, hi_sh), top2), 4)),
          bias);
      const __m512 fs =
          _mm512_mul_ps(_mm512_cvtepi32_ps(scale), _mm512_permutexvar_ps(_mm512_set1_epi32(r), d4));
      const uint8_t* q = unit + kQ3kCodes + 96 * r;
      const __m512i low = _mm512_loadu_si512(q);
      __m512i w[4];
      for (int k = 0; k < 4; ++k) {
        uint64_t bits;
        std::memcpy(&bits, q + 64 + 8 * k, 8);
        const __m512i l2 = _mm512_and_si512(k ? _mm512_srli_epi16(low, 2 * k) : low, two);
        w[k] = _mm512_mask_add_epi8(l2, _cvtu64_mask64(bits), l2, four);
      }
      for (int t = 0; t < kTokens; ++t) {
        const __m512i g = run_sums(start[t], w, xk[t]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(g), _mm512_mul_ps(fs, xd[t]), acc[r][t]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

// Q6_K: 16 int8 scales per row, one per 16-value run, so lane l's factor is d * scale[l] * d_x
// of run l's block. The codes (0..63) come out of the low nibbles and the 2-bit tops in
// registers; the offset of 32 comes off through the dot's start value, -32 * ActQ8::sum16.
template <int kTokens>
void dot_q6_k_packed(const uint8_t* tile, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512(), low4 = _mm512_set1_epi8(0x0F);
  const __m512i top = _mm512_set1_epi8(0x30);
  constexpr int kOrTopBits = 0xF8;  // ternary logic: a | (b & c)
  for (int64_t c = 0; c < cols; c += 256) {
    const uint8_t* unit = tile + c / 256 * kQ6kUnit;
    __m512i xk[kTokens][4], start[kTokens];
    __m512 xd[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      xd[t] = unit_activations(*xs[t], c, xk[t]);
      start[t] = _mm512_sub_epi32(
          zero, _mm512_slli_epi32(_mm512_loadu_si512(xs[t]->sum16.data() + c / 16), 5));
    }
    const __m512 d4 = _mm512_castps128_ps512(
        _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(unit + kQ6kD))));
    for (int r = 0; r < 4; ++r) {
      const __m512 fs = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                          reinterpret_cast<const __m128i*>(unit + 16 * r)))),
                                      _mm512_permutexvar_ps(_mm512_set1_epi32(r), d4));
      const uint8_t* q = unit + kQ6kCodes + 192 * r;
      const __m512i l0 = _mm512_loadu_si512(q), l1 = _mm512_loadu_si512(q + 64);
      const __m512i h = _mm512_loadu_si512(q + 128);
      const __m512i w[4] = {
          _mm512_ternarylogic_epi32(_mm512_and_si512(l0, low4), _mm512_slli_epi16(h, 4), top,
                                    kOrTopBits),
          _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l0, 4), low4),
                                    _mm512_slli_epi16(h, 2), top, kOrTopBits),
          _mm512_ternarylogic_epi32(_mm512_and_si512(l1, low4), h, top, kOrTopBits),
          _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l1, 4), low4),
                                    _mm512_srli_epi16(h, 2), top, kOrTopBits)};
      for (int t = 0; t < kTokens; ++t) {
        const __m512i g = run_sums(start[t], w, xk[t]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(g), _mm512_mul_ps(fs, xd[t]), acc[r][t]);
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

}  // namespace

void ggml_packed_dot4_vnni(DType t, const uint8_t* tile, const ActQ8* const* xs, int nt,
                           int64_t cols, float* out) {
  by_tokens(nt, [&](auto n) {
    if (t == DType::q6_k)
      dot_q6_k_packed<n()>(tile, xs, cols, out);
    else if (t == DType::q3_k)
      dot_q3_k_packed<n()>(tile, xs, cols, out);
    else if (t == DType::q2_k)
      dot_q2_k_packed<n()>(tile, xs, cols, out);
    else if (t == DType::q5_k)
      dot_q45_k_packed<true, n()>(tile, xs, cols, out);
    else
      dot_q45_k_packed<false, n()>(tile, xs, cols, out);
  });
}

}  // namespace tern::kernels
