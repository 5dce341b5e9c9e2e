// AVX-512 (BW / VL / VBMI-free) unpackers for the GGUF block types into ggml::Unpacked: each
// produces exactly the scalar unpacker's codes and scales (tests/kernels/test_ggml_decode.cpp
// compares them byte for byte). Header-only with internal linkage, included by the one unit
// built with the AVX-512 VNNI flags (cpu/ggml_vnni.cpp), so the dot kernel can inline them.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels/ggml/iq_grids.h"
#include "kernels/ggml/unpack.h"

namespace tern::kernels::ggml {
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

// Small per-group integers (each 0..255) packed into one or two u64 by the scalar code, then
// widened to f32 lanes. Storing them to a stack array and loading it as one vector instead
// stalls on store forwarding (perf: a quarter of Q3_K's time on that load).
inline __m256 bytes8_to_ps(uint64_t v) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(v))));
}
inline __m512 bytes16_to_ps(uint64_t lo, uint64_t hi) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_set_epi64x(int64_t(hi), int64_t(lo))));
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
  if (kFive)
    qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)));
  for (int h = 0; h < 2; ++h) {
    const __m512i q = load64(qs + 64 * h);
    const __m512i lo = _mm512_and_si512(q, low4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
    for (int k = 0; k < 2; ++k) {  // values [128h + 64k, +64): bytes 32k.. low then high
      __m512i u = k == 0 ? _mm512_shuffle_i64x2(lo, hi, 0x44) : _mm512_shuffle_i64x2(lo, hi, 0xEE);
      if (kFive) {
        // fifth bit of value v is bit v / 32 of qh[v % 32]: bits 2c, 2c + 1 for chunk c
        const int c = 2 * h + k;
        const __m512i bit =
            _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(char(1 << (2 * c)))),
                               _mm256_set1_epi8(char(1 << (2 * c + 1))), 1);
        u = _mm512_mask_add_epi8(u, _mm512_test_epi8_mask(qh, bit), u, _mm512_set1_epi8(16));
      }
      store64(o->u + 128 * h + 64 * k, u);
    }
  }
}

// Q6_K's 16 sub-scales times d.
[[gnu::always_inline]] inline __m512 q6_k_scales(const uint8_t* b) {
  return _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 208)),
                       _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                           _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)))));
}

// Q6_K's 256 codes in value order, 64 per register: for half h, ql[64h..64h+64) low nibbles
// are values [128h, +64), high nibbles [128h+64, +64); qh[32h..32h+32) bits 2j are the top 2
// bits of values [128h + 32j, +32).
[[gnu::always_inline]] inline void q6_k_codes(const uint8_t* b, __m512i u[4]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  // per 16-bit lane shift counts: 0 / 2 for the first 64 values of a half, 4 / 6 for the next
  const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = load64(b + 64 * h);
    const __m512i qh = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h)));
    const __m512i h0 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh01), low2);
    const __m512i h1 = _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), low2);
    u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_slli_epi16(h0, 4));
    u[2 * h + 1] =
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4), _mm512_slli_epi16(h1, 4));
  }
}

[[gnu::always_inline]] inline void unpack_q6_k(const uint8_t* b, int, Unpacked* o) {
  _mm512_store_ps(o->s, q6_k_scales(b));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
  __m512i u[4];
  q6_k_codes(b, u);
  for (int k = 0; k < 4; ++k) store64(o->u + 64 * k, u[k]);
}

// The IQ4 levels + 128, in every 128-bit lane (vpshufb looks up within lanes).
inline __m512i iq4_table() {
  return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141,
                                              (char)153, (char)166, (char)181, (char)197, (char)217,
                                              (char)241));
}

