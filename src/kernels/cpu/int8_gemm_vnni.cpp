// The packed int8 GEMM tile (int8_gemm.h) on AVX-512 VNNI: two registers hold 4 consecutive
// weights of all 32 panel rows, each token's group of 4 activation codes is broadcast, and one
// vpdpbusd per register and token does 64 multiply-adds into 16 row lanes. Integer sums start
// at the packed -128 * sum(w) and stay exact over a block of 32; the block's scales are applied
// once per block as a vector of 16 rows. Compiled with its own -m flags; int8_gemm.cpp calls it
// only when CPUID reports VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/int8_gemm.h"

namespace tern::kernels {
namespace {

template <int NT>
void tile(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
          const float* const* xd, float* out) {
  static_assert(kPanelRows == 32 && NT <= kTileTokens);
  __m512 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  const int8_t* w = p.w.data() + b0 * 32 * kPanelRows;
  for (int64_t b = b0; b < b1; ++b, w += 32 * kPanelRows) {
    const __m512i n0 = _mm512_loadu_si512(p.nws.data() + b * kPanelRows);
    const __m512i n1 = _mm512_loadu_si512(p.nws.data() + b * kPanelRows + 16);
    __m512i dot[NT][2];
    for (int t = 0; t < NT; ++t) dot[t][0] = n0, dot[t][1] = n1;
    for (int k4 = 0; k4 < 8; ++k4) {
      const __m512i w0 = _mm512_loadu_si512(w + k4 * 128);
      const __m512i w1 = _mm512_loadu_si512(w + k4 * 128 + 64);
      for (int t = 0; t < NT; ++t) {
        int32_t group;
        std::memcpy(&group, xq[t] + b * 32 + k4 * 4, 4);
        const __m512i x = _mm512_set1_epi32(group);
        dot[t][0] = _mm512_dpbusd_epi32(dot[t][0], x, w0);
        dot[t][1] = _mm512_dpbusd_epi32(dot[t][1], x, w1);
      }
    }
    const __m512 d0 = _mm512_loadu_ps(p.dw.data() + b * kPanelRows);
    const __m512 d1 = _mm512_loadu_ps(p.dw.data() + b * kPanelRows + 16);
    for (int t = 0; t < NT; ++t) {
      const __m512 s = _mm512_set1_ps(xd[t][b]);
      acc[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t][0]), _mm512_mul_ps(d0, s), acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t][1]), _mm512_mul_ps(d1, s), acc[t][1]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    _mm512_storeu_ps(out + t * kPanelRows, acc[t][0]);
    _mm512_storeu_ps(out + t * kPanelRows + 16, acc[t][1]);
  }
}

inline float hmax(__m512 v) {
  __m256 m = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

// The 32 signed weights of one Q8_0 / Q4_0 block from its quant bytes, as stored or (kPacked)
// from a packed tile's block area, where Q8_0 is two 16-byte pieces 64 bytes apart, + 128.
template <DType T, bool kPacked>
inline __m256i block_weights(const uint8_t* q) {
  if constexpr (T == DType::q8_0) {
    if constexpr (!kPacked) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i v = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 64)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
    return _mm256_xor_si256(v, _mm256_set1_epi8(char(0x80)));
  }
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i low4 = _mm_set1_epi8(15);
  const __m256i nib =
      _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4), _mm_and_si128(bytes, low4));
  return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
}

// 16 rows x 8 groups of 4 weights -> 8 registers of 16 rows: z[i] holds rows i (low half) and
// i + 8 (high half); an 8 x 8 transpose of 32-bit groups runs in both halves at once.
inline void transpose_16x8(__m512i z[8], __m512i out[8]) {
  __m512i a[8], b[8];
  for (int i = 0; i < 4; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3 (h = 0) and 4-7 (h = 1) of each half
    b[4 * h + 0] = _mm512_unpacklo_epi64(a[4 * h + 0], a[4 * h + 2]);  // groups 0 | 4
    b[4 * h + 1] = _mm512_unpackhi_epi64(a[4 * h + 0], a[4 * h + 2]);  // groups 1 | 5
    b[4 * h + 2] = _mm512_unpacklo_epi64(a[4 * h + 1], a[4 * h + 3]);  // groups 2 | 6
    b[4 * h + 3] = _mm512_unpackhi_epi64(a[4 * h + 1], a[4 * h + 3]);  // groups 3 | 7
  }
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int k = 0; k < 4; ++k) {
    out[k] = _mm512_permutex2var_epi64(b[k], first, b[k + 4]);
    out[k + 4] = _mm512_permutex2var_epi64(b[k], second, b[k + 4]);
  }
}

}  // namespace

