// GGUF k-/i-quant panels of the int8 GEMM (prefill where there is no bf16 GEMM): the packer
// holds every type's exact weights, the SIMD tiles equal the scalar tile to the bit on them (at
// the extremes of the scaled tile's 16-bit sums too), and the whole matmul stays within the
// activation-rounding bound of the exact path.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/int8_gemm.h"
#include "kernels/ref/ref_ops.h"
#include "kernels/serving_paths.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;
using tern::kernels::testing::random_values;

namespace {

const DType kAll[] = {DType::q4_1,    DType::q5_0,  DType::q5_1,    DType::q2_k,   DType::q3_k,
                      DType::q4_k,    DType::q5_k,  DType::q6_k,    DType::iq4_nl, DType::iq4_xs,
                      DType::iq3_xxs, DType::iq3_s, DType::iq2_xxs, DType::iq2_xs, DType::iq2_s,
                      DType::iq1_s,   DType::iq1_m};

std::vector<DType> panel_types() {
  std::vector<DType> out;
  for (DType t : kAll)
    if (ggml_panel_supported(t)) out.push_back(t);
  return out;
}

// The weight at (row r, column c) as the panel holds it.
double panel_weight(const PackedPanel& p, int64_t r, int64_t c) {
  const int64_t b = c / 32, j = c % 32, h = c / 16;
  const int v = p.w[size_t(b * 32 * kPanelRows + (j / 4) * kPanelRows * 4 + r * 4 + j % 4)];
  const int sc = p.sc16.empty() ? 1 : p.sc16[size_t(h * kPanelRows + r)];
  const double m = p.mw.empty() ? 0.0 : p.mw[size_t(h * kPanelRows + r)];
  return double(p.dw[size_t(b * kPanelRows + r)]) * sc * v + m;
}

std::vector<std::pair<const char*, Int8GemmTile>> simd_tiles() {
  std::vector<std::pair<const char*, Int8GemmTile>> tiles;
  for (auto [name, k] : {std::pair{"avx-vnni", int8_gemm_tile_avxvnni_if_supported()},
                         std::pair{"avx2", int8_gemm_tile_avx2_if_supported()}})
    if (k && int8_gemm_tile_takes_ggml(k)) tiles.push_back({name, k});
  return tiles;
}

}  // namespace

TEST(GgmlPanel, EveryGgufBlockTypePacks) {
  EXPECT_EQ(panel_types().size(), std::size(kAll));
  EXPECT_FALSE(ggml_panel_supported(DType::q8_0));  // Q8_0 / Q4_0 have their own packer
}

TEST(GgmlPanel, PanelHoldsTheExactWeights) {
  std::mt19937 rng(5);
  for (DType t : panel_types()) {
    const int64_t rows = 45, cols = 512;  // a partial second panel (13 rows)
    const auto tw = make_weight(t, rows, cols, rng);
    std::vector<float> exact(static_cast<size_t>(cols));
    PackedPanel p;
    for (int64_t r0 : {int64_t(0), kPanelRows}) {
      pack_panel_ggml(tw.view, r0, p);
      ASSERT_EQ(p.n_blocks, cols / 32);
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const bool real = r0 + r < rows;
        if (real) ref::dequant_row(tw.view, r0 + r, 0, cols, exact.data());
        for (int64_t c = 0; c < cols; ++c) {
          const double want = real ? exact[size_t(c)] : 0.0;
          // dw * sc16 is the block's scale exactly; mw adds one f32 rounding of its terms
          const double m = p.mw.empty() ? 0.0 : p.mw[size_t(c / 16 * kPanelRows + r)];
          ASSERT_NEAR(panel_weight(p, r, c), want, 1e-6 * (std::fabs(want) + std::fabs(m)))
              << dtype_name(t) << " row " << r0 + r << " col " << c;
        }
        // The 16-bit tile needs every weight in [-8, 7], the scaled one in [-64, 63].
        for (size_t i = 0; i < p.w.size(); ++i) {
          if (p.small_weights) {
            ASSERT_TRUE(p.w[i] >= -8 && p.w[i] <= 7) << dtype_name(t);
          }
          if (!p.sc16.empty()) {
            ASSERT_TRUE(p.w[i] >= -64 && p.w[i] <= 63) << dtype_name(t);
          }
        }
      }
    }
  }
}

