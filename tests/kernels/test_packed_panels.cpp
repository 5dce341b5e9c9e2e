// Panel-packed Q8_0 / Q4_0 weights (packed_panels.h): the layout gives every stored row back,
// the reference kernel agrees with an independent double-precision sum over the stored rows, the
// VNNI kernel agrees with the reference to the bit (over any block range and token count), and
// every matmul path on a panel-packed view agrees with the same matmul on the stored rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/int8_decode.h"
#include "kernels/matmul.h"
#include "kernels/packed_panels.h"
#include "kernels/packed_tiles.h"
#include "kernels/ref/ref_ops.h"
#include "kernels/serving_paths.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::random_values;
using tern::kernels::testing::random_weights;

namespace {

const DType kTypes[] = {DType::q8_0, DType::q4_0};

struct Panels {
  std::vector<uint8_t> stored, packed;
  WeightView s, p;
  Panels(DType t, int64_t rows, int64_t cols, uint32_t seed)
      : stored(random_weights(t, rows, cols, seed)), packed(stored.size(), 0xEE) {
    pack_panels(t, stored.data(), rows, cols, packed.data());
    s = WeightView{t, rows, cols, stored.data()};
    p = s;
    p.data = packed.data();
    p.packed = p.panels = true;
  }
};

// Token t's activations quantised as every int8 kernel does.
std::vector<ActQ8> quantised_tokens(int nt, int64_t cols, uint32_t seed) {
  std::vector<ActQ8> acts(static_cast<size_t>(nt));
  for (int t = 0; t < nt; ++t) {
    const std::vector<float> x = random_values(cols, seed + uint32_t(t), 2.0f);
    quantize_act_q8(x.data(), cols, acts[size_t(t)]);
  }
  return acts;
}

// Row r of the stored matrix dotted with token a over blocks [b0, b1), in double, from the
// stored bytes (the format's own definition), and the sum of the terms' magnitudes.
void stored_dot(DType t, const uint8_t* row, const ActQ8& a, int64_t b0, int64_t b1, double& sum,
                double& mag) {
  sum = mag = 0;
  const int64_t bb = t == DType::q8_0 ? 34 : 18;
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* blk = row + b * bb;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    double dot = 0;
    for (int j = 0; j < 32; ++j) {
      const int w = t == DType::q8_0 ? int(int8_t(blk[2 + j]))
                                     : (j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4) - 8;
      dot += double(w) * a.q[size_t(b * 32 + j)];
    }
    const double term = dot * f16_to_f32(h) * a.d[size_t(b)];
    sum += term;
    mag += std::fabs(term);
  }
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float f : v) m = std::max(m, std::fabs(f));
  return m;
}

}  // namespace

TEST(PackedPanels, UnpackGivesEveryStoredRowBack) {
  for (DType t : kTypes)
    for (int64_t blocks : {1, 3, 67}) {
      const int64_t rows = 64, cols = 32 * blocks;
      const Panels m(t, rows, cols, uint32_t(blocks));
      const int64_t rb = m.s.row_bytes();
      std::vector<uint8_t> row(static_cast<size_t>(rb));
      for (int64_t r = 0; r < rows; ++r) {
        unpack_row(t, m.packed.data(), cols, r, row.data(), /*panels=*/true);
        ASSERT_EQ(0, std::memcmp(row.data(), m.stored.data() + r * rb, size_t(rb)))
            << dtype_name(t) << " row " << r;
      }
      std::vector<uint8_t> blk(static_cast<size_t>(rb));
      unpack_row_blocks(t, m.packed.data(), cols, 37, blocks - 1, 1, blk.data(), true);
      EXPECT_EQ(0, std::memcmp(blk.data(), m.stored.data() + 37 * rb + (rb / blocks) * (blocks - 1),
                               size_t(rb / blocks)));
    }
}

