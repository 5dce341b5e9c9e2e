// Q8_0 / Q4_0 int8 GEMM panels (int8_gemm.h) read straight from tile-major ("packed") weights
// (packed_tiles.h), for CPUs whose panel packer is not the AVX-512 one: a block's half of a
// tile is 4 rows x 16 bytes, and its 4 x 4 transpose of 32-bit words is exactly the panel's 4
// k4 groups of those rows. Before, each panel row was first unpacked back to its stored form
// and packed from there: 14% of an AVX2 Q8_0 prefill. SSE2 only (baseline x86-64).
#include <emmintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/int8_gemm.h"
#include "kernels/packed_tiles.h"

namespace tern::kernels {
namespace {

constexpr int64_t kBlockPanelBytes = 32 * kPanelRows;

// The 4 rows' 16 bytes (a[r]) as the panel's 4 k4 groups, each 4 rows x 4 bytes, at dst, dst +
// 128, dst + 256, dst + 384.
inline void put_transposed(const __m128i* a, int8_t* dst) {
  const __m128i t0 = _mm_unpacklo_epi32(a[0], a[1]), t1 = _mm_unpacklo_epi32(a[2], a[3]);
  const __m128i t2 = _mm_unpackhi_epi32(a[0], a[1]), t3 = _mm_unpackhi_epi32(a[2], a[3]);
  const __m128i k[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1),
                        _mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)};
  for (int i = 0; i < 4; ++i)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i * kPanelRows * 4), k[i]);
}

// The sum of 16 signed bytes.
inline int32_t sum16(__m128i v) {
  const __m128i s = _mm_sad_epu8(_mm_xor_si128(v, _mm_set1_epi8(char(0x80))), _mm_setzero_si128());
  return _mm_cvtsi128_si32(s) + _mm_extract_epi16(s, 4) - 16 * 128;
}

}  // namespace

void pack_panel_from_tiles(const WeightView& w, int64_t r0, PackedPanel& out) {
  TERN_CHECK(w.packed && (w.dtype == DType::q8_0 || w.dtype == DType::q4_0) && w.cols % 32 == 0 &&
             r0 % 4 == 0);
  const bool q8 = w.dtype == DType::q8_0;
  const int64_t nb = w.cols / 32, nr = std::min(kPanelRows, w.rows - r0);
  const int64_t area = q8 ? 128 : 64, tile_bytes = packed_tile_bytes(w.dtype, w.cols);
  out.n_blocks = nb;
  out.small_weights = !q8;
  // Every byte is written below except for rows past the end: only a partial panel is zeroed
  // first (zeroing every panel was 4% of an AVX2 batch-16 decode).
  out.w.resize(size_t(nb * kBlockPanelBytes));
  out.dw.resize(size_t(nb * kPanelRows));
  out.nws.resize(size_t(nb * kPanelRows));
  if (nr < kPanelRows) {
    std::fill(out.w.begin(), out.w.end(), int8_t(0));
    std::fill(out.dw.begin(), out.dw.end(), 0.0f);
    std::fill(out.nws.begin(), out.nws.end(), 0);
  }
  out.sc16.clear();
  out.mw.clear();
  const __m128i low4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
  for (int64_t rr = 0; rr < nr; rr += 4) {
    const int live = int(std::min<int64_t>(4, nr - rr));  // a last tile repeats its last row
    const uint8_t* p = static_cast<const uint8_t*>(w.data) + (r0 + rr) / 4 * tile_bytes;
    for (int64_t g0 = 0; g0 < nb; g0 += 4) {
      const int64_t g = std::min<int64_t>(4, nb - g0);
      const uint8_t* q = p + 8 * g;  // the group's f16 scales first, block-major
      for (int64_t b = 0; b < g; ++b) {
        const int64_t blk = g0 + b;
        for (int r = 0; r < live; ++r) {
          uint16_t h;
          std::memcpy(&h, p + 2 * (4 * b + r), 2);
          out.dw[size_t(blk * kPanelRows + rr + r)] = f16_to_f32(h);
        }
        __m128i v[2][4];  // halves (elements 0-15, 16-31) x rows
        for (int r = 0; r < 4; ++r) {
          if (r >= live) {
            v[0][r] = v[1][r] = _mm_setzero_si128();
            continue;
          }
          if (q8) {  // stored + 128: xor gives the signed weights back
            for (int half = 0; half < 2; ++half)
              v[half][r] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                             q + area * b + 64 * half + 16 * r)),
                                         _mm_set1_epi8(char(0x80)));
          } else {  // low nibbles elements 0-15, high 16-31, offset 8
            const __m128i x =
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + area * b + 16 * r));
            v[0][r] = _mm_sub_epi8(_mm_and_si128(x, low4), eight);
            v[1][r] = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), low4), eight);
          }
          out.nws[size_t(blk * kPanelRows + rr + r)] = -128 * (sum16(v[0][r]) + sum16(v[1][r]));
        }
        for (int half = 0; half < 2; ++half)
          put_transposed(v[half], out.w.data() + blk * kBlockPanelBytes +
                                      (4 * half) * kPanelRows * 4 + rr * 4);
      }
      p = q + area * g;
    }
  }
}

}  // namespace tern::kernels
