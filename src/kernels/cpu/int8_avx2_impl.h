// The integer decode (int8_decode.h) and packed GEMM tile (int8_gemm.h) on 256-bit registers,
// for CPUs without AVX-512 VNNI. Included by two units: int8_avx2.cpp (AVX2: vpmaddubsw then
// vpmaddwd) and int8_avxvnni.cpp (AVX-VNNI: one vpdpbusd), which define TERN_INT8_AVXVNNI and
// TERN_INT8_SUFFIX before including it.
//
// Both instructions multiply unsigned bytes by signed bytes, so a signed product w * x is taken
// as |w| * (x with w's sign): vpsignb gives both, exactly, for w in [-128, 127] and x in
// [-127, 127] (activation codes never reach -128). vpmaddubsw adds pairs in 16 bits: at most
// 2 * 128 * 127 = 32512, below its saturation, so every block sum stays exact.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/cpu/avx2_helpers.h"
#include "kernels/cpu/tile_prefetch.h"
#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"
#include "kernels/packed_tiles.h"

#define TERN_INT8_CAT2(a, b) a##b
#define TERN_INT8_CAT(a, b) TERN_INT8_CAT2(a, b)
#define TERN_INT8_NAME(base) TERN_INT8_CAT(base, TERN_INT8_SUFFIX)

namespace tern::kernels {
namespace {

// 8 lanes of sums of 4 products u[i] * s[i] (u unsigned, s signed bytes), added to acc.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if TERN_INT8_AVXVNNI
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// Signed w * x summed in groups of 4 bytes, added to acc.
inline __m256i dot_s8s8(__m256i acc, __m256i w, __m256i x) {
  return dot_u8s8(acc, _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

// Q4_0's 32 weights as unsigned nibbles: low nibbles are elements 0..15, high nibbles 16..31.
inline __m256i nibbles(const uint8_t* block) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
  const __m128i low4 = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4),
                          _mm_and_si128(bytes, low4));
}

// The f16 scales of blocks b and b + 1 of the 4 rows times the activations' scales, lane
// 4 * k + r for block b + k of row r: one gather instead of 8 scalar loads and conversions.
// The gather's latency is long, so the kernels ask for the next step's scales a step early.
inline __m256 scales_4x2(const uint8_t* first, __m256i offsets, const float* xd) {
  const __m256i raw = _mm256_i32gather_epi32(reinterpret_cast<const int*>(first), offsets, 1);
  const __m256i low = _mm256_and_si256(raw, _mm256_set1_epi32(0xffff));
  const __m128i h = _mm_packus_epi32(_mm256_castsi256_si128(low), _mm256_extracti128_si256(low, 1));
  const __m256 dx = _mm256_set_m128(_mm_broadcast_ss(xd + 1), _mm_broadcast_ss(xd));
  return _mm256_mul_ps(_mm256_cvtph_ps(h), dx);
}

// Gather offsets of scales_4x2 for blocks of kBytes bytes.
template <int64_t kBytes>
inline __m256i scale_offsets(const uint8_t* const* rows) {
  const int r1 = int(rows[1] - rows[0]), r2 = int(rows[2] - rows[0]), r3 = int(rows[3] - rows[0]);
  return _mm256_setr_epi32(0, r1, r2, r3, kBytes, r1 + kBytes, r2 + kBytes, r3 + kBytes);
}

// Row r's entry of each 128-bit half of v in all 4 of that half's lanes (an in-lane shuffle by
// immediate: no index register, which AVX2's 16 registers cannot spare).
template <int r>
inline __m256 lane_entry(__m256 v) {
  return _mm256_permute_ps(v, r * 0x55);
}

// One block at a time (a Q4_0 row's last n_blocks % 4 blocks, where ActQ8::q4x is in order).
template <DType T>
void dot4_blocks(const uint8_t* const* rows, const ActQ8& x, int64_t b0, int64_t n_blocks,
                 __m256* acc) {
  constexpr int64_t kBytes = T == DType::q8_0 ? 34 : 18;
  for (int64_t b = b0; b < n_blocks; ++b) {
    const __m256i xq = load256(x.q.data() + b * 32);
    const float xd = x.d[size_t(b)];
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = rows[r] + b * kBytes;
      __m256i dot;
      if constexpr (T == DType::q8_0) {
        dot = dot_s8s8(_mm256_setzero_si256(), load256(blk + 2), xq);
      } else {  // sum (nib - 8) x = sum nib x - 8 sum x: each of the 8 lanes starts at -sum x
        dot = dot_u8s8(_mm256_set1_epi32(-x.sum[size_t(b)]), nibbles(blk), xq);
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(f16_at(blk) * xd), acc[r]);
    }
  }
}

