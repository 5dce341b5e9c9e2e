#include "kernels/fp8_scaling.h"

#include <algorithm>
#include <cmath>

namespace tern::kernels {

float fp8_scale(float amax, bool pow2) {
  if (!(amax >= 1e-30f) || !std::isfinite(amax)) return 1.0f;
  const float s = amax / kE4m3Max;
  if (!pow2) return s;
  int e = 0;
  const float m = std::frexp(s, &e);  // s = m * 2^e, m in [0.5, 1)
  return std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
}

void fp8_quantize_tiles(const float* x, int64_t rows, int64_t cols, int64_t ld, bool pow2, float* q,
                        float* scales) {
  const int64_t tiles = (cols + kFp8Tile - 1) / kFp8Tile;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t c0 = t * kFp8Tile, c1 = std::min(cols, c0 + kFp8Tile);
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[r * ld + c]));
      const float s = fp8_scale(amax, pow2);
      scales[r * tiles + t] = s;
      for (int64_t c = c0; c < c1; ++c) q[r * cols + c] = e4m3_round(x[r * ld + c] / s);
    }
}

void fp8_quantize_blocks(const float* x, int64_t rows, int64_t cols, int64_t ld, bool pow2,
                         float* q, float* scales) {
  const int64_t rb = (rows + kFp8Tile - 1) / kFp8Tile, cb = (cols + kFp8Tile - 1) / kFp8Tile;
  for (int64_t i = 0; i < rb; ++i)
    for (int64_t j = 0; j < cb; ++j) {
      const int64_t r0 = i * kFp8Tile, r1 = std::min(rows, r0 + kFp8Tile);
      const int64_t c0 = j * kFp8Tile, c1 = std::min(cols, c0 + kFp8Tile);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[r * ld + c]));
      const float s = fp8_scale(amax, pow2);
      scales[i * cb + j] = s;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) q[r * cols + c] = e4m3_round(x[r * ld + c] / s);
    }
}

}  // namespace tern::kernels
