// Integer decode kernels (int8 activations on Q8_0 / Q4_0 weights): the activation quantiser
// against its definition, the VNNI kernel against the scalar reference at awkward block counts,
// and a decode matmul against the exact f32 path within the analytic bound of int8 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/int8_decode.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "kernels/ref/ref_ops.h"
#include "test_weight.h"

using namespace tern;
using namespace tern::kernels;
using tern::kernels::testing::random_values;
using tern::kernels::testing::random_weights;

TEST(Int8Decode, ActivationQuantiserFollowsItsDefinition) {
  std::vector<float> x = random_values(96, 1);
  for (int j = 32; j < 64; ++j) x[size_t(j)] = 0;  // an all-zero block: scale 0, codes 0
  ActQ8 q;
  quantize_act_q8(x.data(), 96, q);
  for (int b = 0; b < 3; ++b) {
    float amax = 0;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[size_t(b * 32 + j)]));
    EXPECT_FLOAT_EQ(q.d[size_t(b)], amax / 127.0f);
    for (int j = 0; j < 32; ++j) {
      const float back = float(q.q[size_t(b * 32 + j)]) * q.d[size_t(b)];
      EXPECT_LE(std::fabs(back - x[size_t(b * 32 + j)]), q.d[size_t(b)] * 0.5f + 1e-7f);
      sum += q.q[size_t(b * 32 + j)];
    }
    EXPECT_EQ(q.sum[size_t(b)], sum);
  }
}

// The AVX-512 quantiser must give the scalar definition's bits in every field: all-zero blocks,
// exact rounding ties (x * (1 / d) = k + 0.5), a NaN-free mix of magnitudes, and lengths with
// and without whole groups of 4 blocks and of 128 values.
TEST(Int8Decode, SimdActivationQuantiserEqualsTheScalarOne) {
  for (int64_t n : {32, 96, 128, 160, 1536, 1568}) {
    std::vector<float> x = random_values(n, uint32_t(n), 4.0f);
    for (int j = 0; j < 32 && n >= 64; ++j) x[size_t(32 + j)] = 0;
    if (n >= 32) {
      x[0] = 127.0f;  // d = 1: the next values are exact ties
      for (int j = 1; j < 32; ++j) x[size_t(j)] = float(j % 7) - 3.5f;
    }
    ActQ8 fast, slow;
    quantize_act_q8(x.data(), n, fast);
    quantize_act_q8_scalar(x.data(), n, slow);
    EXPECT_EQ(fast.q, slow.q) << n;
    EXPECT_EQ(fast.d, slow.d) << n;
    EXPECT_EQ(fast.sum, slow.sum) << n;
    EXPECT_EQ(fast.sum16, slow.sum16) << n;
    EXPECT_EQ(fast.init8, slow.init8) << n;
    EXPECT_EQ(fast.init4, slow.init4) << n;
    EXPECT_EQ(fast.q4x, slow.q4x) << n;
    EXPECT_EQ(fast.qeo, slow.qeo) << n;
    EXPECT_EQ(fast.panel8, slow.panel8) << n;
    EXPECT_EQ(fast.panel128, slow.panel128) << n;
  }
}

TEST(Int8Decode, EverySimdKernelEqualsTheReference) {
  std::vector<std::pair<const char*, Int8Dot4>> kernels;
  if (Int8Dot4 k = int8_dot4_vnni_if_supported()) kernels.push_back({"avx512-vnni", k});
  if (Int8Dot4 k = int8_dot4_vnni_plain_if_supported()) kernels.push_back({"avx512-vnni-plain", k});
  if (Int8Dot4 k = int8_dot4_avxvnni_if_supported()) kernels.push_back({"avx-vnni", k});
  if (Int8Dot4 k = int8_dot4_avx2_if_supported()) kernels.push_back({"avx2", k});
  if (kernels.empty()) GTEST_SKIP() << "this CPU has no SIMD integer kernel";
  for (auto [name, kernel] : kernels)
    for (DType t : {DType::q8_0, DType::q4_0}) {
      for (int64_t blocks : {1, 3, 4, 5, 7, 8, 64, 67}) {
        const int64_t cols = blocks * 32;
        const std::vector<uint8_t> w = random_weights(t, 4, cols, uint32_t(blocks));
        ActQ8 x;
        const std::vector<float> xf = random_values(cols, 99, 3.0f);
        quantize_act_q8(xf.data(), cols, x);
        const int64_t rb = dtype_bytes_for(t, cols);
        const uint8_t* rows[4] = {w.data(), w.data() + rb, w.data() + 2 * rb, w.data() + 3 * rb};
        float want[4], got[4];
        int8_dot4_ref(t, rows, x, blocks, want);
        kernel(t, rows, x, blocks, got);
        // Same integer block sums; only the float accumulation order differs.
        for (int r = 0; r < 4; ++r)
          EXPECT_NEAR(got[r], want[r], 1e-5f * (1.0f + std::fabs(want[r])))
              << name << " " << dtype_name(t) << " blocks " << blocks << " row " << r;
      }
    }
}