TEST(PackedPanels, OnlyWholePanelsOfQ8AndQ4) {
  EXPECT_TRUE(panel_packable(DType::q4_0, 64, 96));
  EXPECT_TRUE(panel_packable(DType::q8_0, 32, 32));
  EXPECT_FALSE(panel_packable(DType::q4_0, 40, 96));  // a partial panel
  EXPECT_FALSE(panel_packable(DType::q4_0, 64, 48));  // a partial block
  EXPECT_FALSE(panel_packable(DType::q4_k, 64, 256));
  std::vector<uint8_t> bytes(1024);
  EXPECT_THROW(pack_panels(DType::q4_k, bytes.data(), 32, 256, bytes.data()), Error);
}

TEST(PackedPanels, ReferenceMatchesTheStoredRows) {
  for (DType t : kTypes) {
    const int64_t cols = 32 * 45;
    const Panels m(t, 64, cols, 3);
    const std::vector<ActQ8> acts = quantised_tokens(3, cols, 10);
    const ActQ8* xs[3] = {&acts[0], &acts[1], &acts[2]};
    for (int64_t panel : {0, 1}) {
      std::vector<float> acc(static_cast<size_t>(3 * kPanelPackRows), std::nanf(""));
      const uint8_t* p = m.packed.data() + panel * kPanelPackRows * m.s.row_bytes();
      panel_dot_ref(t, p, 0, cols / 32, xs, 3, acc.data());
      for (int tk = 0; tk < 3; ++tk)
        for (int64_t r = 0; r < kPanelPackRows; ++r) {
          double want, mag;
          stored_dot(t, m.s.row_ptr(panel * kPanelPackRows + r), acts[size_t(tk)], 0, cols / 32,
                     want, mag);
          // f32 products and sums of at most 45 terms: well inside 1e-6 of their magnitude.
          ASSERT_NEAR(acc[size_t(tk * kPanelPackRows + r)], want, 1e-6 * mag + 1e-30)
              << dtype_name(t) << " token " << tk << " row " << r;
        }
    }
  }
}

TEST(PackedPanels, SimdKernelEqualsTheReference) {
  const PanelDot k = panel_dot_vnni_if_supported();
  if (!k) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  for (DType t : kTypes)
    for (int64_t blocks : {1, 5, 48}) {
      const int64_t cols = 32 * blocks;
      const Panels m(t, 32, cols, uint32_t(7 + blocks));
      const std::vector<ActQ8> acts = quantised_tokens(4, cols, 20);
      const ActQ8* xs[4] = {&acts[0], &acts[1], &acts[2], &acts[3]};
      for (int nt = 1; nt <= 4; ++nt) {
        // Starting at block 0 never reads acc (NaN there), and the block range in two calls
        // continues one chain.
        std::vector<float> want(static_cast<size_t>(nt * kPanelPackRows), std::nanf("")),
            got = want;
        panel_dot_ref(t, m.packed.data(), 0, blocks, xs, nt, want.data());
        const int64_t mid = (blocks + 1) / 2;
        k(t, m.packed.data(), 0, mid, xs, nt, got.data());
        k(t, m.packed.data(), mid, blocks, xs, nt, got.data());
        EXPECT_EQ(want, got) << dtype_name(t) << " blocks " << blocks << " tokens " << nt;
      }
    }
}

TEST(PackedPanels, RowRangesStartOnAPanelEdge) {
  const Panels m(DType::q4_0, 64, 64, 1);
  EXPECT_THROW(m.p.row_range(4, 28), Error);  // a tile edge is not a panel edge
  EXPECT_THROW(m.p.row_ptr(0), Error);
  const WeightView second = m.p.row_range(32, 32);
  std::vector<uint8_t> scratch;
  EXPECT_EQ(0, std::memcmp(stored_rows(second, 0, 32, scratch).data, m.s.row_ptr(32),
                           size_t(32 * m.s.row_bytes())));
  // A range ending inside a panel: every path computes its rows and writes no others.
  const WeightView part_p = m.p.row_range(32, 20), part_s = m.s.row_range(32, 20);
  const ScopedServingKernels scope(true);
  for (int64_t T : {1, 3, 9}) {
    const std::vector<float> x = random_values(T * 64, uint32_t(T), 1.0f);
    std::vector<float> want(static_cast<size_t>(T * 24), 7.0f), got = want;
    matmul(MatmulParams{x.data(), 64, want.data(), 24, T, part_s});
    matmul(MatmulParams{x.data(), 64, got.data(), 24, T, part_p});
    const float tol = 1e-5f * max_abs(want) + 1e-6f;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < 24; ++r) {
        const size_t i = size_t(t * 24 + r);
        if (r >= 20) {
          ASSERT_EQ(got[i], 7.0f) << "T " << T << " wrote past the view at row " << r;
        } else {
          ASSERT_NEAR(want[i], got[i], tol) << "T " << T << " row " << r;
        }
      }
  }
}