// iq4_xs: group j (of 32) is the low then high nibbles of qs[16j..16j+16).
[[gnu::always_inline]] inline void unpack_iq4_xs(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  const uint16_t sh = uint16_t(b[2] | (b[3] << 8));
  uint64_t ls = 0;  // 6-bit scales, stored + 32
  for (int j = 0; j < 8; ++j)
    ls |= uint64_t(((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((sh >> (2 * j)) & 3) << 4))
          << (8 * j);
  store_dup8(o->s, _mm256_mul_ps(_mm256_set1_ps(d),
                                 _mm256_sub_ps(bytes8_to_ps(ls), _mm256_set1_ps(32.0f))));
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

// ---- 2- and 3-bit k-quants ----------------------------------------------------------------

// 2-bit codes in value order, 64 per register: value 128h + 32j + l is bits 2j of
// qs[32h + l] (Q2_K's codes, Q3_K's low bits).
[[gnu::always_inline]] inline void two_bit_codes(const uint8_t* qs, __m512i u[4]) {
  const __m512i low2 = _mm512_set1_epi8(3);
  const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  for (int h = 0; h < 2; ++h) {
    const __m512i q =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h)));
    u[2 * h] = _mm512_and_si512(_mm512_srlv_epi16(q, sh01), low2);
    u[2 * h + 1] = _mm512_and_si512(_mm512_srlv_epi16(q, sh23), low2);
  }
}

// Q2_K's per-16 scales (d * low nibble) and mins (dmin * high nibble, to be subtracted).
[[gnu::always_inline]] inline void q2_k_scales_mins(const uint8_t* b, __m512* s, __m512* m) {
  const __m512i raw = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
  *s = _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 80)),
                     _mm512_cvtepi32_ps(_mm512_and_si512(raw, _mm512_set1_epi32(15))));
  *m = _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 82)), _mm512_cvtepi32_ps(_mm512_srli_epi32(raw, 4)));
}

// Q2_K: codes as above from qs (byte 16); scales per 16: low nibble scale, high nibble min.
[[gnu::always_inline]] inline void unpack_q2_k(const uint8_t* b, int, Unpacked* o) {
  __m512 s, m;
  q2_k_scales_mins(b, &s, &m);
  _mm512_store_ps(o->s, s);
  _mm512_store_ps(o->m, _mm512_xor_ps(m, _mm512_set1_ps(-0.0f)));  // -(dmin * min)
  __m512i u[4];
  two_bit_codes(b + 16, u);
  for (int k = 0; k < 4; ++k) store64(o->u + 64 * k, u[k]);
}

// Q3_K: low 2 bits as Q2_K (qs at byte 32), third bit: bit v / 32 of hmask[v % 32]; 6-bit
// signed scales per 16 (ggml/unpack_ref.cpp).
[[gnu::always_inline]] inline void unpack_q3_k(const uint8_t* b, int, Unpacked* o) {
  const uint8_t* sc = b + 96;
  uint64_t ls[2] = {0, 0};  // 6-bit scales, stored + 32
  for (int g = 0; g < 16; ++g)
    ls[g / 8] |= uint64_t(((sc[g % 8] >> (4 * (g / 8))) & 15) |
                          (((sc[8 + g % 4] >> (2 * (g / 4))) & 3) << 4))
                 << (8 * (g % 8));
  _mm512_store_ps(o->s,
                  _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 108)),
                                _mm512_sub_ps(bytes16_to_ps(ls[0], ls[1]), _mm512_set1_ps(32.0f))));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
  __m512i u[4];
  two_bit_codes(b + 32, u);
  const __m512i hm =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));
  for (int c = 0; c < 4; ++c) {  // values [64c, 64c + 64): hmask bits 2c (first 32), 2c + 1
    const __m512i bit =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(char(1 << (2 * c)))),
                           _mm256_set1_epi8(char(1 << (2 * c + 1))), 1);
    store64(o->u + 64 * c,
            _mm512_mask_add_epi8(u[c], _mm512_test_epi8_mask(hm, bit), u[c], _mm512_set1_epi8(4)));
  }
}

// ---- i-quants ------------------------------------------------------------------------------

