// Integer decode for group-quantised i8 / i4 weights (DType::i8, DType::i4 with a scale per row
// and group of 32 or 128 columns: the compression issue's int8 / int4 formats) with int8
// activations: x quantised once per matmul to blocks of 32 (int8_decode.h's ActQ8), each
// 32-column block dotted in integers, then scaled by the weight group's scale and the block's
// activation scale. The error is that of the activation rounding alone, as for Q8_0 / Q4_0:
// at most d_x / 2 per value times the weights' L1 norm.
#pragma once

#include <cstdint>

#include "kernels/int8_decode.h"
#include "kernels/weight.h"

namespace tern::kernels {

// Four rows of one i8 / i4 weight (a short tile repeats its last row).
struct IntGroupRows {
  DType dtype = DType::i8;
  const uint8_t* rows[4] = {};
  const float* scales[4] = {};  // each row's group scales (null: 1)
  int64_t cols = 0;             // a multiple of 32
  int64_t group = 128;          // a multiple of 32
};
IntGroupRows int_group_rows(const WeightView& w, int64_t r0);

// out[i] = sum over blocks b of s_w(i, group of b) * d_x(b) * sum_j q_w(i, b, j) q_x(b, j).
using IntGroupDot4 = void (*)(const IntGroupRows& w, const ActQ8& x, float* out);

// The scalar reference: exact integer block sums, blocks accumulated in order in float.
void int_group_dot4_ref(const IntGroupRows& w, const ActQ8& x, float* out);

// AVX-512 VNNI when this CPU has it and the active ISA is avx512, else null (such weights then
// take the exact f32 path, faster there than scalar integer code).
IntGroupDot4 int_group_dot4_kernel();
IntGroupDot4 int_group_dot4_vnni_if_supported();

// Whether the kernels can take w: i8 / i4, whole blocks of 32, groups of whole blocks, one row
// per scale row.
bool int_group_eligible(const WeightView& w);

}  // namespace tern::kernels
