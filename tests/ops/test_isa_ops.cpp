// The per-op harness: every primitive of every ISA this CPU runs (IsaKernels: dequant, dot4,
// dot4x4, dot4_fused, dot, axpy, axpy4, exp_affine, max_scaled, exp_affine_sum, rmsnorm_row,
// rmsnorm_bwd_row) against the scalar
// reference (kernels/ref in double, or the definition), at awkward lengths around each vector
// width, with inputs poisoned by NaN past their ends and outputs that must stay untouched past
// theirs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Lengths around the 8-, 16- and 32-float steps and their multiples, and a long one.
const std::vector<int64_t> kLengths = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 127, 1029};

// n values, then 16 NaNs: a kernel that reads past n poisons its result.
std::vector<float> poisoned(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(size_t(n + 16), kNaN);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = nd(rng);
  return v;
}

double ref_dot(const float* a, const float* b, int64_t n, double* mag) {
  double s = 0, m = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i], m += std::fabs(double(a[i]) * b[i]);
  *mag = m;
  return s;
}

// f32 accumulation over n products: within n * eps of their magnitude sum.
double tolerance(int64_t n, double mag) {
  return 1e-6 + double(n + 1) * 1.2e-7 * mag;
}

class IsaOps : public ::testing::TestWithParam<const IsaKernels*> {};

TEST_P(IsaOps, DotMatchesTheReference) {
  const IsaKernels& k = *GetParam();
  std::mt19937 rng(1);
  for (int64_t n : kLengths) {
    const auto a = poisoned(n, rng), b = poisoned(n, rng);
    double mag;
    const double want = ref_dot(a.data(), b.data(), n, &mag);
    EXPECT_NEAR(k.dot(a.data(), b.data(), n), want, tolerance(n, mag)) << k.name << " n " << n;
  }
}

TEST_P(IsaOps, Dot4AndDot4x4MatchTheReference) {
  const IsaKernels& k = *GetParam();
  std::mt19937 rng(2);
  for (int64_t n : kLengths) {
    std::vector<std::vector<float>> w(4), x(4);
    const float *wp[4], *xp[4];
    for (int i = 0; i < 4; ++i) {
      w[size_t(i)] = poisoned(n, rng), x[size_t(i)] = poisoned(n, rng);
      wp[i] = w[size_t(i)].data(), xp[i] = x[size_t(i)].data();
    }
    float one[4], many[16];
    k.dot4(wp, xp[0], n, one);
    k.dot4x4(wp, xp, n, many);
    for (int j = 0; j < 4; ++j)
      for (int r = 0; r < 4; ++r) {
        double mag;
        const double want = ref_dot(wp[r], xp[j], n, &mag);
        if (j == 0) {
          EXPECT_NEAR(one[r], want, tolerance(n, mag)) << k.name << " dot4 n " << n;
        }
        EXPECT_NEAR(many[4 * j + r], want, tolerance(n, mag)) << k.name << " dot4x4 n " << n;
      }
  }
}

TEST_P(IsaOps, AxpyAndAxpy4TouchOnlyTheirLength) {
  const IsaKernels& k = *GetParam();
  std::mt19937 rng(3);
  for (int64_t n : kLengths) {
    const auto x = poisoned(n, rng);
    std::vector<std::vector<float>> y(4);
    for (auto& v : y) v = poisoned(n, rng);
    const std::vector<std::vector<float>> before = y;
    const float a[4] = {0.5f, -2.0f, 0.0f, 3.25f};
    k.axpy(a[0], x.data(), y[0].data(), n);
    float* ys[4] = {y[1].data(), y[2].data(), y[3].data(), y[0].data()};
    const float a4[4] = {a[1], a[2], a[3], 1.0f};
    k.axpy4(a4, x.data(), ys, n);
    for (int64_t i = 0; i < n + 16; ++i) {
      if (i >= n) {  // past the end: untouched (still NaN)
        for (int r = 0; r < 4; ++r) ASSERT_TRUE(std::isnan(y[size_t(r)][size_t(i)])) << k.name;
        continue;
      }
      const double xi = x[size_t(i)];
      const double y0 = double(before[0][size_t(i)]) + a[0] * xi + 1.0 * xi;
      EXPECT_NEAR(y[0][size_t(i)], y0, 1e-5 * (1 + std::fabs(y0))) << k.name << " n " << n;
      for (int r = 1; r < 4; ++r) {
        const double want = double(before[size_t(r)][size_t(i)]) + a[r] * xi;
        EXPECT_NEAR(y[size_t(r)][size_t(i)], want, 1e-6 * (1 + std::fabs(want))) << k.name;
      }
    }
  }
}

TEST_P(IsaOps, ExpAffineMatchesStdExpAndStopsAtN) {
  const IsaKernels& k = *GetParam();
  std::mt19937 rng(4);
  for (int64_t n : kLengths) {
    const auto x = poisoned(n, rng);
    std::vector<float> out(size_t(n + 16), kNaN);
    k.exp_affine(x.data(), 1.5f, -0.25f, out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(1.5 * x[size_t(i)] - 0.25);
      EXPECT_NEAR(out[size_t(i)], want, 3e-7 * want) << k.name << " n " << n;
    }
    for (int64_t i = n; i < n + 16; ++i) EXPECT_TRUE(std::isnan(out[size_t(i)])) << k.name;
  }
}

