// AMX prefill: y = x · Wᵀ for several tokens on Intel AMX BF16 tiles, for every weight dtype.
// Owns: detecting AMX and asking the kernel for the tile state (arch_prctl once per process),
// loading the tile configuration once in each thread that runs a tile, packing activations and
// weight panels into the tiles' layouts, and threading over weight panels.
// Does not own: dequantisation (the ISA's dequant does it, one definition per dtype) or the
// one-token decode path (int8_decode.h: a single token cannot fill a tile).
//
// Why BF16 tiles for the integer formats too: Q8_0 / Q4_0 scale every 32 weights, and an INT8
// tile product over 32 columns would need its int32 result converted and scaled per block and
// per (row, token) on the vector units, which costs more cycles than the tile product itself.
// Dequantising a panel of weights to bf16 once (block scales folded in) and reusing it for
// every token keeps the vector units at a few operations per weight, amortised over T tokens.
//
// Layouts (TDPBF16PS multiplies A [16 x 32 bf16] by B [16 x (16 x 2 bf16)] into C [16 x 16]):
//   A = 16 weight rows x 32 columns, row-major bf16 (dequantised rows, no transpose needed);
//   B = 32 columns of 16 tokens as pairs: B[k2][t][e] = x[t][2 k2 + e];
//   C = [16 weight rows][16 tokens] f32, transposed into y's rows when a panel is done.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/weight.h"

namespace tern::kernels {

// True when the CPU reports AMX-TILE and AMX-BF16 and the kernel granted the tile state.
// TERN_AMX=0 in the environment turns AMX off (to compare with the AVX-512 paths).
bool amx_usable();

// y[t, r] (row stride ldy, overwritten) for x: [T, w.cols] (row stride ldx), with x and the
// dequantised weights rounded to bf16 and products summed in f32. Weights are dequantised by
// `isa` one panel of 32 rows x kColBlock columns at a time into a thread's buffer, never kept.
// Returns false (and does nothing) when AMX is not usable here.
bool amx_gemm(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y, int64_t ldy,
              ThreadPool& pool, const IsaKernels& isa);

// The tile unit's BF16 rate on `pool`'s threads, in GFLOP/s (each thread runs products on
// tiles already loaded, so no memory traffic), or 0 when AMX is not usable: the peak that
// benchmarks state next to the GEMM's rate.
double amx_bf16_peak_gflops(ThreadPool& pool);

}  // namespace tern::kernels
