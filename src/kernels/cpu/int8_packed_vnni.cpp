// The packed-tile integer decode kernel (packed_tiles.h) on AVX-512 VNNI. Per block, one
// register holds the 4 rows' quants side by side, so every vpdpbusd serves all 4 rows:
// - Q4_0: 64 bytes = 4 rows x 16 nibble bytes; low nibbles meet the block's activations 0..15
//   and high nibbles 16..31, both broadcast to the 4 row lanes; lane 4r + k sums row r's
//   elements 4k..4k+3 and 16+4k..16+4k+3, starting at ActQ8::init4 (-2 * sum per lane: the 4
//   lanes of a row add up to the offset of 8).
// - Q8_0: the same lanes from two registers (elements 0-15 and 16-31 of the 4 rows, stored
//   + 128), starting at ActQ8::init4x32 (-32 * sum per lane: the 4 lanes undo the bias of 128).
// The start values are broadcast loads from ActQ8, so the integer sums end exact.
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

// Block b's integer sums, lane 4r + k for row r (the layout in packed_tiles.h), starting at the
// share of the offset each lane undoes: Q4_0's nibbles are w + 8 (-8 * sum(x) over a row's 4
// lanes), Q8_0's bytes w + 128 (-128 * sum(x)).
template <DType T>
inline __m512i block_sums(const uint8_t* q, const int8_t* xq, int32_t init_lane) {
  const __m512i xl = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq)));
  const __m512i xh =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + 16)));
  __m512i lo, hi, init;
  if constexpr (T == DType::q8_0) {
    lo = _mm512_loadu_si512(q);
    hi = _mm512_loadu_si512(q + 64);
    init = _mm512_set1_epi32(init_lane);
  } else {
    const __m512i low4 = _mm512_set1_epi8(15), w = _mm512_loadu_si512(q);
    lo = _mm512_and_si512(w, low4);
    hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
    init = _mm512_set1_epi32(init_lane);
  }
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo, xl), hi, xh);
}

// Two accumulators named, not indexed: an indexed pair lived on the stack, and the reload and
// store-forward sat on every block's FMA chain (8% of the kernel's samples).
template <DType T>
void dot4_packed(const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  constexpr int64_t kArea = T == DType::q8_0 ? 128 : 64;  // quant bytes of a block's 4 rows
  __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();
  const uint8_t* p = tile;
  for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
    const int64_t g = n_blocks - g0 < 4 ? n_blocks - g0 : 4;
    const __m512 sc = group_scales(p, x.d.data() + g0, g);
    const uint8_t* q = p + 8 * g;
    const auto add = [&](int b, __m512 acc) {
      const int32_t init =
          T == DType::q8_0 ? x.init4x32[size_t(g0 + b)] : x.init4[size_t(4 * (g0 + b))];
      const __m512i dot = block_sums<T>(q + kArea * b, x.q.data() + (g0 + b) * 32, init);
      return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(rows_of_block(b), sc),
                             acc);
    };
    if (g == 4) {
      even = add(0, even);
      odd = add(1, odd);
      even = add(2, even);
      odd = add(3, odd);
    } else {
      for (int b = 0; b < int(g); ++b)
        if (b & 1)
          odd = add(b, odd);
        else
          even = add(b, even);
    }
    p = q + kArea * g;
  }
  sum_lane_quads(_mm512_add_ps(even, odd), out);
}

}  // namespace

void packed_dot4_vnni(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  if (t == DType::q8_0)
    dot4_packed<DType::q8_0>(tile, x, n_blocks, out);
  else
    dot4_packed<DType::q4_0>(tile, x, n_blocks, out);
}

}  // namespace tern::kernels
