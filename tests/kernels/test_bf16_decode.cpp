// bf16 decode (bf16 activations on bf16 / FP8 weights): every FP8 code widened exactly, the
// AVX-512 BF16 kernel against the scalar reference at awkward sizes and block widths, NaN
// weights, and a decode matmul against the exact path within the bf16 rounding bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/bf16_decode.h"
#include "kernels/matmul.h"
#include "kernels/ref/ref_ops.h"
#include "kernels/serving_paths.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::make_weight;
using tern::kernels::testing::random_values;

namespace {

// sum |w x| * scale over a row, in double: the size the rounding error is relative to.
double magnitude(const Bf16Rows& w, int r, const ActBF16& xa) {
  const uint16_t* x = xa.v.data();
  double m = 0;
  for (int64_t c = 0; c < w.cols; ++c) {
    float wv;
    if (w.dtype == DType::f8_e4m3) {
      wv = fp8_e4m3_to_f32(w.rows[r][c]) * (w.scales[r] ? w.scales[r][c / w.block_cols] : 1.0f);
    } else {
      uint16_t h;
      std::memcpy(&h, w.rows[r] + 2 * c, 2);
      wv = bf16_to_f32(h);
    }
    m += std::fabs(double(wv) * bf16_to_f32(x[c]));
  }
  return m;
}

}  // namespace

TEST(Bf16Decode, ActivationsRoundToNearestEven) {
  const std::vector<float> x = {1.0f, 1.00390625f, 1.01171875f, -3.3f, 0.0f, 1e-30f, 65504.0f};
  ActBF16 a;
  round_act_bf16(x.data(), int64_t(x.size()), a);
  ASSERT_EQ(a.v.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(a.v[i], f32_to_bf16(x[i])) << i;
  EXPECT_EQ(bf16_to_f32(a.v[1]), 1.0f) << "a tie rounds to the even neighbour";
  EXPECT_EQ(bf16_to_f32(a.v[2]), 1.015625f) << "a tie rounds to the even neighbour";
}

// Each of the 254 finite e4m3 codes, read through a one-hot activation, comes out as exactly its
// value times the block scale: the in-register widening to bf16 loses nothing (with 128-column
// blocks the VBMI form runs where the CPU has VBMI; 32-column blocks take the other form).
TEST(Bf16Decode, EveryFp8CodeWidensExactly) {
  const Bf16Dot4 kernel = bf16_dot4_avx512bf16_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  constexpr int64_t kCols = 256;
  std::vector<uint8_t> w(4 * kCols);
  for (int r = 0; r < 4; ++r)
    for (int64_t c = 0; c < kCols; ++c) {
      int code = int((c + 64 * r) % 256);
      if ((code & 0x7F) == 0x7F) code = 0x10;
      w[size_t(r * kCols + c)] = uint8_t(code);
    }
  for (int64_t block_cols : {128, 32}) {
    std::vector<float> scales(4 * 8);
    for (size_t i = 0; i < scales.size(); ++i) scales[i] = std::ldexp(1.0f, int(i % 7) - 3);
    Bf16Rows rows;
    rows.dtype = DType::f8_e4m3;
    rows.cols = kCols;
    rows.block_cols = block_cols;
    for (int r = 0; r < 4; ++r)
      rows.rows[r] = w.data() + r * kCols, rows.scales[r] = &scales[r * 8];
    std::vector<float> onehot(kCols);
    ActBF16 x;
    for (int64_t c = 0; c < kCols; ++c) {
      onehot.assign(kCols, 0.0f);
      onehot[size_t(c)] = 1.0f;
      round_act_bf16(onehot.data(), kCols, x);
      float got[4];
      kernel(rows, x, got);
      for (int r = 0; r < 4; ++r) {
        const float want =
            fp8_e4m3_to_f32(w[size_t(r * kCols + c)]) * rows.scales[r][c / block_cols];
        ASSERT_EQ(got[r], want) << "code " << int(w[size_t(r * kCols + c)]) << " row " << r
                                << " block " << block_cols;
      }
    }
  }
}

// The permuted activation order is a permutation of each 64-value group (tail in order).
TEST(Bf16Decode, PermutedActivationsHoldTheSameValues) {
  const std::vector<float> xf = random_values(160, 2);
  ActBF16 x;
  round_act_bf16(xf.data(), 160, x);
  EXPECT_EQ(x.v64[0], x.v[0]);
  EXPECT_EQ(x.v64[8], x.v[16]);
  EXPECT_EQ(x.v64[32], x.v[8]);
  EXPECT_EQ(x.v64[63], x.v[63]);
  EXPECT_EQ(x.v64[64 + 33], x.v[64 + 9]);
  for (int64_t i = 128; i < 160; ++i) EXPECT_EQ(x.v64[size_t(i)], x.v[size_t(i)]);
}

TEST(Bf16Decode, SimdKernelEqualsTheReference) {
  const Bf16Dot4 kernel = bf16_dot4_avx512bf16_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  std::mt19937 rng(3);
  for (DType t : {DType::bf16, DType::f8_e4m3})
    for (int64_t block_cols : {32, 64, 128})
      for (int64_t cols : {32, 64, 96, 160, 192, 416, 448, 4096, 4128}) {
        if (t == DType::bf16 && block_cols != 128) continue;
        const auto tw = make_weight(t, 6, cols, rng, 128, block_cols);
        const std::vector<float> xf = random_values(cols, uint32_t(cols), 2.0f);
        ActBF16 x;
        round_act_bf16(xf.data(), cols, x);
        for (int64_t r0 : {0, 4}) {  // rows 4, 5 make a short tile (row 5 repeated)
          const Bf16Rows rows = bf16_rows(tw.view, r0);
          float want[4], got[4];
          bf16_dot4_ref(rows, x, want);
          kernel(rows, x, got);
          for (int r = 0; r < 4; ++r)  // same products, summed in another order
            EXPECT_NEAR(got[r], want[r], 1e-6 * magnitude(rows, r, x) + 1e-30)
                << dtype_name(t) << " cols " << cols << " block " << block_cols << " row "
                << r0 + r;
        }
      }
}

TEST(Bf16Decode, NanWeightMakesItsRowNan) {
  const Bf16Dot4 kernel = bf16_dot4_avx512bf16_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  std::mt19937 rng(4);
  auto tw = make_weight(DType::f8_e4m3, 4, 256, rng);
  tw.bytes[size_t(2 * 256 + 200)] = 0xFF;  // row 2, second block
  const std::vector<float> xf = random_values(256, 5);
  ActBF16 x;
  round_act_bf16(xf.data(), 256, x);
  float want[4], got[4];
  bf16_dot4_ref(bf16_rows(tw.view, 0), x, want);
  kernel(bf16_rows(tw.view, 0), x, got);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(std::isnan(want[r]), r == 2);
    EXPECT_EQ(std::isnan(got[r]), r == 2);
  }
}