// y_int8 - y_exact is bounded by the activation rounding: per block, d_x/2 times the weight
// block's L1 norm (exact in the reference's integer sums, plus f32 accumulation).
TEST(Int8Decode, DecodeMatmulStaysWithinTheRoundingBound) {
  for (DType t : {DType::q8_0, DType::q4_0}) {
    const int64_t rows = 37, cols = 320;  // a short last tile of 1 row
    const std::vector<uint8_t> w = random_weights(t, rows, cols, 5);
    const WeightView v{t, rows, cols, w.data()};
    const std::vector<float> x = random_values(cols, 8, 2.0f);
    std::vector<float> exact(static_cast<size_t>(rows)), fast(static_cast<size_t>(rows));
    matmul(MatmulParams{x.data(), cols, exact.data(), rows, 1, v});
    {
      const ScopedServingKernels on(true);
      matmul(MatmulParams{x.data(), cols, fast.data(), rows, 1, v});
    }
    if (!int8_dot4_kernel()) {
      EXPECT_EQ(fast, exact) << "without an integer kernel the exact path runs";
      continue;
    }
    ActQ8 q;
    quantize_act_q8(x.data(), cols, q);
    std::vector<float> wrow(static_cast<size_t>(cols));
    int64_t changed = 0;
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequant_row(v, r, 0, cols, wrow.data());
      double bound = 0;
      for (int64_t c = 0; c < cols; ++c)
        bound += 0.5 * double(q.d[size_t(c / 32)]) * std::fabs(wrow[size_t(c)]);
      EXPECT_LE(std::fabs(fast[size_t(r)] - exact[size_t(r)]), bound * 1.001 + 1e-5)
          << dtype_name(t) << " row " << r;
      changed += fast[size_t(r)] != exact[size_t(r)];
    }
    EXPECT_GT(changed, 0) << "the integer path must actually have run";
  }
}

TEST(Int8Decode, MultiTokenKernelEqualsTheReferencePerToken) {
  const Int8Dot4xN many = int8_dot4xn_kernel();
  if (!many) GTEST_SKIP() << "no multi-token integer kernel on this CPU / ISA";
  for (DType t : {DType::q8_0, DType::q4_0}) {
    for (int64_t blocks : {1, 3, 4, 5, 8, 67}) {
      const int64_t cols = blocks * 32, rb = dtype_bytes_for(t, cols);
      const std::vector<uint8_t> w = random_weights(t, 4, cols, uint32_t(blocks + 7));
      const uint8_t* rows[4] = {w.data(), w.data() + rb, w.data() + 2 * rb, w.data() + 3 * rb};
      ActQ8 x[4];
      const ActQ8* xs[4];
      for (int i = 0; i < 4; ++i) {
        const std::vector<float> xf = random_values(cols, uint32_t(40 + i), 3.0f);
        quantize_act_q8(xf.data(), cols, x[i]);
        xs[i] = &x[i];
      }
      for (int nt = 1; nt <= 4; ++nt) {
        float got[16];
        if (!many(t, rows, xs, nt, blocks, got)) continue;  // no multi-token form for t
        for (int i = 0; i < nt; ++i) {
          float want[4];
          int8_dot4_ref(t, rows, x[i], blocks, want);
          for (int r = 0; r < 4; ++r)
            EXPECT_NEAR(got[4 * i + r], want[r], 1e-5f * (1.0f + std::fabs(want[r])))
                << dtype_name(t) << " blocks " << blocks << " tokens " << nt << " token " << i;
        }
      }
    }
  }
}

// A token's outputs do not depend on which tokens share its matmul: 2 to 4 tokens (an expert's
// share of a batch) give each row exactly what it gets decoded alone.
TEST(Int8Decode, FewTokensEqualEachTokenDecodedAlone) {
  for (DType t : {DType::q8_0, DType::q4_0}) {
    const int64_t rows = 37, cols = 320, ldx = cols + 5;
    const std::vector<uint8_t> w = random_weights(t, rows, cols, 9);
    const WeightView v{t, rows, cols, w.data()};
    for (int64_t T : {2, 3, 4}) {
      const std::vector<float> x = random_values(T * ldx, uint32_t(T), 2.0f);
      std::vector<float> together(size_t(T * rows)), alone(static_cast<size_t>(rows));
      const ScopedServingKernels on(true);
      matmul(MatmulParams{x.data(), ldx, together.data(), rows, T, v});
      for (int64_t i = 0; i < T; ++i) {
        matmul(MatmulParams{x.data() + i * ldx, ldx, alone.data(), rows, 1, v});
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(together[size_t(i * rows + r)], alone[size_t(r)])
              << dtype_name(t) << " T " << T << " token " << i << " row " << r;
      }
    }
  }
}
