// The packed (tile-major) layouts of the k-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K, for
// packed_tiles.h's entry points (which document the layouts) and the kernels in
// cpu/ggml_packed_vnni.cpp.
//
// Both put the codes of a 256-value unit in "register order": 4 registers of 64 codes, register c
// byte b holding value 16 (b / 4) + 4 c + b % 4, so every 32-bit lane l of every register holds 4
// values of the 16-value run l. ActQ8::qk holds the activations in the same order.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern::kernels {

inline bool is_k_packed(DType t) {
  return t == DType::q2_k || t == DType::q3_k || t == DType::q4_k || t == DType::q5_k ||
         t == DType::q6_k;
}

// Byte sizes of one unit of a 4-row tile (4 stored blocks) and offsets inside it.
namespace k_tile {
constexpr int64_t kQ2kUnit = 336;  // 4 x 16 scale/min bytes, 4 x (f16 d, f16 dmin), 4 x 64 codes
constexpr int64_t kQ2kD = 64;      // row r's d, dmin at kQ2kD + 4 r
constexpr int64_t kQ2kCodes = 80;  // row r's low-2-bit codes at kQ2kCodes + 64 r (as Q3_K's)
constexpr int64_t kQ3kUnit = 440;  // 4 x 12 scale bytes, 4 x f16 d, then 4 x 96 code bytes
constexpr int64_t kQ3kD = 48;      // row r's d at kQ3kD + 2 r
constexpr int64_t kQ3kCodes = 56;  // row r's codes at kQ3kCodes + 96 r: 64 bytes of low 2 bits
                                   // (bits 2c: register c), 4 x 64-bit masks of third bits
constexpr int64_t kQ4kUnit = 576;  // 4 x 16-byte heads, then 4 x 128 nibble bytes
constexpr int64_t kQ4kCodes = 64;  // row r's nibbles at kQ4kCodes + 128 r
constexpr int64_t kQ5kUnit = 704;  // Q4_K's heads, then 4 x (128 nibble bytes, 32 bytes of
                                   // fifth bits: register c's as a 64-bit mask at 128 + 8 c);
                                   // row r's codes at kQ4kCodes + 160 r
constexpr int64_t kQ6kUnit = 840;  // 4 x 16 scales, 4 x f16 d, then 4 x 192 code bytes
constexpr int64_t kQ6kD = 64;      // row r's d at kQ6kD + 2 r
constexpr int64_t kQ6kCodes = 72;  // row r's codes at kQ6kCodes + 192 r: 128 low nibbles, 64 tops
}  // namespace k_tile

// Rows [0, rows) of stored Q2_K..Q6_K blocks into tiles (the last tile repeats its
// last row).
void pack_k_tiles(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);
// Blocks [b0, b0 + nb) of row r in stored form.
void unpack_k_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                     int64_t nb, uint8_t* out);

}  // namespace tern::kernels
