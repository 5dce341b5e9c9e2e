// Integer GEMM for several tokens (prefill, batched decode) on Q8_0 / Q4_0 weights with int8
// activations: y[t, r] = sum_b d_w(r, b) d_x(t, b) sum_j w(r, b, j) q(t, b, j).
// Owns: quantising a batch of activation rows, packing weight panels into the layout the
// integer dot-product instructions want, the scalar reference tile and threading over panels.
// Does not own: one-token decode (int8_decode.h streams weights as stored, no packing).
//
// Why a packed layout: VNNI's vpdpbusd multiplies 4 bytes by 4 bytes into each 32-bit lane, so
// when a 512-bit register holds 4 consecutive weights of 16 different rows, one instruction
// with a broadcast group of 4 activations does 64 multiply-adds for 16 rows and needs no
// horizontal sum; the per-block scales are applied once per block of 32 as a vector of rows.
// A panel of kPanelRows rows is packed per call into a thread's buffer (never kept), so
// resident memory stays the file's bytes.
//
// Signs: vpdpbusd wants one operand unsigned. Activations are stored as q + 128 (u8) and the
// weights stay signed; each block's integer sum starts at -128 * sum_j w(r, b, j), which the
// packer stores, so the integer result is exactly sum_j w q.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/weight.h"