// Q8_0, two blocks per step: each block's 32 products in 8 lanes, its scale from one gather of
// the 8 (row, block) scales per step. Prefetching 4 rows down (tile_prefetch.h) is what keeps
// the 4 interleaved row streams from stalling on memory.
void dot4_q8_0(const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks, float* out) {
  constexpr int64_t kBytes = 34;
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i offsets = scale_offsets<kBytes>(rows);
  __m256 acc[4];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const int64_t pairs = n_blocks - n_blocks % 2;
  __m256 next = pairs ? scales_4x2(rows[0], offsets, x.d.data()) : _mm256_setzero_ps();
  for (int64_t b = 0; b < pairs; b += 2) {
    const __m256 sc = next;
    if (b + 2 < pairs) next = scales_4x2(rows[0] + (b + 2) * kBytes, offsets, x.d.data() + b + 2);
    // Each block's 8 lanes take one scale: block b's 4 rows in both halves, then block b + 1's.
    const __m256 s0 = _mm256_permute2f128_ps(sc, sc, 0x00),
                 s1 = _mm256_permute2f128_ps(sc, sc, 0x11);
    const __m256i x0 = load256(x.q.data() + b * 32), x1 = load256(x.q.data() + b * 32 + 32);
    const auto row = [&](auto r_const) {
      constexpr int r = decltype(r_const)::value;
      const uint8_t* blk = rows[r] + b * kBytes + 2;
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      const __m256i d0 = dot_s8s8(_mm256_setzero_si256(), load256(blk), x0);
      const __m256i d1 = dot_s8s8(_mm256_setzero_si256(), load256(blk + kBytes), x1);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), lane_entry<r>(s0), acc[r]);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), lane_entry<r>(s1), acc[r]);
    };
    row(std::integral_constant<int, 0>{});
    row(std::integral_constant<int, 1>{});
    row(std::integral_constant<int, 2>{});
    row(std::integral_constant<int, 3>{});
  }
  dot4_blocks<DType::q8_0>(rows, x, pairs, n_blocks, acc);
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
}

// Q4_0, two blocks per register: the 16 code bytes of blocks b and b + 1 side by side, their
// low nibbles against ActQ8::q4x's first halves and their high nibbles against its second
// halves (both in int16: 4 products of at most 15 * 127 each), so each block owns 4 lanes;
// the offset 8 comes off through ActQ8::init4 (-2 sum q per lane).
void dot4_q4_0(const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks, float* out) {
  constexpr int64_t kBytes = 18;
  const int64_t ahead = tile_prefetch_distance(rows);
  const __m256i offsets = scale_offsets<kBytes>(rows);
  const __m256i low4 = _mm256_set1_epi8(15);
#if !TERN_INT8_AVXVNNI
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  __m256 acc[4];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const int64_t whole = n_blocks - n_blocks % 4;  // q4x is regrouped for whole groups of 4 only
  __m256 next = whole ? scales_4x2(rows[0], offsets, x.d.data()) : _mm256_setzero_ps();
  for (int64_t b = 0; b < whole; b += 2) {
    const __m256 sc = next;
    if (b + 2 < whole) next = scales_4x2(rows[0] + (b + 2) * kBytes, offsets, x.d.data() + b + 2);
    const int8_t* xg = x.q4x.data() + (b & ~int64_t(3)) * 32 + (b & 3) * 16;
    const __m256i xlo = load256(xg), xhi = load256(xg + 64);
    const __m256i init = load256(x.init4.data() + b * 4);
    const auto row = [&](auto r_const) {
      constexpr int r = decltype(r_const)::value;
      const uint8_t* blk = rows[r] + b * kBytes + 2;
      _mm_prefetch(reinterpret_cast<const char*>(blk + ahead), _MM_HINT_T0);
      const __m256i raw = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(blk + kBytes),
                                              reinterpret_cast<const __m128i*>(blk));
      const __m256i lo = _mm256_and_si256(raw, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
#if TERN_INT8_AVXVNNI
      const __m256i dot = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(init, lo, xlo), hi, xhi);
#else
      const __m256i pairs =
          _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
      const __m256i dot = _mm256_add_epi32(init, _mm256_madd_epi16(pairs, ones));
#endif
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), lane_entry<r>(sc), acc[r]);
    };
    row(std::integral_constant<int, 0>{});
    row(std::integral_constant<int, 1>{});
    row(std::integral_constant<int, 2>{});
    row(std::integral_constant<int, 3>{});
  }
  dot4_blocks<DType::q4_0>(rows, x, whole, n_blocks, acc);
  for (int r = 0; r < 4; ++r) out[r] = hsum(acc[r]);
}

