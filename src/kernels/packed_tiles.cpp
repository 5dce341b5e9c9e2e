// Tile-major Q8_0 / Q4_0 (packed_tiles.h): the layout, its inverse and the scalar reference.
#include "kernels/packed_tiles.h"

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace tern::kernels {

void packed_dot4_vnni(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks,
                      float* out);  // cpu/int8_packed_vnni.cpp

namespace {

// Quant bytes of one block of one row (after its 2-byte scale when stored).
int64_t quant_bytes(DType t) {
  return t == DType::q8_0 ? 32 : 16;
}
uint8_t stored_to_packed(DType t, uint8_t v) {
  return t == DType::q8_0 ? uint8_t(v ^ 0x80) : v;
}

void require_packable(DType t) {
  if (!packable_dtype(t))
    fail(ErrorKind::format,
         "packed tiles hold q8_0 or q4_0 weights, not " + std::string(dtype_name(t)));
}

// Offset of group `g0` (first block of the group) inside a tile: the groups before it are
// whole groups of 4 blocks, each 4 rows x 4 stored blocks.
int64_t group_offset(DType t, int64_t g0) {
  return 4 * g0 * dtype_block_bytes(t);
}

}  // namespace

bool packable_dtype(DType t) {
  return t == DType::q8_0 || t == DType::q4_0;
}

int64_t packed_tile_bytes(DType t, int64_t cols) {
  return 4 * dtype_bytes_for(t, cols);
}

int64_t packed_bytes(DType t, int64_t rows, int64_t cols) {
  return (rows + 3) / 4 * packed_tile_bytes(t, cols);
}

void pack_tiles(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  require_packable(t);
  const int64_t row_bytes = dtype_bytes_for(t, cols), n_blocks = cols / 32;
  const int64_t block = dtype_block_bytes(t), qb = quant_bytes(t);
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    uint8_t* tile = dst + (r0 / 4) * packed_tile_bytes(t, cols);
    const uint8_t* row[4];
    for (int64_t r = 0; r < 4; ++r) row[r] = src + std::min(r0 + r, rows - 1) * row_bytes;
    for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
      const int64_t g = std::min<int64_t>(4, n_blocks - g0);
      uint8_t* out = tile + group_offset(t, g0);
      for (int64_t b = 0; b < g; ++b)
        for (int64_t r = 0; r < 4; ++r)
          std::memcpy(out + 2 * (4 * b + r), row[r] + (g0 + b) * block, 2);
      uint8_t* quants = out + 8 * g;
      for (int64_t b = 0; b < g; ++b)
        for (int64_t r = 0; r < 4; ++r) {
          const uint8_t* in = row[r] + (g0 + b) * block + 2;
          uint8_t* q = quants + (4 * b + r) * qb;
          for (int64_t j = 0; j < qb; ++j) q[j] = stored_to_packed(t, in[j]);
        }
    }
  }
}

void unpack_row(DType t, const uint8_t* packed, int64_t cols, int64_t r, uint8_t* out) {
  require_packable(t);
  const int64_t n_blocks = cols / 32, block = dtype_block_bytes(t), qb = quant_bytes(t);
  const uint8_t* tile = packed + (r / 4) * packed_tile_bytes(t, cols);
  const int64_t rr = r % 4;
  for (int64_t g0 = 0; g0 < n_blocks; g0 += 4) {
    const int64_t g = std::min<int64_t>(4, n_blocks - g0);
    const uint8_t* in = tile + group_offset(t, g0);
    for (int64_t b = 0; b < g; ++b) {
      uint8_t* blk = out + (g0 + b) * block;
      std::memcpy(blk, in + 2 * (4 * b + rr), 2);
      const uint8_t* q = in + 8 * g + (4 * b + rr) * qb;
      for (int64_t j = 0; j < qb; ++j) blk[2 + j] = stored_to_packed(t, q[j]);  // an involution
    }
  }
}

void packed_dot4_ref(DType t, const uint8_t* tile, const ActQ8& x, int64_t n_blocks, float* out) {
  const int64_t cols = n_blocks * 32, row_bytes = dtype_bytes_for(t, cols);
  thread_local std::vector<uint8_t> rows;
  rows.resize(size_t(4 * row_bytes));
  const uint8_t* ptr[4];
  for (int64_t r = 0; r < 4; ++r) {
    unpack_row(t, tile, cols, r, rows.data() + r * row_bytes);
    ptr[r] = rows.data() + r * row_bytes;
  }
  int8_dot4_ref(t, ptr, x, n_blocks, out);
}

PackedDot4 packed_dot4_vnni_if_supported() {
  return int8_dot4_vnni_if_supported() ? packed_dot4_vnni : nullptr;
}

PackedDot4 packed_dot4_kernel() {
  static const PackedDot4 chosen = []() -> PackedDot4 {
    if (std::string(active_isa().name) == "avx512")
      if (PackedDot4 k = packed_dot4_vnni_if_supported()) return k;
    return packed_dot4_ref;
  }();
  return chosen;
}

}  // namespace tern::kernels
