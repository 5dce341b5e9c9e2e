// The i-quants (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M: the 1.5-3.4-bit types of
// the dynamic DeepSeek-R1 mixes) on AVX2, for CPUs without AVX-512. Without it they went through
// scalar f32 dequantisation there and ran ~15x behind llama.cpp.
//
// Per group of 32 values and weight row the group's codebook rows are looked up (4 rows of 8
// or 8 of 4, one scalar load each) into one register of weights, with a second register that
// carries their signs: for IQ2 / IQ3 the weights are the grid's magnitudes (all positive) and the
// signs are bytes +1 / -1 from a table indexed by the sign bits; for IQ1 the weight is 8 * grid
// + delta (delta = +-1, the format's +-1/8 times 8) and it carries its own sign. Each token's
// activations take the sign (vpsignb), meet the magnitudes in vpmaddubsw (at most 2 * 62 * 127
// per 16 bits) and the group's integer scale (2 s + 1, or 1 + 2 s) in vpmaddwd: an exact integer
// sum per 32 values, then scaled once in f32 by the block's d, the format's constant factor and
// the activations' block scale. Two groups share one hadd and one f32 multiply-add.
// Same integer sums as the scalar reference (ggml_dot4_ref), f32 rounding in a different order.
// The same group decoding also gives AVX2 unpackers (ggml::unpacker_avx2: the scalar unpackers'
// bytes and scale bits), which the int8 GEMM's panel packer uses for prefill.
// Compiled with -mavx2 -mfma -mf16c; ggml_decode.cpp calls it only when CPUID reports AVX2.
#include <immintrin.h>

#include <array>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/avx2_helpers.h"
#include "kernels/cpu/by_tokens.h"
#include "kernels/cpu/tile_prefetch.h"
#include "kernels/ggml/iq_grids.h"
#include "kernels/ggml/unpack.h"
#include "kernels/int8_decode.h"