// 1 token (decode), 3 (few tokens), 9 and 40 (the GEMM paths): the same products as the stored
// rows on the same paths up to float order; the exact path reads unpacked rows, so to the bit.
TEST(PackedPanels, MatmulOnThemMatchesTheStoredRows) {
  for (DType t : kTypes)
    for (int64_t blocks : {3, 67}) {
      const int64_t rows = 96, cols = 32 * blocks;
      const Panels m(t, rows, cols, uint32_t(blocks));
      for (int64_t T : {1, 3, 9, 40}) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " cols " + std::to_string(cols) + " T " +
                     std::to_string(T));
        const std::vector<float> x = random_values(T * cols, uint32_t(T), 2.0f);
        std::vector<float> want(static_cast<size_t>(T * rows), -1.0f), got = want;
        for (bool serving : {false, true}) {
          const ScopedServingKernels scope(serving);
          matmul(MatmulParams{x.data(), cols, want.data(), rows, T, m.s});
          matmul(MatmulParams{x.data(), cols, got.data(), rows, T, m.p});
          if (!serving) {
            EXPECT_EQ(want, got) << "exact";
          } else {
            const float tol = 1e-5f * max_abs(want) + 1e-6f;
            for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(want[i], got[i], tol) << i;
          }
        }
      }
    }
}

// Panel-packed matrices in one decode group beside tile-packed and stored ones (gate and up
// sharing an activation, an expert as a panel-aligned row range of a stacked matrix).
TEST(PackedPanels, DecodeGroupsMixThemWithOtherViews) {
  const int64_t cols = 32 * 12;
  const Panels gate(DType::q4_0, 32, cols, 7), stacked(DType::q8_0, 96, cols, 9);
  const std::vector<uint8_t> up_bytes = random_weights(DType::q4_0, 20, cols, 8);
  std::vector<uint8_t> up_tiles(static_cast<size_t>(packed_bytes(DType::q4_0, 20, cols)));
  pack_tiles(DType::q4_0, up_bytes.data(), 20, cols, up_tiles.data());
  WeightView up_s{DType::q4_0, 20, cols, up_bytes.data()}, up_p = up_s;
  up_p.data = up_tiles.data();
  up_p.packed = true;
  const std::vector<float> x = random_values(cols, 4, 1.5f);
  const WeightView expert_p = stacked.p.row_range(32, 64), expert_s = stacked.s.row_range(32, 64);
  std::vector<float> ys[3], yp[3];
  for (auto* v : {ys, yp})
    for (int i = 0; i < 3; ++i) v[i].assign(64, 0.0f);
  const ScopedServingKernels scope(true);
  const MatmulParams stored[3] = {{x.data(), cols, ys[0].data(), 32, 1, gate.s},
                                  {x.data(), cols, ys[1].data(), 20, 1, up_s},
                                  {x.data(), cols, ys[2].data(), 64, 1, expert_s}};
  const MatmulParams packed[3] = {{x.data(), cols, yp[0].data(), 32, 1, gate.p},
                                  {x.data(), cols, yp[1].data(), 20, 1, up_p},
                                  {x.data(), cols, yp[2].data(), 64, 1, expert_p}};
  matmul_group(stored, 3);
  matmul_group(packed, 3);
  for (int i = 0; i < 3; ++i) {
    const float tol = 1e-5f * max_abs(ys[i]) + 1e-6f;
    for (size_t j = 0; j < ys[i].size(); ++j) ASSERT_NEAR(ys[i][j], yp[i][j], tol) << i << " " << j;
  }
}