namespace {

// Rows past the matrix's end read this block: zero weights under a zero scale.
template <DType T>
const uint8_t* zero_block() {
  static const uint8_t z[34] = {
      0,    0,    0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88,
      0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};  // Q4_0: nibble 8 is 0
  static const uint8_t z8[34] = {};
  return T == DType::q8_0 ? z8 : z;
}

constexpr int64_t kPackPrefetch = 8;   // blocks ahead
constexpr int64_t kPrefetchEvery = 2;  // a 64-byte line holds 2-3 blocks of a row

// One panel row's blocks, read as stored (a row is consecutive blocks) or from the packed tiles
// of packed_tiles.h (each group of 4 blocks keeps its 4 rows' scales in front of their quants).
template <DType T, bool kPacked>
void pack_blocks(const WeightView& w, int64_t r0, PackedPanel& out) {
  const int64_t nb = w.cols / 32, nr = std::min<int64_t>(kPanelRows, w.rows - r0);
  constexpr int64_t kBlockBytes = T == DType::q8_0 ? 34 : 18, kQuantBytes = kBlockBytes - 2;
  const uint8_t* base[kPanelRows];  // stored: the row; packed: its tile; null: a padding row
  for (int64_t r = 0; r < kPanelRows; ++r)
    base[r] = r >= nr   ? nullptr
              : kPacked ? static_cast<const uint8_t*>(w.data) + (r0 + r) / 4 * 4 * w.row_bytes()
                        : w.row_ptr(r0 + r);
  const uint8_t* zero = zero_block<T>();
  // A padding row of a packed view reads zero bytes as far as a Q8_0 second piece reaches; its
  // scale of zero makes whatever they decode to contribute nothing.
  static const uint8_t zero_area[128] = {};
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* scale_at[kPanelRows];
    const uint8_t* quant_at[kPanelRows];
    if constexpr (kPacked) {
      const int64_t g0 = b & ~int64_t(3), k = b & 3, g = std::min<int64_t>(4, nb - g0);
      const int64_t group = 4 * g0 * kBlockBytes;
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const int64_t rr = (r0 + r) % 4;
        scale_at[r] = base[r] ? base[r] + group + 2 * (4 * k + rr) : zero;
        quant_at[r] = base[r] ? base[r] + group + 8 * g + 4 * k * kQuantBytes + 16 * rr : zero_area;
      }
      // 8 tiles are 8 sequential streams; ask for each a few blocks ahead.
      for (int64_t r = 0; r < nr; r += 4) {
        const char* ahead = reinterpret_cast<const char*>(base[r]) +
                            std::min(b + kPackPrefetch, nb - 1) * 4 * kBlockBytes;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
      }
    } else {
      // 32 row streams are more than the hardware prefetcher follows: ask for each row's bytes
      // kPackPrefetch blocks ahead, one cache line per row every few blocks.
      for (int64_t r = 0; r < kPanelRows; ++r) {
        scale_at[r] = base[r] ? base[r] + b * kBlockBytes : zero;
        quant_at[r] = scale_at[r] + 2;
        if (b % kPrefetchEvery == 0 && base[r])
          _mm_prefetch(reinterpret_cast<const char*>(base[r] + (b + kPackPrefetch) * kBlockBytes),
                       _MM_HINT_T0);
      }
    }
    int8_t* dst = out.w.data() + b * 32 * kPanelRows;
    for (int64_t half = 0; half < 2; ++half) {
      const uint8_t* const* hq = quant_at + half * 16;
      const uint8_t* const* hs = scale_at + half * 16;
      __m512i z[8], t[8];
      alignas(32) uint16_t scales[16];
      for (int i = 0; i < 8; ++i) {
        // Named first: clang's intrinsics are macros, and a template's comma splits their args.
        const __m256i lo = block_weights<T, kPacked>(hq[i]),
                      hi = block_weights<T, kPacked>(hq[i + 8]);
        z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      }
      for (int i = 0; i < 16; ++i) std::memcpy(&scales[i], hs[i], 2);
      transpose_16x8(z, t);
      __m512i sum = _mm512_setzero_si512();
      for (int k = 0; k < 8; ++k) {
        _mm512_storeu_si512(dst + k * 128 + half * 64, t[k]);
        sum = _mm512_dpbusd_epi32(sum, ones, t[k]);
      }
      _mm512_storeu_si512(out.nws.data() + b * kPanelRows + half * 16,
                          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
      _mm512_storeu_ps(
          out.dw.data() + b * kPanelRows + half * 16,
          _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales))));
    }
  }
}

}  // namespace