namespace tern::kernels {
namespace {

// Sign bytes for vpsignb: byte k is -1 where bit k of the sign byte is set, else +1.
constexpr uint64_t sign_bytes(uint32_t bits) {
  uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v |= uint64_t((bits >> k) & 1 ? 0xFF : 0x01) << (8 * k);
  return v;
}
constexpr std::array<uint64_t, 256> kSigns8 = [] {
  std::array<uint64_t, 256> a{};
  for (uint32_t i = 0; i < 256; ++i) a[i] = sign_bytes(i);
  return a;
}();
// The same from the 7-bit sign indices of IQ2_XXS / IQ2_XS / IQ3_XXS (eighth sign by parity).
constexpr std::array<uint64_t, 128> kSigns7 = [] {
  std::array<uint64_t, 128> a{};
  for (uint32_t i = 0; i < 128; ++i) a[i] = sign_bytes(ggml::iq_signs(i));
  return a;
}();

inline uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One group of 32 weights as the kernel multiplies them: |w| (unsigned), a register whose byte
// signs are w's (sign), and the 16-bit scales of its two halves of 16 (lanes 0-7, 8-15).
struct Group {
  __m256i mag, sign, scale;
};

inline __m256i rows8(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return _mm256_set_epi64x(int64_t(d), int64_t(c), int64_t(b), int64_t(a));
}
inline __m256i half_scales(int lo, int hi) {
  return _mm256_set_m128i(_mm_set1_epi16(short(hi)), _mm_set1_epi16(short(lo)));
}

// Block layouts: ggml/unpack_ref.cpp (the scalar unpackers) describes each; kFactor is the
// format's constant in s = d * kFactor * (integer scale).
struct Iq2xxs {  // 66 B: d, per group two u32 (4 grid bytes; 4 sign indices + 4-bit scale)
  static constexpr int64_t kBytes = 66;
  static constexpr float kFactor = 0.125f;
  static float d(const uint8_t* blk) { return f16_at(blk); }
  // The scales as ggml/unpack_ref.cpp computes them (the same float steps, so the same bits).
  static void scales(const uint8_t* blk, float* s) {
    const float d = f16_at(blk);
    for (int g = 0; g < 8; ++g)
      s[2 * g] = s[2 * g + 1] = d * (0.5f + float(u32_at(blk + 6 + 8 * g) >> 28)) * 0.25f;
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t* q = blk + 2 + 8 * g;
    const uint32_t aux = u32_at(q + 4);
    const uint64_t* grid = ggml::kIq2xxsGrid;
    const int s = int(2 * (aux >> 28) + 1);
    return {rows8(grid[q[0]], grid[q[1]], grid[q[2]], grid[q[3]]),
            rows8(kSigns7[aux & 127], kSigns7[(aux >> 7) & 127], kSigns7[(aux >> 14) & 127],
                  kSigns7[(aux >> 21) & 127]),
            _mm256_set1_epi16(short(s))};
  }
};
struct Iq2xs {  // 74 B: d, u16[32] (9-bit grid index, 7-bit sign index), nibble scales[8]
  static constexpr int64_t kBytes = 74;
  static constexpr float kFactor = 0.125f;
  static float d(const uint8_t* blk) { return f16_at(blk); }
  static void scales(const uint8_t* blk, float* s) {  // a nibble per 16 at byte 66
    const float d = f16_at(blk);
    for (int g = 0; g < 16; ++g)
      s[g] = d * (0.5f + float((blk[66 + g / 2] >> (4 * (g % 2))) & 15)) * 0.25f;
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t* q = blk + 2 + 8 * g;
    const uint16_t e0 = u16_at(q), e1 = u16_at(q + 2), e2 = u16_at(q + 4), e3 = u16_at(q + 6);
    const uint64_t* grid = ggml::kIq2xsGrid;
    const int sc = blk[66 + g];
    return {rows8(grid[e0 & 511], grid[e1 & 511], grid[e2 & 511], grid[e3 & 511]),
            rows8(kSigns7[e0 >> 9], kSigns7[e1 >> 9], kSigns7[e2 >> 9], kSigns7[e3 >> 9]),
            half_scales(2 * (sc & 15) + 1, 2 * (sc >> 4) + 1)};
  }
};
struct Iq2s {  // 82 B: d, qs[32], signs[32], qh[8] (2 index bits each), nibble scales[8]
  static constexpr int64_t kBytes = 82;
  static constexpr float kFactor = 0.125f;
  static float d(const uint8_t* blk) { return f16_at(blk); }
  static void scales(const uint8_t* blk, float* s) {  // a nibble per 16 at byte 74
    const float d = f16_at(blk);
    for (int g = 0; g < 16; ++g)
      s[g] = d * (0.5f + float((blk[74 + g / 2] >> (4 * (g % 2))) & 15)) * 0.25f;
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t *qs = blk + 2 + 4 * g, *signs = blk + 34 + 4 * g;
    const int qh = blk[66 + g], sc = blk[74 + g];
    const uint64_t* grid = ggml::kIq2sGrid;
    return {rows8(grid[qs[0] | (qh & 3) << 8], grid[qs[1] | (qh & 12) << 6],
                  grid[qs[2] | (qh & 48) << 4], grid[qs[3] | (qh & 192) << 2]),
            rows8(kSigns8[signs[0]], kSigns8[signs[1]], kSigns8[signs[2]], kSigns8[signs[3]]),
            half_scales(2 * (sc & 15) + 1, 2 * (sc >> 4) + 1)};
  }
};
struct Iq3xxs {  // 98 B: d, qs[64] (grid bytes, 4 values each), per group a u32 of signs + scale
  static constexpr int64_t kBytes = 98;
  static constexpr float kFactor = 0.25f;
  static float d(const uint8_t* blk) { return f16_at(blk); }
  static void scales(const uint8_t* blk, float* s) {
    const float d = f16_at(blk);
    for (int g = 0; g < 8; ++g)
      s[2 * g] = s[2 * g + 1] = d * (0.5f + float(u32_at(blk + 66 + 4 * g) >> 28)) * 0.5f;
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t* q = blk + 2 + 8 * g;
    const uint32_t aux = u32_at(blk + 66 + 4 * g);
    const uint32_t* grid = ggml::kIq3xxsGrid;
    return {_mm256_setr_epi32(int(grid[q[0]]), int(grid[q[1]]), int(grid[q[2]]), int(grid[q[3]]),
                              int(grid[q[4]]), int(grid[q[5]]), int(grid[q[6]]), int(grid[q[7]])),
            rows8(kSigns7[aux & 127], kSigns7[(aux >> 7) & 127], kSigns7[(aux >> 14) & 127],
                  kSigns7[(aux >> 21) & 127]),
            _mm256_set1_epi16(short(2 * (aux >> 28) + 1))};
  }
};
struct Iq3s {  // 110 B: d, qs[64], qh[8] (ninth index bits), signs[32], nibble scales[4]
  static constexpr int64_t kBytes = 110;
  static constexpr float kFactor = 1.0f;
  static float d(const uint8_t* blk) { return f16_at(blk); }
  static void scales(const uint8_t* blk, float* s) {
    const float d = f16_at(blk);
    for (int g = 0; g < 8; ++g)
      s[2 * g] = s[2 * g + 1] = d * float(1 + 2 * ((blk[106 + g / 2] >> (4 * (g % 2))) & 15));
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t *q = blk + 2 + 8 * g, *signs = blk + 74 + 4 * g;
    const int qh = blk[66 + g];
    const uint32_t* grid = ggml::kIq3sGrid;
    auto row = [&](int k) { return int(grid[q[k] | ((qh >> k) & 1) << 8]); };
    return {_mm256_setr_epi32(row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7)),
            rows8(kSigns8[signs[0]], kSigns8[signs[1]], kSigns8[signs[2]], kSigns8[signs[3]]),
            _mm256_set1_epi16(short(1 + 2 * ((blk[106 + g / 2] >> (4 * (g % 2))) & 15)))};
  }
};
struct Iq1s {  // 50 B: d, qs[32] (low index bits), per group a u16 (3 index bits per run,
               // scale, the delta's sign)
  static constexpr int64_t kBytes = 50;
  static constexpr float kFactor = 0.125f;
  static float d(const uint8_t* blk) { return f16_at(blk); }
  static void scales(const uint8_t* blk, float* s) {
    const float d = f16_at(blk);
    for (int g = 0; g < 8; ++g)
      s[2 * g] = s[2 * g + 1] = d * float(2 * ((u16_at(blk + 34 + 2 * g) >> 12) & 7) + 1) * 0.125f;
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t* qs = blk + 2 + 4 * g;
    const int qh = u16_at(blk + 34 + 2 * g);
    const uint64_t* grid = ggml::kIq1sGrid;
    const __m256i rows = rows8(grid[qs[0] | (qh & 7) << 8], grid[qs[1] | (qh & 0x38) << 5],
                               grid[qs[2] | (qh & 0x1c0) << 2], grid[qs[3] | (qh & 0xe00) >> 1]);
    const __m256i w = _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), rows),
                                      _mm256_set1_epi8(char(1 - ((qh >> 14) & 2))));
    return {_mm256_sign_epi8(w, w), w, _mm256_set1_epi16(short(2 * ((qh >> 12) & 7) + 1))};
  }
};
struct Iq1m {  // 56 B: qs[32], qh[16] (a nibble per run: 3 index bits, the delta's sign),
               // scales u16[4] (3 bits per 16 values; their top nibbles are d's f16 bits)
  static constexpr int64_t kBytes = 56;
  static constexpr float kFactor = 0.125f;
  static float d(const uint8_t* blk) {
    const uint64_t sc = u32_at(blk + 48) | uint64_t(u32_at(blk + 52)) << 32;
    const uint16_t bits = uint16_t(((sc >> 12) & 0xF) | ((sc >> 24) & 0xF0) | ((sc >> 36) & 0xF00) |
                                   ((sc >> 48) & 0xF000));
    return _cvtsh_ss(bits);
  }
  static void scales(const uint8_t* blk, float* s) {
    const float dd = d(blk);
    for (int g = 0; g < 16; ++g)
      s[g] = dd * float(2 * ((u16_at(blk + 48 + 2 * (g / 4)) >> (3 * (g % 4))) & 7) + 1) * 0.125f;
  }
  static Group group(const uint8_t* blk, int g) {
    const uint8_t* qs = blk + 4 * g;
    const int qh = u16_at(blk + 32 + 2 * g);  // the nibbles of runs 4g .. 4g + 3
    const uint64_t* grid = ggml::kIq1sGrid;
    constexpr uint64_t kPlus = 0x0101010101010101ull;
    auto delta = [&](int run) { return qh & (8 << (4 * run)) ? ~0ull : kPlus; };
    const __m256i rows = rows8(grid[qs[0] | (qh & 7) << 8], grid[qs[1] | (qh & 0x70) << 4],
                               grid[qs[2] | (qh & 0x700)], grid[qs[3] | (qh & 0x7000) >> 4]);
    const __m256i w = _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), rows),
                                      rows8(delta(0), delta(1), delta(2), delta(3)));
    const int sc = u16_at(blk + 48 + 2 * (g / 2)) >> (6 * (g % 2));
    return {_mm256_sign_epi8(w, w), w, half_scales(2 * (sc & 7) + 1, 2 * ((sc >> 3) & 7) + 1)};
  }
};