// 8 codebook rows (8 int8 values each) in one register, row k in bytes 8k..8k+8.
template <class Index>
[[gnu::always_inline]] inline __m512i rows8(const uint64_t* grid, Index idx) {
  return _mm512_set_epi64(int64_t(grid[idx(7)]), int64_t(grid[idx(6)]), int64_t(grid[idx(5)]),
                          int64_t(grid[idx(4)]), int64_t(grid[idx(3)]), int64_t(grid[idx(2)]),
                          int64_t(grid[idx(1)]), int64_t(grid[idx(0)]));
}
// 16 IQ3 rows (4 values each).
template <class Index>
[[gnu::always_inline]] inline __m512i rows16(const uint32_t* grid, Index idx) {
  return _mm512_set_epi32(
      int(grid[idx(15)]), int(grid[idx(14)]), int(grid[idx(13)]), int(grid[idx(12)]),
      int(grid[idx(11)]), int(grid[idx(10)]), int(grid[idx(9)]), int(grid[idx(8)]),
      int(grid[idx(7)]), int(grid[idx(6)]), int(grid[idx(5)]), int(grid[idx(4)]), int(grid[idx(3)]),
      int(grid[idx(2)]), int(grid[idx(1)]), int(grid[idx(0)]));
}
// u = +-value + 128 for 64 unsigned grid values, negated where the sign mask has a bit.
[[gnu::always_inline]] inline __m512i signed_codes(__m512i v, uint64_t negative) {
  const __m512i q = _mm512_mask_sub_epi8(v, _cvtu64_mask64(negative), _mm512_setzero_si512(), v);
  return _mm512_xor_si512(q, _mm512_set1_epi8(char(0x80)));
}
// The 8 sign bytes of IQ2_XXS / IQ3_XXS's 7-bit sign indices, as one 64-bit mask.
inline constexpr struct SignTable {
  uint8_t v[128];
  constexpr SignTable() : v() {
    for (uint32_t i = 0; i < 128; ++i) v[i] = iq_signs(i);
  }
} kSigns;

// IQ2_XXS: per 32 values two u32: 4 grid indices, then 4 seven-bit sign indices + scale.
[[gnu::always_inline]] inline void unpack_iq2_xxs(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  uint64_t sc = 0;               // 4-bit scales per 32 values
  for (int h = 0; h < 4; ++h) {  // 64 values: two groups of 32
    const uint8_t* q = b + 2 + 16 * h;
    uint32_t a0, a1;
    std::memcpy(&a0, q + 4, 4);
    std::memcpy(&a1, q + 12, 4);
    sc |= uint64_t(a0 >> 28) << (16 * h) | uint64_t(a1 >> 28) << (16 * h + 8);
    const __m512i v = rows8(kIq2xxsGrid, [&](int k) { return q[8 * (k / 4) + k % 4]; });
    uint64_t neg = 0;
    for (int k = 0; k < 8; ++k) {
      const uint32_t aux = k < 4 ? a0 : a1;
      neg |= uint64_t(kSigns.v[(aux >> (7 * (k % 4))) & 127]) << (8 * k);
    }
    store64(o->u + 64 * h, signed_codes(v, neg));
  }
  // d * (0.5 + scale) * 0.25, in the scalar unpacker's order
  const __m256 s8 = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_set1_ps(d), _mm256_add_ps(_mm256_set1_ps(0.5f), bytes8_to_ps(sc))),
      _mm256_set1_ps(0.25f));
  store_dup8(o->s, s8);
  _mm512_store_ps(o->m, _mm512_setzero_ps());
}

// IQ2_XS / IQ2_S scales: 8 bytes, a nibble per 16 values (low nibble first); s = d * (0.5 +
// nibble) / 4. No mins.
[[gnu::always_inline]] inline void iq2_nibble_scales(float d, const uint8_t* sc, Unpacked* o) {
  const __m512i raw = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc)));
  const __m512i nib = _mm512_and_si512(
      _mm512_srlv_epi32(_mm512_permutexvar_epi32(
                            _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), raw),
                        _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4)),
      _mm512_set1_epi32(15));
  const __m512 half = _mm512_add_ps(_mm512_set1_ps(0.5f), _mm512_cvtepi32_ps(nib));
  _mm512_store_ps(o->s,
                  _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(d), half), _mm512_set1_ps(0.25f)));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
}

