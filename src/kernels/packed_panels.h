// Panel-major ("panel-packed") Q8_0 / Q4_0 weights: one prepacked layout that both the
// one-token decode and the many-token integer GEMM read in place, on AVX-512 VNNI.
//
// Why: the 4-row tiles of packed_tiles.h serve decode, but the integer GEMM (int8_gemm.h) wants
// each register to hold 4 consecutive weights of 16 different rows, so a batched step re-packed
// every tile into int8 panels: on the EPYC Zen 5 here that packing was 32% of a batch-16 decode
// of a Q4_0 model, as much as the products (docs/benchmarks.md). Stored in the GEMM's order,
// nothing is packed per call; the kernel only splits Q4_0's nibbles, once per 4 tokens.
//
// Layout: a panel is 32 consecutive rows (the matrix's rows a multiple of 32), kPanelPackRows
// stored rows' bytes; panel p starts at byte p * 32 * row_bytes. Per block b of 32 columns:
//   - the 32 rows' f16 scales (64 bytes), row r's at 2 r;
//   - the quants in 32-bit words, group-major: word j of the block for rows 0..31, row r's at
//     4 * (32 j + r). A word is 4 stored quant bytes of the row's block:
//       Q4_0 (4 words, 512 bytes, block 576 = 32 x 18): bytes 4j..4j+3 as stored, so low nibbles
//         are elements 4j..4j+3 and high nibbles elements 16+4j..16+4j+3, each w + 8;
//       Q8_0 (8 words, 1024 bytes, block 1088 = 32 x 34): elements 4j..4j+3, stored + 128
//         (xor 0x80).
//     Either way every code is unsigned (what vpdpbusd's first operand wants) and the offset
//     (8 or 128) times the block's sum of activation codes is taken off once per token.
// A matrix packed this way is exactly the file's size.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/int8_decode.h"
#include "kernels/matmul.h"
#include "kernels/weight.h"

namespace tern::kernels {

constexpr int64_t kPanelPackRows = 32;
// Tokens one kernel call computes (4 x 2 x 2 accumulators fill half the vector registers).
constexpr int kPanelTokens = 4;

// Whether a [rows, cols] matrix of type t can be panel-packed (Q8_0 / Q4_0, rows a multiple of
// 32, cols of 32). Whether it pays is the caller's choice (panel_kernel() non-null).
bool panel_packable(DType t, int64_t rows, int64_t cols);

// Packs rows [0, rows) of a stored matrix (rows a multiple of 32) into dst (the same size).
void pack_panels(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);
// Blocks [b0, b0 + nb) of row r of a panel-packed matrix in stored form.
void unpack_panel_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                         int64_t nb, uint8_t* out);

// acc[32 t + r] += the products of blocks [b0, b1) of the panel's row r with token xs[t], for
// t < nt (at most kPanelTokens): per block, the exact integer sum, then acc = fma(float(sum),
// d_w * d_x, acc). A call with b0 = 0 starts the sums (acc's old values are not read, so callers
// need not clear it); calls over consecutive block ranges continue them, blocks in order, so
// every kernel agrees with the reference to the bit.
using PanelDot = void (*)(DType t, const uint8_t* panel, int64_t b0, int64_t b1,
                          const ActQ8* const* xs, int nt, float* acc);
void panel_dot_ref(DType t, const uint8_t* panel, int64_t b0, int64_t b1, const ActQ8* const* xs,
                   int nt, float* acc);
// The AVX-512 VNNI kernel where the CPU has it (cpu/int8_panels_vnni.cpp), else null.
PanelDot panel_dot_vnni_if_supported();
// The kernel prepacking chooses panels for: the VNNI one on the avx512 ISA, else null (the 4-row
// tiles serve the other ISAs).
PanelDot panel_dot_kernel();

// y[t, r] (row stride ldy, overwritten) = x[t] · W[r] for a panel-packed w and T tokens (rows
// of x at stride ldx), each token quantised once (int8 blocks of 32, quantize_act_q8_codes):
// the panels are split over `pool`, and each group of 4 tokens passes over a whole panel while
// it sits in L2 (a 1536-wide Q4_0 panel is 27 KB), so each weight is read from memory once.
void panel_matmul(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y,
                  int64_t ldy, ThreadPool& pool);
// Several such matmuls (any token counts; a batch's routed experts) as one parallel loop over
// all their panels, so the pool forks and joins once, not once per matrix; matmuls reading the
// same rows of x (gate and up) quantise them once. Outputs must not overlap any input.
void panel_matmul_group(const MatmulParams* ps, int64_t n, ThreadPool& pool);
// Whether panel_matmul_group takes p: a panel-packed view (and T >= 1).
bool panel_group_takes(const MatmulParams& p);

}  // namespace tern::kernels
