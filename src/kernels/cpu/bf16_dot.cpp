// The bf16 decode kernel (bf16_decode.h) on AVX-512 BF16: 32 weights of each of 4 rows per
// vdpbf16ps against the shared activations. FP8 e4m3 is widened to bf16 in registers:
// - with AVX-512 VBMI, 64 weights at a time: two 128-entry byte tables indexed by the 7
//   magnitude bits (vpermt2b) give each value's bf16 high and low bytes (subnormals and NaN
//   included, so a NaN weight makes its row NaN through the products), the sign is or-ed into
//   the high byte, and unpacking low/high bytes within 128-bit lanes makes two registers of 32
//   bf16 each, in the order ActBF16::v64 holds the activations;
// - otherwise 32 at a time: a normal value's magnitude bits shifted left by 4 plus 120 << 7
//   are its bf16 bits (exponent bias 7 -> 127), a subnormal one (m * 2^-9) comes from an
//   8-entry table by vpermw, the sign moves from bit 7 to bit 15, and NaN codes are tracked
//   per row.
// The decode forms take 1 or 2 tokens per pass (16 accumulators and 16 block partials fill the
// register file), so 2-4 tokens widen each weight once or twice. The GEMM micro-kernel
// (bf16_dot4x4) runs 4 rows x up to 4 tokens over rows already rounded to bf16.
// Compiled with its own -m flags; bf16_decode.cpp calls it only when CPUID reports AVX-512
// BF16, and the VBMI form only when CPUID reports VBMI too.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/bf16_decode.h"
#include "kernels/cpu/avx512_hsum.h"
#include "kernels/cpu/tile_prefetch.h"

namespace tern::kernels {
namespace {

// bf16 bits of m * 2^-9 for m = 0..7 (e4m3's subnormals), in words 0..7.
__m512i subnormal_table() {
  alignas(64) uint16_t t[32] = {};
  for (int m = 0; m < 8; ++m) {
    const float f = float(m) / 512.0f;
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    t[m] = uint16_t(bits >> 16);  // exact: m has at most 3 significant bits
  }
  return _mm512_load_si512(t);
}

inline __m512i fp8x32_to_bf16(const uint8_t* p, __m512i table, __mmask32& nan) {
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  nan |=
      _mm256_cmpeq_epi8_mask(_mm256_and_si256(b, _mm256_set1_epi8(0x7F)), _mm256_set1_epi8(0x7F));
  const __m512i v = _mm512_cvtepu8_epi16(b);
  const __m512i mag = _mm512_and_si512(v, _mm512_set1_epi16(0x7F));
  const __m512i normal =
      _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(int16_t(120 << 7)));
  const __mmask32 sub = _mm512_testn_epi16_mask(v, _mm512_set1_epi16(0x78));
  const __m512i m = _mm512_mask_permutexvar_epi16(normal, sub, mag, table);
  // m | (v << 8 & 0x8000): the sign bit on top.
  return _mm512_ternarylogic_epi32(m, _mm512_slli_epi16(v, 8), _mm512_set1_epi16(int16_t(0x8000)),
                                   0xF8);
}

inline __m512bh as_bh(__m512i v) {
  return reinterpret_cast<__m512bh>(v);
}

struct Fp8Tables {
  __m512i lo0, lo1, hi0, hi1;  // low / high bf16 bytes of codes 0-63 and 64-127
};
Fp8Tables fp8_tables() {
  alignas(64) uint8_t lo[128], hi[128];
  for (int c = 0; c < 128; ++c) {
    const uint16_t h = f32_to_bf16(fp8_e4m3_to_f32(uint8_t(c)));  // exact; 127 -> quiet NaN
    lo[c] = uint8_t(h & 0xFF);
    hi[c] = uint8_t(h >> 8);
  }
  return {_mm512_load_si512(lo), _mm512_load_si512(lo + 64), _mm512_load_si512(hi),
          _mm512_load_si512(hi + 64)};
}

// 64 e4m3 weights -> bf16 in the v64 order: a = values 0-7, 16-23, 32-39, 48-55; b = the rest.
inline void fp8x64_to_bf16(const uint8_t* p, const Fp8Tables& t, __m512i& a, __m512i& b) {
  const __m512i v = _mm512_loadu_si512(p);
  const __m512i lo = _mm512_permutex2var_epi8(t.lo0, v, t.lo1);
  const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(t.hi0, v, t.hi1), v,
                                               _mm512_set1_epi8(char(0x80)), 0xF8);
  a = _mm512_unpacklo_epi8(lo, hi);
  b = _mm512_unpackhi_epi8(lo, hi);
}

