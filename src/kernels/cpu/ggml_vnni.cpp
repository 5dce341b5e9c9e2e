// The GGUF-quantised decode kernel (ggml/ggml_decode.h) and SIMD unpackers on AVX-512 VNNI / BW.
// Each 256-value unit of the 4 rows is unpacked into ggml::Unpacked (L1-resident), then every 64
// codes meet 64 int8 activations in one vpdpbusd: lane l of chunk k sums 4 products of group
// g = 4k + l / 4 (16 values per group), so one permute of the 16 per-group factors s * d_x
// gives each lane its scale. The offset comes off in integers (offset * the lane's sum of q,
// also from a vpdpbusd), the mins in f32 (m * d_x times that sum).
// Unpackers here produce exactly the scalar ones' bytes and scales (tests compare them).
// Compiled with its own -m flags; ggml_decode.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/avx512_hsum.h"
#include "kernels/ggml/ggml_decode.h"

namespace tern::kernels {
namespace ggml {
namespace {

inline float f16_at(const uint8_t* p) {
  return _cvtsh_ss(uint16_t(p[0] | (p[1] << 8)));
}
inline __m512i load64(const uint8_t* p) {
  return _mm512_loadu_si512(p);
}
inline void store64(uint8_t* p, __m512i v) {
  _mm512_store_si512(p, v);
}
// Stores 8 per-32 factors as 16 per-16 ones (each twice).
inline void store_dup8(float* dst, __m256 v8) {
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  _mm512_store_ps(dst, _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(v8)));
}

// q4_k / q5_k: 64 qs bytes hold values [128h, 128h + 128): bytes 0..31 low nibbles are the
// first 32 values, their high nibbles the next 32, then bytes 32..63 likewise.
// The 8 six-bit scales (low 8 bytes) and mins (high 8 bytes) of Q4_K / Q5_K's 12 scale bytes,
// four at a time in 32-bit words (ggml::k_scale_min's layout).
inline __m128i k_scales_mins(const uint8_t* sc) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, sc, 4);
  std::memcpy(&w1, sc + 4, 4);
  std::memcpy(&w2, sc + 8, 4);
  const uint32_t six = 0x3F3F3F3Fu, top = 0x30303030u, nib = 0x0F0F0F0Fu;
  const uint32_t s_lo = w0 & six, s_hi = (w2 & nib) | ((w0 >> 2) & top);
  const uint32_t m_lo = w1 & six, m_hi = ((w2 >> 4) & nib) | ((w1 >> 2) & top);
  return _mm_setr_epi32(int(s_lo), int(s_hi), int(m_lo), int(m_hi));
}

template <bool kFive>
[[gnu::always_inline]] inline void unpack_q45_k(const uint8_t* b, int, Unpacked* o) {
  const __m128i sm = k_scales_mins(b + 4);
  const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm));
  const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)));
  const __m256 dv = _mm256_set1_ps(f16_at(b)), dm = _mm256_set1_ps(f16_at(b + 2));
  store_dup8(o->s, _mm256_mul_ps(dv, sc));
  // -(dmin * min), as the scalar unpacker rounds it
  store_dup8(o->m, _mm256_xor_ps(_mm256_mul_ps(dm, mn), _mm256_set1_ps(-0.0f)));
  const uint8_t* qs = b + (kFive ? 48 : 16);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512i qh;
  if (kFive) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)));
  for (int h = 0; h < 2; ++h) {
    const __m512i q = load64(qs + 64 * h);
    const __m512i lo = _mm512_and_si512(q, low4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
    for (int k = 0; k < 2; ++k) {  // values [128h + 64k, +64): bytes 32k.. low then high
      __m512i u = k == 0 ? _mm512_shuffle_i64x2(lo, hi, 0x44) : _mm512_shuffle_i64x2(lo, hi, 0xEE);
      if (kFive) {
        // fifth bit of value v is bit v / 32 of qh[v % 32]: bits 2c, 2c + 1 for chunk c
        const int c = 2 * h + k;
        const __m512i bit = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_set1_epi8(char(1 << (2 * c)))),
            _mm256_set1_epi8(char(1 << (2 * c + 1))), 1);
        u = _mm512_mask_add_epi8(u, _mm512_test_epi8_mask(qh, bit), u, _mm512_set1_epi8(16));
      }
      store64(o->u + 128 * h + 64 * k, u);
    }
  }
}