TEST(GgmlPanel, SimdTilesEqualTheReference) {
  const auto tiles = simd_tiles();
  if (tiles.empty()) GTEST_SKIP() << "no SIMD tile here computes GGUF panels";
  std::mt19937 rng(6);
  for (DType t : panel_types())
    for (int64_t units : {1, 3}) {
      const int64_t cols = 256 * units;
      const auto tw = make_weight(t, kPanelRows, cols, rng);
      PackedPanel p;
      pack_panel_ggml(tw.view, 0, p);
      const std::vector<float> x = random_values(kTileTokens * cols, uint32_t(units), 3.0f);
      ActQ8Rows q;
      quantize_act_rows(x.data(), kTileTokens, cols, cols, q, nullptr, true);
      const uint8_t* xs[kTileTokens];
      const float *ds[kTileTokens], *s16[kTileTokens];
      for (int i = 0; i < kTileTokens; ++i)
        xs[i] = q.row(i), ds[i] = q.scales(i), s16[i] = q.sums16(i);
      for (auto [name, tile] : tiles)
        for (int nt = 1; nt <= kTileTokens; ++nt) {
          std::vector<float> want(size_t(kTileTokens * kPanelRows), -1.0f), got = want;
          int8_gemm_tile_ref(p, 0, p.n_blocks, xs, ds, s16, nt, want.data());
          tile(p, 0, p.n_blocks, xs, ds, s16, nt, got.data());
          for (int64_t i = 0; i < nt * kPanelRows; ++i)
            ASSERT_EQ(got[size_t(i)], want[size_t(i)])
                << name << " " << dtype_name(t) << " cols " << cols << " tokens " << nt;
        }
    }
}

// The scaled tile's pair sums reach 2 * 255 * 64 before vpmaddwd: every weight at -64 or 63,
// every scale at -128 or 127 and every activation code at +-127 must still give the
// reference's sums (a saturating or wrapping sum would not).
TEST(GgmlPanel, ScaledTileStaysExactAtTheExtremes) {
  const int64_t cols = 64, nb = cols / 32;
  PackedPanel p;
  p.n_blocks = nb;
  p.w.resize(size_t(nb * 32 * kPanelRows));
  p.dw.assign(size_t(nb * kPanelRows), 1.0f);
  p.nws.assign(size_t(nb * kPanelRows), 0);
  p.sc16.resize(size_t(2 * nb * kPanelRows));
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t r = 0; r < kPanelRows; ++r) {
      const int v = r % 2 ? 63 : -64, sc0 = r % 4 < 2 ? 127 : -128, sc1 = -sc0 - 1;
      for (int j = 0; j < 32; ++j)
        p.w[size_t(b * 32 * kPanelRows + (j / 4) * kPanelRows * 4 + r * 4 + j % 4)] = int8_t(v);
      p.sc16[size_t(2 * b * kPanelRows + r)] = int16_t(sc0);
      p.sc16[size_t((2 * b + 1) * kPanelRows + r)] = int16_t(sc1);
      p.nws[size_t(b * kPanelRows + r)] = -128 * 16 * v * (sc0 + sc1);
    }
  std::vector<float> x(size_t(kTileTokens * cols));
  for (int64_t t = 0; t < kTileTokens; ++t)
    for (int64_t c = 0; c < cols; ++c) x[size_t(t * cols + c)] = (t + c / 16) % 2 ? -1.0f : 1.0f;
  ActQ8Rows q;
  quantize_act_rows(x.data(), kTileTokens, cols, cols, q, nullptr, true);
  const uint8_t* xs[kTileTokens];
  const float* ds[kTileTokens];
  for (int i = 0; i < kTileTokens; ++i) xs[i] = q.row(i), ds[i] = q.scales(i);
  auto tiles = simd_tiles();
  tiles.push_back({"ref", int8_gemm_tile_ref});
  for (auto [name, tile] : tiles) {
    std::vector<float> got(size_t(kTileTokens * kPanelRows));
    tile(p, 0, p.n_blocks, xs, ds, nullptr, kTileTokens, got.data());
    for (int64_t t = 0; t < kTileTokens; ++t)
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const int v = r % 2 ? 63 : -64, sc0 = r % 4 < 2 ? 127 : -128, sc1 = -sc0 - 1;
        double want = 0;  // x = +-1 exactly (d_x = 1 / 127, codes +-127)
        for (int64_t c = 0; c < cols; ++c)
          want += double(v) * (c % 32 < 16 ? sc0 : sc1) * x[size_t(t * cols + c)];
        EXPECT_EQ(double(got[size_t(t * kPanelRows + r)]), double(float(want * ds[t][0] * 127)))
            << name << " token " << t << " row " << r;
      }
  }
}

