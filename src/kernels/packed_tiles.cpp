// Tile-major Q8_0 / Q4_0 / Q4_K (packed_tiles.h): the layouts, their inverse and the scalar
// reference.
#include "kernels/packed_tiles.h"

#include <algorithm>
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

void require_packable(DType t) {
  if (!packable_dtype(t))
    fail(ErrorKind::format,
         "packed tiles hold q8_0, q4_0 or q4_k weights, not " + std::string(dtype_name(t)));
}

// Offset of group `g0` (first block of the group) inside a tile: the groups before it are
// whole groups of 4 blocks, each 4 rows x 4 stored blocks.
int64_t group_offset(DType t, int64_t g0) {
  return 4 * g0 * dtype_block_bytes(t);
}

}  // namespace

bool packable_dtype(DType t) {
  return t == DType::q8_0 || t == DType::q4_0 || t == DType::q4_k;
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

// Q4_K (layout in packed_tiles.h): per 256-value unit of a tile, the 4 rows' 16-byte heads then
// their 128 nibble bytes each, regrouped so that nibble byte 64h + b holds values
// 32 (b / 8) + 16 h + b % 8 (low) and that + 8 (high). Stored, value v sits in byte
// 32 (v / 64) + v % 32 of the nibble area, low nibble for even v / 32.
constexpr int64_t kQ4kBlock = 144, kQ4kHead = 16, kQ4kUnit = 4 * kQ4kBlock;

// Nibble area of one unit's row, stored <-> packed, 8 bytes at a time. With s the stored area
// and p the packed one (h = 0, 1 the 16-value half of a sub-block, k = 0..3 the stored 32-byte
// chunk holding sub-blocks 2k (low nibbles) and 2k + 1 (high)):
//   p[64h + 16k + 0..7]  = low nibbles of s[32k + 16h + 0..7] | those of s[32k + 16h + 8..15] << 4
//   p[64h + 16k + 8..15] = high nibbles of the same two runs, the same way,
// so sub-block g = 2k + (0 or 1) fills bytes 8g..8g+7 of each packed 64-byte half, and the
// low (high) nibbles there are its values 16h + 0..7 (16h + 8..15).
constexpr uint64_t kLow = 0x0F0F0F0F0F0F0F0Full, kHigh = 0xF0F0F0F0F0F0F0F0ull;

inline uint64_t word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
inline void put(uint8_t* p, uint64_t w) {
  std::memcpy(p, &w, 8);
}

void pack_nibbles_q4_k(const uint8_t* s, uint8_t* p) {
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k) {
      const uint64_t a = word(s + 32 * k + 16 * h), b = word(s + 32 * k + 16 * h + 8);
      put(p + 64 * h + 16 * k, (a & kLow) | (b & kLow) << 4);
      put(p + 64 * h + 16 * k + 8, (a & kHigh) >> 4 | (b & kHigh));
    }
}

void unpack_nibbles_q4_k(const uint8_t* p, uint8_t* s) {
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k) {
      const uint64_t lo = word(p + 64 * h + 16 * k), hi = word(p + 64 * h + 16 * k + 8);
      put(s + 32 * k + 16 * h, (lo & kLow) | (hi & kLow) << 4);
      put(s + 32 * k + 16 * h + 8, (lo & kHigh) >> 4 | (hi & kHigh));
    }
}

void pack_tiles_q4_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  const int64_t row_bytes = dtype_bytes_for(DType::q4_k, cols), n_units = cols / 256;
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    uint8_t* tile = dst + (r0 / 4) * 4 * row_bytes;
    for (int64_t r = 0; r < 4; ++r) {
      const uint8_t* row = src + std::min(r0 + r, rows - 1) * row_bytes;
      for (int64_t u = 0; u < n_units; ++u) {
        const uint8_t* blk = row + u * kQ4kBlock;
        uint8_t* unit = tile + u * kQ4kUnit;
        std::memcpy(unit + kQ4kHead * r, blk, kQ4kHead);
        pack_nibbles_q4_k(blk + kQ4kHead, unit + 4 * kQ4kHead + 128 * r);
      }
    }
  }
}

void unpack_blocks_q4_k(const uint8_t* packed, int64_t cols, int64_t r, int64_t b0, int64_t nb,
                        uint8_t* out) {
  TERN_CHECK(b0 >= 0 && nb >= 0 && b0 + nb <= cols / 256);
  const uint8_t* tile = packed + (r / 4) * packed_tile_bytes(DType::q4_k, cols);
  const int64_t rr = r % 4;
  for (int64_t u = b0; u < b0 + nb; ++u) {
    const uint8_t* unit = tile + u * kQ4kUnit;
    uint8_t* blk = out + (u - b0) * kQ4kBlock;
    std::memcpy(blk, unit + kQ4kHead * rr, kQ4kHead);
    unpack_nibbles_q4_k(unit + 4 * kQ4kHead + 128 * rr, blk + kQ4kHead);
  }
}

}  // namespace

void pack_tiles(DType t, const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  require_packable(t);
  if (t == DType::q4_k) return pack_tiles_q4_k(src, rows, cols, dst);
  if (t == DType::q8_0)
    pack_tiles_as<DType::q8_0>(src, rows, cols, dst);
  else
    pack_tiles_as<DType::q4_0>(src, rows, cols, dst);
}

void unpack_row_blocks(DType t, const uint8_t* packed, int64_t cols, int64_t r, int64_t b0,
                       int64_t nb, uint8_t* out) {
  require_packable(t);
  if (t == DType::q4_k) return unpack_blocks_q4_k(packed, cols, r, b0, nb, out);
  const int64_t n_blocks = cols / 32, block = dtype_block_bytes(t);
  TERN_CHECK(b0 >= 0 && nb >= 0 && b0 + nb <= n_blocks);
  const uint8_t* tile = packed + (r / 4) * packed_tile_bytes(t, cols);
  const int64_t rr = r % 4;
  for (int64_t b = b0; b < b0 + nb; ++b) {
    const int64_t g0 = b / 4 * 4, g = std::min<int64_t>(4, n_blocks - g0), k = b - g0;
    const uint8_t* in = tile + group_offset(t, g0);
    uint8_t* blk = out + (b - b0) * block;
    std::memcpy(blk, in + 2 * (4 * k + rr), 2);
    const uint8_t* area = in + 8 * g + 4 * k * quant_bytes(t);
    if (t == DType::q8_0)
      copy_quants<DType::q8_0, false>(area, blk + 2, rr);
    else
      copy_quants<DType::q4_0, false>(area, blk + 2, rr);
  }
}

void unpack_row(DType t, const uint8_t* packed, int64_t cols, int64_t r, uint8_t* out) {
  unpack_row_blocks(t, packed, cols, r, 0, cols / dtype_block_elems(t), out);
}

WeightView stored_rows(const WeightView& w, int64_t r0, int64_t n, std::vector<uint8_t>& scratch) {
  if (!w.packed) return w.row_range(r0, n);
  const int64_t row_bytes = w.row_bytes();
  if (int64_t(scratch.size()) < n * row_bytes) scratch.resize(size_t(n * row_bytes));
  for (int64_t r = 0; r < n; ++r)
    unpack_row(w.dtype, static_cast<const uint8_t*>(w.data), w.cols, r0 + r,
               scratch.data() + r * row_bytes);
  WeightView v = w;
  v.packed = false;
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
  unpack_row_blocks(w.dtype, static_cast<const uint8_t*>(w.data), w.cols, r, b0, nb,
                    scratch.data());
  WeightView v = w;
  v.packed = false;
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
