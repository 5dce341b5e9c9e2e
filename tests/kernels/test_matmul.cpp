// Every ISA's dequantisation and matmul against the scalar reference (kernels/ref), over all
// weight dtypes and awkward sizes (0, 1, lanes±1, partial FP8 blocks), with NaN-poisoned
// padding in x and y to catch reads/writes outside the views.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/isa.h"
#include "kernels/matmul.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;
using tern::kernels::testing::TestWeight;

namespace {

std::vector<const IsaKernels*> isas() {
  return supported_isas();
}

}  // namespace

TEST(Kernels, ReportsIsas) {
  std::string names;
  for (auto* k : isas()) names += std::string(k->name) + " ";
  std::printf("supported ISAs: %s(active: %s)\n", names.c_str(), active_isa().name);
  EXPECT_STREQ(isas().back()->name, "scalar");
}

TEST(Kernels, Fp8DequantAllBytePatternsMatchReference) {
  std::vector<uint8_t> row(256 + 7);
  for (size_t i = 0; i < row.size(); ++i) row[i] = uint8_t(i);
  float scales[3] = {0.5f, 2.0f, 0.25f};
  WeightView w{DType::f8_e4m3, 1, int64_t(row.size()), row.data(), scales, 1, 128};
  std::vector<float> want(row.size()), buf(row.size());
  ref::dequant_row(w, 0, 0, w.cols, want.data());
  for (auto* k : isas()) {
    const float* got = k->dequant(w, 0, 0, w.cols, buf.data());
    for (size_t i = 0; i < row.size(); ++i) {
      if (std::isnan(want[i])) {
        EXPECT_TRUE(std::isnan(got[i])) << k->name << " byte " << i;
      } else {
        EXPECT_EQ(got[i], want[i]) << k->name << " byte " << i;
      }
    }
  }
}

TEST(Kernels, DequantMatchesReferenceExactly) {
  std::mt19937 rng(1);
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f8_e4m3, DType::q8_0, DType::q4_0,
                   DType::i8, DType::i4}) {
    const bool blocked = dtype_block_elems(dt) > 1;
    for (int64_t cols : blocked ? std::vector<int64_t>{32, 64, 96, 544}
                                : std::vector<int64_t>{1, 7, 15, 16, 17, 129, 300}) {
      TestWeight w = make_weight(dt, 3, cols, rng, 2, 5);
      std::vector<float> want(static_cast<size_t>(cols)), buf(static_cast<size_t>(cols));
      for (int64_t r = 0; r < 3; ++r) {
        ref::dequant_row(w.view, r, 0, cols, want.data());
        for (auto* k : isas()) {
          const float* got = k->dequant(w.view, r, 0, cols, buf.data());
          for (int64_t i = 0; i < cols; ++i)
            ASSERT_EQ(got[i], want[size_t(i)])
                << k->name << " " << dtype_name(dt) << " cols " << cols << " r " << r << " i " << i;
        }
      }
    }
  }
}

TEST(Kernels, MatmulMatchesReferenceAllDtypesAndAwkwardSizes) {
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float kNaN = std::numeric_limits<float>::quiet_NaN();
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f8_e4m3, DType::q8_0, DType::q4_0,
                   DType::i8, DType::i4}) {
    const bool blocked = dtype_block_elems(dt) > 1;
    const std::vector<int64_t> col_sizes =
        blocked ? std::vector<int64_t>{32, 96, 544, 1056}
                : std::vector<int64_t>{1, 15, 16, 17, 33, 128, 129, 513, 700};
    for (int64_t rows : {0, 1, 3, 4, 5, 17}) {
      for (int64_t cols : col_sizes) {
        for (int64_t T : {1, 2, 5, 8}) {
          TestWeight w = make_weight(dt, rows, cols, rng);
          const int64_t ldx = cols + 3, ldy = rows + 2;
          std::vector<float> x(size_t(T * ldx), kNaN), want(size_t(T * ldy), kNaN);
          for (int64_t t = 0; t < T; ++t)
            for (int64_t k = 0; k < cols; ++k) x[size_t(t * ldx + k)] = nd(rng);
          ref::matmul(x.data(), ldx, w.view, want.data(), ldy, T);
          // Tolerance: f32 accumulation over `cols` terms, error <= cols * eps * sum|x*w|.
          std::vector<float> mag(static_cast<size_t>(T * rows), 0.0f),
              row(static_cast<size_t>(cols));
          for (int64_t r = 0; r < rows; ++r) {
            ref::dequant_row(w.view, r, 0, cols, row.data());
            for (int64_t t = 0; t < T; ++t)
              for (int64_t k = 0; k < cols; ++k)
                mag[size_t(t * rows + r)] += std::fabs(x[size_t(t * ldx + k)] * row[size_t(k)]);
          }
          for (auto* k : isas()) {
            std::vector<float> got(size_t(T * ldy), kNaN);
            matmul(MatmulParams{x.data(), ldx, got.data(), ldy, T, w.view}, nullptr, k);
            for (int64_t t = 0; t < T; ++t) {
              for (int64_t r = 0; r < ldy; ++r) {
                const float g = got[size_t(t * ldy + r)];
                if (r >= rows) {
                  ASSERT_TRUE(std::isnan(g)) << "padding written at r=" << r;
                  continue;
                }
                const float tol = 1e-6f + float(cols) * 1.2e-7f * mag[size_t(t * rows + r)];
                ASSERT_NEAR(g, want[size_t(t * ldy + r)], tol)
                    << k->name << " " << dtype_name(dt) << " rows " << rows << " cols " << cols
                    << " T " << T;
              }
            }
          }
        }
      }
    }
  }
}

TEST(Kernels, DotAndAxpyMatchReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100}) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    for (auto& v : a) v = nd(rng);
    for (auto& v : b) v = nd(rng);
    float mag = 0;
    for (int64_t i = 0; i < n; ++i) mag += std::fabs(a[size_t(i)] * b[size_t(i)]);
    for (auto* k : isas()) {
      EXPECT_NEAR(k->dot(a.data(), b.data(), n), ref::dot(a.data(), b.data(), n),
                  1e-6f + float(n) * 1.2e-7f * mag)
          << k->name;
      std::vector<float> y = b;
      k->axpy(0.5f, a.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_FLOAT_EQ(y[size_t(i)], b[size_t(i)] + 0.5f * a[size_t(i)]) << k->name;
    }
  }
}

TEST(Kernels, RowRangeViewsKeepFp8BlockScalesAligned) {
  // A view of rows [3, 8) of an FP8 weight with 2-row scale blocks must use the parent's
  // block rows (row0 + r) / block_rows, as the absorbed MLA's W_UV head slices do.
  std::mt19937 rng(5);
  TestWeight w = make_weight(DType::f8_e4m3, 11, 40, rng, 2, 16);
  const WeightView sub = w.view.row_range(3, 5);
  std::vector<float> want(40), got(40);
  for (int64_t r = 0; r < 5; ++r) {
    ref::dequant_row(w.view, 3 + r, 0, 40, want.data());
    for (auto* k : isas()) {
      const float* g = k->dequant(sub, r, 0, 40, got.data());
      for (int i = 0; i < 40; ++i)
        ASSERT_EQ(g[i], want[size_t(i)]) << k->name << " r " << r << " i " << i;
    }
  }
}

TEST(Kernels, FusedDecodePathMatchesReferenceWithSmallFp8Blocks) {
  // T = 1 takes the fused dequantise-and-dot path where an ISA has one; 32-column scale blocks
  // put several blocks (and a partial last one) inside one column chunk.
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType dt : {DType::f8_e4m3, DType::bf16, DType::q8_0, DType::q4_0}) {
    for (int64_t cols : {64, 96, 2048 + 64, 4096}) {
      TestWeight w = make_weight(dt, 8, cols, rng, 3, 32);
      std::vector<float> x(static_cast<size_t>(cols)), want(8);
      for (auto& v : x) v = nd(rng);
      ref::matmul(x.data(), cols, w.view, want.data(), 8, 1);
      for (auto* k : isas()) {
        std::vector<float> got(8);
        matmul(MatmulParams{x.data(), cols, got.data(), 8, 1, w.view}, nullptr, k);
        for (int r = 0; r < 8; ++r)
          ASSERT_NEAR(got[size_t(r)], want[size_t(r)], 1e-4f * std::sqrt(float(cols)))
              << k->name << " " << dtype_name(dt) << " cols " << cols << " r " << r;
      }
    }
  }
}

TEST(Kernels, ExpAffineMatchesStdExpOnEveryIsa) {
  // Within 2 ulp of std::exp over the range softmax and SiLU use, the documented edges (0
  // below -87.3, +inf above 88.7, -inf -> 0, NaN -> NaN), odd lengths for the vector tails.
  std::vector<float> x;
  for (float v = -90.0f; v <= 90.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 0.5f, -0.5f, 88.0f, -87.0f}) x.push_back(v);
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(std::nanf(""));
  for (auto* k : isas()) {
    for (int64_t n : {int64_t(x.size()), int64_t(7), int64_t(17)}) {
      for (auto [a, b] : {std::pair{1.0f, 0.0f}, std::pair{-1.0f, 0.5f}}) {
        std::vector<float> out(size_t(n), 123.0f);
        k->exp_affine(x.data(), a, b, out.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const float z = a * x[size_t(i)] + b, got = out[size_t(i)];
          if (std::isnan(z)) {
            EXPECT_TRUE(std::isnan(got)) << k->name;
          } else if (z < -87.3f) {
            EXPECT_LE(got, 1.25e-38f) << k->name << " z " << z << " got " << got;
          } else if (z > 88.7f) {  // +inf, or std::exp's value just below FLT_MAX
            EXPECT_GE(got, 3.2e38f) << k->name << " z " << z << " got " << got;
          } else {
            const float want = std::exp(z);
            EXPECT_NEAR(got, want, 2.5e-7f * want) << k->name << " z " << z;
          }
        }
      }
    }
  }
}

TEST(Kernels, Axpy4EqualsFourAxpysOnEveryIsa) {
  // Same FMA per element as axpy (lengths off the vector widths too), so equal to the bit.
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto* k : isas()) {
    for (int64_t n : {1, 7, 16, 33, 128}) {
      std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(4 * n)), want;
      for (auto& v : x) v = nd(rng);
      for (auto& v : y) v = nd(rng);
      want = y;
      const float a[4] = {0.5f, -1.25f, 0.0f, 3.0f};
      for (int r = 0; r < 4; ++r) k->axpy(a[r], x.data(), want.data() + r * n, n);
      float* ys[4] = {y.data(), y.data() + n, y.data() + 2 * n, y.data() + 3 * n};
      k->axpy4(a, x.data(), ys, n);
      for (int64_t i = 0; i < 4 * n; ++i)
        ASSERT_EQ(y[size_t(i)], want[size_t(i)]) << k->name << " n " << n;
    }
  }
}
