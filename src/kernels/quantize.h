// Weight quantisers: FP8 e4m3 with 2-D block scales (DeepSeek-V3's released format, spec §10.1).
// Owns: encoding f32 weights. Does not own: choosing what to quantise (train/, apps).
#pragma once

#include <cstdint>

namespace tern::kernels {

// w: [rows, cols] f32 -> out: [rows, cols] e4m3 bytes and scales: [ceil(rows/br), ceil(cols/bc)]
// with scale = amax(block) / 448 (1 for an all-zero block), so W ~= fp8 * scale.
void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, int64_t br, int64_t bc,
                         uint8_t* out, float* scales);

}  // namespace tern::kernels
