// The GGUF block decoders against gguf-py: tests/golden/ggml_quants holds random blocks of every
// quantisation tern computes with (blocks.gguf, one 2-row tensor per type) and the values
// gguf-py dequantises them to (<type>.npy); tests/reference/make_ggml_quant_fixtures.py wrote
// both. Decoding through the GGUF loader and the exact path's row dequantisation must give
// those values (tolerance: one f32 rounding of the largest term, 2^-23 relative).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "formats/npy.h"
#include "kernels/ggml/iq_grids.h"
#include "kernels/ggml/unpack.h"
#include "kernels/ref/ref_ops.h"

using namespace tern;
using namespace tern::kernels;

namespace {

const std::string kDir = std::string(TERN_TEST_DATA) + "/golden/ggml_quants";

const char* const kTypes[] = {"q8_0",    "q4_0",   "q4_1",  "q5_0",  "q5_1",   "iq4_nl",  "q2_k",
                              "q3_k",    "q4_k",   "q5_k",  "q6_k",  "iq4_xs", "iq3_xxs", "iq3_s",
                              "iq2_xxs", "iq2_xs", "iq2_s", "iq1_s", "iq1_m"};

class GgmlQuants : public ::testing::TestWithParam<const char*> {};

TEST_P(GgmlQuants, DecodeAsGgufPyDoes) {
  const std::string name = GetParam();
  const formats::GgufFile f = formats::GgufFile::open(kDir + "/blocks.gguf");
  const Tensor t = f.tensor(name);
  DType want;
  ASSERT_TRUE(dtype_from_name(name, &want));
  ASSERT_EQ(t.dtype(), want);
  ASSERT_TRUE(dtype_is_ggml_block(t.dtype()));
  const Tensor expect = formats::read_npy(kDir + "/" + name + ".npy");
  ASSERT_EQ(expect.shape(), t.shape());
  const int64_t rows = t.shape()[0], cols = t.shape()[1];
  const WeightView w{t.dtype(), rows, cols, t.data()};
  const float* e = expect.data_as<const float>();
  std::vector<float> got = std::vector<float>(size_t(cols));
  int64_t nonzero = 0;
  for (int64_t r = 0; r < rows; ++r) {
    ref::dequant_row(w, r, 0, cols, got.data());
    for (int64_t c = 0; c < cols; ++c) {
      const float x = e[r * cols + c];
      nonzero += x != 0;
      ASSERT_NEAR(got[size_t(c)], x, 1.2e-7 * std::fabs(x) + 1e-30)
          << name << " row " << r << " col " << c;
    }
    // An aligned sub-range decodes to the same values (the exact path's column chunks).
    const int64_t be = dtype_block_elems(t.dtype());
    ref::dequant_row(w, r, be, cols - 2 * be, got.data());
    for (int64_t c = be; c < cols - be; ++c)
      ASSERT_EQ(got[size_t(c - be)], e[r * cols + c]) << name << " sub-range col " << c;
  }
  EXPECT_GT(nonzero, rows * cols / 2) << "fixture too degenerate to test anything";
}

INSTANTIATE_TEST_SUITE_P(EveryType, GgmlQuants, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(info.param); });

TEST(GgmlQuants, EveryGgufTypeTernComputesWithHasAnUnpacker) {
  int n = 0;
  for (uint32_t id = 0; id < 64; ++id) {
    const auto dt = formats::ggml_type_to_dtype(id);
    if (!dt || !dtype_is_ggml_block(*dt)) continue;
    ++n;
    const auto* k = ggml::ggml_type_kernels(*dt);
    ASSERT_NE(k, nullptr) << formats::ggml_type_name(id);
    EXPECT_EQ(dtype_block_bytes(*dt), formats::ggml_type_info(id)->block_bytes);
    EXPECT_EQ(dtype_block_elems(*dt), formats::ggml_type_info(id)->block_elems);
  }
  EXPECT_EQ(n, 19);
}

TEST(GgmlQuants, SignTableKeepsAnEvenNumberOfNegatives) {
  for (uint32_t i = 0; i < 128; ++i) {
    const uint8_t s = ggml::iq_signs(i);
    EXPECT_EQ(s & 127, int(i));
    EXPECT_EQ(__builtin_popcount(s) % 2, 0);
  }
  EXPECT_EQ(ggml::iq_signs(1), 0x81);
  EXPECT_EQ(ggml::iq_signs(3), 0x03);
}

}  // namespace