namespace tern::kernels {

constexpr int64_t kPanelRows = 32;

// T activation rows quantised per block of 32: u8 codes q + 128 with q = round(x / d),
// d = amax / 127 (as quantize_act_q8), and the scales.
struct ActQ8Rows {
  int64_t T = 0, cols = 0;
  std::vector<uint8_t> q;    // [T, cols]
  std::vector<float> d;      // [T, cols / 32]
  std::vector<float> sum16;  // [T, cols / 16]: d times the sum of the 16 signed codes
  const uint8_t* row(int64_t t) const { return q.data() + t * cols; }
  const float* scales(int64_t t) const { return d.data() + t * (cols / 32); }
  const float* sums16(int64_t t) const { return sum16.data() + t * (cols / 16); }
};
// x: [T, cols] with row stride ldx; cols a multiple of 32. Rows are split over `pool` when
// given. Same bits on every ISA (the AVX-512 quantiser repeats the scalar float steps). sum16 is
// filled only `with_sums16` (the GGUF panels' mins need it; the AVX2 quantiser fills it anyway).
void quantize_act_rows(const float* x, int64_t T, int64_t ldx, int64_t cols, ActQ8Rows& out,
                       ThreadPool* pool = nullptr, bool with_sums16 = false);

// kPanelRows rows of weights in the packed layout, for cols / 32 blocks:
//   w   [block][k4 = 0..7][row = 0..31][4 bytes]   (signed int8 weights)
//   dw  [block][row]                               (f32 weight scales)
//   nws [block][row]                               (-128 * sum of the block's weights)
// Rows past the matrix's end are zero.
struct PackedPanel {
  int64_t n_blocks = 0;
  // Every weight in [-8, 7] (Q4_0): the AVX2 tile then adds a block's vpmaddubsw results in 16
  // bits (16 products of at most 255 * 8 per lane: 32640) and widens once per block.
  bool small_weights = false;
  std::vector<int8_t> w;
  std::vector<float> dw;
  std::vector<int32_t> nws;
  // GGUF k-/i-quant panels (pack_panel_ggml) only, empty otherwise:
  //   sc16 [block][half][row] integer scales per 16 weights, every weight in [-64, 63]: a block's
  //     integer sum is sum_j sc16(j / 16) w_j q_j (and nws -128 times sum_j sc16 w_j);
  //   mw   [block][half][row] a per-16-values term: y += mw * d_x * sum of those 16 codes
  //     (ActQ8Rows::sum16, the tile's xs16): the k-quants' mins and the offsets their codes are
  //     centred by.
  std::vector<int16_t> sc16;
  std::vector<float> mw;
};
// Packs rows [r0, r0 + kPanelRows) of a Q8_0 or Q4_0 matrix (cols a multiple of 32); with
// `simd`, by the AVX-512 packer where the CPU has VNNI (the same bytes, transposed in registers).
void pack_panel(const WeightView& w, int64_t r0, PackedPanel& out, bool simd = false);
// The same from a tile-major view (packed_tiles.h; r0 a multiple of 4), without going through
// the stored form (panel_from_tiles.cpp): what pack_panel does with packed views unless the
// AVX-512 packer takes them.
void pack_panel_from_tiles(const WeightView& w, int64_t r0, PackedPanel& out);

// The GGUF block types pack_panel_ggml takes: those whose scales are one per 32 values, or
// integer multiples of one per 256 (Q2_K, Q3_K, Q6_K, IQ2_XS, IQ2_S, IQ1_M): every GGUF block type.
bool ggml_panel_supported(DType t);
// Packs rows [r0, r0 + kPanelRows) of such a matrix (stored form, cols a multiple of 256)
// exactly: weight j of a block is dw * sc16(j / 16) * w_j + mw(j / 16) (sc16 taken as 1 where
// empty) to the f32 rounding of dw * sc16 and of mw.
void pack_panel_ggml(const WeightView& w, int64_t r0, PackedPanel& out);

// One tile: out[t * kPanelRows + r] = the part of y[t, r] from the panel's blocks [b0, b1), for
// t < nt (at most kTileTokens) and all panel rows, from nt activation rows (codes, scales and,
// for panels with mw, the scaled sums per 16: ActQ8Rows::sums16; may be null otherwise). The
// activation pointers are the rows' starts (block b is at b * 32).
constexpr int kTileTokens = 4;
using Int8GemmTile = void (*)(const PackedPanel& p, int64_t b0, int64_t b1,
                              const uint8_t* const* xq, const float* const* xd,
                              const float* const* xs16, int nt, float* out);

// The scalar reference: exact integer block sums, then per block acc = fma(dot, d_w * d_x, acc)
// (and acc = fma(mw, xs16, acc) for each half) in order, which is what every SIMD tile computes
// per row, so they agree to the bit.
void int8_gemm_tile_ref(const PackedPanel& p, int64_t b0, int64_t b1, const uint8_t* const* xq,
                        const float* const* xd, const float* const* xs16, int nt, float* out);
// Each SIMD tile when this CPU runs it, else null.
Int8GemmTile int8_gemm_tile_vnni_if_supported();     // AVX-512 VNNI
Int8GemmTile int8_gemm_tile_avxvnni_if_supported();  // AVX-VNNI
Int8GemmTile int8_gemm_tile_avx2_if_supported();     // AVX2
// The tile for the active ISA: AVX-512 VNNI where the CPU has it, else AVX-VNNI or AVX2 on the
// avx512 / avx2 ISAs, the reference on the scalar ISA.
Int8GemmTile int8_gemm_tile_kernel();

// Whether a tile computes sc16 panels (the AVX2 / AVX-VNNI tiles and the reference).
bool int8_gemm_tile_takes_ggml(Int8GemmTile tile);
// Whether int8_gemm computes w (with the active ISA's tile): Q8_0 / Q4_0, and the types of
// pack_panel_ggml where the tile takes them; whole blocks either way.
bool int8_gemm_takes(const WeightView& w);

// y[t, r] (row stride ldy, overwritten) for x: [T, w.cols] (row stride ldx). Returns false (and
// does nothing) when no integer tile exists for this CPU or int8_gemm_takes(w) says no (for the
// given tile).
bool int8_gemm(const float* x, int64_t ldx, int64_t T, const WeightView& w, float* y, int64_t ldy,
               ThreadPool& pool, Int8GemmTile tile = nullptr);

// The AVX-512 VNNI int8 multiply-add rate on `pool`'s threads in GOP/s (a multiply and an add
// per byte pair; registers only, no memory traffic), or 0 without VNNI: the peak benchmarks
// state next to the integer GEMM's rate where there is no AMX.
double vnni_int8_peak_gops(ThreadPool& pool);
// The same for AVX2's vpmaddubsw (32 byte products per instruction), or 0 without AVX2: the peak
// stated for the AVX2 tiles.
double avx2_int8_peak_gops(ThreadPool& pool);

}  // namespace tern::kernels
