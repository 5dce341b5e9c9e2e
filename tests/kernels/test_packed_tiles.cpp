// Packed (tile-major) Q8_0 / Q4_0 / k-quants: packing then unpacking gives every stored row back
// byte for byte, the packed size equals the stored size, and the packed SIMD kernel equals the
// scalar integer reference on the unpacked rows at awkward block and row counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/ggml/ggml_decode.h"
#include "kernels/int8_decode.h"
#include "kernels/packed_tiles.h"
#include "kernels/quantize.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::random_ggml_blocks;
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
  std::vector<std::pair<const char*, PackedDot4>> kernels;
  if (PackedDot4 k = packed_dot4_vnni_if_supported()) kernels.push_back({"avx512-vnni", k});
  if (PackedDot4 k = packed_dot4_avxvnni_if_supported()) kernels.push_back({"avx-vnni", k});
  if (PackedDot4 k = packed_dot4_avx2_if_supported()) kernels.push_back({"avx2", k});
  if (kernels.empty()) GTEST_SKIP() << "this CPU has no SIMD packed kernel";
  for (auto [name, kernel] : kernels)
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
            // Same integer block sums; only the float accumulation order differs, so the
            // rounding is bounded by the size of the terms, Σ|w·x|, not of their sum.
            std::vector<float> wr(static_cast<size_t>(cols));
            tern::kernels::ref::dequant_row(WeightView{t, 1, cols, stored[r]}, 0, 0, cols,
                                            wr.data());
            double terms = 0;
            for (int64_t i = 0; i < cols; ++i)
              terms += std::fabs(double(wr[size_t(i)]) * xf[size_t(i)]);
            EXPECT_NEAR(got[r], want[r], 1e-5 * (1.0 + terms))
                << name << " " << dtype_name(t) << " blocks " << blocks << " tile " << r0 / 4
                << " row " << r;
          }
        }
      }
}

namespace {
// Random k-quant rows: every byte random but the f16 scales (kept finite), so every bit of the
// layouts is exercised.
std::vector<uint8_t> random_k_rows(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(size_t(dtype_bytes_for(t, rows * cols)));
  random_ggml_blocks(t, rows * cols / dtype_block_elems(t), rng, out.data());
  return out;
}
}  // namespace

// Q2_K..Q6_K: 256-value units, the 4 rows' heads together and the codes in register
// order (packed_k_tiles.h), so the round trip is the check that the regrouping is a permutation.
TEST(PackedTiles, KQuantUnpackGivesEveryStoredRowBack) {
  for (DType t : {DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k})
    for (int64_t rows : {1, 4, 6, 9})
      for (int64_t units : {1, 2, 5}) {
        const int64_t cols = units * 256, rb = dtype_bytes_for(t, cols);
        const std::vector<uint8_t> w = random_k_rows(t, rows, cols, uint32_t(rows * 5 + units));
        std::vector<uint8_t> packed(size_t(packed_bytes(t, rows, cols)) + 64, 0xA5);
        EXPECT_EQ(packed_bytes(t, rows, cols), (rows + 3) / 4 * 4 * rb);
        pack_tiles(t, w.data(), rows, cols, packed.data());
        for (size_t i = size_t(packed_bytes(t, rows, cols)); i < packed.size(); ++i)
          ASSERT_EQ(packed[i], 0xA5) << "pack wrote past its size";
        std::vector<uint8_t> row(static_cast<size_t>(rb));
        for (int64_t r = 0; r < rows; ++r) {
          unpack_row(t, packed.data(), cols, r, row.data());
          EXPECT_EQ(0, std::memcmp(row.data(), w.data() + r * rb, size_t(rb)))
              << dtype_name(t) << " rows " << rows << " units " << units << " row " << r;
          // One unit on its own, as the exact path's segment readers ask.
          if (units > 1) {
            const int64_t bb = dtype_block_bytes(t);
            std::vector<uint8_t> blk(static_cast<size_t>(bb));
            unpack_row_blocks(t, packed.data(), cols, r, units - 1, 1, blk.data());
            EXPECT_EQ(0, std::memcmp(blk.data(), w.data() + r * rb + (units - 1) * bb, size_t(bb)));
          }
        }
      }
}

