// The GGUF-quantised decode kernel (ggml/ggml_decode.h) on AVX-512 VNNI / BW. Each 256-value
// unit of the 4 rows is unpacked into ggml::Unpacked (L1-resident; the unpackers are in
// cpu/ggml_unpack_avx512.h and inline here), then every 64 codes meet 64 int8 activations in
// one vpdpbusd: lane l of chunk k sums 4 products of group g = 4k + l / 4 (16 values per group),
// so one permute of the 16 per-group factors s * d_x gives each lane its scale. The offset
// comes off in integers (the dot starts at -offset * the lane's sum of q, itself a vpdpbusd),
// the mins in f32 once per unit (m * d_x * ActQ8::sum or ::sum16).
// IQ2_XXS, IQ2_XS, IQ1_S and IQ1_M go to cpu/ggml_iq_vnni.cpp instead where the CPU has VBMI and
// BITALG too. Compiled with its own -m flags; ggml_decode.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/by_tokens.h"
#include "kernels/cpu/ggml_unpack_avx512.h"
#include "kernels/ggml/ggml_decode.h"

namespace tern::kernels {
namespace ggml {

UnpackFn unpacker_avx512(DType t) {
  switch (t) {
    case DType::q4_k:
      return unpack_q45_k<false>;
    case DType::q5_k:
      return unpack_q45_k<true>;
    case DType::q6_k:
      return unpack_q6_k;
    case DType::iq4_xs:
      return unpack_iq4_xs;
    case DType::iq4_nl:
      return unpack_iq4_nl;
    case DType::q4_1:
      return unpack_q4x_q5x<20, true, false>;
    case DType::q5_0:
      return unpack_q4x_q5x<22, false, true>;
    case DType::q5_1:
      return unpack_q4x_q5x<24, true, true>;
    case DType::q2_k:
      return unpack_q2_k;
    case DType::q3_k:
      return unpack_q3_k;
    case DType::iq2_xxs:
      return unpack_iq2_xxs;
    case DType::iq2_xs:
      return unpack_iq2_xs;
    case DType::iq2_s:
      return unpack_iq2_s;
    case DType::iq3_xxs:
      return unpack_iq3_xxs;
    case DType::iq3_s:
      return unpack_iq3_s;
    case DType::iq1_s:
      return unpack_iq1_s;
    case DType::iq1_m:
      return unpack_iq1_m;
    default:
      return nullptr;
  }
}

void dequant_row_avx512(DType t, UnpackFn unpack, const uint8_t* row, int64_t col0, int64_t n,
                        float* out) {
  const GgmlTypeKernels* k = ggml_type_kernels(t);
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  const uint8_t* src = row + col0 / be * bb;
  const __m512i off = _mm512_set1_epi32(k->offset);
  Unpacked p;
  for (int64_t i = 0; i < n; i += 256) {
    const int n32 = int(std::min<int64_t>(256, n - i) / 32);
    unpack(src, n32, &p);
    for (int g = 0; g < 2 * n32; ++g) {
      const __m512i u =
          _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p.u + 16 * g)));
      const __m512 q = _mm512_cvtepi32_ps(_mm512_sub_epi32(u, off));
      // s * q + m as two roundings, as the scalar expand_unpacked computes it
      const __m512 sq = _mm512_mul_ps(_mm512_set1_ps(p.s[g]), q);
      _mm512_storeu_ps(out + i + 16 * g, _mm512_add_ps(sq, _mm512_set1_ps(p.m[g])));
    }
    src += n32 * 32 / be * bb;
  }
}

}  // namespace ggml

