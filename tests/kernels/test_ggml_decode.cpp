// GGUF k-/i-quant serving kernels: every SIMD unpacker equals the scalar one to the byte, the
// VNNI dot kernel equals the scalar reference (same integer sums per 16 values, float order
// differs) at awkward widths and 1..4 tokens, the fast dequantisation equals the scalar one,
// and a decode matmul stays within the activation-rounding bound of the exact path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/ggml/ggml_decode.h"
#include "kernels/int8_gemm.h"
#include "kernels/matmul.h"
#include "kernels/ref/ref_ops.h"
#include "kernels/serving_paths.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;
using tern::kernels::testing::random_ggml_blocks;
using tern::kernels::testing::random_values;

namespace {

const DType kTypes[] = {DType::q4_1,    DType::q5_0,  DType::q5_1,    DType::q2_k,   DType::q3_k,
                        DType::q4_k,    DType::q5_k,  DType::q6_k,    DType::iq4_nl, DType::iq4_xs,
                        DType::iq3_xxs, DType::iq3_s, DType::iq2_xxs, DType::iq2_xs, DType::iq2_s,
                        DType::iq1_s,   DType::iq1_m};

int64_t row_cols(DType t, int64_t units) {  // 32-value types get an odd block count
  return dtype_block_elems(t) == 32 ? 32 * (8 * units + 3) : 256 * units;
}

TEST(GgmlDecode, SimdUnpackersEqualTheScalarOnes) {
  std::mt19937 rng(1);
  for (DType t : kTypes) {
    const ggml::UnpackFn simd = ggml::best_unpacker(t), scalar = ggml::ggml_type_kernels(t)->unpack;
    if (simd == scalar) continue;
    const int64_t be = dtype_block_elems(t);
    std::vector<uint8_t> blocks(size_t(8 * 256 / be * dtype_block_bytes(t)));
    for (int rep = 0; rep < 20; ++rep) {
      random_ggml_blocks(t, 8 * 256 / be, rng, blocks.data());
      for (int n32 : be == 32 ? std::vector<int>{1, 3, 8} : std::vector<int>{8}) {
        ggml::Unpacked a, b;
        std::memset(&a, 0xAB, sizeof a);
        std::memset(&b, 0xAB, sizeof b);
        scalar(blocks.data(), n32, &a);
        simd(blocks.data(), n32, &b);
        ASSERT_EQ(std::memcmp(a.u, b.u, size_t(32 * n32)), 0) << dtype_name(t) << " n32 " << n32;
        ASSERT_EQ(std::memcmp(a.s, b.s, sizeof(float) * size_t(2 * n32)), 0) << dtype_name(t);
        ASSERT_EQ(std::memcmp(a.m, b.m, sizeof(float) * size_t(2 * n32)), 0) << dtype_name(t);
      }
    }
  }
}

TEST(GgmlDecode, FastDequantisationEqualsTheScalarOne) {
  std::mt19937 rng(2);
  for (DType t : kTypes) {
    const int64_t cols = row_cols(t, 3);
    const auto tw = make_weight(t, 2, cols, rng);
    std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
    for (int64_t r = 0; r < 2; ++r) {
      ggml::dequant_ggml_row(t, tw.view.row_ptr(r), 0, cols, a.data());
      ggml::dequant_ggml_row_fast(t, tw.view.row_ptr(r), 0, cols, b.data());
      ASSERT_EQ(a, b) << dtype_name(t);
      const int64_t be = dtype_block_elems(t);  // a chunk starting one block in
      ggml::dequant_ggml_row_fast(t, tw.view.row_ptr(r), be, cols - be, b.data());
      ASSERT_TRUE(std::equal(a.begin() + be, a.end(), b.begin())) << dtype_name(t);
    }
  }
}

namespace {
void expect_kernel_equals_reference(GgmlDot4 kernel, bool (*takes)(DType)) {
  std::mt19937 rng(3);
  for (DType t : kTypes)
    for (int64_t units : {1, 2, 5}) {
      if (!takes(t)) continue;
      const int64_t cols = row_cols(t, units);
      const auto tw = make_weight(t, 4, cols, rng);
      ActQ8 acts[4];
      const ActQ8* xs[4];
      for (int k = 0; k < 4; ++k) {
        const std::vector<float> xf = random_values(cols, uint32_t(10 * units + k), 2.0f);
        quantize_act_q8(xf.data(), cols, acts[k]);
        xs[k] = &acts[k];
      }
      const uint8_t* rows[4];
      tile_rows(tw.view, 0, rows);
      // sum |w| |x| per (row, token): the f32 sums of the kernel may differ from the double
      // reference by a few ulp of that, never of the (possibly cancelled) result
      double mag[4][4] = {};
      std::vector<float> wrow(static_cast<size_t>(cols));
      for (int r = 0; r < 4; ++r) {
        ref::dequant_row(tw.view, r, 0, cols, wrow.data());
        for (int k = 0; k < 4; ++k)
          for (int64_t c = 0; c < cols; ++c)
            mag[r][k] += std::fabs(double(wrow[size_t(c)]) * acts[k].d[size_t(c / 32)] *
                                   acts[k].q[size_t(c)]);
      }
      for (int nt = 1; nt <= 4; ++nt) {
        float want[16], got[16];
        ggml_dot4_ref(t, rows, xs, nt, cols, want);
        kernel(t, rows, xs, nt, cols, got);
        for (int i = 0; i < 4 * nt; ++i)
          EXPECT_NEAR(got[i], want[i], 1e-6 * mag[i % 4][i / 4] + 1e-7)
              << dtype_name(t) << " cols " << cols << " tokens " << nt << " out " << i;
      }
    }
}
bool every_type(DType) {
  return true;
}
}  // namespace

TEST(GgmlDecode, VnniKernelEqualsTheReference) {
  const GgmlDot4 kernel = ggml_dot4_vnni_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  expect_kernel_equals_reference(kernel, every_type);
}

TEST(GgmlDecode, Avx2KernelEqualsTheReference) {
  const GgmlDot4 kernel = ggml_dot4_avx2_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX2";
  EXPECT_TRUE(ggml_dot4_avx2_takes(DType::q4_k) && ggml_dot4_avx2_takes(DType::q6_k));
  expect_kernel_equals_reference(kernel, ggml_dot4_avx2_takes);
}

// y_fast - y_exact is bounded by the activation rounding: per block of 32, d_x / 2 times the
// dequantised weights' L1 norm over the block (plus f32 summation noise).
TEST(GgmlDecode, MatmulStaysWithinTheRoundingBound) {
  std::mt19937 rng(4);
  for (DType t : kTypes)
    // 9: 4-token groups where there is no bf16 GEMM (AVX2); 40: there, int8 panels
    for (int64_t T : {1, 3, 9, 40}) {
      const int64_t rows = 37, cols = row_cols(t, 2);
      const auto tw = make_weight(t, rows, cols, rng);
      const std::vector<float> x = random_values(T * cols, 8, 2.0f);
      std::vector<float> exact(size_t(T * rows)), fast(size_t(T * rows));
      matmul(MatmulParams{x.data(), cols, exact.data(), rows, T, tw.view});
      {
        const ScopedServingKernels on(true);
        matmul(MatmulParams{x.data(), cols, fast.data(), rows, T, tw.view});
      }
      if (!ggml_kernel_takes(t)) {
        EXPECT_EQ(fast, exact) << "without an integer kernel the exact path runs";
        continue;
      }
      const std::string path = serving_path_name(tw.view, T);
      const bool panels = path.rfind("int8-gemm[", 0) == 0;
      if (T > 4 && path.rfind("ggml-token-groups[", 0) != 0 && !panels) continue;
      EXPECT_EQ(path.rfind(T == 1   ? "ggml-decode["
                           : T <= 4 ? "ggml-few-tokens["
                           : panels ? "int8-gemm["
                                    : "ggml-token-groups[",
                           0),
                0u);
      // (a width that is not whole 256-value units stays on the 4-token kernel, and says so)
      EXPECT_EQ(panels, T >= 32 && int8_gemm_takes(tw.view)) << dtype_name(t) << " T " << T;
      std::vector<float> wrow(static_cast<size_t>(cols));
      int64_t changed = 0;
      for (int64_t tok = 0; tok < T; ++tok) {
        ActQ8 q;
        quantize_act_q8(x.data() + tok * cols, cols, q);
        for (int64_t r = 0; r < rows; ++r) {
          ref::dequant_row(tw.view, r, 0, cols, wrow.data());
          double bound = 0, mag = 0;
          for (int64_t c = 0; c < cols; ++c) {
            bound += 0.5 * double(q.d[size_t(c / 32)]) * std::fabs(wrow[size_t(c)]);
            mag += std::fabs(double(wrow[size_t(c)]) * x[size_t(tok * cols + c)]);
          }
          const float e = exact[size_t(tok * rows + r)], f = fast[size_t(tok * rows + r)];
          EXPECT_LE(std::fabs(f - e), bound * 1.001 + 1e-6 * mag)
              << dtype_name(t) << " T " << T << " row " << r;
          changed += f != e;
        }
      }
      EXPECT_GT(changed, 0) << dtype_name(t) << ": the integer path must actually have run";
    }
}

// Prefill shapes go through the bf16 GEMM (or AMX), which dequantises with the same unpackers:
// within bf16 rounding of the exact path.
TEST(GgmlDecode, PrefillPathDequantisesTheSameWeights) {
  std::mt19937 rng(5);
  for (DType t : {DType::q4_k, DType::q6_k, DType::iq2_xxs, DType::q5_0}) {
    const int64_t rows = 9, cols = row_cols(t, 2), T = 13;
    const auto tw = make_weight(t, rows, cols, rng);
    const std::vector<float> x = random_values(T * cols, 9, 1.0f);
    std::vector<float> exact(size_t(T * rows)), fast(size_t(T * rows));
    matmul(MatmulParams{x.data(), cols, exact.data(), rows, T, tw.view});
    {
      const ScopedServingKernels on(true);
      matmul(MatmulParams{x.data(), cols, fast.data(), rows, T, tw.view});
    }
    std::vector<float> wrow(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequant_row(tw.view, r, 0, cols, wrow.data());
      for (int64_t tok = 0; tok < T; ++tok) {
        double mag = 0;
        for (int64_t c = 0; c < cols; ++c)
          mag += std::fabs(double(wrow[size_t(c)]) * x[size_t(tok * cols + c)]);
        // two bf16 roundings (2^-8 each) of every product's factors
        EXPECT_NEAR(fast[size_t(tok * rows + r)], exact[size_t(tok * rows + r)], 2.0 * mag / 256)
            << dtype_name(t);
      }
    }
  }
}

}  // namespace