// A packed panel (int8_gemm.h) 8 rows at a time: a 256-bit load holds 4 consecutive weights of
// 8 rows. block_sums gives a block's exact integer sums sum w q for the 8 rows and NT tokens,
// one of three ways by the panel's weights; panel_tile scales them by d_w * d_x, adds the
// GGUF panels' per-16 terms, and takes the float steps in the reference's order: equal to the
// bit.
enum class PanelTile { general, small, scaled };

// General (any int8 weight): the activation codes are stored + 128; xor 0x80 gives back the
// signed q, so the integer block sum is sum w q itself (the reference's -128 sum w + sum w
// (q + 128)).
// Small (PackedPanel::small_weights, every weight in [-8, 7]: Q4_0 and the 4-bit GGUF types): the
// codes as stored (unsigned) meet the signed weights in vpmaddubsw directly, a block's 8 results
// add in 16 bits (16 products of at most 255 * 8 per lane: 32640), one vpmaddwd per block widens
// them, and the packed -128 sum w makes the sum exact. A third of the general instructions.
// Scaled (PackedPanel::sc16, every weight in [-64, 63]: the other GGUF types): as small, but each
// pair sum (at most 2 * 255 * 64 = 32640) is widened at once by vpmaddwd against its row's
// integer scale for that half of the block, so the sum is sum sc16 w (q + 128) and the packed
// -128 sum sc16 w makes it sum sc16 w q (at most 32 * 64 * 128 * 255 in magnitude).
template <PanelTile K, int NT>
inline void block_sums(const PackedPanel& p, int64_t b, int g, const uint8_t* const* xq,
                       __m256i* dot) {
  const int8_t* w = p.w.data() + b * 32 * kPanelRows + g * 32;
  const auto act = [&](int t, int k4) {  // 4 activation codes of token t, in every lane
    int32_t group;
    std::memcpy(&group, xq[t] + b * 32 + k4 * 4, 4);
    return _mm256_set1_epi32(group);
  };
  const __m256i nws = load256(p.nws.data() + b * kPanelRows + g * 8);
  if constexpr (K == PanelTile::general) {
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    for (int t = 0; t < NT; ++t) dot[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int k4 = 0; k4 < 8; ++k4) {
      const __m256i wv = load256(w + k4 * kPanelRows * 4);
      const __m256i aw = _mm256_sign_epi8(wv, wv);
      for (int t = 0; t < NT; ++t)
        dot[t] = dot_u8s8(dot[t], aw, _mm256_sign_epi8(_mm256_xor_si256(act(t, k4), flip), wv));
    }
  } else if constexpr (K == PanelTile::small) {
    __m256i s16[NT];
    for (int t = 0; t < NT; ++t) s16[t] = _mm256_setzero_si256();
#pragma GCC unroll 2  // fully unrolled, GCC keeps every product live and spills them
    for (int k4 = 0; k4 < 8; ++k4) {
      const __m256i wv = load256(w + k4 * kPanelRows * 4);
      for (int t = 0; t < NT; ++t)
        s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(act(t, k4), wv));
    }
    for (int t = 0; t < NT; ++t)
      dot[t] = _mm256_add_epi32(_mm256_madd_epi16(s16[t], _mm256_set1_epi16(1)), nws);
  } else {
    for (int t = 0; t < NT; ++t) dot[t] = nws;
#pragma GCC unroll 1
    for (int h = 0; h < 2; ++h) {
      // 8 rows' scales, each in the two 16-bit lanes its 4 weights' pair sums occupy
      const __m128i s8 = _mm_loadu_si128(
          reinterpret_cast<const __m128i*>(p.sc16.data() + (2 * b + h) * kPanelRows + g * 8));
      const __m256i sc = _mm256_set_m128i(_mm_unpackhi_epi16(s8, s8), _mm_unpacklo_epi16(s8, s8));
#pragma GCC unroll 2
      for (int k4 = 4 * h; k4 < 4 * h + 4; ++k4) {
        const __m256i wv = load256(w + k4 * kPanelRows * 4);
        for (int t = 0; t < NT; ++t)
          dot[t] =
              _mm256_add_epi32(dot[t], _mm256_madd_epi16(_mm256_maddubs_epi16(act(t, k4), wv), sc));
      }
    }
  }
}