// The softmax pieces: the max of scaled values exactly (NaNs inside skipped, -inf for none), and
// the exponentials with their sum in one pass equal to exp_affine's values and their double sum.
TEST_P(IsaOps, MaxScaledAndExpAffineSumMatchTheDefinitions) {
  const IsaKernels& k = *GetParam();
  std::mt19937 rng(6);
  for (int64_t n : kLengths) {
    auto x = poisoned(n, rng);
    float want = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) want = std::max(want, x[size_t(i)] * 0.7f);
    EXPECT_EQ(k.max_scaled(x.data(), n, 0.7f), want) << k.name << " n " << n;
    if (n > 2) {
      x[1] = kNaN;  // skipped, as max_scaled_f32 skips it
      float without = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < n; ++i)
        if (i != 1) without = std::max(without, x[size_t(i)] * 0.7f);
      EXPECT_EQ(k.max_scaled(x.data(), n, 0.7f), without) << k.name << " n " << n;
      x[1] = 0.5f;
    }
    std::vector<float> plain(size_t(n + 16), kNaN), summed(size_t(n + 16), kNaN);
    k.exp_affine(x.data(), 1.5f, -0.25f, plain.data(), n);
    const double sum = k.exp_affine_sum(x.data(), 1.5f, -0.25f, summed.data(), n);
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(summed[size_t(i)], plain[size_t(i)]) << k.name << " n " << n << " at " << i;
      want_sum += summed[size_t(i)];
    }
    EXPECT_NEAR(sum, want_sum, 1e-13 * want_sum) << k.name << " n " << n;
    for (int64_t i = n; i < n + 16; ++i) EXPECT_TRUE(std::isnan(summed[size_t(i)])) << k.name;
  }
}

// RMSNorm rows, forward and backward, give the scalar rows' bits on every ISA (same lane order
// for the double sums, no FMA contraction), with dx in place of dy too; and the forward agrees
// with its definition in double.
TEST_P(IsaOps, RmsnormRowsEqualTheScalarRowsBitForBit) {
  const IsaKernels& k = *GetParam();
  const IsaKernels& ref = isa_scalar();
  std::mt19937 rng(7);
  for (int64_t n : kLengths) {
    if (n == 0) continue;
    const auto x = poisoned(n, rng), w = poisoned(n, rng), dy = poisoned(n, rng);
    std::vector<float> y(size_t(n + 16), kNaN), y_ref = y;
    const float r = k.rmsnorm_row(x.data(), w.data(), y.data(), n, 1e-6f);
    ASSERT_EQ(r, ref.rmsnorm_row(x.data(), w.data(), y_ref.data(), n, 1e-6f)) << k.name << " " << n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[size_t(i)]) * x[size_t(i)];
    EXPECT_NEAR(r, 1.0 / std::sqrt(ss / double(n) + 1e-6), 1e-6 * r) << k.name;
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_TRUE(y[i] == y_ref[i] || (std::isnan(y[i]) && std::isnan(y_ref[i])))
          << k.name << " " << i;
    for (bool accumulate : {false, true})
      for (bool in_place : {false, true}) {
        std::vector<float> dx(size_t(n), 0.25f), dw(size_t(n), 0.5f);
        std::vector<float> dx_ref = dx, dw_ref = dw, g = dy, g_ref = dy;
        float* out = in_place ? g.data() : dx.data();
        float* out_ref = in_place ? g_ref.data() : dx_ref.data();
        k.rmsnorm_bwd_row(g.data(), x.data(), w.data(), r, out, accumulate, dw.data(), n);
        ref.rmsnorm_bwd_row(g_ref.data(), x.data(), w.data(), r, out_ref, accumulate, dw_ref.data(),
                            n);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(out[i], out_ref[i]) << k.name << " n " << n << " at " << i;
          ASSERT_EQ(dw[size_t(i)], dw_ref[size_t(i)]) << k.name << " n " << n << " at " << i;
        }
      }
  }
}

// Every weight dtype dequantised, and dotted fused where the ISA fuses, from chunks that start
// inside a row (column offsets on the dtype's alignment) at awkward lengths.
TEST_P(IsaOps, DequantAndFusedDotMatchTheReferenceOnEveryDtype) {
  const IsaKernels& k = *GetParam();
  std::mt19937 rng(5);
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f8_e4m3, DType::q8_0, DType::q4_0,
                   DType::i8, DType::i4}) {
    const int64_t align = std::max<int64_t>(weight_col_align(dt), 1), cols = 1024 + 32;
    const auto tw = make_weight(dt, 4, cols, rng, 2, 64);
    for (int64_t col0 : {int64_t(0), align * 2, int64_t(64)}) {
      for (int64_t n : {align, align * 3, int64_t(96), int64_t(512)}) {
        if (col0 + n > cols || n % align) continue;
        std::vector<float> want(static_cast<size_t>(n)), buf(size_t(n + 16), kNaN);
        for (int64_t r = 0; r < 4; ++r) {
          ref::dequant_row(tw.view, r, col0, n, want.data());
          const float* got = k.dequant(tw.view, r, col0, n, buf.data());
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(got[i], want[size_t(i)])
                << k.name << " " << dtype_name(dt) << " col0 " << col0 << " n " << n;
          if (got == buf.data()) {
            for (int64_t i = n; i < n + 16; ++i) ASSERT_TRUE(std::isnan(buf[size_t(i)]));
          }
        }
        const auto x = poisoned(n, rng);
        float fused[4];
        if (!k.dot4_fused(tw.view, 0, col0, n, x.data(), fused)) continue;
        for (int64_t r = 0; r < 4; ++r) {
          ref::dequant_row(tw.view, r, col0, n, want.data());
          double mag;
          const double expect = ref_dot(want.data(), x.data(), n, &mag);
          EXPECT_NEAR(fused[r], expect, tolerance(n, mag))
              << k.name << " fused " << dtype_name(dt) << " col0 " << col0 << " n " << n;
        }
      }
    }
  }
}

std::string isa_name(const ::testing::TestParamInfo<const IsaKernels*>& info) {
  return info.param->name;
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, IsaOps, ::testing::ValuesIn(supported_isas()), isa_name);

}  // namespace