namespace {

inline float hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Lane l of a 64-byte chunk k belongs to group 4k + l / 4.
inline __m512i group_index(int k) {
  return _mm512_add_epi32(_mm512_set1_epi32(4 * k),
                          _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
}

// The generic kernel, for every type through its unpacker. kMins: the type has mins per 32
// values (Q4_1, Q5_1; Q2_K's per-16 ones have dot_q2_k), which meet ActQ8::sum once per unit.
// shift: log2 of the type's offset (every offset is 0 or a power of two); the offset comes
// off through the vpdpbusd's start value.
// kUnpack: the unpacker, as a template argument so it inlines (a call per row and unit makes
// the compiler spill every accumulator around it); null for the scalar unpackers, which are
// called through `unpack`.
template <ggml::UnpackFn kUnpack, bool kMins, int kTokens>
void dot_units(ggml::UnpackFn unpack, int shift, int64_t be, int64_t bb, const uint8_t* const* rows,
               const ActQ8* const* xs, int64_t cols, float* out) {
  __m512 acc[4][kTokens];
  __m256 acc_min[4][kTokens];
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < kTokens; ++t) {
      acc[r][t] = _mm512_setzero_ps();
      acc_min[r][t] = _mm256_setzero_ps();
    }
  ggml::Unpacked p[4];
  const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  const int64_t unit_bytes = 256 / be * bb;
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);  // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    const int n32 = int(std::min<int64_t>(256, cols - c) / 32);
    for (int r = 0; r < 4; ++r) {
      const uint8_t* src = rows[r] + c / be * bb;
      // Without this the loads stall on memory latency (perf: the unpackers' first loads): 4
      // interleaved row streams of a few hundred bytes each defeat the hardware prefetcher.
      // Ask for the same unit of the row 4 below, which the next tile (usually this thread's
      // next) reads; rows are consecutive in memory, so that is a steady distance ahead.
      if (tile_stride > 0)
        for (int64_t line = 0; line < unit_bytes; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(src + tile_stride + line), _MM_HINT_T0);
      if constexpr (kUnpack != nullptr)
        kUnpack(src, n32, &p[r]);
      else
        unpack(src, n32, &p[r]);
      if (n32 < 8) {  // groups past the row's end: zero factors (their codes meet zeros)
        std::fill(p[r].s + 2 * n32, p[r].s + 16, 0.0f);
        std::fill(p[r].m + 2 * n32, p[r].m + 16, 0.0f);
      }
    }
    const int chunks = (n32 + 1) / 2;
    const __mmask64 last = n32 % 2 ? __mmask64(0xFFFFFFFFull) : ~__mmask64(0);
    const __mmask8 blocks = __mmask8((1u << n32) - 1);
    for (int t = 0; t < kTokens; ++t) {
      const ActQ8& x = *xs[t];
      const __m256 xd8 = _mm256_maskz_loadu_ps(blocks, x.d.data() + c / 32);
      const __m512 xd16 = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(xd8));
      __m512 sx[4];
      for (int r = 0; r < 4; ++r) sx[r] = _mm512_mul_ps(_mm512_load_ps(p[r].s), xd16);
      if (kMins) {  // sum over the unit's blocks of m * d_x * sum(q)
        const __m256 xsum = _mm256_mul_ps(
            xd8, _mm256_cvtepi32_ps(_mm256_maskz_loadu_epi32(blocks, x.sum.data() + c / 32)));
        for (int r = 0; r < 4; ++r) {
          const __m256 m8 =
              _mm512_castps512_ps256(_mm512_permutexvar_ps(evens, _mm512_load_ps(p[r].m)));
          acc_min[r][t] = _mm256_fmadd_ps(m8, xsum, acc_min[r][t]);
        }
      }
      for (int k = 0; k < chunks; ++k) {
        const __mmask64 m = k == chunks - 1 ? last : ~__mmask64(0);
        const __m512i xv = _mm512_maskz_loadu_epi8(m, x.q.data() + c + 64 * k);
        const __m512i gi =
            _mm512_add_epi32(_mm512_set1_epi32(4 * k),
                             _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
        __m512i start = zero;
        if (shift > 0) {
          const __m512i lane_sum = _mm512_dpbusd_epi32(zero, ones, xv);
          start = _mm512_sub_epi32(zero, _mm512_sll_epi32(lane_sum, _mm_cvtsi32_si128(shift)));
        }
        for (int r = 0; r < 4; ++r) {
          const __m512i u = _mm512_load_si512(p[r].u + 64 * k);
          const __m512i dot = _mm512_dpbusd_epi32(start, u, xv);
          acc[r][t] =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(gi, sx[r]), acc[r][t]);
        }
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r)
      out[4 * t + r] = hsum(acc[r][t]) + (kMins ? hsum8(acc_min[r][t]) : 0.0f);
}

