// WeightView: a read-only [rows, cols] matrix in any storage dtype, with its dequantisation
// metadata (FP8 block scales). Owns nothing. Kernels take these so one matmul serves
// f32 / bf16 / f16 / fp8+scales / i8 / i4 / ggml-quantised weights without converting them.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tern::kernels {

// Throws ErrorKind::internal: a row reader met a packed view (matmul.cpp; out of line so the
// ISA translation units, compiled with their own -m flags, instantiate no string code).
[[noreturn]] void fail_packed_row_read(const char* where);

struct WeightView {
  DType dtype = DType::f32;
  int64_t rows = 0;  // out_features
  int64_t cols = 0;  // in_features
  const void* data = nullptr;
  // fp8, i8, i4: scale_inv [ceil(rows/block_rows), ceil(cols/block_cols)] (f32, row-major);
  // W[r, c] = float(w[r, c]) * scales[(r / block_rows) * n_block_cols + c / block_cols]. FP8
  // uses DeepSeek-V3's 128 x 128 blocks; the integer formats a group of columns of one row
  // (block_rows = 1, block_cols = 32 or 128: compressed-tensors' group quantisation). Null
  // scales mean 1.
  const float* scales = nullptr;
  int64_t block_rows = 128, block_cols = 128;
  // Row of the parent matrix that this view's row 0 is (views of row ranges, e.g. one head of
  // kv_b_proj or one expert of a stacked tensor); only scale lookups use it, since `data`
  // already points at that row.
  int64_t row0 = 0;
  // Q8_0 / Q4_0 / Q2_K..Q6_K only: `data` holds the tile-major layout of packed_tiles.h
  // (prepacked at load for the decode kernels) instead of rows. A tile is 4 stored rows' bytes, so
  // row_range at a multiple of 4 rows is still a byte offset; readers that want rows unpack them
  // (packed_tiles.h stored_rows / stored_row_segment), and row_ptr refuses, so a reader that
  // forgot fails loudly instead of reading shuffled bytes.
  bool packed = false;
  // With packed, Q8_0 / Q4_0 only: the 32-row panels of packed_panels.h instead of 4-row tiles
  // (prepacked so on AVX-512 VNNI, where one layout then serves decode and the integer GEMM). A
  // panel is 32 stored rows' bytes: row_range must start on a panel edge.
  bool panels = false;

  int64_t n_block_cols() const { return (cols + block_cols - 1) / block_cols; }
  const float* scale_row(int64_t r) const {
    return scales ? scales + ((row0 + r) / block_rows) * n_block_cols() : nullptr;
  }
  // Rows [begin, begin + n) as their own view (zero-copy).
  WeightView row_range(int64_t begin, int64_t n) const {
    if (packed && begin % (panels ? 32 : 4)) fail_packed_row_read("row_range off a tile edge");
    WeightView v = *this;
    v.data = static_cast<const uint8_t*>(data) + begin * row_bytes();
    v.rows = n;
    v.row0 = row0 + begin;
    return v;
  }
  // Bytes of one stored row (block types pack cols/32 blocks per row).
  int64_t row_bytes() const { return dtype_bytes_for(dtype, cols); }
  const uint8_t* row_ptr(int64_t r) const {
    if (packed) fail_packed_row_read("row_ptr");
    return static_cast<const uint8_t*>(data) + r * row_bytes();
  }
};

// The 4 rows of the tile starting at row r0 as the decode kernels read them: each row's first
// byte and scale row (null without scales); a tile past the last row repeats that row, whose
// results the caller drops.
inline void tile_rows(const WeightView& w, int64_t r0, const uint8_t* rows[4],
                      const float* scales[4] = nullptr) {
  if (w.packed) fail_packed_row_read("tile_rows");
  const int64_t last = w.rows - 1;
  const int64_t row_bytes = w.row_bytes();  // once: a dtype switch per row showed in profiles
  for (int64_t j = 0; j < 4; ++j) {
    const int64_t r = r0 + j < last ? r0 + j : last;
    rows[j] = static_cast<const uint8_t*>(w.data) + r * row_bytes;
    if (scales) scales[j] = w.scale_row(r);
  }
}

// Storage dtypes the matmul and dequantisation kernels compute with. Kernel entry points check
// it, so an unsupported dtype is an Error at the boundary, never a silent zero inside.
inline bool weight_dtype_supported(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::f8_e4m3 ||
         t == DType::i8 || t == DType::i4 || dtype_is_ggml_block(t);
}

// Throws ErrorKind::format naming `who` and the dtype when kernels cannot compute with it.
void require_weight_dtype(const WeightView& w, const char* who);

// Column granularity a dequantisation chunk must start on (the block: 32 or 256 for the ggml
// types, 2 for i4, else 1).
inline int64_t weight_col_align(DType t) {
  return dtype_block_elems(t);
}

}  // namespace tern::kernels
