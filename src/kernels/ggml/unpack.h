// GGUF (ggml) quantised blocks in one common form the kernels compute with: every type's weights
// are w[i] = s[i / 16] * (u[i] - offset) + m[i / 16] for unsigned 8-bit codes u, a scale and a
// min per 16 values, and a per-type constant offset. Q4_K's 4-bit codes are u as stored with
// offset 0; Q6_K's 6-bit ones offset 32; the signed codebook types (IQ2 / IQ3 grid values with
// their signs, IQ1's 8 * grid +- 1, IQ4's levels) store u = q + 128. The form is exact: s * (u -
// offset) + m is the value ggml's own dequantisation defines, to the last bit where that is one
// f32 product (sums of two products round the same way, s * q + m).
// Owns: the block layouts (one scalar unpacker per type; the reference every SIMD unpacker and
// dot product is tested against) and dequantisation built on them.
// Does not own: dot products (ggml/ggml_decode.h) or the type table (core/dtype.h).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern::kernels::ggml {

// One unit of up to 256 values: a 256-element block, or up to eight 32-element blocks.
struct Unpacked {
  alignas(64) uint8_t u[256];
  alignas(64) float s[16];
  alignas(64) float m[16];  // all zero for types without mins
};

// Unpacks n32 groups of 32 values (8 for the 256-element types; 1..8 blocks for the others)
// starting at `blocks`. Groups past n32 are left unset.
using UnpackFn = void (*)(const uint8_t* blocks, int n32, Unpacked* out);

struct GgmlTypeKernels {
  UnpackFn unpack;  // the scalar reference
  uint8_t offset;   // subtracted from every code
  bool has_mins;    // m is not identically zero (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K)
};

// The 6-bit scale and min of group j (of 8) in Q4_K / Q5_K's 12 scale bytes: groups 0..3 keep
// theirs in the low 6 bits of bytes j and 4 + j; groups 4..7 have their low 4 bits in byte 8 + j
// - 4 (scale low nibble, min high nibble) and their top 2 in the spare bits 6..7 of bytes j - 4
// and j.
inline void k_scale_min(const uint8_t* sc, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = sc[j] & 63;
    *min = sc[4 + j] & 63;
  } else {
    *scale = (sc[4 + j] & 15) | ((sc[j - 4] >> 6) << 4);
    *min = (sc[4 + j] >> 4) | ((sc[j] >> 6) << 4);
  }
}

// The table entry for a ggml block type (dtype_is_ggml_block); nullptr for any other dtype.
const GgmlTypeKernels* ggml_type_kernels(DType t);

// w[i] for the first n32 * 32 values of u (scalar).
void expand_unpacked(const Unpacked& p, uint8_t offset, int n32, float* out);

// Values [col0, col0 + n) of a row stored as consecutive blocks of type t: col0 and n are
// multiples of the block size, or n runs to `cols`' end (scalar; the exact path's reference).
void dequant_ggml_row(DType t, const uint8_t* row, int64_t col0, int64_t n, float* out);

}  // namespace tern::kernels::ggml
