// The k-quant encoders `tern convert` writes with (ggml/quantize_k.h): decoded by the reference
// unpackers (tested against gguf-py), their error on Gaussian rows is within the quantisation
// step's bound and below a plain per-32 absmax quantiser of similar size; edge blocks (all
// zero, constant, all positive, one outlier) come back within half a step; the codes are
// deterministic.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/ggml/unpack.h"
#include "kernels/quantize.h"

using namespace tern;
using namespace tern::kernels;

namespace {

double rel_rms_error(DType t, const std::vector<float>& x) {
  const int64_t n = int64_t(x.size());
  std::vector<uint8_t> q(size_t(dtype_bytes_for(t, n)));
  quantize_row(t, x.data(), n, q.data());
  std::vector<float> y(x.size());
  if (dtype_is_ggml_block(t) && t != DType::q8_0 && t != DType::q4_0)
    ggml::dequant_ggml_row(t, q.data(), 0, n, y.data());
  else
    for (int64_t b = 0; b < n / 32; ++b) {  // q8_0 / q4_0 via the same decoder
      ggml::Unpacked p;
      ggml::ggml_type_kernels(t)->unpack(q.data() + b * dtype_block_bytes(t), 1, &p);
      ggml::expand_unpacked(p, ggml::ggml_type_kernels(t)->offset, 1, y.data() + 32 * b);
    }
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) e += (y[i] - x[i]) * (y[i] - x[i]), s += x[i] * x[i];
  return std::sqrt(e / s);
}

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

TEST(KQuantEncoders, GaussianRowsComeBackWithinTheStepBound) {
  const std::vector<float> x = gaussian(256 * 64, 1);
  const double q4k = rel_rms_error(DType::q4_k, x), q5k = rel_rms_error(DType::q5_k, x),
               q6k = rel_rms_error(DType::q6_k, x), q4_0 = rel_rms_error(DType::q4_0, x),
               q8_0 = rel_rms_error(DType::q8_0, x);
  std::printf("relative rms error: q4_k %.4f q5_k %.4f q6_k %.4f (q4_0 %.4f, q8_0 %.4f)\n", q4k,
              q5k, q6k, q4_0, q8_0);
  // A uniform step over a 32-value Gaussian block's ~4.5 sigma range gives rms = step / sqrt(12):
  // 4 bits ~0.08, 5 bits ~0.04, 6 bits (16 values, ~3.5 sigma, signed) ~0.016 of sigma.
  EXPECT_LT(q4k, 0.085);
  EXPECT_LT(q5k, 0.042);
  EXPECT_LT(q6k, 0.020);
  EXPECT_LT(q4k, q4_0);  // same 4 bits, plus a min and finer scales
  EXPECT_LT(q6k, 4 * q8_0);
  EXPECT_GT(q6k, q8_0);  // sanity: 6 bits are not better than 8
}

TEST(KQuantEncoders, EdgeBlocks) {
  for (DType t : {DType::q4_k, DType::q5_k, DType::q6_k}) {
    SCOPED_TRACE(dtype_name(t));
    std::vector<float> x(256 * 5, 0.0f);
    for (int i = 256; i < 512; ++i) x[size_t(i)] = 0.5f;                    // constant
    for (int i = 512; i < 768; ++i) x[size_t(i)] = 1.0f + 0.01f * (i % 7);  // all positive
    std::vector<float> g = gaussian(512, 2);
    for (int i = 0; i < 512; ++i) x[size_t(768 + i)] = g[size_t(i)];
    x[800] = 3.0f;  // one outlier
    std::vector<uint8_t> q(size_t(dtype_bytes_for(t, int64_t(x.size()))));
    quantize_row(t, x.data(), int64_t(x.size()), q.data());
    std::vector<float> y(x.size());
    ggml::dequant_ggml_row(t, q.data(), 0, int64_t(x.size()), y.data());
    for (int i = 0; i < 256; ++i) EXPECT_EQ(y[size_t(i)], 0.0f);
    // Q4_K / Q5_K offsets can only be subtracted (mins are unsigned), so positive blocks span
    // [0, max]: half a step of max / 15, / 31, or (Q6_K, signed) / 32.
    const double half_step = 1.06 / (t == DType::q4_k ? 15 : t == DType::q5_k ? 31 : 32) / 2;
    for (int i = 256; i < 768; ++i) EXPECT_NEAR(y[size_t(i)], x[size_t(i)], 1.05 * half_step);
    EXPECT_NEAR(y[800], 3.0f, 0.05f);
    std::vector<uint8_t> again(q.size());
    quantize_row(t, x.data(), int64_t(x.size()), again.data());
    EXPECT_EQ(q, again);
  }
}

}  // namespace