// y_fast - y_exact: x rounded to bf16 moves each product by at most 2^-9 |w x|.
TEST(Bf16Decode, DecodeMatmulStaysWithinTheRoundingBound) {
  std::mt19937 rng(6);
  for (DType t : {DType::bf16, DType::f8_e4m3}) {
    const int64_t rows = 37, cols = 384;  // a short last tile of 1 row
    const auto tw = make_weight(t, rows, cols, rng);
    const std::vector<float> x = random_values(cols, 8, 2.0f);
    std::vector<float> exact(static_cast<size_t>(rows)), fast(static_cast<size_t>(rows));
    matmul(MatmulParams{x.data(), cols, exact.data(), rows, 1, tw.view});
    {
      const ScopedServingKernels on(true);
      matmul(MatmulParams{x.data(), cols, fast.data(), rows, 1, tw.view});
    }
    if (!bf16_dot4_kernel()) {
      EXPECT_EQ(fast, exact) << "without a bf16 kernel the exact path runs";
      continue;
    }
    std::vector<float> wrow(static_cast<size_t>(cols));
    int64_t changed = 0;
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequant_row(tw.view, r, 0, cols, wrow.data());
      double bound = 0;
      for (int64_t c = 0; c < cols; ++c) bound += std::ldexp(std::fabs(wrow[c] * x[c]), -9);
      EXPECT_LE(std::fabs(fast[size_t(r)] - exact[size_t(r)]), bound * 1.01 + 1e-5)
          << dtype_name(t) << " row " << r;
      changed += fast[size_t(r)] != exact[size_t(r)];
    }
    EXPECT_GT(changed, 0) << "the bf16 path must actually have run";
  }
}

TEST(Bf16Gemm, MicroKernelEqualsTheReference) {
  const Bf16Dot4x4 kernel = bf16_dot4x4_avx512bf16_if_supported();
  if (!kernel) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  for (int64_t n : {32, 96, 2048}) {
    std::vector<std::vector<uint16_t>> w(4), x(4);
    const uint16_t *wp[4], *xp[4];
    for (int i = 0; i < 4; ++i) {
      ActBF16 a, b;
      const auto wf = random_values(n, uint32_t(10 + i)), xf = random_values(n, uint32_t(20 + i));
      round_act_bf16(wf.data(), n, a);
      round_act_bf16(xf.data(), n, b);
      w[size_t(i)] = a.v, x[size_t(i)] = b.v;
      wp[i] = w[size_t(i)].data(), xp[i] = x[size_t(i)].data();
    }
    for (int nt = 1; nt <= 4; ++nt) {
      float want[16], got[16];
      bf16_dot4x4_ref(wp, xp, nt, n, want);
      kernel(wp, xp, nt, n, got);
      for (int i = 0; i < 4 * nt; ++i)
        EXPECT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << n << " " << nt;
    }
  }
}