// IQ2_XS: 32 u16 (9-bit grid index, 7-bit sign index), a 4-bit scale per 16 values.
[[gnu::always_inline]] inline void unpack_iq2_xs(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  uint16_t qs[32];
  std::memcpy(qs, b + 2, 64);
  for (int h = 0; h < 4; ++h) {
    const __m512i v = rows8(kIq2xsGrid, [&](int k) { return qs[8 * h + k] & 511; });
    uint64_t neg = 0;
    for (int k = 0; k < 8; ++k) neg |= uint64_t(kSigns.v[qs[8 * h + k] >> 9]) << (8 * k);
    store64(o->u + 64 * h, signed_codes(v, neg));
  }
  iq2_nibble_scales(d, b + 66, o);
}

// IQ2_S: qs[32] low 8 index bits, signs[32] (explicit, a byte per 8 values), qh[8] (2 bits per
// index), scales[8] (a nibble per 16 values).
[[gnu::always_inline]] inline void unpack_iq2_s(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66;
  for (int h = 0; h < 4; ++h) {
    const __m512i v = rows8(kIq2sGrid, [&](int k) {
      const int e = 8 * h + k;
      return qs[e] | (((qh[e / 4] >> (2 * (e % 4))) & 3) << 8);
    });
    uint64_t neg;
    std::memcpy(&neg, signs + 8 * h, 8);
    store64(o->u + 64 * h, signed_codes(v, neg));
  }
  iq2_nibble_scales(d, b + 74, o);
}

// IQ3_XXS: qs[64] grid indices (4 values each), then per 32 values a u32 of 4 sign indices and
// a 4-bit scale.
[[gnu::always_inline]] inline void unpack_iq3_xxs(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  uint64_t sc = 0;               // 4-bit scales per 32 values
  for (int h = 0; h < 4; ++h) {  // 64 values = 16 rows, groups 2h and 2h + 1
    uint32_t a0, a1;
    std::memcpy(&a0, b + 66 + 8 * h, 4);
    std::memcpy(&a1, b + 70 + 8 * h, 4);
    sc |= uint64_t(a0 >> 28) << (16 * h) | uint64_t(a1 >> 28) << (16 * h + 8);
    const __m512i v = rows16(kIq3xxsGrid, [&](int k) { return qs[16 * h + k]; });
    uint64_t neg = 0;
    for (int k = 0; k < 8; ++k) {
      const uint32_t aux = k < 4 ? a0 : a1;
      neg |= uint64_t(kSigns.v[(aux >> (7 * (k % 4))) & 127]) << (8 * k);
    }
    store64(o->u + 64 * h, signed_codes(v, neg));
  }
  const __m256 s8 = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_set1_ps(d), _mm256_add_ps(_mm256_set1_ps(0.5f), bytes8_to_ps(sc))),
      _mm256_set1_ps(0.5f));
  store_dup8(o->s, s8);
  _mm512_store_ps(o->m, _mm512_setzero_ps());
}

// IQ3_S: qs[64] low 8 index bits, qh[8] ninth bits, signs[32] explicit, scales[4] (a nibble per
// 32 values: d * (1 + 2 * scale)).
[[gnu::always_inline]] inline void unpack_iq3_s(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scb = b + 106;
  for (int h = 0; h < 4; ++h) {
    const __m512i v = rows16(kIq3sGrid, [&](int k) {
      const int e = 16 * h + k;
      return qs[e] | (((qh[e / 8] >> (e % 8)) & 1) << 8);
    });
    uint64_t neg;
    std::memcpy(&neg, signs + 8 * h, 8);
    store64(o->u + 64 * h, signed_codes(v, neg));
  }
  uint64_t sc = 0;
  for (int g = 0; g < 8; ++g)
    sc |= uint64_t(1 + 2 * ((scb[g / 2] >> (4 * (g % 2))) & 15)) << (8 * g);
  store_dup8(o->s, _mm256_mul_ps(_mm256_set1_ps(d), bytes8_to_ps(sc)));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
}