template <PanelTile K, bool kMins, int NT>
void panel_tile(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                const float* const* xd, const float* const* xs16, float* out) {
  for (int g = 0; g < int(kPanelRows / 8); ++g) {
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = b0; b < b1; ++b) {
      __m256i dot[NT];
      block_sums<K, NT>(p, b, g, xq, dot);
      const __m256 d = _mm256_loadu_ps(p.dw.data() + b * kPanelRows + g * 8);
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[t]),
                                 _mm256_mul_ps(d, _mm256_set1_ps(xd[t][b])), acc[t]);
      if constexpr (kMins) {  // mw times d_x sum q, per half block
        const __m256 m0 = _mm256_loadu_ps(p.mw.data() + 2 * b * kPanelRows + g * 8);
        const __m256 m1 = _mm256_loadu_ps(p.mw.data() + (2 * b + 1) * kPanelRows + g * 8);
        for (int t = 0; t < NT; ++t)
          acc[t] = _mm256_fmadd_ps(m1, _mm256_set1_ps(xs16[t][2 * b + 1]),
                                   _mm256_fmadd_ps(m0, _mm256_set1_ps(xs16[t][2 * b]), acc[t]));
      }
    }
    for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + t * kPanelRows + g * 8, acc[t]);
  }
}

template <PanelTile K, bool kMins>
void panel_tile_nt(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                   const float* const* xd, const float* const* xs16, int nt, float* out) {
  switch (nt) {
    case 1:
      return panel_tile<K, kMins, 1>(p, b0, b1, xq, xd, xs16, out);
    case 2:
      return panel_tile<K, kMins, 2>(p, b0, b1, xq, xd, xs16, out);
    case 3:
      return panel_tile<K, kMins, 3>(p, b0, b1, xq, xd, xs16, out);
    default:
      return panel_tile<K, kMins, 4>(p, b0, b1, xq, xd, xs16, out);
  }
}

// Packed tiles (packed_tiles.h): a block's 4 rows are two 256-bit registers of 2 rows x 16
// bytes, so each instruction serves 2 rows and a thread reads one stream. Lane 4 h + k of the
// register for rows (2 p, 2 p + 1) sums row 2 p + h's elements 4k..4k+3 of the block's first
// half and 16+4k..16+4k+3 of its second, as the AVX-512 kernel's lanes do, so the same start
// values (ActQ8::init4, init4x32) undo the offsets. A group's f16 scales are one 32-byte run.
template <DType T>
void dot4_packed(const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  constexpr int64_t kArea = T == DType::q8_0 ? 128 : 64;  // quant bytes of a block's 4 rows
  const __m256i low4 = _mm256_set1_epi8(15);
  __m256 acc01 = _mm256_setzero_ps(), acc23 = _mm256_setzero_ps();
  const uint8_t* p = tile;
  for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
    const int64_t g = n_blocks - g0 < 4 ? n_blocks - g0 : 4;
    // d_w(row r, block b) * d_x(block b) in lane 4 (b % 2) + r of sc[b / 2].
    alignas(32) uint16_t half[16] = {};
    alignas(16) float dx[4] = {};
    std::memcpy(half, p, size_t(8 * g));
    std::memcpy(dx, x.d.data() + g0, size_t(4 * g));
    const __m256 sc[2] = {
        _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(half))),
                      _mm256_set_m128(_mm_set1_ps(dx[1]), _mm_set1_ps(dx[0]))),
        _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(half + 8))),
                      _mm256_set_m128(_mm_set1_ps(dx[3]), _mm_set1_ps(dx[2])))};
    const uint8_t* q = p + 8 * g;
    for (int64_t b = 0; b < g; ++b) {
      const int8_t* xb = x.q.data() + (g0 + b) * 32;
      const __m256i xl =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb)));
      const __m256i xh =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 16)));
      const uint8_t* qb = q + kArea * b;
      __m256i d01, d23;
      if constexpr (T == DType::q8_0) {  // stored + 128
#if TERN_INT8_AVXVNNI
        const __m256i init = _mm256_set1_epi32(x.init4x32[size_t(g0 + b)]);
        d01 = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(init, load256(qb), xl),
                                      load256(qb + 64), xh);
        d23 = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(init, load256(qb + 32), xl),
                                      load256(qb + 96), xh);