// y_fast - y_exact: x and the dequantised W each rounded to bf16 move each product by at most
// about 2^-8 |w x|; columns not a multiple of 32 (zero padding) and of the 2048-column chunk.
TEST(Bf16Gemm, MatmulStaysWithinTheRoundingBound) {
  if (!bf16_dot4_kernel()) GTEST_SKIP() << "no bf16 GEMM on this CPU / ISA";
  std::mt19937 rng(7);
  ThreadPool pool(2);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::f8_e4m3, DType::i8, DType::i4})
    for (int64_t cols : {100, 2048 + 96})
      for (int64_t T : {2, 5, 17}) {
        const int64_t rows = 37, ldx = cols + 3;
        const auto tw = make_weight(t, rows, cols, rng);
        const std::vector<float> x = random_values(T * ldx, uint32_t(T + cols), 2.0f);
        std::vector<float> exact(size_t(T * rows)), fast(size_t(T * rows), -1.0f);
        matmul(MatmulParams{x.data(), ldx, exact.data(), rows, T, tw.view}, &pool);
        ASSERT_TRUE(bf16_gemm(x.data(), ldx, T, tw.view, fast.data(), rows, pool));
        std::vector<float> wrow(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          ref::dequant_row(tw.view, r, 0, cols, wrow.data());
          for (int64_t i = 0; i < T; ++i) {
            double bound = 0;
            for (int64_t c = 0; c < cols; ++c)
              bound += std::ldexp(std::fabs(wrow[size_t(c)] * x[size_t(i * ldx + c)]), -8);
            const size_t k = size_t(i * rows + r);
            ASSERT_LE(std::fabs(fast[k] - exact[k]), bound * 1.01 + 1e-5)
                << dtype_name(t) << " cols " << cols << " T " << T << " row " << r;
          }
        }
      }
}

// 2 to 4 tokens share each widened weight; every token gets exactly what it gets alone.
TEST(Bf16Decode, FewTokensEqualEachTokenDecodedAlone) {
  if (!bf16_dot4_kernel()) GTEST_SKIP() << "no bf16 kernel on this CPU / ISA";
  std::mt19937 rng(8);
  for (DType t : {DType::bf16, DType::f8_e4m3})
    for (int64_t block : {128, 32}) {  // fp8 128-column blocks take the VBMI form, 32 the other
      if (t == DType::bf16 && block != 128) continue;
      const int64_t rows = 37, cols = 384, ldx = cols + 5;
      const auto tw = make_weight(t, rows, cols, rng, 128, block);
      for (int64_t T : {2, 3, 4}) {
        const std::vector<float> x = random_values(T * ldx, uint32_t(T), 2.0f);
        std::vector<float> together(size_t(T * rows)), alone(static_cast<size_t>(rows));
        const ScopedServingKernels on(true);
        matmul(MatmulParams{x.data(), ldx, together.data(), rows, T, tw.view});
        for (int64_t i = 0; i < T; ++i) {
          matmul(MatmulParams{x.data() + i * ldx, ldx, alone.data(), rows, 1, tw.view});
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_EQ(together[size_t(i * rows + r)], alone[size_t(r)])
                << dtype_name(t) << " block " << block << " T " << T << " token " << i;
        }
      }
    }
}

// The registry picks one path per (weight format, token count) as documented in
// serving_paths.h, and each path it lists is one this CPU runs.
TEST(ServingPaths, RegistryPicksThePathForEachShape) {
  WeightView w;
  w.rows = w.cols = 4096;
  w.dtype = DType::q4_0;
  EXPECT_EQ(serving_path_name(w, 1).rfind("int8-decode[", 0), 0u) << serving_path_name(w, 1);
  EXPECT_EQ(serving_path_name(w, 3).rfind("int8-few-tokens[", 0), 0u);
  const std::string q4_prefill = serving_path_name(w, 512);
  EXPECT_TRUE(q4_prefill.rfind("amx-bf16[", 0) == 0 || q4_prefill.rfind("int8-gemm[", 0) == 0)
      << q4_prefill;
  w.dtype = DType::f8_e4m3;
  EXPECT_EQ(serving_path_name(w, 1).rfind(bf16_dot4_kernel() ? "bf16-decode[" : "exact-f32[", 0),
            0u)
      << serving_path_name(w, 1);
  if (bf16_dot4_kernel()) {
    EXPECT_EQ(serving_path_name(w, 4).rfind("bf16-few-tokens[", 0), 0u) << serving_path_name(w, 4);
    EXPECT_EQ(serving_path_name(w, 5).rfind("bf16-gemm[", 0), 0u) << serving_path_name(w, 5);
  }
  w.dtype = DType::f32;
  EXPECT_EQ(serving_path_name(w, 1).rfind("exact-f32[", 0), 0u);
  w.dtype = DType::q8_0;
  w.cols = 4100;  // not whole blocks: no integer path takes it
  EXPECT_EQ(serving_path_name(w, 1).rfind("exact-f32[", 0), 0u) << serving_path_name(w, 1);
  for (const MatmulPath& p : serving_paths()) {
    EXPECT_NE(p.variant, nullptr) << p.name;
    EXPECT_LE(p.min_tokens, p.max_tokens) << p.name;
    EXPECT_FALSE(p.weights.empty()) << p.name;
  }
  const std::string d = describe_serving_paths({DType::q4_0, DType::bf16});
  EXPECT_NE(d.find("q4_0: decode int8-decode["), std::string::npos) << d;
}