TEST(PackedTiles, KQuantActivationsInRegisterOrder) {
  // Register c, byte b of a unit must hold value 16 (b / 4) + 4 c + b % 4: the register order of
  // the packed k-quant codes (packed_k_tiles.h).
  const int64_t cols = 512;
  std::vector<float> xf(cols);
  for (int64_t i = 0; i < cols; ++i) xf[size_t(i)] = float(i % 97) - 48.0f;
  ActQ8 x;
  quantize_act_q8(xf.data(), cols, x);
  regroup_act_k(x);
  ASSERT_TRUE(x.has_qk);
  for (int64_t u = 0; u < cols / 256; ++u)
    for (int c = 0; c < 4; ++c)
      for (int b = 0; b < 64; ++b) {
        const int v = 16 * (b / 4) + 4 * c + b % 4;
        EXPECT_EQ(x.qk[size_t(256 * u + 64 * c + b)], x.q[size_t(256 * u + v)]);
      }
  quantize_act_q8(xf.data(), cols, x);
  EXPECT_FALSE(x.has_qk) << "quantising again makes the regrouped copy stale";
}

TEST(PackedTiles, KQuantSimdKernelEqualsTheReference) {
  const GgmlPackedDot4 kernel = ggml_packed_dot4_vnni_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  for (DType t : {DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k})
    for (int64_t units : {1, 2, 3, 6, 35}) {
      const int64_t cols = units * 256, rb = dtype_bytes_for(t, cols), rows = 7;
      const std::vector<uint8_t> w = random_k_rows(t, rows, cols, uint32_t(units));
      std::vector<uint8_t> packed(size_t(packed_bytes(t, rows, cols)));
      pack_tiles(t, w.data(), rows, cols, packed.data());
      std::vector<ActQ8> acts(4);
      const ActQ8* xs[4];
      for (int k = 0; k < 4; ++k) {
        // Activation blocks of very different sizes, so a wrong per-block scale shows.
        std::vector<float> xf = random_values(cols, uint32_t(50 + k), 3.0f);
        for (int64_t i = 0; i < cols; ++i) xf[size_t(i)] *= float(1 + (i / 32) % 5);
        quantize_act_q8(xf.data(), cols, acts[size_t(k)]);
        regroup_act_k(acts[size_t(k)]);
        xs[k] = &acts[size_t(k)];
      }
      for (int64_t r0 = 0; r0 < rows; r0 += 4) {
        const uint8_t* stored[4];
        for (int64_t r = 0; r < 4; ++r) stored[r] = w.data() + std::min(r0 + r, rows - 1) * rb;
        // sum |w| |x| per (row, token): the kernel's f32 sums may differ from the double reference
        // by a few ulp of that, never of the (possibly cancelled) result
        double mag[4][4] = {};
        std::vector<float> wrow(static_cast<size_t>(cols));
        for (int r = 0; r < 4; ++r) {
          ggml::dequant_ggml_row(t, stored[r], 0, cols, wrow.data());
          for (int k = 0; k < 4; ++k)
            for (int64_t c = 0; c < cols; ++c)
              mag[r][k] += std::fabs(double(wrow[size_t(c)]) * acts[size_t(k)].d[size_t(c / 32)] *
                                     acts[size_t(k)].q[size_t(c)]);
        }
        for (int nt = 1; nt <= 4; ++nt) {
          float want[16], ref[16], got[16];
          ggml_dot4_ref(t, stored, xs, nt, cols, want);
          const uint8_t* tile = packed.data() + (r0 / 4) * packed_tile_bytes(t, cols);
          ggml_packed_dot4_ref(t, tile, xs, nt, cols, ref);
          kernel(t, tile, xs, nt, cols, got);
          for (int i = 0; i < 4 * nt; ++i) {
            EXPECT_EQ(ref[i], want[i]) << "the reference unpacks exactly";
            EXPECT_NEAR(got[i], want[i], 1e-6 * mag[i % 4][i / 4] + 1e-7)
                << dtype_name(t) << " units " << units << " tokens " << nt << " tile " << r0 / 4
                << " out " << i;
          }
        }
      }
    }
}
