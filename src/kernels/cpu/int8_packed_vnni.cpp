// The packed-tile integer decode kernel (packed_tiles.h) on AVX-512 VNNI. Per block, one
// register holds the 4 rows' quants side by side, so every vpdpbusd serves all 4 rows:
// - Q4_0: 64 bytes = 4 rows x 16 nibble bytes; low nibbles meet the block's activations 0..15
//   and high nibbles 16..31, both broadcast to the 4 row lanes; lane 4r + k sums row r's
//   elements 4k..4k+3 and 16+4k..16+4k+3, starting at ActQ8::init4 (-2 * sum per lane: the 4
//   lanes of a row add up to the offset of 8).
// - Q8_0: the same lanes from two registers (elements 0-15 and 16-31 of the 4 rows, stored
//   + 128), starting at -32 * sum per lane (the 4 lanes of a row undo the bias of 128).
// A group's 16 f16 scales arrive with one load and are multiplied by the activation scales
// once for all 4 rows; a lane permute hands each block its rows' scales. Compiled with its own
// -m flags; packed_tiles.cpp calls it only when CPUID reports VNNI.
#include <immintrin.h>

#include "kernels/packed_tiles.h"

namespace tern::kernels {

namespace {

// Lane index vectors over the group's scale vector (lane 4b + r = block b, row r).
inline __m512i rows_of_block(int b) {  // lane 4r + k -> 4b + r
  return _mm512_setr_epi32(4 * b, 4 * b, 4 * b, 4 * b, 4 * b + 1, 4 * b + 1, 4 * b + 1, 4 * b + 1,
                           4 * b + 2, 4 * b + 2, 4 * b + 2, 4 * b + 2, 4 * b + 3, 4 * b + 3,
                           4 * b + 3, 4 * b + 3);
}

// d_w(row r, block b) * d_x(block b) in lane 4b + r for the g blocks of a group.
inline __m512 group_scales(const uint8_t* scales, const float* xd, int64_t g) {
  const __mmask16 lanes = __mmask16((1u << (4 * g)) - 1);
  const __m512 dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, scales));
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m128 dx = _mm_maskz_loadu_ps(__mmask8((1u << g) - 1), xd);
  return _mm512_mul_ps(dw, _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(dx)));
}

// Sum of each group of 4 lanes: out[r] = lanes 4r..4r+3.
inline void sum_lane_quads(__m512 v, float* out) {
  alignas(64) float lane[16];
  _mm512_store_ps(lane, v);
  for (int r = 0; r < 4; ++r)
    out[r] = (lane[4 * r] + lane[4 * r + 1]) + (lane[4 * r + 2] + lane[4 * r + 3]);
}

void dot4_packed_q4_0(const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  const __m512i low4 = _mm512_set1_epi8(15);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  const uint8_t* p = tile;
  for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
    const int64_t g = n_blocks - g0 < 4 ? n_blocks - g0 : 4;
    const __m512 sc = group_scales(p, x.d.data() + g0, g);
    const uint8_t* q = p + 8 * g;
    for (int64_t b = 0; b < g; ++b) {
      const int8_t* xq = x.q.data() + (g0 + b) * 32;
      const __m512i w = _mm512_loadu_si512(q + 64 * b);
      const __m512i lo = _mm512_and_si512(w, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
      const __m512i xl =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq)));
      const __m512i xh =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + 16)));
      const __m512i init = _mm512_set1_epi32(x.init4[size_t(4 * (g0 + b))]);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, xl), hi, xh);
      acc[b & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                   _mm512_permutexvar_ps(rows_of_block(int(b)), sc), acc[b & 1]);
    }
    p = q + 64 * g;
  }
  sum_lane_quads(_mm512_add_ps(acc[0], acc[1]), out);
}

// The same shape as Q4_0: the block's two 64-byte halves hold elements 0-15 and 16-31 of the 4
// rows (stored + 128), lane 4r + k starting at -32 * sum(x): the 4 lanes of a row carry the
// -128 * sum that undoes the bias.
void dot4_packed_q8_0(const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  const uint8_t* p = tile;
  for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
    const int64_t g = n_blocks - g0 < 4 ? n_blocks - g0 : 4;
    const __m512 sc = group_scales(p, x.d.data() + g0, g);
    const uint8_t* q = p + 8 * g;
    for (int64_t b = 0; b < g; ++b) {
      const int8_t* xq = x.q.data() + (g0 + b) * 32;
      const __m512i xl =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq)));
      const __m512i xh =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + 16)));
      const __m512i init = _mm512_set1_epi32(-32 * x.sum[size_t(g0 + b)]);
      const __m512i lo = _mm512_loadu_si512(q + 128 * b), hi = _mm512_loadu_si512(q + 128 * b + 64);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, xl), hi, xh);
      acc[b & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                   _mm512_permutexvar_ps(rows_of_block(int(b)), sc), acc[b & 1]);
    }
    p = q + 128 * g;
  }
  sum_lane_quads(_mm512_add_ps(acc[0], acc[1]), out);
}

}  // namespace

void packed_dot4_vnni(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  if (t == DType::q8_0)
    dot4_packed_q8_0(tile, x, n_blocks, out);
  else
    dot4_packed_q4_0(tile, x, n_blocks, out);
}

}  // namespace tern::kernels
