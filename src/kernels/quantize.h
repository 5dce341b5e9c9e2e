// Weight quantisers: FP8 e4m3 with 2-D block scales (DeepSeek-V3's released format, spec §10.1),
// and rows of the GGUF storage types (f16, bf16, ggml's Q8_0 and Q4_0 blocks).
// Owns: encoding f32 weights. Does not own: choosing what to quantise (train/, apps).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern::kernels {

// w: [rows, cols] f32 -> out: [rows, cols] e4m3 bytes and scales: [ceil(rows/br), ceil(cols/bc)]
// with scale = amax(block) / 448 (1 for an all-zero block), so W ~= fp8 * scale.
void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, int64_t br, int64_t bc,
                         uint8_t* out, float* scales);

// One row of n values -> dtype_bytes_for(t, n) bytes of `t` (f32, f16, bf16, q8_0, q4_0, or
// the k-quants q4_k, q5_k, q6_k of ggml/quantize_k.h; n a multiple of the block size). Q8_0 and
// Q4_0 follow ggml's reference quantisers (Q8_0: d = amax/127, q = round(x/d); Q4_0: d = -(value of
// largest magnitude)/8, q = min(15, trunc(x/d + 8.5)), low nibbles elements 0..15), so files match
// llama.cpp's. Fails (format) for other dtypes or a partial block.
void quantize_row(DType t, const float* x, int64_t n, uint8_t* out);

// w: [rows, cols] f32 -> symmetric integers of `bits` (8: i8 bytes; 4: i4, two per byte, see
// DType::i4) with one f32 scale per row and group of `group` columns: scale = amax / (2^(bits-1)
// - 1) (1 for an all-zero group), q = clamp(round(x / scale), -2^(bits-1), 2^(bits-1) - 1).
// out: rows * dtype_bytes_for(i8 or i4, cols) bytes; scales: [rows, ceil(cols / group)].
// cols must be even for 4 bits.
void quantize_int_groups(const float* w, int64_t rows, int64_t cols, int bits, int64_t group,
                         uint8_t* out, float* scales);

}  // namespace tern::kernels
