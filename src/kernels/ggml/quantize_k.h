// Encoders for the GGUF k-quants tern writes (`tern convert --type q4_k|q5_k|q6_k|q4_k_m|...`):
// rows of f32 into Q4_K, Q5_K and Q6_K blocks, byte layouts as ggml/unpack.h decodes them.
// Each sub-block (32 values for Q4_K / Q5_K, 16 for Q6_K) gets the scale (and min) minimising
// the importance-weighted squared error over a small set of candidate scales, each refined by
// least squares on the codes it gives; the super-block then stores those sub-scales as 6-bit
// (8-bit for Q6_K) multiples of one f16 scale, and the codes are chosen again against the
// scales as stored. The weights are ggml's for these types (|x| + rms(sub-block) for the
// asymmetric types, x^2 for Q6_K). No importance matrix: the i-quants that need one are
// llama-quantize's job.
// Owns: the encoders. Does not own: choosing types per tensor (model/gguf_export.cpp).
#pragma once

#include <cstdint>

namespace tern::kernels::ggml {

// n a multiple of 256; out: n / 256 blocks (144, 176 or 210 bytes each).
void quantize_row_q4_k(const float* x, int64_t n, uint8_t* out);
void quantize_row_q5_k(const float* x, int64_t n, uint8_t* out);
void quantize_row_q6_k(const float* x, int64_t n, uint8_t* out);

}  // namespace tern::kernels::ggml