// 4 rows x NT tokens (x[t] in the v64 order), each weight widened once for all NT tokens;
// out[4 * t + r].
template <int NT>
void dot4_fp8_vbmi(const Bf16Rows& w, const uint16_t* const* x, float* out) {
  const int64_t ahead = tile_prefetch_distance(w.rows);
  static const Fp8Tables tables = fp8_tables();
  const Fp8Tables t = tables;
  __m512 acc[NT][4];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < w.cols; c0 += w.block_cols) {
    const int64_t end = std::min(w.cols, c0 + w.block_cols);
    __m512 part[NT][4];
    for (auto& p : part)
      for (auto& v : p) v = _mm512_setzero_ps();
    for (int64_t c = c0; c < end; c += 64) {
      __m512bh xa[NT], xb[NT];
      for (int k = 0; k < NT; ++k) {
        xa[k] = as_bh(_mm512_loadu_si512(x[k] + c));
        xb[k] = as_bh(_mm512_loadu_si512(x[k] + c + 32));
      }
      for (int r = 0; r < 4; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(w.rows[r] + c + ahead), _MM_HINT_T0);
        __m512i a, b;
        fp8x64_to_bf16(w.rows[r] + c, t, a, b);
        for (int k = 0; k < NT; ++k)
          part[k][r] =
              _mm512_dpbf16_ps(_mm512_dpbf16_ps(part[k][r], as_bh(a), xa[k]), as_bh(b), xb[k]);
      }
    }
    const int64_t block = c0 / w.block_cols;
    for (int r = 0; r < 4; ++r) {
      const __m512 s = _mm512_set1_ps(w.scales[r] ? w.scales[r][block] : 1.0f);
      for (int k = 0; k < NT; ++k) acc[k][r] = _mm512_fmadd_ps(part[k][r], s, acc[k][r]);
    }
  }
  for (int k = 0; k < NT; ++k)
    for (int r = 0; r < 4; ++r) out[4 * k + r] = hsum(acc[k][r]);
}

template <int NT>
void dot4_bf16(const Bf16Rows& w, const uint16_t* const* x, float* out) {
  const int64_t ahead = tile_prefetch_distance(w.rows);
  __m512 acc[NT][4];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  const uint16_t* rows[4];
  for (int r = 0; r < 4; ++r) rows[r] = reinterpret_cast<const uint16_t*>(w.rows[r]);
  for (int64_t c = 0; c < w.cols; c += 32) {
    __m512bh xv[NT];
    for (int k = 0; k < NT; ++k) xv[k] = as_bh(_mm512_loadu_si512(x[k] + c));
    for (int r = 0; r < 4; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + c) + ahead, _MM_HINT_T0);
      const __m512bh wv = as_bh(_mm512_loadu_si512(rows[r] + c));
      for (int k = 0; k < NT; ++k) acc[k][r] = _mm512_dpbf16_ps(acc[k][r], wv, xv[k]);
    }
  }
  for (int k = 0; k < NT; ++k)
    for (int r = 0; r < 4; ++r) out[4 * k + r] = hsum(acc[k][r]);
}