// q6_k: for half h, ql[64h..64h+64) low nibbles are values [128h, +64), high nibbles [128h+64,
// +64); qh[32h..32h+32) bits 2j are the top 2 bits of values [128h + 32j, +32).
[[gnu::always_inline]] inline void unpack_q6_k(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b + 208);
  const __m512 s = _mm512_mul_ps(
      _mm512_set1_ps(d),
      _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)))));
  _mm512_store_ps(o->s, s);
  _mm512_store_ps(o->m, _mm512_setzero_ps());
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  // per 16-bit lane shift counts: 0 / 2 for the first 64 values of a half, 4 / 6 for the next
  const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = load64(b + 64 * h);
    const __m512i qh =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h)));
    const __m512i h0 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh01), low2);
    const __m512i h1 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), low2);
    const __m512i u0 = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(h0, 4));
    const __m512i u1 =
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_slli_epi16(h1, 4));
    store64(o->u + 128 * h, u0);
    store64(o->u + 128 * h + 64, u1);
  }
}

// The IQ4 levels + 128, in every 128-bit lane (vpshufb looks up within lanes).
inline __m512i iq4_table() {
  return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129,
                                              (char)141, (char)153, (char)166, (char)181,
                                              (char)197, (char)217, (char)241));
}

// iq4_xs: group j (of 32) is the low then high nibbles of qs[16j..16j+16).
[[gnu::always_inline]] inline void unpack_iq4_xs(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  const uint16_t sh = uint16_t(b[2] | (b[3] << 8));
  alignas(32) float sc[8];
  for (int j = 0; j < 8; ++j)
    sc[j] = float((((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((sh >> (2 * j)) & 3) << 4)) - 32);
  store_dup8(o->s, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_load_ps(sc)));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
  const __m512i table = iq4_table(), low4 = _mm512_set1_epi8(0x0F);
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int h = 0; h < 2; ++h) {  // 4 groups per 64 qs bytes
    const __m512i q = load64(b + 8 + 64 * h);
    const __m512i lo = _mm512_shuffle_epi8(table, _mm512_and_si512(q, low4));
    const __m512i hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(q, 4), low4));
    store64(o->u + 128 * h, _mm512_permutex2var_epi64(lo, first, hi));
    store64(o->u + 128 * h + 64, _mm512_permutex2var_epi64(lo, second, hi));
  }
}

// iq4_nl: 32-value blocks of 18 bytes, low nibbles then high.
[[gnu::always_inline]] inline void unpack_iq4_nl(const uint8_t* b, int n32, Unpacked* o) {
  const __m128i table = _mm512_castsi512_si128(iq4_table()), low4 = _mm_set1_epi8(0x0F);
  for (int g = 0; g < n32; ++g, b += 18) {
    o->s[2 * g] = o->s[2 * g + 1] = f16_at(b);
    o->m[2 * g] = o->m[2 * g + 1] = 0.0f;
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    _mm_store_si128(reinterpret_cast<__m128i*>(o->u + 32 * g),
                    _mm_shuffle_epi8(table, _mm_and_si128(q, low4)));
    _mm_store_si128(reinterpret_cast<__m128i*>(o->u + 32 * g + 16),
                    _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), low4)));
  }
}

