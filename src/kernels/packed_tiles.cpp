// Tile-major Q8_0 / Q4_0 (packed_tiles.h): the layout, its inverse and the scalar reference; the
// k-quants' layouts are in packed_k_tiles.cpp.
#include "kernels/packed_tiles.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/packed_k_tiles.h"
#include "kernels/packed_panels.h"

namespace tern::kernels {

void packed_dot4_vnni(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks,
                      float* out);  // cpu/int8_packed_vnni.cpp
void packed_dot4_avxvnni(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks,
                         float* out);  // cpu/int8_avxvnni.cpp
void packed_dot4_avx2(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks,
                      float* out);  // cpu/int8_avx2.cpp

namespace {

void require_packable(DType t) {
  if (!packable_dtype(t))
    fail(ErrorKind::format,
         "packed tiles hold q8_0, q4_0 or q2_k..q6_k weights, not " + std::string(dtype_name(t)));
}

}  // namespace

bool packable_dtype(DType t) {
  return t == DType::q8_0 || t == DType::q4_0 || is_k_packed(t);
}

int64_t packed_tile_bytes(DType t, int64_t cols) {
  return 4 * dtype_bytes_for(t, cols);
}

int64_t packed_bytes(DType t, int64_t rows, int64_t cols) {
  return (rows + 3) / 4 * packed_tile_bytes(t, cols);
}

namespace {

// Copies row `r`'s quants of one block between the stored form (`row`: 32 values) and the
// packed block area (`area`: 4 rows, layout in packed_tiles.h); Q8_0's + 128 is an involution.
// Constant sizes so the compiler vectorises it.
template <DType T, bool kToPacked>
inline void copy_quants(const uint8_t* from, uint8_t* to, int64_t r) {
  if constexpr (T == DType::q8_0) {
    for (int half = 0; half < 2; ++half) {
      const uint8_t* in = kToPacked ? from + 16 * half : from + 64 * half + 16 * r;
      uint8_t* out = kToPacked ? to + 64 * half + 16 * r : to + 16 * half;
      for (int j = 0; j < 16; ++j) out[j] = uint8_t(in[j] ^ 0x80);
    }
  } else {
    std::memcpy(to + (kToPacked ? 16 * r : 0), from + (kToPacked ? 0 : 16 * r), 16);
  }
}

template <DType T>
void pack_tiles_as(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  constexpr int64_t kBlock = T == DType::q8_0 ? 34 : 18, kQuant = kBlock - 2;
  const int64_t row_bytes = dtype_bytes_for(T, cols), n_blocks = cols / 32;
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    uint8_t* tile = dst + (r0 / 4) * 4 * row_bytes;
    const uint8_t* row[4];
    for (int64_t r = 0; r < 4; ++r) row[r] = src + std::min(r0 + r, rows - 1) * row_bytes;
    for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
      const int64_t g = std::min<int64_t>(4, n_blocks - g0);
      uint8_t* out = tile + 4 * g0 * kBlock;
      uint8_t* quants = out + 8 * g;
      for (int64_t b = 0; b < g; ++b)
        for (int64_t r = 0; r < 4; ++r) {
          const uint8_t* in = row[r] + (g0 + b) * kBlock;
          std::memcpy(out + 2 * (4 * b + r), in, 2);
          copy_quants<T, true>(in + 2, quants + 4 * b * kQuant, r);
        }
    }
  }
}

// Blocks [b0, b0 + nb) of row rr (0..3) of one tile in stored form; constant sizes per type (the
// prefill packers read packed matrices through this, block by block).
template <DType T>
void unpack_blocks_as(const uint8_t* tile, int64_t n_blocks, int64_t rr, int64_t b0, int64_t nb,
                      uint8_t* out) {
  constexpr int64_t kBlock = T == DType::q8_0 ? 34 : 18, kQuant = kBlock - 2;
  for (int64_t b = b0; b < b0 + nb; ++b) {
    const int64_t g0 = b / 4 * 4, g = std::min<int64_t>(4, n_blocks - g0), k = b - g0;
    const uint8_t* in = tile + 4 * g0 * kBlock;
    uint8_t* blk = out + (b - b0) * kBlock;
    std::memcpy(blk, in + 2 * (4 * k + rr), 2);
    copy_quants<T, false>(in + 8 * g + 4 * k * kQuant, blk + 2, rr);
  }
}

}  // namespace

void pack_tiles(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  require_packable(t);
  if (is_k_packed(t)) return pack_k_tiles(t, src, rows, cols, dst);
  if (t == DType::q8_0)
    pack_tiles_as<DType::q8_0>(src, rows, cols, dst);
  else
    pack_tiles_as<DType::q4_0>(src, rows, cols, dst);
}