// A group of panel matmuls (gate and up sharing their rows of x, an expert with other tokens,
// one token beside them) gives each matmul's own result to the bit: the same kernel calls in
// the same order per panel, whatever the loop around them.
TEST(PackedPanels, GroupsGiveEachMatmulsOwnResult) {
  const int64_t cols = 32 * 20;
  const Panels gate(DType::q4_0, 64, cols, 1), up(DType::q4_0, 64, cols, 2),
      down(DType::q8_0, 32, cols, 3);
  const std::vector<float> x = random_values(9 * cols, 5, 1.5f);
  struct Case {
    const WeightView* w;
    const float* x;
    int64_t T;
  };
  const Case cases[] = {{&gate.p, x.data(), 5},
                        {&up.p, x.data(), 5},
                        {&down.p, x.data() + 5 * cols, 3},
                        {&gate.p, x.data() + 8 * cols, 1}};
  std::vector<std::vector<float>> alone, grouped;
  std::vector<MatmulParams> ps;
  for (const Case& c : cases) {
    alone.emplace_back(size_t(c.T * c.w->rows), std::nanf(""));
    grouped.emplace_back(size_t(c.T * c.w->rows), std::nanf(""));
  }
  ThreadPool& pool = ThreadPool::global();
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    panel_matmul(c.x, cols, c.T, *c.w, alone[i].data(), c.w->rows, pool);
    ps.push_back({c.x, cols, grouped[i].data(), c.w->rows, c.T, *c.w});
  }
  panel_matmul_group(ps.data(), int64_t(ps.size()), pool);
  for (size_t i = 0; i < std::size(cases); ++i) EXPECT_EQ(alone[i], grouped[i]) << i;
  // matmul_group routes them so too (the one-token matmul through the decode group).
  for (auto& g : grouped) std::fill(g.begin(), g.end(), std::nanf(""));
  const ScopedServingKernels scope(true);
  matmul_group(ps.data(), int64_t(ps.size()));
  for (size_t i = 0; i < std::size(cases); ++i) EXPECT_EQ(alone[i], grouped[i]) << i;
}

// The panel path's lean quantiser gives the codes, scales and sums of the full one, on the
// active ISA (ctest runs this binary with TERN_ISA=avx2 and scalar too).
TEST(PackedPanels, LeanActivationsEqualTheFullOnes) {
  for (int64_t n : {32, 96, 1056}) {
    const std::vector<float> x = random_values(n, uint32_t(n), 3.0f);
    ActQ8 full, lean;
    quantize_act_q8(x.data(), n, full);
    quantize_act_q8_codes(x.data(), n, lean);
    EXPECT_EQ(full.q, lean.q) << n;
    EXPECT_EQ(full.d, lean.d) << n;
    EXPECT_EQ(full.sum, lean.sum) << n;
    EXPECT_EQ(full.sum16, lean.sum16) << n;
    EXPECT_EQ(full.panel8, lean.panel8) << n;
    EXPECT_EQ(full.panel128, lean.panel128) << n;
    for (size_t b = 0; b < full.sum.size(); ++b)
      ASSERT_EQ(full.panel128[b], -128 * full.sum[b]) << n;
    EXPECT_TRUE(lean.q4x.empty() && lean.init4.empty()) << n;
  }
}

// tern bench names the layout a format runs on: every int8 path of a panel view says so.
TEST(PackedPanels, PathNamesSayPanels) {
  const Panels m(DType::q4_0, 64, 64, 1);
  for (int64_t T : {1, 3, 512}) {
    const std::string name = serving_path_name(m.p, T);
    EXPECT_NE(name.find(",panels]"), std::string::npos) << name;
  }
  EXPECT_EQ(serving_path_name(m.s, 1).find("panels"), std::string::npos);
  const std::string line = describe_serving_paths(std::vector<WeightView>{m.p});
  EXPECT_NE(line.find("q4_0: decode int8-decode["), std::string::npos) << line;
  EXPECT_NE(line.find(",panels]"), std::string::npos) << line;
}
