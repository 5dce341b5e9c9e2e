// Packed int8 GEMM (several tokens, int8 activations, Q8_0 / Q4_0 weights): the packer against
// the exact dequantisation, the VNNI tile against the scalar tile at awkward sizes, and the
// whole matmul against the exact f32 path within the analytic bound of activation rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/int8_decode.h"
#include "kernels/int8_gemm.h"
#include "kernels/matmul.h"
#include "kernels/packed_tiles.h"
#include "kernels/quantize.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::random_values;
using tern::kernels::testing::random_weights;

TEST(Int8Gemm, ActivationRowsQuantiseAsTheBlockQuantiser) {
  ThreadPool pool(2);
  const int64_t T = 5, cols = 96, ldx = 101;
  std::vector<float> x = random_values(T * ldx, 4, 2.5f);
  for (int64_t j = 32; j < 64; ++j) x[size_t(ldx + j)] = 0;  // an all-zero block
  x[2] = 0.5f, x[3] = -0.5f;  // exact halves after scaling are rare; ties must still match
  ActQ8Rows q;
  quantize_act_rows(x.data(), T, ldx, cols, q, &pool, true);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < cols / 32; ++b) {
      int8_t want[32];
      const float d = quantize_block_q8(x.data() + t * ldx + b * 32, want);
      EXPECT_EQ(q.scales(t)[b], d);
      for (int j = 0; j < 32; ++j) EXPECT_EQ(int(q.row(t)[b * 32 + j]), want[j] + 128);
      for (int h = 0; h < 2; ++h) {  // d times the codes' sum per 16 (the GGUF panels' mins)
        int32_t sum = 0;
        for (int j = 0; j < 16; ++j) sum += want[16 * h + j];
        EXPECT_EQ(q.sums16(t)[2 * b + h], d * float(sum));
      }
    }
  }
}

TEST(Int8Gemm, PackedPanelHoldsTheExactWeights) {
  for (DType t : {DType::q8_0, DType::q4_0}) {
    const int64_t rows = 45, cols = 96;  // the second panel is partial (13 rows)
    const std::vector<uint8_t> bytes = random_weights(t, rows, cols, 3);
    const WeightView w{t, rows, cols, bytes.data()};
    PackedPanel p;
    std::vector<float> exact(static_cast<size_t>(cols));
    for (int64_t r0 : {int64_t(0), kPanelRows}) {
      pack_panel(w, r0, p);
      ASSERT_EQ(p.n_blocks, cols / 32);
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const bool real = r0 + r < rows;
        if (real) ref::dequant_row(w, r0 + r, 0, cols, exact.data());
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t b = c / 32, j = c % 32;
          const int8_t q =
              p.w[size_t(b * 32 * kPanelRows + (j / 4) * kPanelRows * 4 + r * 4 + j % 4)];
          const float got = float(q) * p.dw[size_t(b * kPanelRows + r)];
          EXPECT_EQ(got, real ? exact[size_t(c)] : 0.0f) << dtype_name(t) << " row " << r0 + r;
        }
        for (int64_t b = 0; b < p.n_blocks; ++b) {
          int32_t sum = 0;
          for (int64_t j = 0; j < 32; ++j)
            sum += p.w[size_t(b * 32 * kPanelRows + (j / 4) * kPanelRows * 4 + r * 4 + j % 4)];
          EXPECT_EQ(p.nws[size_t(b * kPanelRows + r)], -128 * sum);
        }
      }
    }
  }
}