// The 8 lanes of one group's integer sums for one token's 32 activations.
inline __m256i group_dot(const Group& w, const int8_t* xq) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w.mag, _mm256_sign_epi8(load256(xq), w.sign)),
                           w.scale);
}

// Rows 4, tokens kNt (1..4): groups two at a time, their sums folded by one hadd into lanes
// {0, 1, 4, 5} (group 2j) and {2, 3, 6, 7} (group 2j + 1), then one multiply-add by d * kFactor *
// d_x per lane.
template <class T, int kNt>
void dot_iq(const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
  const int64_t ahead = tile_prefetch_distance(rows);
  for (int r = 0; r < 4; ++r) {
    __m256 acc[kNt];
    for (int t = 0; t < kNt; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t u = 0; u < cols / 256; ++u) {
      const uint8_t* blk = rows[r] + u * T::kBytes;
      prefetch_unit<T::kBytes>(blk + ahead);
      const __m256 dw = _mm256_set1_ps(T::d(blk) * T::kFactor);
      __m256 f[kNt];  // d * kFactor * d_x of the unit's 8 activation blocks
      for (int t = 0; t < kNt; ++t)
        f[t] = _mm256_mul_ps(dw, _mm256_loadu_ps(xs[t]->d.data() + u * 8));
      for (int j = 0; j < 4; ++j) {
        const Group a = T::group(blk, 2 * j), b = T::group(blk, 2 * j + 1);
        for (int t = 0; t < kNt; ++t) {
          const int8_t* xq = xs[t]->q.data() + u * 256 + 64 * j;
          const __m256i s = pair_sums(group_dot(a, xq), group_dot(b, xq + 32));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), pair_factor(f[t], j), acc[t]);
        }
      }
    }
    for (int t = 0; t < kNt; ++t) out[4 * t + r] = hsum(acc[t]);
  }
}

