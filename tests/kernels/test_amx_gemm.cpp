// The AMX BF16 prefill GEMM against a scalar reference written from its definition (weights
// dequantised exactly, weights and activations rounded to bf16 to nearest even, products
// summed in double), for every weight dtype at awkward sizes (tokens and rows off the 16 / 32
// tile edges, columns off the 32-column step and across the 512-column panel block), with
// NaN-poisoned padding in x and y. Skipped where the CPU or kernel gives no AMX.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/amx_gemm.h"
#include "kernels/int8_decode.h"
#include "kernels/matmul.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;
using tern::kernels::testing::TestWeight;

namespace {

float bf16_round(float v) {
  return bf16_to_f32(f32_to_bf16(v));
}

// y_ref[t, r] and the bound sum |w| |x| the f32 tile accumulation error scales with.
void reference(const std::vector<float>& x, int64_t ldx, int64_t T, const WeightView& w,
               std::vector<double>& y, std::vector<double>& mag) {
  y.assign(size_t(T * w.rows), 0.0);
  mag.assign(size_t(T * w.rows), 0.0);
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    ref::dequant_row(w, r, 0, w.cols, row.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = 0, m = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        const double p = double(bf16_round(row[size_t(c)])) * bf16_round(x[size_t(t * ldx + c)]);
        s += p;
        m += std::fabs(p);
      }
      y[size_t(t * w.rows + r)] = s;
      mag[size_t(t * w.rows + r)] = m;
    }
  }
}

}  // namespace

TEST(AmxGemm, MatchesBf16ReferenceForEveryDtypeAtAwkwardSizes) {
  if (!amx_usable()) GTEST_SKIP() << "no AMX BF16 on this CPU / kernel";
  ThreadPool pool(2);
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  struct Shape {
    int64_t T, rows, cols;
  };
  const std::vector<Shape> shapes = {{1, 1, 32},    {5, 17, 96},    {16, 32, 64},
                                     {33, 45, 544}, {70, 64, 1056}, {32, 33, 512}};
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f8_e4m3, DType::q8_0, DType::q4_0,
                   DType::i8, DType::i4}) {
    for (Shape s : shapes) {
      for (int64_t extra_cols : {0, 7}) {  // float types also at columns off the 32-step
        if (extra_cols && (dt == DType::q8_0 || dt == DType::q4_0)) continue;
        const int64_t cols = s.cols + extra_cols, ldx = cols + 3, ldy = s.rows + 5;
        TestWeight w = make_weight(dt, s.rows, cols, rng, 3, 32);
        std::vector<float> x(size_t(s.T * ldx), std::nanf(""));
        for (int64_t t = 0; t < s.T; ++t)
          for (int64_t c = 0; c < cols; ++c) x[size_t(t * ldx + c)] = nd(rng);
        std::vector<float> y(size_t(s.T * ldy), std::nanf(""));
        ASSERT_TRUE(amx_gemm(x.data(), ldx, s.T, w.view, y.data(), ldy, pool, active_isa()));
        std::vector<double> want, mag;
        reference(x, ldx, s.T, w.view, want, mag);
        for (int64_t t = 0; t < s.T; ++t) {
          for (int64_t r = 0; r < s.rows; ++r) {
            // f32 accumulation over at most ~1000 products: a few ulps of the magnitude sum.
            const double tol = 2e-6 * mag[size_t(t * s.rows + r)] + 1e-30;
            ASSERT_NEAR(y[size_t(t * ldy + r)], want[size_t(t * s.rows + r)], tol)
                << dtype_name(dt) << " T " << s.T << " rows " << s.rows << " cols " << cols << " t "
                << t << " r " << r;
          }
          for (int64_t r = s.rows; r < ldy; ++r)
            ASSERT_TRUE(std::isnan(y[size_t(t * ldy + r)])) << "wrote past row end";
        }
      }
    }
  }
}

// The GGUF k-/i-quants go through the same tiles, dequantised by their unpackers.
TEST(AmxGemm, MatchesBf16ReferenceForGgufQuantisations) {
  if (!amx_usable()) GTEST_SKIP() << "no AMX BF16 on this CPU / kernel";
  ThreadPool pool(2);
  std::mt19937 rng(18);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType dt : {DType::q4_k, DType::q6_k, DType::q2_k, DType::iq2_xxs, DType::iq1_s,
                   DType::iq4_nl, DType::q5_0}) {
    for (int64_t T : {16, 33}) {
      const int64_t rows = 45, cols = 768, ldx = cols + 3, ldy = rows + 5;
      TestWeight w = make_weight(dt, rows, cols, rng);
      std::vector<float> x(size_t(T * ldx), std::nanf(""));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < cols; ++c) x[size_t(t * ldx + c)] = nd(rng);
      std::vector<float> y(size_t(T * ldy), std::nanf(""));
      ASSERT_TRUE(amx_gemm(x.data(), ldx, T, w.view, y.data(), ldy, pool, active_isa()));
      std::vector<double> want, mag;
      reference(x, ldx, T, w.view, want, mag);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_NEAR(y[size_t(t * ldy + r)], want[size_t(t * rows + r)],
                      2e-6 * mag[size_t(t * rows + r)] + 1e-30)
              << dtype_name(dt) << " T " << T << " t " << t << " r " << r;
    }
  }
}

TEST(AmxGemm, ServingMatmulTakesTilesAndStaysNearTheExactPath) {
  if (!amx_usable()) GTEST_SKIP() << "no AMX BF16 on this CPU / kernel";
  if (std::string(active_isa().name) != "avx512") GTEST_SKIP() << "TERN_ISA selects another ISA";
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t T = 48, rows = 40, cols = 256;
  TestWeight w = make_weight(DType::q4_0, rows, cols, rng);
  std::vector<float> x(size_t(T * cols));
  for (auto& v : x) v = nd(rng);
  std::vector<float> exact(size_t(T * rows)), fast(size_t(T * rows)), tiles(size_t(T * rows));
  matmul(MatmulParams{x.data(), cols, exact.data(), rows, T, w.view});
  {
    ScopedServingKernels on(true);
    matmul(MatmulParams{x.data(), cols, fast.data(), rows, T, w.view});
  }
  ASSERT_TRUE(
      amx_gemm(x.data(), cols, T, w.view, tiles.data(), rows, ThreadPool::global(), active_isa()));
  for (size_t i = 0; i < fast.size(); ++i) {
    ASSERT_EQ(fast[i], tiles[i]) << i;  // the serving matmul is the tile path, bit for bit
    // bf16 activations: relative error 2^-9 per element, random signs over 256 products.
    EXPECT_NEAR(fast[i], exact[i], 0.05f) << i;
  }
}