// Q4_K / Q5_K without the Unpacked round trip: the nibbles of 64 qs bytes are values [0, 32) and
// [64, 96) of a 128-value half (low) and [32, 64), [96, 128) (high), so the activations are
// regrouped that way once per token and unit (shared by the 4 rows) and the weights never
// move. Lanes 0..7 of a dot then belong to one group of 32 and lanes 8..15 to the group two
// further on; their factors d * scale * d_x come from one permute of the unit's 8. Same sums
// as dot_units (the integer dot of each group is exact), in a different f32 order. Q5_K
// (kFive) is the same with each value's fifth bit, bit (value / 32) of qh[value % 32], added as
// 16 under a byte mask.
template <bool kFive, int kTokens>
void dot_q45_k(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  constexpr int64_t kBlockBytes = kFive ? 176 : 144, kQs = kFive ? 48 : 16;
  __m512 acc[4][kTokens];
  __m256 acc_min[4][kTokens];
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < kTokens; ++t) {
      acc[r][t] = _mm512_setzero_ps();
      acc_min[r][t] = _mm256_setzero_ps();
    }
  const __m512i zero = _mm512_setzero_si512(), low4 = _mm512_set1_epi8(0x0F);
  // lane factors: groups (0, 2), (1, 3), (4, 6), (5, 7) of the 8 per-32 factors
  const __m512i pick[4] = {_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                           _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
                           _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6),
                           _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7)};
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);  // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xg[kTokens][4];  // per token: the activations in the nibbles' order
    __m256 xd8[kTokens], xsum8[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      const int8_t* xq = xs[t]->q.data() + c;
      for (int h = 0; h < 2; ++h) {
        const __m512i a = _mm512_loadu_si512(xq + 128 * h);
        const __m512i b = _mm512_loadu_si512(xq + 128 * h + 64);
        xg[t][2 * h] = _mm512_shuffle_i64x2(a, b, 0x44);
        xg[t][2 * h + 1] = _mm512_shuffle_i64x2(a, b, 0xEE);
      }
      xd8[t] = _mm256_loadu_ps(xs[t]->d.data() + c / 32);
      xsum8[t] =
          _mm256_mul_ps(xd8[t], _mm256_cvtepi32_ps(_mm256_loadu_si256(
                                    reinterpret_cast<const __m256i*>(xs[t]->sum.data() + c / 32))));
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + c / 256 * kBlockBytes;
      if (tile_stride > 0)
        for (int64_t line = 0; line < kBlockBytes; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(blk + tile_stride + line), _MM_HINT_T0);
      const __m128i sm = ggml::k_scales_mins(blk + 4);
      const __m256 s8 = _mm256_mul_ps(_mm256_set1_ps(ggml::f16_at(blk)),
                                      _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
      const __m256 m8 =
          _mm256_mul_ps(_mm256_set1_ps(ggml::f16_at(blk + 2)),
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
      __m512i w[4];
      for (int h = 0; h < 2; ++h) {
        const __m512i q = _mm512_loadu_si512(blk + kQs + 64 * h);
        w[2 * h] = _mm512_and_si512(q, low4);
        w[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
      }
      if constexpr (kFive) {
        // w[2h] holds values 128h + l and 128h + 64 + l (l < 32), w[2h + 1] those + 32: their
        // fifth bits are bits 4h (+1) and 4h + 2 (+1) of qh[l].
        const __m512i qh =
            _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
        const __m512i sixteen = _mm512_set1_epi8(16);
        for (int k = 0; k < 4; ++k) {
          const int lo_bit = 4 * (k / 2) + k % 2;
          const __m512i bit =
              _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(char(1 << lo_bit))),
                                 _mm256_set1_epi8(char(1 << (lo_bit + 2))), 1);
          w[k] = _mm512_mask_add_epi8(w[k], _mm512_test_epi8_mask(qh, bit), w[k], sixteen);
        }
      }
      for (int t = 0; t < kTokens; ++t) {
        const __m512 f = _mm512_castps256_ps512(_mm256_mul_ps(s8, xd8[t]));
        for (int k = 0; k < 4; ++k)
          acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, w[k], xg[t][k])),
                                      _mm512_permutexvar_ps(pick[k], f), acc[r][t]);
        acc_min[r][t] = _mm256_fmadd_ps(m8, xsum8[t], acc_min[r][t]);  // w = ... - dmin * m
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]) - hsum8(acc_min[r][t]);
}