// q4_1 / q5_0 / q5_1: 32-value blocks, [d, [m,]] [qh u32,] qs[16] (low nibbles then high).
template <int kBytes, bool kMin, bool kFive>
[[gnu::always_inline]] inline void unpack_q4x_q5x(const uint8_t* b, int n32, Unpacked* o) {
  constexpr int kQs = 2 + (kMin ? 2 : 0) + (kFive ? 4 : 0);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  // byte i of the expanded qh mask: bit i % 8 of qh byte i / 8 (for 16 values at a time)
  const __m128i bit = _mm_set1_epi64x(0x8040201008040201LL);
  for (int g = 0; g < n32; ++g, b += kBytes) {
    o->s[2 * g] = o->s[2 * g + 1] = f16_at(b);
    o->m[2 * g] = o->m[2 * g + 1] = kMin ? f16_at(b + 2) : 0.0f;
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + kQs));
    __m128i lo = _mm_and_si128(q, low4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low4);
    if (kFive) {
      uint32_t qh;
      std::memcpy(&qh, b + kQs - 4, 4);
      // bytes 0..7 <- qh byte 0, 8..15 <- byte 1 (values 0..15); then bytes 2, 3 (16..31)
      const __m128i lo_bytes = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
      const __m128i hi_bytes = _mm_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
      const __m128i h = _mm_cvtsi32_si128(int(qh));
      const __mmask16 m_lo = _mm_test_epi8_mask(_mm_shuffle_epi8(h, lo_bytes), bit);
      const __mmask16 m_hi = _mm_test_epi8_mask(_mm_shuffle_epi8(h, hi_bytes), bit);
      lo = _mm_mask_add_epi8(lo, m_lo, lo, _mm_set1_epi8(16));
      hi = _mm_mask_add_epi8(hi, m_hi, hi, _mm_set1_epi8(16));
    }
    _mm_store_si128(reinterpret_cast<__m128i*>(o->u + 32 * g), lo);
    _mm_store_si128(reinterpret_cast<__m128i*>(o->u + 32 * g + 16), hi);
  }
}

}  // namespace

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
      const __m512i u = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p.u + 16 * g)));
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

// kMins: the type has mins; per 32 values (Q4_1, Q5_1, Q4_K, Q5_K) they meet ActQ8::sum once
// per unit, per 16 (Q2_K) each lane's sum of q. kShift: log2 of the type's offset (every
// offset is 0 or a power of two); the offset comes off through the vpdpbusd's start value.
// kUnpack: the unpacker, as a template argument so it inlines (a call per row and unit makes
// the compiler spill every accumulator around it); null for the scalar unpackers, which are
// called through `unpack`.
template <ggml::UnpackFn kUnpack, bool kMins, bool kMinsPer16, int kTokens>
void dot_units(ggml::UnpackFn unpack, int shift, int64_t be, int64_t bb,
               const uint8_t* const* rows, const ActQ8* const* xs, int64_t cols, float* out) {
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
      __m512 sx[4], mx[4];
      for (int r = 0; r < 4; ++r) sx[r] = _mm512_mul_ps(_mm512_load_ps(p[r].s), xd16);
      if (kMins && kMinsPer16)
        for (int r = 0; r < 4; ++r) mx[r] = _mm512_mul_ps(_mm512_load_ps(p[r].m), xd16);
      if (kMins && !kMinsPer16) {  // sum over the unit's blocks of m * d_x * sum(q)
        const __m256 xsum = _mm256_mul_ps(
            xd8, _mm256_cvtepi32_ps(_mm256_maskz_loadu_epi32(blocks, x.sum.data() + c / 32)));
        for (int r = 0; r < 4; ++r) {
          const __m256 m8 = _mm512_castps512_ps256(
              _mm512_permutexvar_ps(evens, _mm512_load_ps(p[r].m)));
          acc_min[r][t] = _mm256_fmadd_ps(m8, xsum, acc_min[r][t]);
        }
      }
      for (int k = 0; k < chunks; ++k) {
        const __mmask64 m = k == chunks - 1 ? last : ~__mmask64(0);
        const __m512i xv = _mm512_maskz_loadu_epi8(m, x.q.data() + c + 64 * k);
        const __m512i gi = _mm512_add_epi32(
            _mm512_set1_epi32(4 * k),
            _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
        __m512i start = zero;
        __m512 lane_sum_f;
        if (shift > 0 || kMinsPer16) {
          const __m512i lane_sum = _mm512_dpbusd_epi32(zero, ones, xv);
          if (shift > 0) start = _mm512_sub_epi32(zero, _mm512_sll_epi32(lane_sum, _mm_cvtsi32_si128(shift)));
          if (kMinsPer16) lane_sum_f = _mm512_cvtepi32_ps(lane_sum);
        }
        for (int r = 0; r < 4; ++r) {
          const __m512i u = _mm512_load_si512(p[r].u + 64 * k);
          const __m512i dot = _mm512_dpbusd_epi32(start, u, xv);
          acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(gi, sx[r]),
                                      acc[r][t]);
          if (kMins && kMinsPer16)
            acc[r][t] =
                _mm512_fmadd_ps(lane_sum_f, _mm512_permutexvar_ps(gi, mx[r]), acc[r][t]);
        }
      }
    }
  }
  for (int t = 0; t < kTokens; ++t)
    for (int r = 0; r < 4; ++r)
      out[4 * t + r] = hsum(acc[r][t]) + (kMins && !kMinsPer16 ? hsum8(acc_min[r][t]) : 0.0f);
}

