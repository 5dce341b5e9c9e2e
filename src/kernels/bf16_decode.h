// Decode on bf16 and FP8 e4m3 weights with bf16 dot products (the "fast" kernels for the
// formats that are floats already; Q8_0 / Q4_0 take int8_decode.h): the activation row is
// rounded once per matmul to bf16 (nearest, ties to even: a relative error of at most 2^-9 per
// value), and each weight is widened in registers to bf16 — exactly, since e4m3's 3 mantissa
// bits and exponents 2^-9..2^8 all fit — then multiplied pairwise with products summed in f32
// (AVX-512 BF16 vdpbf16ps). FP8's 128 x 128 block scales are applied once per block of a row's
// partial sum. A dot therefore moves by at most 2^-9 * sum|w x| from the exact one; the
// fixtures' logits stay within 0.1 (tests/kernels/test_bf16_decode.cpp, tests/model).
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/weight.h"

namespace tern::kernels {

// x rounded to bf16 bits, n values, in two orders:
// v: as x;
// v64: per group of 64 values, the order in which the VBMI FP8 kernel widens 64 weights — two
//   registers built by unpacking bytes within 128-bit lanes, the first holding values 0-7,
//   16-23, 32-39, 48-55 of the group and the second 8-15, 24-31, 40-47, 56-63 (a tail of
//   n % 64 values stays in order).
struct ActBF16 {
  std::vector<uint16_t> v, v64;
};
void round_act_bf16(const float* x, int64_t n, ActBF16& out);

// Four rows of one weight (a short tile repeats its last row) as the kernels read them.
struct Bf16Rows {
  DType dtype = DType::bf16;           // bf16 or f8_e4m3
  const uint8_t* rows[4] = {};         // each row's first byte
  const float* scales[4] = {};         // fp8: each row's scale row (null: scale 1)
  int64_t cols = 0, block_cols = 128;  // cols % 32 == 0; fp8: block_cols % 32 == 0
};
Bf16Rows bf16_rows(const WeightView& w, int64_t r0);

// out[i] = sum over the row's scale blocks of scale * dot(bf16(W[i, block]), x[block]).
using Bf16Dot4 = void (*)(const Bf16Rows& w, const ActBF16& x, float* out);

// The scalar reference: products summed in order in f32 within each scale block (reads x.v).
void bf16_dot4_ref(const Bf16Rows& w, const ActBF16& x, float* out);

// Up to 4 tokens through one 4-row tile (batched decode, an expert's share of a batch, MTP
// verification), each weight widened once for every token: out[4 * t + r] for t < nt. Each
// token's results equal what the one-token kernel gives it, to the bit.
using Bf16Dot4xN = void (*)(const Bf16Rows& w, const ActBF16* const* xs, int nt, float* out);
void bf16_dot4xn_avx512bf16(const Bf16Rows& w, const ActBF16* const* xs, int nt, float* out);

// AVX-512 BF16 when this CPU runs it and the active ISA is avx512, else null (the f32 path).
Bf16Dot4 bf16_dot4_kernel();
Bf16Dot4 bf16_dot4_avx512bf16_if_supported();

// Several tokens (prefill, batched decode) on any float weight format with AVX-512 BF16 where
// there is no AMX: each call rounds x to bf16 once; each thread dequantises a 4-row tile of W
// (block scales folded in) to bf16 one 2048-column chunk at a time and runs 4 rows x 4 tokens
// per vdpbf16ps micro-kernel over it. W rounded to bf16 adds at most 2^-9 |w| per weight (none
// for bf16 and FP8 without scales); values below 2^-126 round to 0 (vcvtneps2bf16). y [T, w.rows]
// (row stride ldy) is overwritten. False when this CPU has no AVX-512 BF16 (or the active ISA is
// not avx512).
bool bf16_gemm(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y, int64_t ldy,
               ThreadPool& pool);

// The micro-kernel: out[4 * t + r] = dot(w[r], x[t]) for r < 4, t < nt (<= 4), n % 32 == 0;
// bf16 values, products summed in f32. The scalar reference, and the AVX-512 BF16 one or null.
using Bf16Dot4x4 = void (*)(const uint16_t* const* w, const uint16_t* const* x, int nt, int64_t n,
                            float* out);
void bf16_dot4x4_ref(const uint16_t* const* w, const uint16_t* const* x, int nt, int64_t n,
                     float* out);
Bf16Dot4x4 bf16_dot4x4_avx512bf16_if_supported();

// Whether the kernel above can take w: bf16 or fp8 (block columns a multiple of 32), whole
// 32-column groups.
bool bf16_decode_eligible(const WeightView& w);

}  // namespace tern::kernels