// Each output moves from the exact result by at most the activation rounding: per block,
// d_x / 2 times the weight block's L1 norm (the integer sums are exact).
TEST(GgmlPanel, MatmulStaysWithinTheRoundingBound) {
  ThreadPool pool(2);
  std::vector<Int8GemmTile> tiles = {int8_gemm_tile_ref};
  for (auto [name, k] : simd_tiles()) tiles.push_back(k);
  std::mt19937 rng(7);
  for (DType t : panel_types()) {
    const int64_t rows = 40, cols = 512, ldx = cols + 7, ldy = rows + 3, T = 9;
    const auto tw = make_weight(t, rows, cols, rng);
    const std::vector<float> x = random_values(T * ldx, 21, 2.0f);
    std::vector<float> exact(size_t(T * ldy));
    ref::matmul(x.data(), ldx, tw.view, exact.data(), ldy, T);
    ActQ8Rows q;
    quantize_act_rows(x.data(), T, ldx, cols, q, nullptr, true);
    std::vector<float> wrow(static_cast<size_t>(cols));
    for (Int8GemmTile tile : tiles) {
      std::vector<float> y(size_t(T * ldy), 7.0f);
      ASSERT_TRUE(int8_gemm(x.data(), ldx, T, tw.view, y.data(), ldy, pool, tile));
      for (int64_t r = 0; r < rows; ++r) {
        ref::dequant_row(tw.view, r, 0, cols, wrow.data());
        for (int64_t i = 0; i < T; ++i) {
          double bound = 0, mag = 0;
          for (int64_t c = 0; c < cols; ++c) {
            bound += 0.5 * double(q.scales(i)[c / 32]) * std::fabs(wrow[size_t(c)]);
            mag += std::fabs(wrow[size_t(c)] * x[size_t(i * ldx + c)]);
          }
          EXPECT_LE(std::fabs(y[size_t(i * ldy + r)] - exact[size_t(i * ldy + r)]),
                    bound * 1.001 + 1e-5 * mag)
              << dtype_name(t) << " token " << i << " row " << r;
        }
      }
      for (int64_t i = 0; i < T; ++i)  // padding between rows untouched
        for (int64_t r = rows; r < ldy; ++r) EXPECT_EQ(y[size_t(i * ldy + r)], 7.0f);
    }
  }
}

// Prefill takes the panels where the CPU has no bf16 GEMM (AVX2); a width that is not whole
// 256-value units, or a prepacked view, goes on to the 4-token kernel.
TEST(GgmlPanel, PrefillPathAndItsLimits) {
  std::mt19937 rng(8);
  const auto tw = make_weight(DType::q4_k, 8, 256, rng);
  EXPECT_EQ(int8_gemm_takes(tw.view), int8_gemm_tile_takes_ggml(int8_gemm_tile_kernel()));
  WeightView odd = tw.view;
  odd.dtype = DType::q4_1;
  odd.cols = 96;
  EXPECT_FALSE(int8_gemm_takes(odd));
  odd.dtype = DType::iq1_m;
  odd.cols = 256;
  odd.packed = true;  // a prepacked view (only AVX-512 machines prepack k-quants)
  EXPECT_FALSE(int8_gemm_takes(odd));
  const std::string name = serving_path_name(tw.view, 64);
  if (int8_gemm_takes(tw.view) && name.rfind("bf16", 0) != 0 && name.rfind("amx", 0) != 0) {
    EXPECT_EQ(name.rfind("int8-gemm", 0), 0u) << name;
  }
}