template <ggml::UnpackFn kUnpack, bool kMins, bool kMinsPer16>
void dot_tokens(ggml::UnpackFn unpack, int shift, int64_t be, int64_t bb,
                const uint8_t* const* rows, const ActQ8* const* xs, int nt, int64_t cols,
                float* out) {
  switch (nt) {
    case 1:
      return dot_units<kUnpack, kMins, kMinsPer16, 1>(unpack, shift, be, bb, rows, xs, cols, out);
    case 2:
      return dot_units<kUnpack, kMins, kMinsPer16, 2>(unpack, shift, be, bb, rows, xs, cols, out);
    case 3:
      return dot_units<kUnpack, kMins, kMinsPer16, 3>(unpack, shift, be, bb, rows, xs, cols, out);
    default:
      return dot_units<kUnpack, kMins, kMinsPer16, 4>(unpack, shift, be, bb, rows, xs, cols, out);
  }
}

}  // namespace

void ggml_dot4_vnni(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                    int64_t cols, float* out) {
  using namespace ggml;
  const GgmlTypeKernels* k = ggml_type_kernels(t);
  const int64_t be = dtype_block_elems(t), bb = dtype_block_bytes(t);
  TERN_CHECK((k->offset & (k->offset - 1)) == 0);  // 0 or a power of two: a shift
  const int shift = k->offset ? __builtin_ctz(k->offset) : 0;
  const UnpackFn u = k->unpack;
  switch (t) {
    case DType::q4_k:
      return dot_tokens<unpack_q45_k<false>, true, false>(u, shift, be, bb, rows, xs, nt, cols, out);
    case DType::q5_k:
      return dot_tokens<unpack_q45_k<true>, true, false>(u, shift, be, bb, rows, xs, nt, cols, out);
    case DType::q6_k:
      return dot_tokens<unpack_q6_k, false, false>(u, shift, be, bb, rows, xs, nt, cols, out);
    case DType::iq4_xs:
      return dot_tokens<unpack_iq4_xs, false, false>(u, shift, be, bb, rows, xs, nt, cols, out);
    case DType::iq4_nl:
      return dot_tokens<unpack_iq4_nl, false, false>(u, shift, be, bb, rows, xs, nt, cols, out);
    case DType::q4_1:
      return dot_tokens<unpack_q4x_q5x<20, true, false>, true, false>(u, shift, be, bb, rows, xs,
                                                                      nt, cols, out);
    case DType::q5_0:
      return dot_tokens<unpack_q4x_q5x<22, false, true>, false, false>(u, shift, be, bb, rows, xs,
                                                                       nt, cols, out);
    case DType::q5_1:
      return dot_tokens<unpack_q4x_q5x<24, true, true>, true, false>(u, shift, be, bb, rows, xs,
                                                                     nt, cols, out);
    case DType::q2_k:
      return dot_tokens<nullptr, true, true>(u, shift, be, bb, rows, xs, nt, cols, out);
    default:
      if (k->has_mins)
        return dot_tokens<nullptr, true, false>(u, shift, be, bb, rows, xs, nt, cols, out);
      return dot_tokens<nullptr, false, false>(u, shift, be, bb, rows, xs, nt, cols, out);
  }
}

}  // namespace tern::kernels
