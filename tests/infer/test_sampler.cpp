// The whole Sampler: greedy equals argmax, seeded draws are reproducible and addressed by
// (seed, stream, index), probabilities() matches the full-sort reference, and 20,000 draws
// follow probabilities() (chi-square at alpha = 0.001) for several parameter combinations.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "infer/sampler.h"
#include "reference.h"

using namespace tern::infer;
using tern::Error;
using tern::ErrorKind;

namespace {

const std::vector<float> kLogits = {1.0f,  0.5f, 2.0f, -1.0f, 0.0f, 1.5f,
                                    -0.5f, 0.8f, 2.2f, -2.0f, 0.3f, 1.1f};

std::vector<float> random_row(size_t n, uint64_t seed, double scale) {
  std::vector<float> row(n);
  tern::rng::fill_normal(seed, tern::rng::stream_id("test/logits"), 0, row.data(), n, 0.0, scale);
  return row;
}

std::vector<int32_t> generate(const SamplingParams& p, uint64_t stream, int n,
                              const std::vector<float>& logits) {
  Sampler s(p, int32_t(logits.size()), stream);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(s.sample(logits));
    s.accept(out.back());
  }
  return out;
}

// Upper 0.001 quantiles of chi-square with df = 1..11 degrees of freedom.
constexpr double kChi2Critical[] = {10.83, 13.82, 16.27, 18.47, 20.52, 22.46,
                                    24.32, 26.12, 27.88, 29.59, 31.26};

}  // namespace

TEST(Sampler, TemperatureZeroIsArgmaxWhateverTheSeed) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_k = 3;  // cuts do not matter to greedy
  p.top_p = 0.1f;
  const std::vector<float> tie = {1.0f, 3.0f, 3.0f, 2.0f};
  for (uint64_t seed : {0u, 1u, 99u}) {
    p.seed = seed;
    EXPECT_EQ(generate(p, 0, 5, tie), (std::vector<int32_t>(5, 1)));
  }
  Sampler s(p, 4, 0);
  EXPECT_EQ(s.probabilities(tie), (std::vector<float>{0.0f, 1.0f, 0.0f, 0.0f}));
}

TEST(Sampler, SeededDrawsAreReproducible) {
  SamplingParams p;
  p.seed = 1234;
  const std::vector<float> flat(100, 0.0f);
  const auto a = generate(p, 7, 50, flat);
  EXPECT_EQ(a, generate(p, 7, 50, flat)) << "same seed and stream";
  EXPECT_NE(a, generate(p, 8, 50, flat)) << "another stream";
  p.seed = 1235;
  EXPECT_NE(a, generate(p, 7, 50, flat)) << "another seed";
}

TEST(Sampler, DrawIsAddressedByGeneratedIndex) {
  SamplingParams p;
  p.seed = 5;
  Sampler s(p, int32_t(kLogits.size()), 3);
  const int32_t first = s.sample(kLogits);
  EXPECT_EQ(s.sample(kLogits), first) << "sample() alone does not advance";
  s.accept(first);
  EXPECT_EQ(s.draw_index(), 1u);
  // Prompt tokens do not move the index either.
  Sampler t(p, int32_t(kLogits.size()), 3);
  const std::vector<int32_t> prompt = {1, 2, 3};
  t.accept_prompt(prompt);
  EXPECT_EQ(t.sample(kLogits), first);
}

TEST(Sampler, RefusesNaNAndWrongRowSize) {
  SamplingParams p;
  Sampler s(p, 4, 0);
  try {
    s.sample(std::vector<float>{0.0f, 1.0f, 2.0f, NAN});
    ADD_FAILURE() << "NaN sampled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("logits[3] is NaN"), std::string::npos) << e.what();
  }
  p.temperature = 0.0f;
  Sampler g(p, 4, 0);
  EXPECT_THROW(g.sample(std::vector<float>{NAN, 0.0f, 1.0f, 2.0f}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{0.0f, 1.0f}), Error);
  EXPECT_THROW(s.accept(4), Error);
  EXPECT_THROW(s.accept(-1), Error);
}

