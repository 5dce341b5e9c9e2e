// Group-quantised i8 / i4 weights (the int8 / int4 formats): the quantiser against its
// definition and the packed nibble order, the VNNI decode kernel against the scalar reference at
// awkward block counts and group widths, and a decode matmul against the exact path within the
// activation-rounding bound.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/int_group_decode.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "kernels/ref/ref_ops.h"
#include "kernels/serving_paths.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;
using tern::kernels::testing::random_values;

TEST(IntGroups, QuantiserFollowsItsDefinition) {
  const int64_t rows = 3, cols = 100, group = 32;  // a partial last group of 4 columns
  std::vector<float> w = random_values(rows * cols, 1);
  for (int64_t c = 32; c < 64; ++c) w[size_t(cols + c)] = 0;  // an all-zero group: scale 1
  for (int bits : {8, 4}) {
    const DType t = bits == 8 ? DType::i8 : DType::i4;
    std::vector<uint8_t> q(size_t(rows * dtype_bytes_for(t, cols)));
    std::vector<float> s(size_t(rows * 4));
    quantize_int_groups(w.data(), rows, cols, bits, group, q.data(), s.data());
    const WeightView v{t, rows, cols, q.data(), s.data(), 1, group};
    const float qmax = bits == 8 ? 127.0f : 7.0f;
    std::vector<float> back(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequant_row(v, r, 0, cols, back.data());
      for (int64_t g = 0; g < 4; ++g) {
        float amax = 0;
        for (int64_t c = g * group; c < std::min(cols, (g + 1) * group); ++c)
          amax = std::max(amax, std::fabs(w[size_t(r * cols + c)]));
        EXPECT_FLOAT_EQ(s[size_t(r * 4 + g)], amax > 0 ? amax / qmax : 1.0f) << bits << " " << r;
      }
      for (int64_t c = 0; c < cols; ++c) {
        const float sc = s[size_t(r * 4 + c / group)];
        EXPECT_LE(std::fabs(back[size_t(c)] - w[size_t(r * cols + c)]), 0.5f * sc * 1.0001f)
            << bits << " bits, row " << r << " col " << c;
      }
    }
  }
  // i4 order: element 2k in the low nibble of byte k, each stored + 8.
  const std::vector<float> two = {-8.0f, 7.0f};  // group of 2, scale 8/7: codes -7 and +6
  std::vector<uint8_t> q(1);
  float s = 0;
  quantize_int_groups(two.data(), 1, 2, 4, 2, q.data(), &s);
  EXPECT_EQ(q[0], uint8_t(((6 + 8) << 4) | (-7 + 8)));
  EXPECT_THROW(quantize_int_groups(two.data(), 1, 1, 4, 2, q.data(), &s), Error);
}

TEST(IntGroups, VnniKernelEqualsTheReference) {
  const IntGroupDot4 kernel = int_group_dot4_vnni_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  std::mt19937 rng(2);
  for (DType t : {DType::i8, DType::i4})
    for (int64_t group : {32, 64, 128})
      for (int64_t blocks : {1, 3, 4, 5, 8, 67}) {
        const int64_t cols = blocks * 32;
        const auto tw = make_weight(t, 6, cols, rng, 1, group);
        ActQ8 x;
        const std::vector<float> xf = random_values(cols, uint32_t(blocks), 3.0f);
        quantize_act_q8(xf.data(), cols, x);
        for (int64_t r0 : {0, 4}) {  // rows 4, 5: a short tile
          const IntGroupRows rows = int_group_rows(tw.view, r0);
          float want[4], got[4];
          int_group_dot4_ref(rows, x, want);
          kernel(rows, x, got);
          for (int r = 0; r < 4; ++r)  // same integer block sums; float order differs
            EXPECT_NEAR(got[r], want[r], 1e-5f * (1.0f + std::fabs(want[r])))
                << dtype_name(t) << " group " << group << " blocks " << blocks << " row " << r0 + r;
        }
      }
}

// y_fast - y_exact is bounded by the activation rounding: per block, d_x / 2 times the
// dequantised weights' L1 norm over the block.
TEST(IntGroups, DecodeMatmulStaysWithinTheRoundingBound) {
  std::mt19937 rng(4);
  for (DType t : {DType::i8, DType::i4})
    for (int64_t group : {32, 128}) {
      const int64_t rows = 37, cols = 416;  // 13 blocks: a tail past whole groups of 4
      const auto tw = make_weight(t, rows, cols, rng, 1, group);
      const std::vector<float> x = random_values(cols, 8, 2.0f);
      std::vector<float> exact(static_cast<size_t>(rows)), fast(static_cast<size_t>(rows));
      matmul(MatmulParams{x.data(), cols, exact.data(), rows, 1, tw.view});
      {
        const ScopedServingKernels on(true);
        matmul(MatmulParams{x.data(), cols, fast.data(), rows, 1, tw.view});
      }
      if (!int_group_dot4_kernel()) {
        EXPECT_EQ(fast, exact) << "without an integer kernel the exact path runs";
        continue;
      }
      ActQ8 q;
      quantize_act_q8(x.data(), cols, q);
      std::vector<float> wrow(static_cast<size_t>(cols));
      int64_t changed = 0;
      for (int64_t r = 0; r < rows; ++r) {
        ref::dequant_row(tw.view, r, 0, cols, wrow.data());
        double bound = 0;
        for (int64_t c = 0; c < cols; ++c)
          bound += 0.5 * double(q.d[size_t(c / 32)]) * std::fabs(wrow[size_t(c)]);
        EXPECT_LE(std::fabs(fast[size_t(r)] - exact[size_t(r)]), bound * 1.001 + 1e-5)
            << dtype_name(t) << " group " << group << " row " << r;
        changed += fast[size_t(r)] != exact[size_t(r)];
      }
      EXPECT_GT(changed, 0) << "the integer path must actually have run";
      EXPECT_EQ(serving_path_name(tw.view, 1).rfind("int-group-decode[", 0), 0u);
    }
}

TEST(IntGroups, ExactPathRefusesNothingAndDequantisesPerGroup) {
  std::mt19937 rng(5);
  const auto tw = make_weight(DType::i4, 5, 64, rng, 1, 32);
  std::vector<float> row(64);
  ref::dequant_row(tw.view, 2, 0, 64, row.data());
  for (int64_t c = 0; c < 64; ++c) {
    const uint8_t byte = tw.bytes[size_t(2 * 32 + c / 2)];
    const int q = int((byte >> (4 * (c & 1))) & 15) - 8;
    EXPECT_EQ(row[size_t(c)], float(q) * tw.scales[size_t(2 * 2 + c / 32)]) << c;
  }
}