void dot4_fp8(const Bf16Rows& w, const uint16_t* x, float* out) {
  const int64_t ahead = tile_prefetch_distance(w.rows);
  const __m512i table = subnormal_table();
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  __mmask32 nan[4] = {0, 0, 0, 0};
  for (int64_t c0 = 0; c0 < w.cols; c0 += w.block_cols) {
    const int64_t end = std::min(w.cols, c0 + w.block_cols);
    __m512 part[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps()};
    for (int64_t c = c0; c < end; c += 32) {
      const __m512bh xv = as_bh(_mm512_loadu_si512(x + c));
      for (int r = 0; r < 4; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(w.rows[r] + c + ahead), _MM_HINT_T0);
        part[r] =
            _mm512_dpbf16_ps(part[r], as_bh(fp8x32_to_bf16(w.rows[r] + c, table, nan[r])), xv);
      }
    }
    const int64_t block = c0 / w.block_cols;
    for (int r = 0; r < 4; ++r)
      acc[r] =
          _mm512_fmadd_ps(part[r], _mm512_set1_ps(w.scales[r] ? w.scales[r][block] : 1.0f), acc[r]);
  }
  for (int r = 0; r < 4; ++r)
    out[r] = nan[r] ? std::numeric_limits<float>::quiet_NaN() : hsum(acc[r]);
}

// 4 bf16 rows x NT tokens: each weight register feeds NT products, each token's NT.
template <int NT>
void dot4xn(const uint16_t* const* w, const uint16_t* const* x, int64_t n, float* out) {
  __m512 acc[NT][4];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  for (int64_t c = 0; c < n; c += 32) {
    __m512bh wv[4];
    for (int r = 0; r < 4; ++r) wv[r] = as_bh(_mm512_loadu_si512(w[r] + c));
    for (int t = 0; t < NT; ++t) {
      const __m512bh xv = as_bh(_mm512_loadu_si512(x[t] + c));
      for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_dpbf16_ps(acc[t][r], wv[r], xv);
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < 4; ++r) out[4 * t + r] = hsum(acc[t][r]);
}

}  // namespace

void round_bf16_avx512bf16(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i))));
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void bf16_dot4x4_avx512bf16(const uint16_t* const* w, const uint16_t* const* x, int nt, int64_t n,
                            float* out) {
  switch (nt) {
    case 1:
      return dot4xn<1>(w, x, n, out);
    case 2:
      return dot4xn<2>(w, x, n, out);
    case 3:
      return dot4xn<3>(w, x, n, out);
    default:
      return dot4xn<4>(w, x, n, out);
  }
}

namespace {
bool cpu_has_vbmi() {
  static const bool vbmi = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") != 0;
  }();
  return vbmi;
}
}  // namespace

void bf16_dot4_avx512bf16(const Bf16Rows& w, const ActBF16& x, float* out) {
  const ActBF16* xs[1] = {&x};
  bf16_dot4xn_avx512bf16(w, xs, 1, out);
}

void bf16_dot4xn_avx512bf16(const Bf16Rows& w, const ActBF16* const* xs, int nt, float* out) {
  const bool fp8 = w.dtype == DType::f8_e4m3;
  const bool vbmi = fp8 && cpu_has_vbmi() && w.block_cols % 64 == 0 && w.cols % 64 == 0;
  for (int t0 = 0; t0 < nt; t0 += 2) {  // two tokens per pass: 16 accumulators and 16 partials
    const int n = std::min(2, nt - t0);
    float* o = out + 4 * t0;
    if (fp8 && !vbmi) {
      for (int k = 0; k < n; ++k) dot4_fp8(w, xs[t0 + k]->v.data(), o + 4 * k);
      continue;
    }
    const uint16_t* x[2];
    for (int k = 0; k < n; ++k) x[k] = vbmi ? xs[t0 + k]->v64.data() : xs[t0 + k]->v.data();
    if (vbmi)
      n == 2 ? dot4_fp8_vbmi<2>(w, x, o) : dot4_fp8_vbmi<1>(w, x, o);
    else
      n == 2 ? dot4_bf16<2>(w, x, o) : dot4_bf16<1>(w, x, o);
  }
}

}  // namespace tern::kernels