void unpack_row_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                       int64_t nb, uint8_t* out, bool panels) {
  require_packable(t);
  if (panels) return unpack_panel_blocks(t, packed, cols, r, b0, nb, out);
  if (is_k_packed(t)) return unpack_k_blocks(t, packed, cols, r, b0, nb, out);
  const int64_t n_blocks = cols / 32;
  TERN_CHECK(b0 >= 0 && nb >= 0 && b0 + nb <= n_blocks);
  const uint8_t* tile = packed + (r / 4) * packed_tile_bytes(t, cols);
  if (t == DType::q8_0)
    unpack_blocks_as<DType::q8_0>(tile, n_blocks, r % 4, b0, nb, out);
  else
    unpack_blocks_as<DType::q4_0>(tile, n_blocks, r % 4, b0, nb, out);
}

void unpack_row(DType t, const uint8_t* packed, int64_t cols, int64_t r, uint8_t* out,
                bool panels) {
  unpack_row_blocks(t, packed, cols, r, 0, cols / dtype_block_elems(t), out, panels);
}

WeightView stored_rows(const WeightView& w, int64_t r0, int64_t n, std::vector<uint8_t>& scratch) {
  if (!w.packed) return w.row_range(r0, n);
  const int64_t row_bytes = w.row_bytes();
  if (int64_t(scratch.size()) < n * row_bytes) scratch.resize(size_t(n * row_bytes));
  for (int64_t r = 0; r < n; ++r)
    unpack_row(w.dtype, static_cast<const uint8_t*>(w.data), w.cols, r0 + r,
               scratch.data() + r * row_bytes, w.panels);
  WeightView v = w;
  v.packed = v.panels = false;
  v.data = scratch.data();
  v.rows = n;
  v.row0 = w.row0 + r0;
  return v;
}

WeightView stored_row_segment(const WeightView& w, int64_t r, int64_t col0, int64_t n,
                              std::vector<uint8_t>& scratch) {
  if (!w.packed) return w.row_range(r, 1);
  const int64_t be = dtype_block_elems(w.dtype);
  TERN_CHECK(col0 % be == 0 && col0 + n <= w.cols);
  const int64_t b0 = col0 / be, nb = (n + be - 1) / be;
  const int64_t bytes = nb * dtype_block_bytes(w.dtype);
  if (int64_t(scratch.size()) < bytes) scratch.resize(size_t(bytes));
  unpack_row_blocks(w.dtype, static_cast<const uint8_t*>(w.data), w.cols, r, b0, nb, scratch.data(),
                    w.panels);
  WeightView v = w;
  v.packed = v.panels = false;
  v.data = scratch.data();
  v.rows = 1;
  v.cols = nb * be;
  v.row0 = w.row0 + r;
  return v;
}

const float* dequant_packed(const WeightView& w, int64_t row, int64_t col0, int64_t n, float* out,
                            DequantFn dequant) {
  thread_local std::vector<uint8_t> scratch;
  return dequant(stored_row_segment(w, row, col0, n, scratch), 0, 0, n, out);
}

void unpack_tile_rows(DType t, const uint8_t* tile, int64_t cols, std::vector<uint8_t>& scratch,
                      const uint8_t* rows[4]) {
  const int64_t row_bytes = dtype_bytes_for(t, cols);
  if (int64_t(scratch.size()) < 4 * row_bytes) scratch.resize(size_t(4 * row_bytes));
  for (int64_t r = 0; r < 4; ++r) {
    unpack_row(t, tile, cols, r, scratch.data() + r * row_bytes);
    rows[r] = scratch.data() + r * row_bytes;
  }
}

void packed_dot4_ref(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  thread_local std::vector<uint8_t> scratch;
  const uint8_t* rows[4];
  unpack_tile_rows(t, tile, n_blocks * 32, scratch, rows);
  int8_dot4_ref(t, rows, x, n_blocks, out);
}

PackedDot4 packed_dot4_vnni_if_supported() {
  return int8_dot4_vnni_if_supported() ? packed_dot4_vnni : nullptr;
}

PackedDot4 packed_dot4_avxvnni_if_supported() {
  return int8_dot4_avxvnni_if_supported() ? packed_dot4_avxvnni : nullptr;
}

PackedDot4 packed_dot4_avx2_if_supported() {
  return int8_dot4_avx2_if_supported() ? packed_dot4_avx2 : nullptr;
}

PackedDot4 packed_dot4_kernel() {
  static const PackedDot4 chosen = []() -> PackedDot4 {
    const std::string isa = active_isa().name;
    if (isa == "avx512")
      if (PackedDot4 k = packed_dot4_vnni_if_supported()) return k;
    if (isa == "avx512" || isa == "avx2") {
      if (PackedDot4 k = packed_dot4_avxvnni_if_supported()) return k;
      if (PackedDot4 k = packed_dot4_avx2_if_supported()) return k;
    }
    return packed_dot4_ref;
  }();
  return chosen;
}

}  // namespace tern::kernels