TEST(Sampler, AllMaskedByBiasIsARequestError) {
  SamplingParams p;
  p.logit_bias = {{0, -1e38f}, {1, -1e38f}};  // overflows to -inf
  Sampler s(p, 2, 0);
  try {
    s.sample(std::vector<float>{-3e38f, -3e38f});
    ADD_FAILURE() << "sampled from an all -inf row";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
  }
}

struct Case {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  int expect_support;  // tokens left after the cuts, worked out from kLogits by hand
};

class SamplerDistribution : public ::testing::TestWithParam<Case> {};

TEST_P(SamplerDistribution, ProbabilitiesMatchReferenceAndDrawsFollowThem) {
  const Case& k = GetParam();
  SamplingParams p;
  p.temperature = k.temperature;
  p.top_k = k.top_k;
  p.top_p = k.top_p;
  p.min_p = k.min_p;
  p.seed = 42;
  Sampler s(p, int32_t(kLogits.size()), tern::rng::stream_id(k.name));
  const std::vector<float> probs = s.probabilities(kLogits);
  const std::vector<double> ref = test::reference_probabilities(kLogits, p);
  int support = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    // float exp and a float quotient: a few ulp of a value <= 1.
    EXPECT_NEAR(probs[i], ref[i], 1e-6) << "token " << i;
    support += ref[i] > 0;
  }
  EXPECT_EQ(support, k.expect_support);

  const int n = 20000;
  std::vector<int> hits(kLogits.size(), 0);
  for (int i = 0; i < n; ++i) {
    const int32_t t = s.sample(kLogits);
    ++hits[size_t(t)];
    s.accept(t);
  }
  // Pearson chi-square against probabilities(); every kept bin expects >= 20 draws here.
  double chi2 = 0;
  for (size_t i = 0; i < hits.size(); ++i) {
    if (probs[i] == 0.0f) {
      EXPECT_EQ(hits[i], 0) << "token " << i << " is outside the kept set";
      continue;
    }
    const double e = n * double(probs[i]);
    ASSERT_GE(e, 20.0);
    chi2 += (hits[i] - e) * (hits[i] - e) / e;
  }
  if (support > 1) {
    EXPECT_LT(chi2, kChi2Critical[support - 2]) << "df " << support - 1;
  }
}

// kLogits sorted: 2.2 (8), 2.0 (2), 1.5 (5), 1.1 (11), 1.0 (0), 0.8 (7), 0.5 (1), 0.3 (10),
// 0.0 (4), -0.5 (6), -1.0 (3), -2.0 (9). Worked in double, every cut has a clear margin:
// temp_topp: cumulative mass 0.794 after 6 tokens, 0.853 after 7 (p = 0.8);
// temp_minp: p/p_max 0.119 for the 7th token, 0.093 for the 8th (min_p = 0.1);
// all_cuts: top-8, then 0.896 / 0.945 around p = 0.9, then p/p_max 0.180 / 0.135 around 0.15.
INSTANTIATE_TEST_SUITE_P(Params, SamplerDistribution,
                         ::testing::Values(Case{"plain", 1.0f, 0, 1.0f, 0.0f, 12},
                                           Case{"temp_topk", 0.6f, 5, 1.0f, 0.0f, 5},
                                           Case{"temp_topp", 1.3f, 0, 0.8f, 0.0f, 7},
                                           Case{"temp_minp", 0.8f, 0, 1.0f, 0.1f, 7},
                                           Case{"all_cuts", 0.7f, 8, 0.9f, 0.15f, 5}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Sampler, LargeVocabularyIsCutWithoutFullSort) {
  // 129,280 logits with a typical chat setting; each draw must land in the reference support.
  // The time bound is loose (sanitizer builds); it catches an accidental full sort per token.
  const std::vector<float> row = random_row(129280, 11, 4.0);
  SamplingParams p;
  p.temperature = 0.6f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.seed = 3;
  const std::vector<double> ref = test::reference_probabilities(row, p);
  Sampler s(p, int32_t(row.size()), 0);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    const int32_t t = s.sample(row);
    EXPECT_GT(ref[size_t(t)], 0.0);
    s.accept(t);
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 2000.0);
}
