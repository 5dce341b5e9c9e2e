// Row ops against straightforward double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"

using namespace tern::kernels;

TEST(Ops, RmsNormMatchesFormula) {
  const std::vector<float> x = {1, -2, 3, 0.5f, 4, 5, -6, 7};
  const std::vector<float> w = {0.5f, 1, 2, -1};
  std::vector<float> out(8);
  rmsnorm(x.data(), w.data(), out.data(), 2, 4, 1e-6f);
  for (int t = 0; t < 2; ++t) {
    double ss = 0;
    for (int i = 0; i < 4; ++i) ss += double(x[size_t(t * 4 + i)]) * x[size_t(t * 4 + i)];
    const double inv = 1.0 / std::sqrt(ss / 4 + 1e-6);
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(out[size_t(t * 4 + i)], w[size_t(i)] * x[size_t(t * 4 + i)] * inv, 1e-6);
  }
}

TEST(Ops, SoftmaxHandlesMaskedEntriesAndLargeValues) {
  std::vector<float> x = {1000, 1001, -INFINITY, 999};
  softmax(x.data(), 4);
  const double e0 = std::exp(-1.0), e3 = std::exp(-2.0), s = e0 + 1 + e3;
  EXPECT_NEAR(x[0], e0 / s, 1e-6);
  EXPECT_NEAR(x[1], 1 / s, 1e-6);
  EXPECT_EQ(x[2], 0.0f);
  std::vector<float> masked = {-INFINITY, -INFINITY};
  softmax(masked.data(), 2);
  EXPECT_EQ(masked[0], 0.0f);
}

TEST(Ops, SwigluAndRope) {
  std::vector<float> g = {-1, 0, 2}, u = {3, 4, 5}, o(3);
  swiglu(g.data(), u.data(), o.data(), 3);
  EXPECT_NEAR(o[0], -1 / (1 + std::exp(1.0)) * 3, 1e-6);
  EXPECT_EQ(o[1], 0.0f);
  // Interleaved rotates (x0,x1),(x2,x3); half rotates (x0,x2),(x1,x3).
  const float c[2] = {0.0f, 1.0f}, s[2] = {1.0f, 0.0f};  // 90 degrees, then 0 degrees
  std::vector<float> a = {1, 2, 3, 4};
  rope_rotate(a.data(), 4, c, s, true);
  EXPECT_EQ(a, (std::vector<float>{-2, 1, 3, 4}));
  std::vector<float> b = {1, 2, 3, 4};
  rope_rotate(b.data(), 4, c, s, false);
  EXPECT_EQ(b, (std::vector<float>{-3, 2, 1, 4}));
}