#else
        // vpmaddubsw would saturate on w + 128: back to signed bytes, which need no start value
        const __m256i flip = _mm256_set1_epi8(char(0x80));
        const auto sw = [&](int64_t at) { return _mm256_xor_si256(load256(qb + at), flip); };
        d01 = dot_s8s8(dot_s8s8(_mm256_setzero_si256(), sw(0), xl), sw(64), xh);
        d23 = dot_s8s8(dot_s8s8(_mm256_setzero_si256(), sw(32), xl), sw(96), xh);
#endif
      } else {
        const __m256i init = _mm256_set1_epi32(x.init4[size_t(4 * (g0 + b))]);
        const __m256i w01 = load256(qb), w23 = load256(qb + 32);
        const __m256i lo01 = _mm256_and_si256(w01, low4), lo23 = _mm256_and_si256(w23, low4);
        const __m256i hi01 = _mm256_and_si256(_mm256_srli_epi16(w01, 4), low4);
        const __m256i hi23 = _mm256_and_si256(_mm256_srli_epi16(w23, 4), low4);
#if TERN_INT8_AVXVNNI
        d01 = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(init, lo01, xl), hi01, xh);
        d23 = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(init, lo23, xl), hi23, xh);
#else  // 4 products of at most 15 * 127 per 16-bit pair sum: exact
        const __m256i ones = _mm256_set1_epi16(1);
        d01 = _mm256_add_epi32(init,
                               _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo01, xl),
                                                                  _mm256_maddubs_epi16(hi01, xh)),
                                                 ones));
        d23 = _mm256_add_epi32(init,
                               _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo23, xl),
                                                                  _mm256_maddubs_epi16(hi23, xh)),
                                                 ones));
#endif
      }
      const int h = int(b & 1) * 4;
      const __m256 s = sc[b / 2];
      acc01 = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(d01),
          _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(h, h, h, h, h + 1, h + 1, h + 1, h + 1)),
          acc01);
      acc23 = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(d23),
          _mm256_permutevar8x32_ps(
              s, _mm256_setr_epi32(h + 2, h + 2, h + 2, h + 2, h + 3, h + 3, h + 3, h + 3)),
          acc23);
    }
    p = q + kArea * g;
  }
  // Each row's 4 lanes summed: after two horizontal adds lane 0 holds row 0 (acc01's low
  // half), lane 1 row 2 (acc23's low half), lane 4 row 1 and lane 5 row 3 (the high halves).
  const __m256 h = _mm256_hadd_ps(acc01, acc23);
  const __m256 q = _mm256_hadd_ps(h, h);
  alignas(32) float lane[8];
  _mm256_store_ps(lane, q);
  out[0] = lane[0], out[1] = lane[4], out[2] = lane[1], out[3] = lane[5];
}

}  // namespace

void TERN_INT8_NAME(int8_dot4_)(DType t, const uint8_t* const* rows, const ActQ8& x,
                                int64_t n_blocks, float* out) {
  if (t == DType::q8_0)
    dot4_q8_0(rows, x, n_blocks, out);
  else
    dot4_q4_0(rows, x, n_blocks, out);
}

void TERN_INT8_NAME(packed_dot4_)(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks,
                                  float* out) {
  if (t == DType::q8_0)
    dot4_packed<DType::q8_0>(tile, x, n_blocks, out);
  else
    dot4_packed<DType::q4_0>(tile, x, n_blocks, out);
}

void TERN_INT8_NAME(int8_gemm_tile_)(const PackedPanel& p, int64_t b0, int64_t b1,
                                     const uint8_t* const* xq, const float* const* xd,
                                     const float* const* xs16, int nt, float* out) {
  const bool mins = !p.mw.empty();
  if (!p.sc16.empty())
    return mins ? panel_tile_nt<PanelTile::scaled, true>(p, b0, b1, xq, xd, xs16, nt, out)
                : panel_tile_nt<PanelTile::scaled, false>(p, b0, b1, xq, xd, xs16, nt, out);
  if (p.small_weights)
    return mins ? panel_tile_nt<PanelTile::small, true>(p, b0, b1, xq, xd, xs16, nt, out)
                : panel_tile_nt<PanelTile::small, false>(p, b0, b1, xq, xd, xs16, nt, out);
  return mins ? panel_tile_nt<PanelTile::general, true>(p, b0, b1, xq, xd, xs16, nt, out)
              : panel_tile_nt<PanelTile::general, false>(p, b0, b1, xq, xd, xs16, nt, out);
}

}  // namespace tern::kernels