// pack_panel (int8_gemm.h) with AVX-512: each 16-row half of a block is transposed in registers
// and its row sums come from vpdpbusd against ones. Same bytes as the scalar packer; reads
// prepacked views (WeightView::packed) directly.
void pack_panel_vnni(const WeightView& w, int64_t r0, PackedPanel& out) {
  const int64_t nb = w.cols / 32;
  out.n_blocks = nb;
  out.w.resize(size_t(nb * 32 * kPanelRows));
  out.dw.resize(size_t(nb * kPanelRows));
  out.nws.resize(size_t(nb * kPanelRows));
  const bool q8 = w.dtype == DType::q8_0;
  if (w.packed)
    q8 ? pack_blocks<DType::q8_0, true>(w, r0, out) : pack_blocks<DType::q4_0, true>(w, r0, out);
  else
    q8 ? pack_blocks<DType::q8_0, false>(w, r0, out) : pack_blocks<DType::q4_0, false>(w, r0, out);
}

// quantize_block_q8 for a row of n values (n a multiple of 32), codes stored as q + 128: the
// same float steps (amax, d = amax / 127, x * (1 / d) rounded to nearest even), so the same
// bits as the scalar quantiser.
void quantize_act_row_avx512(const float* x, int64_t n, uint8_t* q, float* d) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m512 lo = _mm512_loadu_ps(x + b * 32), hi = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = hmax(_mm512_max_ps(_mm512_andnot_ps(sign, lo), _mm512_andnot_ps(sign, hi)));
    const float db = amax / 127.0f, id = db > 0 ? 1.0f / db : 0.0f;
    d[b] = db;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i bias = _mm512_set1_epi32(128);
    const __m512i qlo = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(lo, vid)), bias);
    const __m512i qhi = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(hi, vid)), bias);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32), _mm512_cvtepi32_epi8(qlo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32 + 16), _mm512_cvtepi32_epi8(qhi));
  }
}

// Q8_0 / Q4_0 panels only (int8_gemm_tile_takes_ggml says no): no sc16, no mw, so no sums16.
void int8_gemm_tile_vnni(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                         const float* const* xd, const float* const* /*xs16*/, int nt, float* out) {
  switch (nt) {
    case 1:
      return tile<1>(p, b0, b1, xq, xd, out);
    case 2:
      return tile<2>(p, b0, b1, xq, xd, out);
    case 3:
      return tile<3>(p, b0, b1, xq, xd, out);
    default:
      return tile<4>(p, b0, b1, xq, xd, out);
  }
}

// vpdpbusd on 12 independent 512-bit accumulators, registers only: the core's int8 multiply-add
// issue rate (12 chains hide the instruction's latency on every core we run on). Named
// variables, not an array, so the compiler keeps them in registers.
double vnni_peak_ops(int64_t steps) {
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
  __m512i c0 = _mm512_set1_epi32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
          c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (int64_t s = 0; s < steps; ++s) {
    c0 = _mm512_dpbusd_epi32(c0, a, b), c1 = _mm512_dpbusd_epi32(c1, a, b);
    c2 = _mm512_dpbusd_epi32(c2, a, b), c3 = _mm512_dpbusd_epi32(c3, a, b);
    c4 = _mm512_dpbusd_epi32(c4, a, b), c5 = _mm512_dpbusd_epi32(c5, a, b);
    c6 = _mm512_dpbusd_epi32(c6, a, b), c7 = _mm512_dpbusd_epi32(c7, a, b);
    c8 = _mm512_dpbusd_epi32(c8, a, b), c9 = _mm512_dpbusd_epi32(c9, a, b);
    c10 = _mm512_dpbusd_epi32(c10, a, b), c11 = _mm512_dpbusd_epi32(c11, a, b);
    __asm__ volatile(""
                     : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6),
                       "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
  }
  const __m512i sum = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                       _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
      _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
  volatile int sink = _mm512_reduce_add_epi32(sum);
  (void)sink;
  return double(steps) * 12 * 64 * 2;  // 64 byte products per instruction, multiply + add
}

}  // namespace tern::kernels