// u = 8 * grid + delta + 128 for 64 IQ1 values (grid -1 / 0 / 1; delta +-1 per byte): the
// 16-bit shift's spill into the next byte lands in bits that the mask clears.
[[gnu::always_inline]] inline __m512i iq1_codes(__m512i g, __m512i delta) {
  const __m512i g8 = _mm512_and_si512(_mm512_slli_epi16(g, 3), _mm512_set1_epi8(char(0xF8)));
  return _mm512_add_epi8(_mm512_add_epi8(g8, delta), _mm512_set1_epi8(char(0x80)));
}

// IQ1_S: qs[32] low 8 index bits, qh u16[8] per 32 values (3 index bits per run of 8, scale in
// bits 12..14, delta sign in bit 15).
[[gnu::always_inline]] inline void unpack_iq1_s(const uint8_t* b, int, Unpacked* o) {
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  uint16_t qh[8];
  std::memcpy(qh, b + 34, 16);
  uint64_t sc = 0;
  for (int h = 0; h < 4; ++h) {
    const uint16_t h0 = qh[2 * h], h1 = qh[2 * h + 1];
    const __m512i g = rows8(kIq1sGrid, [&](int k) {
      const uint16_t hh = k < 4 ? h0 : h1;
      return qs[8 * h + k] | (((hh >> (3 * (k % 4))) & 7) << 8);
    });
    const __m512i delta =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(char(h0 & 0x8000 ? -1 : 1))),
                           _mm256_set1_epi8(char(h1 & 0x8000 ? -1 : 1)), 1);
    store64(o->u + 64 * h, iq1_codes(g, delta));
    sc |= uint64_t(2 * ((h0 >> 12) & 7) + 1) << (16 * h) | uint64_t(2 * ((h1 >> 12) & 7) + 1)
                                                               << (16 * h + 8);
  }
  store_dup8(o->s, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(d), bytes8_to_ps(sc)),
                                 _mm256_set1_ps(0.125f)));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
}

// IQ1_M: qs[32], qh[16] (a nibble per run of 8: 3 index bits, delta sign in bit 3), scales
// u16[4] (3 bits per 16 values; the top nibbles are d's f16 bits).
[[gnu::always_inline]] inline void unpack_iq1_m(const uint8_t* b, int, Unpacked* o) {
  const uint8_t *qs = b, *qh = b + 32;
  uint16_t w[4];
  std::memcpy(w, b + 48, 8);
  const uint16_t dbits =
      uint16_t((w[0] >> 12) | ((w[1] >> 8) & 0x00F0) | ((w[2] >> 4) & 0x0F00) | (w[3] & 0xF000));
  const float d = _cvtsh_ss(dbits);
  for (int h = 0; h < 4; ++h) {
    int nib[8];
    for (int k = 0; k < 8; ++k) {
      const int t = 8 * h + k;
      nib[k] = (qh[t / 2] >> (4 * (t % 2))) & 15;
    }
    const __m512i g = rows8(kIq1sGrid, [&](int k) { return qs[8 * h + k] | ((nib[k] & 7) << 8); });
    int64_t dl[8];  // each run's delta (+1 or -1) in all 8 of its bytes
    for (int k = 0; k < 8; ++k)
      dl[k] = int64_t(0x0101010101010101ull * (nib[k] & 8 ? 0xFFu : 0x01u));
    const __m512i delta = _mm512_set_epi64(dl[7], dl[6], dl[5], dl[4], dl[3], dl[2], dl[1], dl[0]);
    store64(o->u + 64 * h, iq1_codes(g, delta));
  }
  uint64_t sc[2] = {0, 0};
  for (int g = 0; g < 16; ++g)
    sc[g / 8] |= uint64_t(2 * ((w[g / 4] >> (3 * (g % 4))) & 7) + 1) << (8 * (g % 8));
  _mm512_store_ps(o->s, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(d), bytes16_to_ps(sc[0], sc[1])),
                                      _mm512_set1_ps(0.125f)));
  _mm512_store_ps(o->m, _mm512_setzero_ps());
}

}  // namespace
}  // namespace tern::kernels::ggml
