// Packed (tile-major) Q8_0 / Q4_0: packing then unpacking gives every stored row back byte for
// byte, the packed size equals the stored size, and the packed SIMD kernel equals the scalar
// integer reference on the unpacked rows at awkward block and row counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/int8_decode.h"
#include "kernels/packed_tiles.h"
#include "kernels/quantize.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::random_values;
using tern::kernels::testing::random_weights;

TEST(PackedTiles, UnpackGivesEveryStoredRowBack) {
  for (DType t : {DType::q8_0, DType::q4_0})
    for (int64_t rows : {1, 4, 6, 9})
      for (int64_t blocks : {1, 3, 4, 5, 9}) {
        const int64_t cols = blocks * 32, rb = dtype_bytes_for(t, cols);
        const std::vector<uint8_t> w = random_weights(t, rows, cols, uint32_t(rows * 7 + blocks));
        // Poisoned bytes past the packed size would show as a write out of bounds (ASan) or a
        // size mismatch here.
        std::vector<uint8_t> packed(size_t(packed_bytes(t, rows, cols)) + 64, 0xA5);
        EXPECT_EQ(packed_bytes(t, rows, cols), (rows + 3) / 4 * 4 * rb);
        pack_tiles(t, w.data(), rows, cols, packed.data());
        for (size_t i = size_t(packed_bytes(t, rows, cols)); i < packed.size(); ++i)
          ASSERT_EQ(packed[i], 0xA5) << "pack wrote past its size";
        std::vector<uint8_t> row(static_cast<size_t>(rb));
        for (int64_t r = 0; r < rows; ++r) {
          unpack_row(t, packed.data(), cols, r, row.data());
          EXPECT_EQ(0, std::memcmp(row.data(), w.data() + r * rb, size_t(rb)))
              << dtype_name(t) << " rows " << rows << " blocks " << blocks << " row " << r;
        }
      }
}

TEST(PackedTiles, RefusesTypesWithoutAPackedForm) {
  std::vector<uint8_t> buf(64);
  EXPECT_FALSE(packable_dtype(DType::bf16));
  EXPECT_THROW(pack_tiles(DType::bf16, buf.data(), 1, 32, buf.data()), Error);
}

TEST(PackedTiles, SimdKernelEqualsTheReference) {
  const PackedDot4 kernel = packed_dot4_vnni_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  for (DType t : {DType::q8_0, DType::q4_0})
    for (int64_t blocks : {1, 2, 3, 4, 5, 7, 8, 48, 67}) {
      const int64_t cols = blocks * 32, rb = dtype_bytes_for(t, cols);
      const int64_t rows = 7;  // a full tile and a short one (its last row repeated)
      const std::vector<uint8_t> w = random_weights(t, rows, cols, uint32_t(blocks));
      std::vector<uint8_t> packed(size_t(packed_bytes(t, rows, cols)));
      pack_tiles(t, w.data(), rows, cols, packed.data());
      ActQ8 x;
      const std::vector<float> xf = random_values(cols, 99, 3.0f);
      quantize_act_q8(xf.data(), cols, x);
      for (int64_t r0 = 0; r0 < rows; r0 += 4) {
        const uint8_t* stored[4];
        for (int64_t r = 0; r < 4; ++r) stored[r] = w.data() + std::min(r0 + r, rows - 1) * rb;
        float want[4], ref[4], got[4];
        int8_dot4_ref(t, stored, x, blocks, want);
        const uint8_t* tile = packed.data() + (r0 / 4) * packed_tile_bytes(t, cols);
        packed_dot4_ref(t, tile, x, blocks, ref);
        kernel(t, tile, x, blocks, got);
        for (int r = 0; r < 4; ++r) {
          EXPECT_EQ(ref[r], want[r]) << "the reference unpacks exactly";
          // Same integer block sums; only the float accumulation order differs.
          EXPECT_NEAR(got[r], want[r], 1e-5f * (1.0f + std::fabs(want[r])))
              << dtype_name(t) << " blocks " << blocks << " tile " << r0 / 4 << " row " << r;
        }
      }
    }
}
