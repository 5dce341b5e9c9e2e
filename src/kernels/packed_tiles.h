// Tile-major ("packed") Q8_0 / Q4_0 / Q2_K..Q6_K weights for the one-token decode kernels.
// As stored in GGUF each row is its own run of blocks, so a 4-row decode tile reads 4 short
// streams (a 1536-wide Q4_0 row is 864 bytes): the hardware prefetchers cannot follow them and
// decode leans on software prefetch. Packed, the 4 rows of a tile are interleaved into one
// stream and consecutive tiles are consecutive, so a thread's share of a matrix is read front
// to back. Measured on the 2-core EPYC here (docs/benchmarks.md, 2026-12-04): 1.2-1.26x the row
// layout's throughput over sets of qwen2-1.5b-sized Q4_0 matrices, +9% on a whole decode.
//
// Layout of one tile (4 rows; a last tile of fewer rows repeats its last row), per group of
// g = 4 blocks (fewer in a row's last group):
//   - the g x 4 f16 scales, block-major: scale(row r, block b) at 2 * (4 * b + r);
//   - then for each block b, the 4 rows' quant bytes in 16-byte pieces, row r's piece at 16 r:
//     Q4_0 one piece a row (its 16 nibble bytes as stored: 64 bytes a block); Q8_0 two, the
//     block's elements 0-15 of the 4 rows then elements 16-31 (128 bytes a block), stored + 128
//     (xor 0x80, the unsigned operand vpdpbusd wants). Either way one 64-byte register holds a
//     half block of all 4 rows, lane 4 r + k holding row r's elements 4k..4k+3 (of that half),
//     so both types share one kernel shape: one scale permute per block.
// Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (packed_k_tiles.h), per 256-value unit, with the codes in
// "register order": 4 registers of 64 codes, register c byte b holding value 16 (b / 4) + 4 c + b %
// 4, so each 32-bit lane l holds values of the 16-value run l only. The unit's 4 vpdpbusd then
// chain into one accumulator of per-run sums, and the scales apply once per row and unit instead of
// once per register (cpu/ggml_packed_vnni.cpp; ActQ8::qk holds the activations in the same order).
//   - Q4_K (576 bytes, nine cache lines when the tile starts on one): the 4 rows' 16-byte block
//     heads as stored (f16 d, f16 dmin, 12 bytes of 6-bit scales and mins), row r's at 16 r, so
//     one load gives the kernel all 4 rows' scales; then each row's 128 nibble bytes at
//     64 + 128 r, byte 64 h + b holding register 2h's code b (low nibble) and 2h + 1's (high).
//   - Q2_K (336 bytes): the 4 rows' 16 scale/min bytes as stored (row r at 16 r), their f16 d and
//     dmin (at 64 + 4 r), then each row's 64 bytes of 2-bit codes at 80 + 64 r (as Q3_K's).
//   - Q3_K (440 bytes): the 4 rows' 12 scale bytes as stored (row r at 12 r), their f16 d (at
//     48 + 2 r), then each row's 96 code bytes at 56 + 96 r: 64 bytes whose bits 2c, 2c + 1 are
//     register c's low 2 bits of code b, then register c's third bits as a 64-bit mask.
//   - Q5_K (704 bytes): Q4_K's heads and nibbles (of the low 4 bits), each row's 128 nibble bytes
//     followed by 32 bytes of fifth bits, register c's as a 64-bit mask (bit b for code b), so the
//     kernel adds them as 16 under that mask; rows at 64 + 160 r.
//   - Q6_K (840 bytes): the 4 rows' 16 int8 scales (row r at 16 r), their f16 d (at 64 + 2 r),
//     then each row's 192 code bytes at 72 + 192 r: the low 4 bits as Q4_K's nibbles (128
//     bytes), then 64 bytes whose bits 2c, 2c + 1 are register c's top 2 bits of code b.
// A tile is exactly 4 stored rows' bytes, so a packed matrix is the size of the file's.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/int8_decode.h"
#include "kernels/weight.h"

namespace tern::kernels {

// Whether `t` has a packed form (Q8_0, Q4_0 and Q2_K..Q6_K).
bool packable_dtype(DType t);
// Bytes of one packed tile: 4 stored rows.
int64_t packed_tile_bytes(DType t, int64_t cols);
// Bytes of a packed [rows, cols] matrix: ceil(rows / 4) tiles.
int64_t packed_bytes(DType t, int64_t rows, int64_t cols);

// Packs rows [0, rows) of a row-major stored matrix (src, as in GGUF) into dst.
void pack_tiles(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);
// Row r of a packed matrix back in its stored form (row_bytes of dtype t, cols): for readers
// that want rows (prefill packers, dequantisation). `panels`: the matrix is in the 32-row panels
// of packed_panels.h (WeightView::panels) rather than 4-row tiles.
void unpack_row(DType t, const uint8_t* packed, int64_t cols, int64_t r, uint8_t* out,
                bool panels = false);
// Blocks [b0, b0 + nb) of row r of a packed matrix in stored form (nb blocks' bytes; blocks of
// the dtype's own size: 32 values, or 256 for the k-quants).
void unpack_row_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                       int64_t nb, uint8_t* out, bool panels = false);

// The 4 rows of one packed tile in stored form, in `scratch` (grown as needed); rows[r] points at
// row r. For the scalar references of the packed kernels.
void unpack_tile_rows(DType t, const uint8_t* tile, int64_t cols, std::vector<uint8_t>& scratch,
                      const uint8_t* rows[4]);

// Row readers of a WeightView that may be packed. Each returns a row-major stored view: `w`'s own
// bytes when it is not packed (no copy), else rows unpacked into `scratch` (grown as needed; the
// view is valid until scratch changes).
// Rows [r0, r0 + n) as a view of n rows (scales and row0 carried over).
WeightView stored_rows(const WeightView& w, int64_t r0, int64_t n, std::vector<uint8_t>& scratch);
// Columns [col0, col0 + n) of row r (col0 on a block edge) as a one-row view of cols >= n.
WeightView stored_row_segment(const WeightView& w, int64_t r, int64_t col0, int64_t n,
                              std::vector<uint8_t>& scratch);
// For the ISA dequantisers (cpu/isa_*.cpp): W[row, col0 : col0+n] of a packed view through
// `dequant` on the unpacked segment, with the scratch kept here (baseline code, so those
// translation units instantiate no containers).
using DequantFn = const float* (*)(const WeightView& w, int64_t row, int64_t col0, int64_t n,
                                   float* out);
const float* dequant_packed(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out,
                            DequantFn dequant);

// out[i] = the 4 rows of one packed tile dotted with x, as Int8Dot4 defines it for stored rows.
using PackedDot4 = void (*)(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks,
                            float* out);
// The scalar reference: unpacks the tile's rows and runs int8_dot4_ref.
void packed_dot4_ref(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out);
// The AVX-512 VNNI kernel where the CPU has it (cpu/int8_packed_vnni.cpp), else null.
PackedDot4 packed_dot4_vnni_if_supported();
// The 256-bit kernels (cpu/int8_avx2_impl.h): AVX-VNNI, and AVX2 (vpmaddubsw), where the CPU has
// them, else null.
PackedDot4 packed_dot4_avxvnni_if_supported();
PackedDot4 packed_dot4_avx2_if_supported();
// The active ISA's kernel: AVX-512 VNNI on the avx512 ISA, else AVX-VNNI or AVX2 on the avx512 /
// avx2 ISAs, else the reference.
PackedDot4 packed_dot4_kernel();

}  // namespace tern::kernels
