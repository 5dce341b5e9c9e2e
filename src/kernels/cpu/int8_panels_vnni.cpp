// The panel-packed integer kernel (packed_panels.h) on AVX-512 VNNI. A block's word j of the
// panel's 32 rows is two registers (rows 0-15, 16-31), so one vpdpbusd with token t's word j
// broadcast does 64 multiply-adds for 16 rows and no lane ever needs a horizontal sum:
// - Q4_0: a register of words j (bytes as stored) splits into its low nibbles (elements 4j..)
//   and high nibbles (16 + 4j..), both unsigned, so 8 vpdpbusd per token and 16 rows cover the
//   block, and the split is shared by every token of the call;
// - Q8_0: words j = 0..7 are the codes + 128, read as they are.
// Each (token, 16 rows) integer sum starts at -offset * sum(q) (ActQ8::panel8 / panel128), so it
// ends exact;
// then acc = fma(float(sum), d_w * d_x, acc), block after block, as the reference does.
// With one or two tokens each sum is split in two chains (words 0-1 and 2-3 for Q4_0, 0-3 and
// 4-7 for Q8_0) so the vpdpbusd latency does not serialise the block. Compiled with its own -m
// flags; packed_panels.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include "kernels/cpu/tile_prefetch.h"
#include "kernels/packed_panels.h"

namespace tern::kernels {

namespace {

inline __m512i word_of(const int8_t* q, int64_t j) {
  int32_t v;
  __builtin_memcpy(&v, q + 4 * j, 4);
  return _mm512_set1_epi32(v);
}

template <DType T, int NT>
void panel_dot(const uint8_t* panel, int64_t b0, int64_t b1, const ActQ8* const* xs, float* acc) {
  constexpr bool kQ8 = T == DType::q8_0;
  constexpr int64_t kBlock = kQ8 ? 34 * 32 : 18 * 32;
  constexpr int kWords = kQ8 ? 8 : 4;
  constexpr bool kSplit = NT <= 2;  // two chains per sum when there are few of them
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512 a[NT][2];
  const int8_t* q[NT];
  const int32_t* start[NT];
  const float* d[NT];
  for (int t = 0; t < NT; ++t) {
    a[t][0] = b0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + 32 * t);
    a[t][1] = b0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + 32 * t + 16);
    q[t] = xs[t]->q.data();
    start[t] = kQ8 ? xs[t]->panel128.data() : xs[t]->panel8.data();
    d[t] = xs[t]->d.data();
  }
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* blk = panel + b * kBlock;
    // With one or two tokens the kernel outruns memory: fetch a block two ahead (the next
    // panel's first ones at the end; a thread's panels are consecutive).
    if constexpr (NT <= 2) prefetch_unit<kBlock>(blk + 2 * kBlock);
    const __m512 dw0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    const __m512 dw1 =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32)));
    const uint8_t* w = blk + 64;
    __m512i s[NT][2], s2[NT][2];
    for (int t = 0; t < NT; ++t) {
      s[t][0] = s[t][1] = _mm512_set1_epi32(start[t][b]);
      if constexpr (kSplit) s2[t][0] = s2[t][1] = _mm512_setzero_si512();
    }
    for (int j = 0; j < kWords; ++j) {
      const bool second = kSplit && j >= kWords / 2;
      const __m512i x0 = _mm512_loadu_si512(w + 128 * j), x1 = _mm512_loadu_si512(w + 128 * j + 64);
      if constexpr (kQ8) {
        for (int t = 0; t < NT; ++t) {
          const __m512i xw = word_of(q[t] + 32 * b, j);
          __m512i* dst = second ? s2[t] : s[t];
          dst[0] = _mm512_dpbusd_epi32(dst[0], x0, xw);
          dst[1] = _mm512_dpbusd_epi32(dst[1], x1, xw);
        }
      } else {
        const __m512i l0 = _mm512_and_si512(x0, low4), l1 = _mm512_and_si512(x1, low4);
        const __m512i h0 = _mm512_and_si512(_mm512_srli_epi16(x0, 4), low4);
        const __m512i h1 = _mm512_and_si512(_mm512_srli_epi16(x1, 4), low4);
        for (int t = 0; t < NT; ++t) {
          const __m512i xl = word_of(q[t] + 32 * b, j), xh = word_of(q[t] + 32 * b + 16, j);
          __m512i* dst = second ? s2[t] : s[t];
          dst[0] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(dst[0], l0, xl), h0, xh);
          dst[1] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(dst[1], l1, xl), h1, xh);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      if constexpr (kSplit) {
        s[t][0] = _mm512_add_epi32(s[t][0], s2[t][0]);
        s[t][1] = _mm512_add_epi32(s[t][1], s2[t][1]);
      }
      const __m512 dx = _mm512_set1_ps(d[t][b]);
      a[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t][0]), _mm512_mul_ps(dw0, dx), a[t][0]);
      a[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t][1]), _mm512_mul_ps(dw1, dx), a[t][1]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    _mm512_storeu_ps(acc + 32 * t, a[t][0]);
    _mm512_storeu_ps(acc + 32 * t + 16, a[t][1]);
  }
}

template <DType T>
void panel_dot_n(const uint8_t* panel, int64_t b0, int64_t b1, const ActQ8* const* xs, int nt,
                 float* acc) {
  switch (nt) {
    case 1:
      return panel_dot<T, 1>(panel, b0, b1, xs, acc);
    case 2:
      return panel_dot<T, 2>(panel, b0, b1, xs, acc);
    case 3:
      return panel_dot<T, 3>(panel, b0, b1, xs, acc);
    default:
      return panel_dot<T, 4>(panel, b0, b1, xs, acc);
  }
}

}  // namespace

void panel_dot_vnni(DType t, const uint8_t* panel, int64_t b0, int64_t b1, const ActQ8* const* xs,
                    int nt, float* acc) {
  if (t == DType::q8_0)
    panel_dot_n<DType::q8_0>(panel, b0, b1, xs, nt, acc);
  else
    panel_dot_n<DType::q4_0>(panel, b0, b1, xs, nt, acc);
}

}  // namespace tern::kernels
