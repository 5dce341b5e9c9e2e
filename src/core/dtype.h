// Element types and exact scalar conversions between them and f32.
// Owns: the DType enum, its names/sizes, and bit-exact scalar conversions (the reference for SIMD).
// Does not own: bulk/SIMD conversion (kernels/) or file-format type codes (formats/ map to these).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tern {

// Block-quantized types (q8_0, q4_0 and the other GGUF / ggml quantisations after them) keep
// ggml's block layouts byte for byte: 32 elements per block (q*_0, q*_1, iq4_nl) or 256 (the
// k-quants and i-quants), scales inside each block (kernels/ggml_quants.h decodes them).
// i4 packs two signed 4-bit integers per byte, each stored + 8, element 2k in the low nibble of
// byte k (the compressed-tensors "pack-quantized" order); as weights, i8 and i4 take a scale
// per group of columns from kernels::WeightView.
enum class DType : uint8_t {
  f32,
  f16,
  bf16,
  f8_e4m3,
  f8_e5m2,
  i8,
  i16,
  i32,
  i64,
  u8,
  boolean,
  f64,
  q8_0,
  q4_0,
  i4,
  // The ggml block types from here on (dtype_is_ggml_block tests `>= q4_1`): keep them last.
  q4_1,
  q5_0,
  q5_1,
  q2_k,
  q3_k,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  iq4_xs,
  iq3_xxs,
  iq3_s,
  iq2_xxs,
  iq2_xs,
  iq2_s,
  iq1_s,
  iq1_m,
};

std::string_view dtype_name(DType t);
// Parses a dtype_name(); returns false for an unknown name.
bool dtype_from_name(std::string_view name, DType* out);

// Elements per storage block (1 for plain types, 2 for i4, 32 or 256 for the ggml types).
int64_t dtype_block_elems(DType t);
// Bytes per storage block.
int64_t dtype_block_bytes(DType t);
// Bytes for n elements; fails (ErrorKind::format) when n is not a whole number of blocks.
int64_t dtype_bytes_for(DType t, int64_t n_elems);
bool dtype_is_float(DType t);
// A ggml block type (q8_0, q4_0, ..., iq1_m): blocks along a row, each with its own scales.
bool dtype_is_ggml_block(DType t);

// bf16: top 16 bits of an f32. f32->bf16 rounds to nearest, ties to even; NaN stays a quiet NaN.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

// IEEE binary16. f32->f16 rounds to nearest even, overflows to inf, keeps NaN quiet.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// OCP FP8 E4M3FN: bias 7, no infinities, NaN = S.1111.111, max finite 448.
// f32->e4m3 rounds to nearest even and SATURATES to +-448 (inf too), as DeepSeek's
// quantisation does; NaN maps to 0x7F/0xFF.
float fp8_e4m3_to_f32(uint8_t b);
uint8_t f32_to_fp8_e4m3(float f);

// OCP FP8 E5M2: IEEE-like, bias 15, has inf and NaN. f32->e5m2 rounds to nearest even and,
// like IEEE (and torch), overflows to +-inf; inf stays inf, NaN becomes 0x7E/0xFE.
float fp8_e5m2_to_f32(uint8_t b);
uint8_t f32_to_fp8_e5m2(float f);

}  // namespace tern