// Q6_K without the Unpacked round trip: q6_k_codes gives the codes in value order, so
// each row's 4 code registers and 16 scales stay in registers and meet the activations
// directly; the offset of 32 comes off through the dot's start value as in dot_units.
template <int kTokens>
void dot_q6_k(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512 acc[4][kTokens];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);  // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xv[kTokens][4], start[kTokens][4];
    __m512 xd16[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      for (int k = 0; k < 4; ++k) {
        xv[t][k] = _mm512_loadu_si512(xs[t]->q.data() + c + 64 * k);
        start[t][k] = _mm512_sub_epi32(
            zero, _mm512_slli_epi32(_mm512_dpbusd_epi32(zero, ones, xv[t][k]), 5));  // -32 sum
      }
      xd16[t] = _mm512_permutexvar_ps(
          dup, _mm512_castps256_ps512(_mm256_loadu_ps(xs[t]->d.data() + c / 32)));
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* b = rows[r] + c / 256 * 210;
      if (tile_stride > 0)
        for (int64_t line = 0; line < 210; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(b + tile_stride + line), _MM_HINT_T0);
      const __m512 s = ggml::q6_k_scales(b);
      __m512i u[4];
      ggml::q6_k_codes(b, u);
      for (int t = 0; t < kTokens; ++t) {
        const __m512 sx = _mm512_mul_ps(s, xd16[t]);
        for (int k = 0; k < 4; ++k) {
          const __m512i gi = _mm512_add_epi32(_mm512_set1_epi32(4 * k), quarter);
          acc[r][t] =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start[t][k], u[k], xv[t][k])),
                              _mm512_permutexvar_ps(gi, sx), acc[r][t]);
        }
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]);
}

// Q2_K without the Unpacked round trip (codes in value order, as Q6_K): 2-bit codes shifted
// out of the broadcast qs bytes in registers; per-16 mins against ActQ8::sum16 once per unit.
template <int kTokens>
void dot_q2_k(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  __m512 acc[4][kTokens], acc_min[4][kTokens];
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < kTokens; ++t) acc[r][t] = acc_min[r][t] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const int64_t tile_stride = 4 * (rows[1] - rows[0]);  // 0 for a one-row tile
  for (int64_t c = 0; c < cols; c += 256) {
    __m512i xv[kTokens][4];
    __m512 xd16[kTokens], xsum16[kTokens];
    for (int t = 0; t < kTokens; ++t) {
      for (int k = 0; k < 4; ++k) xv[t][k] = _mm512_loadu_si512(xs[t]->q.data() + c + 64 * k);
      xd16[t] = _mm512_permutexvar_ps(
          dup, _mm512_castps256_ps512(_mm256_loadu_ps(xs[t]->d.data() + c / 32)));
      xsum16[t] = _mm512_mul_ps(
          xd16[t], _mm512_cvtepi32_ps(_mm512_loadu_si512(xs[t]->sum16.data() + c / 16)));
    }
    for (int r = 0; r < 4; ++r) {
      const uint8_t* b = rows[r] + c / 256 * 84;
      if (tile_stride > 0)
        for (int64_t line = 0; line < 84; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(b + tile_stride + line), _MM_HINT_T0);
      __m512 s, m;
      ggml::q2_k_scales_mins(b, &s, &m);
      __m512i u[4];
      ggml::two_bit_codes(b + 16, u);
      for (int t = 0; t < kTokens; ++t) {
        const __m512 sx = _mm512_mul_ps(s, xd16[t]);
        for (int k = 0; k < 4; ++k) {
          const __m512i gi = _mm512_add_epi32(_mm512_set1_epi32(4 * k), quarter);
          acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, u[k], xv[t][k])),
                                      _mm512_permutexvar_ps(gi, sx), acc[r][t]);
        }
        acc_min[r][t] = _mm512_fmadd_ps(m, xsum16[t], acc_min[r][t]);  // w = ... - dmin * m
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[r][t]) - hsum(acc_min[r][t]);
}

