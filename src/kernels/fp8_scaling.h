// FP8 training quantisation as DeepSeek-V3 trains: GEMM inputs rounded to E4M3 with one scale
// per 1x128 tile (activations, gradients) or per 128x128 block (weights), the scale set online
// from the tile's max-abs so the largest value maps to E4M3's 448. Owns the rounding and the
// scale rule; lowp_gemm.cpp applies them while packing. Values stay in f32 (q times scale is
// the dequantised value); no byte format is involved, so the numbers are the recipe's and the
// GEMM can run on any unit that multiplies E4M3 values exactly (bf16 dot products do).
#pragma once

#include <cstdint>
#include <cstring>

namespace tern::kernels {

constexpr float kE4m3Max = 448.0f;
constexpr int64_t kFp8Tile = 128;  // the tile length and block side of the recipe

// v rounded to the nearest E4M3 value (ties to even), saturating to +-448; NaN stays NaN.
// Subnormals (multiples of 2^-9 below 2^-6) are kept, as the format has them.
inline float e4m3_round(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t sign = u & 0x80000000u, mag = u & 0x7fffffffu;
  if (mag >= 0x7f800000u) {
    if (mag > 0x7f800000u) return v;  // NaN
    return sign ? -kE4m3Max : kE4m3Max;
  }
  float a;
  if (mag < 0x3c800000u) {  // below 2^-6: the subnormal grid, step 2^-9
    std::memcpy(&a, &mag, 4);
    a = __builtin_nearbyintf(a * 512.0f) * (1.0f / 512.0f);
  } else {  // keep 3 mantissa bits, ties to even
    const uint32_t r = (mag + 0x7ffffu + ((mag >> 20) & 1u)) & 0xfff00000u;
    std::memcpy(&a, &r, 4);
    if (a > kE4m3Max) a = kE4m3Max;
  }
  uint32_t out;
  std::memcpy(&out, &a, 4);
  out |= sign;
  std::memcpy(&a, &out, 4);
  return a;
}

// The scale of a tile whose largest magnitude is amax: amax / 448, or with pow2 the smallest
// power of two at least that (so dequantisation is exact in any binary format). A tile of
// zeros (or of values below 1e-30, which round to zero anyway) gets scale 1.
float fp8_scale(float amax, bool pow2);

// Reference quantisation of a row-major [rows, cols] matrix (row stride ld), q = e4m3(x / s):
// tiles of 1 x 128 along each row (scales [rows, ceil(cols/128)]), or blocks of 128 x 128
// (scales [ceil(rows/128), ceil(cols/128)]). q is [rows, cols] contiguous. The GEMM's packer
// computes the same numbers tile by tile; the tests hold both to a numpy reference.
void fp8_quantize_tiles(const float* x, int64_t rows, int64_t cols, int64_t ld, bool pow2, float* q,
                        float* scales);
void fp8_quantize_blocks(const float* x, int64_t rows, int64_t cols, int64_t ld, bool pow2,
                         float* q, float* scales);

}  // namespace tern::kernels
