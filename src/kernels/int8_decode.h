// Integer decode for Q8_0 / Q4_0 weights (the "fast" kernels; the exact path dequantises to f32):
// the activation row is quantised once per matmul to int8 blocks of 32 — scale d = amax/127,
// q = round(x/d), and each block's sum of q for Q4_0's offset of 8 — and each weight block is
// dotted in integers, then scaled by the weight's f16 scale and d. Rounding x costs at most
// d/2 = amax/254 per value, so a block's dot moves by at most (amax/254) * sum|w| (0.4% of the
// block's largest activation times the weights' L1 norm); the fixtures' logits stay within
// 0.1 of the exact path (tests/kernels/test_int8_decode.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace tern::kernels {

struct ActQ8 {
  std::vector<int8_t> q;       // [n]
  std::vector<float> d;        // [n / 32] block scales
  std::vector<int32_t> sum;    // [n / 32] sum of each block's q
  std::vector<int32_t> sum16;  // [n / 16] the same per half block (Q2_K's mins are per 16)
  // Layouts the SIMD kernels read (one pass over n bytes, shared by every weight row):
  // init8 [n / 32 * 8]: -16 * sum per 32-bit lane, 8 lanes per block, so a vpdpbusd over a
  //   Q8_0 block whose weights are stored + 128 (xor 0x80) starts at -128 * sum and ends exact;
  // q4x [n]: per group of 4 blocks, the 4 first halves (elements 0..15) then the 4 second halves,
  //   matching a register of 4 Q4_0 blocks' low and high nibbles (the last n/32 % 4 blocks are
  //   left in order); init4 [n / 32 * 4]: -2 * sum per lane, 4 lanes per block (the offset 8).
  // qeo [n]: per group of 128 values (4 blocks), the 64 even-indexed then the 64 odd-indexed
  //   ones, matching a register of 64 i4 bytes' low and high nibbles (DType::i4 keeps element
  //   2k in the low nibble of byte k); a tail of n % 128 values stays in order.
  // init4x32 [n / 32]: -32 * sum, one per block: the 4 lanes of a row in the packed Q8_0 layout
  //   (packed_tiles.h; stored + 128) start there and end at -128 * sum.
  std::vector<int32_t> init8, init4, init4x32;
  // panel8 / panel128 [n / 32]: -8 * sum and -128 * sum, where the panel kernel's integer sums
  //   start (packed_panels.h: Q4_0's nibbles and Q8_0's codes + 128 are unsigned); loaded as
  //   they are, since moving a computed value into a vector register showed as 5-10% there.
  std::vector<int32_t> panel8, panel128;
  std::vector<int8_t> q4x, qeo;
  // qk [n] (n a multiple of 256), for the packed k-quant kernels, filled on demand by
  //   regroup_act_k: per 256-value unit, 64-byte register c, byte b = value 16 (b / 4) + 4 c +
  //   b % 4 (packed_k_tiles.h's register order). has_qk says it matches q (quantising clears it).
  std::vector<int8_t> qk;
  bool has_qk = false;
};

// Fills x.qk from x.q unless it is current. x.q's size must be a multiple of 256.
void regroup_act_k(ActQ8& x);

// One block of 32 activations: q[j] = round(x[j] / d) with d = amax / 127 (0 for an all-zero
// block, whose codes are 0); returns d. Every int8 kernel quantises activations with this.
float quantize_block_q8(const float* x, int8_t* q);

// n must be a multiple of 32. AVX-512 where the CPU has VNNI; the same bits as the scalar form
// (the same float steps, rounding to nearest even), which tests compare it with.
void quantize_act_q8(const float* x, int64_t n, ActQ8& out);
void quantize_act_q8_scalar(const float* x, int64_t n, ActQ8& out);
// The same codes, scales and sums (q, d, sum, sum16, panel8, panel128) without the other derived
// layouts, which are left empty: for kernels that read nothing else (the panel kernel,
// packed_panels.h), where a prefill's millions of activations made the layouts a tenth of the
// time.
void quantize_act_q8_codes(const float* x, int64_t n, ActQ8& out);

// out[i] = sum over n_blocks blocks b of d_w(rows[i], b) * x.d[b] * sum_j w(rows[i], b, j) * x.q,
// for the 4 rows whose Q8_0 (34-byte) or Q4_0 (18-byte) blocks start at rows[i].
using Int8Dot4 = void (*)(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                          float* out);

// The scalar reference (exact integer sums per block, blocks accumulated in order in float).
void int8_dot4_ref(DType t, const uint8_t* const* rows, const ActQ8& x, int64_t n_blocks,
                   float* out);

// The kernel for the active ISA: AVX-512 VNNI where the CPU has it, else AVX-VNNI or AVX2 on
// the avx512 / avx2 ISAs, the reference on the scalar ISA.
Int8Dot4 int8_dot4_kernel();

// Up to 4 tokens through one 4-row tile, the weights read once: out[4 * t + r] for t < nt.
// Returns false when the kernel has no multi-token form for `t` (run the one-token kernel per
// token instead).
using Int8Dot4xN = bool (*)(DType t, const uint8_t* const* rows, const ActQ8* const* xs, int nt,
                            int64_t n_blocks, float* out);
// The active ISA's multi-token kernel (AVX-512 VNNI + VBMI, Q4_0), else null.
Int8Dot4xN int8_dot4xn_kernel();

// Each SIMD kernel when this CPU runs it, else null (tests compare them with the reference).
Int8Dot4 int8_dot4_vnni_if_supported();        // AVX-512 VNNI (with VBMI where the CPU has it)
Int8Dot4 int8_dot4_vnni_plain_if_supported();  // AVX-512 VNNI without the VBMI kernels
Int8Dot4 int8_dot4_avxvnni_if_supported();     // AVX-VNNI (256-bit vpdpbusd)
Int8Dot4 int8_dot4_avx2_if_supported();        // AVX2 (vpmaddubsw + vpmaddwd)

}  // namespace tern::kernels