struct DotArgs {
  const uint8_t* const* rows;
  const ActQ8* const* xs;
  int nt;
  int64_t cols;
  float* out;
};

template <ggml::UnpackFn kUnpack, bool kMins>
void generic(const DotArgs& a, ggml::UnpackFn unpack, int shift, int64_t be, int64_t bb) {
  by_tokens(a.nt, [&](auto n) {
    dot_units<kUnpack, kMins, n()>(unpack, shift, be, bb, a.rows, a.xs, a.cols, a.out);
  });
}

}  // namespace

// cpu/ggml_iq_vnni.cpp: false for a type it does not take.
bool ggml_iq_dot4_fused(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                        int64_t cols, float* out);

void ggml_dot4_vnni(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                    int64_t cols, float* out) {
  using namespace ggml;
  const GgmlTypeKernels* k = ggml_type_kernels(t);
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  TERN_CHECK((k->offset & (k->offset - 1)) == 0);  // 0 or a power of two: a shift
  const int shift = k->offset ? __builtin_ctz(k->offset) : 0;
  const UnpackFn u = k->unpack;
  const DotArgs a{rows, xs, nt, cols, out};
  if (ggml_iq_fused_supported() && ggml_iq_dot4_fused(t, rows, xs, nt, cols, out)) return;
  // The fused kernels (no Unpacked round trip) where there is one; cols are whole blocks.
  switch (t) {
    case DType::q4_k:
      return by_tokens(nt, [&](auto n) { dot_q45_k<false, n()>(rows, xs, cols, out); });
    case DType::q5_k:
      return by_tokens(nt, [&](auto n) { dot_q45_k<true, n()>(rows, xs, cols, out); });
    case DType::q6_k:
      return by_tokens(nt, [&](auto n) { dot_q6_k<n()>(rows, xs, cols, out); });
    case DType::q2_k:
      return by_tokens(nt, [&](auto n) { dot_q2_k<n()>(rows, xs, cols, out); });
    case DType::iq4_xs:
      return generic<unpack_iq4_xs, false>(a, u, shift, be, bb);
    case DType::iq4_nl:
      return generic<unpack_iq4_nl, false>(a, u, shift, be, bb);
    case DType::q4_1:
      return generic<unpack_q4x_q5x<20, true, false>, true>(a, u, shift, be, bb);
    case DType::q5_0:
      return generic<unpack_q4x_q5x<22, false, true>, false>(a, u, shift, be, bb);
    case DType::q5_1:
      return generic<unpack_q4x_q5x<24, true, true>, true>(a, u, shift, be, bb);
    case DType::q3_k:
      return generic<unpack_q3_k, false>(a, u, shift, be, bb);
    case DType::iq2_xxs:
      return generic<unpack_iq2_xxs, false>(a, u, shift, be, bb);
    case DType::iq2_xs:
      return generic<unpack_iq2_xs, false>(a, u, shift, be, bb);
    case DType::iq2_s:
      return generic<unpack_iq2_s, false>(a, u, shift, be, bb);
    case DType::iq3_xxs:
      return generic<unpack_iq3_xxs, false>(a, u, shift, be, bb);
    case DType::iq3_s:
      return generic<unpack_iq3_s, false>(a, u, shift, be, bb);
    case DType::iq1_s:
      return generic<unpack_iq1_s, false>(a, u, shift, be, bb);
    case DType::iq1_m:
      return generic<unpack_iq1_m, false>(a, u, shift, be, bb);
    default:  // a type without a SIMD unpacker: the scalar one, called through `u`
      if (k->has_mins) return generic<nullptr, true>(a, u, shift, be, bb);
      return generic<nullptr, false>(a, u, shift, be, bb);
  }
}

}  // namespace tern::kernels