TEST(Int8Gemm, SimdPackerWritesTheScalarPackersBytes) {
  if (!int8_gemm_tile_vnni_if_supported()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  for (DType t : {DType::q8_0, DType::q4_0}) {
    const int64_t rows = 50, cols = 160;  // partial second panel: 18 rows, a partial half
    const std::vector<uint8_t> bytes = random_weights(t, rows, cols, 9);
    const WeightView w{t, rows, cols, bytes.data()};
    for (int64_t r0 : {int64_t(0), kPanelRows}) {
      PackedPanel a, b;
      pack_panel(w, r0, a, false);
      b.w.assign(a.w.size(), 99);  // stale bytes must be overwritten
      pack_panel(w, r0, b, true);
      EXPECT_EQ(a.w, b.w) << dtype_name(t) << " panel at " << r0;
      EXPECT_EQ(a.dw, b.dw);
      EXPECT_EQ(a.nws, b.nws);
    }
  }
}

// Weights prepacked for decode (tile-major) pack into the same panel bytes as their stored form:
// partial panels (13 rows: a last tile of one row), a last group of fewer than 4 blocks.
TEST(Int8Gemm, PanelsFromPackedTilesEqualPanelsFromStoredRows) {
  for (DType t : {DType::q8_0, DType::q4_0}) {
    const int64_t rows = 45, cols = 160;
    const std::vector<uint8_t> bytes = random_weights(t, rows, cols, 17);
    std::vector<uint8_t> packed(size_t(packed_bytes(t, rows, cols)));
    pack_tiles(t, bytes.data(), rows, cols, packed.data());
    const WeightView stored{t, rows, cols, bytes.data()};
    WeightView tiles = stored;
    tiles.data = packed.data();
    tiles.packed = true;
    for (int64_t r0 : {int64_t(0), kPanelRows}) {
      PackedPanel a, b;
      pack_panel(stored, r0, a);
      b.w.assign(a.w.size(), 99);  // stale bytes must be overwritten
      pack_panel_from_tiles(tiles, r0, b);
      EXPECT_EQ(a.w, b.w) << dtype_name(t) << " panel at " << r0;
      EXPECT_EQ(a.dw, b.dw);
      EXPECT_EQ(a.nws, b.nws);
      EXPECT_EQ(a.small_weights, b.small_weights);
    }
  }
}

TEST(Int8Gemm, EverySimdTileEqualsTheReference) {
  std::vector<std::pair<const char*, Int8GemmTile>> tiles;
  if (Int8GemmTile k = int8_gemm_tile_vnni_if_supported()) tiles.push_back({"avx512-vnni", k});
  if (Int8GemmTile k = int8_gemm_tile_avxvnni_if_supported()) tiles.push_back({"avx-vnni", k});
  if (Int8GemmTile k = int8_gemm_tile_avx2_if_supported()) tiles.push_back({"avx2", k});
  if (tiles.empty()) GTEST_SKIP() << "this CPU has no SIMD integer tile";
  for (auto [name, tile] : tiles)
    for (DType t : {DType::q8_0, DType::q4_0}) {
      for (int64_t blocks : {1, 3, 7, 64}) {
        const int64_t cols = blocks * 32;
        const std::vector<uint8_t> bytes = random_weights(t, kPanelRows, cols, uint32_t(blocks));
        PackedPanel p;
        pack_panel(WeightView{t, kPanelRows, cols, bytes.data()}, 0, p);
        const std::vector<float> x = random_values(kTileTokens * cols, 11, 3.0f);
        ActQ8Rows q;
        quantize_act_rows(x.data(), kTileTokens, cols, cols, q);
        const uint8_t* xs[kTileTokens];
        const float* ds[kTileTokens];
        for (int i = 0; i < kTileTokens; ++i) xs[i] = q.row(i), ds[i] = q.scales(i);
        for (int nt = 1; nt <= kTileTokens; ++nt) {
          std::vector<float> want(size_t(kTileTokens * kPanelRows), -1.0f), got = want;
          int8_gemm_tile_ref(p, 0, p.n_blocks, xs, ds, nullptr, nt, want.data());
          tile(p, 0, p.n_blocks, xs, ds, nullptr, nt, got.data());
          // Same integer block sums and the same fused float steps: equal to the bit.
          for (int64_t i = 0; i < nt * kPanelRows; ++i)
            EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << name << " " << dtype_name(t) << " blocks "
                                                       << blocks << " tokens " << nt << " at " << i;
          for (int64_t i = nt * kPanelRows; i < kTileTokens * kPanelRows; ++i)
            EXPECT_EQ(got[size_t(i)], -1.0f) << "a tile of " << nt << " tokens wrote past them";
        }
      }
    }
}

// The AVX2 tile adds a Q4_0 block's products in 16 bits: at the extremes (every weight -8 or 7,
// every activation code +-127) the sums must still equal the reference's.
TEST(Int8Gemm, Q4TilesStayExactAtTheExtremes) {
  std::vector<std::pair<const char*, Int8GemmTile>> tiles = {{"ref", int8_gemm_tile_ref}};
  if (Int8GemmTile k = int8_gemm_tile_avxvnni_if_supported()) tiles.push_back({"avx-vnni", k});
  if (Int8GemmTile k = int8_gemm_tile_avx2_if_supported()) tiles.push_back({"avx2", k});
  const int64_t blocks = 3, cols = blocks * 32;
  std::vector<uint8_t> bytes(size_t(kPanelRows * blocks * 18));
  for (int64_t r = 0; r < kPanelRows; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* blk = bytes.data() + (r * blocks + b) * 18;
      blk[0] = 0x00, blk[1] = 0x3c;                                // f16 1.0
      std::fill(blk + 2, blk + 18, uint8_t(r % 2 ? 0xff : 0x00));  // all 7 or all -8
    }
  PackedPanel p;
  pack_panel(WeightView{DType::q4_0, kPanelRows, cols, bytes.data()}, 0, p);
  EXPECT_TRUE(p.small_weights);
  std::vector<float> x(size_t(kTileTokens * cols));
  for (int64_t t = 0; t < kTileTokens; ++t)
    for (int64_t c = 0; c < cols; ++c) x[size_t(t * cols + c)] = t % 2 ? -1.0f : 1.0f;
  ActQ8Rows q;
  quantize_act_rows(x.data(), kTileTokens, cols, cols, q);
  const uint8_t* xs[kTileTokens];
  const float* ds[kTileTokens];
  for (int i = 0; i < kTileTokens; ++i) xs[i] = q.row(i), ds[i] = q.scales(i);
  for (auto [name, tile] : tiles) {
    std::vector<float> got(size_t(kTileTokens * kPanelRows));
    tile(p, 0, p.n_blocks, xs, ds, nullptr, kTileTokens, got.data());
    for (int64_t t = 0; t < kTileTokens; ++t)
      for (int64_t r = 0; r < kPanelRows; ++r)  // w * x summed over the row, x = +-1 exactly
        EXPECT_FLOAT_EQ(got[size_t(t * kPanelRows + r)],
                        float(cols * (r % 2 ? 7 : -8) * (t % 2 ? -1 : 1)))
            << name << " token " << t << " row " << r;
  }
}

// Each output moves from the exact result by at most the activation rounding: per block,
// d_x / 2 times the weight block's L1 norm (the integer sums are exact).
TEST(Int8Gemm, MatmulStaysWithinTheRoundingBoundForEveryTileKernel) {
  ThreadPool pool(2);
  std::vector<Int8GemmTile> tiles = {int8_gemm_tile_ref};
  if (Int8GemmTile v = int8_gemm_tile_vnni_if_supported()) tiles.push_back(v);
  if (Int8GemmTile v = int8_gemm_tile_avxvnni_if_supported()) tiles.push_back(v);
  if (Int8GemmTile v = int8_gemm_tile_avx2_if_supported()) tiles.push_back(v);
  for (DType t : {DType::q8_0, DType::q4_0}) {
    for (int64_t T : {2, 5, 9}) {
      const int64_t rows = 70, cols = 320, ldx = cols + 7, ldy = rows + 3;
      const std::vector<uint8_t> bytes = random_weights(t, rows, cols, uint32_t(T));
      const WeightView w{t, rows, cols, bytes.data()};
      const std::vector<float> x = random_values(T * ldx, 21, 2.0f);
      std::vector<float> exact(size_t(T * ldy));
      ref::matmul(x.data(), ldx, w, exact.data(), ldy, T);
      ActQ8Rows q;
      quantize_act_rows(x.data(), T, ldx, cols, q);
      std::vector<float> wrow(static_cast<size_t>(cols));
      for (Int8GemmTile tile : tiles) {
        std::vector<float> y(size_t(T * ldy), 7.0f);
        ASSERT_TRUE(int8_gemm(x.data(), ldx, T, w, y.data(), ldy, pool, tile));
        for (int64_t r = 0; r < rows; ++r) {
          ref::dequant_row(w, r, 0, cols, wrow.data());
          for (int64_t i = 0; i < T; ++i) {
            double bound = 0;
            for (int64_t c = 0; c < cols; ++c)
              bound += 0.5 * double(q.scales(i)[c / 32]) * std::fabs(wrow[size_t(c)]);
            EXPECT_LE(std::fabs(y[size_t(i * ldy + r)] - exact[size_t(i * ldy + r)]),
                      bound * 1.001 + 1e-4)
                << dtype_name(t) << " T " << T << " token " << i << " row " << r;
          }
        }
        for (int64_t i = 0; i < T; ++i)  // padding between rows untouched
          for (int64_t r = rows; r < ldy; ++r) EXPECT_EQ(y[size_t(i * ldy + r)], 7.0f);
      }
    }
  }
}

TEST(Int8Gemm, OtherDtypesAreLeftToTheExactPath) {
  ThreadPool pool(1);
  std::vector<float> w(64 * 64, 0.5f), x(2 * 64, 1.0f), y(2 * 64);
  EXPECT_FALSE(int8_gemm(x.data(), 64, 2, WeightView{DType::f32, 64, 64, w.data()}, y.data(), 64,
                         pool, int8_gemm_tile_ref));
}