// The token count as a template argument, so the accumulators stay in registers.
template <class T>
void dot_iq_any(const uint8_t* const* rows, const ActQ8* const* xs, int nt, int64_t cols,
                float* out) {
  by_tokens(nt, [&](auto n) { dot_iq<T, decltype(n)::value>(rows, xs, cols, out); });
}

// ggml::Unpacked of one 256-value unit, as the scalar unpacker writes it: u = w + 128 for the
// signed weights w (the grid values with their signs, IQ1's 8 grid + delta), the scales, no mins.
template <class T>
void unpack_unit(const uint8_t* blk, int /*n32: always 8*/, ggml::Unpacked* out) {
  for (int g = 0; g < 8; ++g) {
    const Group w = T::group(blk, g);
    _mm256_store_si256(
        reinterpret_cast<__m256i*>(out->u + 32 * g),
        _mm256_xor_si256(_mm256_sign_epi8(w.mag, w.sign), _mm256_set1_epi8(char(0x80))));
  }
  T::scales(blk, out->s);
  std::memset(out->m, 0, sizeof out->m);
}

}  // namespace

namespace ggml {
// The AVX2 unpackers of the i-quants below IQ4 (the scalar ones spend most of an i-quant
// prefill's panel packing), else null.
UnpackFn unpacker_avx2(DType t) {
  switch (t) {
    case DType::iq2_xxs:
      return unpack_unit<Iq2xxs>;
    case DType::iq2_xs:
      return unpack_unit<Iq2xs>;
    case DType::iq2_s:
      return unpack_unit<Iq2s>;
    case DType::iq3_xxs:
      return unpack_unit<Iq3xxs>;
    case DType::iq3_s:
      return unpack_unit<Iq3s>;
    case DType::iq1_s:
      return unpack_unit<Iq1s>;
    case DType::iq1_m:
      return unpack_unit<Iq1m>;
    default:
      return nullptr;
  }
}
}  // namespace ggml

// The i-quant part of ggml_dot4_avx2 (cpu/ggml_avx2.cpp dispatches here).
bool ggml_dot4_iq_avx2(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                       int64_t cols, float* out) {
  switch (t) {
    case DType::iq2_xxs:
      return dot_iq_any<Iq2xxs>(rows, xs, nt, cols, out), true;
    case DType::iq2_xs:
      return dot_iq_any<Iq2xs>(rows, xs, nt, cols, out), true;
    case DType::iq2_s:
      return dot_iq_any<Iq2s>(rows, xs, nt, cols, out), true;
    case DType::iq3_xxs:
      return dot_iq_any<Iq3xxs>(rows, xs, nt, cols, out), true;
    case DType::iq3_s:
      return dot_iq_any<Iq3s>(rows, xs, nt, cols, out), true;
    case DType::iq1_s:
      return dot_iq_any<Iq1s>(rows, xs, nt, cols, out), true;
    case DType::iq1_m:
      return dot_iq_any<Iq1m>(rows, xs, nt, cols, out), true;
    default:
      return false;
  }
}

}  // namespace tern::kernels
